//! The OAuth token service's wire types (`/oauth/*`, RFC 6749, 7662, 7009, 8693) and the
//! public documents beside it (`/.well-known/*`, `/healthz`, `/readyz`).
//!
//! The request types are the forms the endpoints read (`application/x-www-form-urlencoded`);
//! the server parses them itself (a repeated parameter is refused), so these types are
//! their contract, not its parser.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::formats::{
    AgentId, AssertionAlgs, Audience, AuthMethods, BearerType, ClientAssertionType, CrvEd25519,
    GrantType, IntrospectedAudience, IssuedTokenType, KtyOkp, MandateId, ResourceUri, SigningAlg,
    StatusOk, StatusReady, SubjectTokenType, TokenId, UseSig,
};

/// Parameters may not repeat (but `resource` and `audience`); an empty value counts
/// as absent; other parameters are ignored. `client_credentials` (RFC 6749 §4.4) or
/// RFC 8693 token exchange (mandate tokens and delegation, see docs/mandates.md and docs/tokens.md);
/// token exchange always requires client authentication of the requesting agent
/// (RFC 8693 §2.1): an `actor_token` alone is refused with `invalid_client`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TokenRequest {
    /// `client_credentials` or `urn:ietf:params:oauth:grant-type:token-exchange`.
    #[schema(value_type = GrantType, inline)]
    pub grant_type: String,
    /// Token exchange: the user's token (a trusted issuer's), the agent's own access token
    /// (a mandate with no user), or a mandate token to delegate from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String)]
    pub subject_token: Option<String>,
    /// Token exchange: the subject token's type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = SubjectTokenType, inline)]
    pub subject_token_type: Option<String>,
    /// Token exchange, optional: the authenticated agent's own client-credentials token,
    /// issued for Mandate; it must belong to the authenticated client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String)]
    pub actor_token: Option<String>,
    /// Token exchange: the actor token's type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = IssuedTokenType, inline)]
    pub actor_token_type: Option<String>,
    /// Token exchange: the type asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = IssuedTokenType, inline)]
    pub requested_token_type: Option<String>,
    /// Token exchange: target audiences (with `resource`, at most 8).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<Audience>, inline, max_items = 8)]
    pub audience: Vec<String>,
    /// Token exchange: the mandate (`mdt_…`) the token is for; optional when exactly one
    /// active mandate of the agent matches the subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String)]
    pub mandate: Option<String>,
    /// Space-separated RFC 6749 §3.3 scope tokens, at most 1024 characters; duplicates
    /// are dropped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(
        value_type = String,
        max_length = 1024,
        pattern = r"^[\x21\x23-\x5b\x5d-\x7e]+( [\x21\x23-\x5b\x5d-\x7e]+)*$"
    )]
    pub scope: Option<String>,
    /// RFC 8707 target resources (absolute URIs without a fragment, at most 2048
    /// characters each); they become the token's `aud`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<ResourceUri>, inline, max_items = 8)]
    pub resource: Vec<String>,
    /// The agent (`client_secret_post`, `private_key_jwt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = AgentId)]
    pub client_id: Option<String>,
    /// `client_secret_post`; requires `client_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String)]
    pub client_secret: Option<String>,
    /// `private_key_jwt`: `urn:ietf:params:oauth:client-assertion-type:jwt-bearer`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = ClientAssertionType, inline)]
    pub client_assertion_type: Option<String>,
    /// `private_key_jwt`: a JWT with `iss` and `sub` the agent id, `aud` the token
    /// endpoint or the issuer, `exp` and a single-use `jti`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String)]
    pub client_assertion: Option<String>,
}

/// For introspection and revocation; carries the client authentication of an agent
/// caller too.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TokenActionRequest {
    /// The access token.
    pub token: String,
    /// Accepted and ignored (only access tokens exist).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String)]
    pub token_type_hint: Option<String>,
    /// The agent, for `client_secret_post` and `private_key_jwt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = AgentId)]
    pub client_id: Option<String>,
    /// `client_secret_post`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String)]
    pub client_secret: Option<String>,
    /// `private_key_jwt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = ClientAssertionType, inline)]
    pub client_assertion_type: Option<String>,
    /// `private_key_jwt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String)]
    pub client_assertion: Option<String>,
}

/// An issued access token (RFC 6749 §5.1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TokenResponse {
    /// A JWT (`typ: at+jwt`, `alg` `EdDSA` or `Ed25519` per `token.signing_alg`) signed
    /// by the current key.
    pub access_token: String,
    /// `Bearer`, or `DPoP` when the request carried a DPoP proof (RFC 9449 §5).
    #[schema(value_type = BearerType, inline)]
    pub token_type: String,
    /// Seconds.
    #[schema(minimum = 1)]
    pub expires_in: u64,
    /// The granted scope (the requested one, deduplicated); absent when none was requested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String)]
    pub scope: Option<String>,
}

/// An introspection answer (RFC 7662 §2.2); `{"active": false}` for any token not active.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct IntrospectionResponse {
    /// Whether the token is active.
    pub active: bool,
    /// `Bearer`, or `DPoP` when the request carried a DPoP proof (RFC 9449 §5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = BearerType, inline)]
    pub token_type: Option<String>,
    /// The issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String)]
    pub iss: Option<String>,
    /// The agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = AgentId)]
    pub sub: Option<String>,
    /// The audience: one string or several.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = IntrospectedAudience, inline)]
    pub aud: Option<serde_json::Value>,
    /// Seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = i64)]
    pub exp: Option<i64>,
    /// Seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = i64)]
    pub iat: Option<i64>,
    /// Seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = i64)]
    pub nbf: Option<i64>,
    /// The token's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String, pattern = "^tok_[0-7][0-9A-HJKMNP-TV-Z]{25}$")]
    pub jti: Option<String>,
    /// The agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = AgentId)]
    pub client_id: Option<String>,
    /// The token's scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String)]
    pub scope: Option<String>,
    /// RFC 8693 §4.1, for an exchanged token: the agent acting for `sub`, with the agents
    /// that delegated to it nested inside.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = TokenActor)]
    pub act: Option<TokenActor>,
    /// The mandate (`mdt_…`) an exchanged token is bound to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = MandateId)]
    pub mandate: Option<String>,
    /// The tokens a delegated token was exchanged from, nearest first; revoking any of them
    /// revokes this one. Absent when there are none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parents: Vec<ParentToken>,
    /// RFC 7800: what a sender-constrained token is bound to — the DPoP key (`jkt`,
    /// RFC 9449 §6.2), the client certificate (`x5t#S256`, RFC 8705 §3.2), or both.
    /// Absent for a bearer token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnf: Option<TokenConfirmation>,
}

/// The `cnf` of a DPoP-bound (RFC 9449 §6) or certificate-bound (RFC 8705 §3) token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TokenConfirmation {
    /// The RFC 7638 SHA-256 thumbprint (base64url) of the DPoP public key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jkt: Option<String>,
    /// The base64url SHA-256 of the DER client certificate the token is bound to.
    #[serde(rename = "x5t#S256", default, skip_serializing_if = "Option::is_none")]
    pub x5t_s256: Option<String>,
}

impl IntrospectionResponse {
    /// The answer for any token that is not active: `{"active": false}` (RFC 7662 §2.2).
    pub fn inactive() -> Self {
        Self {
            active: false,
            token_type: None,
            iss: None,
            sub: None,
            aud: None,
            exp: None,
            iat: None,
            nbf: None,
            jti: None,
            client_id: None,
            scope: None,
            act: None,
            mandate: None,
            parents: Vec::new(),
            cnf: None,
        }
    }
}

/// An RFC 8693 `act` claim: who acts for the token's subject.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TokenActor {
    /// The acting agent.
    #[schema(value_type = AgentId)]
    pub sub: String,
    /// The agent that acted before it, for a delegation chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = TokenActor, no_recursion)]
    pub act: Option<Box<TokenActor>>,
}

/// A token an exchanged token derives from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ParentToken {
    /// The parent's `jti`.
    #[schema(value_type = TokenId)]
    pub jti: String,
    /// The parent's `iat` (seconds since the epoch).
    pub iat: i64,
}

/// A JWK Set (RFC 7517) of the keys that verify access tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct JwkSet {
    /// The current key and every retired key whose tokens may still be valid.
    pub keys: Vec<SigningJwk>,
}

/// A published Ed25519 token-signing key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SigningJwk {
    /// `OKP`.
    #[schema(value_type = KtyOkp, inline)]
    pub kty: String,
    /// `Ed25519`.
    #[schema(value_type = CrvEd25519, inline)]
    pub crv: String,
    /// The public key, base64url.
    pub x: String,
    /// RFC 7638 thumbprint.
    pub kid: String,
    /// `token.signing_alg`: the `alg` the access tokens carry (the same Ed25519 signature
    /// under either name).
    #[schema(value_type = SigningAlg, inline)]
    pub alg: String,
    /// `sig`.
    #[serde(rename = "use")]
    #[schema(value_type = UseSig, inline)]
    pub use_: String,
}

/// Authorization server metadata (RFC 8414); URLs are built from the configured issuer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ServerMetadata {
    /// The issuer.
    #[schema(format = "uri")]
    pub issuer: String,
    /// `{issuer}/oauth/authorize`, which refuses every request with
    /// `unsupported_response_type` (the MCP SDKs require the member).
    #[schema(format = "uri")]
    pub authorization_endpoint: String,
    /// `{issuer}/oauth/token`.
    #[schema(format = "uri")]
    pub token_endpoint: String,
    /// `{issuer}/.well-known/jwks.json`.
    #[schema(format = "uri")]
    pub jwks_uri: String,
    /// `{issuer}/oauth/introspect`.
    #[schema(format = "uri")]
    pub introspection_endpoint: String,
    /// `{issuer}/oauth/revoke`.
    #[schema(format = "uri")]
    pub revocation_endpoint: String,
    /// `client_credentials` and token exchange.
    #[schema(value_type = Vec<GrantType>, inline)]
    pub grant_types_supported: Vec<String>,
    /// Empty: Mandate supports no response type (no authorization flow).
    #[schema(max_items = 0)]
    pub response_types_supported: Vec<String>,
    /// How a client authenticates at the token endpoint.
    #[schema(value_type = AuthMethods)]
    pub token_endpoint_auth_methods_supported: Vec<String>,
    /// The client-assertion algorithms taken there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = AssertionAlgs)]
    pub token_endpoint_auth_signing_alg_values_supported: Option<Vec<String>>,
    /// How a client authenticates at the revocation endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = AuthMethods)]
    pub revocation_endpoint_auth_methods_supported: Option<Vec<String>>,
    /// The client-assertion algorithms taken there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = AssertionAlgs)]
    pub revocation_endpoint_auth_signing_alg_values_supported: Option<Vec<String>>,
    /// How a client authenticates at the introspection endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = AuthMethods)]
    pub introspection_endpoint_auth_methods_supported: Option<Vec<String>>,
    /// The client-assertion algorithms taken there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = AssertionAlgs)]
    pub introspection_endpoint_auth_signing_alg_values_supported: Option<Vec<String>>,
    /// RFC 9449 §5.1: the `alg` values DPoP proofs may use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = AssertionAlgs)]
    pub dpop_signing_alg_values_supported: Option<Vec<String>>,
    /// RFC 8705 §3.3: a token requested over a TLS connection with a client certificate
    /// is bound to that certificate (`cnf.x5t#S256`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_client_certificate_bound_access_tokens: Option<bool>,
}

/// `/healthz`: the process is up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Liveness {
    /// Always `ok`.
    #[schema(value_type = StatusOk, inline)]
    pub status: String,
}

/// `/readyz`: the store answers and decisions are not held.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Readiness {
    /// Always `ready`.
    #[schema(value_type = StatusReady, inline)]
    pub status: String,
}
