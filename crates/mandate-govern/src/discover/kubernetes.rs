//! Kubernetes: what `kubectl get pods -l app=ai-agent -A -o json` prints (a `v1` `List`
//! of `Pod`s), and the API's own lists (`PodList`, `ServiceAccountList`) or one object.
//!
//! The shapes are the Kubernetes API reference's (v1.3x, "Pod", "ServiceAccount",
//! "ObjectMeta", "ListMeta"): a list is `{"apiVersion": "v1", "kind": "List" |
//! "PodList" | "ServiceAccountList", "metadata": {…}, "items": [...]}`; `kubectl`'s
//! `List` gives each item its own `kind`, the API's typed lists leave it out (the list's
//! kind without `List` is the items'). An object is `{"kind", "metadata": {"name",
//! "namespace", "uid", "labels", "annotations", …}, "spec", "status"}`.
//!
//! Read: `kind`, `metadata.name` (required), `.namespace` (the scope), `.uid`, `.labels`,
//! and from `.annotations` only the owner and link keys (`OWNER_KEYS`, `LINK_KEYS`):
//! annotations hold large values (`kubectl.kubernetes.io/last-applied-configuration`)
//! that are not kept.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{
    DiscoverError, Discovered, LINK_KEYS, OWNER_KEYS, Source, bounded, first_of, items, required,
    shape, string_map, text,
};

/// Reads a list or one object.
pub(crate) fn read(doc: &Value) -> Result<Vec<Discovered>, DiscoverError> {
    let Value::Object(_) = doc else {
        return Err(shape("$", "not a Kubernetes object or list"));
    };
    let kind = text(doc, "kind", "$")?.unwrap_or_default();
    if let Some(of) = kind.strip_suffix("List") {
        let list = items(doc, "items")?;
        let mut out = Vec::with_capacity(list.len());
        for (i, item) in list.iter().enumerate() {
            out.push(object(
                item,
                (!of.is_empty()).then_some(of),
                &format!("items[{i}]"),
            )?);
        }
        Ok(out)
    } else {
        Ok(vec![object(doc, None, "$")?])
    }
}

/// One object; `list_kind` is the kind a typed list gives its items.
fn object(v: &Value, list_kind: Option<&str>, at: &str) -> Result<Discovered, DiscoverError> {
    if !v.is_object() {
        return Err(shape(at, "not an object"));
    }
    let kind = match (text(v, "kind", at)?, list_kind) {
        (Some(k), _) if !k.is_empty() => k,
        (_, Some(k)) => k.to_owned(),
        _ => return Err(shape(format!("{at}.kind"), "missing or empty")),
    };
    let at_meta = format!("{at}.metadata");
    let meta = match v.get("metadata") {
        Some(m @ Value::Object(_)) => m,
        _ => return Err(shape(&at_meta, "missing or not an object")),
    };
    let name = required(meta, "name", &at_meta)?;
    let namespace = text(meta, "namespace", &at_meta)?.unwrap_or_default();
    let uid = match text(meta, "uid", &at_meta)? {
        Some(u) if !u.is_empty() => u,
        // A dry-run or hand-written object has no uid: name it by where it is.
        _ => format!("{namespace}/{kind}/{name}"),
    };
    let labels = string_map(meta, "labels", &at_meta)?;
    let annotations = known_annotations(meta, &at_meta)?;
    Ok(Discovered {
        source: Source::Kubernetes,
        kind,
        scope: namespace,
        location: None,
        name,
        uid,
        owner: first_of(OWNER_KEYS, &[&annotations, &labels]),
        agent_id: first_of(LINK_KEYS, &[&annotations, &labels]),
        labels,
    })
}

/// The owner and link annotations only; the rest are neither read nor kept.
fn known_annotations(meta: &Value, at: &str) -> Result<BTreeMap<String, String>, DiscoverError> {
    let at = format!("{at}.annotations");
    let m = match meta.get("annotations") {
        None | Some(Value::Null) => return Ok(BTreeMap::new()),
        Some(Value::Object(m)) => m,
        Some(_) => return Err(shape(at, "not an object")),
    };
    let mut out = BTreeMap::new();
    for k in OWNER_KEYS.iter().chain(LINK_KEYS) {
        match m.get(*k) {
            None => {}
            Some(Value::String(s)) => {
                out.insert((*k).to_owned(), bounded(s, &format!("{at}.{k}"))?);
            }
            Some(_) => return Err(shape(format!("{at}.{k}"), "not a string")),
        }
    }
    Ok(out)
}
