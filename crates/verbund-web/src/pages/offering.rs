//! One offering (description, plans and prices, versions and changelog, where it may run
//! for my organisation) and its booking form.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Form, Json};
use verbund_api::extract::ApiJson;
use verbund_api::extract::ApiQuery;
use verbund_api::idempotency::IdempotencyKey;
use verbund_api::routes::bookings::{self, ExplainRequest};
use verbund_api::routes::offerings;
use verbund_api::routes::templates;
use verbund_api::ApiError;
use verbund_domain::booking::{BookingSpec, DependencyChoice};
use verbund_domain::catalog::{Offering, OfferingVersion};
use verbund_domain::directory::Organisation;
use verbund_domain::template::Template as BookingTemplate;

use super::brings::{brings, Brings};
use super::explain::{verdicts, Directory, Verdict};
use super::{my_organisations, orgs_or_error};
use crate::ending_form::EndingInput;
use crate::error::api_error;
use crate::form::{self, Field};
use crate::session::{random_secret, Viewer};
use crate::view::{euros, local_time, render, text_lang, Chrome};
use crate::window_form::{self, WindowInput};
use crate::WebState;
use verbund_domain::booking::config_problems;

pub struct PlanRow {
    pub name: String,
    pub title: String,
    pub price: String,
    pub resources: String,
}

pub struct VersionRow {
    pub version: String,
    pub published: String,
    pub changelog: String,
}

#[derive(Template)]
#[template(path = "offering.html")]
struct OfferingPage {
    c: Chrome,
    o: Offering,
    vendor: String,
    category: String,
    classes: Vec<String>,
    plans: Vec<PlanRow>,
    versions: Vec<VersionRow>,
    for_org: Option<Organisation>,
    verdicts: Vec<Verdict>,
    can_book: bool,
    can_roll_out: bool,
    brings: Option<Brings>,
    /// A shared offering's instances that take tenants; `None` for a dedicated one.
    instances: Option<Vec<verbund_api::routes::tenancies::SharedInstance>>,
    /// The templates of this offering the viewer may adopt, each with its publisher's name.
    templates: Vec<(BookingTemplate, String)>,
}

/// The templates of offering `name` the viewer sees, each with its publisher's name.
async fn templates_of(state: &WebState, v: &Viewer, name: &str) -> Vec<(BookingTemplate, String)> {
    let listed = templates::list(
        State(state.api.clone()),
        v.caller.clone(),
        ApiQuery(templates::TemplateQuery {
            offering: Some(name.to_string()),
            limit: Some(100),
            after: None,
        }),
    )
    .await;
    let Ok(Json(page)) = listed else {
        return Vec::new();
    };
    let mut out = Vec::with_capacity(page.items.len());
    for t in page.items {
        let publisher = state
            .api
            .store
            .get_organisation(&t.organisation)
            .await
            .map_or_else(|_| t.organisation.clone(), |o| o.name);
        out.push((t, publisher));
    }
    out
}

fn plan_rows(o: &Offering, lang: crate::i18n::Lang) -> Vec<PlanRow> {
    o.spec
        .plans
        .iter()
        .map(|p| PlanRow {
            name: p.name.clone(),
            title: p.display_name.clone(),
            price: euros(p.monthly_price_cents, lang),
            resources: format!(
                "{} vCPU · {} GiB RAM · {} GiB · {}×",
                p.resources.cpu_millis as f64 / 1000.0,
                p.resources.memory_mib / 1024,
                p.resources.storage_gib,
                p.replicas
            ),
        })
        .collect()
}

async fn load(
    state: &WebState,
    v: &Viewer,
    name: &str,
) -> Result<(Offering, Vec<OfferingVersion>), ApiError> {
    let Json(o) = offerings::read(
        State(state.api.clone()),
        v.caller.clone(),
        Path(name.to_string()),
    )
    .await?;
    let Json(versions) = offerings::versions(
        State(state.api.clone()),
        v.caller.clone(),
        Path(name.to_string()),
    )
    .await?;
    Ok((o, versions))
}

/// `GET /offerings/{name}`.
pub async fn page(State(state): State<WebState>, v: Viewer, Path(name): Path<String>) -> Response {
    let (o, mut versions) = match load(&state, &v, &name).await {
        Ok(x) => x,
        Err(e) => return api_error(&v, &e, "/catalog"),
    };
    let lang = v.lang;
    let store = &state.api.store;
    let vendor = store
        .get_organisation(&o.spec.vendor)
        .await
        .map_or_else(|_| o.spec.vendor.clone(), |org| org.name);
    let orgs = my_organisations(&state, &v).await.unwrap_or_default();
    let for_org = orgs.first().cloned();
    let mut explained = Vec::new();
    let first_plan = o
        .spec
        .plans
        .first()
        .map(|p| p.name.clone())
        .unwrap_or_default();
    let brought = brings(&state, &v, &o, for_org.as_ref(), &first_plan).await;
    if let (Some(org), Some(plan)) = (&for_org, o.spec.plans.first()) {
        let asked = bookings::explain(
            State(state.api.clone()),
            v.caller.clone(),
            ApiJson(ExplainRequest {
                organisation: org.id.clone(),
                offering: o.spec.name.clone(),
                plan: plan.name.clone(),
            }),
        )
        .await;
        if let (Ok(Json(d)), Ok(dir)) = (asked, Directory::load(store).await) {
            explained = verdicts(&d, &dir, lang);
        }
    }
    versions.sort_by(|a, b| crate::view::newer_first(&a.spec.version, &b.spec.version));
    let instances = match o.spec.tenancy {
        verbund_domain::shared::Tenancy::Shared => Some(
            verbund_api::routes::tenancies::shared_instances(&state.api, &name)
                .await
                .unwrap_or_default(),
        ),
        verbund_domain::shared::Tenancy::Dedicated => None,
    };
    let p = &v.caller.0;
    use verbund_domain::account::Role;
    let can_roll_out = p.has_role(Role::FederationAdmin)
        || p.memberships.iter().any(|m| {
            m.role == Role::Vendor && m.organisation.as_deref() == Some(o.spec.vendor.as_str())
        });
    let page = OfferingPage {
        c: Chrome::for_viewer(
            &v,
            o.spec.display_name.clone(),
            "catalog",
            &format!("/offerings/{name}"),
        ),
        vendor,
        category: super::catalog::category_label(o.spec.category.as_str(), lang).to_string(),
        classes: o
            .spec
            .data_classes
            .iter()
            .map(|c| super::catalog::data_class_label(c.as_str(), lang).to_string())
            .collect(),
        plans: plan_rows(&o, lang),
        versions: versions
            .into_iter()
            .map(|ver| VersionRow {
                version: ver.spec.version.clone(),
                published: local_time(ver.published_at, lang),
                changelog: ver.spec.changelog.clone(),
            })
            .collect(),
        can_book: !orgs.is_empty() || p.has_role(Role::FederationAdmin),
        can_roll_out,
        for_org,
        verdicts: explained,
        brings: brought,
        instances,
        templates: templates_of(&state, &v, &name).await,
        o,
    };
    render(StatusCode::OK, &page)
}

#[derive(Template)]
#[template(path = "book.html")]
struct BookPage {
    c: Chrome,
    o: Offering,
    plans: Vec<PlanRow>,
    orgs: Vec<Organisation>,
    organisation: String,
    plan: String,
    channel: String,
    fields: Vec<Field>,
    error: Option<String>,
    /// The general error's control (`organisation`, `plan`, `channel`), if it names one.
    error_at: String,
    latest: String,
    /// A one-time key for `Idempotency-Key`: the same form sent twice books once.
    idempotency: String,
    brings: Option<Brings>,
    /// The capacity window rows, as entered.
    windows: Vec<WindowInput>,
    /// The last day and export target of a booking for a time, as entered (only for an
    /// offering with a data export).
    ending: EndingInput,
    /// The running booking chosen per dependency (offering name → booking id).
    chosen: BTreeMap<String, String>,
    /// The template the form is pre-filled from (adopting it), with its publisher's name.
    template: Option<(BookingTemplate, String)>,
}

/// `?template=` on the booking form: adopt that template.
#[derive(Debug, serde::Deserialize)]
pub struct BookQuery {
    template: Option<String>,
}

/// The template `id` with its publisher's name, if the viewer may see it.
async fn template_for_form(
    state: &WebState,
    v: &Viewer,
    id: &str,
) -> Result<(BookingTemplate, String), ApiError> {
    let Json(t) = templates::read(
        State(state.api.clone()),
        v.caller.clone(),
        Path(id.to_string()),
    )
    .await?;
    let publisher = state
        .api
        .store
        .get_organisation(&t.organisation)
        .await
        .map_or_else(|_| t.organisation.clone(), |o| o.name);
    Ok((t, publisher))
}

impl BookPage {
    fn has_errors(&self) -> bool {
        self.error.is_some()
            || !self.faults().is_empty()
            || self.windows.iter().any(|w| w.error.is_some())
            || self.ending.error.is_some()
    }

    fn faults(&self) -> Vec<form::Fault> {
        form::faults(&self.fields)
    }

    /// One control of the configuration as HTML (groups and lists hold more).
    fn control(&self, f: &Field) -> String {
        form::FieldHtml {
            f,
            t: self.c.t,
            text_lang: self.text_lang(),
        }
        .render()
        .unwrap_or_else(|e| {
            tracing::error!(error = %e, control = %f.name, "a form control did not render");
            String::new()
        })
    }

    /// The `lang` of the vendor's hints, when they are not in the page's language.
    fn text_lang(&self) -> Option<String> {
        text_lang(self.o.spec.description_language.as_deref(), self.c.lang)
    }
}

impl OfferingPage {
    /// The `lang` of the vendor's texts, when they are not in the page's language.
    fn text_lang(&self) -> Option<String> {
        text_lang(self.o.spec.description_language.as_deref(), self.c.lang)
    }
}

#[allow(clippy::too_many_arguments)]
fn book_page(
    v: &Viewer,
    o: Offering,
    orgs: Vec<Organisation>,
    organisation: String,
    plan: String,
    channel: String,
    fields: Vec<Field>,
    error: Option<(String, String)>,
    idempotency: String,
) -> BookPage {
    let lang = v.lang;
    let title = format!("{}: {}", lang.texts().book_title, o.spec.display_name);
    let (error, error_at) = match error {
        Some((at, msg)) => (Some(msg), at),
        None => (None, String::new()),
    };
    BookPage {
        c: Chrome::for_viewer(
            v,
            title,
            "catalog",
            &format!("/offerings/{}/book", o.spec.name),
        ),
        plans: plan_rows(&o, lang),
        latest: o.latest_version.clone().unwrap_or_default(),
        o,
        orgs,
        organisation,
        plan,
        channel,
        fields,
        error,
        error_at,
        idempotency,
        brings: None,
        windows: window_form::empty(),
        ending: EndingInput::default(),
        chosen: BTreeMap::new(),
        template: None,
    }
}

/// The running bookings chosen on the form per dependency (`dependency-<offering>`; an
/// empty answer leaves the choice to placement).
fn chosen_dependencies(answers: &[(String, String)]) -> BTreeMap<String, String> {
    answers
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix("dependency-")?.to_string(), v.clone())))
        .filter(|(_, v)| !v.is_empty())
        .collect()
}

/// The booking form with what booking it for its organisation and plan would bring.
async fn with_brings(state: &WebState, v: &Viewer, mut page: BookPage) -> BookPage {
    let org = page.orgs.iter().find(|x| x.id == page.organisation);
    page.brings = brings(state, v, &page.o, org, &page.plan).await;
    if let Some(b) = page.brings.as_mut() {
        for item in &mut b.items {
            item.chosen = page.chosen.get(&item.offering).cloned().unwrap_or_default();
        }
    }
    page
}

/// A refusal that names no configuration value: the control it concerns (`organisation`,
/// `plan`, `channel`, or none) and what to do, in the reader's words.
fn general_error(field: &str, message: &str, lang: crate::i18n::Lang) -> (String, String) {
    let t = lang.texts();
    match field {
        "/organisation" => ("organisation".into(), t.error_organisation.into()),
        "/plan" => ("plan".into(), t.error_plan.into()),
        "/channel" => ("channel".into(), t.error_channel.into()),
        // The form decided the windows before (`window_form`); what the API refuses
        // beyond that (a window over since) is said at the windows.
        f if f.starts_with("/windows") => ("windows".into(), format!("{message} ({field})")),
        // A chosen booking that cannot be used (gone or changed since the form was
        // shown): said at the choice, which shows what runs now.
        f if f.starts_with("/dependencies") => ("dependencies".into(), t.error_dependency.into()),
        _ => (String::new(), format!("{message} ({field})")),
    }
}

/// The form's one-time key as the API's `Idempotency-Key`: what the form carried, if it
/// is one the API would take from a header (1 to 255 visible ASCII characters), else a
/// new one (a form from before the key existed books as it always did, once).
fn idempotency_key(posted: &str) -> String {
    let usable = (1..=verbund_api::idempotency::MAX_LENGTH).contains(&posted.len())
        && posted.bytes().all(|b| b.is_ascii_graphic());
    if usable {
        posted.to_string()
    } else {
        random_secret()
    }
}

/// `GET /offerings/{name}/book`.
pub async fn form_page(
    State(state): State<WebState>,
    v: Viewer,
    Path(name): Path<String>,
    axum::extract::Query(q): axum::extract::Query<BookQuery>,
) -> Response {
    let (o, _) = match load(&state, &v, &name).await {
        Ok(x) => x,
        Err(e) => return api_error(&v, &e, "/catalog"),
    };
    let orgs = match orgs_or_error(&state, &v).await {
        Ok(o) => o,
        Err(r) => return r,
    };
    let template = match q.template.as_deref().filter(|t| !t.is_empty()) {
        Some(id) => match template_for_form(&state, &v, id).await {
            Ok(t) if t.0.offering == o.spec.name => Some(t),
            Ok(_) => None,
            Err(e) => return api_error(&v, &e, &format!("/offerings/{name}")),
        },
        None => None,
    };
    let prefilled = template
        .as_ref()
        .map_or(serde_json::Value::Null, |(t, _)| t.config.clone());
    let fields = form::fields(&o.spec.config_schema, &prefilled, v.lang);
    let plan = template.as_ref().map_or_else(
        || {
            o.spec
                .plans
                .first()
                .map(|p| p.name.clone())
                .unwrap_or_default()
        },
        |(t, _)| t.plan.clone(),
    );
    let organisation = orgs.first().map(|o| o.id.clone()).unwrap_or_default();
    let mut page = book_page(
        &v,
        o,
        orgs,
        organisation,
        plan,
        "stable".into(),
        fields,
        None,
        random_secret(),
    );
    page.template = template;
    render(StatusCode::OK, &with_brings(&state, &v, page).await)
}

/// `POST /offerings/{name}/book`: books through the API; its validation errors come back
/// to the form at the control they name, with everything entered kept.
pub async fn submit(
    State(state): State<WebState>,
    v: Viewer,
    Path(name): Path<String>,
    Form(answers): Form<Vec<(String, String)>>,
) -> Response {
    let get = |k: &str| form::answer(&answers, k);
    if !v.csrf_ok(&get("csrf")) {
        return super::expired(&v);
    }
    let (o, _) = match load(&state, &v, &name).await {
        Ok(x) => x,
        Err(e) => return api_error(&v, &e, "/catalog"),
    };
    let orgs = match orgs_or_error(&state, &v).await {
        Ok(o) => o,
        Err(r) => return r,
    };
    let mut organisation = get("organisation");
    if let Ok(Some(org)) = state
        .api
        .store
        .find_organisation_by_key(&organisation)
        .await
    {
        organisation = org.id;
    }
    let (plan, channel) = (get("plan"), get("channel"));
    let key = idempotency_key(&get("idempotency"));
    let chosen = chosen_dependencies(&answers);
    let template = match get("template") {
        id if id.is_empty() => None,
        id => match template_for_form(&state, &v, &id).await {
            Ok(t) => Some(t),
            Err(e) => return api_error(&v, &e, &format!("/offerings/{name}")),
        },
    };
    let schema = &o.spec.config_schema;
    // A list's "Weitere Zeile" or "Zeile n entfernen": the form again, changed, with
    // everything entered kept; nothing is booked.
    if let Some(edit) = form::RowEdit::asked(&answers) {
        let mut draft = form::draft(schema, &answers);
        let added = form::edit_rows(&mut draft, &edit);
        let mut fields = form::fields(schema, &draft, v.lang);
        if let Some(f) = added.and_then(|row| form::find_mut(&mut fields, &row)) {
            f.focus = true;
        }
        let mut page = book_page(&v, o, orgs, organisation, plan, channel, fields, None, key);
        page.windows = window_form::read(&answers);
        page.ending = EndingInput::read(&answers);
        page.chosen = chosen;
        page.template = template;
        return render(StatusCode::OK, &with_brings(&state, &v, page).await);
    }
    let config = form::config(schema, &answers);
    let now = state.api.now();
    let mut window_rows = window_form::read(&answers);
    let windows = window_form::windows(&mut window_rows, &o.spec, &plan, now, v.lang);
    // An offering without a data export has no such controls: nothing entered is read.
    let mut ending_input = EndingInput::default();
    let ending = match o.spec.data_export {
        Some(_) => {
            ending_input = EndingInput::read(&answers);
            ending_input.ending(now, v.lang)
        }
        None => Ok(None),
    };
    let (Ok(windows), Ok(ending)) = (windows, ending) else {
        let fields = form::fields(schema, &config, v.lang);
        let mut page = book_page(&v, o, orgs, organisation, plan, channel, fields, None, key);
        page.windows = window_rows;
        page.ending = ending_input;
        page.chosen = chosen;
        page.template = template;
        return render(
            StatusCode::UNPROCESSABLE_ENTITY,
            &with_brings(&state, &v, page).await,
        );
    };
    let spec = BookingSpec {
        dependencies: chosen
            .iter()
            .map(|(offering, id)| {
                let bind = DependencyChoice {
                    booking: Some(id.clone()),
                    plan: None,
                    config: None,
                };
                (offering.clone(), bind)
            })
            .collect(),
        ending,
        organisation: organisation.clone(),
        offering: name.clone(),
        plan: plan.clone(),
        config: config.clone(),
        channel: if channel.is_empty() {
            "stable".into()
        } else {
            channel.clone()
        },
        windows,
    };
    // Adopting a template books through its adoption, which records the lineage.
    let created = match &template {
        Some((t, _)) => templates::adopt(
            State(state.api.clone()),
            v.caller.clone(),
            Path(t.id.clone()),
            IdempotencyKey(Some(key.clone())),
            ApiJson(templates::AdoptRequest {
                organisation: spec.organisation.clone(),
                config: Some(spec.config.clone()),
                plan: Some(spec.plan.clone()),
            }),
        )
        .await
        .map(|(_, _, Json(a))| a.created.booking.id),
        None => bookings::create(
            State(state.api.clone()),
            v.caller.clone(),
            IdempotencyKey(Some(key.clone())),
            ApiJson(spec),
        )
        .await
        .map(|(_, _, Json(c))| c.booking.id),
    };
    match created {
        Ok(id) => Redirect::to(&format!("/bookings/{id}?new=1")).into_response(),
        Err(ApiError::Invalid(i)) => {
            let mut fields = form::fields(schema, &config, v.lang);
            // The API refuses with its first problem; the form shows every one, found by
            // the same validation, each at its control.
            let problems = if i.field.starts_with("/config") {
                config_problems(schema, &config)
            } else {
                Vec::new()
            };
            let rest = form::place_problems(&mut fields, problems, v.lang);
            let general = if i.field.starts_with("/config") {
                rest.first()
                    .map(|p| (String::new(), form::fault_text(&p.fault, v.lang)))
            } else if i.field.starts_with("/ending") {
                // The form decided the ending before; what the API refuses beyond that
                // (the offering's data export gone since) is said at its control.
                ending_input.refused(&i.field, v.lang);
                None
            } else {
                Some(general_error(&i.field, &i.message, v.lang))
            };
            let mut page = book_page(
                &v,
                o,
                orgs,
                organisation,
                plan,
                channel,
                fields,
                general,
                key,
            );
            page.windows = window_rows;
            page.ending = ending_input;
            page.chosen = chosen;
            page.template = template;
            render(
                StatusCode::UNPROCESSABLE_ENTITY,
                &with_brings(&state, &v, page).await,
            )
        }
        Err(e) => api_error(&v, &e, &format!("/offerings/{name}/book")),
    }
}
