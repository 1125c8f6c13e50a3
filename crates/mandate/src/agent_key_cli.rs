//! `mandate agent key generate|assertion`: an agent's own Ed25519 key for
//! `private_key_jwt` (RFC 7523), offline — so a first user (or a script) can register a
//! public key and sign a client assertion without writing JOSE code.
//!
//! The private key stays in a PKCS#8 PEM file (mode 0600, never replaced, never sent);
//! only the public JWK is printed. An assertion is what RFC 7523 §3 asks for: `iss` =
//! `sub` = the agent id, `aud` the token endpoint, a short `exp`, a fresh `jti`, signed
//! EdDSA with the key's RFC 7638 thumbprint as `kid`.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use clap::Subcommand;
use ed25519_dalek::Signer as _;
use ed25519_dalek::pkcs8::DecodePrivateKey as _;
use mandate_core::clock::{Clock as _, SystemClock};
use mandate_core::random::{OsRandom, random_bytes};
use mandate_token::keys::SigningKey;
use serde_json::{Value, json};

use crate::Conn;
use crate::cmd_io::{Fail, Res, usage};

/// The longest assertion this command signs, in seconds (the server accepts up to 600).
const MAX_LIFETIME_SECS: u32 = 600;

#[derive(Subcommand)]
pub enum AgentKeyCmd {
    /// Make an Ed25519 key pair: the private key to a new file (mode 0600), the public
    /// JWK to standard output (register it with `mandate agent credential add --type
    /// public-key --jwk @FILE`)
    Generate {
        /// Where to write the private key (PKCS#8 PEM); an existing file is never replaced
        #[arg(long, default_value = "agent-key.pem")]
        out: PathBuf,
    },
    /// Sign a client assertion (RFC 7523) for the token endpoint with a key from
    /// `generate`, and print it: use it as `client_assertion` in one token request
    Assertion {
        #[command(flatten)]
        conn: Conn,
        /// The private key file written by `mandate agent key generate`
        #[arg(long, default_value = "agent-key.pem")]
        key: PathBuf,
        /// The agent the assertion speaks for (agt_…): its `iss` and `sub`
        #[arg(long)]
        agent: String,
        /// The `aud`: the token endpoint (default: <--addr>/oauth/token)
        #[arg(long)]
        audience: Option<String>,
        /// Seconds until the assertion expires (1-600)
        #[arg(long, default_value_t = 60)]
        lifetime_secs: u32,
    },
}

pub fn agent_key(cmd: AgentKeyCmd) -> ExitCode {
    let r = match cmd {
        AgentKeyCmd::Generate { out } => generate(&out),
        AgentKeyCmd::Assertion {
            conn,
            key,
            agent,
            audience,
            lifetime_secs,
        } => {
            let aud = audience
                .unwrap_or_else(|| format!("{}/oauth/token", conn.addr.trim_end_matches('/')));
            assertion(&key, &agent, &aud, lifetime_secs)
        }
    };
    match r {
        Ok(text) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Err(Fail(code, msg)) => {
            eprintln!("error: {msg}");
            ExitCode::from(code)
        }
    }
}

/// The public JWK of `key`, with its thumbprint as `kid`.
fn public_jwk(key: &SigningKey) -> Value {
    json!({"kty": "OKP", "crv": "Ed25519", "x": URL_SAFE_NO_PAD.encode(key.public_bytes()),
           "kid": key.kid(), "alg": "EdDSA", "use": "sig"})
}

fn generate(out: &Path) -> Res<String> {
    let key = SigningKey::generate(&OsRandom).map_err(|e| Fail(1, e.to_string()))?;
    let pem = key.to_pkcs8_pem().map_err(|e| Fail(1, e.to_string()))?;
    let mut file = {
        use std::os::unix::fs::OpenOptionsExt as _;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(out)
            .map_err(|e| usage(format!("cannot create {}: {e}", out.display())))?
    };
    file.write_all(pem.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| Fail(1, format!("cannot write {}: {e}", out.display())))?;
    Ok(public_jwk(&key).to_string())
}

fn assertion(key_file: &Path, agent: &str, aud: &str, lifetime_secs: u32) -> Res<String> {
    if !(1..=MAX_LIFETIME_SECS).contains(&lifetime_secs) {
        return Err(usage(format!(
            "--lifetime-secs must be 1-{MAX_LIFETIME_SECS}"
        )));
    }
    let pem = std::fs::read_to_string(key_file)
        .map_err(|e| usage(format!("cannot read {}: {e}", key_file.display())))?;
    let not_a_key = || {
        usage(format!(
            "{} is not an Ed25519 PKCS#8 PEM key",
            key_file.display()
        ))
    };
    let signer = ed25519_dalek::SigningKey::from_pkcs8_pem(&pem).map_err(|_| not_a_key())?;
    let kid = SigningKey::from_pkcs8_pem(&pem).map_err(|_| not_a_key())?;
    let now = SystemClock.now().secs();
    let jti: [u8; 16] = random_bytes(&OsRandom).map_err(|e| Fail(1, e.to_string()))?;
    let header = json!({"alg": "EdDSA", "typ": "JWT", "kid": kid.kid()});
    let claims = json!({"iss": agent, "sub": agent, "aud": aud, "iat": now,
                        "exp": now + i64::from(lifetime_secs),
                        "jti": URL_SAFE_NO_PAD.encode(jti)});
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let sig = signer.sign(signing_input.as_bytes());
    Ok(format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(sig.to_bytes())
    ))
}
