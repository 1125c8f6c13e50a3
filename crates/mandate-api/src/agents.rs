//! The agent registry's wire types: agents, their boundaries and credentials
//! (`/v1/agents…`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{RefOr, Schema};

use crate::formats::{
    self, AgentId, AgentName, AudiencePattern, CredentialId, CredentialState, Labels, Owner,
    Pattern, Purpose, Timestamp,
};
use crate::{AgentStatus, CredentialKind};

/// One grant of a boundary — action patterns × resource patterns, optionally limited to
/// data classes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    /// Action patterns (`crm:read*`).
    #[schema(value_type = Vec<Pattern>, min_items = 1)]
    pub actions: Vec<String>,
    /// Resource patterns, matched by the decision path against the resource as
    /// `{type}/{id}`: `Crm::Contact/*` covers `{"type": "Crm::Contact", "id": "c1"}`.
    #[schema(value_type = Vec<Pattern>, min_items = 1)]
    pub resources: Vec<String>,
    /// Data-class patterns this grant covers; empty (the default) names none, so the
    /// grant covers only requests whose context names no `data_class`. Always
    /// present in responses.
    #[serde(default)]
    #[schema(value_type = Vec<Pattern>, default = json!([]))]
    pub data_classes: Vec<String>,
}

/// The documented ceiling of an agent. The token service enforces
/// `max_token_lifetime_secs`, each requested scope token must match an action
/// pattern of some grant (no grants: no scope), and each requested RFC 8707
/// `resource` must match an `audiences` pattern or be the server's default audience
/// (`invalid_target` otherwise).
///
/// The decision path (`/v1/authorize`) allows a request only if one grant matches
/// all of: its `action` (an `actions` pattern), its resource as `{type}/{id}`, e.g.
/// `Crm::Contact/c1` (a `resources` pattern), and — when the request's context
/// names a `data_class` (a string) — that data class (a `data_classes` pattern); a
/// grant without `data_classes` covers only requests that name none. Otherwise the
/// decision is a deny with `outside_boundary`, and its second reason names the
/// first part no grant covers: `action: …` (no grant names the action), `resource: …`
/// (grants name the action, none of them the resource) or `data_class: …`.
/// `delegates` names the agents this one may delegate a mandate token to (RFC 8693
/// exchange); a token delegated to an agent no longer listed is refused at the next
/// decision (`outside_boundary`), and so is every token below it.
///
/// In responses `grants`, `delegates` and `audiences` are always present and
/// `max_token_lifetime_secs` only when set. Unknown members are refused, as the server
/// refuses them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Boundary {
    /// What the agent may ever do.
    #[serde(default)]
    #[schema(max_items = 256, default = json!([]))]
    pub grants: Vec<Grant>,
    /// The longest access-token lifetime this agent may hold (input may be `null` for
    /// none).
    #[serde(
        default,
        deserialize_with = "mandate_core::integer::optional",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(minimum = 1, maximum = 86400)]
    pub max_token_lifetime_secs: Option<u32>,
    /// Agents (`agt_…`) this one may delegate to.
    #[serde(default)]
    #[schema(value_type = Vec<AgentId>, max_items = 256, default = json!([]))]
    pub delegates: Vec<String>,
    /// RFC 8707 resource URIs (`*` globs) this agent may get tokens for.
    #[serde(default)]
    #[schema(value_type = Vec<AudiencePattern>, inline, max_items = 256, default = json!([]))]
    pub audiences: Vec<String>,
    /// Every token this agent gets must be DPoP-bound (RFC 9449): a token request
    /// without a `DPoP` proof is refused (`invalid_dpop_proof`). Shown only when true.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub require_dpop: bool,
}

/// An agent as the registry shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Agent {
    /// `agt_…`, also its OAuth `client_id`.
    #[schema(value_type = AgentId)]
    pub id: String,
    /// Unique among agents.
    #[schema(value_type = AgentName)]
    pub name: String,
    /// The accountable human.
    #[schema(value_type = Owner)]
    pub owner: String,
    /// What it is for (may be empty).
    #[schema(value_type = Purpose)]
    pub purpose: String,
    /// Inventory labels.
    #[schema(value_type = Labels)]
    pub labels: BTreeMap<String, String>,
    /// Its ceiling.
    pub boundary: Boundary,
    /// `active`, `suspended` or `decommissioned`.
    #[schema(value_type = formats::AgentStatus)]
    pub status: AgentStatus,
    /// Why the status last changed; present only if a reason was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String)]
    pub status_reason: Option<String>,
    /// RFC 3339.
    #[schema(value_type = Timestamp)]
    pub created_at: String,
    /// RFC 3339.
    #[schema(value_type = Timestamp)]
    pub updated_at: String,
}

/// A page of agents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AgentPage {
    /// The agents of this page.
    pub items: Vec<Agent>,
    /// Pass as `cursor` for the next page; `null` when this page is not full.
    #[schema(value_type = Option<AgentId>, required)]
    pub next_cursor: Option<String>,
}

/// `POST /v1/agents`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RegisterAgent {
    /// Unique among agents.
    #[schema(value_type = AgentName)]
    pub name: String,
    /// The accountable human.
    #[schema(value_type = Owner)]
    pub owner: String,
    /// What it is for (default empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Purpose, default = json!(""))]
    pub purpose: Option<String>,
    /// Inventory labels (default none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Labels, default = json!({}))]
    pub labels: Option<BTreeMap<String, String>>,
    /// Its ceiling (default: nothing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Boundary, default = json!({}))]
    pub boundary: Option<Boundary>,
}

/// `PATCH /v1/agents/{id}`: each field given replaces the stored one (labels replace
/// all labels); absent fields are not sent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct UpdateAgent {
    /// A new name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<AgentName>)]
    pub name: Option<String>,
    /// A new owner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Owner>)]
    pub owner: Option<String>,
    /// A new purpose.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Purpose>)]
    pub purpose: Option<String>,
    /// New labels (all of them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Labels>)]
    pub labels: Option<BTreeMap<String, String>>,
    /// A new boundary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boundary: Option<Boundary>,
}

/// The body of suspend, resume and decommission.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
// The server reads this type: an unknown member is a 400 `unknown_field`.
#[serde(deny_unknown_fields)]
pub struct StatusChange {
    /// Recorded as the agent's `status_reason` (a missing reason clears it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$", max_length = 500)]
    pub reason: Option<String>,
    /// Suspend only (`invalid_field` elsewhere): also kill every token the agent was
    /// issued so far, so a later resume does not revive them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoke_tokens: Option<bool>,
}

impl StatusChange {
    /// Whether there is nothing to send (the call then has no body).
    pub fn is_empty(&self) -> bool {
        self.reason.is_none() && self.revoke_tokens.is_none()
    }
}

/// A JWK exactly as the user gave it: the server checks it (and refuses private
/// members), so the client neither drops nor adds members.
///
/// Its schema is `PublicJwk`, built by hand: the type is a map on purpose (it keeps
/// members this crate does not know), so no derive can state the members the server
/// takes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Jwk(pub serde_json::Map<String, serde_json::Value>);

impl utoipa::PartialSchema for Jwk {
    fn schema() -> RefOr<Schema> {
        let string = || ObjectBuilder::new().schema_type(Type::String);
        let one_of = |values: &[&str]| string().enum_values(Some(values.iter().copied()));
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(
                "An Ed25519 (`kty: OKP`, `crv: Ed25519`, `x`) or P-256 (`kty: EC`, `crv: P-256`,\n\
                 `x`, `y`) public key, coordinates base64url. Private members (`d`, `p`, `q`, `dp`,\n\
                 `dq`, `qi`, `oth`, `k`) are refused; other members are dropped. Optional `alg`\n\
                 must fit the key (`EdDSA` or `Ed25519` / `ES256`), `use` must be `sig`, `kid` 1–128 characters.",
            ))
            .property("kty", one_of(&["OKP", "EC"]))
            .property("crv", one_of(&["Ed25519", "P-256"]))
            .property("x", string())
            .property("y", string())
            .property("alg", one_of(&["EdDSA", "Ed25519", "ES256"]))
            .property("use", one_of(&["sig"]))
            .property("kid", string().min_length(Some(1)).max_length(Some(128)))
            .required("kty")
            .required("crv")
            .required("x")
            .into()
    }
}

impl utoipa::ToSchema for Jwk {
    fn name() -> std::borrow::Cow<'static, str> {
        "PublicJwk".into()
    }
}

/// A credential's metadata; never its secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Credential {
    /// `crd_…`.
    #[schema(value_type = CredentialId)]
    pub id: String,
    /// The agent it belongs to.
    #[schema(value_type = AgentId)]
    pub agent_id: String,
    /// `client_secret`, `public_key` or `tls_client_auth`.
    #[serde(rename = "type")]
    #[schema(value_type = formats::CredentialKind)]
    pub kind: CredentialKind,
    /// For public keys: the registered JWK's public members.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Jwk)]
    pub public_jwk: Option<Jwk>,
    /// For public keys, the JWK's `kid` if it had one, else its RFC 7638 thumbprint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String)]
    pub key_id: Option<String>,
    /// For `tls_client_auth`: the dNSName the client certificate must carry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String)]
    pub tls_client_auth_san_dns: Option<String>,
    /// For `tls_client_auth`: the URI (a SPIFFE ID, say) the client certificate must carry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String)]
    pub tls_client_auth_san_uri: Option<String>,
    /// For `tls_client_auth`: the IP address the client certificate must carry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String)]
    pub tls_client_auth_san_ip: Option<String>,
    /// RFC 3339.
    #[schema(value_type = Timestamp)]
    pub created_at: String,
    /// When it stops working, if it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Timestamp)]
    pub expires_at: Option<String>,
    /// When it was revoked outright.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Timestamp)]
    pub revoked_at: Option<String>,
    /// The credential that replaced it, if it was rotated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = CredentialId)]
    pub replaced_by: Option<String>,
    /// `active`, `expiring`, `expired` or `revoked`, as of the answer.
    #[schema(value_type = CredentialState)]
    pub state: String,
}

/// `POST /v1/agents/{id}/credentials`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct NewCredential {
    /// `client_secret`, `public_key` or `tls_client_auth`.
    #[serde(rename = "type")]
    #[schema(value_type = formats::CredentialKind)]
    pub kind: CredentialKind,
    /// Required for `public_key`; refused for the other types. With an `x5c` of one
    /// certificate (standard base64 DER, whose key is the JWK's), also the client's
    /// self-signed certificate (`self_signed_tls_client_auth`, RFC 8705 §2.2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwk: Option<Jwk>,
    /// For `tls_client_auth` (RFC 8705 §2.1), exactly one of the three names: the
    /// dNSName a client certificate of the client CA must carry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_client_auth_san_dns: Option<String>,
    /// For `tls_client_auth`: the URI a client certificate must carry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = "uri")]
    pub tls_client_auth_san_uri: Option<String>,
    /// For `tls_client_auth`: the IP address a client certificate must carry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_client_auth_san_ip: Option<String>,
    /// When the credential stops working; must be in the future.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Timestamp>)]
    pub expires_at: Option<String>,
}

/// The answer to adding a credential.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CredentialCreated {
    /// The new credential.
    pub credential: Credential,
    /// For `client_secret` only: the secret, shown in this answer and never again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String, pattern = "^mcs_[A-Za-z0-9_-]{43}$")]
    pub client_secret: Option<String>,
}

/// `POST /v1/agents/{id}/credentials/{cid}/rotate`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RotateCredential {
    /// How long the old credential keeps working, in seconds (default 3600).
    #[serde(
        default,
        deserialize_with = "mandate_core::integer::optional",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(minimum = 0, maximum = 2592000, default = 3600)]
    pub overlap_secs: Option<u32>,
    /// The new public key; required when rotating a `public_key`, refused for the other
    /// types.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwk: Option<Jwk>,
    /// The new name, when rotating a `tls_client_auth` (exactly one of the three).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_client_auth_san_dns: Option<String>,
    /// As `tls_client_auth_san_dns`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = "uri")]
    pub tls_client_auth_san_uri: Option<String>,
    /// As `tls_client_auth_san_dns`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_client_auth_san_ip: Option<String>,
}

/// The rotated-out credential and how long it still works.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PreviousCredential {
    /// `crd_…`.
    #[schema(value_type = CredentialId)]
    pub id: String,
    /// RFC 3339.
    #[schema(value_type = Timestamp)]
    pub expires_at: String,
}

/// The answer to a rotation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CredentialRotated {
    /// The new credential.
    pub credential: Credential,
    /// For `client_secret` only; shown in this response and never again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String, pattern = "^mcs_[A-Za-z0-9_-]{43}$")]
    pub client_secret: Option<String>,
    /// The old one.
    pub previous: PreviousCredential,
}

impl From<&mandate_core::agent::Grant> for Grant {
    fn from(g: &mandate_core::agent::Grant) -> Self {
        Self {
            actions: g.actions.clone(),
            resources: g.resources.clone(),
            data_classes: g.data_classes.clone(),
        }
    }
}

impl From<&mandate_core::agent::Boundary> for Boundary {
    fn from(b: &mandate_core::agent::Boundary) -> Self {
        Self {
            grants: b.grants.iter().map(Grant::from).collect(),
            max_token_lifetime_secs: b.max_token_lifetime_secs,
            delegates: b.delegates.iter().map(ToString::to_string).collect(),
            audiences: b.audiences.clone(),
            require_dpop: b.require_dpop,
        }
    }
}

impl From<&mandate_core::agent::Agent> for Agent {
    /// The registry's record as the server shows it.
    fn from(a: &mandate_core::agent::Agent) -> Self {
        Self {
            id: a.id.to_string(),
            name: a.name.as_str().to_owned(),
            owner: a.owner.as_str().to_owned(),
            purpose: a.purpose.as_str().to_owned(),
            labels: a
                .labels
                .iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            boundary: Boundary::from(&a.boundary),
            status: a.status,
            status_reason: a.status_reason.clone(),
            created_at: a.created_at.to_string(),
            updated_at: a.updated_at.to_string(),
        }
    }
}
