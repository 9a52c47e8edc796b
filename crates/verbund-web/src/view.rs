//! What every page shares: the frame around it (`Chrome`), rendering, and the small
//! formatting rules (euros, German local time, state badges).

use askama::Template;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use chrono::{DateTime, Utc};
use verbund_policy::authz::{Act, Target};

use crate::i18n::{Lang, Texts};
use crate::session::Viewer;

/// The frame of a page: language, title, navigation, who is signed in.
pub struct Chrome {
    pub t: &'static Texts,
    pub lang: Lang,
    pub other_lang: Lang,
    pub title: String,
    /// Which navigation entry is the current page.
    pub nav: &'static str,
    /// The signed-in person's display name.
    pub user: Option<String>,
    pub csrf: String,
    /// This page's path and query, URL-encoded, to come back to after switching language.
    pub path_encoded: String,
    pub links: Links,
    pub flash: Option<String>,
    pub version: &'static str,
    pub kern: &'static str,
}

/// Which sections of the portal the signed-in person may open (decided by the role
/// policies, like every API call).
#[derive(Default)]
pub struct Links {
    pub organisation: bool,
    pub fleet: bool,
    pub rollouts: bool,
    pub audit: bool,
    pub policies: bool,
    /// "Aufgaben": for the roles that have a queue.
    pub work: bool,
}

impl Chrome {
    /// The frame for a signed-in person.
    pub fn for_viewer(v: &Viewer, title: impl Into<String>, nav: &'static str, path: &str) -> Self {
        use verbund_domain::account::Role;
        let p = &v.caller.0;
        let own: Vec<&String> = p
            .memberships
            .iter()
            .filter(|m| matches!(m.role, Role::OrgAdmin | Role::OrgMember))
            .filter_map(|m| m.organisation.as_ref())
            .collect();
        let links = Links {
            // Only for people of an organisation: the federation's admins and auditors
            // reach an organisation's pages from its bookings (`?org=`), not as "mine".
            organisation: !own.is_empty(),
            fleet: p.has_role(Role::ProviderOperator)
                || p.has_role(Role::FederationAdmin)
                || p.has_role(Role::Auditor),
            rollouts: p.has_role(Role::Vendor)
                || p.has_role(Role::ProviderOperator)
                || p.has_role(Role::FederationAdmin)
                || p.has_role(Role::Auditor),
            audit: v.caller.may(Act::Read, &Target::new("audit")),
            policies: policies_readable(v, &own),
            work: crate::pages::work::has_queue(v),
        };
        Self {
            user: Some(v.user.spec.display_name.clone()),
            csrf: v.csrf.clone(),
            links,
            ..Self::public(v.lang, title, nav, path)
        }
    }

    /// The frame for nobody signed in (the sign-in page, errors before sign-in).
    pub fn public(lang: Lang, title: impl Into<String>, nav: &'static str, path: &str) -> Self {
        Self {
            t: lang.texts(),
            lang,
            other_lang: lang.other(),
            title: title.into(),
            nav,
            user: None,
            csrf: String::new(),
            path_encoded: url_encode(path),
            links: Links::default(),
            flash: None,
            version: env!("CARGO_PKG_VERSION"),
            kern: crate::assets::KERN_VERSION,
        }
    }

    pub fn with_flash(mut self, flash: Option<String>) -> Self {
        self.flash = flash;
        self
    }
}

/// Whether the policies page opens for `v`: the question the API's list asks, for one of
/// the person's own organisations (the page shows one of them), or without one for every
/// document.
fn policies_readable(v: &Viewer, own: &[&String]) -> bool {
    use verbund_api::routes::policies::list_target;
    if own.is_empty() {
        return v.caller.may(Act::Read, &list_target(None));
    }
    own.iter().any(|o| {
        v.caller
            .may(Act::Read, &list_target(Some(vec![(*o).clone()])))
    })
}

/// The `lang` a vendor's text (an offering's description, hints, changelogs) needs on a
/// page in `page`: its declared language when that differs from the page's (WCAG 3.1.2),
/// nothing when they agree. Undeclared texts are German.
pub fn text_lang(declared: Option<&str>, page: Lang) -> Option<String> {
    let l = declared.unwrap_or("de");
    let primary = l.split('-').next().unwrap_or(l);
    (primary != page.code()).then(|| l.to_string())
}

/// Renders a page as `text/html`; a template error is logged and answered with 500.
pub fn render<T: Template>(status: StatusCode, page: &T) -> Response {
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "a page failed to render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                "the page could not be rendered",
            )
                .into_response()
        }
    }
}

/// Percent-encodes everything but unreserved characters (RFC 3986).
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The decimal mark of `lang`.
fn decimal(lang: Lang) -> char {
    match lang {
        Lang::De => ',',
        Lang::En => '.',
    }
}

/// A whole number with its thousands grouped: `52.428.800` (German), `52,428,800`.
fn grouped(n: u64, lang: Lang) -> String {
    let digits = n.to_string();
    let group = match lang {
        Lang::De => '.',
        Lang::En => ',',
    };
    let mut grouped = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            grouped.push(group);
        }
        grouped.push(ch);
    }
    grouped
}

/// A size in bytes, exactly and in MiB: `52.428.800 Bytes (50,0 MiB)`.
pub fn bytes(n: u64, lang: Lang) -> String {
    let mib =
        format!("{:.1}", n as f64 / (1024.0 * 1024.0)).replace('.', &decimal(lang).to_string());
    format!("{} Bytes ({mib} MiB)", grouped(n, lang))
}

/// A monthly price in cents, the German way: `1.234,50 €`.
pub fn euros(cents: u64, lang: Lang) -> String {
    let rest = cents % 100;
    let grouped = grouped(cents / 100, lang);
    let decimal = decimal(lang);
    match lang {
        Lang::De => format!("{grouped}{decimal}{rest:02} €"),
        Lang::En => format!("€{grouped}{decimal}{rest:02}"),
    }
}

/// A time in German local time (CET/CEST), e.g. `26.11.2026, 14:05`.
pub fn local_time(t: DateTime<Utc>, lang: Lang) -> String {
    let local = verbund_domain::rollout::german_local(t);
    match lang {
        Lang::De => local.format("%d.%m.%Y, %H:%M").to_string(),
        Lang::En => local.format("%Y-%m-%d %H:%M").to_string(),
    }
}

/// Orders versions newest first (by semantic version, not by text).
pub fn newer_first(a: &str, b: &str) -> std::cmp::Ordering {
    match (semver::Version::parse(a), semver::Version::parse(b)) {
        (Ok(a), Ok(b)) => b.cmp(&a),
        _ => b.cmp(a),
    }
}

/// A date, e.g. `31.12.2027`.
pub fn date(d: chrono::NaiveDate, lang: Lang) -> String {
    match lang {
        Lang::De => d.format("%d.%m.%Y").to_string(),
        Lang::En => d.format("%Y-%m-%d").to_string(),
    }
}

/// A site's health, a rollout's, wave's or item's state in words (unknown words pass).
pub fn status_label(lang: Lang, s: &str) -> &str {
    match (lang, s) {
        (Lang::De, "healthy") => "gesund",
        (Lang::De, "degraded") => "gestört",
        (Lang::De, "unhealthy") => "ausgefallen",
        (Lang::De, "unknown") => "keine Meldung",
        (Lang::De, "running") => "läuft",
        (Lang::De, "paused") => "angehalten",
        (Lang::De, "halted") => "gestoppt",
        (Lang::De, "completed") => "abgeschlossen",
        (Lang::De, "aborted") => "abgebrochen",
        (Lang::De, "pending") => "ausstehend",
        (Lang::De, "waiting") => "wartet auf Wartungsfenster",
        (Lang::De, "updating") => "wird aktualisiert",
        (Lang::De, "baking") => "in Beobachtung",
        (Lang::De, "passed") => "bestanden",
        (Lang::De, "failed") => "fehlgeschlagen",
        (Lang::De, "rolled-back") => "zurückgerollt",
        (Lang::De, "skipped") => "übersprungen",
        (Lang::De, "done") => "erledigt",
        (Lang::De, "test") => "Test",
        (Lang::De, "canary") => "Pilot",
        (Lang::De, "production") => "Produktion",
        (Lang::En, "rolled-back") => "rolled back",
        (_, s) => s,
    }
}

/// The KERN badge variant for a lifecycle, health or rollout state.
pub fn badge(state: &str) -> &'static str {
    match state {
        "active" | "healthy" | "passed" | "completed" | "ok" => "success",
        "degraded" | "unhealthy" | "failed" | "rejected" | "halted" | "aborted" | "rolled-back"
        | "broken" => "danger",
        "awaiting-approval" | "paused" | "unknown" | "cancelling" | "exporting" | "retained"
        | "skipped" | "waiting" | "expiring" => "warning",
        _ => "info",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(euros(123_450, Lang::De), "1.234,50 €");
        assert_eq!(euros(5, Lang::En), "€0.05");
        assert_eq!(bytes(52_428_800, Lang::De), "52.428.800 Bytes (50,0 MiB)");
        assert_eq!(bytes(1_572_864, Lang::En), "1,572,864 Bytes (1.5 MiB)");
        assert_eq!(url_encode("/a b?x=ü"), "/a%20b%3Fx%3D%C3%BC");
        let t = "2026-07-01T12:00:00Z".parse().unwrap();
        assert_eq!(local_time(t, Lang::De), "01.07.2026, 14:00");
        assert_eq!(text_lang(Some("en"), Lang::De).as_deref(), Some("en"));
        assert_eq!(text_lang(Some("en"), Lang::En), None);
        assert_eq!(text_lang(None, Lang::En).as_deref(), Some("de"));
        assert_eq!(text_lang(Some("de-AT"), Lang::De), None);
    }
}
