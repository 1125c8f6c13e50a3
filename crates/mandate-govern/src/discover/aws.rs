//! AWS: what `aws resourcegroupstaggingapi get-resources --output json` prints.
//!
//! The shape is the Resource Groups Tagging API reference's (`GetResources` response,
//! `ResourceTagMapping`, `Tag`): `{"ResourceTagMappingList": [{"ResourceARN": "arn:…",
//! "Tags": [{"Key": "…", "Value": "…"}], "ComplianceDetails": {…}}], "PaginationToken":
//! "…"}`. An array of mappings (the list alone, as `--query ResourceTagMappingList`
//! prints it) is read too.
//!
//! The ARN gives the rest (AWS General Reference, "Amazon Resource Names"):
//! `arn:partition:service:region:account-id:resource`, where `resource` is `id`,
//! `type/id` or `type:id`. Kind is `service:type` (`lambda:function`,
//! `ecs:task`), or the service alone; scope the account; location the region; name the
//! resource id's last `/` segment.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{
    DiscoverError, Discovered, LINK_KEYS, MAX_LABELS, OWNER_KEYS, Source, bounded, first_of, items,
    required, shape,
};

/// Reads a `get-resources` answer.
pub(crate) fn read(doc: &Value) -> Result<Vec<Discovered>, DiscoverError> {
    let list = items(doc, "ResourceTagMappingList")?;
    let mut out = Vec::with_capacity(list.len());
    for (i, m) in list.iter().enumerate() {
        let at = format!("ResourceTagMappingList[{i}]");
        if !m.is_object() {
            return Err(shape(at, "not an object"));
        }
        let arn_text = required(m, "ResourceARN", &at)?;
        let arn = Arn::parse(&arn_text).ok_or_else(|| {
            shape(
                format!("{at}.ResourceARN"),
                "not an ARN (arn:partition:service:region:account-id:resource)",
            )
        })?;
        let tags = tags(m, &at)?;
        out.push(Discovered {
            source: Source::Aws,
            kind: arn.kind(),
            scope: arn.account.to_owned(),
            location: (!arn.region.is_empty()).then(|| arn.region.to_owned()),
            name: arn.name().to_owned(),
            uid: arn_text.clone(),
            owner: first_of(OWNER_KEYS, &[&tags]),
            agent_id: first_of(LINK_KEYS, &[&tags]),
            labels: tags,
        });
    }
    Ok(out)
}

/// `Tags: [{"Key", "Value"}]`; absent or `null` is none; a repeated key keeps its last.
fn tags(m: &Value, at: &str) -> Result<BTreeMap<String, String>, DiscoverError> {
    let at = format!("{at}.Tags");
    let list = match m.get("Tags") {
        None | Some(Value::Null) => return Ok(BTreeMap::new()),
        Some(Value::Array(a)) => a,
        Some(_) => return Err(shape(at, "not an array")),
    };
    if list.len() > MAX_LABELS {
        return Err(shape(at, format!("more than {MAX_LABELS} tags")));
    }
    let mut out = BTreeMap::new();
    for (i, t) in list.iter().enumerate() {
        let at = format!("{at}[{i}]");
        let key = match t.get("Key") {
            Some(Value::String(k)) if !k.is_empty() => bounded(k, &format!("{at}.Key"))?,
            _ => return Err(shape(format!("{at}.Key"), "missing or not a string")),
        };
        let value = match t.get("Value") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(v)) => bounded(v, &format!("{at}.Value"))?,
            Some(_) => return Err(shape(format!("{at}.Value"), "not a string")),
        };
        out.insert(key, value);
    }
    Ok(out)
}

/// The parts of an ARN this reader uses.
#[derive(Debug, PartialEq, Eq)]
pub struct Arn<'a> {
    /// `lambda`, `ecs`, `iam`, …
    pub service: &'a str,
    /// The region; empty for global services (IAM, S3).
    pub region: &'a str,
    /// The 12-digit account id; empty for S3 buckets.
    pub account: &'a str,
    /// Everything after the account: `id`, `type/id` or `type:id`.
    pub resource: &'a str,
}

impl<'a> Arn<'a> {
    /// Splits `arn:partition:service:region:account-id:resource`; `None` when it has
    /// fewer parts, an empty service or an empty resource.
    pub fn parse(s: &'a str) -> Option<Self> {
        let mut parts = s.splitn(6, ':');
        let (arn, _partition) = (parts.next()?, parts.next()?);
        let (service, region, account, resource) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        (arn == "arn" && !service.is_empty() && !resource.is_empty()).then_some(Self {
            service,
            region,
            account,
            resource,
        })
    }

    /// The resource type, when the resource part names one (`function` of
    /// `function:name`, `task` of `task/cluster/id`).
    pub fn resource_type(&self) -> Option<&'a str> {
        let cut = self.resource.find(['/', ':'])?;
        self.resource.get(..cut).filter(|t| !t.is_empty())
    }

    /// `service:type`, or the service alone.
    pub fn kind(&self) -> String {
        match self.resource_type() {
            Some(t) => format!("{}:{t}", self.service),
            None => self.service.to_owned(),
        }
    }

    /// The resource id's last `/` segment (`name` of `function:name`, `id` of
    /// `task/cluster/id`); the whole resource when that is empty.
    pub fn name(&self) -> &'a str {
        let id = match self.resource_type() {
            Some(t) => self.resource.get(t.len() + 1..).unwrap_or(self.resource),
            None => self.resource,
        };
        match id.rsplit('/').next() {
            Some(n) if !n.is_empty() => n,
            _ => self.resource,
        }
    }
}
