//! Joining a shared instance ("Einer für Alle"): the form with which an organisation
//! books a tenancy in a Land's instance of a shared offering — its organisation and its
//! tenant configuration, validated against the offering's tenant schema and refused at
//! the control it concerns, as the booking form is.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Form, Json};
use serde_json::Value;
use verbund_api::extract::ApiJson;
use verbund_api::routes::tenancies::{self, SharedInstance};
use verbund_api::ApiError;
use verbund_domain::booking::config_problems;
use verbund_domain::catalog::Offering;
use verbund_domain::directory::Organisation;
use verbund_domain::shared::{tenant_schema, TenancySpec};

use super::orgs_or_error;
use crate::error::api_error;
use crate::form::{self, Field};
use crate::session::Viewer;
use crate::view::{render, Chrome};
use crate::WebState;

#[derive(Template)]
#[template(path = "join.html")]
struct JoinPage {
    c: Chrome,
    o: Offering,
    instance: SharedInstance,
    orgs: Vec<Organisation>,
    organisation: String,
    fields: Vec<Field>,
    /// A refusal no control shows (the organisation's, or the whole request's).
    error: Option<String>,
    /// `organisation` when the refusal concerns it.
    error_at: String,
}

impl JoinPage {
    fn faults(&self) -> Vec<form::Fault> {
        form::faults(&self.fields)
    }

    fn has_errors(&self) -> bool {
        self.error.is_some() || !self.faults().is_empty()
    }

    fn control(&self, f: &Field) -> String {
        form::FieldHtml {
            f,
            t: self.c.t,
            text_lang: crate::view::text_lang(
                self.o.spec.description_language.as_deref(),
                self.c.lang,
            ),
        }
        .render()
        .unwrap_or_else(|e| {
            tracing::error!(error = %e, control = %f.name, "a form control did not render");
            String::new()
        })
    }
}

/// The shared offering `name` and its instance `id`, if the instance takes tenants.
async fn load(
    state: &WebState,
    v: &Viewer,
    name: &str,
    id: &str,
) -> Result<(Offering, SharedInstance), ApiError> {
    let Json(o) = verbund_api::routes::offerings::read(
        State(state.api.clone()),
        v.caller.clone(),
        Path(name.to_string()),
    )
    .await?;
    let Json(instances) = tenancies::instances(
        State(state.api.clone()),
        v.caller.clone(),
        Path(name.to_string()),
    )
    .await?;
    let instance = instances
        .into_iter()
        .find(|i| i.booking == id)
        .ok_or_else(|| ApiError::NotFound(v.lang.texts().join_no_instance.into()))?;
    Ok((o, instance))
}

fn join_page(
    v: &Viewer,
    o: Offering,
    instance: SharedInstance,
    orgs: Vec<Organisation>,
    organisation: String,
    fields: Vec<Field>,
) -> JoinPage {
    let title = format!("{}: {}", v.lang.texts().join_title, o.spec.display_name);
    JoinPage {
        c: Chrome::for_viewer(
            v,
            title,
            "catalog",
            &format!("/offerings/{}/join/{}", o.spec.name, instance.booking),
        ),
        o,
        instance,
        orgs,
        organisation,
        fields,
        error: None,
        error_at: String::new(),
    }
}

/// `GET /offerings/{name}/join/{instance}`.
pub async fn form_page(
    State(state): State<WebState>,
    v: Viewer,
    Path((name, id)): Path<(String, String)>,
) -> Response {
    let (o, instance) = match load(&state, &v, &name, &id).await {
        Ok(x) => x,
        Err(e) => return api_error(&v, &e, &format!("/offerings/{name}")),
    };
    let orgs = match orgs_or_error(&state, &v).await {
        Ok(o) => o,
        Err(r) => return r,
    };
    let fields = form::fields(&tenant_schema(&o.spec), &Value::Null, v.lang);
    let organisation = orgs.first().map(|o| o.id.clone()).unwrap_or_default();
    render(
        StatusCode::OK,
        &join_page(&v, o, instance, orgs, organisation, fields),
    )
}

/// `POST /offerings/{name}/join/{instance}`: books the tenancy through the API; its
/// refusals come back to the form at the control they name, with everything entered
/// kept.
pub async fn submit(
    State(state): State<WebState>,
    v: Viewer,
    Path((name, id)): Path<(String, String)>,
    Form(answers): Form<Vec<(String, String)>>,
) -> Response {
    let get = |k: &str| form::answer(&answers, k);
    if !v.csrf_ok(&get("csrf")) {
        return super::expired(&v);
    }
    let (o, instance) = match load(&state, &v, &name, &id).await {
        Ok(x) => x,
        Err(e) => return api_error(&v, &e, &format!("/offerings/{name}")),
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
    let schema = tenant_schema(&o.spec).into_owned();
    // A list's "Weitere Zeile" or "Zeile n entfernen": the form again, changed, with
    // everything entered kept; nothing is booked.
    if let Some(edit) = form::RowEdit::asked(&answers) {
        let mut draft = form::draft(&schema, &answers);
        let added = form::edit_rows(&mut draft, &edit);
        let mut fields = form::fields(&schema, &draft, v.lang);
        if let Some(f) = added.and_then(|row| form::find_mut(&mut fields, &row)) {
            f.focus = true;
        }
        let page = join_page(&v, o, instance, orgs, organisation, fields);
        return render(StatusCode::OK, &page);
    }
    let config = form::config(&schema, &answers);
    let created = tenancies::create(
        State(state.api.clone()),
        v.caller.clone(),
        Path(id.clone()),
        ApiJson(TenancySpec {
            organisation: organisation.clone(),
            config: config.clone(),
        }),
    )
    .await;
    let (status, general) = match created {
        Ok((_, Json(t))) => {
            return Redirect::to(&format!("/bookings/{}?new=1", t.id)).into_response()
        }
        Err(ApiError::Invalid(i)) => (StatusCode::UNPROCESSABLE_ENTITY, i),
        // Already a tenant, or the instance stopped taking tenants: said on the form.
        Err(ApiError::Conflict(message)) => (
            StatusCode::CONFLICT,
            verbund_domain::Invalid::conflict("", message),
        ),
        Err(e) => return api_error(&v, &e, &format!("/offerings/{name}/join/{id}")),
    };
    let t = v.lang.texts();
    let mut fields = form::fields(&schema, &config, v.lang);
    let mut page = join_page(&v, o, instance, orgs, organisation, Vec::new());
    if general.field.starts_with("/config") {
        // The API refuses with its first problem; the form shows every one, each at its
        // control (the size of the whole configuration has none).
        let rest = form::place_problems(&mut fields, config_problems(&schema, &config), v.lang);
        if let Some(p) = rest.first() {
            page.error = Some(form::fault_text(&p.fault, v.lang));
        } else if form::faults(&fields).is_empty() {
            page.error = Some(t.join_error_too_large.into());
        }
    } else if general.field == "/organisation" {
        page.error_at = "organisation".into();
        page.error = Some(t.join_error_organisation.into());
    } else {
        page.error = Some(t.join_error_conflict.into());
    }
    page.fields = fields;
    render(status, &page)
}
