//! What every test here builds on: a node over a fresh SQLite store in a temporary
//! directory, on a manual clock, with webhooks that fail the test if one is sent.

use std::path::Path;
use std::sync::Arc;

use mandate_core::clock::ManualClock;
use mandate_core::random::OsRandom;
use mandate_store::Store;
use mandate_store_sqlite::SqliteStore;

use mandate_service::config::{DetectSettings, ServerConfig, WebhookConfig};
use mandate_service::keys::{KeyFiles, KeyState, KeysError};
use mandate_service::{Node, Webhooks};

/// The manual clock's start, in unix seconds.
pub const T0: i64 = 1_750_000_000;

/// Webhooks that go nowhere: a test that configures no hook sends none (a send fails it).
#[derive(Debug)]
pub struct NoWebhooks;

impl Webhooks for NoWebhooks {
    fn send(&self, _: &WebhookConfig, _: i64, _: serde_json::Value) {
        panic!("a webhook was sent, but no test here configures one");
    }
}

/// The configuration every test starts from.
pub fn config(dir: &Path) -> ServerConfig {
    ServerConfig {
        issuer: "http://mandate.test".into(),
        default_audience: "https://api.test".into(),
        default_token_lifetime_secs: 300,
        max_token_lifetime_secs: 3600,
        max_body_bytes: 64 * 1024,
        audit_key_path: dir.join("audit-key.pem"),
        checkpoint: mandate_service::audit::CheckpointPolicy {
            every_events: 100,
            every_secs: 3600,
        },
        redact: Default::default(),
        mandates: Default::default(),
        users: Default::default(),
        dev_users: None,
        detect: DetectSettings::default(),
        ssf: Default::default(),
        max_staleness: mandate_service::freshness::DEFAULT_MAX_STALENESS,
        reviews: Default::default(),
        dpop: Default::default(),
        client_certs: Default::default(),
    }
}

/// A node over a new store in `dir`, its clock at [`T0`], the configuration from
/// [`config`] with `adjust` applied; and the clock, to move it.
pub fn node_in(dir: &Path, adjust: impl FnOnce(&mut ServerConfig)) -> (Node, Arc<ManualClock>) {
    let (node, clock, _) = node_over_store(dir, adjust);
    (node, clock)
}

/// As [`node_in`], and the store the node is over, for a test that writes past the
/// node's write path on purpose.
pub fn node_over_store(
    dir: &Path,
    adjust: impl FnOnce(&mut ServerConfig),
) -> (Node, Arc<ManualClock>, Arc<dyn Store>) {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.join("mandate.db")).unwrap());
    let clock = Arc::new(ManualClock::at_millis(T0 * 1000));
    let node = node_on(dir, Arc::clone(&store), clock.clone(), adjust).unwrap();
    (node, clock, store)
}

/// A node over `store` (keys and audit key in `dir`), its clock at [`T0`]. A second
/// node over the same store needs the first one's store key: see [`copy_store_key`].
pub fn node_over(
    dir: &Path,
    store: Arc<dyn Store>,
    adjust: impl FnOnce(&mut ServerConfig),
) -> Node {
    node_on(
        dir,
        store,
        Arc::new(ManualClock::at_millis(T0 * 1000)),
        adjust,
    )
    .unwrap()
}

/// Another node over `store` (as a node of a cluster: its own data dir `dir`, so its own
/// audit key and store key file), on `clock`; its keys' error if they refuse to open.
pub fn node_sharing(
    dir: &Path,
    store: &Arc<dyn Store>,
    clock: &Arc<ManualClock>,
    adjust: impl FnOnce(&mut ServerConfig),
) -> Result<Node, KeysError> {
    node_on(dir, Arc::clone(store), clock.clone(), adjust)
}

/// Copies node data dir `from`'s store key to data dir `to` (made if missing), as an
/// operator gives every node of a cluster the first node's store key.
pub fn copy_store_key(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    std::fs::copy(from.join("store.key"), to.join("store.key")).unwrap();
}

fn node_on(
    dir: &Path,
    store: Arc<dyn Store>,
    clock: Arc<ManualClock>,
    adjust: impl FnOnce(&mut ServerConfig),
) -> Result<Node, KeysError> {
    let keys = KeyState::open(
        store.as_ref(),
        &KeyFiles::in_data_dir(dir),
        &*clock,
        &OsRandom,
    )?;
    let mut config = config(dir);
    adjust(&mut config);
    Ok(Node::new(
        store,
        keys,
        clock,
        Arc::new(OsRandom),
        config,
        Arc::new(NoWebhooks),
    )
    .unwrap())
}
