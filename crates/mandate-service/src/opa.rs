//! OPA's Data API as a use case: a query of the active version's Rego document
//! (`data.<path>`) with an input, answered from the snapshot and recorded like a
//! decision (`opa.decision`) before anyone is answered.
//!
//! What Mandate adds to OPA's contract:
//! - INVARIANT (subject from the token): when an agent asks with its own access token,
//!   `input.subject` is what Mandate verified ([`subject`]: id, name, `kind:
//!   "ai-agent"`, owner, labels, and for a mandate token the user and mandate), never
//!   what the caller wrote there; an agent that may not act (suspended, decommissioned,
//!   revoked, cut off, or its token issued for someone else) is refused
//!   ([`DataOutcome::Refused`]) and its query never reaches Rego.
//! - Every query, answered or refused, is in the tamper-evident log: path, input (with
//!   the configured redaction), result (redacted the same way), policy version, caller.

use std::sync::Arc;

use mandate_audit::event::AuditEvent;
use mandate_engine::decide::{Refusal, Snapshot, holder};
use mandate_policy::{Budget, RegoError};
use mandate_token::access::AccessClaims;
use serde_json::{Map, Value, json};

use crate::Node;
use crate::decisions::record_decision;
use crate::detect::Observed;
use crate::error::ServiceError;

/// Who asks the Data API.
pub enum DataCaller<'a> {
    /// An agent, by its own verified access token.
    Agent(&'a AccessClaims),
    /// An enforcement point or an admin, by its token id (`adm_…`): its input is taken
    /// as it is.
    Enforcer(String),
    /// Nobody authenticated (`opa.authentication = "off"`, loopback only).
    Anonymous,
}

/// One Data API query.
pub struct DataQuery<'a> {
    /// The document's slash path under `data` (`http/authz`; `""` for `data` itself).
    pub path: &'a str,
    /// The input document, if any.
    pub input: Option<Value>,
    /// Who asks.
    pub caller: DataCaller<'a>,
    /// How long Rego may run: [`Budget::Inline`] only on an async worker, for a
    /// small input and policies that [`may_run_inline`](mandate_policy::RegoPolicies::may_run_inline);
    /// its [`RegoError::TimeLimit`] means "run it again with [`Budget::Full`] on a
    /// blocking thread", never an answer.
    pub budget: Budget,
}

/// What a query came to.
#[derive(Debug)]
pub enum DataOutcome {
    /// Evaluated: the document's value, `None` when it is undefined.
    Answered(Option<Value>),
    /// The agent may not act: nothing was evaluated.
    Refused(Refusal),
    /// Rego failed to evaluate it (a conflict, the time limit; or the path or input
    /// could not be handed to it): no result, which an enforcement point takes as a
    /// deny.
    Failed(RegoError),
}

/// The verified subject of an agent's token, as Rego reads it in `input.subject`; the
/// refusal when the token's agent (or its chain, or its mandate) may not act now.
pub fn subject(state: &Node, snapshot: &Snapshot, claims: &AccessClaims) -> Result<Value, Refusal> {
    let now = state.clock.now();
    let h = holder(snapshot, claims, now)?;
    if !snapshot.is_for_mandate(claims) {
        return Err(Refusal::wrong_audience(h.agent.id.clone()));
    }
    if state
        .detector()
        .is_some_and(|d| d.is_suspended(h.agent.id.as_str()))
    {
        return Err(Refusal::suspended_by_detector(&h.agent.id));
    }
    let a = h.agent;
    let mut s = json!({
        "id": a.id,
        "name": a.name,
        "kind": "ai-agent",
        "owner": a.owner,
        "labels": a.labels,
        "purpose": a.purpose,
    });
    if let (Some(m), Value::Object(o)) = (h.mandate, &mut s) {
        o.insert("user".into(), json!(claims.sub));
        o.insert("mandate".into(), json!(m.id));
        let chain: Vec<&str> = h.chain.iter().map(|c| c.id.as_str()).collect();
        o.insert("chain".into(), json!(chain));
    }
    Ok(s)
}

/// Answers `q` from `snapshot` and drafts its audit event. An agent's input gets its
/// verified subject (INVARIANT (subject from the token)); an input that is not an
/// object cannot carry one, so for an agent it must be an object or absent (the edge
/// refuses anything else before calling this).
pub fn query(state: &Node, snapshot: &Snapshot, q: DataQuery<'_>) -> (DataOutcome, AuditEvent) {
    let mut input = q.input;
    let mut e = AuditEvent::new(
        0,
        state.clock.now(),
        state.audit.node().clone(),
        "opa.decision",
    );
    let outcome = match &q.caller {
        DataCaller::Agent(c) => {
            e.agent = Some(c.client_id.clone());
            match subject(state, snapshot, c) {
                Ok(s) => {
                    if let Some(user) = s.get("user").and_then(Value::as_str) {
                        e.user = Some(user.to_owned());
                    }
                    match &mut input {
                        Some(Value::Object(o)) => {
                            o.insert("subject".into(), s);
                        }
                        // Not an object: the edge refused it already; never evaluate an
                        // agent's input without its verified subject.
                        Some(_) => {}
                        None => input = Some(json!({ "subject": s })),
                    }
                    None
                }
                Err(r) => Some(DataOutcome::Refused(r)),
            }
        }
        DataCaller::Enforcer(id) => {
            e.actor = Some(id.clone());
            None
        }
        DataCaller::Anonymous => None,
    };
    let outcome = outcome.unwrap_or_else(|| {
        if matches!(q.caller, DataCaller::Agent(_)) && !input.as_ref().is_some_and(Value::is_object)
        {
            return DataOutcome::Failed(RegoError::InvalidInput(
                "an agent's input must be an object".into(),
            ));
        }
        match &snapshot.policies {
            None => DataOutcome::Answered(None),
            Some(p) => match p.rego().query_within(
                q.path,
                input.as_ref(),
                state.clock.now_millis(),
                q.budget,
            ) {
                Ok(v) => DataOutcome::Answered(v),
                Err(err) => DataOutcome::Failed(err),
            },
        }
    });
    e.resource = Some(json!({"type": "opa.data", "id": q.path}));
    if let Some(i) = &input {
        e.context = Some(state.redact(i));
    }
    let mut details = Map::new();
    details.insert("path".into(), json!(q.path));
    details.insert(
        "caller".into(),
        json!(match q.caller {
            DataCaller::Agent(_) => "agent",
            DataCaller::Enforcer(_) => "token",
            DataCaller::Anonymous => "anonymous",
        }),
    );
    if let Some(v) = snapshot.policy_version {
        details.insert("policy_version".into(), json!(v));
    }
    match &outcome {
        DataOutcome::Answered(v) => {
            e.decision = verdict_of(v.as_ref()).map(str::to_owned);
            if let Some(v) = v {
                details.insert("result".into(), state.redact(v));
            }
        }
        DataOutcome::Refused(r) => {
            e.decision = Some("deny".into());
            e.reasons = vec![r.reason.code().to_owned()];
            if let Some(d) = &r.detail {
                e.reasons.push(d.clone());
            }
            if let Some(a) = &r.agent {
                e.agent = Some(a.to_string());
            }
        }
        DataOutcome::Failed(err) => {
            e.reasons = vec!["rego_error".into()];
            details.insert("error".into(), json!(err.to_string()));
        }
    }
    e.details = Some(Value::Object(details));
    (outcome, e)
}

/// The allow/deny a result states, for the log's `decision` field: a boolean result, or
/// an object's boolean `allow`. Anything else states none (`None`): the result itself
/// is in the event.
fn verdict_of(v: Option<&Value>) -> Option<&'static str> {
    let b = match v? {
        Value::Bool(b) => *b,
        Value::Object(o) => o.get("allow")?.as_bool()?,
        _ => return None,
    };
    Some(if b { "allow" } else { "deny" })
}

/// Records a query's event durably and returns its id, the answer's `decision_id`
/// (`INVARIANT (durable before the answer)`, decisions.rs).
pub async fn record(state: &Arc<Node>, event: AuditEvent) -> Result<String, ServiceError> {
    record_decision(
        state,
        crate::metrics::Surface::Opa,
        event,
        Observed::default(),
        None,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_logged_verdict_is_read_only_from_a_boolean_or_an_allow_member() {
        assert_eq!(verdict_of(Some(&json!(true))), Some("allow"));
        assert_eq!(verdict_of(Some(&json!({"allow": false}))), Some("deny"));
        assert_eq!(verdict_of(Some(&json!({"allow": "yes"}))), None);
        assert_eq!(verdict_of(Some(&json!([true]))), None);
        assert_eq!(verdict_of(None), None);
    }
}
