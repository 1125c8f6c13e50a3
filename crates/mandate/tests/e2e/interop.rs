//! Interoperability with third-party OAuth clients: Python `authlib` (client credentials
//! with `client_secret_basic`, `client_secret_post` and `private_key_jwt` signed
//! `Ed25519`; RFC 8693 token exchange for a mandate), `PyJWT`'s `PyJWKClient` verifying
//! the access tokens against the JWKS, and `joserfc` verifying them without a
//! `SecurityWarning` when Mandate signs under RFC 9864's `Ed25519` name. The checks live
//! in `tests/interop/oauth_clients.py`, `tests/interop/token_exchange.py` and
//! `tests/interop/joserfc_ed25519.py`; these tests give them a venv with the versions
//! pinned in `tests/interop/requirements.txt` and a running server. (The MCP Python SDK's
//! own OAuth providers are tested in `mcp.rs`, with its venv.)

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::harness::{Server, data_dir};

fn interop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("interop")
}

fn workspace_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("..");
    root.canonicalize().unwrap_or(root)
}

/// FNV-1a, 64 bits: a stable fingerprint with no extra crate.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn show(out: &Output) -> String {
    format!(
        "status: {}\n--- stdout\n{}--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs `cmd`; `Err` (with its output) unless it exits 0.
fn run(cmd: &mut Command, what: &str) -> Result<Output, String> {
    let out = cmd
        .stdin(Stdio::null())
        .env_remove("PYTHONPATH")
        .env_remove("PYTHONHOME")
        .env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
        .env("PIP_NO_INPUT", "1")
        .output()
        .map_err(|e| {
            format!("{what}: cannot run {cmd:?}: {e} (the interop test needs python3 with its venv module)")
        })?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(format!("{what} failed:\n{}", show(&out)))
    }
}

/// The venv's python, creating `<workspace>/target/interop-venv` unless its stamp says it
/// was built from this very requirements.txt and base python. An exclusive lock on a file
/// beside it serialises test processes that race to build it; the stamp is written last,
/// so a build that died half-way is redone.
fn venv_python() -> Result<PathBuf, String> {
    let io = |what: &str, p: &Path| {
        let what = format!("{what} {}", p.display());
        move |e: std::io::Error| format!("{what}: {e}")
    };
    let target = workspace_root().join("target");
    fs::create_dir_all(&target).map_err(io("creating", &target))?;
    let venv = target.join("interop-venv");
    let python = venv.join("bin").join("python");
    let stamp_file = venv.join(".mandate-stamp");
    let requirements = interop_dir().join("requirements.txt");

    let base = run(
        Command::new("python3").arg("--version"),
        "python3 --version",
    )?;
    let mut fingerprint = fs::read(&requirements).map_err(io("reading", &requirements))?;
    fingerprint.extend_from_slice(&base.stdout);
    fingerprint.extend_from_slice(&base.stderr);
    let stamp = format!("{:016x}\n", fnv1a(&fingerprint));

    let lock_path = target.join("interop-venv.lock");
    let lock = File::create(&lock_path).map_err(io("creating", &lock_path))?;
    lock.lock().map_err(io("locking", &lock_path))?;
    if fs::read_to_string(&stamp_file).ok().as_deref() == Some(stamp.as_str()) && python.exists() {
        return Ok(python);
    }
    if venv.exists() {
        fs::remove_dir_all(&venv).map_err(io("removing", &venv))?;
    }
    run(
        Command::new("python3").args(["-m", "venv"]).arg(&venv),
        "python3 -m venv",
    )?;
    run(
        Command::new(&python)
            .args(["-m", "pip", "install", "--quiet", "--no-cache-dir", "-r"])
            .arg(&requirements),
        "pip install -r tests/interop/requirements.txt",
    )?;
    fs::write(&stamp_file, &stamp).map_err(io("writing", &stamp_file))?;
    drop(lock);
    Ok(python)
}

/// Runs `tests/interop/{script}` against `server` (MANDATE_ADDR, MANDATE_TOKEN = its
/// bootstrap token); it must exit 0 and print `done`.
fn run_script(server: &Server, script: &str, done: &str) {
    let python = venv_python().unwrap_or_else(|e| panic!("{e}"));
    let token = server.token.clone().expect("a bootstrap token");
    let out = Command::new(&python)
        .arg(interop_dir().join(script))
        .env_remove("PYTHONPATH")
        .env_remove("PYTHONHOME")
        .env("PYTHONUNBUFFERED", "1")
        .env("MANDATE_ADDR", &server.addr)
        .env("MANDATE_TOKEN", &token)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let report = show(&out);
    println!("{report}");
    assert!(
        out.status.success(),
        "{script} failed:\n{report}\n--- server stderr\n{}",
        server.stderr_text()
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(done),
        "{report}"
    );
}

#[test]
fn authlib_and_pyjwt_interoperate() {
    let (_t, dir) = data_dir();
    let server = Server::start(&dir, &[], &[]);
    run_script(&server, "oauth_clients.py", "all interop checks passed");
}

/// Issue 19: with `token.signing_alg = "Ed25519"`, joserfc verifies Mandate's access
/// tokens with no `SecurityWarning`, and Ed25519-named client assertions it signs work.
#[test]
fn joserfc_verifies_ed25519_tokens_without_a_warning() {
    let (_t, dir) = data_dir();
    let server = Server::start(&dir, &[], &[("MANDATE_TOKEN_SIGNING_ALG", "Ed25519")]);
    run_script(&server, "joserfc_ed25519.py", "all joserfc checks passed");
}

#[test]
fn authlib_exchanges_a_user_token_for_a_mandate_token() {
    let (_t, dir) = data_dir();
    let server = Server::start(&dir, &[], &[("MANDATE_DEV_USER_TOKENS", "true")]);
    run_script(
        &server,
        "token_exchange.py",
        "all token exchange checks passed",
    );
}
