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
use mandate_core::clock::{Clock as _, SystemClock};
use mandate_core::random::{OsRandom, random_bytes};
use mandate_token::assertion;
use mandate_token::keys::SigningKey;

use crate::Conn;
use crate::cmd_io::{Fail, Res, exit, usage};

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
    exit(r.map(|text| println!("{text}")))
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
    Ok(key.public_jwk().to_string())
}

fn assertion(key_file: &Path, agent: &str, aud: &str, lifetime_secs: u32) -> Res<String> {
    // No longer than the server accepts.
    let max = assertion::MAX_LIFETIME_SECS;
    if !(1..=max).contains(&i64::from(lifetime_secs)) {
        return Err(usage(format!("--lifetime-secs must be 1-{max}")));
    }
    let pem = std::fs::read_to_string(key_file)
        .map_err(|e| usage(format!("cannot read {}: {e}", key_file.display())))?;
    let key = SigningKey::from_pkcs8_pem(&pem).map_err(|_| {
        usage(format!(
            "{} is not an Ed25519 PKCS#8 PEM key",
            key_file.display()
        ))
    })?;
    let jti: [u8; 16] = random_bytes(&OsRandom).map_err(|e| Fail(1, e.to_string()))?;
    let jti = URL_SAFE_NO_PAD.encode(jti);
    let claimed = assertion::Claimed {
        client_id: agent,
        audience: aud,
        iat: SystemClock.now().secs(),
        lifetime_secs: i64::from(lifetime_secs),
        jti: &jti,
    };
    assertion::sign(&key, &claimed).map_err(|e| Fail(1, e.to_string()))
}
