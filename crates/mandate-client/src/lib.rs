//! A typed async client of Mandate's HTTP API: one method per endpoint the CLI uses,
//! taking and returning `mandate-api`'s wire types, failing with a typed [`Error`]
//! (the problem body and its HTTP status, another failure status, or a transport
//! error).
//!
//! Ids are taken as the caller wrote them (`&str`) and put into the path as they are:
//! the server, not the client, judges them, so a bad id gets the server's answer.
//! `serde_json::Value` appears only where the API carries free JSON (inside the
//! `mandate-api` types: audit events, anomaly details, policy context and resource
//! attributes).

#![warn(missing_docs)]

mod error;
mod query;

use mandate_api as api;
use reqwest::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use error::Error;
pub use query::{AgentQuery, AnomalyQuery, AuditQuery, InventoryQuery, MandateQuery, PageQuery};

/// A client of one Mandate server, calling with one bearer token.
#[derive(Clone)]
pub struct Client {
    /// `Err`: the HTTP client could not be built (its TLS configuration); every call
    /// then fails with that reason.
    http: Result<reqwest::Client, String>,
    /// The server's address without a trailing `/`.
    base: String,
    /// The bearer token: sent, never shown (the `Debug` output leaves it out).
    token: String,
}

/// Without the token: a client printed into a log or a panic message does not carry
/// an admin token with it.
impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

/// An incident bundle as the server wrote it: `bytes` verify (they are the canonical
/// JSON the checkpoint commits to); `bundle` is the same, read.
#[derive(Debug, Clone)]
pub struct Contained {
    /// The answer's bytes, to be kept unchanged.
    pub bytes: String,
    /// The bundle, read from `bytes`.
    pub bundle: api::IncidentBundle,
}

/// No body.
const NONE: Option<&()> = None;

impl Client {
    /// A client of the server at `addr` (`http://127.0.0.1:8080`) calling with `token`
    /// (an admin token, or an agent's or user's token where the endpoint takes one).
    /// An `https://` server's certificate must chain to the system's roots.
    pub fn new(addr: &str, token: &str) -> Self {
        Self::of(addr, token, mandate_egress::default_builder())
    }

    /// As [`Client::new`], trusting the CA certificates of the PEM bundle `ca_file`
    /// instead of the system's roots when given (a Mandate serving TLS with a
    /// private CA's certificate). A bundle that is missing or does not parse is an
    /// error now, not at the first call.
    pub fn with_ca_file(
        addr: &str,
        token: &str,
        ca_file: Option<&std::path::Path>,
    ) -> Result<Self, Error> {
        let settings = mandate_egress::Settings {
            ca_file: ca_file.map(std::path::Path::to_path_buf),
            ..mandate_egress::Settings::default()
        };
        let builder = mandate_egress::builder(&settings).map_err(|e| Error::Request {
            addr: addr.to_owned(),
            reason: e.to_string(),
        })?;
        Ok(Self::of(addr, token, builder))
    }

    fn of(addr: &str, token: &str, builder: reqwest::ClientBuilder) -> Self {
        Self {
            http: builder.build().map_err(|e| format!("no HTTP client ({e})")),
            base: addr.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
        }
    }

    /// The HTTP client, or why there is none.
    fn http(&self) -> Result<&reqwest::Client, Error> {
        self.http.as_ref().map_err(|reason| Error::Request {
            addr: self.base.clone(),
            reason: reason.clone(),
        })
    }

    /// The server's address as given.
    pub fn addr(&self) -> &str {
        &self.base
    }

    /// Whether the token can be sent: a header value holds no control character but a
    /// tab. Said here, because reqwest's error for it names neither the header nor the
    /// cause.
    fn check_token(&self) -> Result<(), Error> {
        if self
            .token
            .bytes()
            .any(|b| (b < 0x20 && b != b'\t') || b == 0x7f)
        {
            return Err(Error::Request {
                addr: self.base.clone(),
                reason: "the token holds a line break or another control character".to_owned(),
            });
        }
        Ok(())
    }

    /// One call; the body text on success.
    async fn text<B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&B>,
    ) -> Result<String, Error> {
        let mut url = format!("{}{path}", self.base);
        let q = query::encode(query);
        if !q.is_empty() {
            url.push('?');
            url.push_str(&q);
        }
        self.check_token()?;
        let mut req = self.http()?.request(method, &url).bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(b);
        }
        let res = req
            .send()
            .await
            .map_err(|source| Error::unsent(&self.base, source))?;
        let status = res.status().as_u16();
        let text = res.text().await.map_err(Error::Read)?;
        if (200..300).contains(&status) {
            Ok(text)
        } else {
            Err(Error::from_failure(status, text))
        }
    }

    /// `POST /v1/discovery/runs`: `document` (a discovery tool's JSON output, sent as
    /// it is) reconciled with the registry; with `register`, unregistered shadows
    /// registered as suspended drafts. `selector`: `None` for the server's default.
    pub async fn run_discovery(
        &self,
        source: &str,
        selector: Option<&str>,
        register: bool,
        document: Vec<u8>,
    ) -> Result<api::DiscoveryRun, Error> {
        let mut query = vec![("source", source.to_owned())];
        if let Some(s) = selector {
            query.push(("selector", s.to_owned()));
        }
        query.push(("register", register.to_string()));
        let url = format!("{}/v1/discovery/runs?{}", self.base, query::encode(&query));
        self.check_token()?;
        let res = self
            .http()?
            .post(&url)
            .bearer_auth(&self.token)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(document)
            .send()
            .await
            .map_err(|source| Error::unsent(&self.base, source))?;
        let status = res.status().as_u16();
        let text = res.text().await.map_err(Error::Read)?;
        if !(200..300).contains(&status) {
            return Err(Error::from_failure(status, text));
        }
        serde_json::from_str(&text).map_err(|source| Error::Decode { source, body: text })
    }

    /// One call whose answer is a `T`.
    async fn call<T: DeserializeOwned, B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&B>,
    ) -> Result<T, Error> {
        let text = self.text(method, path, query, body).await?;
        serde_json::from_str(&text).map_err(|source| Error::Decode { source, body: text })
    }

    // ---- agents ----

    /// `POST /v1/agents`.
    pub async fn register_agent(&self, req: &api::RegisterAgent) -> Result<api::Agent, Error> {
        self.call(Method::POST, "/v1/agents", &[], Some(req)).await
    }

    /// `GET /v1/agents`.
    pub async fn list_agents(&self, q: &AgentQuery) -> Result<api::AgentPage, Error> {
        self.call(Method::GET, "/v1/agents", &q.pairs(), NONE).await
    }

    /// `GET /v1/agents/{id}`.
    pub async fn get_agent(&self, id: &str) -> Result<api::Agent, Error> {
        self.call(Method::GET, &format!("/v1/agents/{id}"), &[], NONE)
            .await
    }

    /// `PATCH /v1/agents/{id}`.
    pub async fn update_agent(
        &self,
        id: &str,
        req: &api::UpdateAgent,
    ) -> Result<api::Agent, Error> {
        let path = format!("/v1/agents/{id}");
        self.call(Method::PATCH, &path, &[], Some(req)).await
    }

    /// `POST /v1/agents/{id}/{suspend|resume|decommission}` (no body when `req` is empty).
    async fn status(
        &self,
        id: &str,
        verb: &str,
        req: &api::StatusChange,
    ) -> Result<api::Agent, Error> {
        let path = format!("/v1/agents/{id}/{verb}");
        let body = (!req.is_empty()).then_some(req);
        self.call(Method::POST, &path, &[], body).await
    }

    /// `POST /v1/agents/{id}/suspend`.
    pub async fn suspend_agent(
        &self,
        id: &str,
        req: &api::StatusChange,
    ) -> Result<api::Agent, Error> {
        self.status(id, "suspend", req).await
    }

    /// `POST /v1/agents/{id}/resume`.
    pub async fn resume_agent(
        &self,
        id: &str,
        req: &api::StatusChange,
    ) -> Result<api::Agent, Error> {
        self.status(id, "resume", req).await
    }

    /// `POST /v1/agents/{id}/decommission`.
    pub async fn decommission_agent(
        &self,
        id: &str,
        req: &api::StatusChange,
    ) -> Result<api::Agent, Error> {
        self.status(id, "decommission", req).await
    }

    /// `POST /v1/agents/{id}/credentials`.
    pub async fn add_credential(
        &self,
        agent: &str,
        req: &api::NewCredential,
    ) -> Result<api::CredentialCreated, Error> {
        let path = format!("/v1/agents/{agent}/credentials");
        self.call(Method::POST, &path, &[], Some(req)).await
    }

    /// `GET /v1/agents/{id}/credentials`.
    pub async fn list_credentials(
        &self,
        agent: &str,
    ) -> Result<api::Items<api::Credential>, Error> {
        let path = format!("/v1/agents/{agent}/credentials");
        self.call(Method::GET, &path, &[], NONE).await
    }

    /// `POST /v1/agents/{id}/credentials/{cid}/rotate`.
    pub async fn rotate_credential(
        &self,
        agent: &str,
        credential: &str,
        req: &api::RotateCredential,
    ) -> Result<api::CredentialRotated, Error> {
        let path = format!("/v1/agents/{agent}/credentials/{credential}/rotate");
        self.call(Method::POST, &path, &[], Some(req)).await
    }

    /// `DELETE /v1/agents/{id}/credentials/{cid}`.
    pub async fn revoke_credential(&self, agent: &str, credential: &str) -> Result<(), Error> {
        let path = format!("/v1/agents/{agent}/credentials/{credential}");
        self.text(Method::DELETE, &path, &[], NONE).await.map(drop)
    }

    /// `GET /v1/agents/{id}/baseline`.
    pub async fn baseline(&self, agent: &str) -> Result<api::Baseline, Error> {
        let path = format!("/v1/agents/{agent}/baseline");
        self.call(Method::GET, &path, &[], NONE).await
    }

    /// `POST /v1/agents/{id}/contain` (no body when `req` is empty).
    pub async fn contain_agent(
        &self,
        agent: &str,
        req: &api::ContainAgent,
    ) -> Result<Contained, Error> {
        let path = format!("/v1/agents/{agent}/contain");
        let body = (!req.is_empty()).then_some(req);
        let bytes = self.text(Method::POST, &path, &[], body).await?;
        match serde_json::from_str(&bytes) {
            Ok(bundle) => Ok(Contained { bytes, bundle }),
            Err(source) => Err(Error::Decode {
                source,
                body: bytes,
            }),
        }
    }

    // ---- admin tokens and keys ----

    /// `POST /v1/admin-tokens`.
    pub async fn create_admin_token(
        &self,
        req: &api::NewAdminToken,
    ) -> Result<api::AdminTokenCreated, Error> {
        self.call(Method::POST, "/v1/admin-tokens", &[], Some(req))
            .await
    }

    /// `GET /v1/admin-tokens`.
    pub async fn list_admin_tokens(&self) -> Result<api::Items<api::AdminToken>, Error> {
        self.call(Method::GET, "/v1/admin-tokens", &[], NONE).await
    }

    /// `DELETE /v1/admin-tokens/{id}`.
    pub async fn revoke_admin_token(&self, id: &str) -> Result<(), Error> {
        let path = format!("/v1/admin-tokens/{id}");
        self.text(Method::DELETE, &path, &[], NONE).await.map(drop)
    }

    /// `POST /v1/keys/rotate`.
    pub async fn rotate_keys(&self) -> Result<api::KeyRotated, Error> {
        self.call(Method::POST, "/v1/keys/rotate", &[], NONE).await
    }

    /// `GET /v1/keys`.
    pub async fn list_keys(&self) -> Result<api::Items<api::SigningKey>, Error> {
        self.call(Method::GET, "/v1/keys", &[], NONE).await
    }

    /// `POST /v1/tokens/{jti}/revoke` (no body without a reason).
    pub async fn revoke_token(
        &self,
        jti: &str,
        req: &api::RevokeTokenById,
    ) -> Result<api::TokenRevoked, Error> {
        let path = format!("/v1/tokens/{jti}/revoke");
        let body = req.reason.is_some().then_some(req);
        self.call(Method::POST, &path, &[], body).await
    }

    // ---- decisions ----

    /// `POST /v1/authorize`.
    pub async fn authorize(&self, req: &api::AuthorizeRequest) -> Result<api::Decision, Error> {
        self.call(Method::POST, "/v1/authorize", &[], Some(req))
            .await
    }

    /// `POST /v1/authorize/batch`.
    pub async fn authorize_batch(
        &self,
        req: &api::AuthorizeBatchRequest,
    ) -> Result<api::BatchDecisions, Error> {
        self.call(Method::POST, "/v1/authorize/batch", &[], Some(req))
            .await
    }

    // ---- policies ----

    /// `POST /v1/policies`.
    pub async fn add_policies(&self, req: &api::NewPolicies) -> Result<api::PolicyAdded, Error> {
        self.call(Method::POST, "/v1/policies", &[], Some(req))
            .await
    }

    /// `GET /v1/policies`.
    pub async fn list_policies(&self) -> Result<api::PolicyList, Error> {
        self.call(Method::GET, "/v1/policies", &[], NONE).await
    }

    /// `GET /v1/policies/{version}`.
    pub async fn get_policies(&self, version: &str) -> Result<api::PolicyVersion, Error> {
        let path = format!("/v1/policies/{version}");
        self.call(Method::GET, &path, &[], NONE).await
    }

    /// `POST /v1/policies/{version}/activate`.
    pub async fn activate_policies(&self, version: &str) -> Result<api::PolicyActivated, Error> {
        let path = format!("/v1/policies/{version}/activate");
        self.call(Method::POST, &path, &[], NONE).await
    }

    /// `POST /v1/policies/{version}/replay`: what the version would change on the
    /// recorded decisions of a window.
    pub async fn replay_policies(
        &self,
        version: &str,
        req: &api::PolicyReplayRequest,
    ) -> Result<api::PolicyReplayReport, Error> {
        let path = format!("/v1/policies/{version}/replay");
        self.call(Method::POST, &path, &[], Some(req)).await
    }

    /// `GET /v1/inventory`: one page of the inventory.
    pub async fn inventory(&self, q: &InventoryQuery) -> Result<api::Inventory, Error> {
        self.call(Method::GET, "/v1/inventory", &q.pairs(), NONE)
            .await
    }

    /// `GET /v1/reports/compliance`: `framework`'s controls and their evidence.
    pub async fn compliance_report(
        &self,
        framework: &str,
        since: Option<&str>,
    ) -> Result<api::ComplianceReport, Error> {
        let mut q = vec![("framework", framework.to_owned())];
        if let Some(s) = since {
            q.push(("since", s.to_owned()));
        }
        self.call(Method::GET, "/v1/reports/compliance", &q, NONE)
            .await
    }

    /// `POST /v1/policies/rollback`.
    pub async fn rollback_policies(&self) -> Result<api::PolicyActivated, Error> {
        self.call(Method::POST, "/v1/policies/rollback", &[], NONE)
            .await
    }

    // ---- audit ----

    /// `GET /v1/audit/events`.
    pub async fn audit_events(&self, q: &AuditQuery) -> Result<api::AuditPage, Error> {
        self.call(Method::GET, "/v1/audit/events", &q.pairs(), NONE)
            .await
    }

    /// `GET /v1/audit/checkpoints/latest`.
    pub async fn latest_checkpoint(&self) -> Result<api::LatestCheckpoint, Error> {
        self.call(Method::GET, "/v1/audit/checkpoints/latest", &[], NONE)
            .await
    }

    /// `GET /v1/audit/export`: the log as JSON Lines, kept as text (its bytes verify).
    pub async fn audit_export(&self) -> Result<String, Error> {
        self.text(Method::GET, "/v1/audit/export", &[], NONE).await
    }

    /// `GET /v1/audit/export?node=NAME`: node `NAME`'s log (another node's up to its
    /// newest checkpoint), as JSON Lines kept as text.
    pub async fn audit_export_of(&self, node: &str) -> Result<String, Error> {
        self.text(
            Method::GET,
            "/v1/audit/export",
            &[("node", node.to_owned())],
            NONE,
        )
        .await
    }

    /// `GET /v1/export`: the node's SIEM export sinks, their lag and last failure.
    pub async fn export_status(&self) -> Result<api::ExportStatus, Error> {
        self.call(Method::GET, "/v1/export", &[], NONE).await
    }

    /// `GET /v1/cluster`: the nodes sharing the store, their snapshot and feed, the leader.
    pub async fn cluster_status(&self) -> Result<api::ClusterStatus, Error> {
        self.call(Method::GET, "/v1/cluster", &[], NONE).await
    }

    /// `GET /v1/audit/nodes`: every node with a log in the store, with its audit key.
    pub async fn audit_nodes(&self) -> Result<api::AuditNodes, Error> {
        self.call(Method::GET, "/v1/audit/nodes", &[], NONE).await
    }

    // ---- mandates and approvals ----

    /// `POST /v1/mandates` (with the agent's own token).
    pub async fn request_mandate(&self, req: &api::NewMandate) -> Result<api::Mandate, Error> {
        self.call(Method::POST, "/v1/mandates", &[], Some(req))
            .await
    }

    /// `GET /v1/mandates`.
    pub async fn list_mandates(&self, q: &MandateQuery) -> Result<api::MandatePage, Error> {
        self.call(Method::GET, "/v1/mandates", &q.pairs(), NONE)
            .await
    }

    /// `GET /v1/mandates/{id}`, long-polling up to `wait` seconds while it is pending.
    pub async fn get_mandate(&self, id: &str, wait: Option<i64>) -> Result<api::Mandate, Error> {
        let path = format!("/v1/mandates/{id}");
        let q: Vec<(&str, String)> = wait.map(|w| ("wait", w.to_string())).into_iter().collect();
        self.call(Method::GET, &path, &q, NONE).await
    }

    /// `POST /v1/mandates/{id}/complete` (as the agent holding it).
    pub async fn complete_mandate(&self, id: &str) -> Result<api::Mandate, Error> {
        let path = format!("/v1/mandates/{id}/complete");
        self.call(Method::POST, &path, &[], NONE).await
    }

    /// `POST /v1/mandates/{id}/revoke` (no body without a reason).
    pub async fn revoke_mandate(
        &self,
        id: &str,
        req: &api::RevokeMandate,
    ) -> Result<api::Mandate, Error> {
        let path = format!("/v1/mandates/{id}/revoke");
        let body = req.reason.is_some().then_some(req);
        self.call(Method::POST, &path, &[], body).await
    }

    /// `GET /v1/approvals`.
    pub async fn list_approvals(&self, q: &PageQuery) -> Result<api::ApprovalPage, Error> {
        self.call(Method::GET, "/v1/approvals", &q.pairs(), NONE)
            .await
    }

    async fn decide(
        &self,
        id: &str,
        verb: &str,
        req: &api::ApprovalDecision,
    ) -> Result<api::Mandate, Error> {
        let path = format!("/v1/approvals/{id}/{verb}");
        let body = req.comment.is_some().then_some(req);
        self.call(Method::POST, &path, &[], body).await
    }

    /// `POST /v1/approvals/{id}/approve` (no body without a comment).
    pub async fn approve(
        &self,
        id: &str,
        req: &api::ApprovalDecision,
    ) -> Result<api::Mandate, Error> {
        self.decide(id, "approve", req).await
    }

    /// `POST /v1/approvals/{id}/deny` (no body without a comment).
    pub async fn deny(&self, id: &str, req: &api::ApprovalDecision) -> Result<api::Mandate, Error> {
        self.decide(id, "deny", req).await
    }

    /// `POST /v1/dev/user-tokens`.
    pub async fn issue_dev_user_token(
        &self,
        req: &api::NewDevUserToken,
    ) -> Result<api::DevUserToken, Error> {
        self.call(Method::POST, "/v1/dev/user-tokens", &[], Some(req))
            .await
    }

    // ---- access reviews ----

    /// `POST /v1/reviews`.
    pub async fn start_review(&self, req: &api::NewReview) -> Result<api::Review, Error> {
        self.call(Method::POST, "/v1/reviews", &[], Some(req)).await
    }

    /// `GET /v1/reviews`.
    pub async fn list_reviews(&self, q: &PageQuery) -> Result<api::ReviewPage, Error> {
        self.call(Method::GET, "/v1/reviews", &q.pairs(), NONE)
            .await
    }

    /// `GET /v1/reviews/{id}`.
    pub async fn review(&self, id: &str) -> Result<api::Review, Error> {
        let path = format!("/v1/reviews/{}", segment(id));
        self.call(Method::GET, &path, &[], NONE).await
    }

    /// `GET /v1/reviews/{id}/report?format=…`, as text (`json`, `csv` or `html`).
    pub async fn review_report(&self, id: &str, format: &str) -> Result<String, Error> {
        let path = format!("/v1/reviews/{}/report", segment(id));
        self.text(Method::GET, &path, &[("format", format.to_owned())], NONE)
            .await
    }

    /// `POST /v1/reviews/{id}/items/{agent}/{verb}` (`certify`, `narrow`,
    /// `decommission`; no body without a comment or boundary).
    pub async fn decide_review_item(
        &self,
        id: &str,
        agent: &str,
        verb: &str,
        req: &api::ReviewDecision,
    ) -> Result<api::ReviewDecided, Error> {
        let path = format!(
            "/v1/reviews/{}/items/{}/{}",
            segment(id),
            segment(agent),
            segment(verb)
        );
        let body = (req.comment.is_some() || req.boundary.is_some()).then_some(req);
        self.call(Method::POST, &path, &[], body).await
    }

    // ---- anomalies ----

    /// `GET /v1/anomalies`.
    pub async fn list_anomalies(&self, q: &AnomalyQuery) -> Result<api::AnomalyPage, Error> {
        self.call(Method::GET, "/v1/anomalies", &q.pairs(), NONE)
            .await
    }

    /// `GET /v1/anomalies/{id}`.
    pub async fn get_anomaly(&self, id: &str) -> Result<api::Anomaly, Error> {
        let path = format!("/v1/anomalies/{id}");
        self.call(Method::GET, &path, &[], NONE).await
    }

    async fn resolve(
        &self,
        id: &str,
        verb: &str,
        req: &api::AnomalyResolution,
    ) -> Result<api::Anomaly, Error> {
        let path = format!("/v1/anomalies/{id}/{verb}");
        let body = req.comment.is_some().then_some(req);
        self.call(Method::POST, &path, &[], body).await
    }

    /// `POST /v1/anomalies/{id}/acknowledge` (no body without a comment).
    pub async fn acknowledge_anomaly(
        &self,
        id: &str,
        req: &api::AnomalyResolution,
    ) -> Result<api::Anomaly, Error> {
        self.resolve(id, "acknowledge", req).await
    }

    /// `POST /v1/anomalies/{id}/dismiss` (no body without a comment).
    pub async fn dismiss_anomaly(
        &self,
        id: &str,
        req: &api::AnomalyResolution,
    ) -> Result<api::Anomaly, Error> {
        self.resolve(id, "dismiss", req).await
    }

    // ---- gateway secrets ----

    /// `PUT /v1/gateway/secrets/{name}`.
    pub async fn put_gateway_secret(
        &self,
        name: &str,
        req: &api::PutGatewaySecret,
    ) -> Result<(), Error> {
        let path = format!("/v1/gateway/secrets/{name}");
        self.text(Method::PUT, &path, &[], Some(req))
            .await
            .map(drop)
    }

    /// `GET /v1/gateway/secrets`.
    pub async fn list_gateway_secrets(&self) -> Result<api::Items<api::GatewaySecret>, Error> {
        self.call(Method::GET, "/v1/gateway/secrets", &[], NONE)
            .await
    }

    /// `DELETE /v1/gateway/secrets/{name}`.
    pub async fn delete_gateway_secret(&self, name: &str) -> Result<(), Error> {
        let path = format!("/v1/gateway/secrets/{name}");
        self.text(Method::DELETE, &path, &[], NONE).await.map(drop)
    }
}

/// A path segment as typed by a user, percent-encoded (so `/`, `?` or `#` in it cannot
/// reach another endpoint).
fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client's `Debug` output names its server and never shows its token.
    #[test]
    fn debug_never_shows_the_token() {
        let c = Client::new("http://127.0.0.1:8080/", "mdt_admin_s3cret");
        let shown = format!("{c:?}");
        assert!(shown.contains("http://127.0.0.1:8080"), "{shown}");
        assert!(!shown.contains("s3cret"), "{shown}");
    }

    /// A token with a line break (a file's trailing newline) or an address that is not
    /// a URL is said to be one, not reported as reqwest's bare "builder error"; the
    /// token is never in the message.
    #[test]
    fn a_request_that_cannot_be_made_says_why() {
        let e = Client::new("http://127.0.0.1:9", "s3cret\n").check_token();
        assert_eq!(
            e.map_err(|e| e.to_string()),
            Err(
                "cannot make a request to http://127.0.0.1:9: the token holds a line break \
                 or another control character"
                    .to_owned()
            )
        );
        assert!(
            Client::new("http://127.0.0.1:9", "s3cret\t")
                .check_token()
                .is_ok()
        );
        let http = mandate_egress::default_builder().build().unwrap();
        let Err(built) = http.get("127.0.0.1:9").build() else {
            panic!("not a URL")
        };
        assert_eq!(
            Error::unsent("127.0.0.1:9", built).to_string(),
            "cannot make a request to 127.0.0.1:9: relative URL without a base"
        );
    }
}
