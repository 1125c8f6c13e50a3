//! The Shared Signals receiver over a real node: a signed SET from a trusted transmitter
//! ends the person's live mandates (created before it), and every SET that must not act
//! (forged, replayed, untrusted, for another audience, about a stranger or another IdP's
//! user) is refused with its RFC 8935 code and recorded, ending nothing.
#![expect(
    clippy::indexing_slicing,
    reason = "test: JSON members read by index; a missing one fails the test"
)]

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine as _;
use ed25519_dalek::Signer as _;
use mandate_core::mandate::{MandateStatus, UserRef};
use mandate_service::Node;
use mandate_service::ssf::{self, Refused, Transmitters};
use mandate_store::prelude::*;
use mandate_token::user::{ClaimNames, TrustedIssuer, TrustedIssuers};
use serde_json::{Value, json};

use super::common::{T0, node_in};
use super::mandates::{agent, stored};

const IDP: &str = "https://idp.example.com";
const OTHER_IDP: &str = "https://other-idp.example.com";
const AUD: &str = "http://mandate.test";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// An Ed25519 key of a transmitter, with its kid.
struct Key(ed25519_dalek::SigningKey, &'static str);

impl Key {
    fn new(seed: u8, kid: &'static str) -> Self {
        Self(ed25519_dalek::SigningKey::from_bytes(&[seed; 32]), kid)
    }

    fn jwks(&self) -> String {
        json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig",
            "kid": self.1, "x": b64(self.0.verifying_key().as_bytes())}]})
        .to_string()
    }

    /// `claims` as a compact JWS with `header` (alg and kid added).
    fn sign(&self, mut header: Value, claims: &Value) -> String {
        header["alg"] = json!("EdDSA");
        header["kid"] = json!(self.1);
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let sig = self.0.sign(input.as_bytes());
        format!("{input}.{}", b64(&sig.to_bytes()))
    }

    fn set(&self, claims: &Value) -> String {
        self.sign(json!({"typ": "secevent+jwt"}), claims)
    }
}

/// A SET's claims: `event` about `subject`, issued by `iss` at `iat`, id `jti`.
fn claims(iss: &str, jti: &str, iat: i64, event: &str, subject: Value) -> Value {
    json!({"iss": iss, "aud": AUD, "jti": jti, "iat": iat, "sub_id": subject,
           "events": {event: {"event_timestamp": iat, "initiating_entity": "policy"}}})
}

fn alice() -> Value {
    json!({"format": "iss_sub", "iss": IDP, "sub": "alice"})
}

fn user(sub: &str, email: Option<&str>) -> UserRef {
    UserRef {
        issuer: IDP.into(),
        sub: sub.into(),
        email: email.map(str::to_owned),
        groups: Vec::new(),
    }
}

/// A node trusting transmitter `IDP` (keyed `key`), which speaks for its own users.
fn node_trusting(dir: &std::path::Path, key: &Key) -> Arc<Node> {
    let t = TrustedIssuer::new(IDP, AUD, &key.jwks(), &[], ClaimNames::default()).unwrap();
    let transmitters = Transmitters {
        verifiers: TrustedIssuers::new(vec![t]).unwrap(),
        users_issuer: HashMap::new(),
    };
    let (node, _clock) = node_in(dir, |c| c.ssf = Arc::new(transmitters));
    Arc::new(node)
}

fn status(node: &Node, n: usize) -> MandateStatus {
    let id = mandate_core::id::MandateId::parse(&format!("mdt_01JA{n:022}")).unwrap();
    node.store().get_mandate(&id).unwrap().unwrap().status
}

async fn kinds(node: &Node) -> Vec<(String, Value)> {
    let len = node.store().audit_len().unwrap();
    node.store()
        .audit_bodies(0, len)
        .unwrap()
        .iter()
        .map(|b| {
            let v: Value = serde_json::from_str(b).unwrap();
            (v["kind"].as_str().unwrap().to_owned(), v)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_revoked_set_ends_the_persons_mandates_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let key = Key::new(7, "t1");
    let node = node_trusting(dir.path(), &key);
    let a = agent(1);
    node.store().insert_agent(&a).unwrap();
    stored(
        &node,
        1,
        &a,
        MandateStatus::Active,
        Some(user("alice", Some("alice@example.com"))),
    );
    stored(
        &node,
        2,
        &a,
        MandateStatus::PendingApproval,
        Some(user("alice", None)),
    );
    stored(&node, 3, &a, MandateStatus::Active, Some(user("bob", None)));
    // Alice's mandate at another IdP: not this transmitter's to end.
    let mut other = user("alice", None);
    other.issuer = OTHER_IDP.into();
    stored(&node, 4, &a, MandateStatus::Active, Some(other));

    let set = key.set(&claims(IDP, "j-1", T0, ssf::CAEP_SESSION_REVOKED, alice()));
    let r = ssf::receive(&node, &set).await.unwrap();
    assert_eq!(r.revoked.len(), 2, "{r:?}");
    assert_eq!(status(&node, 1), MandateStatus::Revoked);
    assert_eq!(status(&node, 2), MandateStatus::Revoked);
    assert_eq!(status(&node, 3), MandateStatus::Active, "bob's stays");
    assert_eq!(
        status(&node, 4),
        MandateStatus::Active,
        "the other IdP's alice stays"
    );

    let events = kinds(&node).await;
    let revoked: Vec<&Value> = events
        .iter()
        .filter(|(k, _)| k == "mandate.revoked")
        .map(|(_, v)| v)
        .collect();
    assert_eq!(revoked.len(), 2);
    assert!(revoked.iter().all(|v| v["actor"] == "ssf"), "{revoked:?}");
    let received = events.iter().find(|(k, _)| k == "ssf.received").unwrap();
    assert_eq!(received.1["details"]["action"], "revoked");
    assert_eq!(received.1["details"]["jti"], "j-1");
    assert_eq!(received.1["user"], "alice");

    // The same SET again: a replay, refused, recorded, nothing more ends.
    let again = ssf::receive(&node, &set).await.unwrap_err();
    assert!(
        matches!(&again, Refused::Set { code: "invalid_request", description } if description.contains("replay")),
        "{again:?}"
    );
}

/// A replay this node no longer remembers (a restart, another node) still ends only
/// mandates from before the SET: one asked for after the session ended stays.
#[tokio::test(flavor = "multi_thread")]
async fn a_set_ends_only_mandates_created_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let key = Key::new(7, "t1");
    let node = node_trusting(dir.path(), &key);
    let a = agent(1);
    node.store().insert_agent(&a).unwrap();
    stored(
        &node,
        1,
        &a,
        MandateStatus::Active,
        Some(user("alice", None)),
    );
    let set = key.set(&claims(
        IDP,
        "j-old",
        T0 - 60,
        ssf::CAEP_SESSION_REVOKED,
        alice(),
    ));
    let r = ssf::receive(&node, &set).await.unwrap();
    assert!(r.revoked.is_empty(), "created after the SET: {r:?}");
    assert_eq!(status(&node, 1), MandateStatus::Active);
}

#[tokio::test(flavor = "multi_thread")]
async fn sets_that_must_not_act_are_refused_with_their_code_and_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let key = Key::new(7, "t1");
    let forger = Key::new(9, "t1");
    let node = node_trusting(dir.path(), &key);
    let a = agent(1);
    node.store().insert_agent(&a).unwrap();
    stored(
        &node,
        1,
        &a,
        MandateStatus::Active,
        Some(user("alice", Some("alice@example.com"))),
    );
    let ev = ssf::CAEP_SESSION_REVOKED;
    let mut no_typ = claims(IDP, "j-typ", T0, ev, alice());
    no_typ["x"] = json!(1);
    let mut other_aud = claims(IDP, "j-aud", T0, ev, alice());
    other_aud["aud"] = json!("https://someone-else.example.com");
    let mut two_events = claims(IDP, "j-two", T0, ev, alice());
    two_events["events"][ssf::RISC_ACCOUNT_DISABLED] = json!({});
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "forged: another key under the same kid",
            forger.set(&claims(IDP, "j-f", T0, ev, alice())),
            "authentication_failed",
        ),
        (
            "untrusted transmitter",
            key.set(&claims(OTHER_IDP, "j-u", T0, ev, alice())),
            "invalid_issuer",
        ),
        ("another audience", key.set(&other_aud), "invalid_audience"),
        (
            "not typed as a SET",
            key.sign(json!({"typ": "JWT"}), &no_typ),
            "invalid_request",
        ),
        (
            "issued two days ago",
            key.set(&claims(IDP, "j-old", T0 - 2 * 86_400, ev, alice())),
            "invalid_request",
        ),
        (
            "issued in the future",
            key.set(&claims(IDP, "j-new", T0 + 3600, ev, alice())),
            "invalid_request",
        ),
        ("two events", key.set(&two_events), "invalid_request"),
        (
            "an unknown email",
            key.set(&claims(
                IDP,
                "j-s",
                T0,
                ev,
                json!({"format": "email", "email": "mallory@example.com"}),
            )),
            "invalid_request",
        ),
        (
            "another IdP's user",
            key.set(&claims(
                IDP,
                "j-o",
                T0,
                ev,
                json!({"format": "iss_sub", "iss": OTHER_IDP, "sub": "alice"}),
            )),
            "invalid_request",
        ),
        (
            "no subject",
            key.set(&json!({"iss": IDP, "aud": AUD, "jti": "j-n", "iat": T0, "events": {ev: {}}})),
            "invalid_request",
        ),
        ("not a JWS", "not.a-set".to_owned(), "invalid_request"),
    ];
    for (why, token, code) in &cases {
        match ssf::receive(&node, token).await {
            Err(Refused::Set { code: got, .. }) => assert_eq!(got, *code, "{why}"),
            other => panic!("{why}: {other:?}"),
        }
    }
    assert_eq!(status(&node, 1), MandateStatus::Active, "nothing ended");
    let refused = kinds(&node)
        .await
        .into_iter()
        .filter(|(k, _)| k == "ssf.refused")
        .count();
    assert_eq!(refused, cases.len(), "each refusal recorded");
    // Email subjects match among the transmitter's own users.
    let by_email = key.set(&claims(
        IDP,
        "j-e",
        T0,
        ssf::RISC_ACCOUNT_DISABLED,
        json!({"format": "email", "email": "Alice@Example.com"}),
    ));
    let r = ssf::receive(&node, &by_email).await.unwrap();
    assert_eq!(r.revoked.len(), 1);
    // A verification event is acknowledged and acts on nothing.
    let verify = key.set(&claims(IDP, "j-v", T0, ssf::SSF_VERIFICATION, alice()));
    assert!(
        ssf::receive(&node, &verify)
            .await
            .unwrap()
            .revoked
            .is_empty()
    );
}

/// Regression (atk7): the `jti` was remembered before the SET was acted on, so when the
/// store could not revoke (a 5xx, "send it again"), the transmitter's retry of the same
/// SET was refused as a replay (a 400, final): the person's mandates stayed live. A SET
/// answered with a 5xx is now forgotten and its retry acted on.
#[tokio::test(flavor = "multi_thread")]
async fn a_set_that_could_not_be_acted_on_is_acted_on_when_sent_again() {
    let dir = tempfile::tempdir().unwrap();
    let key = Key::new(7, "t1");
    let node = node_trusting(dir.path(), &key);
    let a = agent(1);
    node.store().insert_agent(&a).unwrap();
    stored(
        &node,
        1,
        &a,
        MandateStatus::Active,
        Some(user("alice", None)),
    );
    let set = key.set(&claims(
        IDP,
        "j-busy",
        T0,
        ssf::CAEP_SESSION_REVOKED,
        alice(),
    ));

    // Another writer holds the database: the revocation cannot be written.
    let other = rusqlite::Connection::open(dir.path().join("mandate.db")).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let first = ssf::receive(&node, &set).await.unwrap_err();
    assert!(matches!(first, Refused::Service(_)), "{first:?}");
    assert_eq!(status(&node, 1), MandateStatus::Active);
    other.execute_batch("ROLLBACK").unwrap();

    // The transmitter sends it again: acted on, not refused as a replay.
    let r = ssf::receive(&node, &set).await.unwrap();
    assert_eq!(r.revoked.len(), 1, "{r:?}");
    assert_eq!(status(&node, 1), MandateStatus::Revoked);
    // A true replay after that is still refused.
    let again = ssf::receive(&node, &set).await.unwrap_err();
    assert!(
        matches!(&again, Refused::Set { code: "invalid_request", description } if description.contains("replay")),
        "{again:?}"
    );
}

/// After a SET ends a person's sessions, a user token of theirs from before it is refused
/// everywhere a user token is used (a new mandate, a token exchange, an approval); one
/// issued after it is not.
#[tokio::test(flavor = "multi_thread")]
async fn a_revoked_persons_old_user_token_cannot_start_anything_new() {
    use mandate_core::random::OsRandom;
    use mandate_token::keys::SigningKey;
    use mandate_token::user::{DevUserIssuer, UserTokenError};
    let dir = tempfile::tempdir().unwrap();
    let key = Key::new(7, "t1");
    // The IdP's user tokens: a dev issuer standing in for it, same issuer name.
    let idp = DevUserIssuer::new(
        SigningKey::generate(&OsRandom).unwrap(),
        IDP.into(),
        AUD.into(),
    );
    let users = TrustedIssuers::new(vec![idp.trusted().unwrap()]).unwrap();
    let t = TrustedIssuer::new(IDP, AUD, &key.jwks(), &[], ClaimNames::default()).unwrap();
    let transmitters = Transmitters {
        verifiers: TrustedIssuers::new(vec![t]).unwrap(),
        users_issuer: HashMap::new(),
    };
    let (node, clock) = node_in(dir.path(), |c| {
        c.ssf = Arc::new(transmitters);
        c.users = Arc::new(users);
    });
    let node = Arc::new(node);
    let a = agent(1);
    node.store().insert_agent(&a).unwrap();
    stored(
        &node,
        1,
        &a,
        MandateStatus::Active,
        Some(user("alice", None)),
    );
    let at = |secs: i64| mandate_core::time::Timestamp::from_secs(secs);
    let old = idp
        .issue("alice", None, &[], 3600, "u-old", at(T0 - 10))
        .unwrap();
    let bob = idp
        .issue("bob", None, &[], 3600, "u-bob", at(T0 - 10))
        .unwrap();
    assert!(
        node.verify_user_token(&old, at(T0)).is_ok(),
        "valid before the signal"
    );

    let set = key.set(&claims(IDP, "j-1", T0, ssf::CAEP_SESSION_REVOKED, alice()));
    ssf::receive(&node, &set).await.unwrap();
    clock.advance_secs(20);
    let fresh = idp
        .issue("alice", None, &[], 3600, "u-new", at(T0 + 10))
        .unwrap();
    assert_eq!(
        node.verify_user_token(&old, at(T0 + 20)).unwrap_err(),
        UserTokenError::SessionsRevoked
    );
    assert!(
        node.verify_user_token(&fresh, at(T0 + 20)).is_ok(),
        "a new session is fine"
    );
    assert!(
        node.verify_user_token(&bob, at(T0 + 20)).is_ok(),
        "someone else is fine"
    );
    // And on a new node over the same store (a restart, another node of a cluster).
    drop(node);
    let (again, _) = node_in(dir.path(), |c| {
        c.users = Arc::new(TrustedIssuers::new(vec![idp.trusted().unwrap()]).unwrap());
    });
    assert_eq!(
        again.verify_user_token(&old, at(T0 + 20)).unwrap_err(),
        UserTokenError::SessionsRevoked
    );
}

/// Regression (adversarial pass atk8): a SET about a person no mandate names (an
/// approver, who approves others' mandates and owns none) was refused as about a
/// stranger and set no cutoff, so their old user token kept approving. Now their
/// sessions end like anyone's; the SET is accepted and recorded.
#[tokio::test(flavor = "multi_thread")]
async fn a_set_about_someone_no_mandate_names_still_ends_their_sessions() {
    use mandate_core::random::OsRandom;
    use mandate_token::keys::SigningKey;
    use mandate_token::user::{DevUserIssuer, UserTokenError};
    let dir = tempfile::tempdir().unwrap();
    let key = Key::new(7, "t1");
    let idp = DevUserIssuer::new(
        SigningKey::generate(&OsRandom).unwrap(),
        IDP.into(),
        AUD.into(),
    );
    let users = TrustedIssuers::new(vec![idp.trusted().unwrap()]).unwrap();
    let t = TrustedIssuer::new(IDP, AUD, &key.jwks(), &[], ClaimNames::default()).unwrap();
    let transmitters = Transmitters {
        verifiers: TrustedIssuers::new(vec![t]).unwrap(),
        users_issuer: HashMap::new(),
    };
    let (node, clock) = node_in(dir.path(), |c| {
        c.ssf = Arc::new(transmitters);
        c.users = Arc::new(users);
    });
    let node = Arc::new(node);
    let at = |secs: i64| mandate_core::time::Timestamp::from_secs(secs);
    let approver = idp
        .issue(
            "carol",
            None,
            &["approvers".into()],
            3600,
            "u-carol",
            at(T0 - 10),
        )
        .unwrap();
    assert!(node.verify_user_token(&approver, at(T0)).is_ok());
    for (jti, subject) in [
        (
            "j-c",
            json!({"format": "iss_sub", "iss": IDP, "sub": "carol"}),
        ),
        ("j-d", json!({"format": "opaque", "id": "dave"})),
    ] {
        let set = key.set(&claims(IDP, jti, T0, ssf::RISC_SESSIONS_REVOKED, subject));
        let receipt = ssf::receive(&node, &set).await.unwrap();
        assert!(receipt.revoked.is_empty(), "no mandate to end");
    }
    clock.advance_secs(20);
    assert_eq!(
        node.verify_user_token(&approver, at(T0 + 20)).unwrap_err(),
        UserTokenError::SessionsRevoked
    );
    let received = kinds(&node)
        .await
        .into_iter()
        .filter(|(k, _)| k == "ssf.received")
        .count();
    assert_eq!(received, 2, "both recorded as acted on");
}
