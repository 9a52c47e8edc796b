//! The tenant list of a shared instance (see `verbund_domain::shared`): its tenancies
//! rendered into the instance's namespace as ConfigMaps, so that the application learns
//! its tenants the way Kubernetes hands any configuration to a pod.
//!
//! Each ConfigMap `verbund-tenants-<nnn>` holds one key per tenancy, `<booking id>.json`,
//! whose value is `{"booking", "organisation" (ARS, else AGS, else id), "name",
//! "config"}`: mounted as a volume, every tenant is one file. The tenancies go in booking
//! id order (ids grow with time, so a new tenant changes only the last ConfigMap) into
//! ConfigMaps of at most [`LIST_BUDGET`] bytes of data each (as a client-side apply's
//! annotation escapes them). A tenant who leaves may shift those after it.
//!
//! Why that budget: a ConfigMap may hold 1 MiB, but a client-side apply (Argo CD's
//! default) copies the object into the `last-applied-configuration` annotation, and all
//! annotations of an object together may hold only 256 KiB. 200,000 bytes leave room
//! for the rest of the object in both. A tenant's configuration is bounded
//! (`verbund_domain::shared::TENANT_CONFIG_MAX`), so one tenancy always fits.
//!
//! A Helm chart reads the names from its values (`verbund.tenants.configMaps`); plain
//! manifests mount the ConfigMaps by their label
//! `verbund.dev/tenant-list`.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::tenant::Tenant;
use crate::PlacedBooking;

/// Most bytes of data in one ConfigMap of a tenant list.
pub const LIST_BUDGET: usize = 200_000;

/// The label every ConfigMap of a tenant list carries, valued with the offering's name.
pub const LIST_LABEL: &str = "verbund.dev/tenant-list";

/// The name of the `index`th ConfigMap of a tenant list.
pub fn list_name(index: usize) -> String {
    format!("verbund-tenants-{index:03}")
}

/// How many bytes `text` takes as a JSON string in an annotation written by Go's
/// encoder (a client-side apply's `last-applied-configuration`): quoted and escaped,
/// `<`, `>` and `&` as `\u003c` and its kind. What the budget counts, so that a list
/// of tenants whose configurations are full of quotes fits as well.
fn annotated_len(text: &str) -> usize {
    let escaped = serde_json::to_string(text).map_or(text.len() * 6, |s| s.len());
    escaped
        + 5 * text
            .chars()
            .filter(|c| matches!(c, '<' | '>' | '&'))
            .count()
}

/// One tenancy's entry: its file name and content.
fn entry(p: &PlacedBooking<'_>) -> Result<(String, String)> {
    let content = serde_json::to_string(&json!({
        "booking": p.booking.id,
        "organisation": crate::tenant::organisation_key(p.organisation),
        "name": p.organisation.name,
        "config": p.booking.config,
    }))
    .map_err(|e| Error::Invalid {
        field: "/config".into(),
        message: e.to_string(),
    })?;
    Ok((format!("{}.json", p.booking.id), content))
}

/// The tenancies' entries cut into lists of at most [`LIST_BUDGET`] bytes, in booking
/// id order; none for an instance without tenants.
fn lists(tenancies: &[&PlacedBooking<'_>]) -> Result<Vec<BTreeMap<String, String>>> {
    let mut sorted: Vec<&PlacedBooking<'_>> = tenancies.to_vec();
    sorted.sort_by(|a, b| a.booking.id.cmp(&b.booking.id));
    let mut out: Vec<BTreeMap<String, String>> = Vec::new();
    let mut size = 0;
    for p in sorted {
        let (key, content) = entry(p)?;
        let bytes = key.len() + annotated_len(&content);
        if bytes > LIST_BUDGET {
            return Err(Error::Invalid {
                field: "/config".into(),
                message: format!(
                    "the configuration of tenancy {} takes {bytes} bytes, more than one \
                     ConfigMap of its instance's tenant list holds ({LIST_BUDGET})",
                    p.booking.id
                ),
            });
        }
        match out.last_mut() {
            Some(list) if size + bytes <= LIST_BUDGET => {
                list.insert(key, content);
                size += bytes;
            }
            _ => {
                out.push(BTreeMap::from([(key, content)]));
                size = bytes;
            }
        }
    }
    Ok(out)
}

/// The ConfigMaps of a shared instance's tenant list; none for a dedicated offering.
pub(crate) fn config_maps(t: &Tenant<'_>) -> Result<Vec<ConfigMap>> {
    if t.placed.offering.tenancy.is_dedicated() {
        return Ok(Vec::new());
    }
    Ok(lists(&t.tenancies)?
        .into_iter()
        .enumerate()
        .map(|(i, data)| {
            let mut meta = t.meta(&list_name(i));
            meta.labels
                .get_or_insert_with(Default::default)
                .insert(LIST_LABEL.into(), t.placed.offering.name.clone());
            ConfigMap {
                metadata: meta,
                data: Some(data),
                ..ConfigMap::default()
            }
        })
        .collect())
}

/// What a chart learns of its tenants (`verbund.tenants`): the ConfigMaps' names;
/// `None` for a dedicated offering. Not their number: the values change (and the release
/// is upgraded) only when a ConfigMap is added or goes, not with every tenant.
pub(crate) fn values(t: &Tenant<'_>) -> Result<Option<Value>> {
    if t.placed.offering.tenancy.is_dedicated() {
        return Ok(None);
    }
    let names: Vec<String> = (0..lists(&t.tenancies)?.len()).map(list_name).collect();
    Ok(Some(json!({"configMaps": names})))
}
