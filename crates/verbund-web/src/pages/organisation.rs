//! My organisation: its bookings with live status, "where is our data?", its own
//! placement restrictions, and a data export.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use verbund_api::extract::ApiQuery;
use verbund_api::routes::bookings::{self, BookingQuery};
use verbund_api::routes::policies::{self, PolicyQuery, PolicyView};
use verbund_api::ApiError;
use verbund_domain::booking::Booking;
use verbund_domain::directory::{Certification, Organisation};

use super::explain::Directory;
use super::{flash, my_organisations, state_label};
use crate::error::api_error;
use crate::session::Viewer;
use crate::view::{badge, local_time, render, Chrome};
use crate::WebState;

#[derive(Deserialize, Default)]
pub struct OrgQuery {
    org: Option<String>,
    done: Option<String>,
}

/// The organisation a page is about: the one asked for (the API decides whether the
/// person may see it), else the person's first.
async fn chosen(
    state: &WebState,
    v: &Viewer,
    asked: Option<&str>,
) -> Result<(Organisation, Vec<Organisation>), ApiError> {
    let mine = my_organisations(state, v)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let id = match asked.or(mine.first().map(|o| o.id.as_str())) {
        Some(id) => id.to_string(),
        None => return Err(ApiError::NotFound(v.lang.texts().no_organisation.into())),
    };
    let id = match state.api.store.find_organisation_by_key(&id).await {
        Ok(Some(o)) => o.id,
        _ => id,
    };
    // The directory is public; an organisation's bookings, data and export are not:
    // the page is for those who may read its bookings (its own people, the federation).
    let chain = state
        .api
        .store
        .organisation_chain(&id)
        .await
        .unwrap_or_default();
    let hidden = || ApiError::NotFound(format!("organisation `{id}` not found"));
    if chain.is_empty()
        || !v.caller.may(
            verbund_policy::authz::Act::Read,
            &verbund_policy::authz::Target::new("booking").in_organisation(chain),
        )
    {
        return Err(hidden());
    }
    let Json(org) = verbund_api::routes::organisations::read(
        State(state.api.clone()),
        v.caller.clone(),
        axum::extract::Path(id),
    )
    .await?;
    Ok((org, mine))
}

/// Every booking of `org` the person may see, through the API's list.
async fn org_bookings(state: &WebState, v: &Viewer, org: &str) -> Result<Vec<Booking>, ApiError> {
    super::every_page(|after| async move {
        bookings::list(
            State(state.api.clone()),
            v.caller.clone(),
            ApiQuery(BookingQuery {
                organisation: Some(org.to_string()),
                offering: None,
                site: None,
                state: None,
                noncompliant: false,
                limit: Some(1000),
                after,
            }),
        )
        .await
        .map(|Json(page)| page)
    })
    .await
}

pub struct Row {
    pub id: String,
    pub offering: String,
    pub state: &'static str,
    pub state_label: &'static str,
    pub badge: &'static str,
    pub version: String,
    pub running: String,
    pub channel: String,
    pub site: String,
    pub simulated: bool,
}

#[derive(Template)]
#[template(path = "organisation.html")]
struct OrgPage {
    c: Chrome,
    org: Organisation,
    others: Vec<Organisation>,
    rows: Vec<Row>,
    counts: BTreeMap<&'static str, usize>,
    restrictions: Vec<PolicyView>,
    /// The "Einer für Alle" services that serve the organisation's Land.
    efa: Vec<EfaRow>,
}

/// An "Einer für Alle" service that serves the organisation's Land.
pub struct EfaRow {
    pub name: String,
    pub title: String,
    /// Who operates it for whom, in words.
    pub words: String,
    /// Whether an organisation of the operating Land runs it.
    pub running: bool,
}

/// The EfA services of the catalog that serve `org`'s Land, each with whether an
/// organisation of its operating Land runs it (its Land has connected the others to it).
async fn efa_for(state: &WebState, v: &Viewer, org: &Organisation) -> Vec<EfaRow> {
    let Some(land) = org.land.clone() else {
        return Vec::new();
    };
    let Ok(serving) = super::catalog::offerings_serving(state, v, Some(&land)).await else {
        return Vec::new();
    };
    let store = &state.api.store;
    let lands = super::catalog::land_names(store).await;
    let mut out = Vec::new();
    for o in serving {
        let Some(efa) = o.spec.efa.as_ref() else {
            continue;
        };
        let running = store
            .runs_in_land(&o.spec.name, &efa.operator)
            .await
            .unwrap_or(false);
        out.push(EfaRow {
            words: super::catalog::efa_words(efa, &lands, v.lang),
            name: o.spec.name,
            title: o.spec.display_name,
            running,
        });
    }
    out
}

/// `GET /organisation`.
pub async fn page(State(state): State<WebState>, v: Viewer, Query(q): Query<OrgQuery>) -> Response {
    let (org, mine) = match chosen(&state, &v, q.org.as_deref()).await {
        Ok(x) => x,
        Err(e) => return api_error(&v, &e, "/catalog"),
    };
    let list = match org_bookings(&state, &v, &org.id).await {
        Ok(l) => l,
        Err(e) => return api_error(&v, &e, "/catalog"),
    };
    let store = &state.api.store;
    let ids: Vec<String> = list.iter().map(|b| b.id.clone()).collect();
    let observed: HashMap<String, (Option<String>, String)> = store
        .booking_statuses(&ids)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|s| {
            (
                s.booking.clone(),
                (s.applied_version.clone(), s.site.clone()),
            )
        })
        .collect();
    let simulated: BTreeSet<String> = simulated_sites(store).await;
    let names: HashMap<String, String> = super::catalog::all_offerings(&state, &v)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|o| (o.spec.name, o.spec.display_name))
        .collect();
    let lang = v.lang;
    let mut counts = BTreeMap::new();
    let rows = list
        .iter()
        .map(|b| {
            let st = b.state.as_str();
            *counts.entry(state_label(lang, st)).or_insert(0) += 1;
            Row {
                id: b.id.clone(),
                offering: names
                    .get(&b.offering)
                    .cloned()
                    .unwrap_or_else(|| b.offering.clone()),
                state: st,
                state_label: state_label(lang, st),
                badge: badge(st),
                version: b.version.clone().unwrap_or_else(|| "–".into()),
                running: observed
                    .get(&b.id)
                    .and_then(|o| o.0.clone())
                    .unwrap_or_else(|| "–".into()),
                channel: b.channel.clone(),
                site: b.site.clone().unwrap_or_else(|| "–".into()),
                simulated: b.site.as_ref().is_some_and(|s| simulated.contains(s)),
            }
        })
        .collect();
    let restrictions = policies::list(
        State(state.api.clone()),
        v.caller.clone(),
        ApiQuery(PolicyQuery {
            organisation: Some(org.id.clone()),
        }),
    )
    .await
    .map(|Json(p)| {
        p.into_iter()
            .filter(|p| p.owner.as_deref() == Some(org.id.as_str()))
            .collect()
    })
    .unwrap_or_default();
    let efa = efa_for(&state, &v, &org).await;
    let t = lang.texts();
    render(
        StatusCode::OK,
        &OrgPage {
            efa,
            c: Chrome::for_viewer(
                &v,
                format!("{}: {}", t.nav_organisation, org.name),
                "organisation",
                "/organisation",
            )
            .with_flash(flash(lang, q.done.as_deref())),
            others: mine.into_iter().filter(|o| o.id != org.id).collect(),
            org,
            rows,
            counts,
            restrictions,
        },
    )
}

pub struct Place {
    pub site: String,
    pub title: String,
    pub location: String,
    pub operator: String,
    pub operator_detail: String,
    /// Name (scheme and level), valid until, valid today, and who attested it: the
    /// issuer of its credential (`None` for a certification the federation stated, whose
    /// provenance the facts show).
    pub certifications: Vec<(String, String, bool, Option<String>)>,
    /// The offerings' names (for the export) and, in the same order, their titles.
    pub offerings: Vec<String>,
    pub offering_titles: Vec<String>,
    pub environment: String,
    pub simulated: bool,
    /// The placement facts of the site and its operator, each with who stated it, who
    /// approved it and when.
    pub facts: Vec<FactLine>,
    /// Proposed facts not in effect yet (shown to whom the API shows them).
    pub pending: Vec<FactLine>,
    /// Where the site lies on the map of Germany, when its coordinates are known.
    pub pin: Option<(f64, f64)>,
}

/// One placement fact with its provenance, in words.
pub struct FactLine {
    pub fact: String,
    pub value: String,
    /// "angegeben von admin, 02.12.2026, 10:00; freigegeben von …".
    pub provenance: String,
}

/// The fact sheets of a site and its provider (the API's, with the person's caller),
/// in words.
async fn fact_lines(
    state: &WebState,
    v: &Viewer,
    site: &str,
    provider: Option<&str>,
) -> (Vec<FactLine>, Vec<FactLine>) {
    use verbund_api::routes::facts;
    let lang = v.lang;
    let t = lang.texts();
    let who = |s: &str| s.trim_start_matches("user/").to_string();
    let mut sheets = Vec::new();
    if let Some(p) = provider {
        if let Ok(Json(s)) = facts::provider_facts(
            State(state.api.clone()),
            v.caller.clone(),
            axum::extract::Path(p.to_string()),
        )
        .await
        {
            sheets.push(s);
        }
    }
    if let Ok(Json(s)) = facts::site_facts(
        State(state.api.clone()),
        v.caller.clone(),
        axum::extract::Path(site.to_string()),
    )
    .await
    {
        sheets.push(s);
    }
    let mut stated = Vec::new();
    let mut pending = Vec::new();
    for sheet in sheets {
        for f in &sheet.facts {
            let mut provenance = match (&f.stated_by, f.stated_at) {
                (Some(by), Some(at)) => {
                    format!("{} {}, {}", t.fact_stated_by, who(by), local_time(at, lang))
                }
                (Some(by), None) => format!("{} {}", t.fact_stated_by, who(by)),
                _ => t.fact_stated_unknown.to_string(),
            };
            if let Some(by) = &f.approved_by {
                provenance.push_str(&format!("; {} {}", t.fact_approved_by, who(by)));
                if let Some(at) = f.approved_at {
                    provenance.push_str(&format!(", {}", local_time(at, lang)));
                }
            }
            stated.push(FactLine {
                fact: super::work::fact_label(&f.field, lang),
                value: super::work::fact_value(&f.value, lang),
                provenance,
            });
        }
        for p in &sheet.pending {
            for (field, value) in &p.facts {
                pending.push(FactLine {
                    fact: super::work::fact_label(field, lang),
                    value: super::work::fact_value(value, lang),
                    provenance: format!(
                        "{} {}, {}",
                        t.fact_proposed_by,
                        who(&p.proposed_by),
                        local_time(p.proposed_at, lang)
                    ),
                });
            }
        }
    }
    (stated, pending)
}

#[derive(Template)]
#[template(path = "data.html")]
struct DataPage {
    c: Chrome,
    org: Organisation,
    places: Vec<Place>,
    /// The map: Germany's outline and the view box.
    outline: String,
    width: String,
    height: String,
    /// When the answer was read, in the reader's local time (printed with it).
    as_of: String,
    /// Sites without coordinates: listed, but not on the map.
    unmapped: usize,
}

/// The live certification credentials of `sites`, by site: each certification with the
/// name of the body that attested it.
async fn attested_certifications(
    state: &WebState,
    sites: impl Iterator<Item = &String>,
) -> Result<HashMap<String, Vec<(Certification, String)>>, ApiError> {
    let mut out = HashMap::new();
    for site in sites {
        let live: Vec<(Certification, String)> = state
            .api
            .store
            .site_credentials(site)
            .await?
            .into_iter()
            .filter(|c| c.revoked_at.is_none())
            .map(|c| {
                let cert = Certification {
                    scheme: c.certified.scheme,
                    level: c.certified.level,
                    valid_until: c.certified.valid_until.date_naive(),
                };
                (cert, c.certified.issuer_name)
            })
            .collect();
        out.insert(site.clone(), live);
    }
    Ok(out)
}

/// The sites that hold data of the organisation's live bookings.
async fn places(state: &WebState, v: &Viewer, org: &Organisation) -> Result<Vec<Place>, ApiError> {
    let list = org_bookings(state, v, &org.id).await?;
    let dir = Directory::load(&state.api.store).await?;
    let simulated: BTreeSet<String> = simulated_sites(&state.api.store).await;
    let titles: HashMap<String, String> = super::catalog::all_offerings(state, v)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|o| (o.spec.name, o.spec.display_name))
        .collect();
    // Per site, each offering and whether the organisation is a tenant of a shared
    // instance there (its data is then in the instance's data center).
    let mut by_site: BTreeMap<String, BTreeSet<(String, bool)>> = BTreeMap::new();
    for b in list
        .iter()
        .filter(|b| !matches!(b.state.as_str(), "deleted" | "rejected"))
    {
        if let Some(s) = &b.site {
            by_site
                .entry(s.clone())
                .or_default()
                .insert((b.offering.clone(), b.instance.is_some()));
        }
    }
    let today = state.api.now().date_naive();
    let lang = v.lang;
    let t = lang.texts();
    let attested = attested_certifications(state, by_site.keys()).await?;
    // What placement reads: the certifications the federation stated only while its
    // trust list still counts them.
    let count_stated = state
        .api
        .store
        .trust_list()
        .await?
        .list
        .count_stated_certifications;
    let mut places: Vec<Place> = by_site
        .into_iter()
        .map(|(site, offerings)| {
            let s = dir.sites.get(&site);
            let p = s.and_then(|s| dir.providers.get(&s.spec.provider));
            Place {
                title: s.map_or_else(|| site.clone(), |s| s.spec.display_name.clone()),
                location: s.map_or_else(String::new, |s| {
                    format!(
                        "{}, {} ({})",
                        s.spec.location.city, s.spec.location.region, s.spec.location.country
                    )
                }),
                operator: p.map_or_else(String::new, |p| p.spec.display_name.clone()),
                operator_detail: p.map_or_else(String::new, |p| {
                    format!(
                        "{}, {} {}; {}: {}",
                        p.spec.legal_form,
                        t.seat,
                        p.spec.seat.city,
                        t.jurisdictions,
                        p.spec
                            .jurisdictions
                            .iter()
                            .cloned()
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                }),
                certifications: s.map_or_else(Vec::new, |s| {
                    let stated = s
                        .spec
                        .certifications
                        .iter()
                        .filter(|_| count_stated)
                        .map(|c| (c, None));
                    let attested = attested
                        .get(&site)
                        .into_iter()
                        .flatten()
                        .map(|(c, by)| (c, Some(by.clone())));
                    stated
                        .chain(attested)
                        .map(|(c, by)| {
                            let name = match &c.level {
                                Some(l) => format!("{} ({l})", c.scheme),
                                None => c.scheme.clone(),
                            };
                            (
                                name,
                                crate::view::date(c.valid_until, lang),
                                c.valid_until >= today,
                                by,
                            )
                        })
                        .collect()
                }),
                environment: s.map_or_else(String::new, |s| {
                    s.spec
                        .environments
                        .iter()
                        .map(|e| e.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                }),
                simulated: simulated.contains(&site),
                offering_titles: offerings
                    .iter()
                    .map(|(o, shared)| {
                        let title = titles.get(o).cloned().unwrap_or_else(|| o.clone());
                        match shared {
                            true => format!("{title} ({})", t.shared_tenancy),
                            false => title,
                        }
                    })
                    .collect(),
                offerings: offerings
                    .into_iter()
                    .map(|(o, _)| o)
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect(),
                facts: Vec::new(),
                pending: Vec::new(),
                pin: s.and_then(|s| {
                    let l = &s.spec.location;
                    Some(crate::map::project(l.longitude?, l.latitude?))
                }),
                site,
            }
        })
        .collect();
    for place in &mut places {
        let provider = dir.sites.get(&place.site).map(|s| s.spec.provider.clone());
        (place.facts, place.pending) = fact_lines(state, v, &place.site, provider.as_deref()).await;
    }
    Ok(places)
}

/// `GET /organisation/data`: where is our data? One click from every page.
pub async fn data(State(state): State<WebState>, v: Viewer, Query(q): Query<OrgQuery>) -> Response {
    let (org, _) = match chosen(&state, &v, q.org.as_deref()).await {
        Ok(x) => x,
        Err(e) => return api_error(&v, &e, "/catalog"),
    };
    let places = match places(&state, &v, &org).await {
        Ok(p) => p,
        Err(e) => return api_error(&v, &e, "/organisation"),
    };
    let t = v.lang.texts();
    let unmapped = places.iter().filter(|p| p.pin.is_none()).count();
    render(
        StatusCode::OK,
        &DataPage {
            c: Chrome::for_viewer(&v, t.nav_where, "data", "/organisation/data"),
            org,
            places,
            unmapped,
            outline: crate::map::outline(),
            width: format!("{:.0}", crate::map::WIDTH),
            height: format!("{:.0}", crate::map::HEIGHT),
            as_of: crate::view::local_time(state.api.now(), v.lang),
        },
    )
}

/// `GET /organisation/export`: everything verbund keeps about the organisation's
/// bookings (configuration, state, placement with its reasons, sites), as JSON.
pub async fn export(
    State(state): State<WebState>,
    v: Viewer,
    Query(q): Query<OrgQuery>,
) -> Response {
    let (org, _) = match chosen(&state, &v, q.org.as_deref()).await {
        Ok(x) => x,
        Err(e) => return api_error(&v, &e, "/organisation"),
    };
    let list = match org_bookings(&state, &v, &org.id).await {
        Ok(l) => l,
        Err(e) => return api_error(&v, &e, "/organisation"),
    };
    let mut out = Vec::new();
    for b in list {
        let placement = state.api.store.booking_decision(&b.id).await.ok().flatten();
        out.push(serde_json::json!({ "booking": b, "placement": placement }));
    }
    let sites: Vec<serde_json::Value> = places(&state, &v, &org)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|p| serde_json::json!({ "site": p.site, "name": p.title, "location": p.location, "operator": p.operator, "offerings": p.offerings }))
        .collect();
    let body = serde_json::json!({
        "organisation": org,
        "exported_at": state.api.now(),
        "exported_by": v.caller.actor(),
        "bookings": out,
        "sites": sites,
    });
    let name = format!(
        "attachment; filename=\"verbund-{}.json\"",
        org.ags.clone().unwrap_or(org.id.clone())
    );
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/json".to_string()),
            (header::CONTENT_DISPOSITION, name),
        ],
        serde_json::to_string_pretty(&body).unwrap_or_default(),
    )
        .into_response()
}

/// The sites whose reports come from `verbund simulate`, not a real cluster.
pub async fn simulated_sites(store: &verbund_store::Store) -> BTreeSet<String> {
    store
        .site_statuses()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|s| s.simulated)
        .map(|s| s.site)
        .collect()
}
