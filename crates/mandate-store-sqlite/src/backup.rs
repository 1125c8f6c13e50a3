//! Backup files of a node's database: a consistent copy of a live SQLite store, taken
//! through SQLite's online backup API by a second connection while `mandate serve`
//! writes, with a manifest and the data dir's key files beside it, and the checks and
//! the copy that restore it.
//!
//! # Why this is consistent
//!
//! The database is in WAL mode, so a reader never waits for the writer and never sees
//! part of a transaction. [`write`] copies every page in one backup step (`-1` pages),
//! which SQLite runs inside one read transaction of the source: the copy is the database
//! as of one commit, whatever the server commits meanwhile (a multi-step backup would
//! restart on every commit of another connection). Only reads touch the source, so
//! `INVARIANT (one server per data dir)` (the server is the only writer) still holds.
//!
//! # The file
//!
//! A backup file is itself a SQLite database (rollback journal, no `-wal` beside it):
//! the snapshot's tables, plus
//!
//! - `mandate_backup_manifest(key, value)`: `format` ([`FORMAT`]), `created_at`, `node`,
//!   `audit_key`, `audit_len`, `checkpoint` (the latest signed checkpoint's text, or
//!   empty), `files`, `sqlite_version`, and `digest`;
//! - `mandate_backup_files(name, mode, content)`: the data dir's key files.
//!
//! `digest` is SHA-256 over the schema and every row of every table (the manifest but
//! its `digest` row included), in the file's own order: with `PRAGMA integrity_check`
//! (the b-trees) it makes any changed byte of content, or a cut, a refused file.
//! The store key is among the files unless left out: the file is written 0600.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use mandate_store::StoreError;
use mandate_store::repo::Result;
use rusqlite::backup::{Backup, StepResult};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};
use sha2::{Digest as _, Sha256};

use crate::Sql as _;

/// The `format` of the backup files this version writes and reads.
pub const FORMAT: &str = "mandate-backup-1";

/// The manifest's table.
const MANIFEST: &str = "mandate_backup_manifest";
/// The files' table.
const FILES: &str = "mandate_backup_files";

/// A file of the data dir kept in a backup.
#[derive(Clone, PartialEq, Eq)]
pub struct BackupFile {
    /// Its name in the data dir (no directory part).
    pub name: String,
    /// Its permission bits.
    pub mode: u32,
    /// Its bytes.
    pub content: Vec<u8>,
}

impl std::fmt::Debug for BackupFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Key files: never their content.
        write!(f, "BackupFile({}, {:o})", self.name, self.mode)
    }
}

/// What the snapshot's own tables say about the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFacts {
    /// The node name (`meta.node`), if the log has one yet.
    pub node: Option<String>,
    /// The audit public key (`meta.audit_key`), base64.
    pub audit_key: Option<String>,
    /// Events in the log.
    pub audit_len: u64,
    /// Every event's leaf hash, in seq order (empty from [`write`]).
    pub leaves: Vec<[u8; 32]>,
    /// The latest checkpoint: its size and signed text.
    pub checkpoint: Option<(u64, String)>,
}

/// A backup file that passed [`open`]'s checks.
#[derive(Debug)]
pub struct Contents {
    /// The manifest, key to value.
    pub manifest: BTreeMap<String, String>,
    /// The key files.
    pub files: Vec<BackupFile>,
    /// The audit log as the snapshot holds it.
    pub log: LogFacts,
}

fn refused(why: impl Into<String>) -> StoreError {
    StoreError::Corrupt(why.into())
}

/// Copies the live database `db` into a new backup file `out` (which must not exist;
/// created 0600), with `files` and a manifest made at `created_at`; returns what the copy
/// holds of the audit log. On error `out` may be left part-written: the caller writes
/// to a temporary name and renames.
pub fn write(db: &Path, out: &Path, created_at: &str, files: &[BackupFile]) -> Result<LogFacts> {
    if !db.is_file() {
        return Err(StoreError::Io {
            context: format!("open {}", db.display()),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        });
    }
    // Read-write without create: a read-only connection cannot recover a WAL whose
    // server died; it still only reads.
    let src = Connection::open_with_flags(
        db,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .sql()?;
    src.busy_timeout(Duration::from_secs(10)).sql()?;
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(out)
            .map_err(|source| StoreError::Io {
                context: format!("create {}", out.display()),
                source,
            })?;
    }
    let mut dst = Connection::open(out).sql()?;
    copy_all(&src, &mut dst)?;
    drop(src);
    dst.pragma_update(None, "journal_mode", "DELETE").sql()?;
    dst.pragma_update(None, "synchronous", "FULL").sql()?;
    let log = log_facts(&dst, false)?;
    let version: String = dst
        .query_row("SELECT sqlite_version()", [], |r| r.get(0))
        .sql()?;
    let names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
    let manifest: [(&str, String); 8] = [
        ("format", FORMAT.to_owned()),
        ("created_at", created_at.to_owned()),
        ("node", log.node.clone().unwrap_or_default()),
        ("audit_key", log.audit_key.clone().unwrap_or_default()),
        ("audit_len", log.audit_len.to_string()),
        (
            "checkpoint",
            log.checkpoint
                .as_ref()
                .map(|c| c.1.clone())
                .unwrap_or_default(),
        ),
        ("files", names.join(",")),
        ("sqlite_version", version),
    ];
    let tx = dst.transaction().sql()?;
    tx.execute_batch(&format!(
        "CREATE TABLE {MANIFEST} (key TEXT PRIMARY KEY, value TEXT NOT NULL);
         CREATE TABLE {FILES} (name TEXT PRIMARY KEY, mode INTEGER NOT NULL, content BLOB NOT NULL);"
    ))
    .sql()?;
    for (k, v) in &manifest {
        tx.execute(
            &format!("INSERT INTO {MANIFEST} (key, value) VALUES (?1, ?2)"),
            [k, &v.as_str()],
        )
        .sql()?;
    }
    for f in files {
        tx.execute(
            &format!("INSERT INTO {FILES} (name, mode, content) VALUES (?1, ?2, ?3)"),
            rusqlite::params![f.name, f.mode, f.content],
        )
        .sql()?;
    }
    let digest = digest(&tx)?;
    tx.execute(
        &format!("INSERT INTO {MANIFEST} (key, value) VALUES ('digest', ?1)"),
        [&digest],
    )
    .sql()?;
    tx.commit().sql()?;
    dst.close().map_err(|(_, e)| crate::sqlite_error(e))?;
    let f = std::fs::File::open(out).map_err(|source| StoreError::Io {
        context: format!("open {}", out.display()),
        source,
    })?;
    f.sync_all().map_err(|source| StoreError::Io {
        context: format!("sync {}", out.display()),
        source,
    })?;
    Ok(log)
}

/// Every page of `src` into `dst` in one step: one read transaction of the source, so
/// one commit's state (see the module documentation). Waits out a busy source.
fn copy_all(src: &Connection, dst: &mut Connection) -> Result<()> {
    let backup = Backup::new(src, dst).sql()?;
    for _ in 0..200 {
        match backup.step(-1).sql()? {
            StepResult::Done => return Ok(()),
            StepResult::More | StepResult::Busy | StepResult::Locked => {
                std::thread::sleep(Duration::from_millis(50));
            }
            // `StepResult` is non-exhaustive.
            _ => return Err(refused("the backup step returned an unknown state")),
        }
    }
    Err(refused("the database stayed busy; no backup was taken"))
}

/// The snapshot's audit facts; `leaves` only when `with_leaves` (a restore checks them;
/// a backup need not hold 32 bytes per event in memory).
fn log_facts(c: &Connection, with_leaves: bool) -> Result<LogFacts> {
    let meta = |key: &str| -> Result<Option<String>> {
        match c.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0)) {
            Ok(v) => Ok(Some(v)),
            Err(rusqlite::Error::QueryReturnedNoRows) => Ok(None),
            Err(e) => Err(crate::sqlite_error(e)),
        }
    };
    let (count, end): (i64, i64) = c
        .query_row(
            "SELECT COUNT(*), COALESCE(MAX(seq) + 1, 0) FROM audit_events",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .sql()?;
    if count != end {
        return Err(refused("the audit log has gaps"));
    }
    let audit_len = u64::try_from(count).map_err(|_| refused("negative audit length"))?;
    let mut leaves = Vec::new();
    if with_leaves {
        let mut stmt = c
            .prepare("SELECT seq, leaf FROM audit_events ORDER BY seq")
            .sql()?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?)))
            .sql()?;
        for (i, row) in rows.enumerate() {
            let (seq, leaf) = row.sql()?;
            if usize::try_from(seq).ok() != Some(i) {
                return Err(refused(format!("audit event {i} is missing")));
            }
            leaves.push(
                <[u8; 32]>::try_from(leaf.as_slice())
                    .map_err(|_| refused(format!("audit event {seq}'s leaf is not 32 bytes")))?,
            );
        }
    }
    let checkpoint = match c.query_row(
        "SELECT size, text FROM audit_checkpoints ORDER BY size DESC LIMIT 1",
        [],
        |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)),
    ) {
        Ok((size, text)) => Some((
            u64::try_from(size).map_err(|_| refused("negative checkpoint size"))?,
            text,
        )),
        Err(rusqlite::Error::QueryReturnedNoRows) => None,
        Err(e) => return Err(crate::sqlite_error(e)),
    };
    Ok(LogFacts {
        node: meta("node")?,
        audit_key: meta("audit_key")?,
        audit_len,
        leaves,
        checkpoint,
    })
}

/// SHA-256 over the schema and every row of every table, each value tagged with its
/// type and length; the manifest's `digest` row is left out (it holds the result).
fn digest(c: &Connection) -> Result<String> {
    let mut h = Sha256::new();
    let mut tables = Vec::new();
    {
        let mut stmt = c
            .prepare("SELECT type, name, tbl_name, sql FROM sqlite_schema ORDER BY type, name")
            .sql()?;
        let mut rows = stmt.query([]).sql()?;
        while let Some(r) = rows.next().sql()? {
            for i in 0..4 {
                hash_value(&mut h, r.get_ref(i).sql()?);
            }
            if r.get_ref(0).sql()?.as_str().ok() == Some("table") {
                tables.push(r.get::<_, String>(1).sql()?);
            }
        }
    }
    for t in tables {
        h.update(b"T");
        h.update(t.as_bytes());
        let quoted = t.replace('"', "\"\"");
        let sql = if t == MANIFEST {
            format!("SELECT * FROM \"{quoted}\" WHERE key <> 'digest' ORDER BY key")
        } else {
            format!("SELECT * FROM \"{quoted}\"")
        };
        let mut stmt = c.prepare(&sql).sql()?;
        let n = stmt.column_count();
        let mut rows = stmt.query([]).sql()?;
        while let Some(r) = rows.next().sql()? {
            h.update(b"R");
            for i in 0..n {
                hash_value(&mut h, r.get_ref(i).sql()?);
            }
        }
    }
    Ok(h.finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>())
}

fn hash_value(h: &mut Sha256, v: ValueRef<'_>) {
    let (tag, bytes): (u8, Vec<u8>) = match v {
        ValueRef::Null => (b'n', Vec::new()),
        ValueRef::Integer(i) => (b'i', i.to_be_bytes().to_vec()),
        ValueRef::Real(f) => (b'r', f.to_bits().to_be_bytes().to_vec()),
        ValueRef::Text(t) => (b't', t.to_vec()),
        ValueRef::Blob(b) => (b'b', b.to_vec()),
    };
    h.update([tag]);
    h.update((bytes.len() as u64).to_be_bytes());
    h.update(&bytes);
}

/// Opens backup file `path` read-only and checks it: a SQLite database that passes
/// `integrity_check`, of [`FORMAT`], whose digest matches its content and whose manifest
/// agrees with its log. The signatures are the caller's to check (`LogFacts`).
pub fn open(path: &Path) -> Result<Contents> {
    let c = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| refused(format!("not a backup file: {e}")))?;
    let check: Vec<String> = c
        .prepare("PRAGMA integrity_check")
        .and_then(|mut s| {
            s.query_map([], |r| r.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(|e| refused(format!("not an intact SQLite file: {e}")))?;
    if check != ["ok"] {
        return Err(refused(format!(
            "the file fails SQLite's integrity check: {}",
            check.join("; ")
        )));
    }
    let manifest: BTreeMap<String, String> = c
        .prepare(&format!("SELECT key, value FROM {MANIFEST}"))
        .and_then(|mut s| {
            s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<_>>()
        })
        .map_err(|e| refused(format!("not a Mandate backup (no manifest): {e}")))?;
    let get = |k: &str| manifest.get(k).map(String::as_str).unwrap_or_default();
    if get("format") != FORMAT {
        return Err(refused(format!(
            "backup format `{}`, this version reads `{FORMAT}`",
            get("format")
        )));
    }
    check_schema(&c)?;
    if digest(&c)? != get("digest") {
        return Err(refused(
            "the backup's content does not match its digest (changed or damaged)",
        ));
    }
    let log = log_facts(&c, true)?;
    let agree = log.node.as_deref().unwrap_or_default() == get("node")
        && log.audit_key.as_deref().unwrap_or_default() == get("audit_key")
        && log.audit_len.to_string() == get("audit_len")
        && log
            .checkpoint
            .as_ref()
            .map(|c| c.1.as_str())
            .unwrap_or_default()
            == get("checkpoint");
    if !agree {
        return Err(refused("the manifest does not describe the log it holds"));
    }
    let files = c
        .prepare(&format!(
            "SELECT name, mode, content FROM {FILES} ORDER BY name"
        ))
        .and_then(|mut s| {
            s.query_map([], |r| {
                Ok(BackupFile {
                    name: r.get(0)?,
                    mode: r.get(1)?,
                    content: r.get(2)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(|e| refused(format!("the backup's files cannot be read: {e}")))?;
    Ok(Contents {
        manifest,
        files,
        log,
    })
}

/// Refuses a backup whose schema is not Mandate's at its own version: every table and
/// index is one a fresh store migrated to the file's `user_version` has (or the backup's
/// two tables), and there is no trigger or view at all.
///
/// INVARIANT (a restore brings data, not code): Mandate's schema has no trigger or view,
/// so none in a backup is Mandate's — a trigger would run inside the restored node on
/// every write it names (restore's own renames included), and a digest proves no
/// origin (anyone can compute one). Names and kinds are compared, not the `CREATE` text:
/// a database migrated over the years and a fresh one agree on those.
fn check_schema(c: &Connection) -> Result<()> {
    let version: i64 = c
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| refused(format!("not a Mandate backup: {e}")))?;
    let objects = |c: &Connection| -> rusqlite::Result<Vec<(String, String)>> {
        c.prepare(
            "SELECT type, name FROM sqlite_schema WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\'
             ORDER BY type, name",
        )?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect()
    };
    let found = objects(c).map_err(|e| refused(format!("the schema cannot be read: {e}")))?;
    if let Some((kind, name)) = found.iter().find(|(k, _)| k != "table" && k != "index") {
        return Err(refused(format!(
            "the backup holds a {kind} `{}`, which no Mandate database has",
            name.escape_debug()
        )));
    }
    let mut fresh = Connection::open_in_memory().sql()?;
    crate::migrate::migrate_to(&mut fresh, version).map_err(|_| {
        refused(format!(
            "the backup's schema version {version} is not one this binary knows"
        ))
    })?;
    fresh
        .execute_batch(&format!(
            "CREATE TABLE {MANIFEST} (k TEXT); CREATE TABLE {FILES} (k TEXT);"
        ))
        .sql()?;
    let expected = objects(&fresh).sql()?;
    if let Some((kind, name)) = found.iter().find(|o| !expected.contains(o)) {
        return Err(refused(format!(
            "the backup holds a {kind} `{}` that a Mandate database of schema {version} has not",
            name.escape_debug()
        )));
    }
    if let Some((kind, name)) = expected.iter().find(|o| !found.contains(o)) {
        return Err(refused(format!(
            "the backup lacks the {kind} `{name}` of a Mandate database of schema {version}"
        )));
    }
    Ok(())
}

/// Writes the database of checked backup `backup` to `db` (a new file, created 0600),
/// without the backup's own tables, under node name `node`: the name the restored
/// node's log goes on under (`mandate_audit::epoch`). Ends in WAL mode, as the server
/// keeps it; freed pages are wiped (`VACUUM`), so no key bytes stay behind.
pub fn restore(backup: &Path, db: &Path, node: &str) -> Result<()> {
    let src = Connection::open_with_flags(
        backup,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .sql()?;
    // Again here, whatever the caller checked: no trigger may reach the copy, where
    // the renames below would fire it.
    check_schema(&src)?;
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(db)
            .map_err(|source| StoreError::Io {
                context: format!("create {}", db.display()),
                source,
            })?;
    }
    let mut dst = Connection::open(db).sql()?;
    copy_all(&src, &mut dst)?;
    drop(src);
    dst.pragma_update(None, "secure_delete", "ON").sql()?;
    let tx = dst.transaction().sql()?;
    tx.execute_batch(&format!("DROP TABLE {FILES}; DROP TABLE {MANIFEST};"))
        .sql()?;
    // A log never started has no name to change.
    if !node.is_empty() {
        // The export sinks go on from where they were, under the new name (they deliver
        // at least once: events the original sent after the backup may be sent again).
        tx.execute(
            "UPDATE export_cursors SET node = ?1
             WHERE node = (SELECT value FROM meta WHERE key = 'node')",
            [node],
        )
        .sql()?;
        let renamed = tx
            .execute("UPDATE meta SET value = ?1 WHERE key = 'node'", [node])
            .sql()?;
        if renamed == 0 {
            tx.execute("INSERT INTO meta (key, value) VALUES ('node', ?1)", [node])
                .sql()?;
        }
    }
    tx.commit().sql()?;
    dst.execute_batch("VACUUM").sql()?;
    dst.pragma_update(None, "journal_mode", "WAL").sql()?;
    dst.pragma_update(None, "synchronous", "FULL").sql()?;
    dst.close().map_err(|(_, e)| crate::sqlite_error(e))?;
    Ok(())
}
