//! GCP: what `gcloud asset search-all-resources --format=json` prints.
//!
//! The shape is Cloud Asset Inventory's `ResourceSearchResult` (REST reference
//! `v1/ResourceSearchResult`, JSON names in lowerCamelCase as gcloud prints them): an
//! array of `{"name": "//cloudfunctions.googleapis.com/projects/p/locations/l/functions/f",
//! "assetType": "cloudfunctions.googleapis.com/CloudFunction", "project":
//! "projects/{number}", "displayName", "description", "location", "labels": {…},
//! "networkTags": […], "state", "createTime", "updateTime", "folders", "organization",
//! "parentFullResourceName", "parentAssetType", …}`. An object `{"results": [...]}` (the
//! REST answer) is read too.
//!
//! Kind is `assetType`; scope `project`; location `location`; name `displayName`, else
//! the last segment of `name`; uid `name`. GCP label keys hold only `a-z0-9_-`, so the
//! owner and link labels are `mandate-owner` (or `owner`) and `mandate-agent-id`; label
//! values are lowercase, so the link is the agent id in lowercase (`agt_01j…`), which
//! reconciliation reads without regard to case.

use serde_json::Value;

use super::{
    DiscoverError, Discovered, LINK_KEYS, OWNER_KEYS, Source, first_of, items, required, shape,
    string_map, text,
};

/// Reads a `search-all-resources` answer.
pub(crate) fn read(doc: &Value) -> Result<Vec<Discovered>, DiscoverError> {
    let list = items(doc, "results")?;
    let mut out = Vec::with_capacity(list.len());
    for (i, r) in list.iter().enumerate() {
        let at = format!("[{i}]");
        if !r.is_object() {
            return Err(shape(at, "not an object"));
        }
        let full = required(r, "name", &at)?;
        let kind = required(r, "assetType", &at)?;
        let labels = string_map(r, "labels", &at)?;
        let name = match text(r, "displayName", &at)? {
            Some(d) if !d.is_empty() => d,
            _ => full
                .rsplit('/')
                .find(|s| !s.is_empty())
                .unwrap_or(&full)
                .to_owned(),
        };
        out.push(Discovered {
            source: Source::Gcp,
            kind,
            scope: text(r, "project", &at)?.unwrap_or_default(),
            location: text(r, "location", &at)?.filter(|l| !l.is_empty()),
            name,
            uid: full,
            owner: first_of(OWNER_KEYS, &[&labels]),
            agent_id: first_of(LINK_KEYS, &[&labels]),
            labels,
        });
    }
    Ok(out)
}
