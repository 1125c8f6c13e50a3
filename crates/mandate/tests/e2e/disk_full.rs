//! The disk fills up under load (issue 25, "proof under fire"): `mandate serve` with its
//! data dir on a small tmpfs of its own, decisions and token requests from several
//! clients, and a filler file written until the filesystem has no byte left. While it is
//! full a decision is answered 503 (never an allow without its record, never another
//! 5xx, never a crash); once the filler is deleted the same process answers 200 again;
//! every decision that was answered 200 is in the log afterwards, and the exported log
//! verifies.
//!
//! It mounts a filesystem, so it needs root (CI and the developers' machines run as
//! root); where the mount is refused the test fails saying so, it does not skip.

use std::collections::HashSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::decide::{crm_setup, read_contact};
use crate::harness::{BIN, Server, cli};

/// The tmpfs: room for the database and its write-ahead log, small enough to fill in a
/// moment.
const SIZE: &str = "24m";

/// A tmpfs mounted at a fresh directory, unmounted (lazily, if something still holds
/// it) when dropped, whatever the test's outcome.
struct Mount {
    dir: tempfile::TempDir,
}

impl Mount {
    fn new() -> Mount {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={SIZE},mode=0700")])
            .arg("mandate-disk-full")
            .arg(dir.path())
            .output()
            .unwrap_or_else(|e| panic!("cannot run mount (this test needs root): {e}"));
        assert!(
            out.status.success(),
            "cannot mount a tmpfs at {} (this test needs root and mount): {}",
            dir.path().display(),
            String::from_utf8_lossy(&out.stderr)
        );
        Mount { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(self.dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount")
                .arg("-l")
                .arg(self.dir.path())
                .status();
        }
    }
}

/// Writes zeros to `path` until the filesystem refuses (ENOSPC); returns the bytes
/// written.
fn fill(path: &Path) -> u64 {
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    let mut written = 0u64;
    loop {
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(n) => written += n as u64,
            Err(e) if e.raw_os_error() == Some(28) => break,
            Err(e) => panic!("filling {}: {e}", path.display()),
        }
    }
    // Whatever is left (less than a chunk) goes too.
    let small = [0u8; 512];
    while f.write(&small).is_ok_and(|n| n > 0) {}
    let _ = f.sync_all();
    written
}

/// What the clients saw: every status, and the decision id of each 200.
#[derive(Default)]
struct Seen {
    decisions: Vec<(u16, Option<String>)>,
    tokens: Vec<u16>,
    /// The problem `code` (decisions) or OAuth `error` (tokens) of every 503.
    refusals: Vec<String>,
}

#[tokio::test]
async fn a_full_disk_refuses_decisions_loses_nothing_and_recovers() {
    // Dropped last: the server (declared after it) is stopped before the unmount.
    let mount = Mount::new();
    let dir: PathBuf = mount.path().join("data");
    let outside = tempfile::tempdir().unwrap();
    let mut s = Server::start(&dir, &[], &[]);
    let admin = s.token.clone().unwrap();
    let (agent, token) = crm_setup(&s, &admin).await;
    let secret = s.add_secret(&admin, &agent).await;

    let seen = Arc::new(Mutex::new(Seen::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for i in 0..6 {
        let http = s.http.clone();
        let url = s.url("/v1/authorize");
        let token = token.clone();
        let (seen, stop) = (Arc::clone(&seen), Arc::clone(&stop));
        tasks.push(tokio::spawn(async move {
            let team = if i % 2 == 0 { "sales" } else { "support" };
            while !stop.load(Ordering::Relaxed) {
                let res = http
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&read_contact(team, "internal"))
                    .send()
                    .await
                    .expect("the server answers every decision");
                let status = res.status().as_u16();
                let v: Value = res.json().await.unwrap_or(Value::Null);
                let id = v["decision_id"].as_str().map(str::to_owned);
                let mut seen = seen.lock().unwrap();
                if status == 503 {
                    seen.refusals
                        .push(v["code"].as_str().unwrap_or("").to_owned());
                }
                seen.decisions.push((status, id));
            }
        }));
    }
    for _ in 0..2 {
        let http = s.http.clone();
        let url = s.url("/oauth/token");
        let (agent, secret) = (agent.clone(), secret.clone());
        let (seen, stop) = (Arc::clone(&seen), Arc::clone(&stop));
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let res = http
                    .post(&url)
                    .basic_auth(&agent, Some(&secret))
                    .form(&[("grant_type", "client_credentials")])
                    .send()
                    .await
                    .expect("the server answers every token request");
                let status = res.status().as_u16();
                let v: Value = res.json().await.unwrap_or(Value::Null);
                {
                    let mut seen = seen.lock().unwrap();
                    if status == 503 {
                        seen.refusals
                            .push(v["error"].as_str().unwrap_or("").to_owned());
                    }
                    seen.tokens.push(status);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }));
    }
    let count = |status: u16| {
        seen.lock()
            .unwrap()
            .decisions
            .iter()
            .filter(|(s, _)| *s == status)
            .count()
    };
    let wait_for = |what: &str, status: u16, at_least: usize, within: Duration| {
        let what = what.to_owned();
        let start = Instant::now();
        let count = &count;
        async move {
            let before = count(status);
            while count(status) < before + at_least {
                assert!(
                    start.elapsed() < within,
                    "{what}: fewer than {at_least} answers {status} in {within:?}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };

    // Under load, then the disk fills.
    wait_for("before", 200, 200, Duration::from_secs(60)).await;
    let filler = mount.path().join("filler");
    let f = filler.clone();
    let filled = tokio::task::spawn_blocking(move || fill(&f)).await.unwrap();
    assert!(filled > 0, "the filler wrote nothing");
    wait_for("disk full", 503, 20, Duration::from_secs(60)).await;
    // The token endpoint, which records what it issues, is refused too.
    let start = Instant::now();
    while !seen.lock().unwrap().tokens.contains(&503) {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no token request refused while the disk is full"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Space returns: the same process answers 200 again.
    std::fs::remove_file(&filler).unwrap();
    wait_for("after", 200, 50, Duration::from_secs(60)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }

    let seen = std::mem::take(&mut *seen.lock().unwrap());
    let odd: Vec<u16> = seen
        .decisions
        .iter()
        .map(|(s, _)| *s)
        .filter(|s| ![200, 503].contains(s))
        .collect();
    assert!(odd.is_empty(), "decisions answered {odd:?}");
    let odd: Vec<&u16> = seen
        .tokens
        .iter()
        .filter(|s| ![200, 503].contains(*s))
        .collect();
    assert!(odd.is_empty(), "token requests answered {odd:?}");
    eprintln!(
        "filler {filled} bytes; decisions: {} answered 200, {} answered 503; token requests: {} 200, {} 503",
        seen.decisions.iter().filter(|(s, _)| *s == 200).count(),
        seen.decisions.iter().filter(|(s, _)| *s == 503).count(),
        seen.tokens.iter().filter(|s| **s == 200).count(),
        seen.tokens.iter().filter(|s| **s == 503).count(),
    );
    let odd: Vec<&String> = seen
        .refusals
        .iter()
        .filter(|c| !["audit_unavailable", "temporarily_unavailable"].contains(&c.as_str()))
        .collect();
    assert!(odd.is_empty(), "503s with the codes {odd:?}");
    let answered: Vec<String> = seen
        .decisions
        .iter()
        .filter(|(s, _)| *s == 200)
        .map(|(_, id)| id.clone().expect("a 200 decision names its record"))
        .collect();

    // Nothing answered is lost, and the log verifies.
    let export = outside.path().join("after-full.jsonl");
    let (code, _, err) = cli(
        &s.addr,
        &admin,
        &["audit", "export", "--out", export.to_str().unwrap()],
    );
    assert_eq!(code, 0, "{err}");
    let logged: HashSet<String> = std::fs::read_to_string(&export)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| {
            let e = v.get("event")?;
            Some(format!("{}:{}", e["node"].as_str()?, e["seq"]))
        })
        .collect();
    let missing: Vec<&String> = answered.iter().filter(|id| !logged.contains(*id)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} answered decisions missing from the log, e.g. {:?}",
        missing.len(),
        answered.len(),
        missing.first()
    );
    let (_, cp) = s
        .admin(
            &admin,
            reqwest::Method::GET,
            "/v1/audit/checkpoints/latest",
            None,
        )
        .await;
    let out = Command::new(BIN)
        .args(["audit", "verify", export.to_str().unwrap(), "--public-key"])
        .arg(cp["public_key"].as_str().unwrap())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = s.stderr_text();
    assert!(!stderr.contains("panicked"), "{stderr}");
    let status = s.stop();
    assert!(status.success(), "exit {status}: {}", s.stderr_text());
    drop(s);
    drop(mount);
}
