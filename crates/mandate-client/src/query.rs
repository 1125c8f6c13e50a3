//! The query parameters of the list endpoints: only the filters given are sent.

/// `?k=v&…` without the `?`, of the pairs given, in order.
pub(crate) fn encode(pairs: &[(&str, String)]) -> String {
    let mut ser = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        ser.append_pair(k, v);
    }
    ser.finish()
}

/// The pairs of the fields that are set, in order.
fn set<'a>(fields: &[(&'a str, Option<String>)]) -> Vec<(&'a str, String)> {
    fields
        .iter()
        .filter_map(|(k, v)| v.clone().map(|v| (*k, v)))
        .collect()
}

/// A page of a list: at most `limit` items after `cursor`.
#[derive(Debug, Clone, Default)]
pub struct PageQuery {
    /// At most this many items (the server caps it).
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl PageQuery {
    pub(crate) fn pairs(&self) -> Vec<(&'static str, String)> {
        set(&[
            ("limit", self.limit.map(|l| l.to_string())),
            ("cursor", self.cursor.clone()),
        ])
    }
}

/// `GET /v1/agents` filters.
#[derive(Debug, Clone, Default)]
pub struct AgentQuery {
    /// Of this owner.
    pub owner: Option<String>,
    /// In this status.
    pub status: Option<String>,
    /// With this label, `key=value`.
    pub label: Option<String>,
    /// Which page.
    pub page: PageQuery,
}

impl AgentQuery {
    pub(crate) fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut p = set(&[
            ("owner", self.owner.clone()),
            ("status", self.status.clone()),
            ("label", self.label.clone()),
        ]);
        p.extend(self.page.pairs());
        p
    }
}

/// `GET /v1/mandates` filters.
#[derive(Debug, Clone, Default)]
pub struct MandateQuery {
    /// Of this agent.
    pub agent: Option<String>,
    /// In this status.
    pub status: Option<String>,
    /// For this user's subject.
    pub user: Option<String>,
    /// Which page.
    pub page: PageQuery,
}

impl MandateQuery {
    pub(crate) fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut p = set(&[
            ("agent", self.agent.clone()),
            ("status", self.status.clone()),
            ("user", self.user.clone()),
        ]);
        p.extend(self.page.pairs());
        p
    }
}

/// `GET /v1/anomalies` filters.
#[derive(Debug, Clone, Default)]
pub struct AnomalyQuery {
    /// Of this agent.
    pub agent: Option<String>,
    /// In this status.
    pub status: Option<String>,
    /// Of this severity.
    pub severity: Option<String>,
    /// Of this kind.
    pub kind: Option<String>,
    /// Which page.
    pub page: PageQuery,
}

impl AnomalyQuery {
    pub(crate) fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut p = set(&[
            ("agent", self.agent.clone()),
            ("status", self.status.clone()),
            ("severity", self.severity.clone()),
            ("kind", self.kind.clone()),
        ]);
        p.extend(self.page.pairs());
        p
    }
}

/// `GET /v1/inventory` filters, thresholds and page.
#[derive(Debug, Clone, Default)]
pub struct InventoryQuery {
    /// Of this owner.
    pub owner: Option<String>,
    /// In this status.
    pub status: Option<String>,
    /// With a finding of this code.
    pub finding: Option<String>,
    /// Whose labels match this selector.
    pub selector: Option<String>,
    /// Days without a decision before `dormant`.
    pub dormant_days: Option<u32>,
    /// Days unused before `credential_stale`.
    pub credential_unused_days: Option<u32>,
    /// Days old before `credential_never_rotated`.
    pub credential_rotation_days: Option<u32>,
    /// The last agent id of the previous page.
    pub after: Option<String>,
    /// Page size.
    pub limit: Option<u32>,
}

impl InventoryQuery {
    pub(crate) fn pairs(&self) -> Vec<(&'static str, String)> {
        let n = |v: Option<u32>| v.map(|n| n.to_string());
        set(&[
            ("owner", self.owner.clone()),
            ("status", self.status.clone()),
            ("finding", self.finding.clone()),
            ("selector", self.selector.clone()),
            ("dormant_days", n(self.dormant_days)),
            ("credential_unused_days", n(self.credential_unused_days)),
            ("credential_rotation_days", n(self.credential_rotation_days)),
            ("after", self.after.clone()),
            ("limit", n(self.limit)),
        ])
    }
}

/// `GET /v1/audit/events` filters.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// Of this agent.
    pub agent: Option<String>,
    /// Of this kind.
    pub kind: Option<String>,
    /// `allow` or `deny`.
    pub decision: Option<String>,
    /// At or after (RFC 3339).
    pub since: Option<String>,
    /// Before (RFC 3339).
    pub until: Option<String>,
    /// At most this many.
    pub limit: Option<u32>,
    /// After this `seq`.
    pub cursor: Option<u64>,
}

impl AuditQuery {
    pub(crate) fn pairs(&self) -> Vec<(&'static str, String)> {
        set(&[
            ("agent", self.agent.clone()),
            ("kind", self.kind.clone()),
            ("decision", self.decision.clone()),
            ("since", self.since.clone()),
            ("until", self.until.clone()),
            ("limit", self.limit.map(|l| l.to_string())),
            ("cursor", self.cursor.map(|c| c.to_string())),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_filters_given_are_sent_in_order_and_encoded() {
        let q = AgentQuery {
            status: Some("active".into()),
            label: Some("team=a b".into()),
            page: PageQuery {
                limit: Some(5),
                cursor: None,
            },
            ..AgentQuery::default()
        };
        assert_eq!(encode(&q.pairs()), "status=active&label=team%3Da+b&limit=5");
        assert_eq!(encode(&AuditQuery::default().pairs()), "");
    }
}
