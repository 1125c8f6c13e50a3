//! What the third-party client tests share (`interop.rs`, `mcp.rs`, `node_clients.rs`,
//! `upstreams.rs`): pinned packages installed once under `<workspace>/target` behind a
//! lock and a stamp, the commands that run them with nothing inherited that could
//! redirect them, child processes killed when dropped and given a deadline, and an MCP
//! upstream that prints where it listens.

use std::fs::{self, File};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::pump;

/// `tests/interop`: the client scripts and their pins.
pub(crate) fn interop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("interop")
}

/// `<workspace>/target`, where the installs live.
fn target_dir() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("..");
    root.canonicalize().unwrap_or(root).join("target")
}

/// FNV-1a, 64 bits: a stable fingerprint with no extra crate.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// An I/O error as `{what} {path}: {error}`.
pub(crate) fn io_err(what: &str, p: &Path) -> impl FnOnce(std::io::Error) -> String {
    let what = format!("{what} {}", p.display());
    move |e| format!("{what}: {e}")
}

pub(crate) fn show(out: &Output) -> String {
    format!(
        "status: {}\n--- stdout\n{}--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A command with the Python environment the venv needs and nothing inherited that
/// could redirect it.
pub(crate) fn python_cmd(program: &Path) -> Command {
    let mut cmd = Command::new(program);
    cmd.stdin(Stdio::null())
        .env_remove("PYTHONPATH")
        .env_remove("PYTHONHOME")
        .env("PYTHONUNBUFFERED", "1")
        .env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
        .env("PIP_NO_INPUT", "1");
    cmd
}

/// A command run in `dir` with nothing inherited that could redirect Node or npm to
/// other code.
pub(crate) fn node_cmd(program: &str, dir: &Path) -> Command {
    let mut cmd = Command::new(program);
    cmd.current_dir(dir)
        .stdin(Stdio::null())
        .env_remove("NODE_OPTIONS")
        .env_remove("NODE_PATH")
        .env("NO_UPDATE_NOTIFIER", "1")
        .env("npm_config_update_notifier", "false");
    cmd
}

/// Runs `cmd` to the end; `Err` (with its output) unless it exits 0. `needs` says what
/// the machine lacks when it cannot be started.
pub(crate) fn run(cmd: &mut Command, what: &str, needs: &str) -> Result<Output, String> {
    let out = cmd
        .output()
        .map_err(|e| format!("{what}: cannot run {cmd:?}: {e} ({needs})"))?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(format!("{what} failed:\n{}", show(&out)))
    }
}

/// `<workspace>/target/{name}`, held under an exclusive lock on `target/{name}.lock`
/// until dropped.
pub(crate) struct Installed {
    pub(crate) dir: PathBuf,
    _lock: File,
}

/// `<workspace>/target/{name}`, (re)built by `build` unless its stamp says it was built
/// from this very `fingerprint` and `ready` finds it whole. The exclusive lock beside it
/// serialises test processes that race to build it; the stamp is written last, so a
/// build that died half-way is redone. `build` starts from no directory at all.
pub(crate) fn install_locked(
    name: &str,
    fingerprint: &[u8],
    ready: impl FnOnce(&Path) -> bool,
    build: impl FnOnce(&Path) -> Result<(), String>,
) -> Result<Installed, String> {
    let target = target_dir();
    fs::create_dir_all(&target).map_err(io_err("creating", &target))?;
    let dir = target.join(name);
    let stamp_file = dir.join(".mandate-stamp");
    let stamp = format!("{:016x}\n", fnv1a(fingerprint));

    let lock_path = target.join(format!("{name}.lock"));
    let lock = File::create(&lock_path).map_err(io_err("creating", &lock_path))?;
    lock.lock().map_err(io_err("locking", &lock_path))?;
    if fs::read_to_string(&stamp_file).ok().as_deref() != Some(stamp.as_str()) || !ready(&dir) {
        if dir.exists() {
            fs::remove_dir_all(&dir).map_err(io_err("removing", &dir))?;
        }
        build(&dir)?;
        fs::write(&stamp_file, &stamp).map_err(io_err("writing", &stamp_file))?;
    }
    Ok(Installed { dir, _lock: lock })
}

/// The python of the venv `<workspace>/target/{name}`, built with the pins of
/// `tests/interop/{requirements}`, rebuilt when they or the base python change.
pub(crate) fn venv_python(name: &str, requirements: &str) -> Result<PathBuf, String> {
    const NEEDS: &str = "these tests need python3 with its venv module";
    let pins = interop_dir().join(requirements);
    let base = run(
        python_cmd(Path::new("python3")).arg("--version"),
        "python3 --version",
        NEEDS,
    )?;
    let mut fingerprint = fs::read(&pins).map_err(io_err("reading", &pins))?;
    fingerprint.extend_from_slice(&base.stdout);
    fingerprint.extend_from_slice(&base.stderr);
    let python = |venv: &Path| venv.join("bin").join("python");
    let venv = install_locked(
        name,
        &fingerprint,
        |venv| python(venv).exists(),
        |venv| {
            run(
                python_cmd(Path::new("python3"))
                    .args(["-m", "venv"])
                    .arg(venv),
                "python3 -m venv",
                NEEDS,
            )?;
            run(
                python_cmd(&python(venv))
                    .args(["-m", "pip", "install", "--quiet", "--no-cache-dir", "-r"])
                    .arg(&pins),
                &format!("pip install -r tests/interop/{requirements}"),
                NEEDS,
            )
            .map(drop)
        },
    )?;
    Ok(python(&venv.dir))
}

/// A child process killed and reaped when dropped, so a failed assertion leaves nothing
/// running.
pub(crate) struct Killed(pub(crate) Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Reads all of `r` on a thread.
fn read_all(r: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut s = String::new();
        let _ = BufReader::new(r).read_to_string(&mut s);
        s
    })
}

/// Runs `cmd` (`what`, for messages), killed and failing the test if it runs past
/// `deadline`; (status, stdout, stderr).
pub(crate) fn run_until(
    cmd: &mut Command,
    what: &str,
    deadline: Duration,
) -> (ExitStatus, String, String) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: cannot start {cmd:?}: {e}"));
    let out = read_all(child.stdout.take().unwrap());
    let err = read_all(child.stderr.take().unwrap());
    let mut child = Killed(child);
    let until = Instant::now() + deadline;
    let status = loop {
        if let Some(s) = child.0.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < until, "{what} ran past {deadline:?}");
        std::thread::sleep(Duration::from_millis(20));
    };
    (status, out.join().unwrap(), err.join().unwrap())
}

/// An MCP server upstream (the Python SDK's FastMCP or the TypeScript SDK's
/// `McpServer`), running until dropped. Its first line on stdout is
/// `{"url": …, "calls": …}`.
pub(crate) struct Upstream {
    _child: Killed,
    /// Its Streamable HTTP endpoint.
    pub(crate) url: String,
    /// Its `GET /calls`: what reached it.
    calls: String,
    pub(crate) stderr: Arc<Mutex<String>>,
}

impl Upstream {
    /// Starts `cmd` (`what`, for messages) and waits up to `wait` for where it listens.
    pub(crate) fn start(mut cmd: Command, what: &str, wait: Duration) -> Upstream {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {what}: {e}"));
        let stdout = child.stdout.take().unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        pump(child.stderr.take().unwrap(), Arc::clone(&stderr));
        let child = Killed(child);
        // The first line says where it listens; the rest (there is none) is drained.
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let line = rx.recv_timeout(wait).unwrap_or_else(|e| {
            panic!(
                "{what} did not say where it listens ({e}):\n{}",
                stderr.lock().unwrap()
            )
        });
        let v: Value = serde_json::from_str(&line).unwrap();
        Upstream {
            _child: child,
            url: v["url"].as_str().unwrap().to_owned(),
            calls: v["calls"].as_str().unwrap().to_owned(),
            stderr,
        }
    }

    /// Its own count of what reached it.
    pub(crate) async fn calls(&self) -> Value {
        let r = mandate_egress::default_builder()
            .build()
            .unwrap()
            .get(&self.calls)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{}", self.stderr.lock().unwrap());
        r.json().await.unwrap()
    }
}
