//! The tiny CRM HTTP API to put behind Mandate's HTTP gateway
//! (`examples/gateway.toml`, route `/crm`). Contacts live in memory:
//! `GET /api/contacts`, `GET /api/contacts/{id}`, `POST`/`PUT /api/contacts/{id}` (a JSON
//! object merged into the contact). It requires the API key the gateway injects
//! (`Authorization: Bearer demo-crm-key`: the gateway secret `crm-key` holds it) and
//! prints every request it receives.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::{Seen, print_request, say};

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::routing::get;
use serde_json::{Value, json};

/// The key the gateway must inject (the README sets the `crm-key` secret to it).
pub const KEY: &str = "demo-crm-key";

/// The contacts, and what was printed.
#[derive(Clone)]
struct Crm {
    contacts: Arc<Mutex<BTreeMap<String, Value>>>,
    seen: Seen,
}

fn seed() -> BTreeMap<String, Value> {
    [
        json!({"id": "c42", "name": "Ada Lovelace", "team": "sales", "email": "ada@example.com"}),
        json!({"id": "c7", "name": "Alan Turing", "team": "support", "email": "alan@example.com"}),
    ]
    .into_iter()
    .filter_map(|c| Some((c.get("id")?.as_str()?.to_owned(), c)))
    .collect()
}

/// Prints the request and checks the injected key: `Err` is the answer to send.
fn admit(
    crm: &Crm,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<(), (StatusCode, Json<Value>)> {
    print_request(&crm.seen, "crm-api", method, uri, headers, true);
    let presented = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if presented == Some(KEY) {
        Ok(())
    } else {
        say(&crm.seen, "    -> 401: not the CRM's API key".to_owned());
        Err((
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "the CRM's API key is missing or wrong"})),
        ))
    }
}

type Answer = (StatusCode, Json<Value>);

async fn list(State(crm): State<Crm>, method: Method, uri: Uri, headers: HeaderMap) -> Answer {
    if let Err(e) = admit(&crm, &method, &uri, &headers) {
        return e;
    }
    let all: Vec<Value> = crm
        .contacts
        .lock()
        .map(|d| d.values().cloned().collect())
        .unwrap_or_default();
    (StatusCode::OK, Json(json!({"items": all})))
}

async fn one(
    State(crm): State<Crm>,
    Path(id): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Option<Json<Value>>,
) -> Answer {
    if let Err(e) = admit(&crm, &method, &uri, &headers) {
        return e;
    }
    let Ok(mut db) = crm.contacts.lock() else {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"error": "poisoned"})),
        );
    };
    if method == Method::GET {
        return match db.get(&id) {
            Some(c) => (StatusCode::OK, Json(c.clone())),
            None => (
                StatusCode::NOT_FOUND,
                Json(json!({"error": "no such contact"})),
            ),
        };
    }
    let Some(Json(Value::Object(fields))) = body else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "send a JSON object"})),
        );
    };
    say(
        &crm.seen,
        format!("    body: {}", Value::Object(fields.clone())),
    );
    let contact = db.entry(id.clone()).or_insert_with(|| json!({"id": id}));
    if let Some(c) = contact.as_object_mut() {
        for (k, v) in fields {
            if k != "id" {
                c.insert(k, v);
            }
        }
    }
    (StatusCode::OK, Json(contact.clone()))
}

/// The CRM API at `/api/…`, and what it prints as it serves.
pub fn router() -> (axum::Router, Seen) {
    let seen = Seen::default();
    let crm = Crm {
        contacts: Arc::new(Mutex::new(seed())),
        seen: Arc::clone(&seen),
    };
    let app = axum::Router::new()
        .route("/api/contacts", get(list))
        .route("/api/contacts/{id}", get(one).post(one).put(one))
        .with_state(crm);
    (app, seen)
}
