//! TLS on Mandate's listeners: the `tls.*` config keys, the acceptor of each listener,
//! and the reloader that swaps a listener's certificate when its files change or on
//! SIGHUP (docs/running.md#tls). The TLS itself is `mandate_tls::server`; serving is
//! `listen.rs`.
//!
//! Keys: `[tls]` (`cert_file`, `key_file`, `client_auth`) is the API listener's and, by
//! default, every other listener's; `[gateway.tls]`, `[opa.tls]` and `[metrics.tls]`
//! override it per listener (`cert_file` and `key_file` together; `client_auth` on its
//! own). No certificate anywhere: every listener is plain HTTP, as before.
//! `tls.client_ca_file` (API listener only) is the CA bundle that issues the client
//! certificates of `tls_client_auth` credentials (RFC 8705 §2.1); it needs the API
//! listener to ask for client certificates (`tls.client_auth = "optional"`), and is read
//! once at start (a changed bundle takes a restart).
//!
//! INVARIANT (fail at start, keep serving on reload): every certificate and key is loaded
//! and checked before anything is served — a missing file, a PEM that does not parse, a
//! key that is not the certificate's or is readable by others, a certificate expired or
//! not yet valid refuse the start. Later, the same faults in a reloaded file keep the
//! certificate being served, are logged (naming the file, never a key's content) and
//! counted (`mandate_tls_reloads_total{outcome="failed"}`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use mandate_core::clock::Clock;
use mandate_tls::server::{ClientAuth, IdentityFiles, Resolver, TlsAcceptor, load_identity};

/// How often the reloader looks at the certificate and key files (their modification
/// time and length).
pub const POLL_EVERY: Duration = Duration::from_secs(5);

/// One of the listeners that can serve TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    /// `listen`: the API, the OAuth endpoints, the console.
    Api,
    /// `gateway.listen`.
    Gateway,
    /// `opa.listen`.
    Opa,
    /// `metrics.listen`.
    Metrics,
}

impl Listener {
    const ALL: [Self; 4] = [Self::Api, Self::Gateway, Self::Opa, Self::Metrics];

    /// The table its keys are in.
    fn table(self) -> &'static str {
        match self {
            Self::Api => "tls",
            Self::Gateway => "gateway.tls",
            Self::Opa => "opa.tls",
            Self::Metrics => "metrics.tls",
        }
    }
}

/// Every `tls.*` key (config.rs lists them among its keys).
pub const KEYS: &[&str] = &[
    "tls.cert_file",
    "tls.key_file",
    "tls.client_auth",
    "tls.client_ca_file",
    "gateway.tls.cert_file",
    "gateway.tls.key_file",
    "gateway.tls.client_auth",
    "opa.tls.cert_file",
    "opa.tls.key_file",
    "opa.tls.client_auth",
    "metrics.tls.cert_file",
    "metrics.tls.key_file",
    "metrics.tls.client_auth",
];

/// The keys of one `tls` table, as given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsKeys {
    /// `cert_file`: the certificate chain (PEM, leaf first).
    pub cert_file: Option<PathBuf>,
    /// `key_file`: its private key (PEM), mode 0600 or tighter.
    pub key_file: Option<PathBuf>,
    /// `client_auth`: `none` (the default) or `optional`.
    pub client_auth: Option<ClientAuth>,
}

/// The `tls` tables of every listener, as given (see the module doc for inheritance).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsConfig {
    /// `[tls]`: the API listener's, and the default of the others.
    pub api: TlsKeys,
    /// `[gateway.tls]`.
    pub gateway: TlsKeys,
    /// `[opa.tls]`.
    pub opa: TlsKeys,
    /// `[metrics.tls]`.
    pub metrics: TlsKeys,
    /// `tls.client_ca_file`: the CAs of `tls_client_auth` client certificates.
    pub client_ca_file: Option<PathBuf>,
}

/// What one listener serves: its files and whether it asks for client certificates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerTls {
    /// Its certificate and key.
    pub files: IdentityFiles,
    /// Whether it asks clients for a certificate.
    pub client_auth: ClientAuth,
}

impl TlsConfig {
    fn keys_mut(&mut self, l: Listener) -> &mut TlsKeys {
        match l {
            Listener::Api => &mut self.api,
            Listener::Gateway => &mut self.gateway,
            Listener::Opa => &mut self.opa,
            Listener::Metrics => &mut self.metrics,
        }
    }

    fn keys(&self, l: Listener) -> &TlsKeys {
        match l {
            Listener::Api => &self.api,
            Listener::Gateway => &self.gateway,
            Listener::Opa => &self.opa,
            Listener::Metrics => &self.metrics,
        }
    }

    /// Applies `key = value` when `key` is one of [`KEYS`]: `None` when it is not one,
    /// else whether `value` was taken (the error says what it must be).
    pub fn apply(&mut self, key: &str, value: &str) -> Option<Result<(), &'static str>> {
        if key == "tls.client_ca_file" {
            if value.is_empty() {
                return Some(Err("must be the path of a PEM file"));
            }
            self.client_ca_file = Some(PathBuf::from(value));
            return Some(Ok(()));
        }
        let (table, name) = key.rsplit_once('.')?;
        let listener = Listener::ALL.into_iter().find(|l| l.table() == table)?;
        let keys = self.keys_mut(listener);
        let path = |slot: &mut Option<PathBuf>| {
            if value.is_empty() {
                return Err("must be the path of a PEM file");
            }
            *slot = Some(PathBuf::from(value));
            Ok(())
        };
        Some(match name {
            "cert_file" => path(&mut keys.cert_file),
            "key_file" => path(&mut keys.key_file),
            "client_auth" => {
                keys.client_auth = Some(match value {
                    "none" => ClientAuth::None,
                    "optional" => ClientAuth::Optional,
                    _ => return Some(Err("must be `none` or `optional`")),
                });
                Ok(())
            }
            _ => return None,
        })
    }

    /// What `listener` serves: `None` is plain HTTP. Its own `cert_file`/`key_file` if
    /// given, else `[tls]`'s; its own `client_auth` if given, else `[tls]`'s.
    pub fn listener(&self, listener: Listener) -> Option<ListenerTls> {
        let own = self.keys(listener);
        let (cert, key) = if own.cert_file.is_some() || own.key_file.is_some() {
            (own.cert_file.clone()?, own.key_file.clone()?)
        } else {
            (self.api.cert_file.clone()?, self.api.key_file.clone()?)
        };
        Some(ListenerTls {
            files: IdentityFiles {
                cert_file: cert,
                key_file: key,
            },
            client_auth: own.client_auth.or(self.api.client_auth).unwrap_or_default(),
        })
    }

    /// The mistakes no single key shows: a certificate without its key (or the reverse),
    /// a `client_auth` on a listener without a certificate, a client CA on an API
    /// listener that asks for no client certificate.
    pub fn check(&self) -> Vec<String> {
        let mut errors = Vec::new();
        if self.client_ca_file.is_some()
            && self
                .listener(Listener::Api)
                .is_none_or(|l| l.client_auth != ClientAuth::Optional)
        {
            errors.push(
                "`tls.client_ca_file` needs the API listener to ask for client certificates: \
                 set `tls.client_auth = \"optional\"` (and `tls.cert_file`, `tls.key_file`)"
                    .to_owned(),
            );
        }
        for l in Listener::ALL {
            let k = self.keys(l);
            let t = l.table();
            if k.cert_file.is_some() != k.key_file.is_some() {
                errors.push(format!(
                    "`{t}.cert_file` and `{t}.key_file` go together: set both or neither"
                ));
            }
            if k.client_auth.is_some() && self.listener(l).is_none() {
                errors.push(format!(
                    "`{t}.client_auth` needs a certificate: set `{t}.cert_file` and \
                     `{t}.key_file` (or `tls.cert_file` and `tls.key_file` for every listener)"
                ));
            }
        }
        errors
    }
}

/// Client authentication by certificate as configured: whether the API listener asks
/// for client certificates, and the client CA bundle (`tls.client_ca_file`), loaded
/// now: a file that is missing or holds no usable CA certificate refuses the start.
pub fn client_cert_auth(config: &TlsConfig) -> anyhow::Result<mandate_http::ClientCertAuth> {
    let ca = config
        .client_ca_file
        .as_deref()
        .map(|p| mandate_tls::client_cert::ClientCa::load("tls.client_ca_file", p))
        .transpose()?;
    Ok(mandate_http::ClientCertAuth {
        asked: config
            .listener(Listener::Api)
            .is_some_and(|l| l.client_auth == ClientAuth::Optional),
        ca: ca.map(Arc::new),
    })
}

/// The URL scheme of `listener`: `https` when it serves TLS.
pub fn scheme(config: &TlsConfig, listener: Listener) -> &'static str {
    if config.listener(listener).is_some() {
        "https"
    } else {
        "http"
    }
}

/// A certificate a listener serves, and what its files looked like when last read.
struct Watched {
    files: IdentityFiles,
    resolver: Arc<Resolver>,
    seen: Option<[(SystemTime, u64); 2]>,
}

/// The files' modification times and lengths (`None`: one cannot be read).
fn look(files: &IdentityFiles) -> Option<[(SystemTime, u64); 2]> {
    let one = |p: &PathBuf| {
        let m = std::fs::metadata(p).ok()?;
        Some((m.modified().ok()?, m.len()))
    };
    Some([one(&files.cert_file)?, one(&files.key_file)?])
}

/// The time since the Unix epoch, as `clock` tells it.
fn now(clock: &dyn Clock) -> Duration {
    Duration::from_millis(u64::try_from(clock.now_millis()).unwrap_or(0))
}

/// Every listener's TLS, ready to serve, and what reloads it.
pub struct Served {
    acceptors: Vec<(Listener, TlsAcceptor)>,
    watched: Vec<Watched>,
}

impl Served {
    /// Loads every listener's certificate and key now (an error refuses the start; it
    /// names the listener's table and the file). Listeners given the same files share
    /// one certificate in memory, reloaded once.
    pub fn load(config: &TlsConfig, clock: &dyn Clock) -> anyhow::Result<Self> {
        let mut served = Self {
            acceptors: Vec::new(),
            watched: Vec::new(),
        };
        for l in Listener::ALL {
            let Some(tls) = config.listener(l) else {
                continue;
            };
            let resolver = match served.watched.iter().find(|w| w.files == tls.files) {
                Some(w) => Arc::clone(&w.resolver),
                None => {
                    let seen = look(&tls.files);
                    let identity = load_identity(&tls.files, now(clock))
                        .with_context(|| format!("`[{}]`", l.table()))?;
                    let resolver = Arc::new(Resolver::new(identity));
                    served.watched.push(Watched {
                        files: tls.files.clone(),
                        resolver: Arc::clone(&resolver),
                        seen,
                    });
                    resolver
                }
            };
            let acceptor = mandate_tls::server::acceptor(resolver, tls.client_auth)
                .with_context(|| format!("`[{}]`", l.table()))?;
            served.acceptors.push((l, acceptor));
        }
        Ok(served)
    }

    /// The acceptor of `listener`; `None`: it serves plain HTTP.
    pub fn acceptor(&self, listener: Listener) -> Option<TlsAcceptor> {
        self.acceptors
            .iter()
            .find(|(l, _)| *l == listener)
            .map(|(_, a)| a.clone())
    }

    /// Reloads every certificate whose files changed since last read (or all of them,
    /// with `all`); see the module doc for a reload that fails. Returns how many were
    /// replaced.
    fn reload(&mut self, clock: &dyn Clock, all: bool) -> usize {
        let mut replaced = 0;
        for w in &mut self.watched {
            let seen = look(&w.files);
            if !all && seen.is_some() && seen == w.seen {
                continue;
            }
            // Remembered whatever the outcome: a bad file is reported once, not at
            // every poll, and tried again when it changes (or on SIGHUP).
            w.seen = seen;
            match load_identity(&w.files, now(clock)) {
                Ok(identity) => {
                    w.resolver.set(identity);
                    replaced += 1;
                    mandate_http::metrics::tls_reloaded(true);
                    tracing::info!(
                        cert_file = %w.files.cert_file.display(),
                        "TLS certificate reloaded: served from the next connection"
                    );
                }
                Err(e) => {
                    mandate_http::metrics::tls_reloaded(false);
                    tracing::error!(
                        error = %e,
                        "TLS certificate not reloaded; the previous one is still served"
                    );
                }
            }
        }
        replaced
    }

    /// Reloads on SIGHUP (every certificate) and every `poll` (those whose files
    /// changed), until the runtime ends. Nothing runs when no listener serves TLS; then
    /// SIGHUP keeps its default action.
    pub fn spawn_reloader(mut self, clock: Arc<dyn Clock>, poll: Duration) {
        if self.watched.is_empty() {
            return;
        }
        let mut hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "SIGHUP cannot be listened for; TLS files are still polled");
                None
            }
        };
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(poll);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let all = tokio::select! {
                    _ = tick.tick() => false,
                    Some(()) = async {
                        match hangup.as_mut() {
                            Some(h) => h.recv().await,
                            None => std::future::pending().await,
                        }
                    } => true,
                };
                if all {
                    tracing::info!("SIGHUP: reloading the TLS certificates");
                }
                self.reload(clock.as_ref(), all);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> TlsConfig {
        let mut c = TlsConfig::default();
        for (k, v) in pairs {
            assert_eq!(c.apply(k, v), Some(Ok(())), "{k}");
        }
        c
    }

    #[test]
    fn every_key_is_applied_and_others_are_not_taken() {
        let mut c = TlsConfig::default();
        for k in KEYS {
            let v = if k.ends_with("client_auth") {
                "optional"
            } else {
                "/x.pem"
            };
            assert_eq!(c.apply(k, v), Some(Ok(())), "{k}");
        }
        assert_eq!(c.apply("tls.cert_path", "/x"), None);
        assert_eq!(c.apply("gateway.listen", "/x"), None);
        assert!(matches!(c.apply("tls.cert_file", ""), Some(Err(_))));
        assert!(matches!(
            c.apply("opa.tls.client_auth", "required"),
            Some(Err(_))
        ));
    }

    #[test]
    fn listeners_inherit_the_api_table_unless_overridden() {
        let c = config(&[
            ("tls.cert_file", "/a.pem"),
            ("tls.key_file", "/a.key"),
            ("gateway.tls.cert_file", "/g.pem"),
            ("gateway.tls.key_file", "/g.key"),
            ("metrics.tls.client_auth", "optional"),
        ]);
        assert!(c.check().is_empty());
        let api = c.listener(Listener::Api).unwrap();
        assert_eq!(api.files.cert_file, PathBuf::from("/a.pem"));
        assert_eq!(api.client_auth, ClientAuth::None);
        let g = c.listener(Listener::Gateway).unwrap();
        assert_eq!(g.files.key_file, PathBuf::from("/g.key"));
        assert_eq!(c.listener(Listener::Opa).unwrap().files, api.files);
        let m = c.listener(Listener::Metrics).unwrap();
        assert_eq!((m.files, m.client_auth), (api.files, ClientAuth::Optional));
        assert!(TlsConfig::default().listener(Listener::Api).is_none());
    }

    #[test]
    fn half_pairs_and_client_auth_without_a_certificate_are_refused() {
        let c = config(&[("tls.cert_file", "/a.pem"), ("opa.tls.key_file", "/o.key")]);
        let errors = c.check();
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].contains("`tls.cert_file` and `tls.key_file` go together"));
        assert!(errors[1].contains("`opa.tls.cert_file` and `opa.tls.key_file`"));
        let c = config(&[("gateway.tls.client_auth", "optional")]);
        assert_eq!(c.check().len(), 1);
        assert!(c.check()[0].contains("`gateway.tls.client_auth` needs a certificate"));
    }

    #[test]
    fn a_client_ca_needs_an_api_listener_that_asks_for_client_certificates() {
        let tls = [("tls.cert_file", "/a.pem"), ("tls.key_file", "/a.key")];
        let ca = ("tls.client_ca_file", "/ca.pem");
        for (extra, ok) in [
            (vec![ca], false),
            (vec![ca, ("tls.client_auth", "none")], false),
            (vec![ca, ("metrics.tls.client_auth", "optional")], false),
            (vec![ca, ("tls.client_auth", "optional")], true),
        ] {
            let c = config(&[tls.as_slice(), &extra].concat());
            assert_eq!(c.check().is_empty(), ok, "{extra:?}: {:?}", c.check());
        }
        let c = config(&[ca]);
        assert!(c.check()[0].contains("`tls.client_ca_file` needs the API listener"));
        assert_eq!(c.client_ca_file, Some(PathBuf::from("/ca.pem")));
        assert!(matches!(
            TlsConfig::default().apply("tls.client_ca_file", ""),
            Some(Err(_))
        ));
    }
}
