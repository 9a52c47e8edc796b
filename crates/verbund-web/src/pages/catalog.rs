//! The catalog: every offering, searchable and filtered by category, OZG Themenfeld,
//! data class and vendor.

use std::collections::{BTreeSet, HashMap};

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use serde::Deserialize;
use verbund_api::extract::ApiQuery;
use verbund_api::routes::offerings::{self, OfferingQuery};
use verbund_domain::catalog::Offering;

use crate::error::api_error;
use crate::session::Viewer;
use crate::view::{euros, render, Chrome};
use crate::WebState;

#[derive(Deserialize, Default)]
pub struct Filters {
    #[serde(default)]
    pub q: String,
    #[serde(default)]
    pub category: String,
    #[serde(default)]
    pub field: String,
    #[serde(default)]
    pub data_class: String,
    #[serde(default)]
    pub vendor: String,
    /// `efa`: only "Einer für Alle" services.
    #[serde(default)]
    pub efa: String,
}

pub struct Card {
    pub name: String,
    pub title: String,
    pub description: String,
    /// The description's `lang`, when it is not the page's.
    pub lang: Option<String>,
    pub category: String,
    pub field: Option<String>,
    pub vendor: String,
    pub classes: Vec<String>,
    pub from_price: String,
    pub version: String,
    /// "Einer für Alle": the operating Land and whom it serves, in words.
    pub efa: Option<String>,
    /// How many organisations run it, in words (none when nobody does yet).
    pub used_by: Option<String>,
    /// "2 Vorlagen, übernommen von 143 Organisationen", for offerings with templates.
    pub templates: Option<String>,
}

#[derive(Template)]
#[template(path = "catalog.html")]
struct CatalogPage {
    c: Chrome,
    f: Filters,
    cards: Vec<Card>,
    total: usize,
    categories: Vec<&'static str>,
    fields: Vec<String>,
    classes: Vec<&'static str>,
    vendors: Vec<(String, String)>,
}

/// Every offering the caller may read, through the API's list, page by page.
pub async fn all_offerings(
    state: &WebState,
    v: &Viewer,
) -> Result<Vec<Offering>, verbund_api::ApiError> {
    offerings_serving(state, v, None).await
}

/// The offerings the caller may read — with `land`, only the "Einer für Alle" services
/// that serve that Land (the API's `efa_for` filter) —, page by page.
pub async fn offerings_serving(
    state: &WebState,
    v: &Viewer,
    land: Option<&str>,
) -> Result<Vec<Offering>, verbund_api::ApiError> {
    super::every_page(|after| async move {
        offerings::list(
            State(state.api.clone()),
            v.caller.clone(),
            ApiQuery(OfferingQuery {
                category: None,
                vendor: None,
                ozg_id: None,
                efa: None,
                efa_for: land.map(str::to_string),
                limit: Some(1000),
                after,
            }),
        )
        .await
        .map(|axum::Json(page)| page)
    })
    .await
}

/// The Länder by key ("09" → "Bayern"), as the directory names them.
pub async fn land_names(store: &verbund_store::Store) -> HashMap<String, String> {
    let filter = verbund_domain::directory::OrganisationFilter {
        level: Some(verbund_domain::directory::Level::Land),
        ..Default::default()
    };
    let page = verbund_domain::page::PageRequest {
        limit: Some(100),
        after: None,
    };
    store
        .list_organisations(&filter, &page)
        .await
        .map(|p| p.items)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|o| Some((o.ars?, o.name)))
        .collect()
}

/// An offering's "Einer für Alle" status in words: "Einer für Alle: betrieben von
/// Bayern für alle Länder" (or the Länder it serves).
pub fn efa_words(
    efa: &verbund_domain::catalog::Efa,
    lands: &HashMap<String, String>,
    lang: crate::i18n::Lang,
) -> String {
    let t = lang.texts();
    let name = |k: &String| lands.get(k).cloned().unwrap_or_else(|| k.clone());
    let whom = if efa.for_laender.is_empty() {
        t.efa_all_laender.to_string()
    } else {
        efa.for_laender
            .iter()
            .map(name)
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "{} {} {} {whom}",
        t.efa_operated_by,
        name(&efa.operator),
        t.efa_for
    )
}

/// "Genutzt von 143 Organisationen".
/// How many templates an offering has and how many organisations adopted one, in words.
fn templates_words((templates, adopters): (u64, u64), lang: crate::i18n::Lang) -> String {
    let t = lang.texts();
    let adopted = match adopters {
        1 => t.template_adopted_one.to_string(),
        n => format!("{} {n} {}", t.template_adopted_by, t.template_organisations),
    };
    let noun = match templates {
        1 => t.catalog_template_one,
        _ => t.catalog_templates,
    };
    format!("{templates} {noun}, {adopted}")
}

fn used_by_words(n: u64, lang: crate::i18n::Lang) -> String {
    let t = lang.texts();
    if n == 1 {
        t.catalog_used_by_one.to_string()
    } else {
        format!("{} {n} {}", t.catalog_used_by, t.catalog_organisations)
    }
}

/// An offering's category in words ("Software als Dienst (SaaS)").
pub fn category_label(c: &str, lang: crate::i18n::Lang) -> &str {
    use crate::i18n::Lang::*;
    match (c, lang) {
        ("iaas", De) => "Infrastruktur als Dienst (IaaS)",
        ("paas", De) => "Plattform als Dienst (PaaS)",
        ("saas", De) => "Software als Dienst (SaaS)",
        ("iaas", En) => "Infrastructure as a service (IaaS)",
        ("paas", En) => "Platform as a service (PaaS)",
        ("saas", En) => "Software as a service (SaaS)",
        (c, _) => c,
    }
}

pub fn data_class_label(c: &str, lang: crate::i18n::Lang) -> &str {
    use crate::i18n::Lang::*;
    match (c, lang) {
        ("public", De) => "öffentlich",
        ("internal", De) => "intern",
        ("personal", De) => "personenbezogen",
        ("special-categories", De) => "besondere Kategorien (Art. 9 DSGVO)",
        ("vs-nfd", De) => "VS-NfD",
        ("special-categories", En) => "special categories (Art. 9 GDPR)",
        (c, _) => c,
    }
}

/// `GET /catalog`.
pub async fn page(
    State(state): State<WebState>,
    v: Viewer,
    uri: Uri,
    Query(f): Query<Filters>,
) -> Response {
    let all = match all_offerings(&state, &v).await {
        Ok(a) => a,
        Err(e) => return api_error(&v, &e, "/"),
    };
    let store = &state.api.store;
    let vendor_ids: Vec<String> = all
        .iter()
        .map(|o| o.spec.vendor.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let vendor_names: HashMap<String, String> = store
        .organisations_by_ids(&vendor_ids)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|o| (o.id, o.name))
        .collect();
    let mut fields_by_ozg: HashMap<String, String> = HashMap::new();
    for o in &all {
        if let Some(id) = &o.spec.ozg_id {
            if let Ok(Some(s)) = store.get_ozg_service(id).await {
                fields_by_ozg.insert(id.clone(), s.field);
            }
        }
    }
    let q = f.q.trim().to_lowercase();
    let lang = v.lang;
    let lands = land_names(store).await;
    let users = store.organisations_per_offering().await.unwrap_or_default();
    let templates = store.template_counts().await.unwrap_or_default();
    let mut cards = Vec::new();
    for o in &all {
        let s = &o.spec;
        let field = s
            .ozg_id
            .as_ref()
            .and_then(|id| fields_by_ozg.get(id))
            .cloned();
        let classes: Vec<String> = s
            .data_classes
            .iter()
            .map(|c| c.as_str().to_string())
            .collect();
        let keep = (q.is_empty()
            || s.name.contains(&q)
            || s.display_name.to_lowercase().contains(&q)
            || s.description.to_lowercase().contains(&q))
            && (f.category.is_empty() || s.category.as_str() == f.category)
            && (f.field.is_empty() || field.as_deref() == Some(f.field.as_str()))
            && (f.data_class.is_empty() || classes.contains(&f.data_class))
            && (f.vendor.is_empty() || s.vendor == f.vendor)
            && (f.efa.is_empty() || s.efa.is_some());
        if !keep {
            continue;
        }
        cards.push(Card {
            name: s.name.clone(),
            title: s.display_name.clone(),
            description: s.description.clone(),
            lang: crate::view::text_lang(s.description_language.as_deref(), lang),
            category: category_label(s.category.as_str(), lang).to_string(),
            field,
            vendor: vendor_names
                .get(&s.vendor)
                .cloned()
                .unwrap_or_else(|| s.vendor.clone()),
            classes: classes
                .iter()
                .map(|c| data_class_label(c, lang).to_string())
                .collect(),
            from_price: s
                .plans
                .iter()
                .map(|p| p.monthly_price_cents)
                .min()
                .map(|c| euros(c, lang))
                .unwrap_or_default(),
            version: o.latest_version.clone().unwrap_or_else(|| "–".into()),
            efa: s.efa.as_ref().map(|e| efa_words(e, &lands, lang)),
            used_by: users.get(&s.name).map(|n| used_by_words(*n, lang)),
            templates: templates.get(&s.name).map(|n| templates_words(*n, lang)),
        });
    }
    let fields: Vec<String> = fields_by_ozg
        .values()
        .cloned()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut vendors: Vec<(String, String)> = vendor_names.into_iter().collect();
    vendors.sort_by(|a, b| a.1.cmp(&b.1));
    let t = lang.texts();
    render(
        StatusCode::OK,
        &CatalogPage {
            c: Chrome::for_viewer(&v, t.catalog_title, "catalog", &uri.to_string()),
            total: all.len(),
            f,
            cards,
            categories: vec!["iaas", "paas", "saas"],
            fields,
            classes: vec![
                "public",
                "internal",
                "personal",
                "special-categories",
                "vs-nfd",
            ],
            vendors,
        },
    )
}

impl CatalogPage {
    fn class_label(&self, c: &str) -> String {
        data_class_label(c, self.c.lang).to_string()
    }

    fn category_label(&self, c: &str) -> String {
        category_label(c, self.c.lang).to_string()
    }
}
