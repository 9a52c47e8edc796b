//! "Aufgaben": the work waiting for the signed-in person, a section per role. The
//! federation admin finds the bookings awaiting approval (each opens the booking with
//! its requested configuration and the approval form) and the operators' proposals of
//! placement facts, to approve or reject (four eyes: one's own proposal has no approve
//! button, and the page says why); an operator finds its pending proposals and its
//! sites' problems (unhealthy, silent, or a preflight that did not pass); a vendor the
//! rollouts of its offerings that halted or were aborted.
//!
//! Everything comes from the API's handlers with the person's `Caller`, so each section
//! holds exactly what the API lets that person see, and a decision is the API's.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::{Form, Json};
use serde::Deserialize;
use verbund_api::extract::{ApiJson, ApiQuery};
use verbund_api::routes::bookings::{self, BookingQuery};
use verbund_api::routes::facts::{self, proposal_target, ProposalQuery, ProposalRejection};
use verbund_api::routes::fleet;
use verbund_api::routes::rollouts::{self, RolloutQuery};
use verbund_api::ApiError;
use verbund_domain::account::Role;
use verbund_domain::booking::BookingState;
use verbund_domain::facts::{FactKind, FactProposal};
use verbund_domain::preflight::PreflightVerdict;
use verbund_domain::rollout::RolloutState;
use verbund_policy::authz::{Act, Target};

use super::explain::Directory;
use super::{every_page, expired, flash, outcome};
use crate::error::api_error;
use crate::i18n::Lang;
use crate::session::Viewer;
use crate::view::{badge, local_time, render, status_label, Chrome};
use crate::WebState;

/// Whether the person decides on bookings awaiting approval (the API's question).
fn approves_bookings(v: &Viewer) -> bool {
    v.caller.may(Act::Approve, &Target::new("booking"))
}

/// Whether the person proposes placement facts for a provider it operates.
fn proposes_facts(v: &Viewer) -> bool {
    v.caller.0.memberships.iter().any(|m| {
        m.role == Role::ProviderOperator
            && m.provider.as_deref().is_some_and(|p| {
                v.caller
                    .may(Act::Write, &Target::new("fact-proposal").provider(p))
            })
    })
}

/// Whether the person decides on proposals of placement facts.
fn decides_facts(v: &Viewer) -> bool {
    v.caller.may(Act::Approve, &Target::new("fact-proposal"))
}

/// Whether the person controls the rollouts of a vendor's offerings.
fn rolls_out(v: &Viewer) -> bool {
    v.caller.0.memberships.iter().any(|m| {
        m.role == Role::Vendor
            && m.organisation
                .as_deref()
                .is_some_and(|o| v.caller.may(Act::Write, &Target::new("rollout").vendor(o)))
    })
}

/// Whether the person has a queue at all (the navigation offers "Aufgaben" then),
/// asked with the API's own questions.
pub fn has_queue(v: &Viewer) -> bool {
    approves_bookings(v) || decides_facts(v) || proposes_facts(v) || rolls_out(v)
}

pub struct ApprovalRow {
    pub id: String,
    pub offering: String,
    pub organisation: String,
    pub requested: String,
}

pub struct ProposalRow {
    pub id: String,
    /// "Rechenzentrum Hamburg 1" or the provider's name, with what it is.
    pub object: String,
    pub facts: Vec<(String, String)>,
    pub proposed_by: String,
    pub proposed_at: String,
    /// The person's own proposal: never theirs to approve.
    pub own: bool,
    pub may_approve: bool,
    pub may_reject: bool,
}

pub struct SiteProblem {
    pub site: String,
    pub health: String,
    pub badge: &'static str,
    pub problems: Vec<String>,
}

pub struct RolloutRow {
    pub id: String,
    pub offering: String,
    pub version: String,
    pub state: String,
    pub badge: &'static str,
    pub reason: Option<String>,
}

#[derive(Template)]
#[template(path = "work.html")]
struct WorkPage {
    c: Chrome,
    /// Each section only for whom it concerns (`None`: not shown).
    approvals: Option<Vec<ApprovalRow>>,
    proposals: Option<Vec<ProposalRow>>,
    /// An operator's view of the proposals (its own, pending; no decisions).
    proposer: bool,
    sites: Option<Vec<SiteProblem>>,
    rollouts: Option<Vec<RolloutRow>>,
}

#[derive(Deserialize)]
pub struct Done {
    done: Option<String>,
}

/// A placement fact's name in words.
pub fn fact_label(field: &str, lang: Lang) -> String {
    let de = match field {
        "legal_form" => "Rechtsform",
        "public_law" => "Öffentlich-rechtlich",
        "seat" => "Sitz",
        "jurisdictions" => "Rechtsordnungen",
        "parent_companies" => "Muttergesellschaften",
        "registration" => "Registernummer",
        "location" => "Standort",
        "certifications" => "Zertifizierungen",
        "environments" => "Umgebungen",
        other => other,
    };
    let en = match field {
        "legal_form" => "Legal form",
        "public_law" => "Public-law body",
        "seat" => "Seat",
        "jurisdictions" => "Jurisdictions",
        "parent_companies" => "Parent companies",
        "registration" => "Registration number",
        "location" => "Location",
        "certifications" => "Certifications",
        "environments" => "Environments",
        other => other,
    };
    match lang {
        Lang::De => de.to_string(),
        Lang::En => en.to_string(),
    }
}

/// A register's name in words (`verbund_domain::registration::RegistrationKind`).
fn registration_kind_label(kind: &str, lang: Lang) -> &str {
    match (kind, lang) {
        ("local", Lang::De) => "Register",
        ("local", Lang::En) => "register",
        ("vat-id", Lang::De) => "USt-IdNr.",
        ("vat-id", Lang::En) => "VAT ID",
        ("eori", _) => "EORI",
        ("euid", _) => "EUID",
        (other, _) => other,
    }
}

/// A fact's value as text: plain for text, numbers and yes/no; a place as "city,
/// region (country)", a certification as "scheme (level) bis …", a company as "name
/// (jurisdiction)", a registration number as "number (register)", none as "–"; compact
/// JSON for anything else.
pub fn fact_value(v: &serde_json::Value, lang: Lang) -> String {
    use serde_json::Value;
    let text = |o: &serde_json::Map<String, Value>, k: &str| {
        o.get(k).and_then(Value::as_str).map(str::to_string)
    };
    match (v, lang) {
        (Value::String(s), _) => s.clone(),
        (Value::Bool(true), Lang::De) => "ja".into(),
        (Value::Bool(false), Lang::De) => "nein".into(),
        (Value::Bool(true), Lang::En) => "yes".into(),
        (Value::Bool(false), Lang::En) => "no".into(),
        (Value::Null, _) => "–".into(),
        (Value::Array(a), _) if a.is_empty() => "–".into(),
        (Value::Array(a), _) => a
            .iter()
            .map(|x| fact_value(x, lang))
            .collect::<Vec<_>>()
            .join("; "),
        (Value::Object(o), _) => {
            if let Some(city) = text(o, "city") {
                let mut s = city;
                if let Some(r) = text(o, "region") {
                    s.push_str(&format!(", {r}"));
                }
                if let Some(c) = text(o, "country") {
                    s.push_str(&format!(" ({c})"));
                }
                s
            } else if let Some(scheme) = text(o, "scheme") {
                let mut s = scheme;
                if let Some(l) = text(o, "level") {
                    s.push_str(&format!(" ({l})"));
                }
                if let Some(u) = text(o, "valid_until") {
                    s.push_str(match lang {
                        Lang::De => " bis ",
                        Lang::En => " until ",
                    });
                    s.push_str(&u);
                }
                s
            } else if let (Some(n), Some(j)) = (text(o, "name"), text(o, "jurisdiction")) {
                format!("{n} ({j})")
            } else if let (Some(k), Some(n)) = (text(o, "kind"), text(o, "value")) {
                format!("{n} ({})", registration_kind_label(&k, lang))
            } else {
                v.to_string()
            }
        }
        (other, _) => other.to_string(),
    }
}

/// What a proposal is about, in words: a site by its name, a provider by its name
/// and what it is.
pub fn object_title(kind: FactKind, name: &str, dir: Option<&Directory>, lang: Lang) -> String {
    match kind {
        FactKind::Site => dir
            .and_then(|d| d.sites.get(name))
            .map_or_else(|| name.to_string(), |s| s.spec.display_name.clone()),
        FactKind::Provider => {
            let title = dir
                .and_then(|d| d.providers.get(name))
                .map_or_else(|| name.to_string(), |p| p.spec.display_name.clone());
            match lang {
                Lang::De => format!("{title} (Betreiber)"),
                Lang::En => format!("{title} (provider)"),
            }
        }
    }
}

fn proposal_row(p: &FactProposal, v: &Viewer, dir: Option<&Directory>) -> ProposalRow {
    let target = proposal_target(p);
    let own = p.proposer_id == v.caller.0.user_id;
    ProposalRow {
        id: p.id.clone(),
        object: object_title(p.kind, &p.object, dir, v.lang),
        facts: p
            .facts
            .iter()
            .map(|(f, val)| (fact_label(f, v.lang), fact_value(val, v.lang)))
            .collect(),
        proposed_by: p.proposed_by.trim_start_matches("user/").to_string(),
        proposed_at: local_time(p.proposed_at, v.lang),
        own,
        may_approve: !own && v.caller.may(Act::Approve, &target),
        may_reject: v.caller.may(Act::Delete, &target),
    }
}

async fn approvals(state: &WebState, v: &Viewer) -> Result<Vec<ApprovalRow>, ApiError> {
    let waiting = every_page(|after| async move {
        bookings::list(
            State(state.api.clone()),
            v.caller.clone(),
            ApiQuery(BookingQuery {
                organisation: None,
                offering: None,
                site: None,
                state: Some(BookingState::AwaitingApproval),
                noncompliant: false,
                limit: Some(1000),
                after,
            }),
        )
        .await
        .map(|Json(p)| p)
    })
    .await?;
    let store = &state.api.store;
    let mut rows = Vec::new();
    for b in waiting {
        rows.push(ApprovalRow {
            offering: store
                .get_offering(&b.offering)
                .await
                .map_or_else(|_| b.offering.clone(), |o| o.spec.display_name),
            organisation: store
                .get_organisation(&b.organisation)
                .await
                .map_or_else(|_| b.organisation.clone(), |o| o.name),
            requested: local_time(b.created_at, v.lang),
            id: b.id,
        });
    }
    Ok(rows)
}

async fn proposals(
    state: &WebState,
    v: &Viewer,
    dir: Option<&Directory>,
) -> Result<Vec<ProposalRow>, ApiError> {
    let pending = every_page(|after| async move {
        facts::list(
            State(state.api.clone()),
            v.caller.clone(),
            ApiQuery(ProposalQuery {
                state: Some("pending".into()),
                provider: None,
                limit: Some(1000),
                after,
            }),
        )
        .await
        .map(|Json(p)| p)
    })
    .await?;
    Ok(pending.iter().map(|p| proposal_row(p, v, dir)).collect())
}

async fn site_problems(
    state: &WebState,
    v: &Viewer,
    dir: Option<&Directory>,
) -> Result<Vec<SiteProblem>, ApiError> {
    let Json(f) = fleet::fleet(State(state.api.clone()), v.caller.clone()).await?;
    let t = v.lang.texts();
    Ok(f.sites
        .iter()
        .filter_map(|s| {
            let health = s.health.as_str();
            let mut problems = Vec::new();
            if let Some(m) = &s.message {
                problems.push(m.clone());
            }
            if let Some(p) = &s.preflight {
                if p.verdict != PreflightVerdict::Pass {
                    let label = match p.verdict {
                        PreflightVerdict::Fail => t.preflight_fail,
                        _ => t.preflight_warn,
                    };
                    problems.push(format!("{}: {label}", t.preflight));
                    problems.extend(
                        p.checks
                            .iter()
                            .filter(|c| c.verdict != PreflightVerdict::Pass)
                            .map(|c| format!("{}: {}", c.name, c.reason)),
                    );
                }
            }
            (health != "healthy" || !problems.is_empty()).then(|| SiteProblem {
                site: dir.map_or_else(|| s.site.clone(), |d| d.site_title(&s.site)),
                health: status_label(v.lang, health).to_string(),
                badge: badge(health),
                problems,
            })
        })
        .collect())
}

async fn failed_rollouts(state: &WebState, v: &Viewer) -> Result<Vec<RolloutRow>, ApiError> {
    let mut rows = Vec::new();
    for wanted in [RolloutState::Halted, RolloutState::Aborted] {
        let found = every_page(|after| async move {
            rollouts::list(
                State(state.api.clone()),
                v.caller.clone(),
                ApiQuery(RolloutQuery {
                    offering: None,
                    state: Some(wanted),
                    limit: Some(1000),
                    after,
                }),
            )
            .await
            .map(|Json(p)| p)
        })
        .await?;
        for r in found {
            let offering = state
                .api
                .store
                .get_offering(&r.offering)
                .await
                .map_or_else(|_| r.offering.clone(), |o| o.spec.display_name);
            let s = r.state.as_str();
            rows.push(RolloutRow {
                offering,
                version: r.version.clone(),
                state: status_label(v.lang, s).to_string(),
                badge: badge(s),
                reason: r.reason.clone(),
                id: r.id,
            });
        }
    }
    Ok(rows)
}

/// `GET /work`.
pub async fn page(State(state): State<WebState>, v: Viewer, Query(q): Query<Done>) -> Response {
    let dir = Directory::load(&state.api.store).await.ok();
    let decides = decides_facts(&v);
    let operator = proposes_facts(&v);
    let result = async {
        Ok::<WorkPage, ApiError>(WorkPage {
            approvals: if approves_bookings(&v) {
                Some(approvals(&state, &v).await?)
            } else {
                None
            },
            proposals: if decides || operator {
                Some(proposals(&state, &v, dir.as_ref()).await?)
            } else {
                None
            },
            proposer: !decides,
            sites: if operator {
                Some(site_problems(&state, &v, dir.as_ref()).await?)
            } else {
                None
            },
            rollouts: if rolls_out(&v) {
                Some(failed_rollouts(&state, &v).await?)
            } else {
                None
            },
            c: Chrome::for_viewer(&v, v.lang.texts().work_title, "work", "/work")
                .with_flash(flash(v.lang, q.done.as_deref())),
        })
    }
    .await;
    match result {
        Ok(page) => render(StatusCode::OK, &page),
        Err(e) => api_error(&v, &e, "/"),
    }
}

/// What a proposal's forms send.
#[derive(Deserialize)]
pub struct DecisionForm {
    csrf: String,
    #[serde(default)]
    reason: String,
}

/// `POST /work/proposals/{id}/{approve|reject}`: through the API's handler, then back to
/// the queue. The API refuses one's own proposal (four eyes) in words the error page
/// shows.
pub async fn decide(
    State(state): State<WebState>,
    v: Viewer,
    Path((id, action)): Path<(String, String)>,
    Form(f): Form<DecisionForm>,
) -> Response {
    if !v.csrf_ok(&f.csrf) {
        return expired(&v);
    }
    let (s, c, p) = (State(state.api.clone()), v.caller.clone(), Path(id.clone()));
    let (result, code) = match action.as_str() {
        "approve" => (facts::approve(s, c, p).await, "fact-approved"),
        "reject" => {
            let r = ProposalRejection {
                reason: f.reason.trim().to_string(),
            };
            (facts::reject(s, c, p, ApiJson(r)).await, "fact-rejected")
        }
        _ => (
            Err(ApiError::NotFound(format!("no proposal action `{action}`"))),
            "",
        ),
    };
    outcome(&v, result, "/work", code)
}
