//! The OpenAPI document of Mandate's HTTP API, generated from this crate: the operations
//! declared in [`paths`], the wire types' schemas (`ToSchema`), the named formats of
//! [`formats`] and the shared responses of [`responses`].
//!
//! The document is checked in as `docs/openapi.json`; `tests/openapi.rs` fails when the
//! file differs from [`render`] by a byte, and rewrites it when `MANDATE_BLESS=1` is set
//! (`MANDATE_BLESS=1 cargo nextest run -p mandate-api`).
//!
//! Output format: JSON, written by [`render`] with `serde_json`'s pretty printer, which
//! this crate already depends on. The alternative, utoipa's `yaml` feature, is maintained
//! (it pulls `yaml_serde` 0.10, the YAML organisation's fork of the archived `serde_yaml`)
//! but it would add a YAML serialiser and its emitter to the build of every crate that
//! depends on this one, for a file nobody edits any more: every OpenAPI tool reads
//! JSON, and the tests that read the document (`routes_test`, the engine's reason test)
//! parse it with `serde_json`, which they have.
//!
//! INVARIANT (stable output): the free JSON values in the document (examples, defaults)
//! are written with their object keys in sorted order. `serde_json` keeps an object's
//! insertion order when any crate of the build enables its `preserve_order` feature (the
//! server's build does) and sorts the keys otherwise; written sorted, both agree, so the
//! file does not depend on which crates are built together. `tests/openapi.rs`
//! (`free_json_is_written_in_sorted_order`) checks it.
//!
//! What the derive cannot say is added by `Conventions` (a [`Modify`]): the info's
//! `summary` and SPDX `identifier`, the security schemes, which bodies are closed
//! (`additionalProperties: false`, see `CLOSED`), that a decision's first reason is a
//! `DecisionReason`, and the form encoding of
//! `/oauth/token`'s repeated `resource` parameter.

use utoipa::openapi::encoding::EncodingBuilder;
use utoipa::openapi::extensions::Extensions;
use utoipa::openapi::path::Operation;
use utoipa::openapi::path::ParameterStyle;
use utoipa::openapi::schema::{
    AdditionalProperties, AllOfBuilder, AnyOfBuilder, ArrayBuilder, ArrayItems, ObjectBuilder,
    OneOfBuilder, SchemaType, Type,
};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ComponentsBuilder, LicenseBuilder};
use utoipa::openapi::{Ref, RefOr, Schema};
use utoipa::{Modify, OpenApi as _};

use crate::formats::{
    AdminTokenId, AgentId, AgentName, AgentStatus, AnomalyId, AnomalyKind, AssertionAlgs,
    AuditEventId, AuthMethods, Base64Hash, CredentialId, CredentialKind, CredentialState,
    DecisionReason, DiscoverySource, FindingCode, IncidentId, Jti, LabelSelector, Labels,
    MandateId, MandateStatus, MandateText, NodeName, Owner, Pattern, PolicyIds,
    PolicyVersionNumber, Purpose, ReviewId, Role, Severity, SignedCheckpoint, SsfStreamState,
    Timestamp, TokenId, TraceId,
};
use crate::*;

/// The API's description: what each of the two APIs is, and the admin API's conventions.
const DESCRIPTION: &str = r#"One port serves three APIs:

* the **OAuth 2.0 token service** (`/oauth/*`, `/.well-known/*`): client-credentials
  tokens (RFC 6749), introspection (RFC 7662), revocation (RFC 7009), authorization
  server metadata (RFC 8414) and the JWKS that verifies tokens. OAuth errors use the
  RFC 6749 §5.2 body (`error`, `error_description`) with `Cache-Control: no-store`.
* the **OpenID AuthZEN Authorization API 1.0** (`/access/v1/*`,
  `/.well-known/authzen-configuration`): the same decision path as `/v1/authorize`
  for gateways and PDP clients that speak AuthZEN (tag `authzen`). Its requests are
  open (unknown members are ignored) and a body not declared as JSON is a 400.
* the **admin API** (`/v1/*`): agents, their credentials, admin tokens, signing
  keys, policy versions and the audit log, the decision endpoints
  (`/v1/authorize`), and mandates with their approvals. It is called with an admin
  bearer token (`mat_…`); agent access tokens are refused there except at
  `/v1/authorize` and `/v1/mandates*`, and user tokens are taken only at
  `/v1/mandates*` and `/v1/approvals*`. Errors are RFC 9457
  `application/problem+json` with a stable `code`.

Conventions of the admin API:

* Request bodies are JSON (`application/json` or any `+json` type) and unknown fields
  are refused (`unknown_field`). A body over the configured size limit
  (`http.max_body_bytes`, 64 KiB by default) is refused with 413 `body_too_large`
  (`POST /v1/discovery/runs` has its own limit: 64 MiB).
* Failed authentication is throttled per source address: after too many unknown or
  revoked admin tokens from one address (`limits.auth_source_failures_free`), requests
  from it carrying a non-agent bearer are refused with 429 `too_many_failures` and
  `Retry-After` until the back-off ends (doubling with each further failure). A body
  that does not arrive whole within `limits.body_read_timeout_secs` (30 s) is 408
  `request_timeout`.
* A path id that is not syntactically valid (`agt_`, `crd_` or `adm_` followed by a
  26-character ULID; a positive integer for a policy version; a whole number for an
  audit event) is answered like an unknown one: 404 `not_found`. (A token id names no
  stored record, so `/v1/tokens/{jti}/revoke` refuses a malformed one with 400
  `invalid_field` instead.)
* Timestamps are RFC 3339 UTC strings at second resolution (`2025-01-31T12:00:00Z`).
  Inputs may carry a numeric offset or fractional seconds (fractions are truncated).
* Roles: `admin` may do everything; `auditor` and `approver` may only read. A write
  with a read-only token is refused with 403 `forbidden`. A `service` token (an
  enforcement point) may call only `/v1/authorize`, `/v1/authorize/batch` and the
  AuthZEN endpoints (`/access/v1/*`); every other `/v1` route answers it 403
  `forbidden`.
* Every change made through the admin API is recorded in the audit log after it is
  committed. If the log cannot be written the change stands, but the answer is 503
  `audit_unavailable`.
* Decisions, agent authentication and agent tokens are checked against an in-memory
  snapshot that every change refreshes before it answers. If that refresh fails, the
  change stands, is answered and audited as usual, and decisions are held until a
  refresh succeeds (the server retries every second): everything that would use the
  snapshot answers 503 — `snapshot_stale` on `/v1` (including any call with an agent
  access token), `temporarily_unavailable` at the OAuth endpoints for a client
  authenticating as an agent — the gateways forward nothing, introspection by an
  admin token reports tokens inactive, and `/readyz` answers 503 `not_ready`. Admin
  and human (approver, owner) actions on mandates keep working.

Any other path is answered with 404 `not_found` ("no such endpoint"), and a known path
with a method it does not serve with 405 `method_not_allowed`, both as problem+json.
Every `GET` also answers `HEAD`."#;

/// The document's root, as the derive assembles it.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Mandate",
        version = "0.1.0",
        description = DESCRIPTION,
        license(name = "Apache-2.0"),
    ),
    tags(
        (name = "oauth", description = "The OAuth 2.0 token service (client credentials only)."),
        (name = "discovery", description = "Public documents and probes; no authentication."),
        (name = "agents", description = "The agent registry and agents' credentials."),
        (name = "admin", description = "Admin tokens and signing keys."),
        (name = "decisions", description = "The decision path — may this agent do this action on this resource?"),
        (name = "authzen", description = r#"The OpenID AuthZEN Authorization API 1.0 over the same decision path: evaluation,
evaluations, subject, resource and action search, and the PDP metadata. Requests
are open (unknown members are ignored); `X-Request-ID` is echoed."#),
        (name = "policies", description = "Versioned Cedar policy sets."),
        (name = "audit", description = "The tamper-evident audit log, its signed checkpoints, proofs and export."),
        (name = "mandates", description = "Task-scoped, time-bound grants that agents ask for, decided by policy or a human."),
        (name = "approvals", description = "Human approval of the mandate requests policy holds."),
        (name = "incidents", description = r#"The kill switch's incident levers: contain an agent (with an incident bundle for
forensics) and revoke one token by its id."#),
        (name = "anomalies", description = r#"What the anomaly detector raised about agents' behaviour, a human's answer to
it, and the baselines it judges by."#),
        (name = "gateway", description = r#"The enforcement gateways' upstream secrets: set, list (names only), delete. The
values are encrypted at rest and never returned."#),
        (name = "discovery-runs", description = "Discovery runs: workloads found by Kubernetes or a cloud's CLI, reconciled with the registry (matched, shadow, ghost); unregistered ones registered as suspended drafts."),
        (name = "cluster", description = "The nodes sharing the store, as `mandate cluster status` shows them."),
        (name = "export", description = "The SIEM export sinks, as `mandate export status` shows them."),
        (name = "metrics", description = "This node's metrics for Prometheus (docs/metrics.md)."),
        (name = "ssf", description = "OpenID Shared Signals: the receiver that ends a person's mandates when their IdP says their session ended; Mandate as a transmitter, with the streams receivers manage and poll."),
        (name = "governance", description = "Governance: the inventory of agents and their findings, policy impact replay (docs/governance.md), compliance evidence (docs/compliance.md)."),
        (name = "dev", description = "Development helpers, off unless the operator enables them."),
        (name = "reviews", description = "Access review campaigns: each agent's grants beside its use in a window, the least-privilege boundary suggested, and the reviewer's decision.")
    ),
    // The admin API is the default; the OAuth and public endpoints override this.
    security(("adminBearer" = [])),
    paths(
        paths::oauth::oauth_authorize,
        paths::oauth::authorize_post,
        paths::oauth::issue_token,
        paths::oauth::introspect_token,
        paths::oauth::revoke_token,
        paths::discovery::get_jwks,
        paths::discovery::get_metadata,
        paths::discovery::healthz,
        paths::discovery::readyz,
        paths::agents::list_agents,
        paths::agents::register_agent,
        paths::agents::get_agent,
        paths::agents::update_agent,
        paths::agents::suspend_agent,
        paths::agents::resume_agent,
        paths::agents::decommission_agent,
        paths::agents::list_credentials,
        paths::agents::add_credential,
        paths::agents::revoke_credential,
        paths::agents::rotate_credential,
        paths::incidents::contain_agent,
        paths::incidents::revoke_token_by_id,
        paths::admin::list_admin_tokens,
        paths::admin::create_admin_token,
        paths::admin::revoke_admin_token,
        paths::admin::list_signing_keys,
        paths::admin::rotate_signing_key,
        paths::decisions::authorize,
        paths::decisions::authorize_batch,
        paths::authzen::authzen_evaluation,
        paths::authzen::authzen_evaluations,
        paths::authzen::authzen_search_subject,
        paths::authzen::authzen_search_resource,
        paths::authzen::authzen_search_action,
        paths::authzen::authzen_configuration,
        paths::policies::list_policy_versions,
        paths::policies::add_policy_version,
        paths::policies::validate_policies,
        paths::policies::roll_back_policies,
        paths::policies::get_policy_version,
        paths::policies::activate_policy_version,
        paths::policies::replay_policy_version,
        paths::audit::list_audit_events,
        paths::audit::get_inclusion_proof,
        paths::audit::get_consistency_proof,
        paths::audit::get_latest_checkpoint,
        paths::audit::export_audit_log,
        paths::audit::list_audit_nodes,
        paths::cluster::get_cluster_status,
        paths::export::get_export_status,
        paths::discovery_runs::run_discovery,
        paths::metrics::get_metrics,
        paths::ssf::receive_security_event,
        paths::ssf::get_ssf_configuration,
        paths::ssf::create_ssf_stream,
        paths::ssf::get_ssf_streams,
        paths::ssf::update_ssf_stream,
        paths::ssf::replace_ssf_stream,
        paths::ssf::delete_ssf_stream,
        paths::ssf::get_ssf_stream_status,
        paths::ssf::set_ssf_stream_status,
        paths::ssf::add_ssf_stream_subject,
        paths::ssf::remove_ssf_stream_subject,
        paths::ssf::verify_ssf_stream,
        paths::ssf::poll_ssf_stream,
        paths::mandates::list_mandates,
        paths::mandates::request_mandate,
        paths::mandates::get_mandate,
        paths::mandates::complete_mandate,
        paths::mandates::revoke_mandate,
        paths::approvals::list_approvals,
        paths::approvals::approve_mandate,
        paths::approvals::deny_mandate,
        paths::dev::issue_dev_user_token,
        paths::anomalies::list_anomalies,
        paths::anomalies::get_anomaly,
        paths::anomalies::acknowledge_anomaly,
        paths::anomalies::dismiss_anomaly,
        paths::anomalies::get_agent_baseline,
        paths::gateway::list_gateway_secrets,
        paths::gateway::put_gateway_secret,
        paths::gateway::delete_gateway_secret,
        paths::inventory::get_inventory,
        paths::reports::get_compliance_report,
        paths::reviews::start_review,
        paths::reviews::list_reviews,
        paths::reviews::get_review,
        paths::reviews::get_review_report,
        paths::reviews::certify_review_item,
        paths::reviews::narrow_review_item,
        paths::reviews::decommission_review_item
    ),
    components(
        schemas(
            Problem, ErrorCode, OAuthError, PolicyError,
            AgentId, CredentialId, AdminTokenId, Timestamp, AgentName, Owner, Purpose, Labels, Pattern, AgentStatus, CredentialKind, CredentialState, Role, DecisionReason, AnomalyId, Severity, AnomalyKind, PolicyVersionNumber, PolicyIds, NodeName, AuditEventId, Base64Hash, TraceId, SignedCheckpoint, AuthMethods, AssertionAlgs, MandateId, MandateStatus, MandateText, IncidentId, TokenId, ReviewId, FindingCode, DiscoverySource, LabelSelector, SsfStreamState, Jti,
            Grant, Boundary, Agent, AgentPage, RegisterAgent, UpdateAgent, StatusChange,
            Credential, Jwk, NewCredential, CredentialCreated, RotateCredential, CredentialRotated,
            AdminToken, NewAdminToken, SigningKey,
            AuthorizeRequest, AuthorizeBatchRequest, DecisionResource, Decision,
            AuthzenSubject, AuthzenResource, AuthzenAction, AuthzenEvaluationRequest, AuthzenEvaluationItem, EvaluationsSemantic, AuthzenEvaluationsOptions, AuthzenEvaluationsRequest, AuthzenDecision, AuthzenEvaluations, AuthzenPageRequest, AuthzenPage, AuthzenSearchRequest, AuthzenSearchResponse, AuthzenConfiguration,
            Anomaly, NewPolicies, PolicyVersionSummary, PolicyVersion, RegoModuleSource,
            PolicyReplayRequest, PolicyReplayCounts, PolicyReplayChange, PolicyReplaySkip, PolicyReplayReport,
            DiscoveredItem, DiscoveryMatch, DiscoveryShadow, DiscoveryGhost, DiscoveryRegistered, DiscoveryNotRegistered, DiscoveryCounts, DiscoveryRun,
            AuditEvent, InclusionProof, ConsistencyProof, LatestCheckpoint, ExportRecord, AuditNodes, AuditNode, ClusterStatus, ClusterNode, ExportStatus, ExportSink, SetError, SsfConfiguration,
            AuthorizationScheme, StreamDelivery, StreamDeliveryRequest, StreamConfiguration, StreamRequest, StreamStatus, StreamSubject, VerificationRequest, PollRequest, PollResponse,
            TokenRequest, TokenActionRequest, TokenResponse, IntrospectionResponse, TokenActor, ParentToken, TokenConfirmation, JwkSet, ServerMetadata,
            UserRef, Mandate, NewMandate, MandatePage, AgentSummary, ApprovalPage, ApprovalDecision,
            ContainAgent, IncidentBundle, BundleEvent, RevokeTokenById, TokenRevoked, RevokeMandate,
            NewDevUserToken, DevUserToken,
            Inventory, InventoryRow, InventoryCredential, InventoryFinding, InventoryThresholds,
            ComplianceReport, ComplianceControl, ComplianceEvidence, ComplianceCheckpoint,
            NewReview, ReviewCounts, ReviewSummary, ReviewPage, ReviewGrant, ReviewUse, ReviewItem, Review, ReviewDecision, ReviewDecided,
            PolicyActivated,
        ),
        responses(
            responses::AgentAfterStatusChange, responses::BadBody, responses::InvalidQuery, responses::Unauthenticated, responses::ForbiddenAgentToken, responses::ForbiddenWrite, responses::Forbidden, responses::NotFound, responses::Conflict, responses::InvalidTransition, responses::BodyTooLarge, responses::UnsupportedMediaType, responses::Internal, responses::AuditUnavailable, responses::InvalidPolicy, responses::PolicyActivated, responses::OAuthBadRequest, responses::OAuthUnsupportedResponseType, responses::OAuthInvalidClient, responses::OAuthSlowDown, responses::TooManyFailures, responses::OAuthServerError, responses::MandateForbidden, responses::NotAnApprover, responses::AnomalyNotOpen, responses::ApprovalConflict, responses::NotAReviewer, responses::ReviewConflict,
        ),
    ),
    modifiers(&Conventions),
)]
struct ApiDoc;

/// The OpenAPI document of the HTTP API.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The document as `docs/openapi.json` holds it: pretty JSON and a final newline.
///
/// # Errors
///
/// Only if `serde_json` cannot write the document (it can always write this one: every
/// map in it has string keys).
pub fn render() -> Result<String, serde_json::Error> {
    let mut text = document().to_pretty_json()?;
    text.push('\n');
    Ok(text)
}

/// The schemas of bodies with exactly the members they name (`additionalProperties:
/// false`). The server refuses unknown members in requests and sends no others in
/// answers, but the types do not deny unknown fields when they read an answer: a client
/// built against this crate keeps working against a newer server that sends more. So the
/// closedness is a fact of the document, set here, not of the types' `serde`.
const CLOSED: &[&str] = &[
    "AdminToken",
    "Agent",
    "AgentPage",
    "AgentSummary",
    "ApprovalDecision",
    "ApprovalPage",
    "AuditEvent",
    "AuditNode",
    "AuditNodes",
    "ClusterNode",
    "ClusterStatus",
    "ExportSink",
    "ExportStatus",
    "SetError",
    "SsfConfiguration",
    "AuthorizationScheme",
    "StreamDelivery",
    "StreamDeliveryRequest",
    "StreamConfiguration",
    "StreamRequest",
    "StreamStatus",
    "StreamSubject",
    "VerificationRequest",
    "PollRequest",
    "PollResponse",
    "AuthorizeBatchRequest",
    "AuthorizeRequest",
    // Access review campaigns.
    "NewReview",
    "ReviewCounts",
    "ReviewDecided",
    "ReviewDecision",
    "ReviewGrant",
    "ReviewItem",
    "ReviewPage",
    "Review",
    "ReviewSummary",
    "ReviewUse",
    // AuthZEN answers (its requests stay open: the specification has a PDP ignore
    // members it does not know).
    "AuthzenConfiguration",
    "AuthzenDecision",
    "AuthzenEvaluations",
    "AuthzenPage",
    "AuthzenSearchResponse",
    "Boundary",
    "BundleEvent",
    "ConsistencyProof",
    "ContainAgent",
    "Credential",
    "CredentialCreated",
    "CredentialRotated",
    "Decision",
    "DecisionResource",
    "DevUserToken",
    "DiscoveredItem",
    "DiscoveryCounts",
    "DiscoveryGhost",
    "DiscoveryMatch",
    "DiscoveryNotRegistered",
    "DiscoveryRegistered",
    "DiscoveryRun",
    "DiscoveryShadow",
    "Grant",
    "IncidentBundle",
    "InclusionProof",
    "LatestCheckpoint",
    "Mandate",
    "MandatePage",
    "NewAdminToken",
    "NewCredential",
    "NewDevUserToken",
    "NewMandate",
    "NewPolicies",
    "OAuthError",
    "PolicyError",
    "PolicyVersion",
    "PolicyVersionSummary",
    "Problem",
    "RegisterAgent",
    "RegoModuleSource",
    "RevokeMandate",
    "RevokeTokenById",
    "RotateCredential",
    "SigningKey",
    "StatusChange",
    "TokenResponse",
    "TokenRevoked",
    "UpdateAgent",
    "UserRef",
    // Named in the document beside the hand-written one's schemas, closed as the inline
    // bodies they replace were.
    "AdminTokenCreated",
    "AnomalyResolution",
    "Approval",
    "ComplianceCheckpoint",
    "ComplianceControl",
    "ComplianceEvidence",
    "ComplianceReport",
    "Inventory",
    "InventoryCredential",
    "InventoryFinding",
    "InventoryRow",
    "InventoryThresholds",
    "BatchDecisions",
    "KeyRotated",
    "PolicyActivated",
    "PolicyAdded",
    "PolicyList",
    "PolicyReplayChange",
    "PolicyReplayCounts",
    "PolicyReplayReport",
    "PolicyReplayRequest",
    "PolicyReplaySkip",
    "PolicyValidated",
    "PreviousCredential",
    "PutGatewaySecret",
];

/// What the derive has no attribute for.
struct Conventions;

impl Modify for Conventions {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        // utoipa's `Info` has no `summary` (OpenAPI 3.1); its extensions are flattened
        // into the info object when written, so the member goes there.
        openapi
            .info
            .extensions
            .get_or_insert_with(Extensions::default)
            .insert(
                "summary".to_owned(),
                "Identities and short-lived OAuth access tokens for AI agents.".into(),
            );
        openapi.info.license = Some(
            LicenseBuilder::new()
                .name("Apache-2.0")
                .identifier(Some("Apache-2.0"))
                .build(),
        );
        let components = openapi
            .components
            .get_or_insert_with(|| ComponentsBuilder::new().build());
        components.add_security_scheme(
            "adminBearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).description(Some(r#"An admin token (`mat_…`), created at first start (the bootstrap token) or with
`POST /v1/admin-tokens`. A missing, unknown or revoked token gets 401
`unauthenticated`. A `service` token is accepted only by `/v1/authorize`,
`/v1/authorize/batch` and `/access/v1/*` (403 `forbidden` on every other `/v1` route). Agent access
tokens (JWTs) are refused on `/v1/*` with 403 `agent_token_forbidden` (except at
`/v1/authorize` and the mandate and approval endpoints, see `agentBearer` and
`userBearer`), and on `/oauth/introspect` and `/oauth/revoke` with 401
`invalid_client`."#)).build()),
        );
        components.add_security_scheme(
            "agentBearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").description(Some(r#"An agent's own access token from `/oauth/token` (RFC 9068, `typ: at+jwt`).
Accepted by `/v1/authorize` and `/v1/authorize/batch`, which decide for the
agent the token names: there any bearer that looks like a JWT is taken as one,
and a token that does not verify yields a `deny` with reason `invalid_token`, not
a 401. Also accepted by the mandate endpoints (`/v1/mandates*`), where a token
that does not verify, or whose agent is not active, gets 401 `unauthenticated`
and approval endpoints answer it 403 `not_an_approver`."#)).build()),
        );
        components.add_security_scheme(
            "clientSecretBasic",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Basic)
                    .description(Some(
                        r#"`client_secret_basic` (RFC 6749 §2.3.1): the agent id (`agt_…`, the OAuth
`client_id`) and a client secret (`mcs_…`), each form-urlencoded, then Basic
encoded. The other two methods carry their credentials in the form body and so
have no security scheme here (an empty requirement `{}` stands for them):
`client_secret_post` (`client_id` + `client_secret`) and `private_key_jwt`
(`client_assertion_type` + `client_assertion`, RFC 7523). A request must use
exactly one method."#,
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "userBearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").description(Some(r#"A human's token from a trusted issuer (an OIDC ID token or JWT access token of
the operator's identity provider, or the development issuer): signature by the
issuer's configured keys, `aud`, `exp`/`nbf`/`iat` by Mandate's clock. Accepted
by the mandate and approval endpoints; users in the configured approver group
are approvers. A token that does not verify gets 401 `unauthenticated`."#)).build()),
        );

        for name in CLOSED {
            if let Some(RefOr::T(Schema::Object(object))) = components.schemas.get_mut(*name) {
                object.additional_properties =
                    Some(Box::new(AdditionalProperties::FreeForm(false)));
            }
        }
        // A decision's first reason is its `DecisionReason` code, the rest prose for
        // humans: a tuple the derive cannot state (`reasons` is a `Vec<String>`).
        if let Some(RefOr::T(Schema::Object(decision))) = components.schemas.get_mut("Decision")
            && let Some(RefOr::T(Schema::Array(reasons))) = decision.properties.get_mut("reasons")
        {
            reasons.prefix_items = vec![Schema::AllOf(
                AllOfBuilder::new()
                    .item(Ref::from_schema_name("DecisionReason"))
                    .build(),
            )];
        }
        // RFC 6749 §3.1: an OAuth parameter sent without a value is treated as omitted,
        // so every optional one of the form bodies may also be empty (schemathesis took
        // `client_assertion_type=` for an invalid value accepted).
        for name in ["TokenRequest", "TokenActionRequest"] {
            if let Some(RefOr::T(Schema::Object(form))) = components.schemas.get_mut(name) {
                let required = form.required.clone();
                for (member, schema) in form.properties.iter_mut() {
                    if required.contains(member) || matches!(schema, RefOr::T(Schema::Array(_))) {
                        continue;
                    }
                    let empty = ObjectBuilder::new()
                        .schema_type(Type::String)
                        .max_length(Some(0))
                        .description(Some("Empty: the same as absent (RFC 6749 §3.1)."));
                    *schema = RefOr::T(Schema::AnyOf(
                        AnyOfBuilder::new().item(schema.clone()).item(empty).build(),
                    ));
                }
            }
        }
        // What the derive writes wrong, fixed everywhere a schema is (schemathesis found
        // both, `crates/mandate/tests/e2e/schemathesis.rs`).
        for schema in components.schemas.values_mut() {
            walk_ref(schema, &mut describe_without_type);
        }
        // Whatever can answer 401 can answer 429: failed authentication backs off per
        // source (docs/running.md#abuse-limits); the OAuth endpoints say `slow_down`.
        for item in openapi.paths.paths.values_mut() {
            for op in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                fix_operation(op);
                let r = &mut op.responses.responses;
                if r.contains_key("401") && !r.contains_key("429") {
                    r.insert(
                        "429".to_owned(),
                        RefOr::Ref(Ref::from_response_name("TooManyFailures")),
                    );
                }
            }
        }
        if let Some(components) = openapi.components.as_mut() {
            for response in components.responses.values_mut() {
                if let RefOr::T(response) = response {
                    for content in response.content.values_mut() {
                        if let RefOr::T(content) = content
                            && let Some(schema) = content.schema.as_mut()
                        {
                            walk_ref(schema, &mut describe_without_type);
                        }
                    }
                }
            }
        }
        // `GET /ssf/stream` answers one stream with `stream_id` and an array of every
        // stream without (SSF 1.0 §8.1.1.2): the marker can name one body type only.
        if let Some(RefOr::T(ok)) = openapi
            .paths
            .paths
            .get_mut("/ssf/stream")
            .and_then(|item| item.get.as_mut())
            .and_then(|op| op.responses.responses.get_mut("200"))
            && let Some(RefOr::T(json)) = ok.content.get_mut("application/json")
        {
            json.schema = Some(RefOr::T(Schema::OneOf(
                OneOfBuilder::new()
                    .item(Ref::from_schema_name("StreamConfiguration"))
                    .item(ArrayBuilder::new().items(Ref::from_schema_name("StreamConfiguration")))
                    .build(),
            )));
        }
        // RFC 8707: `resource` repeats as `resource=a&resource=b`.
        if let Some(body) = openapi
            .paths
            .paths
            .get_mut("/oauth/token")
            .and_then(|item| item.post.as_mut())
            .and_then(|op| op.request_body.as_mut())
            && let RefOr::T(body) = body
            && let Some(RefOr::T(form)) = body.content.get_mut("application/x-www-form-urlencoded")
        {
            form.encoding.insert(
                "resource".to_owned(),
                EncodingBuilder::new()
                    .style(Some(ParameterStyle::Form))
                    .explode(Some(true))
                    .build(),
            );
        }
    }
}

/// Applies `f` to `schema` and every schema inside it (properties, items, compositions).
fn walk(schema: &mut Schema, f: &mut impl FnMut(&mut Schema)) {
    match schema {
        Schema::Object(o) => {
            for p in o.properties.values_mut() {
                walk_ref(p, f);
            }
            if let Some(extra) = o.additional_properties.as_deref_mut()
                && let AdditionalProperties::RefOr(extra) = extra
            {
                walk_ref(extra, f);
            }
        }
        Schema::Array(a) => {
            if let ArrayItems::RefOrSchema(items) = &mut a.items {
                walk_ref(items, f);
            }
            for p in &mut a.prefix_items {
                walk(p, f);
            }
        }
        Schema::AllOf(c) => c.items.iter_mut().for_each(|s| walk_ref(s, f)),
        Schema::OneOf(c) => c.items.iter_mut().for_each(|s| walk_ref(s, f)),
        Schema::AnyOf(c) => c.items.iter_mut().for_each(|s| walk_ref(s, f)),
        _ => {}
    }
    f(schema);
}

fn walk_ref(schema: &mut RefOr<Schema>, f: &mut impl FnMut(&mut Schema)) {
    if let RefOr::T(s) = schema {
        walk(s, f);
    }
}

/// utoipa writes a documented field whose type is given inline (`value_type = X,
/// inline`) as `allOf: [X, {"type": "object", "description": …}]`: the second member,
/// there only to carry the description, claims the value is an object, so no string
/// enum could ever match. Such a member keeps its description and loses its type.
fn describe_without_type(schema: &mut Schema) {
    if let Schema::AllOf(all) = schema {
        for member in &mut all.items {
            if let RefOr::T(Schema::Object(o)) = member
                && o.schema_type == SchemaType::Type(Type::Object)
                && o.description.is_some()
                && o.properties.is_empty()
                && o.additional_properties.is_none()
                && o.enum_values.is_none()
                && o.required.is_empty()
            {
                o.schema_type = SchemaType::AnyValue;
            }
        }
    }
}

/// An operation's schemas fixed as [`describe_without_type`] does, and an optional
/// request body (`Option<T>` in the marker) stated as `T` and not required: the derive
/// writes `oneOf: [T, null]`, which says a JSON `null` body is valid, but an optional
/// body is one that is absent (or empty), and a `null` one is refused like any other
/// value that is not a `T`.
fn fix_operation(op: &mut Operation) {
    if let Some(RefOr::T(body)) = op.request_body.as_mut() {
        for content in body.content.values_mut() {
            if let RefOr::T(content) = content
                && let Some(schema) = content.schema.as_mut()
            {
                if let RefOr::T(Schema::OneOf(one)) = schema
                    && one.items.len() == 2
                    && matches!(one.items.get(1), Some(RefOr::T(Schema::Object(o))) if o.schema_type == SchemaType::Type(Type::Null))
                    && let Some(first) = one.items.first().cloned()
                {
                    *schema = first;
                }
                walk_ref(schema, &mut describe_without_type);
            }
        }
    }
    for response in op.responses.responses.values_mut() {
        if let RefOr::T(response) = response {
            for content in response.content.values_mut() {
                if let RefOr::T(content) = content
                    && let Some(schema) = content.schema.as_mut()
                {
                    walk_ref(schema, &mut describe_without_type);
                }
            }
        }
    }
    for param in op.parameters.iter_mut().flatten() {
        if let RefOr::T(param) = param
            && let Some(schema) = param.schema.as_mut()
        {
            walk_ref(schema, &mut describe_without_type);
        }
    }
}
