//! The `incidents` operations: the kill switch's incident levers: contain an agent (with an
//! incident bundle for. One marker function per operation carries its `#[utoipa::path]`;
//! its doc comment names the mandate-http handler that serves it.

#![expect(
    clippy::needless_raw_string_hashes,
    reason = "the prose is pasted as written"
)]

use crate::formats::{AgentId, TokenId};
use crate::responses::*;
use crate::*;

/// The contract of `POST /v1/agents/{id}/contain`, served by mandate-http's handler `incidents::contain`.
#[utoipa::path(
    post,
    path = "/v1/agents/{id}/contain",
    tag = "incidents",
    operation_id = "containAgent",
    summary = "Contain an agent and get its incident bundle",
    description = r#"In one step, in force for every decision made after the answer on this node:
the agent is suspended (`active` → `suspended`; an agent already suspended stays
so, a decommissioned one is left as it is) and every token issued to it so far is
killed (its token cutoff is set to now), which also kills every token delegated
from one of them; every `pending_approval` or `active` mandate of the agent is
revoked. Then a `mandate.revoked` event per mandate and an `incident.contained`
event (details: `incident`, `reason`, `previous_status`, `status`, `cutoff`,
`mandates_revoked`, `evidence_sha256`, `events`) are recorded, the audit log is
sealed with a new checkpoint, and the answer is the incident bundle: the agent's
last `events` audit events up to and including `incident.contained`, each with
an inclusion proof against that checkpoint, and the evidence (the agent's record,
the mandates revoked, the active policy version). The bundle is written as RFC
8785 canonical JSON and verifies offline with `mandate audit verify FILE --key`.

Resuming the agent is a separate, explicit `resume` (recorded as
`agent.resumed`); tokens issued before the containment never work again."#,
    params(("id" = AgentId, Path, description = "The agent's id.")),
    request_body(content = Option<ContainAgent>, description = "Optional; an empty body means no reason and 1000 events.", content_type = "application/json"),
    responses(
        (status = 200, description = "The incident bundle, as canonical JSON (write the bytes as they are).", body = IncidentBundle, content_type = "application/json"),
        (status = 400, response = BadBody),
        (status = 401, response = Unauthenticated),
        (status = 403, response = ForbiddenWrite),
        (status = 404, response = NotFound),
        (status = 413, response = BodyTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 500, description = r#"`internal`, or `bundle_unavailable`: the agent is contained and the
containment recorded, but the bundle could not be built (cause in the log)."#, body = Problem, content_type = "application/problem+json"),
        (status = 503, description = r#"`audit_unavailable`: the agent is contained, but the containment could not
be recorded or the log not sealed; no bundle is given."#, body = Problem, content_type = "application/problem+json")
    )
)]
pub fn contain_agent() {}

/// The contract of `POST /v1/tokens/{jti}/revoke`, served by mandate-http's handler `incidents::revoke_token`.
#[utoipa::path(
    post,
    path = "/v1/tokens/{jti}/revoke",
    tag = "incidents",
    operation_id = "revokeTokenById",
    summary = "Revoke one access token by its id",
    description = r#"For when the token string is not at hand (RFC 7009 revocation at `/oauth/revoke`
needs it). The token, and every token delegated from it, is refused from the next
decision on. An unknown `jti` is revoked and recorded all the same (the entry is
kept for the longest token lifetime). Recorded as `token.revoked`."#,
    params(("jti" = TokenId, Path, description = r#"The access token's `jti` (`tok_` + ULID), as the audit log names it in
`details.token_id`. Anything else is refused with 400 `invalid_field`."#)),
    request_body(content = Option<RevokeTokenById>, description = "Optional; an empty body means no reason.", content_type = "application/json"),
    responses(
        (status = 200, description = "The token is revoked.", body = TokenRevoked, content_type = "application/json"),
        (status = 400, response = BadBody),
        (status = 401, response = Unauthenticated),
        (status = 403, response = ForbiddenWrite),
        (status = 413, response = BodyTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 500, response = Internal),
        (status = 503, response = AuditUnavailable)
    )
)]
pub fn revoke_token_by_id() {}
