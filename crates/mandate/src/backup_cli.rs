//! `mandate backup` and `mandate restore`: a node's SQLite store and key files to one
//! backup file and back (docs/running.md, "Backup and restore").
//!
//! Backup runs on the node's host beside the running server: it reads the data dir's
//! database through SQLite's online backup API (`mandate_store_sqlite::backup`: one
//! read transaction, so one commit's state, while the server goes on writing) and its
//! key files, and writes them to one file, mode 0600. No admin API is involved: the
//! database is only read, and the key files are already on that host.
//!
//! Restore fills an empty (or new) data dir from such a file, having checked all of it
//! first: SQLite's integrity check, the format, the digest over every row, the manifest
//! against the log it holds, the audit key against the log's key, and the latest
//! checkpoint's signature and root against the events. Everything is written into a
//! staging dir beside the target and renamed into place at the end, so a refused or
//! failed restore leaves the target as it was.
//!
//! The restored node's log goes on under a new name (`mandate_audit::epoch`): the
//! original may have written and signed events past the backup, so the restored node
//! must never sign a checkpoint under the original's origin.

use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use ed25519_dalek::pkcs8::DecodePrivateKey as _;
use ed25519_dalek::{SigningKey, VerifyingKey};
use mandate_audit::checkpoint::SignedCheckpoint;
use mandate_audit::event::NodeName;
use mandate_audit::merkle::Frontier;
use mandate_core::clock::{Clock as _, SystemClock};
use mandate_core::random::{OsRandom, random_bytes};
use mandate_store_sqlite::backup::{self, BackupFile};

use crate::cmd_io::{Fail, Res, exit, usage};

/// The audit signing key's file in a data dir.
const AUDIT_KEY: &str = "audit-key.pem";
/// The store key's file in a data dir (and its name in a backup).
const STORE_KEY: &str = "store.key";
/// The development user-token issuer's key (`dev.user_tokens`), kept if present.
const DEV_USER_KEY: &str = "dev-user-issuer.pem";
/// The only file names a backup may carry: restore writes nothing else.
const FILES: [&str; 3] = [AUDIT_KEY, STORE_KEY, DEV_USER_KEY];

/// `mandate backup`.
#[derive(Args)]
pub struct BackupArgs {
    /// The running (or stopped) node's data dir, on this host
    #[arg(long, default_value = "mandate-data")]
    data_dir: PathBuf,
    /// The backup file to write (mode 0600; it holds the store key unless
    /// --without-store-key)
    #[arg(long)]
    out: PathBuf,
    /// Replace --out if it exists (it is refused otherwise)
    #[arg(long)]
    force: bool,
    /// Leave the store key out (for operators who escrow it separately); a restore
    /// then needs it put back by hand
    #[arg(long)]
    without_store_key: bool,
    /// Where the node's store key is, if not <data-dir>/store.key (`store.key_file`)
    #[arg(long)]
    store_key_file: Option<PathBuf>,
}

/// `mandate restore`.
#[derive(Args)]
pub struct RestoreArgs {
    /// The backup file `mandate backup` wrote
    file: PathBuf,
    /// The data dir to fill: must be empty or not exist
    #[arg(long, default_value = "mandate-data")]
    data_dir: PathBuf,
}

/// Runs `mandate backup`.
pub fn backup(a: &BackupArgs) -> ExitCode {
    exit(run_backup(a))
}

/// Runs `mandate restore`.
pub fn restore(a: &RestoreArgs) -> ExitCode {
    exit(run_restore(a))
}

fn fail(msg: impl Into<String>) -> Fail {
    Fail(1, msg.into())
}

/// Reads key file `path`, refusing one others can read (as the server does).
fn key_file(path: &Path, name: &str) -> Res<BackupFile> {
    let text = mandate_store::keyfile::read_private(path).map_err(|e| fail(e.to_string()))?;
    Ok(BackupFile {
        name: name.to_owned(),
        mode: 0o600,
        content: text.into_bytes(),
    })
}

/// The text the store records an audit public key as (and `mandate audit verify
/// --public-key` takes): standard base64 of its 32 bytes.
fn public_key_text(key: &VerifyingKey) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(key.as_bytes())
}

/// The audit public key of PEM `pem`.
fn audit_public(pem: &[u8]) -> Res<VerifyingKey> {
    let text = std::str::from_utf8(pem).map_err(|_| fail("the audit key is not text"))?;
    SigningKey::from_pkcs8_pem(text)
        .map(|k| k.verifying_key())
        .map_err(|_| fail("the audit key is not a PKCS#8 PEM Ed25519 key"))
}

fn run_backup(a: &BackupArgs) -> Res<()> {
    let db = a.data_dir.join("mandate.db");
    if !db.is_file() {
        return Err(usage(format!(
            "no SQLite database at {} (a node on PostgreSQL is backed up with pg_dump: see docs/running.md)",
            db.display()
        )));
    }
    if a.out.exists() && !a.force {
        return Err(usage(format!(
            "{} exists; pass --force to replace it",
            a.out.display()
        )));
    }
    let audit_key = key_file(&a.data_dir.join(AUDIT_KEY), AUDIT_KEY)?;
    let public = audit_public(&audit_key.content)?;
    let mut files = vec![audit_key];
    if !a.without_store_key {
        let path = a
            .store_key_file
            .clone()
            .unwrap_or_else(|| a.data_dir.join(STORE_KEY));
        files.push(key_file(&path, STORE_KEY)?);
    }
    let dev = a.data_dir.join(DEV_USER_KEY);
    if dev.exists() {
        files.push(key_file(&dev, DEV_USER_KEY)?);
    }
    let name = a
        .out
        .file_name()
        .ok_or_else(|| usage("--out names no file"))?
        .to_string_lossy();
    let tmp = a
        .out
        .with_file_name(format!(".{name}.partial-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let created_at = SystemClock.now().to_string();
    let written = backup::write(&db, &tmp, &created_at, &files);
    let log = match written {
        Ok(log) => log,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(fail(format!("backup failed: {e}")));
        }
    };
    let key_text = public_key_text(&public);
    if log.audit_key.as_deref().is_some_and(|k| k != key_text) {
        let _ = std::fs::remove_file(&tmp);
        return Err(fail(format!(
            "{} is not the key the database's audit log is signed with",
            a.data_dir.join(AUDIT_KEY).display()
        )));
    }
    // Into place: over the old file with --force, else only if nothing is there.
    let placed = if a.force {
        std::fs::rename(&tmp, &a.out)
    } else {
        std::fs::hard_link(&tmp, &a.out).and_then(|()| std::fs::remove_file(&tmp))
    };
    if let Err(e) = placed {
        let _ = std::fs::remove_file(&tmp);
        return Err(fail(format!("writing {}: {e}", a.out.display())));
    }
    println!(
        "backup of node `{}` written to {}: {} audit events, latest checkpoint {}",
        log.node.as_deref().unwrap_or("(unnamed)"),
        a.out.display(),
        log.audit_len,
        log.checkpoint
            .as_ref()
            .map_or_else(|| "none".to_owned(), |c| format!("at size {}", c.0)),
    );
    if a.without_store_key {
        println!("the store key is NOT in this backup: a restore needs it put back by hand");
    } else {
        println!("this file holds the store key: keep it as secret as the data dir (mode 0600)");
    }
    Ok(())
}

/// What a checked backup restores as.
struct Checked {
    contents: backup::Contents,
    node: Option<NodeName>,
}

/// Every check of the backup file short of writing it (see the module documentation).
fn check(file: &Path) -> Res<Checked> {
    let contents =
        backup::open(file).map_err(|e| fail(format!("refused {}: {e}", file.display())))?;
    let bad = |why: String| fail(format!("refused {}: {why}", file.display()));
    for f in &contents.files {
        if !FILES.contains(&f.name.as_str()) {
            return Err(bad(format!("it holds an unexpected file `{}`", f.name)));
        }
    }
    let audit_key = contents
        .files
        .iter()
        .find(|f| f.name == AUDIT_KEY)
        .ok_or_else(|| bad("it holds no audit key".into()))?;
    let public = audit_public(&audit_key.content).map_err(|e| bad(e.1))?;
    let log = &contents.log;
    if let Some(k) = &log.audit_key
        && *k != public_key_text(&public)
    {
        return Err(bad(
            "its audit key is not the key its log is signed with".into()
        ));
    }
    let node = match &log.node {
        Some(n) => Some(NodeName::new(n).map_err(|e| bad(e.to_string()))?),
        None => None,
    };
    if let Some((size, text)) = &log.checkpoint {
        let cp = SignedCheckpoint { text: text.clone() }
            .verify(&public)
            .map_err(|e| bad(format!("its latest checkpoint: {e}")))?;
        if Some(&cp.node) != node.as_ref() || cp.size != *size {
            return Err(bad("its latest checkpoint names another log".into()));
        }
        let covered = usize::try_from(cp.size)
            .ok()
            .and_then(|n| log.leaves.get(..n))
            .ok_or_else(|| bad("its latest checkpoint covers events it does not hold".into()))?;
        let mut tree = Frontier::new();
        for leaf in covered {
            tree.push(*leaf).map_err(|e| bad(e.to_string()))?;
        }
        if tree.root() != cp.root {
            return Err(bad(format!(
                "its audit log does not match its checkpoint at size {}",
                cp.size
            )));
        }
    }
    Ok(Checked { contents, node })
}

fn run_restore(a: &RestoreArgs) -> Res<()> {
    let target = &a.data_dir;
    if target.exists() {
        let mut entries = std::fs::read_dir(target)
            .map_err(|e| usage(format!("reading {}: {e}", target.display())))?;
        if entries.next().is_some() {
            return Err(usage(format!(
                "{} is not empty: restore only into an empty or new data dir",
                target.display()
            )));
        }
    }
    let parent = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    let base = target
        .file_name()
        .ok_or_else(|| usage("--data-dir names no directory"))?
        .to_string_lossy()
        .into_owned();
    let staging = parent.join(format!(".{base}.restore-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    let outcome = restore_via(a, target, &parent, &staging);
    let _ = std::fs::remove_dir_all(&staging);
    outcome
}

/// The length of an opened backup file, before anything of it is copied: a regular
/// file (not a FIFO or a device such as `/dev/zero`, which would be copied into the
/// staging dir until the disk is full) that begins as a SQLite database does.
fn opened_backup(mut f: &std::fs::File) -> Result<u64, String> {
    use std::io::{Read as _, Seek as _};
    let meta = f.metadata().map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    let mut magic = [0u8; 16];
    if f.read_exact(&mut magic).is_err() || &magic != b"SQLite format 3\0" {
        return Err("not a backup file: no SQLite header".into());
    }
    f.rewind().map_err(|e| e.to_string())?;
    Ok(meta.len())
}

/// Restores through `staging` (made here, 0700 from its creation): the backup is first
/// copied into it, and that copy — which nobody else can write — is both checked and
/// restored, so a file swapped at `a.file` after the check cannot go in unchecked.
fn restore_via(a: &RestoreArgs, target: &Path, parent: &Path, staging: &Path) -> Res<()> {
    let io = |what: &Path, e: std::io::Error| fail(format!("writing {}: {e}", what.display()));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(staging)
        .map_err(|e| io(staging, e))?;
    let input = staging.join(".backup");
    {
        let reading = |e: std::io::Error| fail(format!("reading {}: {e}", a.file.display()));
        // Looked at before it is opened too: opening a FIFO would wait for a writer.
        let meta = std::fs::metadata(&a.file).map_err(reading)?;
        if !meta.is_file() {
            return Err(fail(format!(
                "refused {}: not a regular file",
                a.file.display()
            )));
        }
        let from = std::fs::File::open(&a.file).map_err(reading)?;
        let len = opened_backup(&from)
            .map_err(|why| fail(format!("refused {}: {why}", a.file.display())))?;
        let mut to = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&input)
            .map_err(|e| io(&input, e))?;
        // At most the length it had when opened: a file still growing is cut (and then
        // refused by the checks), never copied without end.
        std::io::copy(&mut std::io::Read::take(&from, len), &mut to).map_err(|e| io(&input, e))?;
    }
    // Refusals name the operator's file, not the private copy.
    let checked = check(&input).map_err(|Fail(code, message)| {
        Fail(
            code,
            message.replace(&input.display().to_string(), &a.file.display().to_string()),
        )
    })?;
    let suffix: [u8; 5] = random_bytes(&OsRandom).map_err(|e| fail(e.to_string()))?;
    let suffix: String = suffix.iter().map(|b| format!("{b:02x}")).collect();
    let new_node = match &checked.node {
        Some(old) => Some(
            mandate_audit::epoch::restored_name(old, &suffix)
                .ok_or_else(|| fail("cannot name the restored node"))?,
        ),
        None => None,
    };
    stage(&input, staging, &checked, new_node.as_ref())?;
    std::fs::remove_file(&input).map_err(|e| io(&input, e))?;
    std::fs::rename(staging, target).map_err(|e| {
        fail(format!(
            "moving the restored data dir to {}: {e}",
            target.display()
        ))
    })?;
    if let Ok(d) = std::fs::File::open(parent) {
        let _ = d.sync_all();
    }
    let log = &checked.contents.log;
    println!(
        "restored {} audit events of node `{}` into {}; the node's log goes on as `{}`",
        log.audit_len,
        checked.node.as_ref().map_or("(unnamed)", NodeName::as_str),
        target.display(),
        new_node.as_ref().map_or("(unnamed)", NodeName::as_str),
    );
    if !checked.contents.files.iter().any(|f| f.name == STORE_KEY) {
        println!(
            "the backup holds no store key: put it at {} (mode 0600) or set store.key_file before `mandate serve`",
            target.join(STORE_KEY).display()
        );
    }
    Ok(())
}

/// Writes the database and key files into the `staging` dir (0700; files 0600).
fn stage(file: &Path, staging: &Path, checked: &Checked, node: Option<&NodeName>) -> Res<()> {
    let io = |what: &Path, e: std::io::Error| fail(format!("writing {}: {e}", what.display()));
    let db = staging.join("mandate.db");
    let name = node.map_or_else(String::new, |n| n.as_str().to_owned());
    backup::restore(file, &db, &name).map_err(|e| fail(format!("restoring the database: {e}")))?;
    for f in &checked.contents.files {
        let path = staging.join(&f.name);
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| io(&path, e))?;
        std::io::Write::write_all(&mut out, &f.content).map_err(|e| io(&path, e))?;
        out.sync_all().map_err(|e| io(&path, e))?;
    }
    if let Ok(d) = std::fs::File::open(staging) {
        let _ = d.sync_all();
    }
    Ok(())
}
