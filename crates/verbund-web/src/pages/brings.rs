//! What a booking brings with it: the services an offering needs (Matrix needs Keycloak
//! and PostgreSQL), and, for the organisation the person books for, whether its booking
//! of each is used or a new one created, on which shared site. The answer is the API's
//! `POST /placement/preview`, which decides with placement's own `place_together`, so the
//! page says what booking would do, not a guess beside it.

use axum::extract::State;
use axum::Json;
use verbund_api::extract::ApiJson;
use verbund_api::routes::bookings::{self, ExplainRequest};
use verbund_domain::catalog::Offering;
use verbund_domain::directory::Organisation;

use super::explain::Directory;
use crate::session::Viewer;
use crate::WebState;

/// One service a booking brings with it.
pub struct Brought {
    /// Its offering's name (the booking form's `dependency-<offering>` control).
    pub offering: String,
    pub title: String,
    pub plan: String,
    /// The organisation's booking of it that would be used; none when a new one would
    /// be booked with it (or when the page speaks of no organisation).
    pub bound: Option<String>,
    /// The organisation's running bookings of it, which the booking form offers to bind.
    pub running: Vec<Running>,
    /// It cannot be booked with an empty configuration: without a running one to bind,
    /// the organisation books it first.
    pub needs_configuration: bool,
    /// The running booking chosen on the form (empty: placement decides).
    pub chosen: String,
}

/// A running booking of a dependency, with its site's title.
pub struct Running {
    pub id: String,
    pub site: String,
}

/// What a booking of an offering brings with it.
pub struct Brings {
    pub items: Vec<Brought>,
    /// The organisation it was asked for (then `bound`, `site` and `refused` speak for it).
    pub org: Option<String>,
    /// The site it and its dependencies would share.
    pub site: Option<String>,
    /// Why no site would take them together now (placement's words).
    pub refused: Option<String>,
}

/// The offering's dependencies by title and plan; asked for `org` with `plan`, what
/// booking would bind or create. None for an offering that needs nothing.
pub async fn brings(
    state: &WebState,
    v: &Viewer,
    o: &Offering,
    org: Option<&Organisation>,
    plan: &str,
) -> Option<Brings> {
    if o.spec.dependencies.is_empty() {
        return None;
    }
    let store = &state.api.store;
    let mut items = Vec::new();
    for d in &o.spec.dependencies {
        let dep = store.get_offering(&d.offering).await.ok();
        let plan_name = d
            .plan
            .clone()
            .or_else(|| dep.as_ref()?.spec.plans.first().map(|p| p.name.clone()))
            .unwrap_or_default();
        let plan_title = dep
            .as_ref()
            .and_then(|x| x.spec.plans.iter().find(|p| p.name == plan_name))
            .map_or_else(|| plan_name.clone(), |p| p.display_name.clone());
        items.push(Brought {
            offering: d.offering.clone(),
            title: dep.map_or_else(|| d.offering.clone(), |x| x.spec.display_name),
            plan: plan_title,
            bound: None,
            running: Vec::new(),
            needs_configuration: false,
            chosen: String::new(),
        });
    }
    let mut out = Brings {
        items,
        org: None,
        site: None,
        refused: None,
    };
    let Some(org) = org else {
        return Some(out);
    };
    let asked = bookings::preview(
        State(state.api.clone()),
        v.caller.clone(),
        ApiJson(ExplainRequest {
            organisation: org.id.clone(),
            offering: o.spec.name.clone(),
            plan: plan.to_string(),
        }),
    )
    .await;
    let Ok(Json(p)) = asked else {
        return Some(out);
    };
    let dir = Directory::load(store).await.ok();
    let site_title = |s: &str| {
        dir.as_ref()
            .map_or_else(|| s.to_string(), |d| d.site_title(s))
    };
    for (item, d) in out.items.iter_mut().zip(&p.dependencies) {
        item.bound = d.bound.clone();
        item.needs_configuration = d.needs_configuration.is_some();
        item.running = d
            .running
            .iter()
            .map(|r| Running {
                id: r.id.clone(),
                site: site_title(&r.site),
            })
            .collect();
    }
    out.org = Some(org.name.clone());
    out.refused = p.refused;
    out.site = p.site.as_deref().map(site_title);
    Some(out)
}
