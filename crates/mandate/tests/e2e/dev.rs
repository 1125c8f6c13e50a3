//! `mandate serve --dev` (issue 19, item 3) on the real binary: the banner warns, the
//! admin token and the demo agent's credentials it prints work (a token, an allow from
//! the example policies, a user token, anomalies after the short learning), every start
//! prints them again, a temporary data dir is removed at exit, a given one is kept; and
//! `mandate policy add` with several files and directories (item 4).

use std::path::PathBuf;

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{Server, cli, data_dir};

/// The repository's `examples/`.
fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

async fn authorize(s: &Server, access: &str, body: Value) -> Value {
    let res = s
        .http
        .post(s.url("/v1/authorize"))
        .bearer_auth(access)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

fn read_contact() -> Value {
    json!({"action": "crm:read",
           "resource": {"type": "Crm::Contact", "id": "c-42", "attributes": {"team": "sales"}},
           "context": {"data_class": "internal"}})
}

#[tokio::test]
async fn dev_prints_working_credentials_and_cleans_up() {
    let tmp = tempfile::tempdir().unwrap();
    let tmpdir = tmp.path().to_str().unwrap();
    let mut s = Server::start_dev(&[], &[("TMPDIR", tmpdir)]);
    let out = s.stdout_text();
    assert!(out.contains("NOT FOR PRODUCTION"), "{out}");
    assert!(out.contains("removed when the server stops"), "{out}");
    let vars = s.exports();
    assert_eq!(vars["MANDATE_ADDR"], s.addr);
    let admin = vars["MANDATE_TOKEN"].clone();
    assert_eq!(s.token.as_deref(), Some(admin.as_str()), "{out}");
    let (agent, secret) = (vars["DEMO_AGENT"].clone(), vars["DEMO_SECRET"].clone());

    // The data dir is a fresh one under $TMPDIR.
    let dirs: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    assert!(
        dirs[0]
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("mandate-dev-")
    );
    assert!(dirs[0].join("mandate.db").exists());

    // The admin token works; the lists are empty and say so.
    let (code, listed, _) = cli(&s.addr, &admin, &["anomalies", "list"]);
    assert_eq!((code, listed.trim()), (0, "no anomalies"));
    let (code, listed, _) = cli(&s.addr, &admin, &["mandate", "list"]);
    assert_eq!((code, listed.trim()), (0, "no mandates"));
    let (code, listed, _) = cli(&s.addr, &admin, &["approvals", "list"]);
    assert_eq!(
        (code, listed.trim()),
        (0, "no approvals waiting"),
        "{listed}"
    );
    let (code, listed, _) = cli(&s.addr, &admin, &["gateway", "secret", "list"]);
    assert_eq!((code, listed.trim()), (0, "no gateway secrets"), "{listed}");
    let (code, listed, _) = cli(&s.addr, &admin, &["policy", "list"]);
    assert_eq!(code, 0);
    assert!(
        listed.starts_with("* v1"),
        "the examples are active: {listed}"
    );

    // The demo agent gets a token and an allow from the example policies.
    let (st, tok) = s.token_basic(&agent, &secret, &[]).await;
    assert_eq!(st, 200, "{tok}");
    let access = tok["access_token"].as_str().unwrap().to_owned();
    let d = authorize(&s, &access, read_contact()).await;
    assert_eq!(d["decision"], "allow", "{d}");
    assert_eq!(d["policy_ids"], json!(["team-reads-contacts"]));

    // A user token can be issued (the development user issuer is on).
    let (code, user, err) = cli(
        &s.addr,
        &admin,
        &[
            "dev",
            "issue-user-token",
            "--sub",
            "alice",
            "--group",
            "finance",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(user.trim().split('.').count(), 3, "a JWT: {user}");

    // Learning ends after 20 requests: the 21st, a new action, is an anomaly.
    for _ in 0..19 {
        let d = authorize(&s, &access, read_contact()).await;
        assert_eq!(d["decision"], "allow", "{d}");
    }
    let write = json!({"action": "crm:write",
                       "resource": {"type": "Crm::Contact", "id": "c-42",
                                    "attributes": {"team": "sales"}},
                       "context": {"data_class": "internal"}});
    let d = authorize(&s, &access, write).await;
    assert_eq!(d["decision"], "deny", "{d}");
    let (code, listed, _) = cli(&s.addr, &admin, &["anomalies", "list"]);
    assert_eq!(code, 0);
    assert!(listed.contains("new_action"), "{listed}");

    assert!(s.stop().success());
    assert!(
        !dirs[0].exists(),
        "the temporary data dir is removed at exit"
    );

    // A second start prints a new admin token and demo secret, which work.
    let s2 = Server::start_dev(&[], &[("TMPDIR", tmpdir)]);
    let vars2 = s2.exports();
    assert_ne!(vars2["MANDATE_TOKEN"], admin);
    let (st, v) = s2
        .admin(&vars2["MANDATE_TOKEN"], Method::GET, "/v1/agents", None)
        .await;
    assert_eq!(st, 200, "{v}");
    let (st, tok) = s2
        .token_basic(&vars2["DEMO_AGENT"], &vars2["DEMO_SECRET"], &[])
        .await;
    assert_eq!(st, 200, "{tok}");
}

/// With a data dir given, `--dev` keeps it, and still prints a working admin token and
/// a new demo secret at every start (the token replaces the last one); the policies
/// the operator left are not replaced.
#[tokio::test]
async fn dev_with_a_given_data_dir_keeps_it_and_prints_again() {
    let (_t, dir) = data_dir();
    let dir_arg = dir.to_str().unwrap();
    let mut s = Server::start_dev(&["--data-dir", dir_arg], &[]);
    assert!(
        !s.stdout_text().contains("(temporary"),
        "{}",
        s.stdout_text()
    );
    let first = s.exports();
    assert!(s.stop().success());
    assert!(dir.join("mandate.db").exists(), "kept");

    let s = Server::start_dev(&["--data-dir", dir_arg], &[]);
    let second = s.exports();
    assert_ne!(second["MANDATE_TOKEN"], first["MANDATE_TOKEN"]);
    assert_eq!(
        second["DEMO_AGENT"], first["DEMO_AGENT"],
        "the same demo agent"
    );
    assert_ne!(second["DEMO_SECRET"], first["DEMO_SECRET"]);
    let (st, _) = s
        .admin(&first["MANDATE_TOKEN"], Method::GET, "/v1/agents", None)
        .await;
    assert_eq!(st, 401, "the last start's admin token is replaced");
    let admin = second["MANDATE_TOKEN"].clone();
    let (st, v) = s.admin(&admin, Method::GET, "/v1/policies", None).await;
    assert_eq!(st, 200);
    assert_eq!(
        v["items"].as_array().unwrap().len(),
        1,
        "not added again: {v}"
    );
    let (st, tok) = s
        .token_basic(&second["DEMO_AGENT"], &second["DEMO_SECRET"], &[])
        .await;
    assert_eq!(st, 200, "{tok}");
    assert!(s.stdout_text().contains("left as they are"));
}

/// `mandate policy add` joins several files and directories into one version, says
/// that a version replaces the whole set, and locates errors by file.
#[tokio::test]
async fn policy_add_takes_several_files_and_directories() {
    let (_t, dir) = data_dir();
    let s = Server::start(&dir, &[], &[]);
    let admin = s.token.clone().unwrap();
    let ex = examples();
    let p = |rel: &str| ex.join(rel).to_str().unwrap().to_owned();
    let (code, out, err) = cli(
        &s.addr,
        &admin,
        &[
            "policy",
            "add",
            &p("crm"),
            &p("mcp/policies.cedar"),
            "--schema",
            &p("crm"),
            "--schema",
            &p("mcp/schema.cedarschema"),
            "--activate",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("10 policies"), "{out}");
    assert!(out.contains("replaces the whole previous version"), "{out}");
    let (_, v) = s.admin(&admin, Method::GET, "/v1/policies/1", None).await;
    let text = v["policies"].as_str().unwrap();
    assert!(text.contains("team-reads-contacts") && text.contains("no-deleting-tools"));
    assert_eq!(v["schema_fragments"].as_array().unwrap().len(), 2, "{v}");

    // An error in the second file is located, and the files' lines are named.
    let (code, _, err) = cli(
        &s.addr,
        &admin,
        &["policy", "add", &p("crm"), &p("mcp"), "--schema", &p("crm")],
    );
    assert_eq!(code, 1);
    assert!(err.contains("examples/mcp/policies.cedar"), "{err}");
    assert!(err.contains("Mcp::Tool"), "{err}");
    // A directory without policies is refused before anything is sent.
    let empty = tempfile::tempdir().unwrap();
    let (code, _, err) = cli(
        &s.addr,
        &admin,
        &["policy", "add", empty.path().to_str().unwrap()],
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("no `*.cedar`, `*.rego` or `data.json` file"),
        "{err}"
    );
}

/// Review of issue 19: `--dev` on a data dir that a server without `--dev` made would
/// replace its bootstrap admin token, register a demo agent with a wide boundary and
/// print its secret — a production data dir taken over by one mistaken flag (or by a
/// `MANDATE_DATA_DIR` left in the shell). It is refused, and the dir is left untouched.
#[tokio::test]
async fn dev_refuses_a_data_dir_it_did_not_make() {
    use std::time::Duration;
    let (_t, dir) = data_dir();
    let mut s = Server::start(&dir, &[], &[]);
    let admin = s
        .token
        .clone()
        .expect("bootstrap token printed at first start");
    assert!(s.stop().success());

    for how in ["flag", "env"] {
        let mut cmd = std::process::Command::new(crate::harness::BIN);
        cmd.args(["serve", "--dev", "--listen", "127.0.0.1:0"]);
        for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("MANDATE_")) {
            cmd.env_remove(k);
        }
        if how == "flag" {
            cmd.arg("--data-dir").arg(&dir);
        } else {
            cmd.env("MANDATE_DATA_DIR", &dir);
        }
        // A server that started anyway would run past the deadline and fail the test.
        let (status, _, err) = crate::interop_env::run_until(
            cmd.stdin(std::process::Stdio::null()),
            "--dev on a data dir it did not make",
            Duration::from_secs(30),
        );
        assert!(!status.success(), "{how}: {err}");
        assert!(
            err.contains("not made by `mandate serve --dev`"),
            "{how}: {err}"
        );
    }

    // Untouched: the operator's admin token still works, and no demo agent exists.
    let s = Server::start(&dir, &[], &[]);
    let (st, v) = s.admin(&admin, Method::GET, "/v1/agents", None).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["items"].as_array().unwrap().len(), 0, "{v}");
}
