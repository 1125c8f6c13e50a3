//! Backup files (`mandate_store_sqlite::backup`): a copy taken while another connection
//! writes is one commit's state; `open` refuses a file with any changed byte of content,
//! a cut file and a file that is not a backup; `restore` leaves the backup's own tables
//! (and the key bytes in them) behind and renames the node.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use mandate_store::conformance::at;
use mandate_store::prelude::*;
use mandate_store::{AuditRow, CheckpointRow};
use mandate_store_sqlite::SqliteStore;
use mandate_store_sqlite::backup::{self, BackupFile};

const SECRET: &[u8] =
    b"-----BEGIN PRIVATE KEY-----\nTHE-STORE-KEY-BYTES-0123456789\n-----END PRIVATE KEY-----\n";

fn row(seq: u64) -> AuditRow {
    AuditRow {
        seq,
        time: at(1_000),
        kind: "decision".into(),
        agent: None,
        user: None,
        decision: None,
        body: format!("{{\"seq\":{seq},\"marker\":\"EVENT-BODY-{seq:06}\"}}"),
        leaf: [u8::try_from(seq % 251).unwrap(); 32],
    }
}

fn files() -> Vec<BackupFile> {
    vec![BackupFile {
        name: "store.key".into(),
        mode: 0o600,
        content: SECRET.to_vec(),
    }]
}

/// A store named `node-a` with `n` events, a checkpoint at each multiple of 10.
fn store_with(dir: &Path, n: u64) -> SqliteStore {
    let store = SqliteStore::open(&dir.join("mandate.db")).unwrap();
    store.node_name(&mut || "node-a".into()).unwrap();
    for seq in 0..n {
        let cp = (seq % 10 == 9).then(|| CheckpointRow {
            size: seq + 1,
            time: at(1_000),
            root: [7; 32],
            text: format!("checkpoint {}", seq + 1),
        });
        store.append_audit(&[row(seq)], cp.as_ref()).unwrap();
    }
    store
}

#[test]
fn a_backup_taken_while_the_server_writes_is_one_commits_state() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(store_with(dir.path(), 10));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (store, stop) = (Arc::clone(&store), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut seq = 10;
            while !stop.load(Ordering::Relaxed) && seq < 50_000 {
                store.append_audit(&[row(seq)], None).unwrap();
                seq += 1;
            }
            seq
        })
    };
    let mut taken = Vec::new();
    for i in 0..5 {
        let out = dir.path().join(format!("b{i}.mandate-backup"));
        let log = backup::write(
            &dir.path().join("mandate.db"),
            &out,
            "2026-01-01T00:00:00Z",
            &files(),
        )
        .unwrap();
        taken.push((out, log.audit_len));
    }
    stop.store(true, Ordering::Relaxed);
    let written = writer.join().unwrap();
    for (out, len) in taken {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            std::fs::metadata(&out).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let c = backup::open(&out).unwrap();
        // A prefix of the log, without gaps, ending where some commit ended.
        assert!(len >= 10 && len <= written, "{len} of {written}");
        assert_eq!(c.log.audit_len, len);
        assert_eq!(c.log.node.as_deref(), Some("node-a"));
        assert_eq!(c.manifest.get("audit_len").unwrap(), &len.to_string());
        assert_eq!(c.files, files());
    }
}

fn one_backup() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    drop(store_with(dir.path(), 25));
    let out = dir.path().join("b.mandate-backup");
    backup::write(
        &dir.path().join("mandate.db"),
        &out,
        "2026-01-01T00:00:00Z",
        &files(),
    )
    .unwrap();
    (dir, out)
}

fn refused(path: &Path) -> String {
    backup::open(path).unwrap_err().to_string()
}

#[test]
fn a_changed_byte_anywhere_in_the_content_is_refused() {
    let (dir, out) = one_backup();
    let good = std::fs::read(&out).unwrap();
    backup::open(&out).unwrap();
    // Bytes inside an event body, inside the key file, inside the manifest.
    for needle in [
        &b"EVENT-BODY-000017"[..],
        b"STORE-KEY-BYTES",
        b"mandate-backup-1",
        b"node-a",
    ] {
        let at = good
            .windows(needle.len())
            .position(|w| w == needle)
            .unwrap_or_else(|| panic!("{:?} not in the file", String::from_utf8_lossy(needle)));
        let mut bad = good.clone();
        bad[at + needle.len() - 1] ^= 0x01;
        let path = dir.path().join("flipped");
        std::fs::write(&path, &bad).unwrap();
        let e = refused(&path);
        assert!(
            e.contains("digest")
                || e.contains("integrity")
                || e.contains("format")
                || e.contains("manifest"),
            "{e}"
        );
    }
    // The header and a b-tree page.
    for at in [20usize, 4096 + 3] {
        let mut bad = good.clone();
        bad[at] ^= 0xff;
        let path = dir.path().join("flipped");
        std::fs::write(&path, &bad).unwrap();
        assert!(backup::open(&path).is_err(), "byte {at}");
    }
}

#[test]
fn a_cut_file_and_files_that_are_not_backups_are_refused() {
    let (dir, out) = one_backup();
    let good = std::fs::read(&out).unwrap();
    for len in [0, 100, 4096, good.len() / 2, good.len() - 1] {
        let path = dir.path().join("cut");
        std::fs::write(&path, &good[..len]).unwrap();
        assert!(backup::open(&path).is_err(), "cut at {len}");
    }
    let path = dir.path().join("noise");
    std::fs::write(&path, vec![0x5a; 8192]).unwrap();
    assert!(backup::open(&path).is_err());
    // A database, but not a backup: the live store itself.
    assert!(refused(&dir.path().join("mandate.db")).contains("not a Mandate backup"));
}

#[test]
fn a_restored_database_keeps_the_log_drops_the_backup_tables_and_takes_the_new_name() {
    let (dir, out) = one_backup();
    let db = dir.path().join("restored.db");
    backup::restore(&out, &db, "node-a.r0011223344").unwrap();
    let bytes = std::fs::read(&db).unwrap();
    assert!(
        !bytes.windows(15).any(|w| w == b"STORE-KEY-BYTES"),
        "the key file's bytes stay behind in the restored database"
    );
    let store = SqliteStore::open(&db).unwrap();
    assert_eq!(store.journal_mode().unwrap(), "wal");
    assert_eq!(
        store.node_name(&mut || "fresh".into()).unwrap(),
        "node-a.r0011223344"
    );
    assert_eq!(store.audit_len().unwrap(), 25);
    assert_eq!(store.checkpoints().unwrap().last().unwrap().size, 20);
    // Into an existing file: refused, nothing overwritten.
    assert!(backup::restore(&out, &db, "x").is_err());
}

/// Copies backup `out` to `dir/name`, runs `sql` on the copy, and gives why it is
/// refused. The digest is not recomputed: the schema check comes first, and a forger
/// could recompute it anyway (it proves no origin).
fn altered(dir: &Path, out: &Path, name: &str, sql: &str) -> String {
    let path = dir.join(name);
    std::fs::copy(out, &path).unwrap();
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch(sql)
        .unwrap();
    refused(&path)
}

/// INVARIANT (a restore brings data, not code): a trigger or view, a table or index
/// Mandate does not have, or one missing, refuses the file before anything is copied.
#[test]
fn a_backup_with_a_trigger_or_a_foreign_schema_is_refused() {
    let (dir, out) = one_backup();
    backup::open(&out).unwrap();
    for (name, sql, want) in [
        (
            "trigger",
            "CREATE TRIGGER t AFTER UPDATE ON meta BEGIN DELETE FROM audit_events; END;",
            "trigger `t`",
        ),
        ("view", "CREATE VIEW v AS SELECT 1;", "view `v`"),
        (
            "table",
            "CREATE TABLE extra (x);",
            "table `extra` that a Mandate database",
        ),
        (
            "index",
            "CREATE INDEX extra_index ON meta (value);",
            "index `extra_index`",
        ),
        (
            "dropped",
            "DROP INDEX credentials_agent;",
            "lacks the index `credentials_agent`",
        ),
        (
            "newer",
            "PRAGMA user_version = 999;",
            "schema version 999 is not one this binary knows",
        ),
    ] {
        let e = altered(dir.path(), &out, name, sql);
        assert!(e.contains(want), "{name}: {e}");
    }
    // Restore refuses it too, and writes nothing.
    let bad = dir.path().join("trigger");
    let target = dir.path().join("restored.db");
    let e = backup::restore(&bad, &target, "node-b")
        .unwrap_err()
        .to_string();
    assert!(e.contains("trigger `t`"), "{e}");
    assert!(!target.exists(), "nothing written");
}
