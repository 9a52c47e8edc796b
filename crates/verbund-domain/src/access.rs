//! Who may do what: the role rules for every API action.
//!
//! A pure decision: the caller's roles and the action's target in, allow or deny (with
//! the reason) out. Directory and catalog are readable by every signed-in user, since
//! the marketplace is public within the federation; every change is scoped to the
//! caller's own organisation, provider or offerings, auditors read everything and change
//! nothing, federation admins may do everything.

use crate::account::{Membership, Principal, Role};

/// An action on a target, as far as the decision needs to know it.
#[derive(Debug, Clone, Copy)]
pub enum Action<'a> {
    /// Read organisations, providers, sites, offerings and versions.
    ReadDirectory,
    CreateOrganisation,
    UpdateOrganisation { id: &'a str },
    CreateProvider,
    UpdateProvider { provider: &'a str },
    PutSite { provider: &'a str },
    PutOffering { vendor: &'a str },
    PublishVersion { vendor: &'a str },
    ReadAudit,
    /// List users; `organisation` narrows the list to one organisation's members.
    ListUsers { organisation: Option<&'a str> },
    ReadUser { memberships: &'a [Membership], user_id: &'a str },
    CreateUser { memberships: &'a [Membership] },
    /// Create, list or revoke tokens acting as `owner`.
    ManageTokens { owner: &'a str },
}

/// The outcome of a decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// Refused, with a sentence for the caller and the log.
    Deny(String),
}

impl Decision {
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allow)
    }
}

fn deny(reason: &str) -> Decision {
    Decision::Deny(reason.to_string())
}

fn allow_if(cond: bool, reason: &str) -> Decision {
    if cond {
        Decision::Allow
    } else {
        deny(reason)
    }
}

fn holds(p: &Principal, role: Role, organisation: &str) -> bool {
    p.memberships
        .iter()
        .any(|m| m.role == role && m.organisation.as_deref() == Some(organisation))
}

/// Decides whether `p` may perform `action`.
pub fn authorize(p: &Principal, action: &Action<'_>) -> Decision {
    if p.has_role(Role::FederationAdmin) {
        return Decision::Allow;
    }
    let auditor = p.has_role(Role::Auditor);
    match *action {
        Action::ReadDirectory => Decision::Allow,
        Action::CreateOrganisation | Action::UpdateOrganisation { .. } => {
            deny("only federation admins manage the organisation directory")
        }
        Action::CreateProvider => deny("only federation admins register providers"),
        Action::UpdateProvider { provider } | Action::PutSite { provider } => allow_if(
            p.memberships
                .iter()
                .any(|m| m.role == Role::ProviderOperator && m.provider.as_deref() == Some(provider)),
            "only the provider's own operators and federation admins change it",
        ),
        Action::PutOffering { vendor } | Action::PublishVersion { vendor } => allow_if(
            holds(p, Role::Vendor, vendor),
            "only the vendor's own members and federation admins change its offerings",
        ),
        Action::ReadAudit => allow_if(auditor, "only auditors and federation admins read the audit trail"),
        Action::ListUsers { organisation } => allow_if(
            auditor || organisation.is_some_and(|o| holds(p, Role::OrgAdmin, o)),
            "only auditors, federation admins and the organisation's own admins list its users",
        ),
        Action::ReadUser { memberships, user_id } => allow_if(
            auditor
                || user_id == p.user_id
                || memberships.iter().any(|m| {
                    m.organisation
                        .as_deref()
                        .is_some_and(|o| holds(p, Role::OrgAdmin, o))
                }),
            "users are visible to themselves, their organisation's admins and auditors",
        ),
        Action::CreateUser { memberships } => allow_if(
            !memberships.is_empty()
                && memberships.iter().all(|m| {
                    matches!(m.role, Role::OrgAdmin | Role::OrgMember)
                        && m.organisation
                            .as_deref()
                            .is_some_and(|o| holds(p, Role::OrgAdmin, o))
                }),
            "org admins may only create org admins and members of their own organisation",
        ),
        Action::ManageTokens { owner } => allow_if(
            owner == p.user_id,
            "tokens can only be managed by their owner or a federation admin",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(role: Role, org: Option<&str>, provider: Option<&str>) -> Principal {
        Principal {
            user_id: "u1".into(),
            user_name: "u".into(),
            memberships: vec![Membership {
                role,
                organisation: org.map(Into::into),
                provider: provider.map(Into::into),
            }],
        }
    }

    #[test]
    fn auditors_read_but_never_write() {
        let a = principal(Role::Auditor, None, None);
        assert!(authorize(&a, &Action::ReadAudit).is_allowed());
        assert!(authorize(&a, &Action::ListUsers { organisation: None }).is_allowed());
        for action in [
            Action::CreateOrganisation,
            Action::CreateProvider,
            Action::PutSite { provider: "p" },
            Action::PutOffering { vendor: "v" },
            Action::CreateUser { memberships: &[] },
            Action::ManageTokens { owner: "other" },
        ] {
            assert!(!authorize(&a, &action).is_allowed(), "{action:?}");
        }
    }

    #[test]
    fn scopes_are_respected() {
        let op = principal(Role::ProviderOperator, None, Some("p1"));
        assert!(authorize(&op, &Action::PutSite { provider: "p1" }).is_allowed());
        assert!(!authorize(&op, &Action::PutSite { provider: "p2" }).is_allowed());
        let v = principal(Role::Vendor, Some("o1"), None);
        assert!(authorize(&v, &Action::PublishVersion { vendor: "o1" }).is_allowed());
        assert!(!authorize(&v, &Action::PublishVersion { vendor: "o2" }).is_allowed());
        let admin = principal(Role::OrgAdmin, Some("o1"), None);
        let own = [Membership { role: Role::OrgMember, organisation: Some("o1".into()), provider: None }];
        let foreign = [Membership { role: Role::OrgMember, organisation: Some("o2".into()), provider: None }];
        let escalate = [Membership { role: Role::FederationAdmin, organisation: None, provider: None }];
        assert!(authorize(&admin, &Action::CreateUser { memberships: &own }).is_allowed());
        assert!(!authorize(&admin, &Action::CreateUser { memberships: &foreign }).is_allowed());
        assert!(!authorize(&admin, &Action::CreateUser { memberships: &escalate }).is_allowed());
        assert!(!authorize(&admin, &Action::ListUsers { organisation: Some("o2") }).is_allowed());
        assert!(!authorize(&admin, &Action::ListUsers { organisation: None }).is_allowed());
    }
}
