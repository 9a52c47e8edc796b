//! Placement decisions in plain words: "Rechenzentrum X: nicht zulässig, weil …".
//!
//! The decision itself is the placement service's (Cedar policies, capacity, ranking);
//! this module only says it in the reader's language, with each site's location and
//! operator, so a clerk can follow why a booking landed where it did.

use std::collections::HashMap;

use verbund_domain::capacity::german_date;
use verbund_domain::directory::{Provider, Site};
use verbund_policy::placement::{Reason, SiteVerdict};
use verbund_policy::PlacementDecision;
use verbund_store::{SiteFilter, Store};

use crate::i18n::Lang;

/// One candidate site, explained.
pub struct Verdict {
    pub site: String,
    pub allowed: bool,
    pub chosen: bool,
    /// "Rechenzentrum Nürnberg 1 (Nürnberg, DE-BY; AKDB): zulässig, Rang 1".
    pub sentence: String,
}

/// One of the federation's shipped rules in German (their `@description` is English),
/// twice: as a clause that completes "…, weil" in a placement decision, and as a
/// sentence of its own for the list of policies.
pub struct GermanRule {
    pub because: &'static str,
    pub says: &'static str,
}

/// The German words for a shipped federation rule, if `policy` names one.
pub fn german_rule(policy: &str) -> Option<GermanRule> {
    // Decisions name a rule as `<layer>/<document>/<id>`; documents by its `@id` alone.
    let id = policy.rsplit('/').next().unwrap_or(policy);
    let (because, says) = match id {
        "federation.baseline" => (
            "Buchungen auf jedem Rechenzentrum des Verbunds laufen dürfen, sofern keine Regel es verbietet",
            "Buchungen dürfen auf jedem Rechenzentrum des Verbunds laufen, sofern keine Regel es verbietet.",
        ),
        "federation.personal-data-in-eu" => (
            "personenbezogene Daten nur in Rechenzentren innerhalb der EU verarbeitet werden dürfen",
            "Personenbezogene Daten dürfen nur in Rechenzentren innerhalb der EU verarbeitet werden.",
        ),
        "federation.personal-data-iso27001" => (
            "personenbezogene Daten ein gültiges ISO-27001-Zertifikat (auf Basis von IT-Grundschutz) verlangen",
            "Personenbezogene Daten verlangen ein gültiges ISO-27001-Zertifikat (auf Basis von IT-Grundschutz).",
        ),
        "federation.special-categories-c5-type2" => (
            "besondere Kategorien personenbezogener Daten und VS-NfD ein gültiges BSI-C5-Testat (Typ 2) verlangen",
            "Besondere Kategorien personenbezogener Daten und VS-NfD verlangen ein gültiges BSI-C5-Testat (Typ 2).",
        ),
        "federation.special-categories-public-operator" => (
            "besondere Kategorien personenbezogener Daten und VS-NfD nur bei einem öffentlich-rechtlichen Betreiber verarbeitet werden dürfen",
            "Besondere Kategorien personenbezogener Daten und VS-NfD dürfen nur bei einem öffentlich-rechtlichen Betreiber verarbeitet werden.",
        ),
        "federation.special-categories-no-foreign-access" => (
            "besondere Kategorien personenbezogener Daten und VS-NfD nie bei einem Betreiber verarbeitet werden dürfen, der einer Rechtsordnung außerhalb der EU unterliegt",
            "Besondere Kategorien personenbezogener Daten und VS-NfD dürfen nie bei einem Betreiber verarbeitet werden, der einer Rechtsordnung außerhalb der EU unterliegt.",
        ),
        _ => return None,
    };
    Some(GermanRule { because, says })
}

/// A policy layer in words ("Föderation").
pub fn layer_name(layer: &str, lang: Lang) -> &str {
    match (layer, lang) {
        ("federation", Lang::De) => "Föderation",
        ("land", Lang::De) => "Land",
        ("organisation", Lang::De) => "Organisation",
        (l, _) => l,
    }
}

fn gib(mib: u64) -> String {
    format!("{:.1}", mib as f64 / 1024.0)
}

/// One reason as a clause that completes "…, weil" / "…, because".
pub fn reason(r: &Reason, lang: Lang) -> String {
    match (r, lang) {
        (Reason::ForbiddenBy { policy, layer, description, .. }, Lang::De) => {
            let layer = layer_name(layer, lang);
            match german_rule(policy) {
                Some(rule) => format!("{} (Richtlinie „{policy}“, Ebene {layer})", rule.because),
                None => format!("die Richtlinie „{policy}“ (Ebene {layer}) es verbietet: {description}"),
            }
        }
        (Reason::ForbiddenBy { policy, layer, description, .. }, Lang::En) => {
            format!("{description} (policy `{policy}`, {layer} layer)")
        }
        (Reason::NotPermitted, Lang::De) => "keine Richtlinie der Föderation es erlaubt".into(),
        (Reason::NotPermitted, Lang::En) => "no federation policy permits it".into(),
        (Reason::MissingCapability { capability }, Lang::De) => {
            format!("dem Rechenzentrum die Fähigkeit „{capability}“ fehlt")
        }
        (Reason::MissingCapability { capability }, Lang::En) => {
            format!("the site lacks the capability `{capability}`")
        }
        (Reason::KubernetesTooOld { required, .. }, Lang::De) => {
            format!("seine Kubernetes-Version älter als {required} ist")
        }
        (Reason::KubernetesTooOld { required, .. }, Lang::En) => {
            format!("its Kubernetes is older than {required}")
        }
        (Reason::InsufficientCapacity { need, free }, Lang::De) => format!(
            "nicht genug Kapazität frei ist (benötigt {} vCPU, {} GiB RAM, {} GiB Speicher; frei {} vCPU, {} GiB RAM, {} GiB Speicher)",
            need.cpu_millis / 1000, gib(need.memory_mib), need.storage_gib,
            free.cpu_millis / 1000, gib(free.memory_mib), free.storage_gib
        ),
        (Reason::InsufficientCapacity { need, free }, Lang::En) => format!(
            "there is not enough free capacity (needs {} vCPU, {} GiB RAM, {} GiB storage; free {} vCPU, {} GiB RAM, {} GiB storage)",
            need.cpu_millis / 1000, gib(need.memory_mib), need.storage_gib,
            free.cpu_millis / 1000, gib(free.memory_mib), free.storage_gib
        ),
        (Reason::WindowDoesNotFit { from, to, plan, need, free }, Lang::De) => format!(
            "es das Zeitfenster {}–{} (Tarif „{plan}“) nicht aufnehmen kann (benötigt {} vCPU, {} GiB RAM; in diesem Zeitraum höchstens frei {} vCPU, {} GiB RAM)",
            german_date(*from), german_date(*to),
            need.cpu_millis / 1000, gib(need.memory_mib),
            free.cpu_millis / 1000, gib(free.memory_mib)
        ),
        (Reason::WindowDoesNotFit { from, to, plan, need, free }, Lang::En) => format!(
            "it cannot hold the window {from} to {to} (plan `{plan}`: needs {} vCPU, {} GiB RAM; at most {} vCPU, {} GiB RAM free then)",
            need.cpu_millis / 1000, gib(need.memory_mib),
            free.cpu_millis / 1000, gib(free.memory_mib)
        ),
        (Reason::EvaluationError { message }, Lang::De) => {
            format!("die Prüfung der Richtlinien fehlschlug ({message})")
        }
        (Reason::EvaluationError { message }, Lang::En) => {
            format!("the policies could not be evaluated ({message})")
        }
        (Reason::PreflightFailed { failures, .. }, Lang::De) => format!(
            "sein Cluster die Vorabprüfung (verbund agent preflight) nicht bestanden hat: {}",
            failures.join(" — ")
        ),
        (Reason::PreflightFailed { failures, .. }, Lang::En) => {
            format!("it failed its preflight: {}", failures.join(" — "))
        }
        (Reason::SecretsUndeliverable { .. }, Lang::De) => {
            "es die als geheim erklärte Konfiguration nicht verschlüsselt empfangen kann (kein age-Empfänger hinterlegt, oder Argo CD, das SOPS nicht entschlüsselt)".into()
        }
        (Reason::SecretsUndeliverable { reason }, Lang::En) => {
            format!("it cannot receive the configuration declared secret: {reason}")
        }
        (Reason::SameLand, Lang::De) => "es im eigenen Land liegt".into(),
        (Reason::SameLand, Lang::En) => "it lies in the organisation's own Land".into(),
        (Reason::ContractedProvider, Lang::De) => "sein Betreiber Vertragspartner ist".into(),
        (Reason::ContractedProvider, Lang::En) => "its operator is a contracted provider".into(),
    }
}

/// Sites and providers by name, for naming them in explanations.
pub struct Directory {
    pub sites: HashMap<String, Site>,
    pub providers: HashMap<String, Provider>,
}

impl Directory {
    pub async fn load(store: &Store) -> verbund_store::Result<Self> {
        let request = |after| verbund_domain::page::PageRequest {
            limit: Some(1000),
            after,
        };
        let sites = super::every_page(|after| async move {
            store
                .list_sites(&SiteFilter::default(), &request(after))
                .await
        })
        .await?
        .into_iter()
        .map(|s| (s.spec.name.clone(), s))
        .collect();
        let providers =
            super::every_page(|after| async move { store.list_providers(&request(after)).await })
                .await?
                .into_iter()
                .map(|p| (p.spec.name.clone(), p))
                .collect();
        Ok(Self { sites, providers })
    }

    /// "Rechenzentrum Nürnberg 1 (Nürnberg, DE-BY; AKDB)".
    pub fn site_title(&self, site: &str) -> String {
        match self.sites.get(site) {
            Some(s) => {
                let operator = self
                    .providers
                    .get(&s.spec.provider)
                    .map_or(s.spec.provider.as_str(), |p| p.spec.display_name.as_str());
                format!(
                    "{} ({}, {}; {})",
                    s.spec.display_name, s.spec.location.city, s.spec.location.region, operator
                )
            }
            None => site.to_string(),
        }
    }
}

fn verdict(v: &SiteVerdict, chosen: Option<&str>, dir: &Directory, lang: Lang) -> Verdict {
    let title = dir.site_title(&v.site);
    let (ok, no, because, rank) = match lang {
        Lang::De => ("zulässig", "nicht zulässig", "weil", "Rang"),
        Lang::En => ("allowed", "not allowed", "because", "rank"),
    };
    let reasons: Vec<String> = v.reasons.iter().map(|r| reason(r, lang)).collect();
    let sentence = if v.allowed {
        let mut s = format!("{title}: {ok}");
        if let Some(r) = v.rank {
            s.push_str(&format!(", {rank} {r}"));
        }
        if !reasons.is_empty() {
            s.push_str(&format!(
                ", {because} {}",
                reasons.join(match lang {
                    Lang::De => " und ",
                    Lang::En => " and ",
                })
            ));
        }
        s
    } else {
        format!("{title}: {no}, {because} {}", reasons.join("; "))
    };
    Verdict {
        site: v.site.clone(),
        allowed: v.allowed,
        chosen: chosen == Some(v.site.as_str()),
        sentence,
    }
}

/// Every candidate of a decision, explained, best first.
pub fn verdicts(d: &PlacementDecision, dir: &Directory, lang: Lang) -> Vec<Verdict> {
    d.candidates
        .iter()
        .map(|v| verdict(v, d.site.as_deref(), dir, lang))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_read_as_german_clauses() {
        let r = Reason::ForbiddenBy {
            policy: "federation.personal-data-in-eu".into(),
            layer: "federation".into(),
            owner: None,
            description: "personal data is processed only in data centers inside the EU".into(),
        };
        assert_eq!(
            reason(&r, Lang::De),
            "personenbezogene Daten nur in Rechenzentren innerhalb der EU verarbeitet werden dürfen (Richtlinie „federation.personal-data-in-eu“, Ebene Föderation)"
        );
        assert!(reason(&r, Lang::En).starts_with("personal data is processed only"));
        let own = Reason::ForbiddenBy {
            policy: "09:nur-bayern".into(),
            layer: "land".into(),
            owner: Some("09".into()),
            description: "nur in Bayern".into(),
        };
        assert_eq!(
            reason(&own, Lang::De),
            "die Richtlinie „09:nur-bayern“ (Ebene Land) es verbietet: nur in Bayern"
        );
    }
}
