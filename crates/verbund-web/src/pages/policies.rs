//! The policies in force for my organisation, readable: each layer (federation, Land,
//! organisation), each document, and each rule with its description; the Cedar text
//! one click away.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use serde::Deserialize;
use verbund_api::extract::ApiQuery;
use verbund_api::routes::policies::{self, PolicyQuery};

use super::explain::{german_rule, layer_name};
use super::my_organisations;
use crate::error::api_error;
use crate::i18n::Lang;
use crate::session::Viewer;
use crate::view::{local_time, render, Chrome};
use crate::WebState;

#[derive(Deserialize, Default)]
pub struct OrgQuery {
    org: Option<String>,
}

/// One rule of a document: its id, whether it permits or forbids, and what it says.
pub struct Rule {
    pub id: String,
    pub effect: &'static str,
    pub text: String,
}

pub struct Doc {
    pub name: String,
    /// The layer in the reader's words ("Föderation").
    pub layer: String,
    /// Federation first, then Land, then organisation.
    pub rank: u8,
    pub owner: String,
    pub version: i64,
    pub changed: String,
    pub rules: Vec<Rule>,
    pub text: String,
}

/// The rules of a Cedar document, read from its `@id` and `@description` annotations
/// (the placement service reads the same ones to explain its decisions).
pub fn rules(text: &str, lang: Lang) -> Vec<Rule> {
    let annotation = |line: &str, name: &str| -> Option<String> {
        let rest = line.trim().strip_prefix(&format!("@{name}(\""))?;
        Some(rest.strip_suffix("\")")?.replace("\\\"", "\""))
    };
    let mut out = Vec::new();
    let (mut id, mut description) = (None, None);
    for line in text.lines() {
        let l = line.trim();
        if let Some(v) = annotation(l, "id") {
            id = Some(v);
        } else if let Some(v) = annotation(l, "description") {
            description = Some(v);
        } else if l.starts_with("permit") || l.starts_with("forbid") {
            let id_text = id.take().unwrap_or_else(|| format!("#{}", out.len() + 1));
            let described = description.take().unwrap_or_default();
            let text = match (lang, german_rule(&id_text)) {
                (Lang::De, Some(de)) => de.says.to_string(),
                _ => described,
            };
            out.push(Rule {
                effect: if l.starts_with("permit") {
                    "permit"
                } else {
                    "forbid"
                },
                id: id_text,
                text,
            });
        }
    }
    out
}

#[derive(Template)]
#[template(path = "policies.html")]
struct PoliciesPage {
    c: Chrome,
    for_org: Option<String>,
    docs: Vec<Doc>,
}

/// `GET /policies`.
pub async fn page(State(state): State<WebState>, v: Viewer, Query(q): Query<OrgQuery>) -> Response {
    let mine = my_organisations(&state, &v).await.unwrap_or_default();
    let org = q.org.clone().or_else(|| mine.first().map(|o| o.id.clone()));
    let got = policies::list(
        State(state.api.clone()),
        v.caller.clone(),
        ApiQuery(PolicyQuery {
            organisation: org.clone(),
        }),
    )
    .await;
    let list = match got {
        Ok(Json(l)) => l,
        Err(e) => return api_error(&v, &e, "/"),
    };
    let lang = v.lang;
    let org_name = match &org {
        Some(id) => state
            .api
            .store
            .get_organisation(id)
            .await
            .ok()
            .map(|o| o.name),
        None => None,
    };
    let rank = |l: &str| match l {
        "federation" => 0,
        "land" => 1,
        _ => 2,
    };
    let mut docs: Vec<Doc> = list
        .into_iter()
        .filter(|p| !p.deleted)
        .map(|p| Doc {
            rules: rules(&p.text, lang),
            name: p.name,
            layer: layer_name(&p.layer, lang).to_string(),
            rank: rank(&p.layer),
            owner: p.owner.unwrap_or_default(),
            version: p.version,
            changed: format!("{} ({})", local_time(p.created_at, lang), p.created_by),
            text: p.text,
        })
        .collect();
    docs.sort_by(|a, b| (a.rank, &a.name).cmp(&(b.rank, &b.name)));
    render(
        StatusCode::OK,
        &PoliciesPage {
            c: Chrome::for_viewer(&v, v.lang.texts().nav_policies, "policies", "/policies"),
            for_org: org_name,
            docs,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_are_read_from_their_annotations() {
        let text = "@id(\"a.one\")\n@description(\"no \\\"x\\\"\")\nforbid (principal, action, resource);\n\npermit (principal, action, resource);\n";
        let r = rules(text, Lang::En);
        assert_eq!(r.len(), 2);
        assert_eq!(
            (r[0].id.as_str(), r[0].effect, r[0].text.as_str()),
            ("a.one", "forbid", "no \"x\"")
        );
        assert_eq!((r[1].id.as_str(), r[1].effect), ("#2", "permit"));
        let de = rules(
            "@id(\"federation.personal-data-in-eu\")\n@description(\"x\")\nforbid (p, a, r);",
            Lang::De,
        );
        // A sentence of its own, which says what the rule requires (not a clause that
        // would read as its opposite after "verbietet").
        assert_eq!(
            de[0].text,
            "Personenbezogene Daten dürfen nur in Rechenzentren innerhalb der EU verarbeitet werden."
        );
    }
}
