//! The Shared Signals receiver through the real binary, with SETs made by an independent
//! implementation: PyJWT (tests/interop/ssf_transmitter.py, pinned in
//! tests/interop/requirements.txt) as the IdP's transmitter. A `session-revoked` SET
//! about a person ends the mandate an agent holds for them, and the agent's delegated
//! token with it; a replayed, forged or untrusted SET is refused with its RFC 8935 code
//! and recorded, ending nothing; one about a person no mandate names ends their sessions.

use std::path::Path;

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{Server, cli, data_dir};
use crate::interop_env::{interop_dir, python_cmd, run, venv_python};

const ISSUER: &str = "http://mandate.test";
const IDP: &str = "https://idp.example.com";
const SESSION_REVOKED: &str = "https://schemas.openid.net/secevent/caep/event-type/session-revoked";

fn py(python: &Path, args: &[&str]) -> String {
    let out = run(
        python_cmd(python)
            .arg(interop_dir().join("ssf_transmitter.py"))
            .args(args),
        "ssf_transmitter.py",
        "the SSF e2e test needs python3 with venv (and PyPI for PyJWT)",
    )
    .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// A SET about `sub` (a dev user), signed by the key in `key_dir`.
fn set(python: &Path, key_dir: &Path, iss: &str, jti: &str, sub: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = json!({
        "iss": iss, "aud": ISSUER, "jti": jti, "iat": now,
        "sub_id": {"format": "iss_sub", "iss": format!("{ISSUER}/dev-users"), "sub": sub},
        "events": {SESSION_REVOKED: {"event_timestamp": now, "initiating_entity": "policy",
                                     "reason_admin": {"en": "session ended at the IdP"}}}
    });
    py(
        python,
        &[
            "sign",
            key_dir.join("key.pem").to_str().unwrap(),
            &claims.to_string(),
        ],
    )
}

async fn push(s: &Server, token: &str) -> (u16, Value) {
    let res = s
        .http
        .post(s.url("/ssf/events"))
        .header("content-type", "application/secevent+jwt")
        .body(token.to_owned())
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idp_session_revoked_set_ends_the_persons_mandate_and_bad_ones_end_nothing() {
    let python = venv_python("interop-venv", "requirements.txt").unwrap();
    let (t, dir) = data_dir();
    let idp = t.path().join("idp");
    let forger = t.path().join("forger");
    std::fs::create_dir_all(&idp).unwrap();
    std::fs::create_dir_all(&forger).unwrap();
    py(&python, &["keygen", idp.to_str().unwrap()]);
    py(&python, &["keygen", forger.to_str().unwrap()]);
    let conf = t.path().join("mandate.toml");
    std::fs::write(
        &conf,
        format!(
            "[[ssf.transmitters]]\nissuer = \"{IDP}\"\njwks_file = \"{}\"\n\
             users_issuer = \"{ISSUER}/dev-users\"\n",
            idp.join("jwks.json").display()
        ),
    )
    .unwrap();
    let s = Server::start(
        &dir,
        &[],
        &[
            ("MANDATE_CONFIG", conf.to_str().unwrap()),
            ("MANDATE_ISSUER", ISSUER),
            ("MANDATE_DEV_USER_TOKENS", "true"),
        ],
    );
    let admin = s.token.clone().unwrap();

    // Mandate requests are allowed by policy; an agent asks for one for alice.
    let policies = t.path().join("mandates.cedar");
    std::fs::write(
        &policies,
        "permit (principal, action == Mandate::Action::\"mandate:request\", resource);\n",
    )
    .unwrap();
    let (code, _, err) = cli(
        &s.addr,
        &admin,
        &["policy", "add", policies.to_str().unwrap(), "--activate"],
    );
    assert_eq!(code, 0, "{err}");
    let (agent, secret) = s.agent_with_secret(&admin, "helper").await;
    let (st, tok) = s.token_basic(&agent, &secret, &[]).await;
    assert_eq!(st, 200, "{tok}");
    let agent_token = tok["access_token"].as_str().unwrap().to_owned();
    let (code, alice, err) = cli(
        &s.addr,
        &admin,
        &["dev", "issue-user-token", "--sub", "alice"],
    );
    assert_eq!(code, 0, "{err}");
    let (st, m) = s
        .admin(
            &agent_token,
            Method::POST,
            "/v1/mandates",
            Some(
                json!({"intent": "read contacts for alice", "lifetime_secs": 600,
                        "scope": [{"actions": ["crm:read"], "resources": ["crm:*"]}],
                        "user_token": alice.trim()}),
            ),
        )
        .await;
    assert_eq!(st, 201, "{m}");
    assert_eq!(m["status"], "active", "{m}");
    let mandate = m["id"].as_str().unwrap().to_owned();

    // Refused, each with its RFC 8935 code, and nothing ends.
    let untrusted = set(&python, &idp, "https://evil.example.com", "e-1", "alice");
    let forged = set(&python, &forger, IDP, "f-1", "alice");
    for (token, code) in [
        (&untrusted, "invalid_issuer"),
        (&forged, "authentication_failed"),
    ] {
        let (st, e) = push(&s, token).await;
        assert_eq!((st, e["err"].as_str()), (400, Some(code)), "{e}");
    }
    let (st, e) = s
        .http
        .post(s.url("/ssf/events"))
        .header("content-type", "application/json")
        .body(untrusted.clone())
        .send()
        .await
        .map(|r| (r.status().as_u16(), r))
        .unwrap();
    assert_eq!(st, 400, "{:?}", e.text().await);
    let (_, shown) = s
        .admin(
            &admin,
            Method::GET,
            &format!("/v1/mandates/{mandate}"),
            None,
        )
        .await;
    assert_eq!(shown["status"], "active", "{shown}");

    // The IdP says alice's session ended: her mandate ends.
    let revoked = set(&python, &idp, IDP, "r-1", "alice");
    let (st, e) = push(&s, &revoked).await;
    assert_eq!(st, 202, "{e}");
    let (_, shown) = s
        .admin(
            &admin,
            Method::GET,
            &format!("/v1/mandates/{mandate}"),
            None,
        )
        .await;
    assert_eq!(shown["status"], "revoked", "{shown}");
    assert_eq!(shown["ended_by"], "ssf", "{shown}");
    // A replay of it is refused.
    let (st, e) = push(&s, &revoked).await;
    assert_eq!(
        (st, e["err"].as_str()),
        (400, Some("invalid_request")),
        "{e}"
    );
    // Her old user token cannot start a new mandate (her session ended with it).
    let (st, again) = s
        .admin(
            &agent_token,
            Method::POST,
            "/v1/mandates",
            Some(json!({"intent": "again", "lifetime_secs": 600,
                        "scope": [{"actions": ["crm:read"], "resources": ["crm:*"]}],
                        "user_token": alice.trim()})),
        )
        .await;
    assert_eq!(
        (st, again["code"].as_str()),
        (400, Some("invalid_user_token")),
        "{again}"
    );

    // Regression (adversarial pass atk8): a person no mandate names (an approver, or
    // someone whose token an agent has not used yet) has sessions too. The SET about
    // them is accepted, and their old token starts nothing.
    let (code, mallory, err) = cli(
        &s.addr,
        &admin,
        &["dev", "issue-user-token", "--sub", "mallory"],
    );
    assert_eq!(code, 0, "{err}");
    let (st, e) = push(&s, &set(&python, &idp, IDP, "s-1", "mallory")).await;
    assert_eq!(st, 202, "{e}");
    let (st, again) = s
        .admin(
            &agent_token,
            Method::POST,
            "/v1/mandates",
            Some(json!({"intent": "for mallory", "lifetime_secs": 600,
                        "scope": [{"actions": ["crm:read"], "resources": ["crm:*"]}],
                        "user_token": mallory.trim()})),
        )
        .await;
    assert_eq!(
        (st, again["code"].as_str()),
        (400, Some("invalid_user_token")),
        "{again}"
    );

    // All of it is in the audit log.
    let received = s.audit_events(&admin, "ssf.received", None).await;
    assert_eq!(received.len(), 2, "{received:?}");
    assert!(
        received
            .iter()
            .any(|r| r["details"]["revoked"] == json!([mandate])),
        "{received:?}"
    );
    // Untrusted, forged, the wrong content type, the replay.
    let refused = s.audit_events(&admin, "ssf.refused", None).await;
    assert_eq!(refused.len(), 4, "{refused:?}");
}

/// Mandate as the transmitter: an `ssf` export sink pushes a signed SET to a receiver
/// made with PyJWT, which verifies it against Mandate's JWKS (typ, signature, iss, aud,
/// one event) — for each suspension (CAEP `session-revoked` about the agent) and each
/// credential change (`credential-change`); and the transmitter's metadata says where
/// the keys are.
#[tokio::test(flavor = "multi_thread")]
async fn suspending_agents_pushes_sets_a_pyjwt_receiver_verifies() {
    use crate::interop_env::Upstream;
    let python = venv_python("interop-venv", "requirements.txt").unwrap();
    let (t, dir) = data_dir();
    let jwks_url = t.path().join("jwks-url");
    let mut cmd = python_cmd(&python);
    cmd.arg(interop_dir().join("ssf_receiver.py"))
        .arg(&jwks_url)
        .arg(ISSUER);
    let rx = Upstream::start(cmd, "ssf_receiver.py", std::time::Duration::from_secs(30));
    let conf = t.path().join("mandate.toml");
    std::fs::write(
        &conf,
        format!(
            "[[export.sinks]]\nname = \"caep\"\ntype = \"ssf\"\nurl = \"{}\"\n",
            rx.url
        ),
    )
    .unwrap();
    let s = Server::start(
        &dir,
        &[],
        &[
            ("MANDATE_CONFIG", conf.to_str().unwrap()),
            ("MANDATE_ISSUER", ISSUER),
        ],
    );
    std::fs::write(&jwks_url, s.url("/.well-known/jwks.json")).unwrap();
    let admin = s.token.clone().unwrap();
    let (st, meta) = s
        .admin(&admin, Method::GET, "/.well-known/ssf-configuration", None)
        .await;
    assert_eq!(st, 200);
    assert_eq!(meta["issuer"], ISSUER);
    assert_eq!(meta["spec_version"], "1_0");
    assert_eq!(meta["jwks_uri"], format!("{ISSUER}/.well-known/jwks.json"));

    let mut agents = Vec::new();
    for i in 0..5 {
        let (id, _) = s.agent_with_secret(&admin, &format!("caep-{i}")).await;
        agents.push(id);
    }
    let mut suspended_at = Vec::new();
    for id in &agents {
        let (st, a) = s
            .admin(
                &admin,
                Method::POST,
                &format!("/v1/agents/{id}/suspend"),
                Some(json!({"reason": "caep test"})),
            )
            .await;
        assert_eq!(st, 200, "{a}");
        suspended_at.push(std::time::SystemTime::now());
    }
    // Every credential added above (one per agent) and the suspensions: 10 SETs.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let got = loop {
        let got = rx.calls().await;
        if got.as_array().unwrap().len() >= 10 {
            break got;
        }
        assert!(std::time::Instant::now() < deadline, "SETs: {got}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let sets = got.as_array().unwrap();
    let of = |kind: &str| -> Vec<&Value> {
        sets.iter()
            .filter(|r| r["claims"]["events"].get(kind).is_some())
            .collect()
    };
    let revoked = of(SESSION_REVOKED);
    let changed = of("https://schemas.openid.net/secevent/caep/event-type/credential-change");
    assert_eq!((revoked.len(), changed.len()), (5, 5), "{got}");
    let mut latencies = Vec::new();
    for (id, at) in agents.iter().zip(&suspended_at) {
        let r = revoked
            .iter()
            .find(|r| r["claims"]["sub_id"]["sub"] == id.as_str())
            .unwrap_or_else(|| panic!("no SET about {id}: {got}"));
        assert_eq!(r["claims"]["sub_id"]["iss"], ISSUER);
        let arrived = r["arrived"].as_f64().unwrap();
        let sent = at
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        latencies.push(arrived - sent);
    }
    for c in &changed {
        let e = &c["claims"]["events"]["https://schemas.openid.net/secevent/caep/event-type/credential-change"];
        assert_eq!(
            (e["change_type"].as_str(), e["credential_type"].as_str()),
            (Some("create"), Some("password")),
            "{c}"
        );
    }
    let jtis: std::collections::BTreeSet<&str> = sets
        .iter()
        .map(|r| r["claims"]["jti"].as_str().unwrap())
        .collect();
    assert_eq!(jtis.len(), sets.len(), "one jti per SET");
    eprintln!("suspend -> SET accepted by the receiver, seconds: {latencies:?}");
}

/// SSF 1.0 stream management and RFC 8936 poll delivery, against an independent
/// receiver (tests/interop/ssf_poll_receiver.py: PyJWT and plain HTTP). The receiver
/// creates a poll stream through the management API, asks for a verification event,
/// suspends agents through Mandate's API, polls, verifies each SET against Mandate's
/// JWKS, acknowledges them, and then sees nothing again. Then a push stream created at
/// run time (no restart) delivers a SET to the PyJWT push receiver, and stops once
/// deleted.
#[tokio::test(flavor = "multi_thread")]
async fn a_pyjwt_receiver_manages_a_poll_stream_and_a_push_stream_made_at_run_time() {
    use crate::interop_env::{Upstream, run_until};
    let python = venv_python("interop-venv", "requirements.txt").unwrap();
    let (t, dir) = data_dir();
    let s = Server::start(&dir, &[], &[("MANDATE_ISSUER", ISSUER)]);
    let admin = s.token.clone().unwrap();
    let mut agents = Vec::new();
    for i in 0..3 {
        let (id, _) = s.agent_with_secret(&admin, &format!("polled-{i}")).await;
        agents.push(id);
    }
    let mut cmd = python_cmd(&python);
    cmd.arg(interop_dir().join("ssf_poll_receiver.py"))
        .arg(s.url(""))
        .arg(ISSUER)
        .arg(&admin)
        .args(&agents);
    let (status, out, err) = tokio::task::spawn_blocking(move || {
        run_until(
            &mut cmd,
            "ssf_poll_receiver.py",
            std::time::Duration::from_secs(120),
        )
    })
    .await
    .unwrap();
    assert!(status.success(), "the poll receiver failed:\n{out}\n{err}");
    let summary: Value = serde_json::from_str(out.trim()).unwrap();
    let mut want = agents.clone();
    want.sort();
    assert_eq!(summary["subjects"], json!(want), "{summary}");
    let jtis = summary["jtis"].as_array().unwrap();
    assert_eq!(
        jtis.len(),
        agents.len(),
        "one SET per suspension: {summary}"
    );
    // Its stream and everything it did are in the audit log.
    let (st, events) = s
        .admin(&admin, Method::GET, "/v1/audit/events?limit=500", None)
        .await;
    assert_eq!(st, 200);
    let kinds: Vec<&str> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .filter(|k| k.starts_with("ssf.stream."))
        .collect();
    assert_eq!(kinds, ["ssf.stream.created", "ssf.stream.verification"]);

    // A push stream made now, to the PyJWT push receiver (whose `aud` is its origin,
    // the stream's default).
    let jwks_url = t.path().join("jwks-url");
    std::fs::write(&jwks_url, s.url("/.well-known/jwks.json")).unwrap();
    let mut cmd = python_cmd(&python);
    cmd.arg(interop_dir().join("ssf_receiver.py"))
        .arg(&jwks_url)
        .arg(ISSUER);
    let rx = Upstream::start(cmd, "ssf_receiver.py", std::time::Duration::from_secs(30));
    let (st, stream) = s
        .admin(
            &admin,
            Method::POST,
            "/ssf/stream",
            Some(
                json!({"delivery": {"method": "urn:ietf:rfc:8935", "endpoint_url": rx.url},
                        "events_requested": [SESSION_REVOKED]}),
            ),
        )
        .await;
    assert_eq!(st, 201, "{stream}");
    let (pushed_agent, _) = s.agent_with_secret(&admin, "pushed").await;
    let (st, _) = s
        .admin(
            &admin,
            Method::POST,
            &format!("/v1/agents/{pushed_agent}/suspend"),
            Some(json!({"reason": "push stream test"})),
        )
        .await;
    assert_eq!(st, 200);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let got = loop {
        let got = rx.calls().await;
        if !got.as_array().unwrap().is_empty() {
            break got;
        }
        assert!(std::time::Instant::now() < deadline, "no SET pushed");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let sets = got.as_array().unwrap();
    assert_eq!(
        sets.len(),
        1,
        "only the suspension (no credential-change asked): {got}"
    );
    assert_eq!(sets[0]["claims"]["sub_id"]["sub"], pushed_agent.as_str());
    assert!(sets[0]["claims"]["events"].get(SESSION_REVOKED).is_some());
    // Deleted: nothing more is pushed.
    let id = stream["stream_id"].as_str().unwrap();
    let (st, _) = s
        .admin(
            &admin,
            Method::DELETE,
            &format!("/ssf/stream?stream_id={id}"),
            None,
        )
        .await;
    assert_eq!(st, 204);
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    let (other, _) = s.agent_with_secret(&admin, "after-delete").await;
    let (st, _) = s
        .admin(
            &admin,
            Method::POST,
            &format!("/v1/agents/{other}/suspend"),
            Some(json!({"reason": "after the stream was deleted"})),
        )
        .await;
    assert_eq!(st, 200);
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    assert_eq!(
        rx.calls().await.as_array().unwrap().len(),
        1,
        "a deleted stream pushes nothing"
    );
}
