//! The booking service: book, explain, approve, reject, change, cancel.

use chrono::{DateTime, Utc};
use verbund_domain::booking::{
    transition, Booking, BookingEvent, BookingPatch, BookingSpec, BookingState, InvalidTransition,
};
use verbund_domain::capacity::{
    check_windows, CapacityWindow, Claim, Load, WindowChange, WindowSpec, WindowState,
};
use verbund_domain::catalog::{Offering, OfferingSpec, Plan};
use verbund_domain::directory::{Environment, Organisation, Resources};
use verbund_domain::ending::Ending;
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

/// What a booking would bring with it if it were booked now (`Bookings::preview`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct BookingPreview {
    /// The site it and its dependencies would run on together.
    pub site: Option<String>,
    /// Why it would be refused, in placement's words.
    pub refused: Option<String>,
    /// Its dependencies, in the offering's order.
    pub dependencies: Vec<DependencyPreview>,
}

/// One dependency of a booking preview.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct DependencyPreview {
    pub offering: String,
    pub plan: String,
    /// The organisation's booking of it that would be bound; none when a new one would
    /// be created (or nothing is placed).
    pub bound: Option<String>,
    /// Why it cannot be created with an empty configuration, if it cannot: the booking
    /// then binds a running one or gives a new one its configuration
    /// (`BookingSpec::dependencies`).
    pub needs_configuration: Option<String>,
    /// The organisation's running bookings of it: what the booking may bind.
    pub running: Vec<RunningBooking>,
}

/// A running booking a new booking may bind as its dependency.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct RunningBooking {
    pub id: String,
    pub site: String,
    pub plan: String,
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

/// A site as placement sees it: its free capacity at its fullest moment ahead and its
/// capacity windows' changes.
pub(crate) fn candidate(s: &SiteUsage) -> Candidate {
    Candidate {
        site: s.site.spec.clone(),
        provider: s.provider.spec.clone(),
        free: s.free(),
        left: s.left(),
        timeline: s.ahead.timeline.clone(),
        preflight: s.preflight.clone(),
    }
}

/// The sites placement chooses from: those with a `prod` environment.
fn candidates(sites: &[SiteUsage]) -> Vec<Candidate> {
    sites
        .iter()
        .filter(|s| s.site.spec.environments.contains(&Environment::Prod))
        .map(candidate)
        .collect()
}

pub(crate) fn chain_ids(chain: &[Organisation]) -> Vec<String> {
    chain.iter().map(|o| o.id.clone()).collect()
}

pub(crate) fn plan<'a>(o: &'a OfferingSpec, name: &str) -> Result<&'a Plan, BookingError> {
    o.plan(name).ok_or_else(|| {
        Invalid::unknown(
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
                    Reason::WindowDoesNotFit { from, to, plan, .. } => format!(
                        "cannot hold the window {}–{} (plan `{plan}`)",
                        verbund_domain::capacity::german_date(*from),
                        verbund_domain::capacity::german_date(*to)
                    ),
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

pub(crate) fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// A new booking as requested, before placement decides on it.
fn requested(
    spec: &BookingSpec,
    config: serde_json::Value,
    channel: String,
    version: Option<String>,
    windows: Vec<CapacityWindow>,
    now: DateTime<Utc>,
) -> Booking {
    Booking {
        id: new_id(),
        organisation: spec.organisation.clone(),
        offering: spec.offering.clone(),
        plan: spec.plan.clone(),
        config,
        channel,
        state: BookingState::Requested,
        site: None,
        version,
        environment: Default::default(),
        reason: None,
        dependency_of: None,
        dependencies: Vec::new(),
        compliance: None,
        created_at: now,
        updated_at: now,
        state_since: now,
        undeliverable: None,
        instance: None,
        secrets_set: Vec::new(),
        windows,
        ending: spec.ending.as_ref().map(verbund_domain::ending::Ending::of),
    }
}

/// A dependency of the offering being booked, with what placement needs to know of it.
struct Dependency {
    offering: Offering,
    plan: Plan,
    /// The version a dependency booking created now gets.
    version: String,
    /// Why an empty configuration does not do for it, if it does not: such a dependency
    /// is created with a booking only with the configuration the booking gives it
    /// ([`Choice::New`]), else bound (the organisation's live booking of it).
    needs_configuration: Option<String>,
    /// How the booking gets it.
    choice: Choice,
}

/// How a booking gets one of its dependencies (`BookingSpec::dependencies`).
#[derive(Debug, Clone, PartialEq)]
enum Choice {
    /// The organisation's live booking of it on the site placement chooses, or else a
    /// new one with an empty configuration.
    Auto,
    /// This live booking of the organisation: the booking goes to its site.
    Bind(String),
    /// A new one, with this configuration and its declared secrets apart.
    New {
        config: serde_json::Value,
        secrets: verbund_domain::secrets::SecretValues,
    },
}

/// Why `booking` cannot go while `dependents` need it, naming them.
fn needed_by(booking: &Booking, dependents: &[verbund_store::Dependent]) -> BookingError {
    // A shared instance may have thousands of tenants: the first ten, and how many more.
    const NAMED: usize = 10;
    let mut names: Vec<String> = dependents
        .iter()
        .take(NAMED)
        .map(|d| format!("`{}` of `{}` ({})", d.offering, d.organisation, d.id))
        .collect();
    if dependents.len() > NAMED {
        names.push(format!("{} more", dependents.len() - NAMED));
    }
    BookingError::Store(StoreError::Conflict(format!(
        "the `{}` booking {} is what {} depend{} on: cancel {} first",
        booking.offering,
        booking.id,
        names.join(", "),
        if dependents.len() == 1 { "s" } else { "" },
        if dependents.len() == 1 { "it" } else { "them" },
    )))
}

/// The offering's dependencies, each with its plan, latest version and whether it needs
/// a configuration of its own.
fn resolve_dependencies(inp: &Inputs) -> Result<Vec<Dependency>, BookingError> {
    inp.dependencies
        .iter()
        .map(|(dep, plan_name)| {
            let version = dep.latest_version.clone().ok_or_else(|| {
                Invalid::conflict(
                    "/offering",
                    format!(
                        "dependency `{}` has no published version yet",
                        dep.spec.name
                    ),
                )
            })?;
            Ok(Dependency {
                plan: plan(&dep.spec, plan_name)?.clone(),
                needs_configuration: verbund_domain::booking::validate_config(
                    &dep.spec.config_schema,
                    &serde_json::json!({}),
                )
                .err()
                .map(|e| e.to_string()),
                offering: dep.clone(),
                version,
                choice: Choice::Auto,
            })
        })
        .collect()
}

/// Applies the booking's dependency choices (checked for their form by
/// `BookingSpec::validate`): a binding keeps the dependency's plan, a configuration is
/// validated against the dependency's schema (its pointers under
/// `/dependencies/<name>/config`), with a plan of its own if named.
fn choose_dependencies(
    dependencies: &mut [Dependency],
    choices: &std::collections::BTreeMap<String, verbund_domain::booking::DependencyChoice>,
) -> Result<(), BookingError> {
    for dep in dependencies.iter_mut() {
        let name = dep.offering.spec.name.clone();
        let Some(c) = choices.get(&name) else {
            continue;
        };
        let at = format!(
            "/dependencies/{}",
            verbund_domain::booking::pointer_token(&name)
        );
        if let Some(id) = &c.booking {
            dep.choice = Choice::Bind(id.clone());
            continue;
        }
        let Some(config) = &c.config else {
            continue;
        };
        if dep.offering.spec.requires_approval {
            return Err(Invalid::meaning(
                at,
                format!(
                    "bookings of `{name}` need a federation admin's approval: book it on its \
                     own, then bind it"
                ),
            )
            .into());
        }
        let schema = &dep.offering.spec.config_schema;
        // Its problems' pointers start with `/config`, as a booking's do.
        let under = |e: Invalid| Invalid {
            field: format!("{at}{}", e.field),
            ..e
        };
        verbund_domain::booking::validate_config(schema, config).map_err(under)?;
        verbund_domain::booking::check_config_secrets(schema, config).map_err(under)?;
        if let Some(p) = &c.plan {
            dep.plan = dep
                .offering
                .spec
                .plan(p)
                .ok_or_else(|| {
                    Invalid::unknown(
                        format!("{at}/plan"),
                        format!("offering `{name}` has no plan `{p}`"),
                    )
                })?
                .clone();
        }
        let (config, secrets) = verbund_domain::secrets::split_secrets(schema, config);
        dep.choice = Choice::New { config, secrets };
    }
    Ok(())
}

/// The sum of two claims on a site.
fn plus(a: Resources, b: &Resources) -> Resources {
    Resources {
        cpu_millis: a.cpu_millis.saturating_add(b.cpu_millis),
        memory_mib: a.memory_mib.saturating_add(b.memory_mib),
        storage_gib: a.storage_gib.saturating_add(b.storage_gib),
    }
}

/// Whether another booking may use `b` as its dependency: it runs (or is about to) and
/// does not end on its own (a booking for a time is torn down at its end). The one rule
/// of binding by choice, by placement, and of the candidates the preview offers.
///
/// A tenancy of a shared instance is not bindable: it has no namespace of its own to
/// reach.
fn bindable(b: &Booking) -> bool {
    b.state.is_live() && b.ending.is_none() && b.instance.is_none()
}

/// A bound dependency must be a live booking of the organisation (`live` are its
/// bookings) of that offering.
fn check_bindings(dependencies: &[Dependency], live: &[Booking]) -> Result<(), BookingError> {
    for dep in dependencies {
        let Choice::Bind(id) = &dep.choice else {
            continue;
        };
        let name = &dep.offering.spec.name;
        let at = format!(
            "/dependencies/{}/booking",
            verbund_domain::booking::pointer_token(name)
        );
        match live.iter().find(|b| b.id == *id) {
            Some(b) if b.offering == *name && bindable(b) => {}
            Some(b) if b.offering == *name && b.ending.is_some() => {
                return Err(Invalid::meaning(
                    at,
                    format!(
                        "booking {id} is booked for a time and ends on its own: only a booking \
                         without an end can be bound"
                    ),
                )
                .into())
            }
            Some(b) if b.offering != *name => {
                return Err(Invalid::meaning(
                    at,
                    format!("booking {id} is of `{}`, not of `{name}`", b.offering),
                )
                .into())
            }
            Some(b) => {
                return Err(Invalid::meaning(
                    at,
                    format!(
                        "booking {id} is `{}`: only a running booking can be bound",
                        b.state
                    ),
                )
                .into())
            }
            None => {
                return Err(Invalid::meaning(
                    at,
                    format!("the organisation has no booking {id} to bind"),
                )
                .into())
            }
        }
    }
    Ok(())
}

/// Places `main` (requested, or awaiting approval) together with the dependencies it
/// brings, on one site, so that network policies can allow exactly their traffic: the
/// best site where `main` may run and each dependency either is there already (a live
/// booking of the organisation, bound) or may run there too (created beside it), all
/// within the site's free capacity. The one decision of booking and approval.
///
/// Moves `main` to `placed` with its site and dependency links, or to `rejected` with
/// the reason; returns its placement decision (whose site is the joint one) and the
/// dependency bookings to create.
fn place_together(
    placer: &mut Placer,
    inp: &Inputs,
    main_plan: &Plan,
    dependencies: &[Dependency],
    live: &[Booking],
    main: &mut Booking,
    now: DateTime<Utc>,
) -> Result<(PlacementDecision, Vec<NewBooking>), BookingError> {
    let chain = chain_ids(&inp.chain);
    let windows = main.windows.clone();
    let need = |offering: &Offering,
                plan: &Plan,
                windows: &[CapacityWindow]|
     -> Result<PlacementDecision, BookingError> {
        Ok(placer.decide(
            &inp.organisation,
            &chain,
            Need {
                offering: &offering.spec,
                plan,
                windows,
            },
            &[],
        )?)
    };
    let mut decision = need(&inp.offering, main_plan, &windows)?;
    let dep_decisions = dependencies
        .iter()
        .map(|d| need(&d.offering, &d.plan, &[]))
        .collect::<Result<Vec<_>, _>>()?;
    check_bindings(dependencies, live)?;
    // The organisation's live booking `dep` binds on `site`: the chosen one if it runs
    // there, else (unless a new one is asked for) any.
    let bound = |dep: &Dependency, site: &str| {
        live.iter().find(|b| {
            b.offering == dep.offering.spec.name
                && bindable(b)
                && b.site.as_deref() == Some(site)
                && match &dep.choice {
                    Choice::Auto => true,
                    Choice::Bind(id) => b.id == *id,
                    Choice::New { .. } => false,
                }
        })
    };
    // Whether `dep` can be with the booking on `site`, and why not.
    let blocked = |dep: &Dependency, d: &PlacementDecision, site: &str| -> Option<String> {
        if bound(dep, site).is_some() {
            return None;
        }
        let name = &dep.offering.spec.name;
        if dep.offering.spec.requires_approval {
            return Some(format!(
                "`{name}` (its bookings need a federation admin's approval: book it on its own)"
            ));
        }
        if let Choice::Bind(id) = &dep.choice {
            let there = live
                .iter()
                .find(|b| b.id == *id)
                .and_then(|b| b.site.clone())
                .unwrap_or_default();
            return Some(format!(
                "`{name}` (the bound booking {id} runs on `{there}`)"
            ));
        }
        match (&dep.needs_configuration, &dep.choice) {
            (Some(_), Choice::Auto) => Some(format!(
                "`{name}` (needs its own configuration; the organisation's booking of it runs elsewhere)"
            )),
            _ if d.verdict(site).is_some_and(|v| v.allowed) => None,
            _ => Some(format!("`{name}`")),
        }
    };
    let free = |site: &str| {
        placer
            .candidates()
            .iter()
            .find(|c| c.site.name == site)
            .map(|c| c.free)
            .unwrap_or_default()
    };
    let fits = |site: &str| {
        let mut claim = main_plan.resources;
        for (dep, d) in dependencies.iter().zip(&dep_decisions) {
            if blocked(dep, d, site).is_some() {
                return false;
            }
            if bound(dep, site).is_none() {
                claim = plus(claim, &dep.plan.resources);
            }
        }
        claim.fits_in(&free(site))
    };
    let mut allowed: Vec<&verbund_policy::SiteVerdict> = decision
        .candidates
        .iter()
        .filter(|c| c.allowed && c.rank.is_some())
        .collect();
    allowed.sort_by_key(|c| c.rank);
    let joint = allowed
        .iter()
        .find(|c| fits(&c.site))
        .map(|c| c.site.clone());
    let first_choice = std::mem::replace(&mut decision.site, joint.clone());
    let Some(site) = joint else {
        main.state = transition(main.state, BookingEvent::Reject)?;
        main.dependencies.clear();
        main.reason = Some(match first_choice {
            // It may run somewhere, but nowhere together with what it needs.
            Some(best) => {
                let blocking: Vec<String> = dependencies
                    .iter()
                    .zip(&dep_decisions)
                    .filter_map(|(dep, d)| blocked(dep, d, &best))
                    .collect();
                let why = if blocking.is_empty() {
                    "there is not enough free capacity for all of them".to_string()
                } else {
                    format!("{} may not run on it", blocking.join(", "))
                };
                format!(
                    "no site allows both `{}` and its dependencies: on `{best}`, its best site, {why}, and nowhere else may all of them run",
                    inp.offering.spec.name
                )
            }
            None => rejection_reason(&decision),
        });
        return Ok((decision, Vec::new()));
    };
    placer.reserve(&site, &main_plan.resources);
    placer.reserve_windows(&site, &windows);
    let mut created = Vec::new();
    main.dependencies.clear();
    for (dep, d) in dependencies.iter().zip(dep_decisions) {
        if let Some(existing) = bound(dep, &site) {
            main.dependencies.push(existing.id.clone());
            continue;
        }
        placer.reserve(&site, &dep.plan.resources);
        let id = new_id();
        main.dependencies.push(id.clone());
        let (config, secrets) = match &dep.choice {
            Choice::New { config, secrets } => (config.clone(), secrets.clone()),
            _ => (serde_json::json!({}), Default::default()),
        };
        created.push(NewBooking {
            booking: Booking {
                ending: None,
                id,
                organisation: main.organisation.clone(),
                offering: dep.offering.spec.name.clone(),
                plan: dep.plan.name.clone(),
                secrets_set: secrets.keys().cloned().collect(),
                config,
                channel: "stable".into(),
                state: BookingState::Placed,
                site: Some(site.clone()),
                version: Some(dep.version.clone()),
                environment: Default::default(),
                reason: None,
                dependency_of: Some(main.id.clone()),
                dependencies: Vec::new(),
                compliance: None,
                created_at: now,
                updated_at: now,
                state_since: now,
                undeliverable: None,
                instance: None,
                windows: Vec::new(),
            },
            resources: dep.plan.resources,
            decision: serde_json::to_value(&d).ok(),
            action: "booking.create".into(),
            secrets: Some(secrets),
        });
    }
    main.state = transition(main.state, BookingEvent::Place)?;
    main.site = Some(site);
    main.reason = None;
    Ok((decision, created))
}

/// A booking's windows after a change: those entered (replacing the ones not begun), or,
/// when only the plan changes, the ones not begun measured against the new plan. The
/// plan cannot change while a window runs: the window's end returns to it.
fn patched_windows(
    b: &Booking,
    new_plan: &str,
    entered: Option<&[WindowSpec]>,
    offering: &Offering,
    now: DateTime<Utc>,
) -> Result<Vec<CapacityWindow>, BookingError> {
    let plan_changed = new_plan != b.plan;
    if plan_changed {
        if let Some(w) = b.windows.iter().find(|w| w.state == WindowState::Active) {
            return Err(Invalid::conflict(
                "/plan",
                format!(
                    "the plan cannot change while the capacity window {} runs (plan `{}`)",
                    w.span(),
                    w.plan
                ),
            )
            .into());
        }
    }
    let specs: Vec<WindowSpec> = match entered {
        Some(specs) => specs.to_vec(),
        // Those not begun, but not those over that the sweep has not ended yet: they
        // would never begin.
        None if plan_changed => b
            .windows
            .iter()
            .filter(|w| {
                w.state == WindowState::Scheduled
                    && w.to >= verbund_domain::capacity::local_today(now)
            })
            .map(CapacityWindow::spec)
            .collect(),
        None => return Ok(b.windows.clone()),
    };
    Ok(check_windows(
        "/windows",
        &specs,
        &offering.spec,
        new_plan,
        &b.windows,
        now,
    )?)
}

/// Whether a booking, changed from `before` to `after`, still fits on the site it holds:
/// its own plan at the site's fullest moment ahead (when its plan or windows change: a
/// window removed gives back room others' windows may have taken), and each window
/// beside the fullest moment within it, with what the booking itself holds now and its
/// own windows set aside. `entered` are the windows the request named, whose index the
/// refusal gives.
fn check_fits_on_site(
    before: &Booking,
    after: &Booking,
    entered: Option<&[WindowSpec]>,
    usage: Option<&SiteUsage>,
    offering: &Offering,
) -> Result<(), BookingError> {
    let site = before.site.as_deref().unwrap_or_default();
    let held = plan(&offering.spec, before.plan_in_effect())?.resources;
    let (left, timeline) = match usage {
        Some(u) => (
            u.left().plus(Load::of(&held)),
            u.timeline_without(&before.id),
        ),
        None => Default::default(),
    };
    let free = verbund_domain::capacity::free_at_peak(left, &timeline);
    let base = plan(&offering.spec, &after.plan)?;
    let claim_changed = after.plan != before.plan || after.windows != before.windows;
    if claim_changed && !base.resources.fits_in(&free) {
        return Err(Invalid::conflict(
            "/plan",
            format!(
                "plan `{}` does not fit into the free capacity of site `{site}` at its fullest moment ahead",
                base.name
            ),
        )
        .into());
    }
    let claim = Claim {
        base: base.resources,
        windows: &after.windows,
    };
    if let Some((w, room)) = verbund_domain::capacity::window_misfit(&claim, left, &timeline) {
        let field = entered
            .and_then(|specs| specs.iter().position(|s| *s == w.spec()))
            .map_or_else(|| "/windows".to_string(), |i| format!("/windows/{i}"));
        return Err(Invalid::conflict(
            field,
            format!(
                "site `{site}` cannot hold the capacity window {} on plan `{}`: it needs {} millicores and {} MiB, and at most {} millicores and {} MiB are free then",
                w.span(),
                w.plan,
                w.reserves.cpu_millis,
                w.reserves.memory_mib,
                room.cpu_millis,
                room.memory_mib
            ),
        )
        .into());
    }
    Ok(())
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
                StoreError::NotFound { .. } => BookingError::Invalid(Invalid::unknown(
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

    pub(crate) async fn offering(&self, name: &str, field: &str) -> Result<Offering, BookingError> {
        self.store.get_offering(name).await.map_err(|e| match e {
            StoreError::NotFound { .. } => BookingError::Invalid(Invalid::unknown(
                field,
                format!("unknown offering `{name}`"),
            )),
            other => other.into(),
        })
    }

    async fn inputs(&self, organisation: &str, offering: &str) -> Result<Inputs, BookingError> {
        let chain = self.chain(organisation).await?;
        let own = chain.first().cloned().ok_or_else(|| {
            BookingError::Internal(format!("organisation `{organisation}` was not read"))
        })?;
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
            organisation: own,
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
            Need::plan(&inp.offering.spec, plan),
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
        let mut inp = self.inputs(&spec.organisation, &spec.offering).await?;
        let book = std::mem::take(&mut inp.book);
        let channel = spec.validate(&inp.offering.spec)?;
        verbund_domain::shared::may_operate(&inp.offering.spec, inp.organisation.land.as_deref())?;
        let version = self.target_version(&inp.offering, &channel).await?;
        let main_plan = plan(&inp.offering.spec, &spec.plan)?.clone();
        let windows = check_windows(
            "/windows",
            &spec.windows,
            &inp.offering.spec,
            &spec.plan,
            &[],
            now,
        )?;
        if let Some(ending) = &spec.ending {
            ending.validate("/ending", now)?;
        }
        let mut dependencies = resolve_dependencies(&inp)?;
        if !spec.dependencies.is_empty() && inp.offering.spec.requires_approval {
            return Err(Invalid::meaning(
                "/dependencies",
                format!(
                    "`{}` waits for a federation admin's approval, which places its \
                     dependencies: book a dependency that needs a configuration first",
                    inp.offering.spec.name
                ),
            )
            .into());
        }
        choose_dependencies(&mut dependencies, &spec.dependencies)?;
        self.check_configured_dependencies(&spec.organisation, &dependencies)
            .await?;
        let today = now.date_naive();
        let organisation = spec.organisation.clone();
        let spec = spec.clone();
        // Declared secrets are kept apart from the configuration (and never returned).
        let (config, secrets) =
            verbund_domain::secrets::split_secrets(&inp.offering.spec.config_schema, &spec.config);
        self.store
            .create_bookings(actor, &organisation, now, move |snap| {
                let mut main = requested(
                    &spec,
                    config.clone(),
                    channel.to_string(),
                    Some(version.clone()),
                    windows.clone(),
                    now,
                );
                main.secrets_set = secrets.keys().cloned().collect();
                let mut placer = Placer::new(book, &inp.chain, candidates(&snap.sites), today)?;
                let (decision, created) = if inp.offering.spec.requires_approval {
                    main.state = transition(main.state, BookingEvent::RequireApproval)?;
                    main.reason =
                        Some("the offering requires a federation admin's approval".into());
                    // Where it could run now; approval decides again (`approve`).
                    let preview = placer.decide(
                        &inp.organisation,
                        &chain_ids(&inp.chain),
                        Need {
                            offering: &inp.offering.spec,
                            plan: &main_plan,
                            windows: &windows,
                        },
                        &[],
                    )?;
                    (preview, Vec::new())
                } else {
                    place_together(
                        &mut placer,
                        &inp,
                        &main_plan,
                        &dependencies,
                        &snap.organisation_bookings,
                        &mut main,
                        now,
                    )?
                };
                let mut out = vec![NewBooking {
                    booking: main,
                    resources: main_plan.resources,
                    decision: serde_json::to_value(&decision).ok(),
                    action: "booking.create".into(),
                    secrets: Some(secrets),
                }];
                out.extend(created);
                Ok::<_, BookingError>(out)
            })
            .await
    }

    /// A dependency that needs a configuration of its own and for which the booking
    /// chose nothing (`Choice::Auto`) cannot be created with an empty one: it must be one
    /// the organisation booked already (bound on the site where both run). Refuses the
    /// booking otherwise, saying that the booking can give it a configuration.
    async fn check_configured_dependencies(
        &self,
        organisation: &str,
        dependencies: &[Dependency],
    ) -> Result<(), BookingError> {
        for dep in dependencies
            .iter()
            .filter(|d| d.needs_configuration.is_some() && d.choice == Choice::Auto)
        {
            let booked = self
                .store
                .list_bookings(
                    &verbund_store::BookingFilter {
                        organisation: Some(organisation.to_string()),
                        offering: Some(dep.offering.spec.name.clone()),
                        ..Default::default()
                    },
                    &verbund_domain::page::PageRequest::default(),
                )
                .await?
                .items
                .iter()
                .any(bindable);
            if let (false, Some(e)) = (booked, &dep.needs_configuration) {
                return Err(Invalid::conflict(
                    "/offering",
                    format!(
                        "dependency `{}` needs its own configuration ({e}): give it one with the \
                         booking (`dependencies`), or book it first",
                        dep.offering.spec.name
                    ),
                )
                .into());
            }
        }
        Ok(())
    }

    /// What booking `offering` with `plan_name` for `organisation` would bring with it
    /// if it were booked now: the site placement would choose for it and its
    /// dependencies together, and per dependency whether the organisation's booking of
    /// it there is bound or a new one created; or why it would be refused. The same
    /// decision as `book` (`place_together`), on the same inputs; stores nothing.
    pub async fn preview(
        &self,
        organisation: &str,
        offering: &str,
        plan_name: &str,
        now: DateTime<Utc>,
    ) -> Result<BookingPreview, BookingError> {
        let mut inp = self.inputs(organisation, offering).await?;
        let book = std::mem::take(&mut inp.book);
        let main_plan = plan(&inp.offering.spec, plan_name)?.clone();
        let dependencies = resolve_dependencies(&inp)?;
        let snap = self.store.booking_snapshot(organisation).await?;
        let mut out = BookingPreview {
            site: None,
            refused: None,
            dependencies: dependencies
                .iter()
                .map(|d| DependencyPreview {
                    offering: d.offering.spec.name.clone(),
                    plan: d.plan.name.clone(),
                    bound: None,
                    needs_configuration: d.needs_configuration.clone(),
                    running: snap
                        .organisation_bookings
                        .iter()
                        .filter(|b| b.offering == d.offering.spec.name && bindable(b))
                        .map(|b| RunningBooking {
                            id: b.id.clone(),
                            site: b.site.clone().unwrap_or_default(),
                            plan: b.plan.clone(),
                        })
                        .collect(),
                })
                .collect(),
        };
        match self
            .check_configured_dependencies(organisation, &dependencies)
            .await
        {
            Err(BookingError::Invalid(i)) => {
                out.refused = Some(i.message);
                return Ok(out);
            }
            other => other?,
        }
        let mut placer = Placer::new(book, &inp.chain, candidates(&snap.sites), now.date_naive())?;
        let spec = BookingSpec {
            dependencies: Default::default(),
            ending: None,
            organisation: organisation.to_string(),
            offering: offering.to_string(),
            plan: main_plan.name.clone(),
            config: serde_json::json!({}),
            channel: "stable".into(),
            windows: Vec::new(),
        };
        let mut main = requested(
            &spec,
            spec.config.clone(),
            spec.channel.clone(),
            inp.offering.latest_version.clone(),
            Vec::new(),
            now,
        );
        place_together(
            &mut placer,
            &inp,
            &main_plan,
            &dependencies,
            &snap.organisation_bookings,
            &mut main,
            now,
        )?;
        if main.state == BookingState::Rejected {
            out.refused = main.reason;
            return Ok(out);
        }
        // `place_together` lists the dependencies' bookings in their order: an existing
        // one's id where it bound one, a new id where it would create one.
        for (d, id) in out.dependencies.iter_mut().zip(&main.dependencies) {
            d.bound = snap
                .organisation_bookings
                .iter()
                .find(|b| &b.id == id)
                .map(|b| b.id.clone());
        }
        out.site = main.site;
        Ok(out)
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
                    Err(Invalid::unknown(
                        "/channel",
                        format!("offering `{}` has no version `{v}`", offering.spec.name),
                    )
                    .into())
                }
            }
            _ => offering.latest_version.clone().ok_or_else(|| {
                Invalid::conflict(
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

    /// Approves a booking that awaits approval and places it with its dependencies, as
    /// booking places one that needs no approval (see `place_together`).
    pub async fn approve(
        &self,
        actor: &str,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<Booking, BookingError> {
        let current = self.store.get_booking(id).await?;
        let mut inp = self
            .inputs(&current.organisation, &current.offering)
            .await?;
        let book = std::mem::take(&mut inp.book);
        let dependencies = resolve_dependencies(&inp)?;
        let today = now.date_naive();
        let stored: Vec<Booking> = self
            .store
            .update_booking_creating::<_, BookingError>(actor, id, now, move |b, snap| {
                if b.state != BookingState::AwaitingApproval {
                    return Err(InvalidTransition {
                        from: b.state,
                        event: BookingEvent::Place,
                    }
                    .into());
                }
                let p = plan(&inp.offering.spec, &b.plan)?.clone();
                let mut placer = Placer::new(book, &inp.chain, candidates(&snap.sites), today)?;
                let mut next = b.clone();
                next.updated_at = now;
                next.state_since = now;
                next.reason = None;
                next.dependencies.clear();
                let (d, created) = place_together(
                    &mut placer,
                    &inp,
                    &p,
                    &dependencies,
                    &snap.organisation_bookings,
                    &mut next,
                    now,
                )?;
                let main = NewBooking {
                    booking: next,
                    resources: p.resources,
                    decision: serde_json::to_value(&d).ok(),
                    action: "booking.approve".into(),
                    secrets: None,
                };
                Ok(Some((main, created)))
            })
            .await?;
        stored.into_iter().next().ok_or_else(|| {
            BookingError::Internal(format!("approving booking `{id}` stored nothing"))
        })
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
        if patch.ending.is_some() && current.ending.is_none() && current.instance.is_none() {
            self.check_may_end(&current).await?;
        }
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
                    || matches!(
                        b.state,
                        BookingState::Exporting | BookingState::Cancelling | BookingState::Retained
                    )
                {
                    return Err(Invalid::conflict(
                        "",
                        format!("a booking in state `{}` cannot be changed", b.state),
                    )
                    .into());
                }
                if b.instance.is_some() {
                    return crate::tenancy::patched(b, &patch, &offering.spec, now);
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
                if let Some(e) = &patch.ending {
                    next.ending = Some(Ending::changed(b.ending.as_ref(), e, now)?);
                }
                let spec = BookingSpec {
                    dependencies: Default::default(),
                    ending: next.ending.as_ref().map(Ending::spec),
                    organisation: next.organisation.clone(),
                    offering: next.offering.clone(),
                    plan: next.plan.clone(),
                    config: verbund_domain::secrets::merge_secrets(&next.config, &secrets),
                    channel: next.channel.clone(),
                    windows: Vec::new(),
                };
                let channel = spec.validate(&offering.spec)?;
                next.channel = channel.to_string();
                next.windows =
                    patched_windows(b, &next.plan, patch.windows.as_deref(), &offering, now)?;
                if next == *b && secrets == stored {
                    return Ok(None);
                }
                let new_plan = plan(&offering.spec, next.plan_in_effect())?;
                if let (Some(site), true) = (&b.site, b.state.holds_capacity()) {
                    let usage = sites.iter().find(|s| &s.site.spec.name == site);
                    check_fits_on_site(b, &next, patch.windows.as_deref(), usage, &offering)?;
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

    /// Starts and ends the capacity windows that are due at `now`, each change one
    /// booking update of its own (audited as `booking.window-start` or
    /// `booking.window-end`, reserving the plan then in effect). Each is decided again
    /// inside the serialised write transaction, so that however many replicas sweep at
    /// once, a window starts and ends exactly once. Returns how many changes it made.
    pub async fn carry_out_windows(
        &self,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<u64, BookingError> {
        let mut made = 0;
        for id in self.store.window_schedule(now).await?.due {
            // One booking's trouble (say, its base plan removed from the offering) keeps
            // neither the others' windows nor the rest of the sweep from their turn.
            match self.carry_out_windows_of(actor, &id, now).await {
                Ok(n) => made += n,
                Err(e) => {
                    tracing::error!(booking = %id, error = %e, "a capacity window's change failed");
                }
            }
        }
        Ok(made)
    }

    /// Carries out every change of booking `id`'s windows due at `now`, each its own
    /// update. A window whose plan the offering no longer has never begins (skipped, as
    /// for a booking being cancelled).
    async fn carry_out_windows_of(
        &self,
        actor: &str,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<u64, BookingError> {
        let mut made = 0;
        loop {
            let mut change = None;
            let current = self.store.get_booking(id).await?;
            let offering = self.offering(&current.offering, "/offering").await?;
            self.store
                .update_booking(actor, id, now, |b, _| {
                    if !b.state.holds_capacity() {
                        return Ok::<_, BookingError>(None);
                    }
                    let cancelling = b.state == BookingState::Cancelling;
                    let Some((mut windows, i, mut c)) =
                        verbund_domain::capacity::advance(&b.windows, now, cancelling)
                    else {
                        return Ok(None);
                    };
                    let plan_gone = |w: &CapacityWindow| offering.spec.plan(&w.plan).is_none();
                    if c == WindowChange::Start && windows.get(i).is_some_and(plan_gone) {
                        c = WindowChange::Skip;
                        if let Some(w) = windows.get_mut(i) {
                            w.state = WindowState::Ended;
                        }
                    }
                    let mut next = b.clone();
                    next.windows = windows;
                    next.updated_at = now;
                    let resources = plan(&offering.spec, next.plan_in_effect())?.resources;
                    change = Some(c);
                    Ok(Some(NewBooking {
                        booking: next,
                        resources,
                        decision: None,
                        action: c.action().into(),
                        secrets: None,
                    }))
                })
                .await?;
            if change.is_none() {
                return Ok(made);
            }
            made += 1;
        }
    }

    /// Cancels a booking: it goes to `cancelling`; the lifecycle sweep retains its data.
    /// A booking that others still need (they depend on it and run, or are being
    /// exported) is not cancelled: 409 naming them.
    pub async fn cancel(
        &self,
        actor: &str,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<Booking, BookingError> {
        let current = self.store.get_booking(id).await?;
        let offering = self.offering(&current.offering, "/offering").await?;
        self.store
            .update_booking_seeing_dependents(actor, id, now, move |b, dependents| {
                if !dependents.is_empty() {
                    return Err(needed_by(b, dependents));
                }
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

    /// Moves bookings through the time-driven part of the lifecycle: capacity windows and
    /// temporary bookings' ends (see [`Bookings::carry_out_endings`]), `cancelling` →
    /// `retained` (their workload is removed; capacity is freed), and `retained` →
    /// `deleted` once the offering's retention period is over. Returns how many moved.
    pub async fn sweep(&self, actor: &str, now: DateTime<Utc>) -> Result<u64, BookingError> {
        let mut moved = self.carry_out_windows(actor, now).await?;
        // Before the cancellations: an export verified now is retained in this pass.
        moved += self.carry_out_endings(actor, now).await?.total();
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
                        _ => {
                            now >= verbund_domain::booking::retention_ends(b.state_since, retention)
                        }
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
