//! The booking service: book, explain, approve, reject, change, cancel.

use chrono::{DateTime, Utc};
use verbund_domain::booking::{
    transition, Booking, BookingEvent, BookingPatch, BookingSpec, BookingState, InvalidTransition,
};
use verbund_domain::catalog::{Offering, OfferingSpec, Plan};
use verbund_domain::directory::{Environment, Organisation, Resources};
use verbund_domain::Invalid;
use verbund_policy::{Candidate, Need, PlacementDecision, Placer, PolicyBook, PolicyError, Reason};
use verbund_store::{NewBooking, SiteUsage, Store, StoreError, StoredPolicy};

use crate::policies::{self, PolicySubmission};

#[derive(Debug, thiserror::Error)]
pub enum BookingError {
    /// The request is invalid (unknown plan, configuration against the schema, …).
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// The lifecycle does not allow this now.
    #[error(transparent)]
    Transition(#[from] InvalidTransition),
    /// The store failed or refused.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The policies in force do not compile (should not happen: they were checked).
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// A bug or corrupt data.
    #[error("{0}")]
    Internal(String),
}

/// The booking service.
#[derive(Clone)]
pub struct Bookings {
    store: Store,
}

/// Everything a placement decision needs that is read before the write transaction.
struct Inputs {
    organisation: Organisation,
    chain: Vec<Organisation>,
    offering: Offering,
    book: PolicyBook,
    /// Dependency offerings, in the order they are to be bound or created.
    dependencies: Vec<(Offering, String)>,
}

fn candidates(sites: &[SiteUsage]) -> Vec<Candidate> {
    sites
        .iter()
        .filter(|s| s.site.spec.environments.contains(&Environment::Prod))
        .map(|s| Candidate {
            site: s.site.spec.clone(),
            provider: s.provider.spec.clone(),
            free: s.free(),
            preflight: s.preflight.clone(),
        })
        .collect()
}

fn chain_ids(chain: &[Organisation]) -> Vec<String> {
    chain.iter().map(|o| o.id.clone()).collect()
}

fn plan<'a>(o: &'a OfferingSpec, name: &str) -> Result<&'a Plan, BookingError> {
    o.plan(name).ok_or_else(|| {
        Invalid::new(
            "/plan",
            format!("offering `{}` has no plan `{name}`", o.name),
        )
        .into()
    })
}

/// A one-line summary of why no site was allowed.
pub fn rejection_reason(d: &PlacementDecision) -> String {
    if d.candidates.is_empty() {
        return "no site in the federation offers a prod environment".into();
    }
    let parts: Vec<String> = d
        .candidates
        .iter()
        .map(|v| {
            let why: Vec<String> = v
                .reasons
                .iter()
                .map(|r| match r {
                    // Name the policy, as compliance reasons do, so that it can be found.
                    Reason::ForbiddenBy {
                        description,
                        policy,
                        ..
                    } => {
                        format!("forbidden: {description} ({policy})")
                    }
                    Reason::NotPermitted => "no policy permits it".into(),
                    Reason::MissingCapability { capability } => format!("lacks `{capability}`"),
                    Reason::KubernetesTooOld { site, required } => {
                        format!("Kubernetes {site} is older than {required}")
                    }
                    Reason::InsufficientCapacity { .. } => "not enough free capacity".into(),
                    Reason::EvaluationError { message } => format!("policy error: {message}"),
                    Reason::PreflightFailed { failures, .. } => {
                        format!("failed its preflight: {}", failures.join(" — "))
                    }
                    Reason::SecretsUndeliverable { reason } => reason.clone(),
                    Reason::SameLand | Reason::ContractedProvider => String::new(),
                })
                .filter(|s| !s.is_empty())
                .collect();
            format!("{} ({})", v.site, why.join(", "))
        })
        .collect();
    format!("no site may host this booking: {}", parts.join("; "))
}

fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

impl Bookings {
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The policy book in force.
    pub async fn policy_book(&self) -> Result<PolicyBook, BookingError> {
        policies::load_book(&self.store).await
    }

    /// An organisation and its ancestors, nearest first.
    pub async fn chain(&self, organisation: &str) -> Result<Vec<Organisation>, BookingError> {
        let org = self
            .store
            .get_organisation(organisation)
            .await
            .map_err(|e| match e {
                StoreError::NotFound { .. } => BookingError::Invalid(Invalid::new(
                    "/organisation",
                    format!("unknown organisation `{organisation}`"),
                )),
                other => other.into(),
            })?;
        let mut chain = vec![org];
        for id in self.store.organisation_ancestors(organisation).await? {
            chain.push(self.store.get_organisation(&id).await?);
        }
        Ok(chain)
    }

    async fn offering(&self, name: &str, field: &str) -> Result<Offering, BookingError> {
        self.store.get_offering(name).await.map_err(|e| match e {
            StoreError::NotFound { .. } => {
                BookingError::Invalid(Invalid::new(field, format!("unknown offering `{name}`")))
            }
            other => other.into(),
        })
    }

    async fn inputs(&self, organisation: &str, offering: &str) -> Result<Inputs, BookingError> {
        let chain = self.chain(organisation).await?;
        let offering = self.offering(offering, "/offering").await?;
        let mut dependencies = Vec::new();
        for d in &offering.spec.dependencies {
            let dep = self.offering(&d.offering, "/offering").await?;
            let plan = d
                .plan
                .clone()
                .or_else(|| dep.spec.plans.first().map(|p| p.name.clone()))
                .ok_or_else(|| {
                    BookingError::Internal(format!("offering `{}` has no plan", dep.spec.name))
                })?;
            dependencies.push((dep, plan));
        }
        Ok(Inputs {
            organisation: chain[0].clone(),
            chain,
            offering,
            book: self.policy_book().await?,
            dependencies,
        })
    }

    /// Where a booking could run, and why not elsewhere; stores nothing.
    pub async fn explain(
        &self,
        organisation: &str,
        offering: &str,
        plan_name: &str,
        now: DateTime<Utc>,
    ) -> Result<PlacementDecision, BookingError> {
        let inp = self.inputs(organisation, offering).await?;
        let plan = plan(&inp.offering.spec, plan_name)?;
        let sites = self.store.site_usage().await?;
        let placer = Placer::new(inp.book, &inp.chain, candidates(&sites), now.date_naive())?;
        Ok(placer.decide(
            &inp.organisation,
            &chain_ids(&inp.chain),
            Need {
                offering: &inp.offering.spec,
                plan,
            },
            &[],
        )?)
    }

    /// Books an offering: validates, places it (or queues it for approval, or rejects it
    /// with the reason), and creates or binds the bookings of its dependencies — all in
    /// one transaction. Returns the booking first, then new dependency bookings.
    pub async fn book(
        &self,
        actor: &str,
        spec: &BookingSpec,
        now: DateTime<Utc>,
    ) -> Result<Vec<Booking>, BookingError> {
        let inp = self.inputs(&spec.organisation, &spec.offering).await?;
        let channel = spec.validate(&inp.offering.spec)?;
        let version = self.target_version(&inp.offering, &channel).await?;
        let main_plan = plan(&inp.offering.spec, &spec.plan)?.clone();
        let mut dep_versions = Vec::new();
        for (dep, dep_plan) in &inp.dependencies {
            let v = dep.latest_version.clone().ok_or_else(|| {
                Invalid::new(
                    "/offering",
                    format!(
                        "dependency `{}` has no published version yet",
                        dep.spec.name
                    ),
                )
            })?;
            // A dependency that needs a configuration of its own cannot be created with
            // the booking: it must be one the organisation booked already (bound below,
            // on the same site).
            let needs_configuration = verbund_domain::booking::validate_config(
                &dep.spec.config_schema,
                &serde_json::json!({}),
            )
            .err();
            if let Some(e) = &needs_configuration {
                let booked = self
                    .store
                    .list_bookings(
                        &verbund_store::BookingFilter {
                            organisation: Some(spec.organisation.clone()),
                            offering: Some(dep.spec.name.clone()),
                            ..Default::default()
                        },
                        &verbund_domain::page::PageRequest::default(),
                    )
                    .await?
                    .items
                    .iter()
                    .any(|b| b.state.is_live());
                if !booked {
                    return Err(Invalid::new(
                        "/offering",
                        format!(
                            "dependency `{}` needs its own configuration ({e}); book it first",
                            dep.spec.name
                        ),
                    )
                    .into());
                }
            }
            dep_versions.push((
                dep.clone(),
                dep_plan.clone(),
                v,
                needs_configuration.is_some(),
            ));
        }
        let today = now.date_naive();
        let chain = chain_ids(&inp.chain);
        let organisation = spec.organisation.clone();
        let spec = spec.clone();
        // Declared secrets are kept apart from the configuration (and never returned).
        let (config, secrets) =
            verbund_domain::secrets::split_secrets(&inp.offering.spec.config_schema, &spec.config);
        self.store
            .create_bookings(actor, &organisation, now, move |snap| {
                let mut placer = Placer::new(inp.book, &inp.chain, candidates(&snap.sites), today)?;
                let mut decision = placer.decide(
                    &inp.organisation,
                    &chain,
                    Need {
                        offering: &inp.offering.spec,
                        plan: &main_plan,
                    },
                    &[],
                )?;
                // A booking and the dependencies it brings run on one site: the best
                // site where the booking may run *and* each dependency either is
                // already there (a live booking of the organisation) or may run too.
                let mut dep_decisions = Vec::new();
                for (dep, dep_plan_name, _, _) in &dep_versions {
                    let dep_plan = plan(&dep.spec, dep_plan_name)?;
                    dep_decisions.push(placer.decide(
                        &inp.organisation,
                        &chain,
                        Need {
                            offering: &dep.spec,
                            plan: dep_plan,
                        },
                        &[],
                    )?);
                }
                let dependencies_fit = |site: &str| {
                    dep_versions.iter().zip(&dep_decisions).all(
                        |((dep, _, _, needs_configuration), d)| {
                            let bound = snap.organisation_bookings.iter().any(|b| {
                                b.offering == dep.spec.name
                                    && b.state.is_live()
                                    && b.site.as_deref() == Some(site)
                            });
                            bound
                                || (!needs_configuration
                                    && d.verdict(site).is_some_and(|v| v.allowed))
                        },
                    )
                };
                let mut allowed: Vec<&verbund_policy::placement::SiteVerdict> = decision
                    .candidates
                    .iter()
                    .filter(|c| c.allowed && c.rank.is_some())
                    .collect();
                allowed.sort_by_key(|c| c.rank);
                let joint = allowed
                    .iter()
                    .find(|c| dependencies_fit(&c.site))
                    .map(|c| c.site.clone());
                let first_choice = std::mem::replace(&mut decision.site, joint);
                let id = new_id();
                let mut main = Booking {
                    id: id.clone(),
                    organisation: spec.organisation.clone(),
                    offering: spec.offering.clone(),
                    plan: spec.plan.clone(),
                    config: config.clone(),
                    channel: channel.to_string(),
                    state: BookingState::Requested,
                    site: None,
                    version: Some(version.clone()),
                    environment: Default::default(),
                    reason: None,
                    dependency_of: None,
                    dependencies: Vec::new(),
                    compliance: None,
                    created_at: now,
                    updated_at: now,
                    state_since: now,
                    undeliverable: None,
                    secrets_set: secrets.keys().cloned().collect(),
                };
                let mut out = Vec::new();
                if inp.offering.spec.requires_approval {
                    main.state = transition(main.state, BookingEvent::RequireApproval)?;
                    main.reason =
                        Some("the offering requires a federation admin's approval".into());
                } else if let Some(site) = decision.site.clone() {
                    placer.reserve(&site, &main_plan.resources);
                    // Dependencies run on the same site, so that network policies can
                    // allow exactly their traffic.
                    let mut deps = Vec::new();
                    let mut failure = None;
                    for (dep, dep_plan_name, dep_version, _) in &dep_versions {
                        if let Some(existing) = snap.organisation_bookings.iter().find(|b| {
                            b.offering == dep.spec.name
                                && b.state.is_live()
                                && b.site.as_deref() == Some(site.as_str())
                        }) {
                            main.dependencies.push(existing.id.clone());
                            continue;
                        }
                        let dep_plan = plan(&dep.spec, dep_plan_name)?;
                        let d = placer.decide(
                            &inp.organisation,
                            &chain,
                            Need {
                                offering: &dep.spec,
                                plan: dep_plan,
                            },
                            &[],
                        )?;
                        if !d.verdict(&site).is_some_and(|v| v.allowed) {
                            failure = Some(format!(
                                "its dependency `{}` may not run on the chosen site `{site}`",
                                dep.spec.name
                            ));
                            break;
                        }
                        placer.reserve(&site, &dep_plan.resources);
                        let dep_id = new_id();
                        main.dependencies.push(dep_id.clone());
                        deps.push(NewBooking {
                            booking: Booking {
                                id: dep_id,
                                organisation: spec.organisation.clone(),
                                offering: dep.spec.name.clone(),
                                plan: dep_plan.name.clone(),
                                config: serde_json::json!({}),
                                channel: "stable".into(),
                                state: BookingState::Placed,
                                site: Some(site.clone()),
                                version: Some(dep_version.clone()),
                                environment: Default::default(),
                                reason: None,
                                dependency_of: Some(id.clone()),
                                dependencies: Vec::new(),
                                compliance: None,
                                created_at: now,
                                updated_at: now,
                                state_since: now,
                                undeliverable: None,
                                secrets_set: Vec::new(),
                            },
                            resources: dep_plan.resources,
                            decision: serde_json::to_value(&d).ok(),
                            action: "booking.create".into(),
                            secrets: None,
                        });
                    }
                    match failure {
                        None => {
                            main.state = transition(main.state, BookingEvent::Place)?;
                            main.site = Some(site);
                            out.extend(deps);
                        }
                        Some(reason) => {
                            main.state = transition(main.state, BookingEvent::Reject)?;
                            main.dependencies.clear();
                            main.reason = Some(reason);
                        }
                    }
                } else if let Some(site) = first_choice {
                    // It may run somewhere, but nowhere together with what it needs.
                    let blocking: Vec<String> = dep_versions
                        .iter()
                        .zip(&dep_decisions)
                        .filter(|((_, _, _, needs_configuration), d)| {
                            *needs_configuration || !d.verdict(&site).is_some_and(|v| v.allowed)
                        })
                        .map(|((dep, _, _, _), _)| format!("`{}`", dep.spec.name))
                        .collect();
                    main.state = transition(main.state, BookingEvent::Reject)?;
                    main.reason = Some(format!(
                        "no site allows both `{}` and its dependencies: {} may not run on `{site}`, its best site, nor with it anywhere else",
                        inp.offering.spec.name,
                        blocking.join(", ")
                    ));
                } else {
                    main.state = transition(main.state, BookingEvent::Reject)?;
                    main.reason = Some(rejection_reason(&decision));
                }
                let resources = main_plan.resources;
                out.insert(
                    0,
                    NewBooking {
                        booking: main,
                        resources,
                        decision: serde_json::to_value(&decision).ok(),
                        action: "booking.create".into(),
                        secrets: Some(secrets),
                    },
                );
                Ok::<_, BookingError>(out)
            })
            .await
    }

    /// The version a new booking gets: the pinned one (which must exist) or the latest.
    async fn target_version(
        &self,
        offering: &Offering,
        channel: &verbund_domain::booking::UpdateChannel,
    ) -> Result<String, BookingError> {
        match channel {
            verbund_domain::booking::UpdateChannel::Pinned(v) => {
                let versions = self.store.list_versions(&offering.spec.name).await?;
                if versions.iter().any(|p| p.spec.version == v.to_string()) {
                    Ok(v.to_string())
                } else {
                    Err(Invalid::new(
                        "/channel",
                        format!("offering `{}` has no version `{v}`", offering.spec.name),
                    )
                    .into())
                }
            }
            _ => offering.latest_version.clone().ok_or_else(|| {
                Invalid::new(
                    "/offering",
                    format!(
                        "offering `{}` has no published version yet",
                        offering.spec.name
                    ),
                )
                .into()
            }),
        }
    }

    /// Approves a booking that awaits approval and places it.
    pub async fn approve(
        &self,
        actor: &str,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<Booking, BookingError> {
        let current = self.store.get_booking(id).await?;
        let inp = self
            .inputs(&current.organisation, &current.offering)
            .await?;
        let chain = chain_ids(&inp.chain);
        let today = now.date_naive();
        self.store
            .update_booking(actor, id, now, move |b, sites| {
                if b.state != BookingState::AwaitingApproval {
                    return Err(InvalidTransition {
                        from: b.state,
                        event: BookingEvent::Place,
                    }
                    .into());
                }
                let p = plan(&inp.offering.spec, &b.plan)?.clone();
                let placer = Placer::new(inp.book, &inp.chain, candidates(sites), today)?;
                let d = placer.decide(
                    &inp.organisation,
                    &chain,
                    Need {
                        offering: &inp.offering.spec,
                        plan: &p,
                    },
                    &[],
                )?;
                let mut next = b.clone();
                next.updated_at = now;
                next.state_since = now;
                match d.site.clone() {
                    Some(site) => {
                        next.state = transition(b.state, BookingEvent::Place)?;
                        next.site = Some(site);
                        next.reason = None;
                    }
                    None => {
                        next.state = transition(b.state, BookingEvent::Reject)?;
                        next.reason = Some(rejection_reason(&d));
                    }
                }
                Ok(Some(NewBooking {
                    booking: next,
                    resources: p.resources,
                    decision: serde_json::to_value(&d).ok(),
                    action: "booking.approve".into(),
                    secrets: None,
                }))
            })
            .await
    }

    /// Refuses a booking that awaits approval.
    pub async fn reject(
        &self,
        actor: &str,
        id: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<Booking, BookingError> {
        verbund_domain::name::check_text("/reason", reason, 1000)?;
        let reason = reason.to_string();
        self.store
            .update_booking(actor, id, now, move |b, _| {
                if b.state != BookingState::AwaitingApproval {
                    return Err(InvalidTransition {
                        from: b.state,
                        event: BookingEvent::Reject,
                    }
                    .into());
                }
                let mut next = b.clone();
                next.state = transition(b.state, BookingEvent::Reject)?;
                next.reason = Some(reason);
                next.updated_at = now;
                next.state_since = now;
                Ok(Some(NewBooking {
                    booking: next,
                    resources: Resources::default(),
                    decision: None,
                    action: "booking.reject".into(),
                    secrets: None,
                }))
            })
            .await
    }

    /// Changes plan, configuration or update channel. A larger plan must fit on the
    /// booking's site; the configuration is validated against the offering's schema.
    pub async fn patch(
        &self,
        actor: &str,
        id: &str,
        patch: &BookingPatch,
        now: DateTime<Utc>,
    ) -> Result<Booking, BookingError> {
        let current = self.store.get_booking(id).await?;
        let offering = self.offering(&current.offering, "/offering").await?;
        // A pinned version must exist, as when booking (a malformed channel is the
        // spec's to refuse, below).
        use verbund_domain::booking::UpdateChannel;
        if let Some(Ok(pinned @ UpdateChannel::Pinned(_))) =
            patch.channel.as_deref().map(str::parse::<UpdateChannel>)
        {
            self.target_version(&offering, &pinned).await?;
        }
        let stored = self
            .store
            .booking_secrets(&[id.to_string()])
            .await?
            .remove(id)
            .unwrap_or_default();
        let patch = patch.clone();
        self.store
            .update_booking(actor, id, now, move |b, sites| {
                if b.state.is_final()
                    || matches!(b.state, BookingState::Cancelling | BookingState::Retained)
                {
                    return Err(Invalid::new(
                        "",
                        format!("a booking in state `{}` cannot be changed", b.state),
                    )
                    .into());
                }
                let mut next = b.clone();
                if let Some(p) = &patch.plan {
                    next.plan = p.clone();
                }
                let mut secrets = stored.clone();
                if let Some(c) = &patch.config {
                    let (config, carried) = verbund_domain::secrets::carry_secrets(
                        &offering.spec.config_schema,
                        c,
                        &stored,
                    );
                    next.config = config;
                    next.secrets_set = carried.keys().cloned().collect();
                    secrets = carried;
                }
                if let Some(c) = &patch.channel {
                    next.channel = c.clone();
                }
                let spec = BookingSpec {
                    organisation: next.organisation.clone(),
                    offering: next.offering.clone(),
                    plan: next.plan.clone(),
                    config: verbund_domain::secrets::merge_secrets(&next.config, &secrets),
                    channel: next.channel.clone(),
                };
                let channel = spec.validate(&offering.spec)?;
                next.channel = channel.to_string();
                if next == *b && secrets == stored {
                    return Ok(None);
                }
                let new_plan = plan(&offering.spec, &next.plan)?;
                let old_plan = plan(&offering.spec, &b.plan)?;
                if let (Some(site), true) = (&b.site, b.state.holds_capacity()) {
                    let usage = sites.iter().find(|s| &s.site.spec.name == site);
                    let mut free = usage.map(SiteUsage::free).unwrap_or_default();
                    free.cpu_millis += old_plan.resources.cpu_millis;
                    free.memory_mib += old_plan.resources.memory_mib;
                    free.storage_gib += old_plan.resources.storage_gib;
                    if !new_plan.resources.fits_in(&free) {
                        return Err(Invalid::new(
                            "/plan",
                            format!(
                                "plan `{}` does not fit into the free capacity of site `{site}`",
                                new_plan.name
                            ),
                        )
                        .into());
                    }
                }
                next.updated_at = now;
                Ok(Some(NewBooking {
                    booking: next,
                    resources: new_plan.resources,
                    decision: None,
                    action: "booking.update".into(),
                    secrets: Some(secrets),
                }))
            })
            .await
    }

    /// Cancels a booking: it goes to `cancelling`; the lifecycle sweep retains its data.
    pub async fn cancel(
        &self,
        actor: &str,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<Booking, BookingError> {
        let current = self.store.get_booking(id).await?;
        let offering = self.offering(&current.offering, "/offering").await?;
        self.store
            .update_booking(actor, id, now, move |b, _| {
                let mut next = b.clone();
                next.state = transition(b.state, BookingEvent::Cancel)?;
                next.updated_at = now;
                next.state_since = now;
                let resources = plan(&offering.spec, &b.plan)
                    .map(|p| p.resources)
                    .unwrap_or_default();
                Ok(Some(NewBooking {
                    booking: next,
                    resources,
                    decision: None,
                    action: "booking.cancel".into(),
                    secrets: None,
                }))
            })
            .await
    }

    /// Records that the desired state of these bookings has been committed: each that is
    /// `placed` moves on to `provisioning` (the site's engine now applies it).
    pub async fn mark_delivered(
        &self,
        actor: &str,
        ids: &[String],
        now: DateTime<Utc>,
    ) -> Result<Vec<Booking>, BookingError> {
        let to = transition(BookingState::Placed, BookingEvent::Provision)?;
        let action = format!("booking.{}", BookingEvent::Provision.as_str());
        Ok(self
            .store
            .advance_bookings(actor, ids, BookingState::Placed, to, &action, now)
            .await?)
    }

    /// Moves bookings through the time-driven part of the lifecycle: `cancelling` →
    /// `retained` (their workload is removed; capacity is freed), and `retained` →
    /// `deleted` once the offering's retention period is over. Returns how many moved.
    pub async fn sweep(&self, actor: &str, now: DateTime<Utc>) -> Result<u64, BookingError> {
        let mut moved = 0;
        for state in [BookingState::Cancelling, BookingState::Retained] {
            let filter = verbund_store::BookingFilter {
                state: Some(state),
                ..Default::default()
            };
            let mut page = verbund_domain::page::PageRequest {
                limit: Some(1000),
                after: None,
            };
            loop {
                let batch = self.store.list_bookings(&filter, &page).await?;
                for b in &batch.items {
                    let retention = self
                        .offering(&b.offering, "/offering")
                        .await?
                        .spec
                        .retention_days;
                    let due = match state {
                        BookingState::Cancelling => true,
                        _ => now >= b.state_since + chrono::Duration::days(i64::from(retention)),
                    };
                    if !due {
                        continue;
                    }
                    let event = if state == BookingState::Cancelling {
                        BookingEvent::Retain
                    } else {
                        BookingEvent::Purge
                    };
                    self.store
                        .update_booking(actor, &b.id, now, |b, _| {
                            if b.state != state {
                                return Ok::<_, BookingError>(None);
                            }
                            let mut next = b.clone();
                            next.state = transition(b.state, event)?;
                            next.updated_at = now;
                            next.state_since = now;
                            Ok(Some(NewBooking {
                                booking: next,
                                resources: Resources::default(),
                                decision: None,
                                action: format!("booking.{}", event.as_str()),
                                secrets: None,
                            }))
                        })
                        .await?;
                    moved += 1;
                }
                match batch.next {
                    Some(n) => page.after = Some(n),
                    None => break,
                }
            }
        }
        Ok(moved)
    }

    /// Checks and stores a policy document (see `PolicySubmission`).
    pub async fn submit_policy(
        &self,
        actor: &str,
        sub: &PolicySubmission,
        now: DateTime<Utc>,
    ) -> Result<StoredPolicy, BookingError> {
        policies::submit(&self.store, actor, sub, now).await
    }
}
