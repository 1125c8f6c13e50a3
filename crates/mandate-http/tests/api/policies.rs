//! Activating a policy version: an unknown one is 404, and one that no longer compiles
//! (stored before a base schema changed; written here straight to the store, since the
//! API validates every version it stores) is refused with 409 before it becomes active,
//! so decisions go on under the version that was active, never held or emptied.

use axum::http::Method;
use mandate_core::clock::Clock as _;
use mandate_store::prelude::*;
use serde_json::json;

use super::Env;

#[tokio::test]
async fn a_version_that_no_longer_compiles_is_refused_before_it_is_active() {
    let env = Env::new();
    let r = env
        .admin(
            Method::POST,
            "/v1/policies",
            Some(json!({"policies": "@id(\"all\") permit (principal, action, resource);"})),
        )
        .await;
    r.expect(201);
    let good = r.json()["version"].as_i64().unwrap();
    env.admin(Method::POST, &format!("/v1/policies/{good}/activate"), None)
        .await
        .expect(200);

    let broken = env
        .state
        .store()
        .insert_policy_version(
            "permit (principal, action, resource) when { nonsense",
            &[],
            "",
            "stored before the schema changed",
            env.clock.now(),
            "test",
        )
        .unwrap();
    let r = env
        .admin(
            Method::POST,
            &format!("/v1/policies/{broken}/activate"),
            None,
        )
        .await;
    r.expect(409);
    assert_eq!(r.json()["code"], "does_not_compile", "{}", r.json());

    let r = env.admin(Method::GET, "/v1/policies", None).await;
    r.expect(200);
    assert_eq!(r.json()["active_version"], good, "{}", r.json());
    assert!(!env.state.is_stale(), "decisions are not held");
    let snapshot = env.state.snapshot().unwrap();
    assert_eq!(snapshot.policy_version, Some(good));

    let r = env
        .admin(Method::POST, "/v1/policies/999999/activate", None)
        .await;
    r.expect(404);
    assert_eq!(r.json()["code"], "not_found", "{}", r.json());
}
