//! A vendor publishes a version of its offering: a Helm chart's repository, name and
//! version with a changelog, through the API's `POST /offerings/{name}/versions` without
//! starting a rollout; the start page then shows the plan of the rollout (the API's
//! `POST /rollouts/plan`) before the vendor starts it. Refusals are shown at their
//! control, in the page's language.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Form, Json};
use serde::Deserialize;
use verbund_api::extract::{ApiJson, ApiQuery};
use verbund_api::routes::offerings::{self, PublishQuery};
use verbund_api::ApiError;
use verbund_domain::catalog::{Offering, Package, VersionSpec};
use verbund_policy::authz::{Act, Target};

use super::expired;
use crate::error::api_error;
use crate::i18n::Lang;
use crate::session::Viewer;
use crate::view::{render, Chrome};
use crate::WebState;

#[derive(Template)]
#[template(path = "publish.html")]
struct PublishPage {
    c: Chrome,
    o: Offering,
    latest: String,
    form: PublishForm,
    /// The control the refusal concerns (`version`, `repository`, `chart`,
    /// `chart_version`), or empty for the whole form.
    error_at: String,
    error: Option<String>,
    /// The API's own words, for the curious (English).
    detail: Option<String>,
}

impl PublishPage {
    /// `aria-invalid` and the error's id for the control `name`, when it is the one.
    fn invalid(&self, name: &str) -> bool {
        self.error.is_some() && self.error_at == name
    }
}

/// What the form sends (and shows again after a refusal).
#[derive(Deserialize, Default)]
pub struct PublishForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    version: String,
    #[serde(default)]
    repository: String,
    #[serde(default)]
    chart: String,
    #[serde(default)]
    chart_version: String,
    #[serde(default)]
    changelog: String,
}

async fn offering_for_vendor(
    state: &WebState,
    v: &Viewer,
    name: &str,
) -> Result<Offering, ApiError> {
    let Json(o) = offerings::read(
        State(state.api.clone()),
        v.caller.clone(),
        Path(name.to_string()),
    )
    .await?;
    v.caller
        .require(Act::Write, &Target::new("offering").vendor(&o.spec.vendor))?;
    Ok(o)
}

fn page(
    v: &Viewer,
    o: Offering,
    form: PublishForm,
    error: Option<(String, String, Option<String>)>,
) -> PublishPage {
    let t = v.lang.texts();
    let (error_at, error, detail) = match error {
        Some((at, msg, detail)) => (at, Some(msg), detail),
        None => (String::new(), None, None),
    };
    PublishPage {
        c: Chrome::for_viewer(
            v,
            format!("{}: {}", t.publish_title, o.spec.display_name),
            "catalog",
            &format!("/offerings/{}/publish", o.spec.name),
        ),
        latest: o.latest_version.clone().unwrap_or_default(),
        o,
        form,
        error_at,
        error,
        detail,
    }
}

/// `GET /offerings/{name}/publish`.
pub async fn form(State(state): State<WebState>, v: Viewer, Path(name): Path<String>) -> Response {
    match offering_for_vendor(&state, &v, &name).await {
        Ok(o) => render(StatusCode::OK, &page(&v, o, PublishForm::default(), None)),
        Err(e) => api_error(&v, &e, &format!("/offerings/{name}")),
    }
}

/// A refusal of the API at the control it names, in the reader's words.
fn refusal(field: &str, lang: Lang) -> (String, String) {
    let t = lang.texts();
    let at = field.trim_start_matches('/').trim_start_matches("package/");
    match at {
        "version" => ("version".into(), t.publish_error_version.into()),
        "repository" => ("repository".into(), t.publish_error_repository.into()),
        "chart" => ("chart".into(), t.publish_error_chart.into()),
        "chart_version" => ("chart_version".into(), t.publish_error_chart_version.into()),
        _ => (String::new(), t.error_invalid.into()),
    }
}

/// `POST /offerings/{name}/publish`: publishes without a rollout, then opens the start
/// page of the rollout with this version and its plan.
pub async fn submit(
    State(state): State<WebState>,
    v: Viewer,
    Path(name): Path<String>,
    Form(f): Form<PublishForm>,
) -> Response {
    if !v.csrf_ok(&f.csrf) {
        return expired(&v);
    }
    let o = match offering_for_vendor(&state, &v, &name).await {
        Ok(o) => o,
        Err(e) => return api_error(&v, &e, &format!("/offerings/{name}")),
    };
    let spec = VersionSpec {
        version: f.version.trim().to_string(),
        package: Package::Helm {
            repository: f.repository.trim().to_string(),
            chart: f.chart.trim().to_string(),
            chart_version: f.chart_version.trim().to_string(),
            values: serde_json::json!({}),
        },
        changelog: f.changelog.trim().to_string(),
    };
    let published = offerings::publish(
        State(state.api.clone()),
        v.caller.clone(),
        Path(name.clone()),
        ApiQuery(PublishQuery {
            rollout: Some(false),
        }),
        ApiJson(spec),
    )
    .await;
    match published {
        Ok((_, Json(p))) => Redirect::to(&format!(
            "/rollouts/new?offering={name}&version={}&done=published",
            crate::view::url_encode(&p.version.spec.version)
        ))
        .into_response(),
        Err(ApiError::Invalid(i)) => {
            let (at, msg) = refusal(&i.field, v.lang);
            let p = page(&v, o, f, Some((at, msg, Some(i.message))));
            render(StatusCode::UNPROCESSABLE_ENTITY, &p)
        }
        Err(ApiError::Conflict(m)) => {
            let msg = v.lang.texts().publish_error_version.to_string();
            let p = page(&v, o, f, Some(("version".into(), msg, Some(m))));
            render(StatusCode::CONFLICT, &p)
        }
        Err(e) => api_error(&v, &e, &format!("/offerings/{name}")),
    }
}
