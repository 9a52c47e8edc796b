//! Policy documents, their layers, and the compiled book of all policies in force.

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;

use cedar_policy::{Effect, Policy, PolicyId, PolicySet, ValidationMode, Validator};
use serde::{Deserialize, Serialize};

use crate::schema;

/// Who issued a policy document, which decides what it may say.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum PolicyLayer {
    /// The federation's own rules; the only layer that may `permit`.
    Federation,
    /// A Land's restrictions for all organisations within it.
    Land,
    /// An organisation's own restrictions (and those of its descendants).
    Organisation,
}

impl PolicyLayer {
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyLayer::Federation => "federation",
            PolicyLayer::Land => "land",
            PolicyLayer::Organisation => "organisation",
        }
    }
}

/// A named document of Cedar policies, as stored and versioned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyDocument {
    /// Unique name within its owner, e.g. `sovereignty` or `daten-in-bayern`.
    pub name: String,
    pub layer: PolicyLayer,
    /// The issuing organisation's id (a Land for `land`); none for the federation.
    pub owner: Option<String>,
    /// Cedar source text.
    pub text: String,
}

impl PolicyDocument {
    /// Prefix of the ids of this document's policies.
    fn id_prefix(&self) -> String {
        match &self.owner {
            Some(o) => format!("{}/{o}/{}", self.layer.as_str(), self.name),
            None => format!("{}/{}", self.layer.as_str(), self.name),
        }
    }
}

/// Where a policy came from and what it says, for explanations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyInfo {
    /// Unique id: the document's layer, owner and name, then the policy's `@id`.
    pub id: String,
    pub layer: PolicyLayer,
    pub owner: Option<String>,
    pub document: String,
    /// The policy's `@description`, or its source when it has none.
    pub description: String,
    pub effect: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// The built-in schema does not parse (a bug in verbund).
    #[error("the policy schema is invalid: {0}")]
    Schema(String),
    /// The document is not valid Cedar.
    #[error("policy document `{document}` does not parse: {message}")]
    Parse { document: String, message: String },
    /// A Land or organisation document tried to `permit`.
    #[error("policy `{policy}` in `{document}` is a `permit`; {layer} policies may only `forbid`, so that they can tighten but never loosen the federation's rules")]
    PermitNotAllowed {
        document: String,
        policy: String,
        layer: &'static str,
    },
    /// The document uses templates, which verbund does not support.
    #[error("policy document `{0}` contains a template; write concrete policies")]
    Template(String),
    /// The document does not fit the schema (unknown attribute, wrong type, …).
    #[error("policy document `{document}` does not fit the schema: {message}")]
    Invalid { document: String, message: String },
    /// The document is empty.
    #[error("policy document `{0}` contains no policy")]
    Empty(String),
    /// A document needs an owner exactly when it is not a federation document.
    #[error("{0}")]
    Owner(String),
}

/// Parses and checks one document; returns its policies with verbund ids.
pub fn compile(doc: &PolicyDocument) -> Result<Vec<(Policy, PolicyInfo)>, PolicyError> {
    match (doc.layer, &doc.owner) {
        (PolicyLayer::Federation, Some(_)) => {
            return Err(PolicyError::Owner(
                "federation policies have no owner".into(),
            ))
        }
        (PolicyLayer::Land | PolicyLayer::Organisation, None) => {
            return Err(PolicyError::Owner(format!(
                "{} policies need an owning organisation",
                doc.layer.as_str()
            )))
        }
        _ => {}
    }
    let parsed = PolicySet::from_str(&doc.text).map_err(|e| PolicyError::Parse {
        document: doc.name.clone(),
        message: format!("{e}"),
    })?;
    if parsed.templates().next().is_some() {
        return Err(PolicyError::Template(doc.name.clone()));
    }
    let prefix = doc.id_prefix();
    let mut out = Vec::new();
    let mut set = PolicySet::new();
    let mut seen = std::collections::HashSet::new();
    // Keep source order: the parser numbers policies `policy0`, `policy1`, … in order,
    // but set iteration order is not guaranteed.
    let mut policies: Vec<&Policy> = parsed.policies().collect();
    policies.sort_by_key(|p| {
        p.id()
            .to_string()
            .trim_start_matches("policy")
            .parse::<usize>()
            .unwrap_or(usize::MAX)
    });
    for (n, p) in policies.into_iter().enumerate() {
        let local = p
            .annotation("id")
            .map(str::to_string)
            .unwrap_or_else(|| format!("policy{n}"));
        if !seen.insert(local.clone()) {
            return Err(PolicyError::Parse {
                document: doc.name.clone(),
                message: format!("two policies have the id `{local}`"),
            });
        }
        let id = format!("{prefix}/{local}");
        if doc.layer != PolicyLayer::Federation && p.effect() == Effect::Permit {
            return Err(PolicyError::PermitNotAllowed {
                document: doc.name.clone(),
                policy: local,
                layer: doc.layer.as_str(),
            });
        }
        let policy = p.new_id(PolicyId::new(id.clone()));
        let description = p
            .annotation("description")
            .map(str::to_string)
            .unwrap_or_else(|| p.to_string());
        let info = PolicyInfo {
            id,
            layer: doc.layer,
            owner: doc.owner.clone(),
            document: doc.name.clone(),
            description,
            effect: match p.effect() {
                Effect::Permit => "permit".into(),
                Effect::Forbid => "forbid".into(),
            },
        };
        set.add(policy.clone()).map_err(|e| PolicyError::Parse {
            document: doc.name.clone(),
            message: e.to_string(),
        })?;
        out.push((policy, info));
    }
    if out.is_empty() {
        return Err(PolicyError::Empty(doc.name.clone()));
    }
    let result = Validator::new(schema()?.clone()).validate(&set, ValidationMode::Strict);
    if !result.validation_passed() {
        let message = result
            .validation_errors()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("; ");
        return Err(PolicyError::Invalid {
            document: doc.name.clone(),
            message,
        });
    }
    Ok(out)
}

/// Every policy in force, ready to assemble the set that applies to an organisation.
#[derive(Debug, Clone, Default)]
pub struct PolicyBook {
    federation: Vec<Policy>,
    /// Policies by owning organisation id.
    by_owner: HashMap<String, Vec<Policy>>,
    info: BTreeMap<String, PolicyInfo>,
}

impl PolicyBook {
    /// Compiles all documents; the first bad one fails the whole book.
    pub fn new(docs: &[PolicyDocument]) -> Result<Self, PolicyError> {
        let mut book = PolicyBook::default();
        for doc in docs {
            for (policy, info) in compile(doc)? {
                match &doc.owner {
                    None => book.federation.push(policy),
                    Some(o) => book.by_owner.entry(o.clone()).or_default().push(policy),
                }
                book.info.insert(info.id.clone(), info);
            }
        }
        Ok(book)
    }

    /// The shipped federation defaults.
    pub fn defaults() -> Result<Vec<PolicyDocument>, PolicyError> {
        Ok(crate::DEFAULT_FEDERATION_POLICIES
            .iter()
            .map(|(name, text)| PolicyDocument {
                name: (*name).to_string(),
                layer: PolicyLayer::Federation,
                owner: None,
                text: (*text).to_string(),
            })
            .collect())
    }

    pub fn info(&self, id: &str) -> Option<&PolicyInfo> {
        self.info.get(id)
    }

    /// Every policy in force, by id.
    pub fn all(&self) -> impl Iterator<Item = &PolicyInfo> {
        self.info.values()
    }

    /// The owners in `chain` (an organisation and its ancestors) that have policies.
    pub(crate) fn owners_in<'a>(&self, chain: &'a [String]) -> Vec<&'a str> {
        chain
            .iter()
            .filter(|o| self.by_owner.contains_key(o.as_str()))
            .map(String::as_str)
            .collect()
    }

    /// The policy set that applies to an organisation whose chain has these owners.
    pub(crate) fn set_for(&self, owners: &[&str]) -> PolicySet {
        let mut set = PolicySet::new();
        let extra = owners
            .iter()
            .filter_map(|o| self.by_owner.get(*o))
            .flatten();
        for p in self.federation.iter().chain(extra) {
            // Ids are unique by construction (layer/owner/document/id).
            let _ = set.add(p.clone());
        }
        set
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(layer: PolicyLayer, owner: Option<&str>, text: &str) -> PolicyDocument {
        PolicyDocument {
            name: "t".into(),
            layer,
            owner: owner.map(Into::into),
            text: text.into(),
        }
    }

    #[test]
    fn shipped_defaults_compile() {
        let book = PolicyBook::new(&PolicyBook::defaults().unwrap()).unwrap();
        assert!(book
            .info("federation/sovereignty/federation.baseline")
            .is_some());
    }

    #[test]
    fn land_may_not_permit() {
        let d = doc(
            PolicyLayer::Land,
            Some("by"),
            r#"permit (principal, action == Verbund::Action::"place", resource);"#,
        );
        assert!(matches!(
            compile(&d),
            Err(PolicyError::PermitNotAllowed { .. })
        ));
    }

    #[test]
    fn land_may_forbid() {
        let d = doc(
            PolicyLayer::Land,
            Some("by"),
            r#"@id("nur-bayern") forbid (principal, action == Verbund::Action::"place", resource) when { resource.region != "DE-BY" };"#,
        );
        let out = compile(&d).unwrap();
        assert_eq!(out[0].1.id, "land/by/t/nur-bayern");
    }

    #[test]
    fn unknown_attribute_is_refused() {
        let d = doc(
            PolicyLayer::Organisation,
            Some("o"),
            r#"forbid (principal, action == Verbund::Action::"place", resource) when { resource.colour == "red" };"#,
        );
        assert!(matches!(compile(&d), Err(PolicyError::Invalid { .. })));
    }

    #[test]
    fn garbage_is_refused() {
        let d = doc(PolicyLayer::Federation, None, "permit everything please");
        assert!(matches!(compile(&d), Err(PolicyError::Parse { .. })));
    }
}
