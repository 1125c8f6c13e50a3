//! `mandate serve --dev`: a throw-away server for a first session, like `vault server
//! -dev`. It makes a fresh temporary data directory (removed at exit), a fresh admin
//! token at every start, activates the examples' schemas and policies (compiled into
//! the binary from `examples/`, the single source, so `--dev` works from any
//! directory) and provisions one demo agent with a new client secret — all through the
//! server's own admin API, in process, so each step is validated and audited as any
//! admin's would be. Printing the secrets is the point; that is why it is not for
//! production. The development defaults of the configuration are in `config::load`.

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use mandate_api as api;
use mandate_core::random::Random;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tower::ServiceExt;

/// The example policies `--dev` activates, by the path they are shipped at, joined in
/// this order into one version (as `mandate policy add` joins files).
pub const POLICIES: &[(&str, &str)] = &[
    (
        "examples/crm/policies.cedar",
        include_str!("../../../examples/crm/policies.cedar"),
    ),
    (
        "examples/mcp/policies.cedar",
        include_str!("../../../examples/mcp/policies.cedar"),
    ),
    (
        "examples/billing/policies.cedar",
        include_str!("../../../examples/billing/policies.cedar"),
    ),
];

/// The schema fragments those policies are validated against.
pub const SCHEMAS: &[(&str, &str)] = &[
    (
        "examples/crm/schema.cedarschema",
        include_str!("../../../examples/crm/schema.cedarschema"),
    ),
    (
        "examples/mcp/schema.cedarschema",
        include_str!("../../../examples/mcp/schema.cedarschema"),
    ),
    (
        "examples/billing/schema.cedarschema",
        include_str!("../../../examples/billing/schema.cedarschema"),
    ),
];

/// The label that marks the demo agent, so a restart on a kept data dir finds it again.
const DEMO_LABEL: (&str, &str) = ("mandate-dev", "demo");

/// A temporary data directory, removed (with everything in it) when dropped: at the
/// end of `serve::run`, however it ends short of the process being killed.
#[derive(Debug)]
pub struct TempDataDir(PathBuf);

impl TempDataDir {
    /// Creates `$TMPDIR/mandate-dev-<random>`, mode 0700; never reuses one that exists.
    pub fn create(random: &dyn Random) -> anyhow::Result<TempDataDir> {
        let mut bytes = [0u8; 8];
        random
            .fill(&mut bytes)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let name: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let path = std::env::temp_dir().join(format!("mandate-dev-{name}"));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .with_context(|| format!("creating the temporary data dir {}", path.display()))?;
        Ok(TempDataDir(path))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDataDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.0) {
            tracing::warn!(dir = %self.0.display(), error = %e, "temporary data dir not removed");
        }
    }
}

/// The file `--dev` leaves in a data dir it made, so a later `--dev` start may use it again.
const MARKER: &str = "mandate-dev";

/// Lets `--dev` use `dir`: a new one (no database yet) is marked as made by `--dev`; one
/// with a database must carry that mark. Called with the data dir's lock held, before
/// the database is opened.
///
/// INVARIANT (no takeover): `--dev` never starts on a data dir that a server without
/// `--dev` made. It would replace that server's bootstrap admin token (supplied at every
/// `--dev` start), register the demo agent with its wide boundary and print its secret —
/// a production data dir, given by a mistaken flag or a `MANDATE_DATA_DIR` left in the
/// shell, would be taken over.
pub fn claim_data_dir(dir: &Path, first_start: bool) -> anyhow::Result<()> {
    let marker = dir.join(MARKER);
    if first_start {
        use std::os::unix::fs::OpenOptionsExt as _;
        // Nothing but a regular file (or nothing) may stand at the marker's path: opening
        // would follow a planted symlink. The marker is empty; an existing one is kept.
        if std::fs::symlink_metadata(&marker).is_ok_and(|m| !m.is_file()) {
            bail!("{} exists and is not a regular file", marker.display());
        }
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&marker)
            .with_context(|| format!("creating {}", marker.display()))?;
        return Ok(());
    }
    // `symlink_metadata`: a symlink planted in the dir is no mark.
    if std::fs::symlink_metadata(&marker).is_ok_and(|m| m.is_file()) {
        return Ok(());
    }
    bail!(
        "data dir {} was not made by `mandate serve --dev`; --dev would replace its admin \
         token and add a demo agent, so it is refused (use --dev without a data dir, or \
         with a new one)",
        dir.display()
    )
}

/// What `--dev` set up, for the banner.
#[derive(Debug)]
pub struct Demo {
    /// The policy version activated now; `None` when the data dir already had policies
    /// (a kept `--data-dir`), which are then left as they are.
    pub policy_version: Option<i64>,
    pub agent: String,
    /// A new client secret of the demo agent, made at this start.
    pub secret: String,
}

/// The demo agent's boundary: the CRM (contacts and invoices, with and without a data
/// class), every MCP tool, billing for mandates, and tokens for any loopback gateway.
fn demo_boundary() -> api::Boundary {
    let grant = |actions: &[&str], resources: &[&str], data_classes: &[&str]| api::Grant {
        actions: strings(actions),
        resources: strings(resources),
        data_classes: strings(data_classes),
    };
    api::Boundary {
        grants: vec![
            grant(
                &["crm:read", "crm:write"],
                &["Crm::Contact/*"],
                &["internal", "public"],
            ),
            grant(&["crm:read", "crm:write"], &["Crm::Contact/*"], &[]),
            grant(
                &["crm:read", "crm:refund"],
                &["Crm::Invoice/*"],
                &["internal"],
            ),
            grant(&["mcp:call_tool"], &["Mcp::Tool/*"], &[]),
            grant(
                &["billing:read", "billing:refund"],
                &["Billing::Invoice/*"],
                &[],
            ),
        ],
        max_token_lifetime_secs: None,
        delegates: vec![],
        audiences: strings(&["http://127.0.0.1:*", "http://localhost:*"]),
        require_dpop: false,
    }
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

/// One admin API call, in process, with `mandate-api`'s types; `T` is the answer.
async fn call<T: DeserializeOwned>(
    router: &axum::Router,
    admin: &str,
    method: Method,
    path: &str,
    body: Option<&impl Serialize>,
) -> anyhow::Result<T> {
    let mut req = Request::builder()
        .method(method.clone())
        .uri(path)
        .header("authorization", format!("Bearer {admin}"));
    if body.is_some() {
        req = req.header("content-type", "application/json");
    }
    let body = match body {
        Some(b) => Body::from(serde_json::to_vec(b).context("writing a request body")?),
        None => Body::empty(),
    };
    let req = req.body(body).context("building a request")?;
    let res = router
        .clone()
        .oneshot(req)
        .await
        .context("calling the admin API")?;
    let status = res.status();
    let bytes = axum::body::to_bytes(res.into_body(), 1024 * 1024)
        .await
        .context("reading an admin API answer")?;
    if !(status.is_success() || status == StatusCode::NOT_MODIFIED) {
        bail!(
            "{method} {path}: {status} {}",
            String::from_utf8_lossy(&bytes)
        );
    }
    serde_json::from_slice(&bytes).with_context(|| format!("{method} {path}: the answer"))
}

/// No body.
const NONE: Option<&()> = None;

/// Activates the example policies (when the data dir has none yet) and makes sure the
/// demo agent exists, giving it a new client secret.
pub async fn provision(router: &axum::Router, admin: &str) -> anyhow::Result<Demo> {
    let versions: api::PolicyList = call(router, admin, Method::GET, "/v1/policies", NONE).await?;
    let policy_version = if versions.items.is_empty() {
        let policies: String = POLICIES
            .iter()
            .map(|(name, text)| format!("// file: {name}\n{text}\n"))
            .collect();
        let req = api::NewPolicies {
            policies,
            schema_fragments: SCHEMAS.iter().map(|(_, t)| (*t).to_owned()).collect(),
            note: Some("mandate serve --dev: examples/crm, examples/mcp, examples/billing".into()),
            rego_modules: Vec::new(),
            data: None,
        };
        let added: api::PolicyAdded = call(router, admin, Method::POST, "/v1/policies", Some(&req))
            .await
            .context("adding the example policies")?;
        let v = added.version;
        let _: api::PolicyActivated = call(
            router,
            admin,
            Method::POST,
            &format!("/v1/policies/{v}/activate"),
            NONE,
        )
        .await
        .context("activating the example policies")?;
        Some(v)
    } else {
        None
    };

    let (k, v) = DEMO_LABEL;
    let found: api::AgentPage = call(
        router,
        admin,
        Method::GET,
        &format!("/v1/agents?label={k}%3D{v}&status=active"),
        NONE,
    )
    .await?;
    let agent = match found.items.into_iter().next() {
        Some(a) => a.id,
        None => {
            let labels = [("team", "sales"), ("role", "billing"), (k, v)]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
            let req = api::RegisterAgent {
                name: "demo-agent".into(),
                owner: "dev@example.com".into(),
                purpose: Some("the demo agent of `mandate serve --dev`".into()),
                labels: Some(labels),
                boundary: Some(demo_boundary()),
            };
            let created: api::Agent = call(router, admin, Method::POST, "/v1/agents", Some(&req))
                .await
                .context("registering the demo agent")?;
            created.id
        }
    };
    let req = api::NewCredential {
        kind: api::CredentialKind::ClientSecret,
        jwk: None,
        tls_client_auth_san_dns: None,
        tls_client_auth_san_uri: None,
        tls_client_auth_san_ip: None,
        expires_at: None,
    };
    let cred: api::CredentialCreated = call(
        router,
        admin,
        Method::POST,
        &format!("/v1/agents/{agent}/credentials"),
        Some(&req),
    )
    .await
    .context("giving the demo agent a client secret")?;
    let secret = cred
        .client_secret
        .context("no client secret in the answer")?;
    Ok(Demo {
        policy_version,
        agent,
        secret,
    })
}

/// The loud part of the banner, first, before anything else is printed.
pub const WARNING: &str = "\
==================================================================================
  DEVELOPMENT MODE (mandate serve --dev): NOT FOR PRODUCTION
  - the admin token and the demo agent's secret are printed below, in the clear
  - the data dir is temporary unless given, and removed when the server stops
  - the development user issuer is on: any admin token can mint user tokens
  - anomaly learning ends after 20 requests; the example policies are active
==================================================================================";

#[cfg(test)]
mod tests {
    use super::*;

    /// A first start never writes through a symlink planted at the marker's path, and
    /// a later start does not take a symlink for the mark.
    #[test]
    fn the_marker_is_never_a_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let elsewhere = dir.path().join("elsewhere");
        std::fs::write(&elsewhere, "keep me").unwrap();
        std::os::unix::fs::symlink(&elsewhere, dir.path().join(MARKER)).unwrap();
        assert!(claim_data_dir(dir.path(), true).is_err());
        assert_eq!(std::fs::read_to_string(&elsewhere).unwrap(), "keep me");
        assert!(claim_data_dir(dir.path(), false).is_err());

        let fresh = tempfile::tempdir().unwrap();
        claim_data_dir(fresh.path(), true).unwrap();
        claim_data_dir(fresh.path(), false).unwrap();
    }
}
