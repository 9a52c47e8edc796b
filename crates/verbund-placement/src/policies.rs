//! Policy documents in the store: the shipped federation defaults, and submissions by
//! Länder and organisations, checked before they are stored.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use verbund_domain::directory::Level;
use verbund_domain::Invalid;
use verbund_policy::{PolicyBook, PolicyDocument, PolicyLayer};
use verbund_store::{PolicyRecord, Store, StoredPolicy};

use crate::service::BookingError;

/// A policy document as a client submits it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicySubmission {
    /// Name within its owner (DNS-1123 label), e.g. `daten-in-bayern`.
    #[schema(schema_with = verbund_domain::name::name_schema)]
    pub name: String,
    /// `federation`, `land` or `organisation`.
    pub layer: PolicyLayer,
    /// The issuing organisation's id; a Land for `land`, none for `federation`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Cedar source.
    pub text: String,
}

impl PolicySubmission {
    /// Whether a document of `layer` has an owner: every one but the federation's.
    pub fn has_owner(layer: PolicyLayer) -> bool {
        layer != PolicyLayer::Federation
    }

    /// The rule between `layer` and `owner` as JSON Schema (`oneOf` by layer); `submit`
    /// decides by the same [`PolicySubmission::has_owner`].
    pub fn owner_rule_schema() -> serde_json::Value {
        verbund_domain::name::presence_rule(
            "layer",
            "owner",
            [
                PolicyLayer::Federation,
                PolicyLayer::Land,
                PolicyLayer::Organisation,
            ]
            .map(|l| (l.as_str(), Self::has_owner(l))),
        )
    }
}

/// The stable id of a document: `federation:<name>` or `<owner>:<name>`.
pub fn document_id(owner: Option<&str>, name: &str) -> String {
    format!("{}:{name}", owner.unwrap_or("federation"))
}

pub(crate) fn to_document(p: &StoredPolicy) -> Result<PolicyDocument, BookingError> {
    let layer = match p.record.layer.as_str() {
        "federation" => PolicyLayer::Federation,
        "land" => PolicyLayer::Land,
        "organisation" => PolicyLayer::Organisation,
        other => {
            return Err(BookingError::Internal(format!(
                "stored policy `{}` has the unknown layer `{other}`",
                p.record.id
            )))
        }
    };
    Ok(PolicyDocument {
        name: p.record.name.clone(),
        layer,
        owner: p.record.owner.clone(),
        text: p.record.text.clone(),
    })
}

/// Compiles every document in force.
pub(crate) async fn load_book(store: &Store) -> Result<PolicyBook, BookingError> {
    let docs = store
        .policies_in_force()
        .await?
        .iter()
        .map(to_document)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(PolicyBook::new(&docs)?)
}

/// Checks a submission against the layer rules and the schema, then stores it as a new
/// version. Nothing is stored when any check fails.
pub(crate) async fn submit(
    store: &Store,
    actor: &str,
    sub: &PolicySubmission,
    now: DateTime<Utc>,
) -> Result<StoredPolicy, BookingError> {
    verbund_domain::name::check_name("/name", &sub.name)?;
    match (sub.layer, &sub.owner) {
        (layer, Some(_)) if !PolicySubmission::has_owner(layer) => {
            return Err(Invalid::new("/owner", "federation policies have no owner").into())
        }
        (layer, None) if !PolicySubmission::has_owner(layer) => {}
        (layer, None) => {
            return Err(Invalid::new(
                "/owner",
                format!(
                    "{} policies need the owning organisation's id",
                    layer.as_str()
                ),
            )
            .into())
        }
        (layer, Some(owner)) => {
            let org = store.get_organisation(owner).await.map_err(|e| match e {
                verbund_store::StoreError::NotFound { .. } => BookingError::Invalid(
                    Invalid::unknown("/owner", format!("unknown organisation `{owner}`")),
                ),
                other => other.into(),
            })?;
            if layer == PolicyLayer::Land && org.level != Level::Land {
                return Err(Invalid::meaning(
                    "/owner",
                    format!(
                        "`{}` is not a Land; Land policies belong to a Land",
                        org.name
                    ),
                )
                .into());
            }
        }
    }
    let doc = PolicyDocument {
        name: sub.name.clone(),
        layer: sub.layer,
        owner: sub.owner.clone(),
        text: sub.text.clone(),
    };
    // Check the document alone (layer rules, schema) and together with all in force.
    verbund_policy::PolicyBook::new(std::slice::from_ref(&doc))
        .map_err(|e| Invalid::meaning("/text", e.to_string()))?;
    let record = PolicyRecord {
        id: document_id(sub.owner.as_deref(), &sub.name),
        name: sub.name.clone(),
        layer: sub.layer.as_str().to_string(),
        owner: sub.owner.clone(),
        text: sub.text.clone(),
    };
    Ok(store.put_policy(actor, &record, now).await?)
}

/// Stores the shipped federation policies on first start, so that they are versioned
/// and audited like every other policy.
pub async fn ensure_default_policies(
    store: &Store,
    now: DateTime<Utc>,
) -> Result<(), BookingError> {
    for doc in PolicyBook::defaults()? {
        // Only documents that never existed: a deliberately deleted default stays deleted.
        if store.policy(&document_id(None, &doc.name)).await?.is_some() {
            continue;
        }
        let sub = PolicySubmission {
            name: doc.name,
            layer: doc.layer,
            owner: None,
            text: doc.text,
        };
        submit(store, "system/bootstrap", &sub, now).await?;
    }
    Ok(())
}
