//! Claims → roles: the one place an [`Identity`] becomes role names.
//!
//! A mapping (`[[role_mappings]]`, optionally restricted to one issuer) matches when any of
//! its `groups` is in the token's groups, the domain of the identity's trusted email is one
//! of its `email_domains` (case-insensitive; an address with more than one `@` or nothing
//! before it has no domain), or the token's `sub` is one of its `subjects` (exactly; a
//! subject is never compared with the email, which the user may choose at some issuers).

use super::Identity;
use crate::config::RoleMapping;

/// The compiled role mappings.
#[derive(Debug, Clone, Default)]
pub struct RoleMapper {
    mappings: Vec<RoleMapping>,
}

/// The domain of an e-mail address with exactly one `@` and something on both sides.
fn email_domain(email: &str) -> Option<String> {
    let (local, domain) = email.split_once('@')?;
    if local.is_empty() || domain.is_empty() || domain.contains('@') {
        return None;
    }
    Some(domain.to_ascii_lowercase())
}

impl RoleMapper {
    pub fn new(mappings: &[RoleMapping]) -> Self {
        RoleMapper { mappings: mappings.to_vec() }
    }

    /// The roles an identity maps to, in mapping order, without duplicates.
    pub fn roles_for(&self, identity: &Identity) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let domain = identity.email.as_deref().and_then(email_domain);
        for m in &self.mappings {
            if m.issuer.as_ref().is_some_and(|i| *i != identity.issuer) {
                continue;
            }
            let hit = m.groups.iter().any(|g| identity.groups.contains(g))
                || domain.as_ref().is_some_and(|d| m.email_domains.iter().any(|x| x.eq_ignore_ascii_case(d)))
                || (!identity.subject.is_empty() && m.subjects.contains(&identity.subject));
            if hit && !out.contains(&m.role) {
                out.push(m.role.clone());
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatelog_model::PrincipalType;

    fn mapping(role: &str, f: impl FnOnce(&mut RoleMapping)) -> RoleMapping {
        let mut m =
            RoleMapping { role: role.into(), issuer: None, groups: vec![], email_domains: vec![], subjects: vec![] };
        f(&mut m);
        m
    }

    fn identity(issuer: &str, sub: &str, email: Option<&str>, groups: &[&str]) -> Identity {
        Identity {
            issuer: issuer.into(),
            subject: sub.into(),
            email: email.map(str::to_owned),
            principal: email.unwrap_or(sub).into(),
            principal_type: PrincipalType::User,
            groups: groups.iter().map(|g| g.to_string()).collect(),
            auth_method: "oidc".into(),
        }
    }

    #[test]
    fn mappings() {
        let m = RoleMapper::new(&[
            mapping("admin", |m| m.groups = vec!["admins".into()]),
            mapping("analyst", |m| m.email_domains = vec!["Example.com".into()]),
            mapping("svc", |m| {
                m.subjects = vec!["svc-1".into(), "boss@example.com".into()];
                m.issuer = Some("okta".into());
            }),
        ]);
        assert_eq!(m.roles_for(&identity("okta", "u1", Some("ana@EXAMPLE.com"), &["admins"])), ["admin", "analyst"]);
        assert_eq!(m.roles_for(&identity("okta", "svc-1", None, &[])), ["svc"]);
        assert!(m.roles_for(&identity("other", "svc-1", None, &[])).is_empty(), "issuer-restricted");
        // A subject never matches the email, even when a subject is written like one.
        assert!(m.roles_for(&identity("okta", "u2", Some("svc-1"), &[])).is_empty());
        assert_eq!(m.roles_for(&identity("okta", "u2", Some("boss@example.com"), &[])), ["analyst"]);
        // Addresses that are not one local part and one domain map no domain.
        for e in ["eve@evil.test@example.com", "@example.com", "example.com", "eve@example.com.evil.test"] {
            assert!(m.roles_for(&identity("okta", "u3", Some(e), &[])).is_empty(), "{e}");
        }
        // An empty sub never matches an empty subject entry.
        let empty = RoleMapper::new(&[mapping("x", |m| m.subjects = vec![String::new()])]);
        assert!(empty.roles_for(&identity("okta", "", None, &[])).is_empty());
    }
}
