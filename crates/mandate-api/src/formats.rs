//! The named schemas of values whose rules live outside this crate: identifiers,
//! timestamps, names, the closed enums of `mandate-core` and the like.
//!
//! Why they are built here rather than derived: the wire types carry these values as
//! `String` (a response is what the server wrote; the server, not the client, judges a
//! request), and the types that check them (`mandate_core::id::AgentId`, …) belong to
//! `mandate-core`, which does not depend on utoipa. So each schema is a marker type
//! whose `ToSchema` is built with utoipa's builder, and a field refers to it with
//! `#[schema(value_type = AgentId)]`. The patterns state the rules the core types check;
//! the enums list the serialisations of the core enums (`tests/openapi.rs` checks the
//! closed enums against `mandate-core`).

use serde_json::json;
use utoipa::openapi::schema::{
    ArrayBuilder, KnownFormat, ObjectBuilder, OneOfBuilder, SchemaFormat, Type,
};
use utoipa::openapi::{RefOr, Schema};

/// A marker type whose schema is `$schema`, named as the type.
macro_rules! named_schema {
    ($(#[$meta:meta])* $name:ident, $schema:expr) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub struct $name;

        impl utoipa::PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                $schema.into()
            }
        }

        impl utoipa::ToSchema for $name {}
    };
}

/// A string that is one of `values`.
fn one_of_strings(values: &[&str]) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(values.iter().copied()))
}

named_schema!(
    /// `AgentId`: `agt_` + a ULID (26 Crockford base32 characters).
    AgentId,
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some("^agt_[0-7][0-9A-HJKMNP-TV-Z]{25}$"))
        .description(Some("`agt_` + a ULID (26 Crockford base32 characters). Also the agent's OAuth `client_id`."))
        .examples([json!("agt_01J00000000000000000000000")])
);

named_schema!(
    /// `CredentialId`: `crd_` + a ULID.
    CredentialId,
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some("^crd_[0-7][0-9A-HJKMNP-TV-Z]{25}$"))
        .description(Some("`crd_` + a ULID."))
);

named_schema!(
    /// `AdminTokenId`: `adm_` + a ULID.
    AdminTokenId,
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some("^adm_[0-7][0-9A-HJKMNP-TV-Z]{25}$"))
        .description(Some("`adm_` + a ULID: an admin token's public handle, never the token."))
);

named_schema!(
    /// `Timestamp`: RFC 3339, years 0000–9999.
    Timestamp,
    ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
        .description(Some("RFC 3339, years 0000–9999. Written as UTC at second resolution (`2025-01-31T12:00:00Z`)."))
);

named_schema!(
    /// `AgentName`: Unique among agents.
    AgentName,
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(64))
        .pattern(Some("^[A-Za-z0-9][A-Za-z0-9._-]*$"))
        .description(Some("Unique among agents."))
        .examples([json!("billing-bot.v2")])
);

named_schema!(
    /// `Owner`: The accountable human.
    Owner,
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(254))
        .pattern(Some(r#"^[^\s\u0000-\u001f\u007f-\u009f]+$"#))
        .description(Some(r#"The accountable human: an email address or directory user name. 1–254 bytes
(UTF-8), no whitespace, no control characters."#))
        .examples([json!("alice@example.com")])
);

named_schema!(
    /// `Purpose`: What the agent is for.
    Purpose,
    ObjectBuilder::new()
        .schema_type(Type::String)
        .max_length(Some(1000))
        .pattern(Some(r#"^[^\u0000-\u0009\u000b-\u001f\u007f-\u009f]*$"#))
        .description(Some("What the agent is for. Newlines allowed, other control characters not."))
);

named_schema!(
    /// `Labels`: Inventory labels.
    Labels,
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .max_properties(Some(32))
        .property_names(Some(ObjectBuilder::new()
            .schema_type(Type::String)
            .max_length(Some(63))
            .pattern(Some("^[a-z0-9][a-z0-9._/-]*$"))))
        .additional_properties(Some(ObjectBuilder::new()
            .schema_type(Type::String)
            .max_length(Some(128))
            .pattern(Some(r#"^[^\u0000-\u001f\u007f-\u009f]*$"#))))
        .description(Some(r#"Inventory labels. Keys: 1–63 of `a-z 0-9 . _ / -`, starting with a letter or
digit. Values: at most 128 characters, no control characters."#))
        .examples([json!({"env": "prod", "team": "billing"})])
);

named_schema!(
    /// `Pattern`: An action, resource or data-class pattern (`*` globs).
    Pattern,
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(256))
        .pattern(Some(r#"^[^\s\u0000-\u001f\u007f-\u009f]+$"#))
        .description(Some("An action, resource or data-class pattern (`*` globs). 1–256 bytes, no whitespace or control characters."))
);

named_schema!(
    /// `AgentStatus`: `active` may authenticate; `suspended` is stopped and may be resumed;
    /// `decommissioned` is final.
    AgentStatus,
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(["active", "suspended", "decommissioned"]))
        .description(Some(r#"`active` may authenticate; `suspended` is stopped and may be resumed;
`decommissioned` is final."#))
);

named_schema!(
    /// `CredentialKind`: `client_secret` (`client_secret_basic` / `client_secret_post`) or
    /// `public_key` (`private_key_jwt`).
    CredentialKind,
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(["client_secret", "public_key", "tls_client_auth"]))
        .description(Some("`client_secret` (`client_secret_basic` / `client_secret_post`) or `public_key` (`private_key_jwt`)."))
);

named_schema!(
    /// `CredentialState`: Derived when shown.
    CredentialState,
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(["active", "expiring", "expired", "revoked"]))
        .description(Some(r#"Derived when shown: `revoked` (revoked outright), `expired` (past `expires_at`),
`expiring` (has an `expires_at` still ahead, e.g. during a rotation overlap),
`active` otherwise."#))
);

named_schema!(
    /// `Role`: `admin` may do everything; `auditor` and `approver` may only read; `service`
    /// (an enforcement point) may only ask for decisions (`/v1/authorize*`, `/access/v1/*`).
    Role,
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(["admin", "auditor", "approver", "service"]))
        .description(Some(r#"`admin` may do everything; `auditor` and `approver` may only read; `service` (an
enforcement point) may only ask for decisions: `/v1/authorize`, `/v1/authorize/batch` and
the AuthZEN endpoints `/access/v1/*`."#))
);

named_schema!(
    /// `DecisionReason`: Why a decision came out as it did, by gate in the order they run
    /// (the first that fails decides).
    DecisionReason,
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(["invalid_token", "token_revoked", "unknown_agent", "agent_suspended", "agent_decommissioned", "outside_token_scope", "outside_boundary", "no_active_policy", "no_permit", "forbidden_by_policy", "policy_error", "mandate_inactive", "outside_mandate", "approval_required", "step_up_required", "allowed_by_policy"]))
        .description(Some(r#"Why a decision came out as it did, by gate in the order they run (the first that
fails decides):

| code | decision | meaning |
|---|---|---|
| `invalid_token` | deny | the token's signature, type, issuer or validity window does not check out, or it names no valid agent id |
| `token_revoked` | deny | the token was revoked, or issued at or before the agent's token cutoff |
| `unknown_agent` | deny | no such agent (or `principal` is not an agent id) |
| `agent_suspended` | deny | the agent is `suspended` |
| `agent_decommissioned` | deny | the agent is `decommissioned` |
| `outside_token_scope` | deny | the token has a scope and no scope token matches the action |
| `outside_boundary` | deny | no grant of the agent's boundary (or of a delegating agent's) matches the action, `{type}/{id}` and (if named) the context's `data_class`; the next reason names the part that failed first, as `action: …`, `resource: …` or `data_class: …`; or, for a delegated token, a delegating agent's `delegates` no longer names the agent it delegated to |
| `mandate_inactive` | deny | the token's mandate is not active (revoked, expired, completed) |
| `outside_mandate` | deny | the action, resource or data class is outside the mandate's scope |
| `no_active_policy` | deny | no policy version is active |
| `no_permit` | deny | no permit policy matched (default deny) |
| `forbidden_by_policy` | deny | a forbid policy matched |
| `policy_error` | deny | an undeclared action, a resource or context that does not fit the schema, or a policy that failed to evaluate |
| `approval_required` | approval_required | only forbids annotated `@approval` denied it: a human may approve |
| `step_up_required` | approval_required | the policies allowed it, but an open anomaly holds this agent's matching requests until a human acknowledges or dismisses it |
| `allowed_by_policy` | allow | a permit matched, no forbid did, and nothing failed |

`agent_suspended` is also the answer when the anomaly detector has just
suspended the agent (or an agent that delegated to it); the detail says so."#))
);

named_schema!(
    /// `AnomalyId`: `anm_` + a ULID.
    AnomalyId,
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some("^anm_[0-7][0-9A-HJKMNP-TV-Z]{25}$"))
);

named_schema!(
    /// `Severity`: A band of the score - low 1-39, medium 40-69, high 70-89, critical
    /// 90-100.
    Severity,
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(["low", "medium", "high", "critical"]))
        .description(Some("A band of the score - low 1-39, medium 40-69, high 70-89, critical 90-100."))
);

named_schema!(
    /// `AnomalyKind`: What kind of behaviour an anomaly is about.
    AnomalyKind,
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(["new_action", "new_resource_type", "new_data_class", "rate_spike", "off_hours", "deny_burst", "unusual_delegation"]))
);

named_schema!(
    /// `PolicyVersionNumber`: A policy version, numbered 1, 2, 3, … in the order they were
    /// added.
    PolicyVersionNumber,
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(1))
        .description(Some("A policy version, numbered 1, 2, 3, … in the order they were added."))
);

named_schema!(
    /// `PolicyIds`: The policies' ids in source order.
    PolicyIds,
    ArrayBuilder::new()
        .items(ObjectBuilder::new()
            .schema_type(Type::String))
        .description(Some(r#"The policies' ids in source order: each policy's `@id("…")` annotation when it has
one, else Cedar's positional id (`policy0`, `policy1`, …)."#))
        .examples([json!(["allow-crm-read", "policy1"])])
);

named_schema!(
    /// `NodeName`: The node whose log this is (each node keeps its own log).
    NodeName,
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some("^[A-Za-z0-9._-]{1,64}$"))
        .description(Some("The node whose log this is (each node keeps its own log)."))
);

named_schema!(
    /// `AuditEventId`: `<node>:<seq>`, unique across nodes.
    AuditEventId,
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some("^[A-Za-z0-9._-]{1,64}:[0-9]+$"))
        .description(Some("`<node>:<seq>`, unique across nodes."))
        .examples([json!("node-1:42")])
);

named_schema!(
    /// `Base64Hash`: A SHA-256 value (32 bytes), standard base64 with padding.
    Base64Hash,
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some("^[A-Za-z0-9+/]{43}=$"))
        .content_encoding("base64")
        .description(Some("A SHA-256 value (32 bytes), standard base64 with padding."))
);

named_schema!(
    /// `TraceId`: A W3C Trace Context trace id (16 bytes), 32 lower-case hex digits, not
    /// all zero.
    TraceId,
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some("^[0-9a-f]{32}$"))
        .description(Some(
            "A W3C Trace Context trace id (16 bytes): 32 lower-case hex digits, not all zero."
        ))
);

named_schema!(
    /// `SignedCheckpoint`: A C2SP `tlog-checkpoint` in a C2SP `signed-note` with one
    /// Ed25519 signature.
    SignedCheckpoint,
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(r#"A C2SP `tlog-checkpoint` in a C2SP `signed-note` with one Ed25519 signature:

```text
mandate/<node>
<size>
<base64 root>
<time, YYYY-MM-DDTHH:MM:SSZ>

— mandate/<node> <base64(key id[4] ‖ Ed25519 signature[64])>
```

The signature covers the four body lines (each ending in `\n`); the key id is
the first 4 bytes of `SHA-256("mandate/<node>" ‖ "\n" ‖ 0x01 ‖ public key)`, as
Go's `golang.org/x/mod/sumdb/note` computes it."#))
);

named_schema!(
    /// `AuthMethods`: The client authentication methods an endpoint takes.
    AuthMethods,
    ArrayBuilder::new()
        .items(ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(["client_secret_basic", "client_secret_post", "private_key_jwt"])))
);

named_schema!(
    /// `AssertionAlgs`: The client-assertion algorithms an endpoint takes.
    AssertionAlgs,
    ArrayBuilder::new()
        .items(ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(["EdDSA", "Ed25519", "ES256"])))
);

named_schema!(
    /// `MandateId`: `mdt_` + a ULID.
    MandateId,
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some("^mdt_[0-7][0-9A-HJKMNP-TV-Z]{25}$"))
        .description(Some("`mdt_` + a ULID."))
        .examples([json!("mdt_01J00000000000000000000000")])
);

named_schema!(
    /// `MandateStatus`: `pending_approval` → `active` | `denied` (by an approver, or when
    /// the approval times out); `active` → `expired` | `revoked` | `completed`; a pending
    /// request may also be `revoked`.
    MandateStatus,
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(["pending_approval", "active", "denied", "expired", "revoked", "completed"]))
        .description(Some(r#"`pending_approval` → `active` | `denied` (by an approver, or when the approval
times out); `active` → `expired` | `revoked` | `completed`; a pending request
may also be `revoked`. `denied`, `expired`, `revoked` and `completed` are final."#))
);

named_schema!(
    /// `MandateText`: 1–2000 characters, not all whitespace; no control characters but
    /// newlines and tabs.
    MandateText,
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(2000))
        .description(Some("1–2000 characters, not all whitespace; no control characters but newlines and tabs."))
);

named_schema!(
    /// `IncidentId`: An incident (one containment and its bundle).
    IncidentId,
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some("^inc_[0-7][0-9A-HJKMNP-TV-Z]{25}$"))
        .description(Some("An incident (one containment and its bundle)."))
);

named_schema!(
    /// `TokenId`: An access token's `jti`.
    TokenId,
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some("^tok_[0-7][0-9A-HJKMNP-TV-Z]{25}$"))
        .description(Some("An access token's `jti`."))
);

// Schemas used only inline, inside the schema of a field (never named in the document).

named_schema!(
    /// `grant_type`: the grants the token endpoint takes.
    GrantType,
    one_of_strings(&[
        "client_credentials",
        "urn:ietf:params:oauth:grant-type:token-exchange"
    ])
);

named_schema!(
    /// A token exchange's `subject_token_type`.
    SubjectTokenType,
    one_of_strings(&[
        "urn:ietf:params:oauth:token-type:access_token",
        "urn:ietf:params:oauth:token-type:jwt",
        "urn:ietf:params:oauth:token-type:id_token"
    ])
);

named_schema!(
    /// A token exchange's `actor_token_type` and `requested_token_type`.
    IssuedTokenType,
    one_of_strings(&[
        "urn:ietf:params:oauth:token-type:access_token",
        "urn:ietf:params:oauth:token-type:jwt"
    ])
);

named_schema!(
    /// One `audience` of a token exchange.
    Audience,
    ObjectBuilder::new().schema_type(Type::String).max_length(Some(1024))
);

named_schema!(
    /// One RFC 8707 `resource`.
    ResourceUri,
    ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(SchemaFormat::Custom("uri".to_owned())))
        .max_length(Some(2048))
);

named_schema!(
    /// RFC 7523's client assertion type.
    ClientAssertionType,
    one_of_strings(&["urn:ietf:params:oauth:client-assertion-type:jwt-bearer"])
);

named_schema!(
    /// `token_type`: `Bearer`, or `DPoP` for a DPoP-bound token (RFC 9449 §5).
    BearerType,
    one_of_strings(&["Bearer", "DPoP"])
);

named_schema!(
    /// An introspected `aud`: one string or several.
    IntrospectedAudience,
    OneOfBuilder::new()
        .item(ObjectBuilder::new().schema_type(Type::String))
        .item(ArrayBuilder::new().items(ObjectBuilder::new().schema_type(Type::String)))
);

named_schema!(
    /// `kty` of a signing key: `OKP`.
    KtyOkp,
    one_of_strings(&["OKP"])
);

named_schema!(
    /// `crv` of a signing key: `Ed25519`.
    CrvEd25519,
    one_of_strings(&["Ed25519"])
);

named_schema!(
    /// `alg` of a signing key.
    SigningAlg,
    one_of_strings(&["EdDSA", "Ed25519"])
);

named_schema!(
    /// `use` of a key: `sig`.
    UseSig,
    one_of_strings(&["sig"])
);

named_schema!(
    /// `/healthz`'s status.
    StatusOk,
    one_of_strings(&["ok"])
);

named_schema!(
    /// `/readyz`'s status.
    StatusReady,
    one_of_strings(&["ready"])
);

named_schema!(
    /// An anomaly's state.
    AnomalyStatus,
    one_of_strings(&["open", "acknowledged", "dismissed"])
);

named_schema!(
    /// A decision's outcome as the audit log records it.
    AuditDecision,
    one_of_strings(&["allow", "deny"])
);

named_schema!(
    /// An anomaly's response: what the configuration did about it.
    AnomalyResponse,
    one_of_strings(&["record", "alert", "step_up", "suspend"])
);

named_schema!(
    /// A decision's outcome as `/v1/authorize` answers it.
    DecisionOutcome,
    one_of_strings(&["allow", "deny", "approval_required"])
);

named_schema!(
    /// The error codes of the OAuth endpoints (RFC 6749 §5.2, RFC 7009 §2.2.1, RFC 8707 §2,
    /// RFC 6750 §3.1).
    OAuthErrorCode,
    one_of_strings(&[
        "invalid_request",
        "invalid_client",
        "unauthorized_client",
        "unsupported_grant_type",
        "invalid_scope",
        "invalid_target",
        "invalid_token",
        "insufficient_scope",
        "temporarily_unavailable",
        "server_error",
        "unsupported_response_type",
        "slow_down"
    ])
);

named_schema!(
    /// One RFC 8707 resource URI pattern of a boundary.
    AudiencePattern,
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(256))
        .pattern(Some(r"^[^\s\u0000-\u001f\u007f-\u009f]+$"))
);

named_schema!(
    /// A user's group, as a development user token names it: 1–256 characters, no
    /// control characters (as a user token's claims are checked).
    GroupName,
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(256))
        .pattern(Some(r"^[^\u0000-\u001f\u007f-\u009f]+$"))
);

named_schema!(
    /// The format of an incident bundle.
    BundleFormat,
    one_of_strings(&["mandate-incident/v1"])
);

named_schema!(
    /// `ReviewId`: `rev_` + a ULID.
    ReviewId,
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some("^rev_[0-7][0-9A-HJKMNP-TV-Z]{25}$"))
        .description(Some("`rev_` + a ULID."))
);

named_schema!(
    /// An inventory finding's code (mandate-govern's `findings::Code`; codes are only
    /// ever added).
    FindingCode,
    one_of_strings(&[
        "owner_missing",
        "owner_unknown",
        "dormant",
        "credential_stale",
        "credential_never_rotated",
        "boundary_wildcard",
        "boundary_wider_than_use",
        "dead",
        "unconditional_permit"
    ])
);

named_schema!(
    /// A discovery source (mandate-govern's `discover::Source`).
    DiscoverySource,
    one_of_strings(&["kubernetes", "aws", "azure", "gcp"])
);

/// A label selector's key: no whitespace, no control or operator character.
const SELECTOR_KEY: &str = r"[^\s\u0000-\u001f\u007f-\u009f=!,]+";
/// A label selector's value: possibly empty, no control or operator character.
const SELECTOR_VALUE: &str = r"[^\u0000-\u001f\u007f-\u009f=!,]*";

named_schema!(
    /// `LabelSelector`: mandate-govern's `discover::Selector` grammar.
    LabelSelector,
    {
        let term = format!(
            r"\s*(?:!\s*{k}|{k}(?:\s*(?:==?|!=)\s*{v})?)\s*",
            k = SELECTOR_KEY,
            v = SELECTOR_VALUE
        );
        ObjectBuilder::new()
            .schema_type(Type::String)
            .max_length(Some(1024))
            .pattern(Some(format!(r"^(?:\s*|{term}(?:,{term}){{0,15}})$")))
            .description(Some(
                "Kubernetes' equality-based label selector: up to 16 terms joined by `,`, all \
                 of which must hold: `key=value` (or `key==value`), `key!=value`, `key` \
                 (present), `!key` (absent); spaces around terms and operators are ignored. \
                 Empty (or blank): everything. At most 1024 bytes.",
            ))
    }
);

named_schema!(
    /// A Shared Signals stream's status (SSF 1.0 §8.1.2).
    SsfStreamState,
    one_of_strings(&["enabled", "paused", "disabled"])
);

named_schema!(
    /// A Security Event Token's `jti` as a receiver acknowledges it: 1 to 256 bytes.
    Jti,
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(256))
);
