//! The repository traits (one per aggregate), [`Repos`] (all of them: what a unit of work
//! is given), and [`Store`] (a backend: units of work and the change feed).
//!
//! A backend implements every repository trait once, for its unit-of-work handle (SQLite:
//! a connection inside a transaction), and [`Store`]. This module then implements every
//! repository trait for the store itself, each call its own unit of work: so a caller
//! writes `store.get_agent(id)` for one step and [`Store::write_unit`] (or
//! [`crate::StoreExt::write`]) to make several steps commit together.
//!
//! Calls block: async callers run them on a blocking thread.

use std::time::Duration;

use mandate_core::admin::AdminToken;
use mandate_core::agent::Agent;
use mandate_core::credential::Credential;
use mandate_core::id::{AdminTokenId, AgentId, AnomalyId, CredentialId, MandateId};
use mandate_core::mandate::Mandate;
use mandate_core::time::Timestamp;

use crate::StoreError;
use crate::feed::{Changes, Freshness, Topic};
use crate::rows::{
    AgentFilter, AnomalyFilter, AnomalyRow, AuditColumns, AuditFilter, AuditRow, AuthCredential,
    CheckpointRow, ExportCursorRow, MandateFilter, NewSigningKey, NodeReport, NodeRow,
    PolicyVersionRow, ReviewItemRow, ReviewRow, SecretRow, SigningKeyRow, SsfStreamRow,
};

/// The store's result.
pub type Result<T> = std::result::Result<T, StoreError>;

/// A change to one agent, run inside [`AgentRepo::update_agent`]; it may refuse (any
/// error), and then nothing is written.
pub type AgentChange<'a> = dyn FnMut(&mut Agent) -> Result<()> + 'a;

/// A change to one mandate, given the owner of its agent when asked for
/// ([`MandateRepo::update_mandate`]); it may refuse, and then nothing is written.
pub type MandateChange<'a> = dyn FnMut(&mut Mandate, Option<&str>) -> Result<()> + 'a;

/// Agents: identity, owner, boundary, labels, lifecycle status.
pub trait AgentRepo {
    /// Stores a new agent; a taken name is a `Conflict`.
    fn insert_agent(&self, a: &Agent) -> Result<()>;
    /// One agent by id.
    fn get_agent(&self, id: &AgentId) -> Result<Option<Agent>>;
    /// Agents matching `filter`, in id (creation) order, after the cursor, at most `limit`.
    fn list_agents(
        &self,
        filter: &AgentFilter,
        after: Option<&AgentId>,
        limit: u32,
    ) -> Result<Vec<Agent>>;
    /// Every agent, in id order, handed to `each` one at a time as it is read (no list of
    /// them all is built). `each` must not call the store.
    fn for_each_agent(&self, each: &mut dyn FnMut(Agent)) -> Result<()>;
    /// Reads, changes and writes back one agent atomically, setting `updated_at` to
    /// `now`. An unknown id is `NotFound("agent")`; a name taken by another agent a
    /// `Conflict`.
    ///
    /// INVARIANT (decommission revokes): when the new status is `decommissioned` and the
    /// old was not, every unrevoked credential of the agent is revoked at `now` in the
    /// same unit. With `revoke_tokens`, the agent's token cutoff is raised to `now` in the
    /// same unit too (every token issued so far dies).
    fn update_agent(
        &self,
        id: &AgentId,
        now: Timestamp,
        revoke_tokens: bool,
        change: &mut AgentChange<'_>,
    ) -> Result<Agent>;
}

/// Credentials: client secrets (stored as a hash) and public keys.
pub trait CredentialRepo {
    /// Stores a new credential (`secret_hash`, an Argon2id PHC string, for client
    /// secrets). A decommissioned agent's is refused (`Conflict`, nothing written),
    /// checked in the same unit (`INVARIANT (decommission revokes)` on
    /// [`AgentRepo::update_agent`]).
    fn insert_credential(&self, c: &Credential, secret_hash: Option<&str>) -> Result<()>;
    /// All credentials of an agent, with the material to check them, in id order.
    fn credentials(&self, agent: &AgentId) -> Result<Vec<AuthCredential>>;
    /// Every credential of every agent (without secret hashes), in id order, one at a
    /// time: what the inventory reads in one pass.
    fn for_each_credential(&self, each: &mut dyn FnMut(Credential)) -> Result<()>;
    /// Replaces `old` by `new`: inserts `new` and lets `old` work only until `old_until`
    /// (never extending an earlier expiry). `old` must be a usable (at `now`), unreplaced
    /// credential of `new.agent_id` of the same kind (`NotFound("credential")` or
    /// `Conflict` otherwise, and nothing is written).
    fn rotate_credential(
        &self,
        old: &CredentialId,
        new: &Credential,
        secret_hash: Option<&str>,
        old_until: Timestamp,
        now: Timestamp,
    ) -> Result<()>;
    /// Revokes a credential of `agent` at `now` (an earlier revocation stays), and in the
    /// same unit raises the agent's token cutoff to `now`: a token does not record which
    /// credential minted it. `NotFound("credential")` if `agent` has no such credential.
    fn revoke_credential(&self, agent: &AgentId, id: &CredentialId, now: Timestamp) -> Result<()>;
}

/// Admin tokens (stored as a digest) and the bootstrap token.
pub trait AdminTokenRepo {
    /// Stores an admin token's record and digest.
    fn insert_admin_token(&self, t: &AdminToken, digest: &str) -> Result<()>;
    /// Sets the bootstrap token's digest, creating its record if there is none.
    ///
    /// Supplying the token that is already the bootstrap token changes nothing. A token
    /// that was ever revoked is refused (`Conflict`), as is one that is a named admin
    /// token. The previous bootstrap token is kept as a revoked record, never deleted.
    fn set_bootstrap_digest(&self, new: &AdminToken, digest: &str) -> Result<()>;
    /// Whether a bootstrap token exists.
    fn has_bootstrap(&self) -> Result<bool>;
    /// The unrevoked admin token with this digest.
    fn admin_token_by_digest(&self, digest: &str) -> Result<Option<AdminToken>>;
    /// Every admin token record, in id order.
    fn list_admin_tokens(&self) -> Result<Vec<AdminToken>>;
    /// Revokes an admin token (an earlier revocation time stays); `NotFound("admin
    /// token")` if unknown.
    fn revoke_admin_token(&self, id: &AdminTokenId, now: Timestamp) -> Result<()>;
}

/// The keys Mandate signs its tokens with: every key's public record, and the current
/// key's private half sealed under the store key (the server seals and opens it; the
/// store never sees it in clear), so every node of a cluster signs with the same key.
pub trait SigningKeyRepo {
    /// Records `key` as the new current signing key, retiring the key that was current:
    /// it stops signing now, stays published until `old_publish_until`, and its sealed
    /// private half is erased in the same unit.
    ///
    /// `replaces` names the key the caller saw current (`None`: it saw none, and this is
    /// the store's first key). When another key is current (another node rotated, or
    /// created the first key, in between), the answer is `Conflict` and nothing is
    /// written, so two nodes starting on an empty store end with one key, not one each.
    ///
    /// INVARIANT (one signer): only the current key has a private half in the store; a
    /// retired key can never sign again, on any node.
    fn add_signing_key(
        &self,
        key: &NewSigningKey<'_>,
        replaces: Option<&str>,
        now: Timestamp,
        old_publish_until: Timestamp,
    ) -> Result<()>;
    /// The current key and every retired key still published at `now`, current first.
    fn published_signing_keys(&self, now: Timestamp) -> Result<Vec<SigningKeyRow>>;
    /// The sealed private half of key `kid`: `None` for an unknown or retired key, and
    /// for the current key of a store from before the store key (see
    /// [`SigningKeyRepo::import_signing_key_sealed`]).
    fn signing_key_sealed(&self, kid: &str) -> Result<Option<Vec<u8>>>;
    /// Stores the sealed private half of the current key `kid` if it has none yet (a key
    /// file from before the store key, imported once). False, and nothing written, when
    /// `kid` is not the current key or already has its sealed half.
    fn import_signing_key_sealed(&self, kid: &str, sealed: &[u8]) -> Result<bool>;
}

/// What ends tokens early, and what stops a client assertion being used twice.
pub trait TokenRevocationRepo {
    /// Records a client assertion's `jti` until `expires_at`. Returns false if the same
    /// client already used it (a replay). Forgets expired records as it goes.
    fn record_assertion_jti(
        &self,
        client: &AgentId,
        jti: &str,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<bool>;
    /// Revokes an access token by `jti` (kept until the token would have expired anyway;
    /// a repeat changes nothing). Forgets expired records as it goes.
    fn revoke_token(&self, jti: &str, expires_at: Timestamp, now: Timestamp) -> Result<()>;
    /// Invalidates every token of `agent` issued at or before `at`. A later cutoff
    /// replaces an earlier one; an earlier never does.
    fn set_tokens_not_before(&self, agent: &AgentId, at: Timestamp) -> Result<()>;
    /// The agent's token cutoff: tokens with `iat` at or before it are not active.
    fn tokens_not_before(&self, agent: &AgentId) -> Result<Option<Timestamp>>;
    /// Whether the token with this `jti` was revoked.
    fn is_token_revoked(&self, jti: &str) -> Result<bool>;
    /// Every agent's token cutoff.
    fn token_cutoffs(&self) -> Result<Vec<(AgentId, Timestamp)>>;
    /// The `jti`s of revoked tokens that have not expired yet at `now`.
    fn revoked_jtis(&self, now: Timestamp) -> Result<Vec<String>>;
    /// Ends every session of user `sub` at `issuer` issued at or before `at` (a Shared
    /// Signal from their IdP): their user tokens issued then are refused from now on. A
    /// later cutoff replaces an earlier one; an earlier never does.
    fn set_user_sessions_not_before(&self, issuer: &str, sub: &str, at: Timestamp) -> Result<()>;
    /// Every user's session cutoff: `(issuer, sub, not_before)`.
    fn user_session_cutoffs(&self) -> Result<Vec<(String, String, Timestamp)>>;
}

/// The append-only audit log and its signed checkpoints.
pub trait AuditRepo {
    /// Appends events, and with `checkpoint` the signed checkpoint over the log those rows
    /// complete (whose size must be the log's new length), all in one unit. The rows'
    /// `seq`s must continue the log exactly; anything else is a `Conflict` and nothing is
    /// written.
    ///
    /// INVARIANT (chain): rows are only ever appended, seq `i` is the i-th event, and no
    /// backend updates or deletes an audit row.
    fn append_audit(&self, rows: &[AuditRow], checkpoint: Option<&CheckpointRow>) -> Result<()>;
    /// The first `size` leaf hashes, in order (to rebuild the Merkle frontier and to make
    /// proofs).
    fn audit_leaves(&self, size: u64) -> Result<Vec<[u8; 32]>>;
    /// Number of events in the log.
    fn audit_len(&self) -> Result<u64>;
    /// `(seq, body)` of events matching `filter`, in log order, after `after` (a seq), at
    /// most `limit`.
    fn list_audit(
        &self,
        filter: &AuditFilter,
        after: Option<u64>,
        limit: u32,
    ) -> Result<Vec<(u64, String)>>;
    /// As [`AuditRepo::list_audit`] over node `node`'s log: another node's, on a store
    /// the nodes of a cluster share; a single node's store holds its own log only, and
    /// another name's is empty.
    fn list_audit_of(
        &self,
        node: &str,
        filter: &AuditFilter,
        after: Option<u64>,
        limit: u32,
    ) -> Result<Vec<(u64, String)>>;
    /// How many events `filter` keeps (of this node's log).
    fn count_audit(&self, filter: &AuditFilter) -> Result<u64>;
    /// The last `limit` events about `agent` (its `agent` column) with `seq < before`,
    /// oldest first: what an incident bundle holds.
    fn recent_audit_of_agent(
        &self,
        agent: &str,
        before: u64,
        limit: u32,
    ) -> Result<Vec<(u64, String)>>;
    /// Event bodies with `from <= seq < to`, in order.
    fn audit_bodies(&self, from: u64, to: u64) -> Result<Vec<String>>;
    /// Events with `from <= seq < to`, in order: each one's filter columns and body (to
    /// check that the columns say what the hashed body says).
    fn audit_rows(&self, from: u64, to: u64) -> Result<Vec<(AuditColumns, String)>>;
    /// Stores a signed checkpoint (one per size; a repeat is ignored).
    fn insert_checkpoint(&self, c: &CheckpointRow) -> Result<()>;
    /// The stored checkpoint of exactly `size` events, if there is one.
    fn checkpoint_of_size(&self, size: u64) -> Result<Option<CheckpointRow>>;
    /// Every checkpoint, oldest first.
    fn checkpoints(&self) -> Result<Vec<CheckpointRow>>;
    /// Every checkpoint of `node`'s log, oldest first: this node's own log or another's
    /// that shares the store (a cluster); empty for a node the store has no log of.
    /// For exporting every node's log; everything else reads the unit's own log.
    fn checkpoints_of(&self, node: &str) -> Result<Vec<CheckpointRow>>;
    /// Event bodies of `node`'s log with `from <= seq < to`, in order (as
    /// [`AuditRepo::audit_bodies`] for the unit's own log); empty for an unknown node.
    fn audit_bodies_of(&self, node: &str, from: u64, to: u64) -> Result<Vec<String>>;
}

/// Immutable policy versions and their activation history.
pub trait PolicyRepo {
    /// Stores a new (already validated) policy version and returns its number (1, 2, …).
    /// `rego` is its Rego part as JSON (modules and base data), `""` when it has none.
    fn insert_policy_version(
        &self,
        policies: &str,
        fragments: &[String],
        rego: &str,
        note: &str,
        at: Timestamp,
        by: &str,
    ) -> Result<i64>;
    /// One policy version.
    fn policy_version(&self, version: i64) -> Result<Option<PolicyVersionRow>>;
    /// Every policy version, oldest first.
    fn policy_versions(&self) -> Result<Vec<PolicyVersionRow>>;
    /// Makes `version` the active one (`NotFound("policy version")` if unknown).
    fn activate_policy_version(&self, version: i64, at: Timestamp, by: &str) -> Result<()>;
    /// The active version and the one active before it (for rollback), if any.
    fn policy_activation_state(&self) -> Result<(Option<i64>, Option<i64>)>;
}

/// Mandates: task-scoped grants an agent holds for a user.
pub trait MandateRepo {
    /// Stores a new mandate. Its agent must exist (`NotFound("agent")` otherwise); a taken
    /// id is a `Conflict`.
    fn insert_mandate(&self, m: &Mandate) -> Result<()>;
    /// One mandate by id.
    fn get_mandate(&self, id: &MandateId) -> Result<Option<Mandate>>;
    /// Mandates matching `filter`, in id (creation) order, after the cursor, at most
    /// `limit`.
    fn list_mandates(
        &self,
        filter: &MandateFilter,
        after: Option<&MandateId>,
        limit: u32,
    ) -> Result<Vec<Mandate>>;
    /// Reads, changes and writes back one mandate atomically. With `with_owner`, `change`
    /// is also given the owner of the mandate's agent (`None` if no such agent), read in
    /// the same unit, so an owner change cannot fall between a check and the write.
    /// An unknown id is `NotFound("mandate")`.
    ///
    /// INVARIANT (mandate identity): a stored mandate's id and agent never change; a
    /// `change` that alters either is refused with a `Conflict` and nothing is written.
    fn update_mandate(
        &self,
        id: &MandateId,
        with_owner: bool,
        change: &mut MandateChange<'_>,
    ) -> Result<Mandate>;
    /// Mandates in force at `now`: status `active` and `expires_at` after `now`, in id
    /// order. This is what the decision snapshot loads.
    ///
    /// INVARIANT (mandate gate): agrees with [`Mandate::is_active_at`]: a mandate whose
    /// expiry is `now` or earlier (or missing) is not returned.
    fn active_mandates(&self, now: Timestamp) -> Result<Vec<Mandate>>;
    /// Rows whose stored status has lapsed by `now` (as [`Mandate::status_at`] sees it):
    /// pending with `approval_deadline <= now`, or active with `expires_at <= now` (or no
    /// expiry). In id order, at most `limit`; the sweeper writes them denied or expired.
    fn lapsed_mandates(&self, now: Timestamp, limit: u32) -> Result<Vec<Mandate>>;
    /// The agent's mandates that are not final (`pending_approval` or `active`), in id
    /// order, whatever their deadlines: what a kill switch must end.
    fn mandates_of_agent(&self, agent: &AgentId) -> Result<Vec<Mandate>>;
}

/// Anomalies the detector raised, and its per-agent baselines.
pub trait AnomalyRepo {
    /// Stores newly raised anomalies, all or none.
    fn insert_anomalies(&self, rows: &[AnomalyRow]) -> Result<()>;
    /// One anomaly.
    fn get_anomaly(&self, id: &AnomalyId) -> Result<Option<AnomalyRow>>;
    /// Anomalies matching `filter`, newest first, before the cursor, at most `limit`.
    fn list_anomalies(
        &self,
        filter: &AnomalyFilter,
        before: Option<&AnomalyId>,
        limit: u32,
    ) -> Result<Vec<AnomalyRow>>;
    /// Moves an open anomaly to `status` (`acknowledged` or `dismissed`); one already
    /// resolved is a `Conflict`, an unknown one `NotFound("anomaly")`.
    fn resolve_anomaly(
        &self,
        id: &AnomalyId,
        status: &str,
        by: &str,
        comment: Option<&str>,
        now: Timestamp,
    ) -> Result<AnomalyRow>;
    /// Open anomalies whose response holds the agent (`step_up` or `suspend`), in id
    /// order: what the detector puts back at start.
    fn open_holds(&self) -> Result<Vec<AnomalyRow>>;
    /// Stores baselines (agent id, the detector's JSON), replacing older ones, all or
    /// none. Baselines of agents no longer in the store are skipped.
    fn save_baselines(&self, rows: &[(String, String)], now: Timestamp) -> Result<()>;
    /// Every stored baseline: (agent id, JSON).
    fn baselines(&self) -> Result<Vec<(String, String)>>;
}

/// Upstream secrets for the gateways, as ciphertext (the server encrypts and decrypts).
pub trait SecretRepo {
    /// Stores or replaces a secret (`created_at` stays from the first store).
    fn put_secret(&self, name: &str, nonce: &[u8], ciphertext: &[u8], now: Timestamp)
    -> Result<()>;
    /// One secret.
    fn get_secret(&self, name: &str) -> Result<Option<SecretRow>>;
    /// Every secret, in name order.
    fn secrets(&self) -> Result<Vec<SecretRow>>;
    /// Deletes a secret; whether there was one.
    fn delete_secret(&self, name: &str) -> Result<bool>;
}

/// The store key's check: a keyed hash of the key, recorded by the first node, that
/// tells a node whether its store key is the one this store's sealed values (signing
/// keys, gateway secrets) were sealed under. Kept in the store's node-wide facts.
pub trait StoreKeyRepo {
    /// The recorded check, if one is.
    fn store_key_check(&self) -> Result<Option<String>>;
    /// Records `check` unless a check is recorded already, and returns the recorded one:
    /// `check` itself when this call was the first. Two first nodes racing both get the
    /// one that committed.
    fn claim_store_key_check(&self, check: &str) -> Result<String>;
}

/// The node's own record, and the other nodes' that share the store.
pub trait NodeRepo {
    /// This node's name, created with `make` on first use and the same ever after. A
    /// backend shared by many nodes (PostgreSQL) knows the name from its connection (the
    /// node id) and never calls `make`.
    fn node_name(&self, make: &mut dyn FnMut() -> String) -> Result<String>;
    /// Records the public key that verifies this node's audit checkpoints (base64 of the
    /// 32-byte Ed25519 key), so any node can name it in an export of every log.
    ///
    /// INVARIANT (one key per log): a node's log is signed by one key. A key other than
    /// the one already recorded for this node is a `Conflict` and nothing is written (a
    /// node id started with another data dir's audit key would split its log).
    fn set_audit_key(&self, public_key: &str, now: Timestamp) -> Result<()>;
    /// Records this node's heartbeat: last seen at `now`, with `report`. A store only one
    /// node uses records nothing (its status is the node's own, read live).
    fn report_node(&self, report: &NodeReport, now: Timestamp) -> Result<()>;
    /// Every node with a log in this store, in name order: this node alone on SQLite,
    /// every registered node on PostgreSQL (a node's record, like its log, survives it).
    fn nodes(&self) -> Result<Vec<NodeRow>>;
}

/// Where each export sink is in each node's audit log (issue 23): a sink sends events
/// from its cursor on and moves it only after its receiver accepted them, so a restart
/// resumes where delivery stopped (at least once: a batch sent but not yet recorded is
/// sent again).
///
/// Cursor writes touch [`Topic::Export`] only: they change nothing a decision reads, and
/// are not audit events themselves (recording every delivery in the log being exported
/// would never let a sink catch up).
pub trait ExportRepo {
    /// The cursor of `sink` over `node`'s log: 0 when the sink never delivered any.
    fn export_cursor(&self, sink: &str, node: &str) -> Result<u64>;
    /// Moves the cursor of `sink` over `node`'s log to `next` at `now`.
    ///
    /// INVARIANT (cursors only advance): a `next` below the stored cursor is a
    /// `Conflict` and nothing is written; equal is a no-op success. A cursor moved back
    /// would re-send, and one moved past what was accepted would lose events.
    fn advance_export_cursor(
        &self,
        sink: &str,
        node: &str,
        next: u64,
        now: Timestamp,
    ) -> Result<()>;
    /// Every stored cursor, by sink then node.
    fn export_cursors(&self) -> Result<Vec<ExportCursorRow>>;
}

/// Shared Signals streams (SSF 1.0, issue 23) and the SETs queued for poll delivery
/// (RFC 8936). Every write touches [`Topic::Export`]: nothing a decision reads.
///
/// INVARIANT (acked once): a poll stream's queue holds each `jti` at most once, and an
/// acknowledged `jti` stays recorded (acknowledged) until its stream is deleted: queueing
/// it again changes nothing, so a SET sent again after a restart (at least once) is never
/// returned once its receiver acknowledged it.
pub trait SsfStreamRepo {
    /// Stores a new stream; a taken id is a `Conflict`.
    fn insert_ssf_stream(&self, s: &SsfStreamRow) -> Result<()>;
    /// Replaces stream `old` (as its caller read it) by `new`: its status,
    /// configuration and `updated_at` (`created_at` and the id stay).
    /// `NotFound("stream")` if it is gone; a `Conflict` if its status or configuration
    /// is no longer `old`'s (another node changed it meanwhile), and nothing is written:
    /// no change is lost to a concurrent one.
    fn update_ssf_stream(&self, old: &SsfStreamRow, new: &SsfStreamRow) -> Result<()>;
    /// One stream by id.
    fn ssf_stream(&self, id: &str) -> Result<Option<SsfStreamRow>>;
    /// Every stream, in id order.
    fn ssf_streams(&self) -> Result<Vec<SsfStreamRow>>;
    /// Deletes a stream and its queue; whether it existed.
    fn delete_ssf_stream(&self, id: &str) -> Result<bool>;
    /// Queues `sets` (`(jti, SET)`, in order) for poll delivery on `stream`; a `jti`
    /// already queued (acknowledged or not) is left as it is. `NotFound("stream")` if
    /// the stream is unknown.
    fn queue_ssf_sets(&self, stream: &str, sets: &[(String, String)]) -> Result<()>;
    /// The first `max` unacknowledged SETs of `stream`, in the order queued, and whether
    /// more are waiting.
    fn ssf_sets_to_poll(&self, stream: &str, max: u32) -> Result<(Vec<(String, String)>, bool)>;
    /// Marks the queued `jtis` of `stream` acknowledged at `now`; unknown ones are
    /// ignored (RFC 8936 §2.4). How many were newly acknowledged.
    fn ack_ssf_sets(&self, stream: &str, jtis: &[String], now: Timestamp) -> Result<u64>;
}

/// When each agent last had a decision and each credential last authenticated (the
/// inventory's "last activity" and "last used", issue 24). A node gathers them in
/// memory and writes them in batches, never on a decision's path, so a stored time may
/// lag the real one by the node's flush interval; the audit log stays the record.
///
/// INVARIANT (activity only moves later): a subject's stored time is the latest ever
/// recorded for it, whichever node recorded it and in whatever order batches land.
pub trait ActivityRepo {
    /// Raises each subject's (an `agt_…` or `crd_…` id) last activity to its time;
    /// an earlier time than the stored one changes nothing.
    fn record_activity(&self, rows: &[(String, Timestamp)]) -> Result<()>;
    /// Every subject's last activity, in subject order.
    fn activity(&self) -> Result<Vec<(String, Timestamp)>>;
}

/// Access review campaigns (issue 24) and their items, one per agent in scope. Every
/// write touches [`Topic::Reviews`]: nothing a decision reads.
///
/// INVARIANT (decided once): an item leaves `pending` once, by a compare-and-set on its
/// state inside the deciding unit ([`ReviewRepo::decide_review_item`]); two reviewers (or
/// a reviewer and a retry) cannot both decide it. A campaign completes once, when no
/// item is pending ([`ReviewRepo::complete_review`]).
pub trait ReviewRepo {
    /// Stores a new campaign and its items (each `pending`), all or none; a taken id is a
    /// `Conflict`.
    fn insert_review(&self, r: &ReviewRow, items: &[ReviewItemRow]) -> Result<()>;
    /// One campaign.
    fn review(&self, id: &str) -> Result<Option<ReviewRow>>;
    /// Campaigns in id (creation) order after the cursor, at most `limit`.
    fn reviews(&self, after: Option<&str>, limit: u32) -> Result<Vec<ReviewRow>>;
    /// Every item of a campaign, in agent id order (empty for an unknown campaign).
    fn review_items(&self, review: &str) -> Result<Vec<ReviewItemRow>>;
    /// Moves the pending item `(review, agent)` to `state` (not `pending`), decided by
    /// `by` at `at` with `decision` (JSON). An unknown item is `NotFound("review item")`;
    /// one no longer pending a `Conflict`, and nothing is written
    /// (`INVARIANT (decided once)`).
    fn decide_review_item(
        &self,
        review: &str,
        agent: &str,
        state: &str,
        by: &str,
        at: Timestamp,
        decision: &str,
    ) -> Result<ReviewItemRow>;
    /// Marks campaign `id` completed at `at` if it is open and no item of it is pending;
    /// whether this call completed it.
    fn complete_review(&self, id: &str, at: Timestamp) -> Result<bool>;
    /// Pending, never escalated items of open campaigns due at or before `now`, by
    /// campaign then agent, at most `limit`.
    fn overdue_review_items(&self, now: Timestamp, limit: u32) -> Result<Vec<ReviewItemRow>>;
    /// Marks a pending, never escalated item escalated at `at`; whether this call did
    /// (false: decided or escalated meanwhile, or unknown).
    fn escalate_review_item(&self, review: &str, agent: &str, at: Timestamp) -> Result<bool>;
}

/// Every repository: what a unit of work is handed.
pub trait Repos:
    AgentRepo
    + CredentialRepo
    + AdminTokenRepo
    + SigningKeyRepo
    + TokenRevocationRepo
    + AuditRepo
    + PolicyRepo
    + MandateRepo
    + AnomalyRepo
    + SecretRepo
    + StoreKeyRepo
    + NodeRepo
    + ExportRepo
    + SsfStreamRepo
    + ActivityRepo
    + ReviewRepo
{
}

impl<T> Repos for T where
    T: AgentRepo
        + CredentialRepo
        + AdminTokenRepo
        + SigningKeyRepo
        + TokenRevocationRepo
        + AuditRepo
        + PolicyRepo
        + MandateRepo
        + AnomalyRepo
        + SecretRepo
        + StoreKeyRepo
        + NodeRepo
        + ExportRepo
        + SsfStreamRepo
        + ActivityRepo
        + ReviewRepo
        + ?Sized
{
}

/// A unit of work: runs against the repositories; an error rolls every write back.
pub type Work<'a> = dyn FnMut(&dyn Repos) -> Result<()> + 'a;

/// A storage backend: units of work over [`Repos`], and the change feed.
///
/// What every backend must do is checked by the conformance kit
/// (`mandate_store::conformance`, feature `conformance`).
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Runs `work` against one consistent state of the store. A write inside is refused
    /// with [`StoreError::ReadOnly`].
    fn read_unit(&self, work: &mut Work<'_>) -> Result<()>;

    /// Runs `work` as one transaction: all its writes commit, or (when it or the commit
    /// fails) none do. Then publishes to the change feed the topics it wrote. `work` runs
    /// once (a backend that must retry a transaction returns the failure instead).
    ///
    /// Within one process, write units are serial: `work` acts on what it read, even
    /// through several repository methods (SQLite: one connection; PostgreSQL: a writer
    /// lock per process). Across processes on one database, each repository method keeps
    /// its own rule (the backend's row and advisory locks); whole units across nodes are
    /// the cluster's to order (issue 21).
    fn write_unit(&self, work: &mut Work<'_>) -> Result<()>;

    /// The sequence number of the last change that touched `topic`; it changes whenever
    /// such a change commits. A caller that read data of `topic` and found a fact may
    /// rely on it for as long as this number is unchanged, if it read the number
    /// *before* the data (see `INVARIANT (published before visible)` on
    /// [`crate::LocalFeed`]).
    fn topic_seq(&self, topic: Topic) -> u64;

    /// What changed after `after` (a sequence number from an earlier answer, or 0);
    /// waits up to `wait` if nothing has yet.
    fn changes_since(&self, after: u64, wait: Duration) -> Changes;

    /// How complete this node's change feed is known to be: [`Freshness::Local`] for a
    /// backend only this process writes (the default), a recent proof or none for a
    /// shared one. A node that cannot prove its feed complete refuses to decide.
    fn freshness(&self) -> Freshness {
        Freshness::Local
    }

    /// Whether this process may run the jobs that must run on one node at a time
    /// (approval timeouts, mandate expiry, key retirement). A backend only this process
    /// writes: always. A shared one: while this process holds the backend's leader lock.
    fn leads(&self) -> bool {
        true
    }

    /// One round trip to the backend (readiness): an error if it cannot be reached or
    /// read.
    fn ping(&self) -> Result<()>;

    /// A short description for logs (`sqlite /var/lib/mandate/mandate.db`); never holds a
    /// secret.
    fn describe(&self) -> String;
}

/// Runs `f` once in a read or write unit of `store` and returns its value.
pub(crate) fn run<S: Store + ?Sized, T>(
    store: &S,
    writes: bool,
    f: impl FnOnce(&dyn Repos) -> Result<T>,
) -> Result<T> {
    let mut f = Some(f);
    let mut out = None;
    let mut work = |r: &dyn Repos| {
        let f = f.take().ok_or_else(ran_twice)?;
        out = Some(f(r)?);
        Ok(())
    };
    if writes {
        store.write_unit(&mut work)?;
    } else {
        store.read_unit(&mut work)?;
    }
    out.ok_or_else(not_run)
}

pub(crate) fn ran_twice() -> StoreError {
    StoreError::Backend {
        backend: "store",
        message: "a unit of work was run twice".into(),
    }
}

fn not_run() -> StoreError {
    StoreError::Backend {
        backend: "store",
        message: "a unit of work finished without running its work".into(),
    }
}

/// Runs `f` in a read unit of `store`.
fn read<S: Store + ?Sized, T>(store: &S, f: impl FnOnce(&dyn Repos) -> Result<T>) -> Result<T> {
    run(store, false, f)
}

/// Runs `f` in a write unit of `store`.
fn write<S: Store + ?Sized, T>(store: &S, f: impl FnOnce(&dyn Repos) -> Result<T>) -> Result<T> {
    run(store, true, f)
}

// Every repository, for the store itself: each call one unit of work.

impl<S: Store + ?Sized> AgentRepo for S {
    fn insert_agent(&self, a: &Agent) -> Result<()> {
        write(self, |r| r.insert_agent(a))
    }
    fn get_agent(&self, id: &AgentId) -> Result<Option<Agent>> {
        read(self, |r| r.get_agent(id))
    }
    fn list_agents(
        &self,
        filter: &AgentFilter,
        after: Option<&AgentId>,
        limit: u32,
    ) -> Result<Vec<Agent>> {
        read(self, |r| r.list_agents(filter, after, limit))
    }
    fn for_each_agent(&self, each: &mut dyn FnMut(Agent)) -> Result<()> {
        read(self, |r| r.for_each_agent(each))
    }
    fn update_agent(
        &self,
        id: &AgentId,
        now: Timestamp,
        revoke_tokens: bool,
        change: &mut AgentChange<'_>,
    ) -> Result<Agent> {
        write(self, |r| r.update_agent(id, now, revoke_tokens, change))
    }
}

impl<S: Store + ?Sized> CredentialRepo for S {
    fn insert_credential(&self, c: &Credential, secret_hash: Option<&str>) -> Result<()> {
        write(self, |r| r.insert_credential(c, secret_hash))
    }
    fn credentials(&self, agent: &AgentId) -> Result<Vec<AuthCredential>> {
        read(self, |r| r.credentials(agent))
    }
    fn for_each_credential(&self, each: &mut dyn FnMut(Credential)) -> Result<()> {
        read(self, |r| r.for_each_credential(each))
    }
    fn rotate_credential(
        &self,
        old: &CredentialId,
        new: &Credential,
        secret_hash: Option<&str>,
        old_until: Timestamp,
        now: Timestamp,
    ) -> Result<()> {
        write(self, |r| {
            r.rotate_credential(old, new, secret_hash, old_until, now)
        })
    }
    fn revoke_credential(&self, agent: &AgentId, id: &CredentialId, now: Timestamp) -> Result<()> {
        write(self, |r| r.revoke_credential(agent, id, now))
    }
}

impl<S: Store + ?Sized> AdminTokenRepo for S {
    fn insert_admin_token(&self, t: &AdminToken, digest: &str) -> Result<()> {
        write(self, |r| r.insert_admin_token(t, digest))
    }
    fn set_bootstrap_digest(&self, new: &AdminToken, digest: &str) -> Result<()> {
        write(self, |r| r.set_bootstrap_digest(new, digest))
    }
    fn has_bootstrap(&self) -> Result<bool> {
        read(self, |r| r.has_bootstrap())
    }
    fn admin_token_by_digest(&self, digest: &str) -> Result<Option<AdminToken>> {
        read(self, |r| r.admin_token_by_digest(digest))
    }
    fn list_admin_tokens(&self) -> Result<Vec<AdminToken>> {
        read(self, |r| r.list_admin_tokens())
    }
    fn revoke_admin_token(&self, id: &AdminTokenId, now: Timestamp) -> Result<()> {
        write(self, |r| r.revoke_admin_token(id, now))
    }
}

impl<S: Store + ?Sized> SigningKeyRepo for S {
    fn add_signing_key(
        &self,
        key: &NewSigningKey<'_>,
        replaces: Option<&str>,
        now: Timestamp,
        old_publish_until: Timestamp,
    ) -> Result<()> {
        write(self, |r| {
            r.add_signing_key(key, replaces, now, old_publish_until)
        })
    }
    fn published_signing_keys(&self, now: Timestamp) -> Result<Vec<SigningKeyRow>> {
        read(self, |r| r.published_signing_keys(now))
    }
    fn signing_key_sealed(&self, kid: &str) -> Result<Option<Vec<u8>>> {
        read(self, |r| r.signing_key_sealed(kid))
    }
    fn import_signing_key_sealed(&self, kid: &str, sealed: &[u8]) -> Result<bool> {
        write(self, |r| r.import_signing_key_sealed(kid, sealed))
    }
}

impl<S: Store + ?Sized> TokenRevocationRepo for S {
    fn record_assertion_jti(
        &self,
        client: &AgentId,
        jti: &str,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<bool> {
        write(self, |r| {
            r.record_assertion_jti(client, jti, expires_at, now)
        })
    }
    fn revoke_token(&self, jti: &str, expires_at: Timestamp, now: Timestamp) -> Result<()> {
        write(self, |r| r.revoke_token(jti, expires_at, now))
    }
    fn set_tokens_not_before(&self, agent: &AgentId, at: Timestamp) -> Result<()> {
        write(self, |r| r.set_tokens_not_before(agent, at))
    }
    fn tokens_not_before(&self, agent: &AgentId) -> Result<Option<Timestamp>> {
        read(self, |r| r.tokens_not_before(agent))
    }
    fn is_token_revoked(&self, jti: &str) -> Result<bool> {
        read(self, |r| r.is_token_revoked(jti))
    }
    fn token_cutoffs(&self) -> Result<Vec<(AgentId, Timestamp)>> {
        read(self, |r| r.token_cutoffs())
    }
    fn revoked_jtis(&self, now: Timestamp) -> Result<Vec<String>> {
        read(self, |r| r.revoked_jtis(now))
    }
    fn set_user_sessions_not_before(&self, issuer: &str, sub: &str, at: Timestamp) -> Result<()> {
        write(self, |r| r.set_user_sessions_not_before(issuer, sub, at))
    }
    fn user_session_cutoffs(&self) -> Result<Vec<(String, String, Timestamp)>> {
        read(self, |r| r.user_session_cutoffs())
    }
}

impl<S: Store + ?Sized> AuditRepo for S {
    fn append_audit(&self, rows: &[AuditRow], checkpoint: Option<&CheckpointRow>) -> Result<()> {
        write(self, |r| r.append_audit(rows, checkpoint))
    }
    fn audit_leaves(&self, size: u64) -> Result<Vec<[u8; 32]>> {
        read(self, |r| r.audit_leaves(size))
    }
    fn audit_len(&self) -> Result<u64> {
        read(self, |r| r.audit_len())
    }
    fn list_audit(
        &self,
        filter: &AuditFilter,
        after: Option<u64>,
        limit: u32,
    ) -> Result<Vec<(u64, String)>> {
        read(self, |r| r.list_audit(filter, after, limit))
    }
    fn list_audit_of(
        &self,
        node: &str,
        filter: &AuditFilter,
        after: Option<u64>,
        limit: u32,
    ) -> Result<Vec<(u64, String)>> {
        read(self, |r| r.list_audit_of(node, filter, after, limit))
    }
    fn count_audit(&self, filter: &AuditFilter) -> Result<u64> {
        read(self, |r| r.count_audit(filter))
    }
    fn recent_audit_of_agent(
        &self,
        agent: &str,
        before: u64,
        limit: u32,
    ) -> Result<Vec<(u64, String)>> {
        read(self, |r| r.recent_audit_of_agent(agent, before, limit))
    }
    fn audit_bodies(&self, from: u64, to: u64) -> Result<Vec<String>> {
        read(self, |r| r.audit_bodies(from, to))
    }
    fn audit_rows(&self, from: u64, to: u64) -> Result<Vec<(AuditColumns, String)>> {
        read(self, |r| r.audit_rows(from, to))
    }
    fn insert_checkpoint(&self, c: &CheckpointRow) -> Result<()> {
        write(self, |r| r.insert_checkpoint(c))
    }
    fn checkpoint_of_size(&self, size: u64) -> Result<Option<CheckpointRow>> {
        read(self, |r| r.checkpoint_of_size(size))
    }
    fn checkpoints(&self) -> Result<Vec<CheckpointRow>> {
        read(self, |r| r.checkpoints())
    }
    fn checkpoints_of(&self, node: &str) -> Result<Vec<CheckpointRow>> {
        read(self, |r| r.checkpoints_of(node))
    }
    fn audit_bodies_of(&self, node: &str, from: u64, to: u64) -> Result<Vec<String>> {
        read(self, |r| r.audit_bodies_of(node, from, to))
    }
}

impl<S: Store + ?Sized> PolicyRepo for S {
    fn insert_policy_version(
        &self,
        policies: &str,
        fragments: &[String],
        rego: &str,
        note: &str,
        at: Timestamp,
        by: &str,
    ) -> Result<i64> {
        write(self, |r| {
            r.insert_policy_version(policies, fragments, rego, note, at, by)
        })
    }
    fn policy_version(&self, version: i64) -> Result<Option<PolicyVersionRow>> {
        read(self, |r| r.policy_version(version))
    }
    fn policy_versions(&self) -> Result<Vec<PolicyVersionRow>> {
        read(self, |r| r.policy_versions())
    }
    fn activate_policy_version(&self, version: i64, at: Timestamp, by: &str) -> Result<()> {
        write(self, |r| r.activate_policy_version(version, at, by))
    }
    fn policy_activation_state(&self) -> Result<(Option<i64>, Option<i64>)> {
        read(self, |r| r.policy_activation_state())
    }
}

impl<S: Store + ?Sized> MandateRepo for S {
    fn insert_mandate(&self, m: &Mandate) -> Result<()> {
        write(self, |r| r.insert_mandate(m))
    }
    fn get_mandate(&self, id: &MandateId) -> Result<Option<Mandate>> {
        read(self, |r| r.get_mandate(id))
    }
    fn list_mandates(
        &self,
        filter: &MandateFilter,
        after: Option<&MandateId>,
        limit: u32,
    ) -> Result<Vec<Mandate>> {
        read(self, |r| r.list_mandates(filter, after, limit))
    }
    fn update_mandate(
        &self,
        id: &MandateId,
        with_owner: bool,
        change: &mut MandateChange<'_>,
    ) -> Result<Mandate> {
        write(self, |r| r.update_mandate(id, with_owner, change))
    }
    fn active_mandates(&self, now: Timestamp) -> Result<Vec<Mandate>> {
        read(self, |r| r.active_mandates(now))
    }
    fn lapsed_mandates(&self, now: Timestamp, limit: u32) -> Result<Vec<Mandate>> {
        read(self, |r| r.lapsed_mandates(now, limit))
    }
    fn mandates_of_agent(&self, agent: &AgentId) -> Result<Vec<Mandate>> {
        read(self, |r| r.mandates_of_agent(agent))
    }
}

impl<S: Store + ?Sized> AnomalyRepo for S {
    fn insert_anomalies(&self, rows: &[AnomalyRow]) -> Result<()> {
        write(self, |r| r.insert_anomalies(rows))
    }
    fn get_anomaly(&self, id: &AnomalyId) -> Result<Option<AnomalyRow>> {
        read(self, |r| r.get_anomaly(id))
    }
    fn list_anomalies(
        &self,
        filter: &AnomalyFilter,
        before: Option<&AnomalyId>,
        limit: u32,
    ) -> Result<Vec<AnomalyRow>> {
        read(self, |r| r.list_anomalies(filter, before, limit))
    }
    fn resolve_anomaly(
        &self,
        id: &AnomalyId,
        status: &str,
        by: &str,
        comment: Option<&str>,
        now: Timestamp,
    ) -> Result<AnomalyRow> {
        write(self, |r| r.resolve_anomaly(id, status, by, comment, now))
    }
    fn open_holds(&self) -> Result<Vec<AnomalyRow>> {
        read(self, |r| r.open_holds())
    }
    fn save_baselines(&self, rows: &[(String, String)], now: Timestamp) -> Result<()> {
        write(self, |r| r.save_baselines(rows, now))
    }
    fn baselines(&self) -> Result<Vec<(String, String)>> {
        read(self, |r| r.baselines())
    }
}

impl<S: Store + ?Sized> SecretRepo for S {
    fn put_secret(
        &self,
        name: &str,
        nonce: &[u8],
        ciphertext: &[u8],
        now: Timestamp,
    ) -> Result<()> {
        write(self, |r| r.put_secret(name, nonce, ciphertext, now))
    }
    fn get_secret(&self, name: &str) -> Result<Option<SecretRow>> {
        read(self, |r| r.get_secret(name))
    }
    fn secrets(&self) -> Result<Vec<SecretRow>> {
        read(self, |r| r.secrets())
    }
    fn delete_secret(&self, name: &str) -> Result<bool> {
        write(self, |r| r.delete_secret(name))
    }
}

impl<S: Store + ?Sized> StoreKeyRepo for S {
    fn store_key_check(&self) -> Result<Option<String>> {
        read(self, |r| r.store_key_check())
    }
    fn claim_store_key_check(&self, check: &str) -> Result<String> {
        write(self, |r| r.claim_store_key_check(check))
    }
}

impl<S: Store + ?Sized> NodeRepo for S {
    fn node_name(&self, make: &mut dyn FnMut() -> String) -> Result<String> {
        write(self, |r| r.node_name(make))
    }
    fn set_audit_key(&self, public_key: &str, now: Timestamp) -> Result<()> {
        write(self, |r| r.set_audit_key(public_key, now))
    }
    fn report_node(&self, report: &NodeReport, now: Timestamp) -> Result<()> {
        write(self, |r| r.report_node(report, now))
    }
    fn nodes(&self) -> Result<Vec<NodeRow>> {
        read(self, |r| r.nodes())
    }
}

impl<S: Store + ?Sized> ExportRepo for S {
    fn export_cursor(&self, sink: &str, node: &str) -> Result<u64> {
        read(self, |r| r.export_cursor(sink, node))
    }
    fn advance_export_cursor(
        &self,
        sink: &str,
        node: &str,
        next: u64,
        now: Timestamp,
    ) -> Result<()> {
        write(self, |r| r.advance_export_cursor(sink, node, next, now))
    }
    fn export_cursors(&self) -> Result<Vec<ExportCursorRow>> {
        read(self, |r| r.export_cursors())
    }
}

impl<S: Store + ?Sized> SsfStreamRepo for S {
    fn insert_ssf_stream(&self, s: &SsfStreamRow) -> Result<()> {
        write(self, |r| r.insert_ssf_stream(s))
    }
    fn update_ssf_stream(&self, old: &SsfStreamRow, new: &SsfStreamRow) -> Result<()> {
        write(self, |r| r.update_ssf_stream(old, new))
    }
    fn ssf_stream(&self, id: &str) -> Result<Option<SsfStreamRow>> {
        read(self, |r| r.ssf_stream(id))
    }
    fn ssf_streams(&self) -> Result<Vec<SsfStreamRow>> {
        read(self, |r| r.ssf_streams())
    }
    fn delete_ssf_stream(&self, id: &str) -> Result<bool> {
        write(self, |r| r.delete_ssf_stream(id))
    }
    fn queue_ssf_sets(&self, stream: &str, sets: &[(String, String)]) -> Result<()> {
        write(self, |r| r.queue_ssf_sets(stream, sets))
    }
    fn ssf_sets_to_poll(&self, stream: &str, max: u32) -> Result<(Vec<(String, String)>, bool)> {
        read(self, |r| r.ssf_sets_to_poll(stream, max))
    }
    fn ack_ssf_sets(&self, stream: &str, jtis: &[String], now: Timestamp) -> Result<u64> {
        write(self, |r| r.ack_ssf_sets(stream, jtis, now))
    }
}

impl<S: Store + ?Sized> ActivityRepo for S {
    fn record_activity(&self, rows: &[(String, Timestamp)]) -> Result<()> {
        write(self, |r| r.record_activity(rows))
    }
    fn activity(&self) -> Result<Vec<(String, Timestamp)>> {
        read(self, |r| r.activity())
    }
}

impl<S: Store + ?Sized> ReviewRepo for S {
    fn insert_review(&self, r: &ReviewRow, items: &[ReviewItemRow]) -> Result<()> {
        write(self, |x| x.insert_review(r, items))
    }
    fn review(&self, id: &str) -> Result<Option<ReviewRow>> {
        read(self, |x| x.review(id))
    }
    fn reviews(&self, after: Option<&str>, limit: u32) -> Result<Vec<ReviewRow>> {
        read(self, |x| x.reviews(after, limit))
    }
    fn review_items(&self, review: &str) -> Result<Vec<ReviewItemRow>> {
        read(self, |x| x.review_items(review))
    }
    fn decide_review_item(
        &self,
        review: &str,
        agent: &str,
        state: &str,
        by: &str,
        at: Timestamp,
        decision: &str,
    ) -> Result<ReviewItemRow> {
        write(self, |x| {
            x.decide_review_item(review, agent, state, by, at, decision)
        })
    }
    fn complete_review(&self, id: &str, at: Timestamp) -> Result<bool> {
        write(self, |x| x.complete_review(id, at))
    }
    fn overdue_review_items(&self, now: Timestamp, limit: u32) -> Result<Vec<ReviewItemRow>> {
        read(self, |x| x.overdue_review_items(now, limit))
    }
    fn escalate_review_item(&self, review: &str, agent: &str, at: Timestamp) -> Result<bool> {
        write(self, |x| x.escalate_review_item(review, agent, at))
    }
}

/// The rule of [`CredentialRepo::rotate_credential`], for every backend to call on the
/// `old` credential it read (locked) in the rotating unit: `old` must be of `new`'s kind,
/// usable at `now` and not yet replaced (`Conflict` otherwise); returns until when `old`
/// may still work, `old_until` but never past an earlier expiry of its own.
pub fn rotation_until(
    old: &Credential,
    new: &Credential,
    old_until: Timestamp,
    now: Timestamp,
) -> Result<Timestamp> {
    if old.kind != new.kind {
        return Err(StoreError::Conflict(format!(
            "credential `{}` is a {}, not a {}",
            old.id,
            old.kind.as_str(),
            new.kind.as_str()
        )));
    }
    if !old.usable_at(now) || old.replaced_by.is_some() {
        return Err(StoreError::Conflict(format!(
            "credential `{}` is no longer active",
            old.id
        )));
    }
    Ok(old.expires_at.map_or(old_until, |e| e.min(old_until)))
}
