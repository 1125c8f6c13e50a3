//! `mandate backup` and `mandate restore` against real servers: a backup taken while
//! clients load `/v1/authorize` restores into a node that serves, whose log verifies
//! and holds every decision answered before the backup began, and whose checkpoints
//! never contradict the original's; restore refuses a non-empty dir, a changed, cut or
//! foreign file and leaves the target as it was; backup keeps an existing file.

use std::collections::{BTreeMap, HashSet};
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};

use reqwest::Method;
use serde_json::Value;

use crate::decide::{authorize, crm_setup, read_contact};
use crate::harness::{BIN, Server, cli, data_dir};

/// Runs `mandate ARGS…` (no server needed); returns (exit code, stdout, stderr).
fn mandate(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// Exports `s`'s log to `file` and checks it offline with the node's key.
async fn export_and_verify(s: &Server, admin: &str, file: &Path) -> Vec<Value> {
    let (code, _, err) = cli(
        &s.addr,
        admin,
        &["audit", "export", "--out", file.to_str().unwrap()],
    );
    assert_eq!(code, 0, "{err}");
    let (_, cp) = s
        .admin(admin, Method::GET, "/v1/audit/checkpoints/latest", None)
        .await;
    let (code, out, err) = mandate(&[
        "audit",
        "verify",
        file.to_str().unwrap(),
        "--public-key",
        cp["public_key"].as_str().unwrap(),
    ]);
    assert_eq!(code, 0, "verify: {out}{err}");
    std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// (origin, size) → root of every checkpoint in an export.
fn checkpoints(lines: &[Value]) -> BTreeMap<(String, u64), String> {
    lines
        .iter()
        .filter_map(|l| l["checkpoint"].as_str())
        .map(|text| {
            let mut it = text.lines();
            let origin = it.next().unwrap().to_owned();
            let size = it.next().unwrap().parse().unwrap();
            let root = it.next().unwrap().to_owned();
            ((origin, size), root)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_under_load_restores_into_a_node_that_serves_and_verifies() {
    let (t, dir) = data_dir();
    let mut a = Server::start(
        &dir,
        &[],
        &[("MANDATE_AUDIT_CHECKPOINT_EVERY_EVENTS", "50")],
    );
    let admin = a.token.clone().unwrap();
    let (agent, token) = crm_setup(&a, &admin).await;
    let received = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = Vec::new();
    for i in 0..4 {
        let (http, url, token) = (a.http.clone(), a.url("/v1/authorize"), token.clone());
        let (received, stop) = (Arc::clone(&received), Arc::clone(&stop));
        tasks.push(tokio::spawn(async move {
            let team = if i % 2 == 0 { "sales" } else { "support" };
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let res = http
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&read_contact(team, "internal"))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(res.status(), 200);
                let v: Value = res.json().await.unwrap();
                received
                    .lock()
                    .unwrap()
                    .push(v["decision_id"].as_str().unwrap().to_owned());
            }
        }));
    }
    while received.lock().unwrap().len() < 200 {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    // Every decision answered before the backup begins must be in it.
    let acked: Vec<String> = received.lock().unwrap().clone();
    let backup = t.path().join("node.mandate-backup");
    let (d, b) = (dir.clone(), backup.clone());
    let (code, out, err) = tokio::task::spawn_blocking(move || {
        mandate(&[
            "backup",
            "--data-dir",
            d.to_str().unwrap(),
            "--out",
            b.to_str().unwrap(),
        ])
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(mode(&backup), 0o600);
    // The original goes on past the backup: more events, more checkpoints.
    let at_backup = received.lock().unwrap().len();
    while received.lock().unwrap().len() < at_backup + 200 {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for task in tasks {
        task.await.unwrap();
    }
    let original = export_and_verify(&a, &admin, &t.path().join("original.jsonl")).await;
    a.stop();

    let restored_dir = t.path().join("restored");
    let (code, out, err) = mandate(&[
        "restore",
        backup.to_str().unwrap(),
        "--data-dir",
        restored_dir.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(mode(&restored_dir), 0o700);
    for f in ["mandate.db", "store.key", "audit-key.pem"] {
        assert_eq!(mode(&restored_dir.join(f)), 0o600, "{f}");
    }
    let b = Server::start(
        &restored_dir,
        &[],
        &[("MANDATE_AUDIT_CHECKPOINT_EVERY_EVENTS", "50")],
    );
    // It serves: the old admin token, a new client secret, a token, a decision.
    let secret = b.add_secret(&admin, &agent).await;
    let (st, tok) = b.token_basic(&agent, &secret, &[]).await;
    assert_eq!(st, 200, "{tok}");
    let new_token = tok["access_token"].as_str().unwrap();
    for _ in 0..60 {
        let (st, v) = authorize(&b, new_token, read_contact("sales", "internal")).await;
        assert_eq!(st, 200, "{v}");
    }
    let restored = export_and_verify(&b, &admin, &t.path().join("restored.jsonl")).await;
    let ids: HashSet<String> = restored
        .iter()
        .filter_map(|l| {
            let e = l.get("event")?;
            Some(format!("{}:{}", e["node"].as_str()?, e["seq"]))
        })
        .collect();
    let missing: Vec<&String> = acked.iter().filter(|id| !ids.contains(*id)).collect();
    assert!(
        missing.is_empty(),
        "{} acked decisions lost, e.g. {:?}",
        missing.len(),
        missing.first()
    );
    // The new epoch: an epoch event naming the old node, then the new name.
    let old_node = acked[0].split(':').next().unwrap().to_owned();
    let epoch = restored
        .iter()
        .filter_map(|l| l.get("event"))
        .find(|e| e["kind"] == "node.restored")
        .expect("an epoch event");
    assert_eq!(epoch["details"]["previous_node"], old_node.as_str());
    let new_node = epoch["node"].as_str().unwrap();
    assert_ne!(new_node, old_node);
    // INVARIANT (one origin, one log): no (origin, size) has two roots across the two.
    let (mine, theirs) = (checkpoints(&restored), checkpoints(&original));
    for (k, root) in &mine {
        if let Some(r) = theirs.get(k) {
            assert_eq!(r, root, "checkpoint {k:?} contradicts the original's");
        }
    }
    let origin = format!("mandate/{old_node}");
    let backup_size = epoch["seq"].as_u64().unwrap();
    assert!(
        mine.keys()
            .filter(|(o, _)| *o == origin)
            .all(|(_, s)| *s <= backup_size)
    );
    assert!(
        theirs.keys().any(|(o, s)| *o == origin && *s > backup_size),
        "the original signed nothing after the backup"
    );
    assert!(
        mine.keys()
            .any(|(o, _)| *o == format!("mandate/{new_node}"))
    );
}

#[tokio::test]
async fn restore_refuses_what_it_must_and_leaves_the_target_alone() {
    let (t, dir) = data_dir();
    let mut s = Server::start(&dir, &[], &[]);
    let admin = s.token.clone().unwrap();
    let (_, token) = crm_setup(&s, &admin).await;
    authorize(&s, &token, read_contact("sales", "internal")).await;
    s.stop();
    let backup = t.path().join("b.mandate-backup");
    let b = backup.to_str().unwrap();
    let d = dir.to_str().unwrap();
    assert_eq!(mandate(&["backup", "--data-dir", d, "--out", b]).0, 0);
    let good = std::fs::read(&backup).unwrap();
    // An existing --out is kept unless --force.
    let (code, _, err) = mandate(&["backup", "--data-dir", d, "--out", b]);
    assert_eq!(code, 2, "{err}");
    assert_eq!(std::fs::read(&backup).unwrap(), good);
    assert_eq!(
        mandate(&["backup", "--data-dir", d, "--out", b, "--force"]).0,
        0
    );
    let good = std::fs::read(&backup).unwrap();

    // A non-empty target: refused, untouched.
    let busy = t.path().join("busy");
    std::fs::create_dir(&busy).unwrap();
    std::fs::write(busy.join("keep"), "x").unwrap();
    let (code, _, err) = mandate(&["restore", b, "--data-dir", busy.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert_eq!(std::fs::read_dir(&busy).unwrap().count(), 1);

    // Changed bytes (in an agent's row, in the header), a cut file, a foreign file.
    let at = good.windows(9).position(|w| w == b"sales-bot").unwrap();
    let mut bad_files: Vec<(&str, Vec<u8>)> = Vec::new();
    let mut flipped = good.clone();
    flipped[at + 2] ^= 0x20;
    bad_files.push(("flipped content", flipped));
    let mut header = good.clone();
    header[16] ^= 0xff;
    bad_files.push(("flipped header", header));
    bad_files.push(("truncated", good[..good.len() * 2 / 3].to_vec()));
    bad_files.push(("foreign", b"SQLite format 3\0 but not really".to_vec()));
    let empty = t.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    for (what, bytes) in bad_files {
        let f = t.path().join("bad.mandate-backup");
        std::fs::write(&f, bytes).unwrap();
        let target = t.path().join("new");
        for target in [&target, &empty] {
            let (code, out, err) = mandate(&[
                "restore",
                f.to_str().unwrap(),
                "--data-dir",
                target.to_str().unwrap(),
            ]);
            assert_eq!(code, 1, "{what}: {out}{err}");
            assert!(
                err.contains("refused") || err.contains("restor"),
                "{what}: {err}"
            );
        }
        assert!(
            !target.exists(),
            "{what}: a refused restore made {}",
            target.display()
        );
        assert_eq!(std::fs::read_dir(&empty).unwrap().count(), 0, "{what}");
    }
    // No staging dir left behind.
    let names: Vec<String> = std::fs::read_dir(t.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.iter().any(|n| n.contains(".restore-")), "{names:?}");

    // Without the store key: restored, and the operator is told to put it back.
    let nokey = t.path().join("nokey.mandate-backup");
    assert_eq!(
        mandate(&[
            "backup",
            "--data-dir",
            d,
            "--out",
            nokey.to_str().unwrap(),
            "--without-store-key"
        ])
        .0,
        0
    );
    let key = std::fs::read(dir.join("store.key")).unwrap();
    let key = &key[..key.len().min(24)];
    assert!(
        good.windows(key.len()).any(|w| w == key),
        "the full backup holds the store key"
    );
    assert!(
        !std::fs::read(&nokey)
            .unwrap()
            .windows(key.len())
            .any(|w| w == key)
    );
    let (code, out, _) = mandate(&[
        "restore",
        nokey.to_str().unwrap(),
        "--data-dir",
        empty.to_str().unwrap(),
    ]);
    assert_eq!(code, 0);
    assert!(out.contains("holds no store key"), "{out}");
    assert!(!empty.join("store.key").exists());
    std::fs::copy(dir.join("store.key"), empty.join("store.key")).unwrap();
    std::fs::set_permissions(
        empty.join("store.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let s = Server::start(&empty, &[], &[]);
    let (st, _) = s.admin(&admin, Method::GET, "/v1/agents", None).await;
    assert_eq!(st, 200);
}

/// Restore reads only what a backup can be: a device (`/dev/zero`) or a file that is no
/// SQLite database (a huge sparse one) is refused before it is copied into the staging
/// dir. It was copied whole first — `/dev/zero` without end, until the disk was full.
/// The child runs under a 64 MiB file-size limit so the old behaviour fails the test
/// (killed by `SIGXFSZ`) instead of filling the disk.
#[test]
fn atk13_restore_refuses_a_device_or_a_non_backup_before_copying_it() {
    let t = tempfile::tempdir().unwrap();
    let sparse = t.path().join("huge.mandate-backup");
    std::fs::File::create(&sparse)
        .unwrap()
        .set_len(1 << 30)
        .unwrap();
    for (what, file) in [
        ("/dev/zero", Path::new("/dev/zero")),
        ("a 1 GiB sparse file", sparse.as_path()),
    ] {
        let target = t.path().join("new");
        let out = Command::new("sh")
            .arg("-c")
            .arg("ulimit -f 65536; exec \"$0\" restore \"$1\" --data-dir \"$2\"")
            .arg(BIN)
            .arg(file)
            .arg(&target)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{what}: {:?} {err}", out.status);
        assert!(err.contains("refused"), "{what}: {err}");
        assert!(!target.exists(), "{what}");
        let left: Vec<String> = std::fs::read_dir(t.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".restore-"))
            .collect();
        assert!(left.is_empty(), "{what}: {left:?}");
    }
}
