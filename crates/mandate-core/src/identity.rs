//! How human identities are compared: one canonical form of an e-mail address, used by
//! every check that asks "is this the same person" (self-approval, ownership).
//!
//! Decision: the whole address is compared case-insensitively. The domain is
//! case-insensitive by definition (RFC 5321 §2.4, RFC 1035 §2.3.3). The local part may
//! in theory be case-sensitive, but no mainstream mail system or identity provider
//! treats `Bob` and `bob` as two mailboxes, and a self-approval check that misses
//! `Bob@example.com` = `bob@example.com` lets a person approve their own agent.
//!
//! The trade-off, stated plainly: for self-approval folding can only refuse more, but
//! ownership (`is_owner` in the server) also *grants* — the owner may revoke the agent's
//! mandates — so folding lets `bob@example.com` act as the owner `Bob@example.com`. That
//! is accepted: both addresses are verified by the identity provider, and two people
//! whose verified addresses differ only in case are not a case this server supports.
//! Not equated: Unicode normalisation forms (NFC/NFD) and punycode against Unicode
//! domains — an IdP that issues the same address in two such forms would defeat the
//! comparison; none of the common ones do. Subjects (`sub`) are not e-mail addresses and
//! stay case-sensitive (OpenID Connect Core §5.7).

/// The canonical form of an e-mail address (`local@domain`, lowercased throughout), or
/// `None` when `s` is not one (no `@` with text on both sides).
pub fn email_key(s: &str) -> Option<String> {
    let (local, domain) = s.rsplit_once('@')?;
    if local.is_empty() || domain.is_empty() {
        return None;
    }
    // A trailing dot names the same DNS domain (RFC 1034 §3.1).
    let domain = domain.strip_suffix('.').unwrap_or(domain);
    Some(format!(
        "{}@{}",
        local.to_lowercase(),
        domain.to_lowercase()
    ))
}

/// Whether `a` and `b` are the same e-mail address in canonical form (false when
/// either is not an address).
pub fn same_email(a: &str, b: &str) -> bool {
    matches!((email_key(a), email_key(b)), (Some(x), Some(y)) if x == y)
}

/// One person's handles: their subject (compared exactly) and the e-mail addresses
/// they are known by — the `email` claim, and the subject itself when it is an address
/// (an IdP whose user claim is `upn` or `preferred_username` may carry no `email`).
#[derive(Debug, Clone, Copy)]
pub struct Person<'a> {
    /// The subject, compared byte for byte; it may itself be an e-mail address.
    pub sub: &'a str,
    /// The verified e-mail address, if the token carried one.
    pub email: Option<&'a str>,
}

impl Person<'_> {
    fn addresses(&self) -> impl Iterator<Item = &str> {
        self.email.into_iter().chain(Some(self.sub))
    }

    /// Whether `self` and `other` are the same person: the same subject, or an address
    /// of one is an address of the other (canonical form).
    pub fn is(&self, other: &Person<'_>) -> bool {
        self.sub == other.sub
            || self
                .addresses()
                .any(|a| other.addresses().any(|b| same_email(a, b)))
    }

    /// Whether `self` is `name` (an agent's owner: a user name or an address): the
    /// subject exactly, or one of their addresses in canonical form.
    pub fn is_named(&self, name: &str) -> bool {
        self.sub == name || self.addresses().any(|a| same_email(a, name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn case_and_a_trailing_dot_do_not_make_another_person() {
        assert!(same_email("Bob@Example.com", "Bob@example.com"));
        assert!(same_email("alice@example.com", "alice@EXAMPLE.com"));
        assert!(same_email("ALICE@example.com.", "alice@example.com"));
        assert!(same_email("Zoë@Exämple.org", "zoë@exÄmple.org"));
        assert!(!same_email("alice@example.com", "alice@example.org"));
        assert!(
            !same_email("alice", "alice"),
            "a user name is not an address"
        );
        assert!(!same_email("@example.com", "@example.com"));
    }

    #[test]
    fn a_subject_that_is_an_address_is_an_address() {
        let p = |sub, email| Person { sub, email };
        assert!(p("Alice@Example.com", None).is_named("alice@example.com"));
        assert!(p("alice@example.com.", None).is_named("alice@example.com"));
        assert!(p("u-1", Some("ALICE@example.com")).is_named("alice@example.com"));
        assert!(!p("u-1", None).is_named("alice@example.com"));
        assert!(p("u-1", None).is_named("u-1"));
        assert!(!p("U-1", None).is_named("u-1"), "subjects are exact");
        assert!(p("Erin@x.org", None).is(&p("u-9", Some("erin@X.org"))));
        assert!(!p("u-1", None).is(&p("u-2", None)));
    }

    proptest! {
        #[test]
        fn any_change_of_case_is_the_same_address(local in "[a-zA-Z0-9.+_-]{1,20}", domain in "[a-zA-Z0-9-]{1,20}\\.[a-zA-Z]{2,6}") {
            let a = format!("{local}@{domain}");
            let b = format!("{}@{}", local.to_uppercase(), domain.to_lowercase());
            prop_assert!(same_email(&a, &b));
        }
    }
}
