//! Booking a tenancy of a shared instance (see `verbund_domain::shared`): the tenancy
//! goes where its instance runs, or nowhere. Placement asks the tenant's policies (its
//! own, its Land's, the federation's) about the instance's site only; capacity is the
//! instance's, so a full site does not refuse a tenant.

use chrono::{DateTime, Utc};
use verbund_domain::booking::{transition, Booking, BookingEvent, BookingPatch, BookingState};
use verbund_domain::catalog::OfferingSpec;
use verbund_domain::shared::{takes_tenants, TenancySpec};
use verbund_domain::Invalid;
use verbund_policy::{Need, Placer};
use verbund_store::{NewBooking, StoreError};

use crate::compliance::objection;
use crate::service::{candidate, chain_ids, new_id, plan, BookingError, Bookings};

impl Bookings {
    /// Refuses to end `b` (export its data and tear it down): a tenancy has no data of
    /// its own to export — it is cancelled —, and an instance serves its tenants until
    /// they are gone (as its cancellation waits for them).
    pub(crate) async fn check_may_end(&self, b: &Booking) -> Result<(), BookingError> {
        if b.instance.is_some() {
            return Err(Invalid::meaning(
                "",
                "a tenancy keeps no data of its own to export: cancel it instead",
            )
            .into());
        }
        let tenants = self
            .store()
            .tenancy_counts(std::slice::from_ref(&b.id))
            .await?
            .remove(&b.id)
            .unwrap_or(0);
        if tenants > 0 {
            return Err(BookingError::Store(StoreError::Conflict(format!(
                "the shared instance {} serves {tenants} tenancies: it cannot end before they \
                 are cancelled",
                b.id
            ))));
        }
        Ok(())
    }

    /// Books a tenancy of `spec.organisation` in the shared instance `instance`: placed
    /// on the instance's site when the tenant's policies allow that site, else stored
    /// `rejected` with their reasons (as a booking no site may host is). Refused
    /// (nothing stored) when the instance takes no tenants, is the organisation's own,
    /// or already has the organisation as a tenant.
    pub async fn book_tenancy(
        &self,
        actor: &str,
        instance: &str,
        spec: &TenancySpec,
        now: DateTime<Utc>,
    ) -> Result<Booking, BookingError> {
        let current = self.store().get_booking(instance).await?;
        let offering = self.offering(&current.offering, "/offering").await?;
        spec.validate(&offering.spec)?;
        let chain = self.chain(&spec.organisation).await?;
        let tenant = chain.first().cloned().ok_or_else(|| {
            BookingError::Internal(format!("organisation `{}` was not read", spec.organisation))
        })?;
        verbund_domain::shared::may_join(&offering.spec, tenant.land.as_deref())?;
        let chain = (chain_ids(&chain), chain);
        let book = self.policy_book().await?;
        let sites = self.store().site_usage().await?;
        let today = now.date_naive();
        let organisation = spec.organisation.clone();
        let spec = spec.clone();
        self.store()
            .create_tenancy(
                actor,
                instance,
                &organisation,
                now,
                move |inst, existing| {
                    takes_tenants(inst).map_err(|why| Invalid::conflict("", why))?;
                    if inst.organisation == spec.organisation {
                        return Err(Invalid::meaning(
                        "/organisation",
                        "the instance is the organisation's own booking: it needs no tenancy in it",
                    )
                    .into());
                    }
                    if let Some(id) = existing {
                        return Err(BookingError::Store(StoreError::Conflict(format!(
                            "organisation `{}` is a tenant of this instance already (tenancy {id})",
                            spec.organisation
                        ))));
                    }
                    let site = inst.site.clone().ok_or_else(|| {
                        BookingError::Internal(format!("the live instance {} has no site", inst.id))
                    })?;
                    let plan = plan(&offering.spec, &inst.plan)?;
                    let candidates = sites
                        .iter()
                        .filter(|s| s.site.spec.name == site)
                        .map(candidate)
                        .collect();
                    let placer = Placer::new(book, &chain.1, candidates, today)?;
                    let verdict =
                        placer.check(&tenant, &chain.0, Need::plan(&offering.spec, plan), &site)?;
                    let objections: Vec<String> = match &verdict {
                        Some(v) => v.reasons.iter().filter_map(objection).collect(),
                        None => vec![format!("site `{site}` no longer exists")],
                    };
                    let mut tenancy = Booking {
                        id: new_id(),
                        organisation: spec.organisation.clone(),
                        offering: inst.offering.clone(),
                        plan: inst.plan.clone(),
                        config: spec.config.clone(),
                        channel: "stable".into(),
                        state: BookingState::Requested,
                        site: None,
                        version: None,
                        environment: Default::default(),
                        reason: None,
                        dependency_of: None,
                        dependencies: Vec::new(),
                        instance: Some(inst.id.clone()),
                        compliance: None,
                        created_at: now,
                        updated_at: now,
                        state_since: now,
                        undeliverable: None,
                        secrets_set: Vec::new(),
                        windows: Vec::new(),
                        ending: None,
                    };
                    if objections.is_empty() {
                        tenancy.state = transition(tenancy.state, BookingEvent::Place)?;
                        tenancy.site = Some(site);
                        tenancy.dependencies = vec![inst.id.clone()];
                    } else {
                        tenancy.state = transition(tenancy.state, BookingEvent::Reject)?;
                        tenancy.reason = Some(format!(
                        "the shared instance runs on `{site}`, where the organisation's data may \
                         not be: {}",
                        objections.join("; ")
                    ));
                    }
                    Ok(NewBooking {
                        booking: tenancy,
                        resources: Default::default(),
                        decision: verdict.as_ref().and_then(|v| serde_json::to_value(v).ok()),
                        action: "booking.create".into(),
                        secrets: None,
                    })
                },
            )
            .await
    }
}

/// A tenancy after `patch`: only its configuration changes (checked as when it was
/// booked); its plan, channel, windows and end are its instance's. `None`: unchanged.
pub(crate) fn patched(
    b: &Booking,
    patch: &BookingPatch,
    offering: &OfferingSpec,
    now: DateTime<Utc>,
) -> Result<Option<NewBooking>, BookingError> {
    let instance_owned = [
        ("/plan", patch.plan.is_some()),
        ("/channel", patch.channel.is_some()),
        ("/windows", patch.windows.is_some()),
        ("/ending", patch.ending.is_some()),
    ];
    if let Some((field, _)) = instance_owned.iter().find(|(_, set)| *set) {
        return Err(Invalid::meaning(
            *field,
            "a tenancy runs with its shared instance: its plan, channel, capacity windows and \
             end are the instance's; only its configuration is its own",
        )
        .into());
    }
    let Some(config) = &patch.config else {
        return Ok(None);
    };
    TenancySpec {
        organisation: b.organisation.clone(),
        config: config.clone(),
    }
    .validate(offering)?;
    if *config == b.config {
        return Ok(None);
    }
    let mut next = b.clone();
    next.config = config.clone();
    next.updated_at = now;
    Ok(Some(NewBooking {
        booking: next,
        resources: Default::default(),
        decision: None,
        action: "booking.update".into(),
        secrets: None,
    }))
}
