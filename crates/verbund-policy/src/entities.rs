//! Translation of domain records into Cedar entities.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::str::FromStr;

use cedar_policy::{Entity, EntityId, EntityTypeName, EntityUid, RestrictedExpression};
use chrono::NaiveDate;
use verbund_domain::directory::{is_eu, Organisation, ProviderSpec, SiteSpec};

use crate::PolicyError;

pub(crate) fn uid(kind: &str, id: &str) -> Result<EntityUid, PolicyError> {
    let t = EntityTypeName::from_str(kind)
        .map_err(|e| PolicyError::Schema(format!("entity type `{kind}`: {e}")))?;
    Ok(EntityUid::from_type_name_and_id(t, EntityId::new(id)))
}

pub(crate) fn org_uid(id: &str) -> Result<EntityUid, PolicyError> {
    uid("Verbund::Organisation", id)
}

pub(crate) fn site_uid(name: &str) -> Result<EntityUid, PolicyError> {
    uid("Verbund::Site", name)
}

fn s(v: &str) -> RestrictedExpression {
    RestrictedExpression::new_string(v.to_string())
}

fn set<'a>(items: impl IntoIterator<Item = &'a str>) -> RestrictedExpression {
    RestrictedExpression::new_set(items.into_iter().map(s))
}

fn entity(
    uid: EntityUid,
    attrs: HashMap<String, RestrictedExpression>,
    parents: HashSet<EntityUid>,
) -> Result<Entity, PolicyError> {
    Entity::new(uid, attrs, parents).map_err(|e| PolicyError::Schema(e.to_string()))
}

pub(crate) fn organisation(o: &Organisation) -> Result<Entity, PolicyError> {
    let mut attrs = HashMap::from([
        ("level".to_string(), s(o.level.as_str())),
        ("name".to_string(), s(&o.name)),
    ]);
    if let Some(l) = &o.land {
        attrs.insert("land".into(), s(l));
    }
    if let Some(k) = o.ags.as_ref().or(o.ars.as_ref()) {
        attrs.insert("key".into(), s(k));
    }
    let parents = o
        .parent
        .iter()
        .map(|p| org_uid(p))
        .collect::<Result<_, _>>()?;
    entity(org_uid(&o.id)?, attrs, parents)
}

/// Certifications valid on `day`, as `scheme` and `scheme:level`.
pub fn valid_certifications(site: &SiteSpec, day: NaiveDate) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for c in site.certifications.iter().filter(|c| c.is_valid_on(day)) {
        out.insert(c.scheme.clone());
        if let Some(l) = &c.level {
            out.insert(format!("{}:{l}", c.scheme));
        }
    }
    out
}

pub(crate) fn site(
    site: &SiteSpec,
    provider: &ProviderSpec,
    day: NaiveDate,
) -> Result<Entity, PolicyError> {
    let certs = valid_certifications(site, day);
    let label = verbund_domain::label::label(site, provider, day);
    let attrs = HashMap::from([
        ("provider".to_string(), s(&site.provider)),
        ("country".to_string(), s(&site.location.country)),
        ("region".to_string(), s(&site.location.region)),
        ("city".to_string(), s(&site.location.city)),
        (
            "eu".to_string(),
            RestrictedExpression::new_bool(is_eu(&site.location.country)),
        ),
        (
            "certifications".to_string(),
            set(certs.iter().map(String::as_str)),
        ),
        (
            "capabilities".to_string(),
            set(site.capabilities.iter().map(String::as_str)),
        ),
        (
            "kubernetes_minor".to_string(),
            RestrictedExpression::new_long(i64::from(site.kubernetes_minor().unwrap_or(0))),
        ),
        (
            "public_law".to_string(),
            RestrictedExpression::new_bool(provider.public_law),
        ),
        (
            "non_eu_exposure".to_string(),
            RestrictedExpression::new_bool(provider.non_eu_exposure()),
        ),
        (
            "jurisdictions".to_string(),
            set(provider.all_jurisdictions()),
        ),
        (
            "gaiax_level".to_string(),
            RestrictedExpression::new_long(i64::from(label.level)),
        ),
        (
            "gaiax_criteria".to_string(),
            set(label.met.iter().map(|c| c.as_str())),
        ),
    ]);
    entity(site_uid(&site.name)?, attrs, HashSet::new())
}
