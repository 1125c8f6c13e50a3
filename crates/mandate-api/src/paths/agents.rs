//! The `agents` operations: the agent registry and agents' credentials. One marker function
//! per operation carries its `#[utoipa::path]`; its doc comment names the mandate-http
//! handler that serves it.

#![expect(
    clippy::needless_raw_string_hashes,
    reason = "the prose is pasted as written"
)]

use crate::formats::{AgentId, AgentStatus, CredentialId};
use crate::responses::*;
use crate::*;

/// The contract of `GET /v1/agents`, served by mandate-http's handler `agents::list`.
#[utoipa::path(
    get,
    path = "/v1/agents",
    tag = "agents",
    operation_id = "listAgents",
    summary = "List agents",
    description = r#"Agents in id (that is, creation) order, filtered by every parameter given. Each
parameter may appear once; any other parameter is refused with `invalid_query`.
A page of exactly `limit` items carries a `next_cursor`."#,
    params(ListAgentsQuery),
    responses(
        (status = 200, description = "One page of agents.", body = AgentPage, content_type = "application/json"),
        (status = 400, response = InvalidQuery),
        (status = 401, response = Unauthenticated),
        (status = 403, response = ForbiddenAgentToken),
        (status = 500, response = Internal)
    )
)]
pub fn list_agents() {}

/// The query of `list_agents`.
#[derive(Debug, Clone, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListAgentsQuery {
    /// Only agents with exactly this owner.
    pub owner: Option<String>,
    /// Only agents in this status.
    #[param(value_type = Option<AgentStatus>)]
    pub status: Option<String>,
    /// `key=value`: only agents whose label `key` equals `value` (split at the first
    /// `=`; the key must follow the label-key rule).
    #[param(pattern = "^[a-z0-9][a-z0-9._/-]{0,62}=", example = "team=billing")]
    pub label: Option<String>,
    /// Page size.
    #[param(minimum = 1, maximum = 500, default = 50)]
    pub limit: Option<u64>,
    /// The `next_cursor` of the previous page; lists agents after this id.
    #[param(value_type = Option<AgentId>)]
    pub cursor: Option<String>,
}

/// The contract of `POST /v1/agents`, served by mandate-http's handler `agents::register`.
#[utoipa::path(
    post,
    path = "/v1/agents",
    tag = "agents",
    operation_id = "registerAgent",
    summary = "Register an agent",
    description = "The new agent is `active` and has no credentials yet.",
    request_body(content = RegisterAgent, content_type = "application/json"),
    responses(
        (status = 201, description = "The registered agent.", body = Agent, content_type = "application/json"),
        (status = 400, response = BadBody),
        (status = 401, response = Unauthenticated),
        (status = 403, response = ForbiddenWrite),
        (status = 409, description = "`conflict`: an agent with this name already exists.", body = Problem, content_type = "application/problem+json"),
        (status = 413, response = BodyTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 500, response = Internal),
        (status = 503, response = AuditUnavailable)
    )
)]
pub fn register_agent() {}

/// The contract of `GET /v1/agents/{id}`, served by mandate-http's handler `agents::show`.
#[utoipa::path(
    get,
    path = "/v1/agents/{id}",
    tag = "agents",
    operation_id = "getAgent",
    summary = "Show an agent",
    params(("id" = AgentId, Path, description = "The agent's id.")),
    responses(
        (status = 200, description = "The agent.", body = Agent, content_type = "application/json"),
        (status = 401, response = Unauthenticated),
        (status = 403, response = ForbiddenAgentToken),
        (status = 404, response = NotFound),
        (status = 500, response = Internal)
    )
)]
pub fn get_agent() {}

/// The contract of `PATCH /v1/agents/{id}`, served by mandate-http's handler `agents::update`.
#[utoipa::path(
    patch,
    path = "/v1/agents/{id}",
    tag = "agents",
    operation_id = "updateAgent",
    summary = "Change an agent's descriptive fields and boundary",
    description = r#"Replaces each field given (a `null` or absent field is left as it is; `labels`
and `boundary` are replaced whole, not merged). Status changes have their own
endpoints. A decommissioned agent cannot change."#,
    params(("id" = AgentId, Path, description = "The agent's id.")),
    request_body(content = UpdateAgent, content_type = "application/json"),
    responses(
        (status = 200, description = "The updated agent.", body = Agent, content_type = "application/json"),
        (status = 400, response = BadBody),
        (status = 401, response = Unauthenticated),
        (status = 403, response = ForbiddenWrite),
        (status = 404, response = NotFound),
        (status = 409, description = "`agent_decommissioned`, or `conflict`: another agent has the new name.", body = Problem, content_type = "application/problem+json"),
        (status = 413, response = BodyTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 500, response = Internal),
        (status = 503, response = AuditUnavailable)
    )
)]
pub fn update_agent() {}

/// The contract of `POST /v1/agents/{id}/suspend`, served by mandate-http's handler `agents::suspend`.
#[utoipa::path(
    post,
    path = "/v1/agents/{id}/suspend",
    tag = "agents",
    operation_id = "suspendAgent",
    summary = "Suspend an active agent",
    description = r#"`active` → `suspended`. Its credentials stop authenticating and its tokens stop
introspecting as active from the next request on; reversible with `resume`."#,
    params(("id" = AgentId, Path, description = "The agent's id.")),
    request_body(content = Option<StatusChange>, description = "Optional; an empty body (with or without a content type) means no reason.", content_type = "application/json"),
    responses(
        (status = 200, response = AgentAfterStatusChange),
        (status = 400, response = BadBody),
        (status = 401, response = Unauthenticated),
        (status = 403, response = ForbiddenWrite),
        (status = 404, response = NotFound),
        (status = 409, response = InvalidTransition),
        (status = 413, response = BodyTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 500, response = Internal),
        (status = 503, response = AuditUnavailable)
    )
)]
pub fn suspend_agent() {}

/// The contract of `POST /v1/agents/{id}/resume`, served by mandate-http's handler `agents::resume`.
#[utoipa::path(
    post,
    path = "/v1/agents/{id}/resume",
    tag = "agents",
    operation_id = "resumeAgent",
    summary = "Resume a suspended agent",
    description = "`suspended` → `active`.",
    params(("id" = AgentId, Path, description = "The agent's id.")),
    request_body(content = Option<StatusChange>, description = "Optional; an empty body (with or without a content type) means no reason.", content_type = "application/json"),
    responses(
        (status = 200, response = AgentAfterStatusChange),
        (status = 400, response = BadBody),
        (status = 401, response = Unauthenticated),
        (status = 403, response = ForbiddenWrite),
        (status = 404, response = NotFound),
        (status = 409, response = InvalidTransition),
        (status = 413, response = BodyTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 500, response = Internal),
        (status = 503, response = AuditUnavailable)
    )
)]
pub fn resume_agent() {}

/// The contract of `POST /v1/agents/{id}/decommission`, served by mandate-http's handler `agents::decommission`.
#[utoipa::path(
    post,
    path = "/v1/agents/{id}/decommission",
    tag = "agents",
    operation_id = "decommissionAgent",
    summary = "Decommission an agent for good",
    description = r#"`active` or `suspended` → `decommissioned`, which is final. Every credential of
the agent is revoked in the same transaction."#,
    params(("id" = AgentId, Path, description = "The agent's id.")),
    request_body(content = Option<StatusChange>, description = "Optional; an empty body (with or without a content type) means no reason.", content_type = "application/json"),
    responses(
        (status = 200, response = AgentAfterStatusChange),
        (status = 400, response = BadBody),
        (status = 401, response = Unauthenticated),
        (status = 403, response = ForbiddenWrite),
        (status = 404, response = NotFound),
        (status = 409, response = InvalidTransition),
        (status = 413, response = BodyTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 500, response = Internal),
        (status = 503, response = AuditUnavailable)
    )
)]
pub fn decommission_agent() {}

/// The contract of `GET /v1/agents/{id}/credentials`, served by mandate-http's handler `agents::list_credentials`.
#[utoipa::path(
    get,
    path = "/v1/agents/{id}/credentials",
    tag = "agents",
    operation_id = "listCredentials",
    summary = "List an agent's credentials",
    description = "Metadata only, including revoked and expired credentials; secrets are never shown again.",
    params(("id" = AgentId, Path, description = "The agent's id.")),
    responses(
        (status = 200, description = "Every credential of the agent.", body = Items<Credential>, content_type = "application/json"),
        (status = 401, response = Unauthenticated),
        (status = 403, response = ForbiddenAgentToken),
        (status = 404, response = NotFound),
        (status = 500, response = Internal)
    )
)]
pub fn list_credentials() {}

/// The contract of `POST /v1/agents/{id}/credentials`, served by mandate-http's handler `agents::add_credential`.
#[utoipa::path(
    post,
    path = "/v1/agents/{id}/credentials",
    tag = "agents",
    operation_id = "addCredential",
    summary = "Add a credential to an agent",
    description = r#"`client_secret`: a new random secret (`mcs_…`), returned in `client_secret` in
this response and never again. `public_key`: registers `jwk` (Ed25519 or P-256
public key) for `private_key_jwt`."#,
    params(("id" = AgentId, Path, description = "The agent's id.")),
    request_body(content = NewCredential, content_type = "application/json"),
    responses(
        (status = 201, description = "The new credential (and, for a secret, the secret).", body = CredentialCreated, content_type = "application/json"),
        (status = 400, description = r#"As for any JSON body, plus `missing_field` (`jwk` for `public_key`),
`invalid_field` (`jwk` given for `client_secret`, `expires_at` not in the
future) and `invalid_jwk` (the JWK is not an acceptable public key)."#, body = Problem, content_type = "application/problem+json"),
        (status = 401, response = Unauthenticated),
        (status = 403, response = ForbiddenWrite),
        (status = 404, response = NotFound),
        (status = 409, description = "`agent_decommissioned`; `certificate_taken` (another agent has a credential the same client certificate would match).", body = Problem, content_type = "application/problem+json"),
        (status = 413, response = BodyTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 500, response = Internal),
        (status = 503, response = AuditUnavailable)
    )
)]
pub fn add_credential() {}

/// The contract of `DELETE /v1/agents/{id}/credentials/{cid}`, served by mandate-http's handler `agents::revoke_credential`.
#[utoipa::path(
    delete,
    path = "/v1/agents/{id}/credentials/{cid}",
    tag = "agents",
    operation_id = "revokeCredential",
    summary = "Revoke a credential now",
    description = r#"Idempotent; revoking a revoked credential keeps its first `revoked_at`. Every
access token the agent was issued until now stops being active (the credential
may have leaked); tokens issued later through another credential work."#,
    params(("id" = AgentId, Path, description = "The agent's id."), ("cid" = CredentialId, Path, description = "The credential's id; it must belong to the agent.")),
    responses(
        (status = 204, description = "Revoked."),
        (status = 401, response = Unauthenticated),
        (status = 403, response = ForbiddenWrite),
        (status = 404, response = NotFound),
        (status = 500, response = Internal),
        (status = 503, response = AuditUnavailable)
    )
)]
pub fn revoke_credential() {}

/// The contract of `POST /v1/agents/{id}/credentials/{cid}/rotate`, served by mandate-http's handler `agents::rotate_credential`.
#[utoipa::path(
    post,
    path = "/v1/agents/{id}/credentials/{cid}/rotate",
    tag = "agents",
    operation_id = "rotateCredential",
    summary = "Replace a credential with a new one of the same kind",
    description = r#"Creates a new credential of the old one's kind and lets the old one work until
now + `overlap_secs` (never later than its own earlier expiry), then never again.
The body may be empty (a client secret rotated with the default overlap)."#,
    params(("id" = AgentId, Path, description = "The agent's id."), ("cid" = CredentialId, Path, description = "The credential's id; it must belong to the agent.")),
    request_body(content = Option<RotateCredential>, content_type = "application/json"),
    responses(
        (status = 201, description = "The new credential, the new secret if it is one, and the old credential's end.", body = CredentialRotated, content_type = "application/json"),
        (status = 400, description = r#"As for any JSON body, plus `invalid_field` (`overlap_secs` over 2592000,
`jwk` given for a client secret), `missing_field` (`jwk` for a public key) and
`invalid_jwk`."#, body = Problem, content_type = "application/problem+json"),
        (status = 401, response = Unauthenticated),
        (status = 403, response = ForbiddenWrite),
        (status = 404, response = NotFound),
        (status = 409, description = "`agent_decommissioned`, or `conflict`: the credential is revoked, expired or already rotated; `certificate_taken`: another agent has a credential the new client certificate name would match.", body = Problem, content_type = "application/problem+json"),
        (status = 413, response = BodyTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 500, response = Internal),
        (status = 503, response = AuditUnavailable)
    )
)]
pub fn rotate_credential() {}
