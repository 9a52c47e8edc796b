//! "Als Vorlage veröffentlichen": the form with which an organisation publishes one of
//! its bookings' configuration (without secrets) and plan as a template for its Land or
//! everyone (Nachnutzung, see `verbund_domain::template`); refusals come back in German
//! at the control they concern.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Form, Json};
use verbund_api::extract::ApiJson;
use verbund_api::routes::{bookings, templates};
use verbund_api::ApiError;
use verbund_domain::template::{TemplateSpec, Visibility};

use crate::error::api_error;
use crate::form;
use crate::session::Viewer;
use crate::view::{render, Chrome};
use crate::WebState;

#[derive(Template)]
#[template(path = "template_publish.html")]
struct PublishPage {
    c: Chrome,
    booking: String,
    offering: String,
    name: String,
    display_name: String,
    description: String,
    /// `land` or `everyone`.
    visibility: String,
    /// The control a refusal concerns (`name`, `display_name`, `description`) and what
    /// to do, in the reader's words.
    error: Option<(String, String)>,
}

impl PublishPage {
    fn error_at(&self, control: &str) -> Option<&str> {
        self.error
            .as_ref()
            .filter(|(at, _)| at == control)
            .map(|(_, m)| m.as_str())
    }
}

/// The booking's offering title, if the viewer may change the booking.
async fn offering_of(state: &WebState, v: &Viewer, id: &str) -> Result<String, ApiError> {
    let Json(b) = bookings::read(
        State(state.api.clone()),
        v.caller.clone(),
        Path(id.to_string()),
    )
    .await?;
    Ok(state
        .api
        .store
        .get_offering(&b.booking.offering)
        .await
        .map_or(b.booking.offering, |o| o.spec.display_name))
}

fn page(v: &Viewer, booking: String, offering: String) -> PublishPage {
    PublishPage {
        c: Chrome::for_viewer(
            v,
            v.lang.texts().template_publish,
            "organisation",
            &format!("/bookings/{booking}/template"),
        ),
        booking,
        offering,
        name: String::new(),
        display_name: String::new(),
        description: String::new(),
        visibility: "land".into(),
        error: None,
    }
}

/// `GET /bookings/{id}/template`.
pub async fn form_page(
    State(state): State<WebState>,
    v: Viewer,
    Path(id): Path<String>,
) -> Response {
    match offering_of(&state, &v, &id).await {
        Ok(offering) => render(StatusCode::OK, &page(&v, id, offering)),
        Err(e) => api_error(&v, &e, "/organisation"),
    }
}

/// `POST /bookings/{id}/template`: publishes through the API.
pub async fn submit(
    State(state): State<WebState>,
    v: Viewer,
    Path(id): Path<String>,
    Form(answers): Form<Vec<(String, String)>>,
) -> Response {
    let get = |k: &str| form::answer(&answers, k);
    if !v.csrf_ok(&get("csrf")) {
        return super::expired(&v);
    }
    let offering = match offering_of(&state, &v, &id).await {
        Ok(o) => o,
        Err(e) => return api_error(&v, &e, "/organisation"),
    };
    let mut p = page(&v, id.clone(), offering);
    p.name = get("name");
    p.display_name = get("display_name");
    p.description = get("description");
    p.visibility = get("visibility");
    let visibility = match p.visibility.as_str() {
        "everyone" => Visibility::Everyone,
        _ => Visibility::Land,
    };
    let spec = TemplateSpec {
        booking: id.clone(),
        name: p.name.clone(),
        display_name: p.display_name.clone(),
        description: p.description.clone(),
        visibility,
    };
    let t = v.lang.texts();
    let refused = |at: &str| -> Option<(String, String)> {
        let text = match at {
            "name" => t.template_error_name,
            "display_name" if p.display_name.is_empty() => t.template_error_required,
            _ => t.template_error_text,
        };
        Some((at.to_string(), text.to_string()))
    };
    p.error = match templates::create(State(state.api.clone()), v.caller.clone(), ApiJson(spec))
        .await
    {
        Ok(_) => {
            return Redirect::to(&format!("/bookings/{id}?done=template-published")).into_response()
        }
        Err(ApiError::Invalid(i)) => refused(i.field.trim_start_matches('/')),
        Err(ApiError::Conflict(_)) => refused("name"),
        Err(e) => return api_error(&v, &e, &format!("/bookings/{id}")),
    };
    render(StatusCode::UNPROCESSABLE_ENTITY, &p)
}
