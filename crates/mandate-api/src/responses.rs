//! The reusable responses (`components/responses`): the problem and OAuth error answers
//! many operations share, each a newtype of its body so `ToResponse` names it. An
//! operation that says more about one of them (which code, and when) describes its own
//! response inline with the same body instead of referring to the shared one.

use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{RefOr, Schema};

use crate::{Agent, OAuthError, Problem};

/// A header schema: a string that is always `$value`.
macro_rules! constant_header {
    ($(#[$meta:meta])* $name:ident, $value:literal) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub struct $name;

        impl utoipa::PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some([$value]))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}
    };
}

constant_header!(
    /// `Cache-Control: no-store`, on every OAuth answer.
    NoStore,
    "no-store"
);
constant_header!(
    /// `Pragma: no-cache`, on every OAuth answer.
    NoCache,
    "no-cache"
);
constant_header!(
    /// `Cache-Control: public, max-age=60`, on the JWKS.
    PublicMaxAge60,
    "public, max-age=60"
);

/// The agent in its new status.
#[derive(utoipa::ToResponse)]
#[response(content_type = "application/json")]
pub struct AgentAfterStatusChange(pub Agent);

/// The JSON body is refused: `invalid_json` (syntax), `unknown_field`,
/// `missing_field`, or `invalid_field` (a wrong type or a value breaking its rule;
/// `detail` names the rule).
#[derive(utoipa::ToResponse)]
#[response(content_type = "application/problem+json")]
pub struct BadBody(pub Problem);

/// `invalid_query`: an unknown, repeated or malformed query parameter.
#[derive(utoipa::ToResponse)]
#[response(content_type = "application/problem+json")]
pub struct InvalidQuery(pub Problem);

/// `unauthenticated`: no bearer token, or an unknown or revoked admin token.
#[derive(utoipa::ToResponse)]
#[response(content_type = "application/problem+json", headers(("WWW-Authenticate" = String, description = r#"Always `Bearer realm="mandate"`."#)))]
pub struct Unauthenticated(pub Problem);

/// `agent_token_forbidden` (an agent access token was presented) or `forbidden` (a
/// `service` token, which may call only `/v1/authorize`).
#[derive(utoipa::ToResponse)]
#[response(content_type = "application/problem+json")]
pub struct ForbiddenAgentToken(pub Problem);

/// `agent_token_forbidden` (an agent access token was presented) or `forbidden`
/// (the admin token's role is read-only, or it is a `service` token).
#[derive(utoipa::ToResponse)]
#[response(content_type = "application/problem+json")]
pub struct ForbiddenWrite(pub Problem);

/// `forbidden`: the token's role may not call this endpoint.
#[derive(utoipa::ToResponse)]
#[response(content_type = "application/problem+json")]
pub struct Forbidden(pub Problem);

/// `not_found`: the id is unknown or not a valid id of its kind.
#[derive(utoipa::ToResponse)]
#[response(content_type = "application/problem+json")]
pub struct NotFound(pub Problem);

/// The request conflicts with the current state.
#[derive(utoipa::ToResponse)]
#[response(content_type = "application/problem+json")]
pub struct Conflict(pub Problem);

/// `invalid_transition`: the agent's current status cannot move to the requested one.
#[derive(utoipa::ToResponse)]
#[response(content_type = "application/problem+json")]
pub struct InvalidTransition(pub Problem);

/// `body_too_large`: the body is over the configured limit.
#[derive(utoipa::ToResponse)]
#[response(content_type = "application/problem+json")]
pub struct BodyTooLarge(pub Problem);

/// `unsupported_media_type`: a body that is not declared as JSON.
#[derive(utoipa::ToResponse)]
#[response(content_type = "application/problem+json")]
pub struct UnsupportedMediaType(pub Problem);

/// `internal`: a server-side failure; the cause is in the server log only.
#[derive(utoipa::ToResponse)]
#[response(content_type = "application/problem+json")]
pub struct Internal(pub Problem);

/// `audit_unavailable`: the audit log cannot be written. For an admin change, the
/// change was made but could not be recorded; a decision is not given at all.
#[derive(utoipa::ToResponse)]
#[response(content_type = "application/problem+json")]
pub struct AuditUnavailable(pub Problem);

/// `invalid_policy`: the policies or schema fragments do not compile; the problem's
/// `errors` member lists every problem found (syntax errors of each fragment and of
/// the policies, then the schema-combination or validation errors), each located.
/// Otherwise as for any JSON body (`invalid_json`, `unknown_field`,
/// `missing_field`, `invalid_field`), where `invalid_field` also covers a `note`
/// over 500 characters or more than 32 schema fragments.
#[derive(utoipa::ToResponse)]
#[response(content_type = "application/problem+json", example = json!({"code": "invalid_policy", "detail": "1 problem(s); first: policies:3:27: unexpected token `}`", "errors": [{"column": 27, "line": 3, "message": "unexpected token `}`", "source": "policies"}], "status": 400, "title": "Bad Request", "type": "urn:mandate:error:invalid_policy"}))]
pub struct InvalidPolicy(pub Problem);

/// The version now active and the one active before this call.
#[derive(utoipa::ToResponse)]
#[response(content_type = "application/json")]
pub struct PolicyActivated(pub crate::PolicyActivated);

/// An RFC 6749 error.
#[derive(utoipa::ToResponse)]
#[response(content_type = "application/json", headers(("Cache-Control" = inline(NoStore), description = "Always `no-store`."), ("Pragma" = inline(NoCache), description = "Always `no-cache`.")))]
pub struct OAuthBadRequest(pub OAuthError);

/// `unsupported_response_type`: Mandate has no flow at the authorization endpoint.
#[derive(utoipa::ToResponse)]
#[response(content_type = "application/json", headers(("Cache-Control" = inline(NoStore), description = "Always `no-store`."), ("Pragma" = inline(NoCache), description = "Always `no-cache`.")))]
pub struct OAuthUnsupportedResponseType(pub OAuthError);

/// `invalid_client`: no client authentication, malformed Basic credentials,
/// authentication failed (one indistinguishable answer, `client authentication
/// failed`, for an unknown client, a wrong secret, an unregistered key or a bad
/// signature), an inactive agent, an unsupported `client_assertion_type`, or a client
/// assertion refused for a reason its `error_description` names: not a compact JWS,
/// `alg` not `EdDSA`/`Ed25519`/`ES256`, expired, not yet valid, too long-lived,
/// `iss`/`sub` not the client, wrong `aud`, no `exp` or `jti`, already used
/// (claim checks are only described once a registered key verified the signature), or (on introspect and revoke) an agent
/// access token used as a bearer. On introspect and revoke an unknown or revoked
/// admin bearer token is instead `invalid_token` with
/// `WWW-Authenticate: Bearer realm="mandate", error="invalid_token"` (RFC 6750 §3.1).
#[derive(utoipa::ToResponse)]
#[response(content_type = "application/json", headers(("Cache-Control" = inline(NoStore), description = "Always `no-store`."), ("Pragma" = inline(NoCache), description = "Always `no-cache`."), ("WWW-Authenticate" = String, description = r#"`Basic realm="mandate"`, or the RFC 6750 Bearer challenge for `invalid_token`."#)))]
pub struct OAuthInvalidClient(pub OAuthError);

/// `too_many_failures`: too many failed admin-token uses from this address (any
/// operation that can answer 401 can answer this; docs/running.md#abuse-limits).
#[derive(utoipa::ToResponse)]
#[response(content_type = "application/problem+json", headers(("Retry-After" = u64, description = "Seconds until this address may try again.")))]
pub struct TooManyFailures(pub Problem);

/// `slow_down`: too many failed client authentications (or admin-token uses) from this
/// address; refused before any secret was checked (docs/running.md#abuse-limits).
#[derive(utoipa::ToResponse)]
#[response(content_type = "application/json", headers(("Retry-After" = u64, description = "Seconds until this address may try again."), ("Cache-Control" = inline(NoStore), description = "Always `no-store`."), ("Pragma" = inline(NoCache), description = "Always `no-cache`.")))]
pub struct OAuthSlowDown(pub OAuthError);

/// `server_error`: a server-side failure; the cause is in the server log only.
#[derive(utoipa::ToResponse)]
#[response(content_type = "application/json", headers(("Cache-Control" = inline(NoStore), description = "Always `no-store`."), ("Pragma" = inline(NoCache), description = "Always `no-cache`.")))]
pub struct OAuthServerError(pub OAuthError);

/// `agents_only`, `mandate_token_forbidden`, `outside_boundary` or `forbidden`.
#[derive(utoipa::ToResponse)]
#[response(content_type = "application/problem+json")]
pub struct MandateForbidden(pub Problem);

/// `not_an_approver` (not an `admin` or `approver` token, nor a user in the
/// approver group), `self_approval` (the user is the human the mandate acts for, or
/// the agent's owner), or `forbidden` (a `service` token).
#[derive(utoipa::ToResponse)]
#[response(content_type = "application/problem+json")]
pub struct NotAnApprover(pub Problem);

/// The anomaly was already acknowledged or dismissed (`not_open`).
#[derive(utoipa::ToResponse)]
#[response(content_type = "application/problem+json")]
pub struct AnomalyNotOpen(pub Problem);

/// `approval_expired` (the approval deadline passed; the request is denied) or
/// `not_pending` (already decided, revoked or ended).
#[derive(utoipa::ToResponse)]
#[response(content_type = "application/problem+json")]
pub struct ApprovalConflict(pub Problem);

/// `not_a_reviewer` (not an `admin` or `approver` token, a user of the approver group,
/// nor the agent's owner as a user), or `forbidden` (a `service` token).
#[derive(utoipa::ToResponse)]
#[response(content_type = "application/problem+json")]
pub struct NotAReviewer(pub Problem);

/// `already_decided` (the item was decided already), `boundary_not_within` (the
/// boundary is not within the agent's current one), `agent_decommissioned` or
/// `invalid_transition` (the agent's lifecycle does not allow the change).
#[derive(utoipa::ToResponse)]
#[response(content_type = "application/problem+json")]
pub struct ReviewConflict(pub Problem);
