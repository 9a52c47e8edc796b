//! Authorization: every API action is decided by the Cedar role policies in
//! `policies/authorization.cedar`.
//!
//! The caller becomes a `User` entity carrying its role scopes; the target becomes a
//! `Resource` entity with the attributes the rules look at, placed `in` its
//! organisation so that delegated admins reach the organisations below theirs. Verdicts
//! once taken are remembered ([`memo`]): the same caller, act and target get the same.

mod memo;

use std::collections::{HashMap, HashSet};
use std::str::FromStr;

use cedar_policy::{
    ActionConstraint, Authorizer, Context, Decision, Entities, Entity, EntityTypeName, EntityUid,
    PolicySet, Request, RequestBuilder, RestrictedExpression,
};
use verbund_domain::account::{Principal, Role};

use crate::entities::{org_uid, uid};
use crate::{schema, PolicyError};

/// The shipped role policies.
pub const ROLE_POLICIES: &str = include_str!("../../../policies/authorization.cedar");

/// What the caller wants to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Act {
    Read,
    /// Create or change.
    Write,
    Delete,
    Approve,
    /// Set an account's password knowing the current one: only the account's owner.
    SetPassword,
    /// Hand out a one-time reset token for another person's password.
    ResetPassword,
    /// Disable or enable an account.
    Disable,
    /// Revoke all tokens and sessions of an account.
    Revoke,
}

impl Act {
    const ALL: [Act; 8] = [
        Act::Read,
        Act::Write,
        Act::Delete,
        Act::Approve,
        Act::SetPassword,
        Act::ResetPassword,
        Act::Disable,
        Act::Revoke,
    ];

    fn name(self) -> &'static str {
        match self {
            Act::Read => "read",
            Act::Write => "write",
            Act::Delete => "delete",
            Act::Approve => "approve",
            Act::SetPassword => "set-password",
            Act::ResetPassword => "reset-password",
            Act::Disable => "disable",
            Act::Revoke => "revoke",
        }
    }
}

/// What the caller acts on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Target {
    /// `organisation`, `provider`, `site`, `offering`, `booking`, `policy`, `placement`,
    /// `audit`, `user`, `token`, `facts` (placement facts of a provider or a site),
    /// `fact-proposal` (`owner`: its proposer) or `site-history` (a site's health over
    /// time, `provider`: the site's).
    pub kind: &'static str,
    /// The owning organisation and its ancestors, nearest first.
    pub organisation: Vec<String>,
    pub provider: Option<String>,
    pub vendor: Option<String>,
    pub owner: Option<String>,
    /// For accounts: the organisations of its roles, and whether they are only
    /// org-admin or org-member roles.
    pub organisations: Option<Vec<String>>,
    pub org_roles_only: Option<bool>,
    pub layer: Option<String>,
}

impl Target {
    pub fn new(kind: &'static str) -> Self {
        Target {
            kind,
            ..Default::default()
        }
    }

    /// The owning organisation, as `[id, parent, grandparent, …]`.
    pub fn in_organisation(mut self, chain: Vec<String>) -> Self {
        self.organisation = chain;
        self
    }

    pub fn provider(mut self, p: impl Into<String>) -> Self {
        self.provider = Some(p.into());
        self
    }

    pub fn vendor(mut self, v: impl Into<String>) -> Self {
        self.vendor = Some(v.into());
        self
    }

    pub fn owner(mut self, u: impl Into<String>) -> Self {
        self.owner = Some(u.into());
        self
    }

    pub fn layer(mut self, l: impl Into<String>) -> Self {
        self.layer = Some(l.into());
        self
    }
}

/// The outcome, with the reason for a refusal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    Deny(String),
}

impl Verdict {
    pub fn is_allowed(&self) -> bool {
        matches!(self, Verdict::Allow)
    }
}

/// The compiled role policies.
pub struct Authz {
    /// All role policies.
    policies: PolicySet,
    /// For each act, the role policies whose action scope admits it: Cedar evaluates
    /// every policy of the set it is given, and a policy scoped to other actions can
    /// never apply (a page of 100 bookings read: 10 of the 15 policies, and 3.65 → 3.19 ms to judge
    /// it, `cargo bench -p verbund-policy --bench judging`).
    policies_by_act: Vec<(Act, PolicySet)>,
    authorizer: Authorizer,
    /// The schema's action entities, so that `action in Action::"api"` resolves.
    actions: Vec<Entity>,
    /// The verdicts taken so far.
    memo: memo::Memo,
}

fn orgs(ids: impl IntoIterator<Item = String>) -> Result<RestrictedExpression, PolicyError> {
    let uids = ids
        .into_iter()
        .map(|i| org_uid(&i))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(RestrictedExpression::new_set(
        uids.into_iter().map(RestrictedExpression::new_entity_uid),
    ))
}

fn strings(items: impl IntoIterator<Item = String>) -> RestrictedExpression {
    RestrictedExpression::new_set(items.into_iter().map(RestrictedExpression::new_string))
}

fn scoped(p: &Principal, role: Role) -> Vec<String> {
    p.memberships
        .iter()
        .filter(|m| m.role == role)
        .filter_map(|m| m.organisation.clone())
        .collect()
}

impl Authz {
    /// Compiles and validates the shipped role policies.
    pub fn new() -> Result<Self, PolicyError> {
        let policies = PolicySet::from_str(ROLE_POLICIES).map_err(|e| PolicyError::Parse {
            document: "authorization".into(),
            message: e.to_string(),
        })?;
        let result = cedar_policy::Validator::new(schema()?.clone())
            .validate(&policies, cedar_policy::ValidationMode::Strict);
        if !result.validation_passed() {
            return Err(PolicyError::Invalid {
                document: "authorization".into(),
                message: result
                    .validation_errors()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("; "),
            });
        }
        let actions: Vec<Entity> = schema()?
            .action_entities()
            .map_err(|e| PolicyError::Schema(e.to_string()))?
            .iter()
            .cloned()
            .collect();
        Ok(Authz {
            policies_by_act: policies_by_act(&policies, &actions)?,
            policies,
            authorizer: Authorizer::new(),
            actions,
            memo: memo::Memo::new(memo::CAPACITY),
        })
    }

    /// The role policies that may apply to `act` (all of them for an act not sliced,
    /// which never happens: the decision is the same, only slower).
    fn policies_for(&self, act: Act) -> &PolicySet {
        self.policies_by_act
            .iter()
            .find(|(a, _)| *a == act)
            .map_or(&self.policies, |(_, set)| set)
    }

    fn user(&self, p: &Principal) -> Result<Entity, PolicyError> {
        let delegated: Vec<String> = p
            .memberships
            .iter()
            .filter(|m| m.role == Role::OrgAdmin && m.delegated)
            .filter_map(|m| m.organisation.clone())
            .collect();
        let admin: Vec<String> = p
            .memberships
            .iter()
            .filter(|m| m.role == Role::OrgAdmin && !m.delegated)
            .filter_map(|m| m.organisation.clone())
            .collect();
        let attrs = HashMap::from([
            (
                "id".to_string(),
                RestrictedExpression::new_string(p.user_id.clone()),
            ),
            (
                "federation_admin".to_string(),
                RestrictedExpression::new_bool(p.has_role(Role::FederationAdmin)),
            ),
            (
                "auditor".to_string(),
                RestrictedExpression::new_bool(p.has_role(Role::Auditor)),
            ),
            (
                "monitoring".to_string(),
                RestrictedExpression::new_bool(p.has_role(Role::Monitoring)),
            ),
            ("org_admin".to_string(), orgs(admin)?),
            ("org_admin_delegated".to_string(), orgs(delegated)?),
            ("org_member".to_string(), orgs(scoped(p, Role::OrgMember))?),
            ("vendor".to_string(), orgs(scoped(p, Role::Vendor))?),
            (
                "operator".to_string(),
                strings(
                    p.memberships
                        .iter()
                        .filter(|m| m.role == Role::ProviderOperator)
                        .filter_map(|m| m.provider.clone()),
                ),
            ),
        ]);
        Entity::new(uid("Verbund::User", &p.user_id)?, attrs, HashSet::new())
            .map_err(|e| PolicyError::Schema(e.to_string()))
    }

    /// Decides whether `p` may `act` on `target`.
    pub fn decide(&self, p: &Principal, act: Act, target: &Target) -> Verdict {
        self.decide_each(p, act, std::slice::from_ref(target))
            .pop()
            .unwrap_or_else(undecided)
    }

    /// Decides for each target, in order, whether `p` may `act` on it: for every one the
    /// decision [`Authz::decide`] takes, but with one entity set for all of them (the
    /// caller, the actions, each target as a resource of its own and the organisation
    /// chains they share), so that a page of 100 bookings builds the caller and computes
    /// the entities' hierarchy once, not 100 times.
    pub fn decide_each(&self, p: &Principal, act: Act, targets: &[Target]) -> Vec<Verdict> {
        self.decide_each_with(p, act, targets, targets.len() > 1)
    }

    /// [`Authz::decide_each`] without first asking whether `p` may act on every resource:
    /// for a list that has asked that already ([`Authz::allows_every`]) and been told no,
    /// so that the partial evaluation is not made twice.
    pub fn judge_each(&self, p: &Principal, act: Act, targets: &[Target]) -> Vec<Verdict> {
        self.decide_each_with(p, act, targets, false)
    }

    /// The verdicts the memo holds, and Cedar's for the other targets (remembered then).
    fn decide_each_with(
        &self,
        p: &Principal,
        act: Act,
        targets: &[Target],
        ask_every: bool,
    ) -> Vec<Verdict> {
        let mut verdicts = self.memo.recall(p, act, targets);
        let unknown: Vec<Target> = targets
            .iter()
            .zip(&verdicts)
            .filter(|(_, known)| known.is_none())
            .map(|(t, _)| t.clone())
            .collect();
        if !unknown.is_empty() {
            let mut judged = self.judge(p, act, &unknown, ask_every).into_iter();
            for slot in verdicts.iter_mut().filter(|v| v.is_none()) {
                *slot = judged.next();
            }
        }
        verdicts
            .into_iter()
            .map(|v| v.unwrap_or_else(undecided))
            .collect()
    }

    /// Cedar's verdict on each target, remembered unless the check itself failed.
    fn judge(&self, p: &Principal, act: Act, targets: &[Target], ask_every: bool) -> Vec<Verdict> {
        match self.try_decide_each(p, act, targets, ask_every) {
            Ok(verdicts) => {
                self.memo.remember(
                    p,
                    act,
                    targets.iter().cloned().zip(verdicts.iter().cloned()),
                );
                verdicts
            }
            Err(e) => {
                let reason = format!("the authorization check failed: {e}");
                tracing::error!(%reason, "authorization entities could not be built");
                vec![Verdict::Deny(reason); targets.len()]
            }
        }
    }

    /// Whether `p` may `act` on every resource, whatever it is (see
    /// [`Authz::allows_any_resource`]): a list for such a caller needs no per-item
    /// targets, so it need not read what they are built from. `false` when undecidable:
    /// then the list judges each item, which is never wrong.
    pub fn allows_every(&self, p: &Principal, act: Act) -> bool {
        let decided = self.user(p).and_then(|user| {
            let principal = uid("Verbund::User", &p.user_id)?;
            self.allows_any_resource(&user, &principal, act)
        });
        decided.unwrap_or_else(|e| {
            tracing::error!(reason = %e, "authorization entities could not be built");
            false
        })
    }

    fn try_decide_each(
        &self,
        p: &Principal,
        act: Act,
        targets: &[Target],
        ask_every: bool,
    ) -> Result<Vec<Verdict>, PolicyError> {
        let user = self.user(p)?;
        let principal = uid("Verbund::User", &p.user_id)?;
        let action = uid("Verbund::Action", act.name())?;
        if ask_every && self.allows_any_resource(&user, &principal, act)? {
            return Ok(vec![Verdict::Allow; targets.len()]);
        }
        let mut verdicts: Vec<Option<Verdict>> = vec![None; targets.len()];
        // Targets whose chains disagree on an organisation's parent (a chain cut short
        // beside a full one) cannot share one entity set: each pass takes those that
        // agree with the first, the rest wait for the next pass.
        let mut remaining: Vec<usize> = (0..targets.len()).collect();
        while !remaining.is_empty() {
            let mut parents: HashMap<&str, Option<&str>> = HashMap::new();
            let (pass, rest): (Vec<usize>, Vec<usize>) = remaining.into_iter().partition(|&i| {
                targets
                    .get(i)
                    .is_some_and(|t| add_chain(&mut parents, &t.organisation))
            });
            let mut entities = self.actions.clone();
            entities.push(user.clone());
            for (id, parent) in &parents {
                let parent: HashSet<EntityUid> =
                    parent.map(org_uid).transpose()?.into_iter().collect();
                entities.push(Entity::new_no_attrs(org_uid(id)?, parent));
            }
            let mut resources = Vec::with_capacity(pass.len());
            for &i in &pass {
                let resource = uid("Verbund::Resource", &format!("target-{i}"))?;
                if let Some(target) = targets.get(i) {
                    entities.push(resource_entity(resource.clone(), target)?);
                    resources.push((i, target, resource));
                }
            }
            let entities = Entities::from_entities(entities, None)
                .map_err(|e| PolicyError::Schema(e.to_string()))?;
            let policies = self.policies_for(act);
            for (i, target, resource) in resources {
                let request = Request::new(
                    principal.clone(),
                    action.clone(),
                    resource,
                    Context::empty(),
                    None,
                )
                .map_err(|e| PolicyError::Schema(e.to_string()))?;
                let response = self.authorizer.is_authorized(&request, policies, &entities);
                if let Some(slot) = verdicts.get_mut(i) {
                    *slot = Some(verdict(&response, act, target));
                }
            }
            remaining = rest;
        }
        Ok(verdicts
            .into_iter()
            .map(|v| v.unwrap_or_else(undecided))
            .collect())
    }

    /// Whether the policies allow the caller `act` on a resource left unknown: Cedar's
    /// partial evaluation decides `Allow` only when a permit holds and no forbid can,
    /// whatever the resource (a federation administrator reading, an auditor reading), and
    /// then every target of a page is allowed without judging each. Any other outcome
    /// (a forbid or permit that depends on the resource, or a denial whose reason must
    /// name the target) leaves the page to be judged item by item.
    fn allows_any_resource(
        &self,
        user: &Entity,
        principal: &EntityUid,
        act: Act,
    ) -> Result<bool, PolicyError> {
        let resource_type = EntityTypeName::from_str("Verbund::Resource")
            .map_err(|e| PolicyError::Schema(e.to_string()))?;
        let request = RequestBuilder::default()
            .principal(principal.clone())
            .action(uid("Verbund::Action", act.name())?)
            .unknown_resource_with_type(resource_type)
            .context(Context::empty())
            .build();
        let mut entities = self.actions.clone();
        entities.push(user.clone());
        let entities = Entities::from_entities(entities, None)
            .map_err(|e| PolicyError::Schema(e.to_string()))?;
        let response =
            self.authorizer
                .is_authorized_partial(&request, self.policies_for(act), &entities);
        Ok(response.decision() == Some(Decision::Allow))
    }
}

/// For each act, the policies of `all` whose action scope admits it: any action, the
/// act's action, or a group the schema's `actions` place it in.
fn policies_by_act(
    all: &PolicySet,
    actions: &[Entity],
) -> Result<Vec<(Act, PolicySet)>, PolicyError> {
    let groups = Entities::from_entities(actions.to_vec(), None)
        .map_err(|e| PolicyError::Schema(e.to_string()))?;
    Act::ALL
        .into_iter()
        .map(|act| {
            let action = uid("Verbund::Action", act.name())?;
            let mut admitted: HashSet<EntityUid> = groups
                .ancestors(&action)
                .into_iter()
                .flatten()
                .cloned()
                .collect();
            admitted.insert(action.clone());
            let mut set = PolicySet::new();
            for policy in all.policies() {
                let applies = match policy.action_constraint() {
                    ActionConstraint::Any => true,
                    ActionConstraint::Eq(a) => a == action,
                    ActionConstraint::In(list) => list.iter().any(|a| admitted.contains(a)),
                };
                if applies {
                    set.add(policy.clone())
                        .map_err(|e| PolicyError::Schema(e.to_string()))?;
                }
            }
            Ok((act, set))
        })
        .collect()
}

/// The verdict for a target the evaluation left without one: deny (never reached while
/// every pass judges at least its first target).
fn undecided() -> Verdict {
    Verdict::Deny("the authorization check decided nothing".into())
}

/// The target as a `Resource` entity with the attributes the rules look at, `in` its
/// organisation.
fn resource_entity(resource: EntityUid, target: &Target) -> Result<Entity, PolicyError> {
    let mut attrs = HashMap::from([(
        "kind".to_string(),
        RestrictedExpression::new_string(target.kind.to_string()),
    )]);
    let mut parents = HashSet::new();
    if let Some(first) = target.organisation.first() {
        attrs.insert(
            "organisation".into(),
            RestrictedExpression::new_entity_uid(org_uid(first)?),
        );
        parents.insert(org_uid(first)?);
    }
    if let Some(v) = &target.provider {
        attrs.insert(
            "provider".into(),
            RestrictedExpression::new_string(v.clone()),
        );
    }
    if let Some(v) = &target.vendor {
        attrs.insert(
            "vendor".into(),
            RestrictedExpression::new_entity_uid(org_uid(v)?),
        );
    }
    if let Some(v) = &target.owner {
        attrs.insert("owner".into(), RestrictedExpression::new_string(v.clone()));
    }
    if let Some(v) = &target.organisations {
        attrs.insert("organisations".into(), orgs(v.clone())?);
    }
    if let Some(v) = target.org_roles_only {
        attrs.insert("org_roles_only".into(), RestrictedExpression::new_bool(v));
    }
    if let Some(v) = &target.layer {
        attrs.insert("layer".into(), RestrictedExpression::new_string(v.clone()));
    }
    Entity::new(resource, attrs, parents).map_err(|e| PolicyError::Schema(e.to_string()))
}

/// Adds the organisations of `chain` (nearest first) to `parents`, each with the next as
/// its parent, so that `in` reaches the ancestors; organisations another chain added
/// already are shared. A chain that disagrees with one added before (another parent, or
/// none where there was one) adds nothing: false.
fn add_chain<'a>(parents: &mut HashMap<&'a str, Option<&'a str>>, chain: &'a [String]) -> bool {
    let links = chain.iter().map(String::as_str).zip(
        chain
            .iter()
            .skip(1)
            .map(|p| Some(p.as_str()))
            .chain(std::iter::once(None)),
    );
    let agrees = links
        .clone()
        .all(|(id, parent)| parents.get(id).is_none_or(|known| *known == parent));
    if agrees {
        parents.extend(links);
    }
    agrees
}

/// The verdict of Cedar's response, with the forbidding policies or the missing role as
/// its reason.
fn verdict(response: &cedar_policy::Response, act: Act, target: &Target) -> Verdict {
    match response.decision() {
        Decision::Allow => Verdict::Allow,
        Decision::Deny => {
            let errors: Vec<String> = response
                .diagnostics()
                .errors()
                .map(|e| e.to_string())
                .collect();
            if !errors.is_empty() {
                log_evaluation_errors(&errors);
            }
            let mut forbids: Vec<String> = response
                .diagnostics()
                .reason()
                .map(|r| r.to_string())
                .collect();
            // Cedar reports them from a hash set; the same request gives the same words.
            forbids.sort();
            Verdict::Deny(if forbids.is_empty() {
                format!(
                    "your roles do not allow to {} this {}",
                    act.name(),
                    target.kind
                )
            } else {
                format!("refused by {}", forbids.join(", "))
            })
        }
    }
}

/// Evaluation errors are programming errors (a rule reading an attribute a target lacks):
/// they deny, and are logged in every build so that an operator sees them.
fn log_evaluation_errors(errors: &[String]) {
    tracing::error!(errors = %errors.join("; "), "the authorization policies failed to evaluate");
}

#[cfg(test)]
mod tests {
    use super::*;
    use verbund_domain::account::Membership;

    fn principal(role: Role, org: Option<&str>, provider: Option<&str>) -> Principal {
        Principal {
            user_id: "u1".into(),
            user_name: "u".into(),
            memberships: vec![Membership {
                role,
                organisation: org.map(Into::into),
                provider: provider.map(Into::into),
                delegated: false,
            }],
        }
    }

    fn booking(chain: &[&str]) -> Target {
        Target::new("booking").in_organisation(chain.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn role_policies_compile() {
        Authz::new().unwrap();
    }

    #[test]
    fn federation_admins_may_do_everything() {
        let a = Authz::new().unwrap();
        let admin = principal(Role::FederationAdmin, None, None);
        for act in [Act::Read, Act::Write, Act::Delete, Act::Approve] {
            for kind in [
                "organisation",
                "provider",
                "site",
                "booking",
                "policy",
                "audit",
                "user",
                "token",
            ] {
                let t = Target::new(kind)
                    .in_organisation(vec!["x".into()])
                    .layer("federation");
                assert!(a.decide(&admin, act, &t).is_allowed(), "{act:?} {kind}");
            }
        }
    }

    #[test]
    fn org_admin_only_own_organisation() {
        let a = Authz::new().unwrap();
        let admin = principal(Role::OrgAdmin, Some("muc"), None);
        assert!(a
            .decide(&admin, Act::Write, &booking(&["muc", "by", "bund"]))
            .is_allowed());
        assert!(!a
            .decide(&admin, Act::Read, &booking(&["fl", "sh", "bund"]))
            .is_allowed());
        // Without delegation, not even a child organisation.
        assert!(!a
            .decide(&admin, Act::Read, &booking(&["child", "muc", "by"]))
            .is_allowed());
        let mut delegated = principal(Role::OrgAdmin, Some("muc"), None);
        delegated.memberships[0].delegated = true;
        assert!(a
            .decide(&delegated, Act::Write, &booking(&["child", "muc", "by"]))
            .is_allowed());
        assert!(!a
            .decide(&delegated, Act::Write, &booking(&["other", "by"]))
            .is_allowed());
    }

    #[test]
    fn metrics_are_read_by_the_federation_and_monitoring_only() {
        let a = Authz::new().unwrap();
        let metrics = Target::new("metrics");
        for role in [Role::FederationAdmin, Role::Auditor, Role::Monitoring] {
            let p = principal(role, None, None);
            assert!(a.decide(&p, Act::Read, &metrics).is_allowed(), "{role:?}");
        }
        for (role, org, provider) in [
            (Role::OrgAdmin, Some("x"), None),
            (Role::OrgMember, Some("x"), None),
            (Role::Vendor, Some("x"), None),
            (Role::ProviderOperator, None, Some("p")),
        ] {
            let p = principal(role, org, provider);
            assert!(!a.decide(&p, Act::Read, &metrics).is_allowed(), "{role:?}");
        }
        // Monitoring reads nothing of a tenant and writes nothing.
        let monitoring = principal(Role::Monitoring, None, None);
        for kind in ["booking", "audit", "user", "token", "policy", "placement"] {
            let t = Target::new(kind).in_organisation(vec!["x".into()]);
            assert!(!a.decide(&monitoring, Act::Read, &t).is_allowed(), "{kind}");
        }
        assert!(!a.decide(&monitoring, Act::Write, &metrics).is_allowed());
    }

    #[test]
    fn auditors_read_but_never_write() {
        let a = Authz::new().unwrap();
        let auditor = principal(Role::Auditor, None, None);
        assert!(a.decide(&auditor, Act::Read, &booking(&["x"])).is_allowed());
        assert!(a
            .decide(&auditor, Act::Read, &Target::new("audit"))
            .is_allowed());
        for kind in [
            "organisation",
            "provider",
            "site",
            "offering",
            "booking",
            "policy",
            "user",
            "token",
        ] {
            let t = Target::new(kind).in_organisation(vec!["x".into()]);
            assert!(!a.decide(&auditor, Act::Write, &t).is_allowed(), "{kind}");
        }
    }

    #[test]
    fn operators_and_vendors_are_scoped() {
        let a = Authz::new().unwrap();
        let op = principal(Role::ProviderOperator, None, Some("p1"));
        assert!(a
            .decide(&op, Act::Write, &Target::new("site").provider("p1"))
            .is_allowed());
        assert!(!a
            .decide(&op, Act::Write, &Target::new("site").provider("p2"))
            .is_allowed());
        assert!(a
            .decide(&op, Act::Read, &booking(&["x"]).provider("p1"))
            .is_allowed());
        assert!(!a
            .decide(&op, Act::Write, &booking(&["x"]).provider("p1"))
            .is_allowed());
        let v = principal(Role::Vendor, Some("v1"), None);
        assert!(a
            .decide(&v, Act::Write, &Target::new("offering").vendor("v1"))
            .is_allowed());
        assert!(!a
            .decide(&v, Act::Write, &Target::new("offering").vendor("v2"))
            .is_allowed());
        assert!(!a.decide(&v, Act::Read, &booking(&["v1"])).is_allowed());
    }

    #[test]
    fn a_sites_history_is_read_by_its_operators_and_oversight_only() {
        let a = Authz::new().unwrap();
        let history = |p: &str| Target::new("site-history").provider(p);
        let op = principal(Role::ProviderOperator, None, Some("p1"));
        assert!(a.decide(&op, Act::Read, &history("p1")).is_allowed());
        assert!(!a.decide(&op, Act::Read, &history("p2")).is_allowed());
        assert!(!a.decide(&op, Act::Write, &history("p1")).is_allowed());
        for who in [
            principal(Role::Auditor, None, None),
            principal(Role::FederationAdmin, None, None),
        ] {
            assert!(a.decide(&who, Act::Read, &history("p2")).is_allowed());
        }
        for who in [
            principal(Role::OrgAdmin, Some("o1"), None),
            principal(Role::OrgMember, Some("o1"), None),
            principal(Role::Vendor, Some("v1"), None),
        ] {
            assert!(!a.decide(&who, Act::Read, &history("p1")).is_allowed());
        }
    }

    #[test]
    fn placement_facts_are_stated_by_the_federation_and_approved_by_another_person() {
        let a = Authz::new().unwrap();
        let op = principal(Role::ProviderOperator, None, Some("p1"));
        let facts = Target::new("facts").provider("p1");
        assert!(!a.decide(&op, Act::Write, &facts).is_allowed());
        let mut admin = principal(Role::FederationAdmin, None, None);
        admin.user_id = "admin".into();
        assert!(a.decide(&admin, Act::Write, &facts).is_allowed());
        // The operator proposes for its own provider only, and decides nothing.
        let own = Target::new("fact-proposal").provider("p1").owner("u1");
        assert!(a.decide(&op, Act::Write, &own).is_allowed());
        assert!(a.decide(&op, Act::Read, &own).is_allowed());
        assert!(!a.decide(&op, Act::Approve, &own).is_allowed());
        assert!(!a.decide(&op, Act::Delete, &own).is_allowed());
        let other = Target::new("fact-proposal").provider("p2").owner("u9");
        assert!(!a.decide(&op, Act::Write, &other).is_allowed());
        assert!(!a.decide(&op, Act::Read, &other).is_allowed());
        // Four eyes: a federation admin approves others' proposals, never their own.
        assert!(a.decide(&admin, Act::Approve, &own).is_allowed());
        assert!(a.decide(&admin, Act::Delete, &own).is_allowed());
        let by_admin = Target::new("fact-proposal").provider("p1").owner("admin");
        assert!(!a.decide(&admin, Act::Approve, &by_admin).is_allowed());
    }

    #[test]
    fn federation_policies_only_for_federation_admins() {
        let a = Authz::new().unwrap();
        let admin = principal(Role::OrgAdmin, Some("by"), None);
        let land = Target::new("policy")
            .in_organisation(vec!["by".into()])
            .layer("land");
        assert!(a.decide(&admin, Act::Write, &land).is_allowed());
        let fed = Target::new("policy")
            .in_organisation(vec!["by".into()])
            .layer("federation");
        assert!(!a.decide(&admin, Act::Write, &fed).is_allowed());
    }

    #[test]
    fn passwords_are_set_by_their_owner_and_reset_by_administrators() {
        let a = Authz::new().unwrap();
        let account = |owner: &str, org: &str| {
            let mut t = Target::new("user").owner(owner);
            t.organisations = Some(vec![org.into()]);
            t.org_roles_only = Some(true);
            t
        };
        let admin = principal(Role::FederationAdmin, None, None);
        let org_admin = principal(Role::OrgAdmin, Some("hh"), None);
        let member = Principal {
            user_id: "member".into(),
            ..principal(Role::OrgMember, Some("hh"), None)
        };
        let clerk = account("member", "hh");
        // Nobody, not even a federation admin, sets another person's password.
        for p in [&admin, &org_admin] {
            assert!(!a.decide(p, Act::SetPassword, &clerk).is_allowed());
        }
        assert!(a.decide(&member, Act::SetPassword, &clerk).is_allowed());
        // Administrators reset, disable and revoke; the owner only revokes.
        for act in [Act::ResetPassword, Act::Disable, Act::Revoke] {
            assert!(a.decide(&admin, act, &clerk).is_allowed(), "{act:?}");
            assert!(a.decide(&org_admin, act, &clerk).is_allowed(), "{act:?}");
            assert!(
                !a.decide(&org_admin, act, &account("member", "sh"))
                    .is_allowed(),
                "{act:?}"
            );
        }
        assert!(a.decide(&member, Act::Revoke, &clerk).is_allowed());
        assert!(!a.decide(&member, Act::ResetPassword, &clerk).is_allowed());
        assert!(!a.decide(&member, Act::Disable, &clerk).is_allowed());
        // Nobody disables or resets their own account (no lock-out of oneself, no way
        // round the current password).
        let own = account(&admin.user_id, "hh");
        assert!(!a.decide(&admin, Act::Disable, &own).is_allowed());
        assert!(!a.decide(&admin, Act::ResetPassword, &own).is_allowed());
    }

    #[test]
    fn only_a_caller_whose_roles_reach_every_resource_skips_judging_each() {
        let a = Authz::new().unwrap();
        let reaches = |role, act| a.allows_every(&principal(role, Some("muc"), Some("p1")), act);
        assert!(reaches(Role::FederationAdmin, Act::Read));
        assert!(reaches(Role::Auditor, Act::Read));
        assert!(!reaches(Role::Auditor, Act::Write));
        assert!(!reaches(Role::OrgAdmin, Act::Read));
        assert!(!reaches(Role::ProviderOperator, Act::Read));
    }

    #[test]
    fn remembered_verdicts_are_the_callers_own_and_follow_a_moved_organisation() {
        let a = Authz::new().unwrap();
        let muc = principal(Role::OrgAdmin, Some("muc"), None);
        let mut by = principal(Role::OrgAdmin, Some("by"), None);
        by.user_id = "u2".into();
        by.memberships[0].delegated = true;
        let mut fl = principal(Role::OrgAdmin, Some("fl"), None);
        fl.user_id = "u3".into();
        let in_bayern = booking(&["muc", "by", "bund"]);
        assert!(a.decide(&muc, Act::Read, &in_bayern).is_allowed());
        assert!(a.decide(&by, Act::Read, &in_bayern).is_allowed());
        // Another caller, the same target: not the remembered verdict.
        assert!(!a.decide(&fl, Act::Read, &in_bayern).is_allowed());
        // The same caller, another act: Bayern's admin may read, not approve.
        assert!(!a.decide(&by, Act::Approve, &in_bayern).is_allowed());
        // The organisation moved to another Land: its chain is another target.
        let moved = booking(&["muc", "sh", "bund"]);
        assert!(
            !a.decide_each(&by, Act::Read, &[in_bayern.clone(), moved.clone()])[1].is_allowed()
        );
        assert!(a.decide(&muc, Act::Read, &moved).is_allowed());
        // A caller whose delegation was taken back is another caller.
        by.memberships[0].delegated = false;
        assert!(!a.decide(&by, Act::Read, &in_bayern).is_allowed());
    }

    #[test]
    fn the_memo_forgets_everything_when_full() {
        let a = Authz {
            memo: memo::Memo::new(10),
            ..Authz::new().unwrap()
        };
        let by = principal(Role::OrgAdmin, Some("by"), None);
        let page = |from: usize| -> Vec<Target> {
            (from..from + 6)
                .map(|g| booking(&[&format!("g{g}"), "by", "bund"]))
                .collect()
        };
        let _ = a.judge_each(&by, Act::Read, &page(0));
        assert_eq!(a.memo.len(), 6);
        let _ = a.judge_each(&by, Act::Read, &page(0));
        assert_eq!(a.memo.len(), 6, "remembered verdicts are not taken again");
        let _ = a.judge_each(&by, Act::Read, &page(3));
        assert_eq!(a.memo.len(), 9);
        let _ = a.judge_each(&by, Act::Read, &page(20));
        assert_eq!(
            a.memo.len(),
            6,
            "full: forgotten, then the new page remembered"
        );
        let none = Authz {
            memo: memo::Memo::new(0),
            ..Authz::new().unwrap()
        };
        let _ = none.judge_each(&by, Act::Read, &page(0));
        assert_eq!(none.memo.len(), 0);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(1024))]
        /// A page judged at once gets, for each target, the verdict (and its reason) a
        /// single decision gives, whatever the caller, the organisations' chains (shared
        /// or not) and the targets' other attributes; and the policies of the act decide
        /// as all policies would.
        #[test]
        fn a_page_is_judged_as_each_of_its_items_alone(
            role in proptest::sample::select(vec![
                Role::FederationAdmin, Role::OrgAdmin, Role::OrgAdmin, Role::OrgMember,
                Role::Vendor, Role::ProviderOperator, Role::Auditor, Role::Monitoring,
            ]),
            delegated in proptest::bool::ANY,
            organisation in proptest::sample::select(vec!["muc", "by", "bund"]),
            act in proptest::sample::select(Act::ALL.to_vec()),
            targets in proptest::collection::vec(
                (
                    proptest::sample::select(vec!["booking", "booking", "user", "fact-proposal"]),
                    proptest::sample::select(vec![
                        vec![], vec!["muc", "by", "bund"], vec!["by", "bund"],
                        vec!["fl", "sh", "bund"], vec!["child", "muc", "by", "bund"],
                        // Chains cut short or disagreeing with the others.
                        vec!["muc"], vec!["muc", "sh", "bund"], vec!["by"],
                    ]),
                    proptest::option::of(proptest::sample::select(vec!["p1", "p2"])),
                    proptest::option::of(proptest::sample::select(vec!["muc", "vendor-a"])),
                ),
                0..12,
            ),
        ) {
            let a = Authz::new().unwrap();
            let mut p = principal(role, Some(organisation), Some("p1"));
            p.memberships[0].delegated = delegated;
            let targets: Vec<Target> = targets
                .into_iter()
                .map(|(kind, chain, provider, vendor)| {
                    let mut t = Target::new(kind)
                        .in_organisation(chain.iter().map(|s| s.to_string()).collect());
                    if let Some(provider) = provider {
                        t = t.provider(provider);
                    }
                    if let Some(vendor) = vendor {
                        t = t.vendor(vendor);
                    }
                    t
                })
                .collect();
            // Each target alone, by an `Authz` that remembers nothing.
            let fresh = Authz { memo: memo::Memo::new(0), ..Authz::new().unwrap() };
            let alone: Vec<Verdict> = targets.iter().map(|t| fresh.decide(&p, act, t)).collect();
            // A list that skips judging for a caller allowed every resource keeps what
            // judging each would have kept.
            if a.allows_every(&p, act) {
                proptest::prop_assert!(alone.iter().all(Verdict::is_allowed));
            }
            // Judged at once, then from the memo (whole, and item by item).
            proptest::prop_assert_eq!(a.judge_each(&p, act, &targets), alone.clone());
            proptest::prop_assert_eq!(a.decide_each(&p, act, &targets), alone.clone());
            let remembered: Vec<Verdict> = targets.iter().map(|t| a.decide(&p, act, t)).collect();
            proptest::prop_assert_eq!(remembered, alone.clone());
            // Half remembered, half new, for another caller.
            let mut other = p.clone();
            other.user_id = "u2".into();
            let half = targets.len() / 2;
            let _ = a.decide_each(&other, act, &targets[..half]);
            proptest::prop_assert_eq!(a.decide_each(&other, act, &targets), alone.clone());
            // Judged by all role policies instead of those of the act, nothing changes.
            let unsliced = Authz {
                policies_by_act: Vec::new(),
                memo: memo::Memo::new(0),
                ..Authz::new().unwrap()
            };
            proptest::prop_assert_eq!(unsliced.decide_each(&p, act, &targets), alone);
        }
    }
}
