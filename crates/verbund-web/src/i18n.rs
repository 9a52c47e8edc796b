//! German by default, English by choice: every text of the portal in both languages.
//!
//! The texts live in one table (`texts!` below), German and English side by side, so a
//! text cannot be added in one language only: the compiler refuses a missing field.
//! The choice is a cookie set by `GET /language?to=en`.

use axum::extract::Query;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use crate::session::{cookie, local_path};

pub const LANG_COOKIE: &str = "verbund_lang";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    De,
    En,
}

impl Lang {
    /// The language a request asked for (German unless its cookie says English).
    pub fn of(headers: &HeaderMap) -> Lang {
        match cookie(headers, LANG_COOKIE) {
            Some("en") => Lang::En,
            _ => Lang::De,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Lang::De => "de",
            Lang::En => "en",
        }
    }

    /// The language's name in itself, for the switch.
    pub fn name(self) -> &'static str {
        match self {
            Lang::De => "Deutsch",
            Lang::En => "English",
        }
    }

    pub fn other(self) -> Lang {
        match self {
            Lang::De => Lang::En,
            Lang::En => Lang::De,
        }
    }

    pub fn texts(self) -> &'static Texts {
        match self {
            Lang::De => &DE,
            Lang::En => &EN,
        }
    }
}

#[derive(Deserialize)]
pub struct Switch {
    to: String,
    back: Option<String>,
}

/// `GET /language?to=en&back=/catalog`: remembers the choice for a year.
pub async fn switch(Query(s): Query<Switch>) -> Response {
    let lang = if s.to == "en" { "en" } else { "de" };
    let mut resp = Redirect::to(&local_path(s.back.as_deref())).into_response();
    if let Ok(v) = format!("{LANG_COOKIE}={lang}; Path=/; Max-Age=31536000; SameSite=Lax").parse() {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

macro_rules! texts {
    ($($key:ident: $de:expr, $en:expr;)*) => {
        /// Every text of the portal in one language.
        pub struct Texts { $(pub $key: &'static str,)* }
        pub static DE: Texts = Texts { $($key: $de,)* };
        pub static EN: Texts = Texts { $($key: $en,)* };
    };
}

texts! {
    skip_to_content: "Zum Inhalt springen", "Skip to content";
    official_site: "Verwaltungscloud des Verbunds öffentlicher IT-Dienstleister", "Administration cloud of the public IT service providers' federation";
    home: "Startseite", "Home";
    tagline: "Souveräne Cloud der öffentlichen Verwaltung", "Sovereign cloud of public administration";
    signed_in_as: "Angemeldet als", "Signed in as";
    sign_out: "Abmelden", "Sign out";
    main_navigation: "Hauptnavigation", "Main navigation";
    nav_catalog: "Katalog", "Catalog";
    nav_organisation: "Meine Organisation", "My organisation";
    nav_where: "Wo sind unsere Daten?", "Where is our data?";
    nav_fleet: "Betrieb", "Fleet";
    nav_rollouts: "Rollouts", "Rollouts";
    nav_audit: "Prüfprotokoll", "Audit trail";
    nav_policies: "Richtlinien", "Policies";
    footer: "Steuerung der föderierten Verwaltungscloud", "control plane of the federated administration cloud";
    back: "Zurück", "Back";
    sign_in: "Anmelden", "Sign in";
    sign_in_intro: "Melden Sie sich mit Ihrem Konto an, um Leistungen zu buchen und Ihren Betrieb zu sehen.", "Sign in with your account to book services and see your operations.";
    sign_in_oidc_heading: "Anmeldung über Ihre Verwaltung", "Sign in through your administration";
    sign_in_oidc: "Mit dem Identitätsdienst anmelden (Keycloak)", "Sign in with the identity service (Keycloak)";
    user_name: "Benutzername", "User name";
    password: "Passwort", "Password";
    login_failed: "Benutzername oder Passwort ist falsch.", "The user name or the password is wrong.";
    login_locked: "Nach zu vielen Fehlversuchen ist das Konto vorübergehend gesperrt, bis", "After too many failed attempts the account is locked until";
    login_expired: "Das Formular ist abgelaufen. Bitte melden Sie sich erneut an.", "The form has expired. Please sign in again.";
    error_not_found: "Nicht gefunden", "Not found";
    error_not_found_detail: "Diese Seite gibt es nicht, oder Sie dürfen sie nicht sehen.", "This page does not exist, or you may not see it.";
    error_forbidden: "Keine Berechtigung", "Not permitted";
    error_conflict: "Nicht möglich", "Not possible";
    error_invalid: "Eingabe ungültig", "Invalid input";
    error_internal: "Technischer Fehler", "Technical error";
    error_internal_detail: "Es ist ein Fehler aufgetreten. Er wurde protokolliert; bitte versuchen Sie es später erneut.", "Something went wrong. It was logged; please try again later.";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn german_is_the_default_and_english_a_choice() {
        let mut h = HeaderMap::new();
        assert_eq!(Lang::of(&h), Lang::De);
        h.insert(header::COOKIE, "verbund_lang=en".parse().unwrap());
        assert_eq!(Lang::of(&h), Lang::En);
        assert_ne!(DE.sign_in, EN.sign_in);
    }
}
