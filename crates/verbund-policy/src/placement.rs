//! Sovereignty placement: where may a booking run, and why (not) elsewhere.
//!
//! For each candidate site the decision checks, in order, the site's last preflight (a
//! site whose cluster failed `verbund agent preflight` takes no new bookings), its
//! capabilities and Kubernetes version, whether it can receive the secrets the
//! offering's configuration declares, its free `prod` capacity, and the Cedar policies
//! that apply to the booking organisation (federation, its Land, itself and its
//! ancestors). Allowed sites are ranked: the organisation's own Land first, then its
//! contracted providers, then the most headroom. Every candidate's verdict carries its
//! reasons.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use cedar_policy::{
    Authorizer, Context, Decision, Entities, EntityUid, PolicySet, Request, RestrictedExpression,
};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use verbund_domain::capacity::{self, CapacityWindow, Claim, Load, Timeline};
use verbund_domain::catalog::{DataClass, OfferingSpec, Plan};
use verbund_domain::directory::{Organisation, ProviderSpec, Resources, SiteSpec};
use verbund_domain::preflight::SitePreflight;

use crate::entities;
use crate::{PolicyBook, PolicyError};

/// A site that could host the booking, with its free `prod` capacity and its last
/// preflight (`None`: never reported, placed as before).
#[derive(Debug, Clone)]
pub struct Candidate {
    pub site: SiteSpec,
    pub provider: ProviderSpec,
    /// Capacity left at the site's fullest moment ahead (its bookings' capacity windows
    /// included): what a plan held for good must fit into.
    pub free: Resources,
    /// Its capacity minus what it reserves now, signed (negative when overbooked): what
    /// the room within a window is measured from.
    pub left: Load,
    /// The changes its bookings' capacity windows will make (empty: none); shared with
    /// the store's copy until a placed booking adds its own.
    pub timeline: Arc<Timeline>,
    pub preflight: Option<SitePreflight>,
}

/// What the booking needs.
#[derive(Debug, Clone, Copy)]
pub struct Need<'a> {
    pub offering: &'a OfferingSpec,
    pub plan: &'a Plan,
    /// Its capacity windows: each must fit beside the fullest moment within it.
    pub windows: &'a [CapacityWindow],
}

impl<'a> Need<'a> {
    /// A need without capacity windows.
    pub fn plan(offering: &'a OfferingSpec, plan: &'a Plan) -> Self {
        Need {
            offering,
            plan,
            windows: &[],
        }
    }
}

/// Why a site is or is not allowed, or why it ranks where it does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Reason {
    /// A policy forbids the placement.
    ForbiddenBy {
        policy: String,
        layer: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        owner: Option<String>,
        description: String,
    },
    /// No federation policy permits the placement.
    NotPermitted,
    /// The site lacks a capability the offering requires.
    MissingCapability { capability: String },
    /// The site's Kubernetes is older than the offering requires.
    KubernetesTooOld { site: String, required: String },
    /// Not enough free capacity in the site's `prod` environment.
    InsufficientCapacity {
        #[schema(inline)]
        need: Resources,
        #[schema(inline)]
        free: Resources,
    },
    /// The site cannot hold one of the booking's capacity windows: its plan does not fit
    /// beside the site's fullest moment within the window.
    WindowDoesNotFit {
        /// The window's first and last day (German local time).
        #[schema(value_type = String, format = Date)]
        from: NaiveDate,
        #[schema(value_type = String, format = Date)]
        to: NaiveDate,
        plan: String,
        #[schema(inline)]
        need: Resources,
        #[schema(inline)]
        free: Resources,
    },
    /// The policy evaluation failed; treated as forbidden.
    EvaluationError { message: String },
    /// The site's last preflight failed: its cluster cannot run what verbund renders.
    PreflightFailed {
        /// When the site reported it.
        reported_at: DateTime<Utc>,
        /// The reasons of its failed checks, e.g. "NetworkPolicy is not enforced: …".
        failures: Vec<String>,
    },
    /// The offering's configuration schema declares secrets, and the site cannot receive
    /// them sealed (no age recipient registered, or Argo CD, which opens no SOPS).
    SecretsUndeliverable { reason: String },
    /// Ranking: the site lies in the organisation's own Land.
    SameLand,
    /// Ranking: the site's provider is one the organisation contracts with.
    ContractedProvider,
}

/// The verdict on one candidate site.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SiteVerdict {
    pub site: String,
    pub provider: String,
    pub region: String,
    pub allowed: bool,
    /// 1 for the best allowed site; absent for forbidden ones.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rank: Option<u32>,
    /// Share of the site's free capacity left after placing the booking (0–1).
    pub headroom: f64,
    pub reasons: Vec<Reason>,
}

/// The whole decision: the chosen site and every candidate's verdict, best first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PlacementDecision {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
    #[schema(value_type = String, format = Date)]
    pub decided_on: NaiveDate,
    pub candidates: Vec<SiteVerdict>,
}

impl PlacementDecision {
    /// The verdict for one site.
    pub fn verdict(&self, site: &str) -> Option<&SiteVerdict> {
        self.candidates.iter().find(|c| c.site == site)
    }
}

/// ISO 3166-2 region of each Land, by its two-digit key.
pub fn land_region(land: &str) -> Option<&'static str> {
    Some(match land {
        "01" => "DE-SH",
        "02" => "DE-HH",
        "03" => "DE-NI",
        "04" => "DE-HB",
        "05" => "DE-NW",
        "06" => "DE-HE",
        "07" => "DE-RP",
        "08" => "DE-BW",
        "09" => "DE-BY",
        "10" => "DE-SL",
        "11" => "DE-BE",
        "12" => "DE-BB",
        "13" => "DE-MV",
        "14" => "DE-SN",
        "15" => "DE-ST",
        "16" => "DE-TH",
        _ => return None,
    })
}

fn context(need: &Need<'_>) -> Result<Context, PolicyError> {
    let classes = &need.offering.data_classes;
    let personal = classes.iter().any(|c| *c >= DataClass::Personal);
    let special = classes.iter().any(|c| *c >= DataClass::SpecialCategories);
    let names: BTreeSet<String> = classes
        .iter()
        .map(|c| {
            serde_json::to_value(c)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default()
        })
        .collect();
    Context::from_pairs([
        (
            "offering".to_string(),
            RestrictedExpression::new_string(need.offering.name.clone()),
        ),
        (
            "category".to_string(),
            RestrictedExpression::new_string(need.offering.category.as_str().to_string()),
        ),
        (
            "data_classes".to_string(),
            RestrictedExpression::new_set(names.into_iter().map(RestrictedExpression::new_string)),
        ),
        (
            "personal".to_string(),
            RestrictedExpression::new_bool(personal),
        ),
        (
            "special".to_string(),
            RestrictedExpression::new_bool(special),
        ),
    ])
    .map_err(|e| PolicyError::Schema(e.to_string()))
}

/// Why a site cannot take bookings of `offering`, whose configuration schema declares
/// secrets, if it cannot: the same rule the renderer applies
/// ([`SiteSpec::secret_delivery`]).
pub fn secrets_reason(offering: &OfferingSpec, site: &SiteSpec) -> Option<Reason> {
    if !verbund_domain::secrets::declares_secrets(&offering.config_schema) {
        return None;
    }
    site.secret_delivery()
        .err()
        .map(|reason| Reason::SecretsUndeliverable { reason })
}

/// Why a site's last preflight keeps new bookings off it, if it does.
pub fn preflight_reason(p: &SitePreflight) -> Option<Reason> {
    p.failed().then(|| Reason::PreflightFailed {
        reported_at: p.reported_at,
        failures: p.failures(),
    })
}

fn headroom(need: &Resources, free: &Resources) -> f64 {
    let ratio = |n: u64, f: u64| {
        if f == 0 {
            0.0
        } else {
            (f.saturating_sub(n)) as f64 / f as f64
        }
    };
    ratio(need.cpu_millis, free.cpu_millis).min(ratio(need.memory_mib, free.memory_mib))
}

/// Decides placements for many bookings against one set of sites and policies.
///
/// Building the Cedar entities once and reusing them is what makes placing all of
/// Germany's bookings fast; `reserve` keeps the free capacity current between decisions.
pub struct Placer {
    book: PolicyBook,
    entities: Entities,
    candidates: Vec<Candidate>,
    action: EntityUid,
    today: NaiveDate,
    authorizer: Authorizer,
    /// Each candidate's entity id, parsed once.
    site_uids: Vec<EntityUid>,
    /// Policy sets by the owners (in an organisation's chain) whose policies they add.
    sets: Mutex<HashMap<Vec<String>, Arc<ApplicableSet>>>,
    /// Policy outcomes already evaluated (see `OutcomeKey`).
    outcomes: Mutex<HashMap<OutcomeKey, Arc<Vec<Reason>>>>,
}

/// The policies that apply to an organisation, and whether any of them looks at the
/// organisation itself (its attributes or identity) rather than only at the site and the
/// offering.
struct ApplicableSet {
    id: usize,
    set: PolicySet,
    reads_principal: bool,
}

/// What a policy outcome depends on: the applicable set, the organisation (only when a
/// policy reads it), the site, and the offering's data. Everything else is the same for
/// every booking, so equal keys give equal outcomes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct OutcomeKey {
    set: usize,
    principal: Option<String>,
    site: usize,
    offering: String,
}

/// One candidate as a verdict sees it: its position (what `OutcomeKey` names) and its
/// entity id.
#[derive(Clone, Copy)]
struct Indexed<'p> {
    index: usize,
    candidate: &'p Candidate,
    uid: &'p EntityUid,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

fn reads_principal(p: &cedar_policy::Policy) -> bool {
    // The scope names `principal` once; any further mention is in a condition.
    p.principal_constraint() != cedar_policy::PrincipalConstraint::Any
        || p.to_string().matches("principal").count() > 1
}

impl Placer {
    /// `organisations` must contain every booking organisation and all its ancestors.
    pub fn new(
        book: PolicyBook,
        organisations: &[Organisation],
        candidates: Vec<Candidate>,
        today: NaiveDate,
    ) -> Result<Self, PolicyError> {
        let mut all = Vec::with_capacity(organisations.len() + candidates.len());
        for o in organisations {
            all.push(entities::organisation(o)?);
        }
        for c in &candidates {
            all.push(entities::site(&c.site, &c.provider, today)?);
        }
        let entities =
            Entities::from_entities(all, None).map_err(|e| PolicyError::Schema(e.to_string()))?;
        let site_uids = candidates
            .iter()
            .map(|c| entities::site_uid(&c.site.name))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Placer {
            book,
            entities,
            candidates,
            action: entities::uid("Verbund::Action", "place")?,
            today,
            authorizer: Authorizer::new(),
            site_uids,
            sets: Mutex::new(HashMap::new()),
            outcomes: Mutex::new(HashMap::new()),
        })
    }

    pub fn candidates(&self) -> &[Candidate] {
        &self.candidates
    }

    /// The candidates with their positions and entity ids.
    fn sites(&self) -> impl Iterator<Item = Indexed<'_>> {
        self.candidates
            .iter()
            .zip(&self.site_uids)
            .enumerate()
            .map(|(index, (candidate, uid))| Indexed {
                index,
                candidate,
                uid,
            })
    }

    /// Takes a booking's resources off a site's free capacity.
    pub fn reserve(&mut self, site: &str, r: &Resources) {
        if let Some(c) = self.candidates.iter_mut().find(|c| c.site.name == site) {
            c.left = c.left.minus(Load::of(r));
            c.free.cpu_millis = c.free.cpu_millis.saturating_sub(r.cpu_millis);
            c.free.memory_mib = c.free.memory_mib.saturating_sub(r.memory_mib);
            c.free.storage_gib = c.free.storage_gib.saturating_sub(r.storage_gib);
        }
    }

    /// Adds a booking's capacity windows to a site's changes ahead, so that the next
    /// decisions see them (its fullest moment, and so its free capacity, may move).
    pub fn reserve_windows(&mut self, site: &str, windows: &[CapacityWindow]) {
        if windows.is_empty() {
            return;
        }
        if let Some(c) = self.candidates.iter_mut().find(|c| c.site.name == site) {
            let timeline = Arc::make_mut(&mut c.timeline);
            for w in windows {
                timeline.add_window(w);
            }
            c.free = capacity::free_at_peak(c.left, &c.timeline);
        }
    }

    /// Gives a booking's resources back to a site.
    pub fn release(&mut self, site: &str, r: &Resources) {
        if let Some(c) = self.candidates.iter_mut().find(|c| c.site.name == site) {
            c.left = c.left.plus(Load::of(r));
            c.free.cpu_millis += r.cpu_millis;
            c.free.memory_mib += r.memory_mib;
            c.free.storage_gib += r.storage_gib;
        }
    }

    fn policy_set(&self, chain: &[String]) -> Arc<ApplicableSet> {
        let owners: Vec<String> = self
            .book
            .owners_in(chain)
            .into_iter()
            .map(str::to_string)
            .collect();
        let mut sets = lock(&self.sets);
        let next = sets.len();
        sets.entry(owners.clone())
            .or_insert_with(|| {
                let refs: Vec<&str> = owners.iter().map(String::as_str).collect();
                let set = self.book.set_for(&refs);
                let reads_principal = set.policies().any(reads_principal);
                Arc::new(ApplicableSet {
                    id: next,
                    set,
                    reads_principal,
                })
            })
            .clone()
    }

    /// The policy part of a verdict: forbidding policies, no permit, or evaluation
    /// errors; empty when the policies allow the placement. Evaluated once per
    /// `OutcomeKey`.
    fn policy_reasons(
        &self,
        applicable: &ApplicableSet,
        principal: &EntityUid,
        organisation: &str,
        site: Indexed<'_>,
        need: &Need<'_>,
    ) -> Result<Arc<Vec<Reason>>, PolicyError> {
        let key = OutcomeKey {
            set: applicable.id,
            principal: applicable.reads_principal.then(|| organisation.to_string()),
            site: site.index,
            offering: need.offering.name.clone(),
        };
        if let Some(hit) = lock(&self.outcomes).get(&key) {
            return Ok(hit.clone());
        }
        let request = Request::new(
            principal.clone(),
            self.action.clone(),
            site.uid.clone(),
            context(need)?,
            None,
        )
        .map_err(|e| PolicyError::Schema(e.to_string()))?;
        let response = self
            .authorizer
            .is_authorized(&request, &applicable.set, &self.entities);
        let mut reasons = Vec::new();
        // Cedar reports reasons and errors from hash sets; sort them so that the same
        // inputs always give the same (stored, audited) explanation.
        let mut errors: Vec<String> = response
            .diagnostics()
            .errors()
            .map(|e| e.to_string())
            .collect();
        errors.sort();
        if !errors.is_empty() {
            reasons.push(Reason::EvaluationError {
                message: errors.join("; "),
            });
        }
        if response.decision() == Decision::Deny {
            let mut forbidden = false;
            let mut ids: Vec<&str> = response
                .diagnostics()
                .reason()
                .map(|id| id.as_ref())
                .collect();
            ids.sort_unstable();
            for id in ids {
                if let Some(info) = self.book.info(id) {
                    if info.effect == "forbid" {
                        forbidden = true;
                        reasons.push(Reason::ForbiddenBy {
                            policy: info.id.clone(),
                            layer: info.layer.as_str().to_string(),
                            owner: info.owner.clone(),
                            description: info.description.clone(),
                        });
                    }
                }
            }
            if !forbidden && errors.is_empty() {
                reasons.push(Reason::NotPermitted);
            }
        }
        let reasons = Arc::new(reasons);
        lock(&self.outcomes).insert(key, reasons.clone());
        Ok(reasons)
    }

    /// Decides where a booking of `organisation` may run.
    ///
    /// `chain` is the organisation's id followed by its ancestors' ids; `contracted`
    /// names providers the organisation prefers by contract.
    /// The verdict on one candidate for one booking.
    fn verdict(
        &self,
        site: Indexed<'_>,
        organisation: &Organisation,
        principal: &EntityUid,
        applicable: &ApplicableSet,
        need: &Need<'_>,
        contracted: &[String],
    ) -> Result<SiteVerdict, PolicyError> {
        let c = site.candidate;
        let required = &need.offering.requirements;
        let mut reasons = Vec::new();
        if let Some(reason) = c.preflight.as_ref().and_then(preflight_reason) {
            reasons.push(reason);
        }
        for cap in required.capabilities.difference(&c.site.capabilities) {
            reasons.push(Reason::MissingCapability {
                capability: cap.clone(),
            });
        }
        if let Some(v) = &required.min_kubernetes {
            let required_minor = v.split_once('.').and_then(|(_, m)| m.parse::<u16>().ok());
            if let Some(req) = required_minor {
                if c.site.kubernetes_minor().unwrap_or(0) < req {
                    reasons.push(Reason::KubernetesTooOld {
                        site: c.site.kubernetes_version.clone(),
                        required: v.clone(),
                    });
                }
            }
        }
        if let Some(reason) = secrets_reason(need.offering, &c.site) {
            reasons.push(reason);
        }
        if !need.plan.resources.fits_in(&c.free) {
            reasons.push(Reason::InsufficientCapacity {
                need: need.plan.resources,
                free: c.free,
            });
        }
        let claim = Claim {
            base: need.plan.resources,
            windows: need.windows,
        };
        if let Some((w, free)) = capacity::window_misfit(&claim, c.left, &c.timeline) {
            reasons.push(Reason::WindowDoesNotFit {
                from: w.from,
                to: w.to,
                plan: w.plan.clone(),
                need: w.reserves,
                free,
            });
        }
        reasons.extend(
            self.policy_reasons(applicable, principal, &organisation.id, site, need)?
                .iter()
                .cloned(),
        );
        let allowed = reasons.is_empty();
        if allowed {
            let home = organisation.land.as_deref().and_then(land_region);
            if home == Some(c.site.location.region.as_str()) {
                reasons.push(Reason::SameLand);
            }
            if contracted.contains(&c.site.provider) {
                reasons.push(Reason::ContractedProvider);
            }
        }
        Ok(SiteVerdict {
            site: c.site.name.clone(),
            provider: c.site.provider.clone(),
            region: c.site.location.region.clone(),
            allowed,
            rank: None,
            headroom: headroom(&need.plan.resources, &c.free),
            reasons,
        })
    }

    /// The verdict on the site a booking runs on, without ranking the others: what
    /// continuous compliance needs, one evaluation per booking.
    ///
    /// Capacity is judged as if the booking were not there yet; a running booking
    /// already holds its share, so callers ignore `InsufficientCapacity` here, and
    /// `PreflightFailed`, which keeps only new bookings off a site.
    pub fn check(
        &self,
        organisation: &Organisation,
        chain: &[String],
        need: Need<'_>,
        site: &str,
    ) -> Result<Option<SiteVerdict>, PolicyError> {
        let Some(site) = self.sites().find(|s| s.candidate.site.name == site) else {
            return Ok(None);
        };
        let applicable = self.policy_set(chain);
        let principal = entities::org_uid(&organisation.id)?;
        self.verdict(site, organisation, &principal, &applicable, &need, &[])
            .map(Some)
    }

    /// Decides where a booking of `organisation` may run.
    ///
    /// `chain` is the organisation's id followed by its ancestors' ids; `contracted`
    /// names providers the organisation prefers by contract.
    pub fn decide(
        &self,
        organisation: &Organisation,
        chain: &[String],
        need: Need<'_>,
        contracted: &[String],
    ) -> Result<PlacementDecision, PolicyError> {
        let applicable = self.policy_set(chain);
        let principal = entities::org_uid(&organisation.id)?;
        let mut verdicts = Vec::with_capacity(self.candidates.len());
        for site in self.sites() {
            verdicts.push(self.verdict(
                site,
                organisation,
                &principal,
                &applicable,
                &need,
                contracted,
            )?);
        }
        verdicts.sort_by(|a, b| {
            let key = |v: &SiteVerdict| {
                (
                    !v.allowed,
                    !v.reasons.contains(&Reason::SameLand),
                    !v.reasons.contains(&Reason::ContractedProvider),
                )
            };
            key(a)
                .cmp(&key(b))
                .then(b.headroom.total_cmp(&a.headroom))
                .then(a.site.cmp(&b.site))
        });
        let mut rank = 0;
        for v in verdicts.iter_mut().filter(|v| v.allowed) {
            rank += 1;
            v.rank = Some(rank);
        }
        Ok(PlacementDecision {
            site: verdicts
                .first()
                .filter(|v| v.allowed)
                .map(|v| v.site.clone()),
            decided_on: self.today,
            candidates: verdicts,
        })
    }
}
