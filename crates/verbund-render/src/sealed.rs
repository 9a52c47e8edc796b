//! A booking's declared secrets (see [`verbund_domain::secrets`]), delivered sealed:
//! the Secret `secrets.yaml` in its folder, a SOPS document that only its site's age
//! identity opens.
//!
//! The renderer never encrypts (sealing is randomised, and the renderer is a pure
//! function) and never sees a secret's value. The caller seals, outside the render:
//!
//! 1. [`secret_document`] builds the plaintext Secret from the booking and its
//!    declared-secret values (deterministic, like everything here);
//! 2. the caller seals it for the site's recipient (`verbund_seal::seal`) — or hands
//!    out what it sealed before for the same document and recipient — and passes it in
//!    as [`SealedSecrets`] by booking id ([`Sealed`]) to [`crate::render_sealed`] or
//!    [`crate::render_folders_sealed`];
//! 3. the renderer checks it against what it would build (the same Secret, the same
//!    keys, sealed for the site's recipient; else the booking is refused as stale) and
//!    writes it as it is.
//!
//! The Secret is named by [`verbund_domain::catalog::config_secret_name`]: plain
//! manifests read `<config_map>-secrets` (one key per value, in the configuration
//! ConfigMap's environment-variable form) beside their ConfigMap; a chart gets
//! `verbund-config-secrets`, whose key `values.yaml` (the secret values as a JSON
//! document) Flux merges into the release's values (`valuesFrom`) and the agent into the
//! chart's values before `helm template`. The declared-secret paths are taken out of
//! `spec.values` (which would win over `valuesFrom`).
//!
//! Who opens it: on Flux sites kustomize-controller, as the shard Kustomizations carry
//! `decryption` with the Secret [`AGE_SECRET`] in Flux's namespace (the site's age
//! identity, key `identity.agekey`, created once by the operator), so the key never sits
//! in a tenant's namespace; on agent sites the agent, with its identity file. Argo CD
//! opens no SOPS document: bookings with declared secrets are not placed there, and the
//! renderer refuses them.

use std::collections::{BTreeMap, BTreeSet};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Map, Value};
use verbund_domain::catalog::{config_secret_name, Package};
use verbund_domain::directory::SiteSpec;
use verbund_domain::secrets::{declares_secrets, merge_secrets, SecretValues};

use crate::error::{Error, Result};
use crate::input::PlacedBooking;
use crate::tenant::Tenant;
use crate::yaml::canonical;

fn base64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// The Secret in Flux's namespace that holds a site's age identity (key
/// `identity.agekey`), named by every shard's `decryption`.
pub const AGE_SECRET: &str = "verbund-sops-age";
/// The key of a chart's secret values in its Secret.
pub const VALUES_KEY: &str = "values.yaml";

/// A booking's declared secrets, sealed for its site by the caller.
#[derive(Debug, Clone, PartialEq)]
pub struct SealedSecrets {
    /// The JSON pointers (into its configuration) of the values it carries; empty when
    /// the booking sets none of the secrets its offering declares.
    pub pointers: BTreeSet<String>,
    /// The recipient it is sealed for.
    pub recipient: String,
    /// The sealed [`secret_document`]; `None` when `pointers` is empty.
    pub document: Option<Value>,
}

/// Sealed secrets by booking id.
pub type Sealed = BTreeMap<String, SealedSecrets>;

/// The plaintext Secret that carries `values` (declared-secret values by pointer) to the
/// booking's package, or `None` when there are none. What the caller seals.
pub fn secret_document(p: &PlacedBooking<'_>, values: &SecretValues) -> Result<Option<Value>> {
    if values.is_empty() {
        return Ok(None);
    }
    let tenant = Tenant::new(p, crate::booking_namespace(p));
    build(&tenant, values).map(Some)
}

fn build(tenant: &Tenant<'_>, values: &SecretValues) -> Result<Value> {
    let booking = &tenant.placed.booking.id;
    let package = &tenant.placed.version.package;
    let name = config_secret_name(package).ok_or_else(|| Error::Package {
        booking: booking.clone(),
        field: "/package/config_map".into(),
        message: "plain manifests read declared secrets beside their configuration ConfigMap: name a config_map".into(),
    })?;
    let data: Map<String, Value> = match package {
        Package::Helm { .. } => {
            let nested = merge_secrets(&Value::Object(Map::new()), values);
            let text = canonical_json(&nested);
            Map::from_iter([(
                VALUES_KEY.to_string(),
                Value::String(base64(text.as_bytes())),
            )])
        }
        Package::Manifests { .. } => {
            let mut data = Map::new();
            for (pointer, value) in values {
                let key = environment_key(pointer);
                if data
                    .insert(key.clone(), Value::String(base64(value.as_bytes())))
                    .is_some()
                {
                    return Err(Error::Package {
                        booking: booking.clone(),
                        field: format!("/config{pointer}"),
                        message: format!(
                            "two declared secrets meet in the environment variable `{key}`"
                        ),
                    });
                }
            }
            data
        }
    };
    let metadata = serde_json::to_value(tenant.meta(&name)).map_err(|e| Error::Serialise {
        what: "Secret".into(),
        message: e.to_string(),
    })?;
    Ok(canonical(json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata,
        "type": "Opaque",
        "data": data,
    })))
}

/// The environment-variable form of a pointer, as the configuration ConfigMap names
/// its keys (`/smtp/password` → `SMTP_PASSWORD`).
pub fn environment_key(pointer: &str) -> String {
    pointer
        .split('/')
        .skip(1)
        .map(|part| {
            verbund_domain::secrets::unescape(part)
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() {
                        c.to_ascii_uppercase()
                    } else {
                        '_'
                    }
                })
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("_")
}

fn canonical_json(value: &Value) -> String {
    canonical(value.clone()).to_string()
}

/// A sealed Secret with its values and its SOPS block taken out: what must equal the
/// Secret the renderer would build for the same keys.
fn skeleton(document: &Value) -> Value {
    let mut out = document.clone();
    if let Value::Object(map) = &mut out {
        map.remove("sops");
        if let Some(Value::Object(data)) = map.get_mut("data") {
            for v in data.values_mut() {
                *v = Value::String(String::new());
            }
        }
    }
    canonical(out)
}

/// Whether a document is a Secret sealed with SOPS: a `sops` block with a MAC, and no
/// value of `data` or `stringData` in plaintext. What the history scan of the
/// desired-state repository accepts as no plaintext secret.
pub fn is_sealed_secret(document: &Value) -> bool {
    let sealed = document
        .get("sops")
        .and_then(|s| s.get("mac"))
        .and_then(Value::as_str)
        .is_some_and(|m| m.starts_with("ENC[AES256_GCM,"));
    let all_encrypted = ["data", "stringData"].iter().all(|field| {
        document
            .get(*field)
            .and_then(Value::as_object)
            .is_none_or(|m| {
                m.values().all(|v| {
                    v.as_str()
                        .is_some_and(|s| s.is_empty() || s.starts_with("ENC[AES256_GCM,"))
                })
            })
    });
    sealed && all_encrypted
}

/// A booking's sealed Secret, checked: `None` when its offering declares no secrets or
/// it sets none. Refuses a booking whose offering declares secrets when its site cannot
/// receive them, when nothing was sealed for it, or when what was sealed is not for this
/// site or not this booking's Secret.
pub(crate) fn checked<'s>(
    tenant: &Tenant<'_>,
    site: &SiteSpec,
    sealed: &'s Sealed,
) -> Result<Option<&'s SealedSecrets>> {
    let p = tenant.placed;
    if !declares_secrets(&p.offering.config_schema) {
        return Ok(None);
    }
    let booking = p.booking.id.clone();
    let refuse = |message: String| Error::Secrets {
        booking: booking.clone(),
        message,
    };
    site.secret_delivery().map_err(refuse)?;
    let Some(s) = sealed.get(&p.booking.id) else {
        return Err(refuse(format!(
            "its offering `{}` declares secret configuration, and none was sealed for it",
            p.offering.name
        )));
    };
    if Some(s.recipient.as_str()) != site.age_recipient.as_deref() {
        return Err(refuse(format!(
            "its secrets are sealed for `{}`, not for the site's recipient",
            s.recipient
        )));
    }
    match (&s.document, s.pointers.is_empty()) {
        (None, true) => Ok(None),
        (Some(document), false) => {
            let blank: SecretValues = s
                .pointers
                .iter()
                .map(|p| (p.clone(), String::new()))
                .collect();
            if !is_sealed_secret(document)
                || skeleton(document) != skeleton(&build(tenant, &blank)?)
            {
                return Err(refuse(
                    "its sealed secrets are not those of its current configuration (sealed before a change): seal them again".into(),
                ));
            }
            Ok(Some(s))
        }
        _ => Err(refuse(
            "its sealed secrets name values but hold no document, or the other way round".into(),
        )),
    }
}

/// Takes the declared-secret paths out of a chart's values (they arrive through the
/// Secret, and `spec.values` would win over them).
pub(crate) fn without_secrets(values: &mut Value, pointers: &BTreeSet<String>) {
    for pointer in pointers {
        let Some((parent, last)) = pointer.rsplit_once('/') else {
            continue;
        };
        let last = verbund_domain::secrets::unescape(last);
        if let Some(Value::Object(map)) = values.pointer_mut(parent) {
            map.remove(&last);
        }
    }
}
