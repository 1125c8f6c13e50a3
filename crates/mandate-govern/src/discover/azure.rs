//! Azure: what `az resource list --output json` prints.
//!
//! The shape is Azure Resource Manager's `GenericResource` (REST reference "Resources -
//! List", as the CLI prints it): an array of `{"id":
//! "/subscriptions/{sub}/resourceGroups/{rg}/providers/{namespace}/{type}/{name}",
//! "name", "type": "Microsoft.Web/sites", "location", "resourceGroup", "kind",
//! "tags": {"key": "value"} | null, "identity", "sku", …}`. An object `{"value": [...]}`
//! (the REST answer itself) is read too.
//!
//! Kind is `type`; scope the subscription id read from `id`; location `location`; uid
//! `id`. Azure tag names cannot hold `/`, so the owner and link tags are
//! `mandate-owner` (or `owner`) and `mandate-agent-id`.

use serde_json::Value;

use super::{
    DiscoverError, Discovered, LINK_KEYS, OWNER_KEYS, Source, first_of, items, required, shape,
    string_map, text,
};

/// Reads an `az resource list` answer.
pub(crate) fn read(doc: &Value) -> Result<Vec<Discovered>, DiscoverError> {
    let list = items(doc, "value")?;
    let mut out = Vec::with_capacity(list.len());
    for (i, r) in list.iter().enumerate() {
        let at = format!("[{i}]");
        if !r.is_object() {
            return Err(shape(at, "not an object"));
        }
        let id = required(r, "id", &at)?;
        let name = required(r, "name", &at)?;
        let kind = required(r, "type", &at)?;
        let tags = string_map(r, "tags", &at)?;
        out.push(Discovered {
            source: Source::Azure,
            kind,
            scope: subscription(&id).unwrap_or_default().to_owned(),
            location: text(r, "location", &at)?.filter(|l| !l.is_empty()),
            name,
            uid: id,
            owner: first_of(OWNER_KEYS, &[&tags]),
            agent_id: first_of(LINK_KEYS, &[&tags]),
            labels: tags,
        });
    }
    Ok(out)
}

/// The subscription id of a resource id `/subscriptions/{id}/…` (the segment name is
/// matched without regard to case, as Azure treats it).
pub fn subscription(id: &str) -> Option<&str> {
    let mut segs = id.split('/').skip_while(|s| s.is_empty());
    let first = segs.next()?;
    let sub = segs.next()?;
    (first.eq_ignore_ascii_case("subscriptions") && !sub.is_empty()).then_some(sub)
}
