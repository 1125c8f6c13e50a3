//! `mandate audit export --all-nodes` and `mandate audit verify` over such an export.
//! Every node of a cluster keeps its own audit log, signed with its own key, so an export
//! of every log is a directory: one `<node>.jsonl` per node (each the format a single
//! node's export has) and `nodes.json`, the node list with each node's public key as the
//! server answered it (`GET /v1/audit/nodes`). Verifying checks every listed node's log
//! with that node's key, or with a key pinned on the command line (`NODE=KEY`), which is
//! what makes the check independent of the server that made the export.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ed25519_dalek::VerifyingKey;
use mandate_api as api;
use mandate_audit::event::NodeName;

use crate::Conn;
use crate::cmd_io::{Fail, OrFail, Res, client, usage};

/// The node list in an all-nodes export directory.
pub(crate) const NODES_FILE: &str = "nodes.json";

/// The file of `node`'s log in an all-nodes export directory. A node name holds no `/`
/// (1 to 64 ASCII letters, digits, `.`, `_`, `-`), so this stays inside `dir`.
fn log_file(dir: &Path, node: &NodeName) -> PathBuf {
    dir.join(format!("{}.jsonl", node.as_str()))
}

/// `mandate audit export --all-nodes --out DIR`.
pub(crate) async fn export_all(conn: &Conn, out: Option<PathBuf>) -> Res<()> {
    let dir = out.ok_or_else(|| {
        usage("--all-nodes writes one file per node and `nodes.json`: give --out DIR")
    })?;
    let c = client(conn)?;
    let mut nodes = c.audit_nodes().await.or_fail(conn)?;
    std::fs::create_dir_all(&dir)
        .map_err(|e| Fail(1, format!("creating {}: {e}", dir.display())))?;
    let mut kept = Vec::with_capacity(nodes.nodes.len());
    for n in std::mem::take(&mut nodes.nodes) {
        let name = NodeName::new(&n.node)
            .map_err(|e| Fail(1, format!("the server listed a node it cannot name: {e}")))?;
        let body = c.audit_export_of(name.as_str()).await.or_fail(conn)?;
        // A node registered but refused at start (e.g. no store key) never opened its
        // log: no audit key (recorded when the log opens, before any event) and nothing
        // exported. It has no log to verify, so it is left out. Fail closed: a node with
        // events but no key stays in, and `verify` fails on it.
        if n.public_key.is_none() && body.trim().is_empty() {
            println!("{name}: never opened a log (no audit key, no events): left out");
            continue;
        }
        let path = log_file(&dir, &name);
        std::fs::write(&path, &body)
            .map_err(|e| Fail(1, format!("writing {}: {e}", path.display())))?;
        println!("{}: {} lines", path.display(), body.lines().count());
        kept.push(n);
    }
    nodes.nodes = kept;
    let list = serde_json::to_string_pretty(&nodes)
        .map_err(|e| Fail(1, format!("encoding the node list: {e}")))?;
    let path = dir.join(NODES_FILE);
    std::fs::write(&path, list + "\n")
        .map_err(|e| Fail(1, format!("writing {}: {e}", path.display())))?;
    println!(
        "exported the logs of {} nodes to {}; verify with `mandate audit verify {}`",
        nodes.nodes.len(),
        dir.display(),
        dir.display()
    );
    Ok(())
}

/// Parses `--public-key NODE=KEY` pins (KEY base64 or `@FILE`, as for one log).
fn pins(
    args: &[String],
    parse_key: impl Fn(&str) -> Res<VerifyingKey>,
) -> Res<BTreeMap<String, VerifyingKey>> {
    let mut out = BTreeMap::new();
    for a in args {
        let (node, key) = a.split_once('=').ok_or_else(|| {
            usage(format!(
                "for an all-nodes export, give each key as NODE=KEY (got `{}`)",
                a.escape_debug()
            ))
        })?;
        let node = NodeName::new(node).map_err(|e| usage(e.to_string()))?;
        if out
            .insert(node.as_str().to_owned(), parse_key(key)?)
            .is_some()
        {
            return Err(usage(format!("node `{node}` given two keys")));
        }
    }
    Ok(out)
}

/// `mandate audit verify DIR`: every node's log in an all-nodes export, each with its
/// node's key (pinned, or the one `nodes.json` names). Fails (exit 1) on the first log
/// that does not verify, that holds another node's events, that is missing or empty (no
/// signed checkpoint: nothing vouches for it), or a pinned node the export lacks.
pub(crate) fn verify_dir(
    dir: &Path,
    key_args: &[String],
    parse_key: impl Fn(&str) -> Res<VerifyingKey>,
) -> Res<()> {
    let mut pinned = pins(key_args, parse_key)?;
    let list_path = dir.join(NODES_FILE);
    let text = std::fs::read_to_string(&list_path)
        .map_err(|e| usage(format!("reading {}: {e}", list_path.display())))?;
    let listed: api::AuditNodes = serde_json::from_str(&text)
        .map_err(|e| Fail(1, format!("{}: not a node list: {e}", list_path.display())))?;
    if let Some(missing) = pinned
        .keys()
        .find(|p| !listed.nodes.iter().any(|n| &n.node == *p))
    {
        return Err(Fail(
            1,
            format!("verification failed: node `{missing}` is not in the export"),
        ));
    }
    for n in &listed.nodes {
        let name =
            NodeName::new(&n.node).map_err(|e| Fail(1, format!("{}: {e}", list_path.display())))?;
        let (key, whose) = match pinned.remove(name.as_str()) {
            Some(k) => (k, "pinned key"),
            None => {
                let text = n.public_key.as_deref().ok_or_else(|| {
                    Fail(
                        1,
                        format!(
                            "verification failed: no key for node `{name}` (pin it: \
                             --public-key {name}=KEY)"
                        ),
                    )
                })?;
                (key_of(text)?, "key from nodes.json")
            }
        };
        let path = log_file(dir, &name);
        let f = std::fs::File::open(&path)
            .map_err(|e| Fail(1, format!("verification failed: {}: {e}", path.display())))?;
        if f.metadata().map(|m| m.len()).unwrap_or(0) == 0 {
            return Err(Fail(
                1,
                format!(
                    "verification failed: {}: node `{name}` has no signed checkpoint, so \
                     nothing vouches for its log",
                    path.display()
                ),
            ));
        }
        let report = mandate_audit::verify::verify_export(std::io::BufReader::new(f), &key)
            .map_err(|e| Fail(1, format!("{}: verification failed: {e}", path.display())))?;
        if report.node != name {
            return Err(Fail(
                1,
                format!(
                    "{}: verification failed: it holds node `{}`'s log, not `{name}`'s",
                    path.display(),
                    report.node
                ),
            ));
        }
        println!(
            "ok: node {name}: {} events in {} checkpoints; root {} ({whose})",
            report.events,
            report.checkpoints,
            hex(&report.root)
        );
    }
    println!("ok: {} node logs verified", listed.nodes.len());
    Ok(())
}

/// A key as `nodes.json` holds it: standard base64 of 32 bytes.
fn key_of(text: &str) -> Res<VerifyingKey> {
    use base64::Engine as _;
    let bytes: [u8; 32] = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| {
            Fail(
                1,
                "verification failed: a key in nodes.json is not 32 bytes of base64".into(),
            )
        })?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| {
        Fail(
            1,
            "verification failed: a key in nodes.json is not an Ed25519 key".into(),
        )
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
