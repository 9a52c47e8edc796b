//! Continuous compliance: re-checks every placement against the policies and site
//! attributes in force (certificates expire, sites change, policies change), flags the
//! bookings that no longer comply, and proposes a compliant target — never moving one
//! silently.

use std::collections::hash_map::Entry;
use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use verbund_domain::booking::Compliance;
use verbund_domain::directory::Organisation;
use verbund_policy::{Need, Placer, Reason};

use crate::service::{BookingError, Bookings};

/// What a re-evaluation found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ReevaluationSummary {
    pub checked: u64,
    pub noncompliant: u64,
    /// Bookings whose compliance verdict changed (and was audited).
    pub changed: u64,
}

/// What a placement verdict's reason objects to a booking that is (or is to be) where
/// it stands: policies, capabilities, the Kubernetes version. Capacity and a failed
/// preflight keep new bookings off a site but do not object to one that runs there (or
/// to a tenancy, which holds no capacity of its own). The one reading of compliance and
/// of a tenancy's placement.
pub(crate) fn objection(r: &Reason) -> Option<String> {
    match r {
        Reason::ForbiddenBy {
            description,
            policy,
            ..
        } => Some(format!("{description} ({policy})")),
        Reason::NotPermitted => Some("no policy permits the placement any more".into()),
        Reason::MissingCapability { capability } => Some(format!("the site lacks `{capability}`")),
        Reason::KubernetesTooOld { site, required } => {
            Some(format!("Kubernetes {site} is older than {required}"))
        }
        Reason::EvaluationError { message } => Some(format!("policy error: {message}")),
        Reason::SecretsUndeliverable { reason } => Some(reason.clone()),
        // A failed preflight keeps new bookings off a site; those running there stay
        // (and a proposal elsewhere would only move the problem to the operator).
        Reason::InsufficientCapacity { .. }
        | Reason::WindowDoesNotFit { .. }
        | Reason::PreflightFailed { .. }
        | Reason::SameLand
        | Reason::ContractedProvider => None,
    }
}

impl Bookings {
    /// Re-evaluates every live placement in one pass.
    pub async fn reevaluate(
        &self,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<ReevaluationSummary, BookingError> {
        let store = self.store();
        let book = self.policy_book().await?;
        let live = store.live_bookings().await?;
        let sites = store.site_usage().await?;
        // Every organisation is needed for ancestor chains; the directory fits in memory.
        let mut orgs: HashMap<String, Organisation> = HashMap::new();
        let mut page = verbund_domain::page::PageRequest {
            limit: Some(1000),
            after: None,
        };
        loop {
            let batch = store.list_organisations(&Default::default(), &page).await?;
            for o in batch.items {
                orgs.insert(o.id.clone(), o);
            }
            match batch.next {
                Some(n) => page.after = Some(n),
                None => break,
            }
        }
        let all: Vec<Organisation> = orgs.values().cloned().collect();
        let placer = Placer::new(
            book,
            &all,
            sites.iter().map(crate::service::candidate).collect(),
            now.date_naive(),
        )?;
        let mut offerings = HashMap::new();
        let mut verdicts = Vec::with_capacity(live.len());
        let mut summary = ReevaluationSummary::default();
        for (b, _) in &live {
            let Some(site) = &b.site else { continue };
            let Some(org) = orgs.get(&b.organisation) else {
                continue;
            };
            let offering = match offerings.entry(b.offering.clone()) {
                Entry::Occupied(read) => read.into_mut(),
                Entry::Vacant(unread) => unread.insert(store.get_offering(&b.offering).await?),
            };
            let Some(plan) = offering.spec.plan(&b.plan) else {
                continue;
            };
            let mut chain = vec![org.id.clone()];
            let mut cur = org.parent.clone();
            while let Some(p) = cur {
                chain.push(p.clone());
                cur = orgs.get(&p).and_then(|o| o.parent.clone());
            }
            // One evaluation per booking: its own site. Only a booking that no longer
            // complies is placed anew, to propose a target.
            let here = placer.check(org, &chain, Need::plan(&offering.spec, plan), site)?;
            summary.checked += 1;
            // Capacity and a failed preflight do not make a running booking non-compliant.
            let reasons: Vec<String> = here
                .map(|v| v.reasons.iter().filter_map(objection).collect())
                .unwrap_or_else(|| vec![format!("site `{site}` no longer exists")]);
            let compliant = reasons.is_empty();
            let proposed_site = if compliant {
                None
            } else if b.instance.is_some() {
                // A tenancy goes where its instance runs: nothing to propose.
                summary.noncompliant += 1;
                None
            } else {
                summary.noncompliant += 1;
                let d = placer.decide(org, &chain, Need::plan(&offering.spec, plan), &[])?;
                d.candidates
                    .iter()
                    .find(|v| v.allowed && &v.site != site)
                    .map(|v| v.site.clone())
            };
            // Only changed verdicts go to the store (and into the audit trail).
            let unchanged = match &b.compliance {
                None => compliant,
                Some(c) => {
                    c.compliant == compliant
                        && c.reasons == reasons
                        && c.proposed_site == proposed_site
                }
            };
            if !unchanged {
                verdicts.push((
                    b.id.clone(),
                    Compliance {
                        compliant,
                        checked_at: now,
                        reasons,
                        proposed_site,
                    },
                ));
            }
        }
        summary.changed = store.set_compliance(actor, &verdicts, now).await?;
        tracing::info!(
            checked = summary.checked,
            noncompliant = summary.noncompliant,
            changed = summary.changed,
            "placements re-evaluated"
        );
        Ok(summary)
    }
}
