//! The OpenID Shared Signals (SSF 1.0) receiver (issue 23): when a person's IdP says
//! their session was revoked or their account disabled (CAEP `session-revoked`, RISC
//! `account-disabled` or `sessions-revoked`), every mandate agents hold for that person
//! ends, and with it every token delegated under those mandates (a delegated token is
//! good only while its mandate is active, mandate-engine `holder`).
//!
//! A SET (RFC 8417) is pushed to the receiver (RFC 8935) by a transmitter configured in
//! `[[ssf.transmitters]]` and verified by `mandate_token::set` (signature by the
//! transmitter's JWKS, `typ`, `iss`, `aud`, `iat` within a day, one event). Then:
//!
//! - INVARIANT (a transmitter speaks for its own users): the subject must be a user of
//!   the issuer the transmitter speaks for (`users_issuer`, by default its own `iss`):
//!   `iss_sub` with that `iss`, `opaque` (a `sub` there), or `email` (matched only among
//!   that issuer's users). One IdP can never end another IdP's users' mandates.
//! - INVARIANT (a replay revokes nothing new): only mandates created at or before the
//!   SET's `iat` end. A replayed SET (within the day `iat` allows; a `jti` seen before is
//!   also refused while this node remembers it) finds those already ended, and a
//!   mandate a person asked for after their session ended is not touched by it.
//! - INVARIANT (a revoked session stays revoked): before the mandates end, the person's
//!   sessions do: their user tokens issued at or before the SET's `iat` are refused from
//!   then on, on every node (a cutoff in the store, read through the decision snapshot;
//!   `Node::verify_user_token`), so an agent holding an old token of theirs cannot start a
//!   new mandate or exchange it for a delegated token.
//! - A subject named by `sub` (`iss_sub`, `opaque`) has their sessions ended even when
//!   no mandate names them: an approver owns no mandate, yet their old user token
//!   approves others'. Only an `email` subject no mandate ever named is refused
//!   (`invalid_request`): Mandate cannot tell whose sessions that address ends.
//!
//! Every SET is recorded before the answer: `ssf.received` (what it said, what ended) or
//! `ssf.refused` (why), and each mandate it ends as `mandate.revoked` by `ssf`. Any
//! failure to revoke is an error the transmitter sees (5xx), so it sends again; never an
//! acknowledgement of an event not acted on. Such a SET's `jti` is forgotten, so the
//! retry is acted on rather than refused as a replay.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use mandate_core::mandate::{Mandate, MandateStatus};
use mandate_core::time::Timestamp;
use mandate_store::MandateFilter;
use mandate_store::prelude::*;
use mandate_token::set::{MAX_SET_AGE_SECS, SetError, VerifiedSet, verify_set};
use serde_json::{Value, json};

use crate::Node;
use crate::actor::{Actor, System};
use crate::acts;
use crate::error::ServiceError;
use crate::write_path::Recorded;

/// CAEP: a session of the subject was revoked.
pub const CAEP_SESSION_REVOKED: &str =
    "https://schemas.openid.net/secevent/caep/event-type/session-revoked";
/// RISC: the subject's account was disabled.
pub const RISC_ACCOUNT_DISABLED: &str =
    "https://schemas.openid.net/secevent/risc/event-type/account-disabled";
/// RISC: every session of the subject was revoked.
pub const RISC_SESSIONS_REVOKED: &str =
    "https://schemas.openid.net/secevent/risc/event-type/sessions-revoked";
/// SSF: a transmitter checking the stream works (answered, nothing done).
pub const SSF_VERIFICATION: &str =
    "https://schemas.openid.net/secevent/ssf/event-type/verification";

pub use crate::config::SsfTransmitters as Transmitters;

/// `jti`s seen recently, per transmitter, with when they may be forgotten.
#[derive(Debug, Default)]
pub struct Seen(Mutex<HashMap<(String, String), i64>>);

impl Seen {
    /// The most remembered at once; beyond it the oldest are forgotten first (the
    /// `iat`-only revocation keeps a forgotten replay harmless).
    const MAX: usize = 100_000;

    /// Whether `(iss, jti)` is new (and remembers it until `until`).
    fn first(&self, iss: &str, jti: &str, now: i64, until: i64) -> bool {
        let mut m = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if m.len() >= Self::MAX {
            m.retain(|_, t| *t > now);
            if m.len() >= Self::MAX
                && let Some(oldest) = m.iter().min_by_key(|(_, t)| **t).map(|(k, _)| k.clone())
            {
                m.remove(&oldest);
            }
        }
        m.insert((iss.to_owned(), jti.to_owned()), until).is_none()
    }

    /// Forgets `(iss, jti)`: a SET Mandate could not act on, whose retry is not a replay.
    fn forget(&self, iss: &str, jti: &str) {
        let mut m = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        m.remove(&(iss.to_owned(), jti.to_owned()));
    }
}

/// A SET not acted on: the RFC 8935 §2.3 error code and a description (never the
/// token).
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// The SET is not acceptable (400 with `err` = `code`).
    #[error("{description}")]
    Set {
        /// `invalid_request`, `invalid_key`, `invalid_issuer`, `invalid_audience`,
        /// `authentication_failed`.
        code: &'static str,
        /// Why, for the transmitter's operator.
        description: String,
    },
    /// Mandate could not act on it now (the store): the transmitter should send it again.
    #[error(transparent)]
    Service(#[from] ServiceError),
}

/// What a SET came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// Its event type.
    pub event_type: String,
    /// The mandates it ended.
    pub revoked: Vec<String>,
}

/// Whom a SET is about, once checked against its transmitter.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Who {
    /// A user by their `sub` at the transmitter's users' issuer.
    Sub(String),
    /// A user by email among that issuer's users.
    Email(String),
}

/// Receives one pushed SET: verifies it, ends what it calls for, records it.
pub async fn receive(node: &Arc<Node>, token: &str) -> Result<Receipt, Refused> {
    let now = node.clock.now();
    let transmitters = Arc::clone(&node.config.ssf);
    let set = match verify_set(&transmitters.verifiers, token, now) {
        Ok(s) => s,
        Err(e) => return Err(refuse(node, None, &e).await),
    };
    let until = set.issued_at.secs().saturating_add(MAX_SET_AGE_SECS);
    let (issuer, jti) = (set.issuer.clone(), set.jti.clone());
    if !node
        .ssf_seen
        .first(&set.issuer, &set.jti, now.secs(), until)
    {
        let e = SetError::Claims("this `jti` was received before (a replay)".into());
        return Err(refuse(node, Some(&set), &e).await);
    }
    let done = act(node, &transmitters, set, now).await;
    if let Err(Refused::Service(_)) = &done {
        // INVARIANT (a retry is not a replay): a SET answered with a 5xx was not acted
        // on (or only in part); the transmitter sends it again under the same `jti`,
        // and that retry must be acted on, not refused as a replay (a 400, which the
        // transmitter takes as final: the signal would be lost).
        node.ssf_seen.forget(&issuer, &jti);
    }
    done
}

/// What a verified, first-seen SET calls for: done and recorded, or refused.
async fn act(
    node: &Arc<Node>,
    transmitters: &Transmitters,
    set: VerifiedSet,
    now: Timestamp,
) -> Result<Receipt, Refused> {
    let acts_on = matches!(
        set.event_type.as_str(),
        CAEP_SESSION_REVOKED | RISC_ACCOUNT_DISABLED | RISC_SESSIONS_REVOKED
    );
    if !acts_on {
        // A verification event, or one Mandate does not act on: acknowledged (RFC 8935
        // has a receiver accept SETs it does not act on) and recorded.
        record(node, &set, None, &[], "ignored").await?;
        return Ok(Receipt {
            event_type: set.event_type,
            revoked: Vec::new(),
        });
    }
    let users_issuer = transmitters
        .users_issuer
        .get(&set.issuer)
        .cloned()
        .unwrap_or_else(|| set.issuer.clone());
    let who = match who(&set, &users_issuer) {
        Ok(w) => w,
        Err(d) => {
            let e = SetError::Claims(d);
            return Err(refuse(node, Some(&set), &e).await);
        }
    };
    let (mut known, live) = {
        let (who, issuer, before) = (who.clone(), users_issuer.clone(), set.issued_at);
        node.blocking(move |s| mandates_of(s, &who, &issuer, before, now))
            .await
            .map_err(ServiceError::from)?
            .map_err(ServiceError::from)?
    };
    // A person named by `sub` whom no mandate names still has sessions to end: an
    // approver (who approves others' mandates and owns none), or someone whose stolen
    // token an agent has yet to use. Refusing the SET would leave their old tokens good
    // at Mandate (adversarial pass atk8). Only an email Mandate cannot map to a `sub` is
    // refused.
    if let Who::Sub(sub) = &who {
        known.insert(sub.clone());
    }
    if known.is_empty() {
        let e = SetError::Claims("no user Mandate knows matches the subject".into());
        return Err(refuse(node, Some(&set), &e).await);
    }
    // INVARIANT (a revoked session stays revoked): first the user's sessions end (their
    // user tokens issued up to the SET's `iat` are refused from now on, on every node),
    // then their mandates: an agent cannot start a new mandate with the person's old
    // token between the two, or after.
    {
        let (issuer, at) = (users_issuer.clone(), set.issued_at);
        node.blocking(move |s| -> Result<(), StoreError> {
            for sub in &known {
                s.store().set_user_sessions_not_before(&issuer, sub, at)?;
            }
            Ok(())
        })
        .await
        .map_err(ServiceError::from)?
        .map_err(ServiceError::from)?;
    }
    let mut revoked = Vec::new();
    for m in live {
        if let Some(id) = revoke(node, &set, m).await? {
            revoked.push(id);
        }
    }
    record(node, &set, Some(&who), &revoked, "revoked").await?;
    tracing::info!(issuer = %set.issuer, event = %set.event_type, revoked = revoked.len(), "shared signal acted on");
    Ok(Receipt {
        event_type: set.event_type,
        revoked,
    })
}

/// Records `ssf.refused` for a push refused before its body could be read as a SET (not
/// `application/secevent+jwt`, over [`mandate_token::set::MAX_SET_BYTES`], not UTF-8)
/// and returns the refusal (`invalid_request`, `why`): every refusal is recorded, not
/// only those of SETs that parsed.
pub async fn refuse_unread(node: &Arc<Node>, why: &'static str) -> Refused {
    refuse(node, None, &SetError::Malformed(why)).await
}

/// Whom `set` is about, as a user of `users_issuer`; or why it cannot say.
fn who(set: &VerifiedSet, users_issuer: &str) -> Result<Who, String> {
    let mut subject = set
        .subject
        .as_ref()
        .ok_or("the SET names no subject (`sub_id`)")?;
    // A complex subject (RFC 9493 §3.2.x, SSF 1.0 §3.3): its `user` member.
    if subject.get("format").and_then(Value::as_str) == Some("complex") {
        subject = subject
            .get("user")
            .ok_or("a complex subject without a `user` member names no user")?;
    }
    let text = |name: &str| -> Result<String, String> {
        match subject.get(name).and_then(Value::as_str) {
            Some(v) if !v.is_empty() && v.chars().count() <= 256 => Ok(v.to_owned()),
            _ => Err(format!(
                "the subject's `{name}` must be a string of 1 to 256 characters"
            )),
        }
    };
    match subject.get("format").and_then(Value::as_str) {
        Some("iss_sub") => {
            let iss = text("iss")?;
            if iss != users_issuer {
                return Err(format!(
                    "the subject's issuer `{iss}` is not the one this transmitter speaks for"
                ));
            }
            Ok(Who::Sub(text("sub")?))
        }
        Some("opaque") => Ok(Who::Sub(text("id")?)),
        Some("email") => Ok(Who::Email(text("email")?)),
        Some(other) => Err(format!(
            "subject format `{other}` is not supported (iss_sub, opaque, email, complex)"
        )),
        None => Err("the subject has no `format`".into()),
    }
}

/// The subjects of every mandate that ever named the user (empty: a stranger), and their
/// live mandates created at or before
/// `before` (the SET's `iat`).
fn mandates_of(
    s: &Node,
    who: &Who,
    issuer: &str,
    before: Timestamp,
    now: Timestamp,
) -> Result<(std::collections::BTreeSet<String>, Vec<Mandate>), StoreError> {
    let mut known = std::collections::BTreeSet::new();
    let mut live = Vec::new();
    let filter = MandateFilter {
        user_sub: match who {
            Who::Sub(sub) => Some(sub.clone()),
            Who::Email(_) => None,
        },
        ..MandateFilter::default()
    };
    let mut after = None;
    loop {
        let page = s.db.list_mandates(&filter, after.as_ref(), 500)?;
        for m in &page {
            let Some(u) = &m.user else { continue };
            let same = u.issuer == issuer
                && match who {
                    Who::Sub(sub) => u.sub == *sub,
                    Who::Email(e) => u
                        .email
                        .as_deref()
                        .is_some_and(|x| x.eq_ignore_ascii_case(e)),
                };
            if !same {
                continue;
            }
            known.insert(u.sub.clone());
            let status = m.status_at(now);
            if matches!(
                status,
                MandateStatus::PendingApproval | MandateStatus::Active
            ) && m.created_at <= before
            {
                live.push(m.clone());
            }
        }
        match page.last() {
            Some(last) if page.len() == 500 => after = Some(last.id.clone()),
            _ => break,
        }
    }
    Ok((known, live))
}

/// Ends `m` as `ssf` (recorded `mandate.revoked`); its id, or `None` when it ended
/// meanwhile by other means.
async fn revoke(
    node: &Arc<Node>,
    set: &VerifiedSet,
    m: Mandate,
) -> Result<Option<String>, ServiceError> {
    let actor = Actor::System(System::SharedSignals);
    let by = actor.clone();
    let reason = format!(
        "{} from {} (SET {})",
        short(&set.event_type),
        set.issuer,
        set.jti
    );
    let id = m.id.clone();
    let done = node
        .perform("mandate.revoked", &actor, move |s| {
            let now = s.clock.now();
            match acts::revoke_mandate(&s.store(), &id, &by, now, |_, _| Ok(())) {
                Ok((m, was)) => {
                    s.mandates_changed();
                    let details = json!({"mandate": m.id, "status": m.status,
                        "previous_status": was, "intent": m.intent, "reason": reason});
                    Ok((m.id.to_string(), Recorded::mandate(&m, details)))
                }
                Err(acts::ActError::NotLive { .. }) => Err(Revoke::NotLive),
                Err(e) => Err(Revoke::Failed(ServiceError::from(e))),
            }
        })
        .await;
    match done {
        Ok(id) => Ok(Some(id)),
        Err(Revoke::NotLive) => Ok(None),
        Err(Revoke::Failed(e)) => Err(e),
    }
}

/// Why one revocation did not happen.
enum Revoke {
    /// The mandate ended meanwhile: nothing to do.
    NotLive,
    /// Anything else.
    Failed(ServiceError),
}

impl From<ServiceError> for Revoke {
    fn from(e: ServiceError) -> Self {
        Self::Failed(e)
    }
}

/// The last path segment of an event type URI (`session-revoked`).
fn short(event_type: &str) -> &str {
    event_type.rsplit('/').next().unwrap_or(event_type)
}

/// Records `ssf.received`: what `set` said, about whom, what it ended (`action`:
/// `revoked` or `ignored`); durable before the answer.
async fn record(
    node: &Arc<Node>,
    set: &VerifiedSet,
    who: Option<&Who>,
    revoked: &[String],
    action: &str,
) -> Result<(), ServiceError> {
    let mut e = node.event("ssf.received");
    e.actor = Some(format!("ssf:{}", set.issuer));
    if let Some(Who::Sub(sub)) = who {
        e.user = Some(sub.clone());
    }
    e.details = Some(json!({
        "issuer": set.issuer,
        "jti": set.jti,
        "event_type": set.event_type,
        "subject": set.subject,
        "action": action,
        "revoked": revoked,
    }));
    node.audit
        .record(e)
        .await
        .map(|_| ())
        .map_err(|_| ServiceError::AuditUnavailable)
}

/// Records `ssf.refused` (why: `error`'s RFC 8935 code and text; the transmitter if the
/// SET named a trusted one) and returns the refusal. If even the record fails, the
/// answer is a 5xx: the transmitter sends again.
async fn refuse(node: &Arc<Node>, set: Option<&VerifiedSet>, error: &SetError) -> Refused {
    let (code, description) = (error.code(), error.to_string());
    let mut e = node.event("ssf.refused");
    e.reasons = vec![code.to_owned()];
    e.details = Some(json!({
        "error": code,
        "description": description,
        "issuer": set.map(|s| s.issuer.as_str()),
        "jti": set.map(|s| s.jti.as_str()),
        "event_type": set.map(|s| s.event_type.as_str()),
    }));
    if let Some(s) = set {
        e.actor = Some(format!("ssf:{}", s.issuer));
    }
    match node.audit.record(e).await {
        Ok(_) => Refused::Set { code, description },
        Err(_) => Refused::Service(ServiceError::AuditUnavailable),
    }
}
