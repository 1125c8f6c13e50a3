//! DPoP (RFC 9449) on this node: the settings (`[dpop]`), the replay cache and the
//! nonce key, and the one check every surface that accepts an agent's token runs on how
//! it was presented ([`check_sender`]): `/v1/authorize`, AuthZEN, the endpoints agents
//! share with admins (mandates, approvals) and both gateways.
//!
//! INVARIANT (bound stays bound): a token carrying `cnf.jkt` is accepted only under the
//! `DPoP` authorization scheme with exactly one proof, made with the key `jkt` names,
//! for this very request (method and URL), fresh, never seen before on this node, and
//! hashing this token (`ath`). Presented as `Bearer` it is refused everywhere
//! (`dpop_bound_token_as_bearer`, 401 `invalid_token`): an unbound copy of a bound
//! token is worth nothing.
//!
//! INVARIANT (bound to a certificate): a token carrying `cnf.x5t#S256` (RFC 8705 §3) is
//! accepted only over a TLS connection whose client certificate (the leaf the client
//! proved it holds the key of in the handshake) has that thumbprint: without a
//! certificate it is refused (`certificate_bound_token_without_certificate`), with
//! another (`certificate_bound_token_wrong_certificate`), both 401 `invalid_token`. A
//! token bound both ways (a DPoP proof at a token request over mTLS) is held to both.
//! Where no connection is known (a token passed on by an enforcement point in a
//! `/v1/authorize` body) a certificate-bound token is refused: the certificate is not
//! there to compare.
//!
//! Replay: each node remembers the proofs it accepted ([`ReplayCache`], bounded, fail
//! closed when full) for the `iat` window. A proof replayed to *another* node of a
//! cluster within that window is not caught by this cache: the window is short (60 s by
//! default) and a proof names one method and URL, and `dpop.require_nonce` narrows it
//! further; documented in docs/tokens.md. Nonces need no shared state: every node
//! derives the same nonce key from the store key ([`NonceKey`]).

use mandate_token::access::AccessClaims;
use mandate_token::dpop::{self, DpopError, Expect, NonceKey, Proof, ReplayCache, Window};
use mandate_token::jwk::Ed25519Points;
use serde_json::json;

use crate::Node;

/// `[dpop]`: how proofs are checked. The default is safe: a 60 s / 5 s `iat` window, no
/// nonce required, room for 100 000 proofs in the replay cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DpopConfig {
    /// `dpop.max_age_secs` / `dpop.max_skew_secs`: the `iat` window.
    pub window: Window,
    /// `dpop.require_nonce`: every proof must carry a current server nonce (RFC 9449
    /// §8, §9); a proof without one is answered `use_dpop_nonce` with a `DPoP-Nonce`.
    pub require_nonce: bool,
    /// `dpop.nonce_lifetime_secs`: a nonce rotates each such slot and is accepted for
    /// its slot and the next.
    pub nonce_lifetime_secs: i64,
    /// `dpop.replay_cache_size`: the most proofs remembered at once on this node.
    pub replay_cache_size: usize,
}

impl Default for DpopConfig {
    fn default() -> Self {
        Self {
            window: Window::default(),
            require_nonce: false,
            nonce_lifetime_secs: 300,
            replay_cache_size: 100_000,
        }
    }
}

/// This node's DPoP state.
#[derive(Debug)]
pub struct Dpop {
    config: DpopConfig,
    replay: ReplayCache,
    nonce: NonceKey,
    /// Proof keys' Ed25519 points, decoded once per key (`INVARIANT (points memo)`).
    points: Ed25519Points,
}

impl Dpop {
    /// The state for `config`, nonces keyed by `nonce_key` (the store key's).
    pub fn new(config: DpopConfig, nonce_key: [u8; 32]) -> Self {
        Self {
            replay: ReplayCache::new(config.replay_cache_size),
            nonce: NonceKey::new(nonce_key, config.nonce_lifetime_secs),
            points: Ed25519Points::default(),
            config,
        }
    }

    /// The settings.
    pub fn config(&self) -> DpopConfig {
        self.config
    }

    /// The nonce to send in `DPoP-Nonce` now, when nonces are required.
    pub fn nonce(&self, now: mandate_core::time::Timestamp) -> Option<String> {
        self.config.require_nonce.then(|| self.nonce.current(now))
    }

    /// Verifies one proof for the request (`method`, `url`, the token presented with
    /// it if any) without admitting it to the replay cache.
    pub fn verify(
        &self,
        proof: &str,
        method: &str,
        url: &str,
        token: Option<&str>,
        now: mandate_core::time::Timestamp,
    ) -> Result<Proof, DpopError> {
        dpop::verify(
            proof,
            &Expect {
                method,
                url,
                access_token: token,
                window: self.config.window,
                nonce: self.config.require_nonce.then_some(&self.nonce),
                now,
                points: Some(&self.points),
            },
        )
    }

    /// Remembers a verified proof; refuses one seen before or a full cache.
    pub fn admit(
        &self,
        proof: &Proof,
        now: mandate_core::time::Timestamp,
    ) -> Result<(), DpopError> {
        self.replay.admit(proof, self.config.window, now)
    }
}

/// The authorization scheme a token came under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `Authorization: Bearer` (RFC 6750), or a token in a request body.
    Bearer,
    /// `Authorization: DPoP` (RFC 9449 §7.1).
    Dpop,
}

/// How a token was presented: its scheme, the `DPoP` header values that came with it
/// and the request they must be proofs for.
#[derive(Debug, Clone, Copy)]
pub struct Presentation<'a> {
    /// The scheme.
    pub scheme: Scheme,
    /// Every `DPoP` header value of the request (exactly one is accepted).
    pub proofs: &'a [&'a str],
    /// The request's method.
    pub method: &'a str,
    /// The request's URL as the client reached it (public base URL + path).
    pub url: &'a str,
    /// The `x5t#S256` of the client certificate of the connection the token came on
    /// (`mandate_token::access::certificate_thumbprint` of the leaf), `None` without one
    /// or where the connection is not known.
    pub certificate: Option<&'a str>,
}

/// Why a presentation is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SenderError {
    /// A bound token under `Bearer` (or passed on without a proof).
    #[error("the token is DPoP-bound: present it as `Authorization: DPoP` with a DPoP proof")]
    BoundAsBearer,
    /// `DPoP` scheme without exactly one `DPoP` header.
    #[error("the DPoP scheme needs exactly one DPoP proof header")]
    ProofMissing,
    /// `DPoP` scheme with a token that is not bound.
    #[error("the token is not DPoP-bound: present it as `Authorization: Bearer`")]
    NotBound,
    /// The proof is refused.
    #[error("{0}")]
    Proof(DpopError),
    /// A certificate-bound token over a connection without a client certificate.
    #[error(
        "the token is bound to a client certificate: present it over TLS with that certificate"
    )]
    CertificateMissing,
    /// A certificate-bound token over a connection with another client certificate.
    #[error("the token is bound to another client certificate than the connection's")]
    CertificateMismatch,
}

impl SenderError {
    /// The stable reason code (audit log, `error_description`).
    pub fn code(self) -> &'static str {
        match self {
            Self::BoundAsBearer => "dpop_bound_token_as_bearer",
            Self::ProofMissing => "dpop_proof_missing",
            Self::NotBound => "dpop_token_not_bound",
            Self::Proof(e) => e.code(),
            Self::CertificateMissing => "certificate_bound_token_without_certificate",
            Self::CertificateMismatch => "certificate_bound_token_wrong_certificate",
        }
    }

    /// Whether the refusal is about the client certificate (RFC 8705), not DPoP.
    pub fn is_certificate(self) -> bool {
        matches!(self, Self::CertificateMissing | Self::CertificateMismatch)
    }

    /// The RFC 6750 / RFC 9449 error code: `invalid_token` for a token presented the
    /// wrong way, `invalid_dpop_proof` or `use_dpop_nonce` for the proof.
    pub fn oauth_error(self) -> &'static str {
        match self {
            Self::BoundAsBearer
            | Self::NotBound
            | Self::CertificateMissing
            | Self::CertificateMismatch => "invalid_token",
            Self::ProofMissing => "invalid_dpop_proof",
            Self::Proof(e) => e.oauth_error(),
        }
    }

    /// The `WWW-Authenticate` challenge (RFC 9449 §7.1): `DPoP` with the algorithms,
    /// and `Bearer` too when the fault is a bound token under `Bearer`.
    pub fn challenge(self) -> String {
        if self.is_certificate() {
            return format!(
                "Bearer realm=\"mandate\", error=\"invalid_token\", error_description=\"{}\"",
                self.code()
            );
        }
        let algs = dpop::SIGNING_ALGS.join(" ");
        let e = self.oauth_error();
        format!(
            "DPoP realm=\"mandate\", error=\"{e}\", error_description=\"{}\", algs=\"{algs}\"",
            self.code()
        )
    }
}

/// Checks how `token` (whose `claims` verified) was presented, and records a refusal as
/// `token.refused` (`surface` names the endpoint) before answering it.
pub fn check_sender(
    node: &Node,
    claims: &AccessClaims,
    token: &str,
    p: &Presentation<'_>,
    surface: &str,
) -> Result<(), SenderError> {
    let r = sender(node, claims, token, p);
    if let Err(e) = r {
        let mut ev = node.event("token.refused");
        ev.agent = Some(claims.client_id.clone());
        ev.details = Some(json!({"surface": surface, "error": e.oauth_error(),
            "reason": e.code(), "token_id": claims.jti}));
        node.audit.record_lazy(ev);
        if e.is_certificate() {
            crate::metrics::mtls_refused(e.code());
        } else {
            crate::metrics::dpop_refused(e.code());
        }
    }
    r
}

fn sender(
    node: &Node,
    claims: &AccessClaims,
    token: &str,
    p: &Presentation<'_>,
) -> Result<(), SenderError> {
    // INVARIANT (bound to a certificate): checked first, so a DPoP proof is never
    // admitted to the replay cache for a presentation refused anyway. Not secret: both
    // are thumbprints of public certificates.
    if let Some(bound) = claims.x5t_s256() {
        match p.certificate {
            None => return Err(SenderError::CertificateMissing),
            Some(c) if c != bound => return Err(SenderError::CertificateMismatch),
            Some(_) => {}
        }
    }
    match (claims.jkt(), p.scheme) {
        (None, Scheme::Bearer) => Ok(()),
        (None, Scheme::Dpop) => Err(SenderError::NotBound),
        (Some(_), Scheme::Bearer) => Err(SenderError::BoundAsBearer),
        (Some(jkt), Scheme::Dpop) => {
            let [proof] = p.proofs else {
                return Err(SenderError::ProofMissing);
            };
            let now = node.clock.now();
            let d = node.dpop();
            let v = d
                .verify(proof, p.method, p.url, Some(token), now)
                .map_err(SenderError::Proof)?;
            // Not secret: both are thumbprints of public keys.
            if v.jkt != jkt {
                return Err(SenderError::Proof(DpopError::WrongKey));
            }
            // INVARIANT (only the key holder fills the cache): admitted only after the
            // proof verified with the very key the token is bound to.
            d.admit(&v, now).map_err(SenderError::Proof)
        }
    }
}
