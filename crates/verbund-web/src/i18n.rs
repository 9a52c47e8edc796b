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
    chart_states_title: "Buchungen je Rechenzentrum nach Status", "Bookings per data center by state";
    chart_states_desc: "Ein gestapelter Balken je Rechenzentrum; jede Farbe ist ein Status. Die Zahlen stehen in der Tabelle darunter.", "One stacked bar per data center; each colour is a state. The numbers are in the table below.";
    chart_numbers: "Zahlen als Tabelle", "Numbers as a table";
    outlook_heading: "Kapazitätsausblick", "Capacity outlook";
    windows_heading: "Kapazitätsfenster", "Capacity windows";
    windows_hint: "Für bekannte Spitzen, etwa Steuererklärungen im Frühjahr oder eine Wahl: erster und letzter Tag (deutsche Ortszeit) und der Tarif, der in dieser Zeit gilt. Das Rechenzentrum hält die Kapazität dafür bereit; verbund stellt den Tarif um 0 Uhr um. Leere Zeilen bleiben ohne Wirkung.", "For known peaks, such as tax returns in spring or an election: first and last day (German local time) and the plan that holds then. The data center keeps the capacity for it; verbund switches the plan at midnight. Empty rows have no effect.";
    window_legend: "Zeitfenster", "Window";
    window_from: "Erster Tag", "First day";
    window_to: "Letzter Tag", "Last day";
    window_no_plan: "– kein Zeitfenster –", "– no window –";
    error_window_incomplete: "Bitte ersten Tag, letzten Tag und Tarif angeben – oder alle drei leer lassen.", "Please give first day, last day and plan – or leave all three empty.";
    error_window_date: "Bitte ein Datum angeben, z. B. 01.03.2027.", "Please enter a date, e.g. 2027-03-01.";
    error_window_ends_before: "Der letzte Tag liegt vor dem ersten. Bitte den letzten Tag ändern.", "The last day lies before the first. Please change the last day.";
    error_window_over: "Dieses Zeitfenster ist schon vorbei. Bitte einen künftigen Zeitraum angeben.", "This window is over. Please give a period ahead.";
    error_window_far: "Ein Zeitfenster darf höchstens fünf Jahre im Voraus beginnen.", "A window may start at most five years ahead.";
    error_window_plan: "Bitte einen anderen Tarif als den gebuchten wählen: sonst ändert das Zeitfenster nichts.", "Please choose a plan other than the one booked: otherwise the window changes nothing.";
    error_window_overlaps: "Dieses Zeitfenster überschneidet sich mit einem anderen. Bitte die Zeiträume trennen.", "This window overlaps another. Please separate the periods.";
    error_window_too_many: "Höchstens zwölf Zeitfenster je Buchung.", "At most twelve windows per booking.";
    error_window_too_long: "Ein Zeitfenster dauert höchstens ein Jahr; für länger bitte den Tarif wechseln.", "A window lasts at most a year; for longer, please change the plan.";
    windows_none: "Keine: der Tarif gilt das ganze Jahr.", "None: the plan holds all year.";
    ending_heading: "Befristung", "Fixed term";
    ending_hint: "Nur für eine Buchung auf Zeit, etwa ein Impfzentrum oder eine Wahl: der letzte Tag (deutsche Ortszeit) und das Exportziel Ihrer Organisation. 14 Tage vor dem Ende werden Sie erinnert; am Ende exportiert verbund die Daten dorthin, prüft sie anhand ihrer Prüfsumme und baut die Buchung erst danach ab. Für eine unbefristete Buchung beide Angaben leer lassen.", "Only for a booking for a time, such as a vaccination centre or an election: the last day (German local time) and your organisation's export target. You are reminded 14 days before the end; at the end verbund exports the data there, checks it by its checksum and only then tears the booking down. For a booking without an end, leave both empty.";
    ending_last_day: "Letzter Tag", "Last day";
    ending_none: "Keine: die Buchung läuft, bis sie gekündigt oder beendet wird.", "None: the booking runs until it is cancelled or ended.";
    on_date: "am", "on";
    ending_target: "Exportziel", "Export target";
    ending_target_hint: "Die https-Adresse eines S3-kompatiblen Speichers mit dem Bucket und, wenn gewünscht, einem Pfad, z. B. https://s3.stadt.de/exporte/buergerportal/.", "The https address of an S3-compatible store with the bucket and, if wanted, a path, e.g. https://s3.stadt.de/exporte/buergerportal/.";
    ending_not_offered: "Dieses Angebot lässt sich nicht befristet buchen: es bietet keinen Datenexport.", "This service cannot be booked for a time: it offers no data export.";
    error_ending_no_day: "Bitte auch den letzten Tag angeben – oder beide Angaben leer lassen.", "Please give the last day too – or leave both empty.";
    error_ending_no_target: "Bitte auch das Exportziel angeben – oder beide Angaben leer lassen.", "Please give the export target too – or leave both empty.";
    error_ends_on: "Der letzte Tag muss heute oder später sein und darf höchstens fünf Jahre vorausliegen.", "The last day must be today or later and at most five years ahead.";
    error_export_target: "Das ist kein Exportziel. Bitte die https-Adresse des Speichers mit dem Bucket und, wenn gewünscht, einem Pfad angeben, z. B. https://s3.stadt.de/exporte/buergerportal/ (Bucket: 3–63 Kleinbuchstaben, Ziffern, Punkt oder Bindestrich).", "This is not an export target. Please give the store's https address with the bucket and, if wanted, a path, e.g. https://s3.stadt.de/exporte/buergerportal/ (bucket: 3–63 lowercase letters, digits, dot or hyphen).";
    error_export_target_missing: "Bitte das Exportziel angeben, z. B. https://s3.stadt.de/exporte/buergerportal/.", "Please give the export target, e.g. https://s3.stadt.de/exporte/buergerportal/.";
    ending_ends: "Diese Buchung endet mit Ablauf des", "This booking ends at the end of";
    ending_soon: "Diese Buchung endet bald", "This booking ends soon";
    ending_exported_to: "Vorher werden ihre Daten exportiert nach", "Before that, its data is exported to";
    ending_torn_down_after: "erst wenn der Export geprüft ist, wird sie abgebaut.", "it is torn down only once the export is verified.";
    export_heading: "Datenexport", "Data export";
    export_attempt: "Versuch", "Attempt";
    export_job: "Job", "Job";
    export_running: "läuft", "running";
    export_verified: "verifiziert", "verified";
    export_failed: "fehlgeschlagen", "failed";
    export_size: "Größe", "Size";
    export_failed_hint: "Der Export ist fehlgeschlagen; abgebaut wurde nichts. Beheben Sie die Ursache (etwa die Zugriffsrechte am Bucket) und versuchen Sie es erneut.", "The export failed; nothing was torn down. Fix the cause (such as the access rights to the bucket) and try again.";
    export_retry: "Export erneut versuchen", "Retry the export";
    end_now: "Jetzt beenden und Daten exportieren", "End now and export the data";
    end_hint: "Beendet die Buchung vor ihrem Ende: ihre Daten werden exportiert und geprüft, erst danach wird sie abgebaut.", "Ends the booking early: its data is exported and checked, only then is it torn down.";
    end_confirm_title: "Buchung jetzt beenden?", "End the booking now?";
    end_what: "verbund exportiert die Daten der Buchung in das Exportziel, liest sie dort zurück und vergleicht die Prüfsummen. Erst wenn sie übereinstimmen, wird die Buchung abgebaut und gekündigt; ihr Datensatz wird wie bei einer Kündigung aufbewahrt. Schlägt der Export fehl, bleibt alles erhalten, und Sie können ihn erneut versuchen. Das Beenden lässt sich nicht zurücknehmen.", "verbund exports the booking's data to the export target, reads it back there and compares the checksums. Only when they agree is the booking torn down and cancelled; its record is kept as after a cancellation. If the export fails, everything is kept and you can try again. Ending cannot be taken back.";
    end_confirm: "Ja, beenden und exportieren", "Yes, end and export";
    end_keep: "Nein, Buchung weiterlaufen lassen", "No, keep the booking running";
    done_ended: "Die Buchung ist beendet; ihre Daten werden exportiert.", "The booking has ended; its data is being exported.";
    done_export_retried: "Der Export wird erneut versucht.", "The export is being tried again.";
    window_span: "Zeitraum", "Period";
    window_plan: "Tarif in dieser Zeit", "Plan during the window";
    window_scheduled: "geplant", "scheduled";
    window_active: "läuft", "running";
    window_ended: "beendet", "ended";
    plan_now: "Tarif jetzt", "Plan now";
    outlook_intro: "Reserviert ist, was die Tarife aller Buchungen brauchen, in ihren Kapazitätsfenstern der Tarif des Fensters. So sehen Sie, wann ein Rechenzentrum voll wird und ob eine Kampagne noch hineinpasst.", "Reserved is what every booking's plan needs, within its capacity windows the window's plan. So you see when a data center fills up and whether a campaign still fits.";
    outlook_title: "Reservierte Kapazität je Rechenzentrum in den nächsten 12 Monaten", "Reserved capacity per data center over the next 12 months";
    outlook_desc: "Eine Zeile je Rechenzentrum, ein Feld je Monat; die Farbe zeigt, wie voll es im vollsten Moment des Monats ist. Die Zahlen stehen in der Tabelle darunter.", "One row per data center, one cell per month; the colour shows how full it is at the month's fullest moment. The numbers are in the table below.";
    outlook_full: "Voll", "Full";
    outlook_full_from: "ab", "from";
    outlook_none_full: "Kein Rechenzentrum wird in den nächsten 12 Monaten voll.", "No data center fills up within the next 12 months.";
    load_low: "unter 70 %", "below 70 %";
    load_mid: "70 bis 89 %", "70 to 89 %";
    load_high: "90 bis 99 %", "90 to 99 %";
    load_full: "voll (100 % und mehr)", "full (100 % and more)";
    chart_legend: "Legende", "Legend";
    total: "Summe", "Total";
    history_title: "Zustand im Verlauf", "Health over time";
    history_desc: "Ein Band über den Zeitraum; jede Farbe ist ein Zustand, den das Rechenzentrum gemeldet hat oder der aus seinem Schweigen folgt. Die Abschnitte stehen in der Tabelle darunter.", "One band over the period; each colour is a health the data center reported, or that follows from its silence. The stretches are in the table below.";
    history_window: "Zeitraum", "Period";
    history_days: "Tage", "days";
    history_last: "Letzte", "Last";
    history_range: "von", "from";
    history_to: "bis", "until";
    history_healthy_share: "Anteil gesund im Zeitraum", "Share healthy in the period";
    history_spans: "Abschnitte", "Stretches";
    history_turns: "Ereignisse", "Events";
    history_no_turns: "Keine Ereignisse in diesem Zeitraum.", "No events in this period.";
    history_event: "Ereignis", "Event";
    history_message: "Meldung", "Message";
    history_duration: "Dauer", "Duration";
    turn_reporting: "meldet sich (erstmals oder wieder)", "reports (first time or again)";
    turn_health: "Zustand geändert", "health changed";
    turn_silent: "keine Meldung im Intervall", "no report within its interval";
    unit_days: "Tg.", "d";
    unit_hours: "Std.", "h";
    unit_minutes: "Min.", "min";
    print_answer: "Drucken oder als PDF speichern", "Print or save as PDF";
    print_hint: "Die Druckansicht enthält nur die Antwort mit Stand, Karte und Rechenzentren, zum Ablegen in der Akte.", "The print view holds only the answer with its date, map and data centers, for filing.";
    export_json: "Alles als JSON herunterladen", "Download everything as JSON";
    where_map_title: "Rechenzentren mit Daten von", "Data centers holding data of";
    where_map_desc: "Jeder nummerierte Punkt ist ein Rechenzentrum; die Nummer steht vor seinem Namen in der Liste darunter.", "Each numbered dot is a data center; its number is in front of its name in the list below.";
    where_unmapped: "Rechenzentren ohne Koordinaten, nur in der Liste", "Data centers without coordinates, listed only";
    where_map_caption: "Schematische Karte; die Liste darunter nennt jedes Rechenzentrum mit Betreiber, Zertifizierungen und Leistungen.", "Schematic map; the list below names every data center with its operator, certifications and services.";
    back_to_fleet: "Zurück zum Betrieb", "Back to the fleet";
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
    login_source_throttled: "Zu viele Fehlversuche von Ihrer Adresse aus. Anmeldungen von hier sind wieder möglich ab", "Too many failed attempts from your address. Sign-ins from here are possible again from";
    login_disabled: "Dieses Konto ist deaktiviert. Bitte wenden Sie sich an Ihre Administration.", "This account is disabled. Please ask your administration.";
    busy: "Der Dienst ist gerade ausgelastet. Bitte versuchen Sie es in einer Sekunde erneut.", "The service is busy right now. Please try again in a second.";
    error_too_large: "Anfrage zu groß", "Request too large";
    error_too_large_detail: "Das Formular ist zu groß, um es anzunehmen. Bitte kürzen Sie Ihre Eingaben.", "The form is too large to be accepted. Please shorten what you entered.";
    error_timeout: "Zeitüberschreitung", "Timed out";
    error_timeout_detail: "Die Anfrage hat zu lange gedauert und wurde abgebrochen. Bitte versuchen Sie es erneut.", "The request took too long and was stopped. Please try again.";
    error_not_found: "Nicht gefunden", "Not found";
    error_not_found_detail: "Diese Seite gibt es nicht, oder Sie dürfen sie nicht sehen.", "This page does not exist, or you may not see it.";
    error_forbidden: "Keine Berechtigung", "Not permitted";
    error_forbidden_detail: "Ihre Rollen erlauben das nicht.", "Your roles do not allow this.";
    error_organisation: "Bitte eine Organisation wählen, für die Sie buchen dürfen.", "Please choose an organisation you may book for.";
    error_plan: "Bitte einen der angebotenen Tarife wählen.", "Please choose one of the plans offered.";
    error_channel: "Bitte einen der angebotenen Aktualisierungskanäle wählen.", "Please choose one of the update channels offered.";
    error_dependency: "Die gewählte Buchung kann nicht mitgenutzt werden (sie läuft nicht mehr oder gehört nicht zu dieser Leistung). Bitte eine der angebotenen wählen oder die Wahl der Platzierung überlassen.", "The chosen booking cannot be used (it no longer runs or is not of this service). Please choose one of those offered or leave the choice to placement.";
    error_conflict: "Nicht möglich", "Not possible";
    error_invalid: "Eingabe ungültig", "Invalid input";
    error_internal: "Technischer Fehler", "Technical error";
    abort: "Abbrechen und zurückrollen", "Abort and roll back";
    action: "Aktion", "Action";
    action_hint: "Anfang der Aktion, z. B. „booking.“", "Start of the action, e.g. \"booking.\"";
    actions: "Aktionen", "Actions";
    actor: "Handelnde Person oder System", "Actor";
    actor_hint: "Genau, z. B. „user/it-muenchen“ oder „system/rollouts“", "Exactly, e.g. \"user/it-muenchen\" or \"system/rollouts\"";
    all: "Alle", "All";
    approval: "Freigabe", "Approval";
    approve: "Freigeben", "Approve";
    as_of: "Stand:", "As of";
    audit_none: "Keine Einträge für diese Filter.", "No events match these filters.";
    bake_seconds: "Beobachtungszeit je Buchung (Sekunden)", "Bake time per booking (seconds)";
    book_intro: "Wählen Sie Organisation, Tarif und Aktualisierungskanal und füllen Sie die Konfiguration aus. verbund prüft die Angaben und entscheidet anhand der Richtlinien, in welchem Rechenzentrum die Leistung laufen darf.", "Choose the organisation, plan and update channel and fill in the configuration. verbund checks it and decides by policy in which data center the service may run.";
    book_more: "Weitere Leistung buchen", "Book another service";
    book_now: "Jetzt buchen", "Book now";
    book_submit: "Verbindlich buchen", "Book";
    book_title: "Buchen", "Book";
    booking: "Buchung", "Booking";
    booking_created: "Die Buchung ist angelegt.", "The booking has been created.";
    booking_created_detail: "Der Status unten zeigt, was das Rechenzentrum zuletzt gemeldet hat.", "The status below shows what the data center reported last.";
    booking_created_live: "Er aktualisiert sich von selbst, sobald das Rechenzentrum meldet.", "It updates by itself as soon as the data center reports.";
    bookings: "Buchungen", "Bookings";
    broken_at: "Die Kette bricht bei Eintrag", "The chain breaks at event";
    canary_percent: "Anteil der Pilotwelle (Prozent)", "Canary share (percent)";
    cancel_back: "Abbrechen", "Cancel";
    cancel_booking: "Buchung kündigen", "Cancel the booking";
    cancel_confirm: "Ja, Buchung kündigen", "Yes, cancel the booking";
    cancel_confirm_title: "Buchung wirklich kündigen?", "Cancel this booking?";
    cancel_keep: "Nein, Buchung behalten", "No, keep the booking";
    cancel_kept: "Die Daten werden aufbewahrt und können exportiert werden,", "The data is kept and can be exported";
    cancel_kept_after: "danach werden sie gelöscht.", "then it is deleted.";
    cancel_what: "Der Dienst wird beendet und ist danach nicht mehr erreichbar. Die Kündigung lässt sich nicht zurücknehmen.", "The service is stopped and is no longer reachable afterwards. The cancellation cannot be taken back.";
    days: "Tage", "days";
    until_about: "bis voraussichtlich", "until about";
    cancel_hint: "Nach der Kündigung werden die Daten für die vereinbarte Frist aufbewahrt und können exportiert werden, dann gelöscht.", "After cancelling, the data is kept for the agreed period and can be exported, then deleted.";
    capacity_free: "Frei / Kapazität", "Free / capacity";
    catalog_empty: "Keine Leistung passt zu diesen Filtern.", "No service matches these filters.";
    catalog_used_by_one: "genutzt von 1 Organisation", "used by 1 organisation";
    catalog_used_by: "genutzt von", "used by";
    catalog_organisations: "Organisationen", "organisations";
    catalog_intro: "Standardisierte Verfahren und Software für Bund, Länder und Kommunen – einmal paketiert, überall buchbar.", "Standardised procedures and software for federal, state and local government – packaged once, bookable everywhere.";
    catalog_reset: "Alle Filter zurücksetzen", "Reset all filters";
    catalog_search: "Suche im Katalog", "Search the catalog";
    catalog_title: "Katalog", "Catalog";
    category: "Kategorie", "Category";
    cedar_text: "Richtlinientext (Cedar) anzeigen", "Show the policy text (Cedar)";
    cert_warnings: "Zertifikate, die in den nächsten 60 Tagen ablaufen oder abgelaufen sind", "Certificates that expire within 60 days or have expired";
    certifications: "Zertifizierungen", "Certifications";
    attested_by: "nachgewiesen durch ein Zertifikat von", "attested by a credential of";
    chain_broken: "Die Prüfprotokoll-Kette ist beschädigt.", "The audit chain is broken.";
    chain_intact: "Prüfprotokoll-Kette unversehrt", "Audit chain intact";
    change_booking: "Buchung ändern", "Change the booking";
    channel: "Aktualisierungskanal", "Update channel";
    channel_hint: "„stable“ (sofort), „window:sat,sun 02:00-05:00“ (im Wartungsfenster) oder „pinned:<Version>“ (festgehalten).", "\"stable\" (at once), \"window:sat,sun 02:00-05:00\" (in a maintenance window) or \"pinned:<version>\" (held).";
    channel_pinned: "Festhalten auf Version", "Pin to version";
    channel_stable: "Stabil – Aktualisierungen sofort nach der Freigabe", "Stable – updates as soon as released";
    channel_window: "Wartungsfenster – samstags und sonntags 02:00–05:00 Uhr", "Maintenance window – Saturdays and Sundays 02:00–05:00";
    chosen: "Gewählt", "Chosen";
    configuration: "Konfiguration", "Configuration";
    control: "Steuerung", "Control";
    current: "aktuell", "current";
    data_class: "Datenklasse", "Data class";
    desired_versions: "Soll-Versionen", "Desired versions";
    done_aborted: "Der Rollout wurde abgebrochen; geänderte Buchungen werden zurückgerollt.", "The rollout was aborted; changed bookings are rolled back.";
    done_approved: "Die Buchung ist freigegeben.", "The booking is approved.";
    done_booked: "Die Buchung ist angelegt.", "The booking has been created.";
    done_cancelled: "Die Buchung ist gekündigt.", "The booking is cancelled.";
    done_channel: "Der Aktualisierungskanal ist geändert.", "The update channel has been changed.";
    done_paused: "Der Rollout ist angehalten.", "The rollout is paused.";
    done_rejected: "Die Buchung ist abgelehnt.", "The booking is rejected.";
    done_resumed: "Der Rollout läuft weiter.", "The rollout is running again.";
    done_retried: "Der Standort wird erneut versucht.", "The site is retried.";
    done_skipped: "Der Standort wird übersprungen.", "The site is skipped.";
    done_started: "Der Rollout ist gestartet.", "The rollout has started.";
    events_verified: "Einträge geprüft", "events verified";
    expired: "abgelaufen am", "expired on";
    expires_soon: "läuft ab am", "expires on";
    export: "Daten exportieren (JSON)", "Export data (JSON)";
    failure_budget: "Erlaubte Fehlschläge je Welle", "Failures allowed per wave";
    filter: "Filtern", "Filter";
    forbids: "Einschränkung", "Restriction";
    form_expired: "Das Formular ist abgelaufen. Bitte laden Sie die Seite neu und versuchen Sie es erneut.", "The form has expired. Please reload the page and try again.";
    form_has_errors: "Bitte korrigieren Sie die markierten Angaben.", "Please correct the marked entries.";
    from: "ab", "from";
    gate_results: "Prüfergebnisse (aktuelle Welle und Fehlschläge)", "Gate results (current wave and failures)";
    gates_none: "Noch keine Ergebnisse.", "No results yet.";
    health: "Zustand", "Health";
    jurisdictions: "Rechtsordnungen", "Jurisdictions";
    last_report: "Letzte Meldung", "Last report";
    layer: "Ebene", "Layer";
    map: "Karte der Rechenzentren", "Map of the data centers";
    map_caption: "Schematische Karte; die Tabelle darunter nennt jeden Standort mit Zustand.", "Schematic map; the table below lists every site with its health.";
    map_desc: "Jeder Punkt ist ein Rechenzentrum: grün gesund, rot gestört, braun ohne aktuelle Meldung.", "Each dot is a data center: green healthy, red degraded, brown without a recent report.";
    map_title: "Rechenzentren des Verbunds in Deutschland", "The federation's data centers in Germany";
    max_sites: "Standorte je Welle höchstens", "Sites per wave at most";
    no_bookings: "Noch keine Buchungen.", "No bookings yet.";
    no_bookings_next: "Im Katalog finden Sie Leistungen zum Buchen.", "Find services to book in the catalog.";
    no_organisation: "Ihr Konto gehört zu keiner Organisation.", "Your account belongs to no organisation.";
    no_versions: "Noch keine Version veröffentlicht.", "No version published yet.";
    object: "Objekt", "Object";
    object_hint: "Anfang des Objekts, z. B. „booking/“", "Start of the object, e.g. \"booking/\"";
    observed: "Gemeldet", "Reported";
    observed_version: "läuft in Version", "runs version";
    of: "von", "of";
    offering: "Leistung", "Service";
    offerings: "Leistungen", "Services";
    offerings_shown: "Leistungen angezeigt", "services shown";
    older: "Ältere Einträge", "Older events";
    operator: "Betreiber", "Operator";
    optional: "optional", "optional";
    row_add: "Weitere Zeile", "Add a row";
    plan_heading: "Plan des Rollouts von Version", "Plan of the rollout of version";
    plan_intro: "Buchungen in der Produktion, die der Rollout aktualisiert:", "Production bookings the rollout updates:";
    plan_pinned: "auf eine Version festgelegt und ausgenommen", "pinned to a version and left alone";
    plan_excluded: "aus anderen Gründen ausgenommen", "left out for other reasons";
    plan_nothing: "Keine Buchung braucht diese Version; der Rollout hätte nichts zu tun.", "No booking needs this version; the rollout would have nothing to do.";
    plan_sites: "Rechenzentren", "Data centers";
    plan_untested: "Rechenzentren ohne Testumgebung:", "Data centers without a test environment:";
    plan_none: "Für diese Angaben gibt es keinen Plan:", "There is no plan for these entries:";
    plan_refresh: "Plan aktualisieren", "Update the plan";
    publish_title: "Version veröffentlichen", "Publish a version";
    publish_intro: "Eine neue Version als Helm-Chart. Nach dem Veröffentlichen sehen Sie den Plan des Rollouts und starten ihn, wenn er passt.", "A new version as a Helm chart. After publishing you see the plan of its rollout and start it when it fits.";
    publish_version_hint: "Semantic Versioning, höher als die zuletzt veröffentlichte, z. B. 2.1.0", "Semantic versioning, higher than the latest published, e.g. 2.1.0";
    publish_repository: "Helm-Repository", "Helm repository";
    publish_repository_hint: "https://… oder oci://…", "https://… or oci://…";
    publish_chart: "Chart", "Chart";
    publish_chart_version: "Version des Charts", "Chart version";
    publish_changelog: "Änderungen", "Changes";
    publish_submit: "Veröffentlichen und Plan ansehen", "Publish and see the plan";
    publish_error_version: "Bitte eine neue Versionsnummer nach Semantic Versioning angeben, höher als die zuletzt veröffentlichte.", "Please enter a new semantic version, higher than the latest published.";
    publish_error_repository: "Bitte die Adresse eines Helm-Repositorys angeben (https://… oder oci://…).", "Please enter the address of a Helm repository (https://… or oci://…).";
    publish_error_chart: "Bitte den Namen des Charts angeben.", "Please enter the chart's name.";
    publish_error_chart_version: "Bitte die Version des Charts angeben.", "Please enter the chart's version.";
    done_published: "Die Version ist veröffentlicht. Prüfen Sie den Plan und starten Sie den Rollout.", "The version is published. Check the plan and start the rollout.";
    fact_provenance: "Herkunft der Fakten", "Where the facts come from";
    fact_stated_by: "angegeben von", "stated by";
    fact_stated_unknown: "angegeben, bevor verbund die Herkunft aufzeichnete", "stated before verbund recorded provenance";
    fact_approved_by: "freigegeben von", "approved by";
    fact_proposed_by: "vorgeschlagen von", "proposed by";
    fact_proposed: "Vorgeschlagen, noch nicht in Kraft", "Proposed, not in effect yet";
    nav_work: "Aufgaben", "Tasks";
    work_title: "Aufgaben", "Tasks";
    work_intro: "Was auf Sie wartet, nach Ihren Rollen.", "What is waiting for you, by your roles.";
    work_approvals: "Buchungen, die auf Freigabe warten", "Bookings awaiting approval";
    work_requested: "Angefragt", "Requested";
    work_nothing: "Nichts zu tun.", "Nothing to do.";
    work_proposals: "Vorschläge für Platzierungsfakten", "Proposed placement facts";
    work_my_proposals: "Ihre offenen Vorschläge für Platzierungsfakten", "Your pending proposals of placement facts";
    work_proposals_intro: "Betreiber schlagen Fakten vor, nach denen verbund Daten platziert; sie gelten erst, wenn ein Föderations-Admin sie freigibt, der sie nicht selbst vorgeschlagen hat.", "Operators propose the facts verbund places data by; they apply only once a federation admin who did not propose them approves them.";
    work_proposed_by: "Vorgeschlagen von", "Proposed by";
    work_own: "Ihr eigener Vorschlag: Freigeben muss ihn ein anderer Föderations-Admin (Vier-Augen-Prinzip).", "Your own proposal: another federation admin must approve it (four eyes).";
    work_waits_for_federation: "Wartet auf die Freigabe durch die Föderation; bis dahin gilt er nicht.", "Waiting for the federation's approval; until then it does not apply.";
    work_sites: "Probleme Ihrer Rechenzentren", "Problems of your data centers";
    work_rollouts: "Gestoppte und abgebrochene Rollouts", "Halted and aborted rollouts";
    fact_pending: "noch nicht in Kraft", "not in effect yet";
    done_fact_approved: "Der Vorschlag ist freigegeben; seine Fakten gelten.", "The proposal is approved; its facts apply.";
    done_fact_rejected: "Der Vorschlag ist abgelehnt.", "The proposal is rejected.";
    config_empty: "Keine Angaben; es gelten die Voreinstellungen der Leistung.", "Nothing set; the service's defaults apply.";
    brings_title: "Was eine Buchung mit sich bringt", "What a booking brings with it";
    brings_intro: "Diese Leistung braucht weitere Leistungen; sie laufen im selben Rechenzentrum.", "This service needs other services; they run in the same data center.";
    brings_for: "Bei einer Buchung jetzt für", "Booked now for";
    brings_bound: "Ihre bestehende Buchung wird mitgenutzt", "your existing booking is used";
    brings_new: "wird neu mitgebucht", "is booked with it";
    brings_site: "Gemeinsames Rechenzentrum:", "Shared data center:";
    brings_refused: "Zurzeit nimmt kein Rechenzentrum die Leistung zusammen mit allem auf, was sie braucht:", "No data center takes the service together with everything it needs at the moment:";
    dependencies_heading: "Mitgenutzte Leistungen", "Services used with it";
    efa: "Einer für Alle", "One for all (EfA)";
    efa_only: "Nur Einer-für-Alle-Leistungen", "Only one-for-all services";
    efa_operated_by: "betrieben von", "operated by";
    efa_for: "für", "for";
    efa_all_laender: "alle Länder", "every Land";
    efa_mine_heading: "Einer-für-Alle-Leistungen für Ihr Land", "One-for-all services for your Land";
    efa_mine_intro: "Diese Leistungen betreibt ein Land für andere; Ihr Land ist angeschlossen.", "A Land operates these services for others; your Land is connected.";
    efa_running: "in Betrieb", "in operation";
    efa_not_running: "noch nicht in Betrieb", "not in operation yet";
    booking_links: "Verbundene Buchungen", "Linked bookings";
    booking_uses: "Nutzt", "Uses";
    booking_used_by: "Wird genutzt von", "Used by";
    booking_used_by_hint: "Solange diese Buchungen laufen, kann diese nicht gekündigt werden.", "While these bookings run, this one cannot be cancelled.";
    dependencies_hint: "Ihre Organisation betreibt schon, was diese Leistung braucht. Wählen Sie, welche Buchung mitgenutzt wird; die neue Buchung läuft dann im selben Rechenzentrum.", "Your organisation already runs what this service needs. Choose which booking is used; the new booking then runs in the same data center.";
    dependency_auto: "Automatisch: eine bestehende Buchung im gewählten Rechenzentrum, sonst eine neue", "Automatic: an existing booking in the chosen data center, else a new one";
    dependency_running: "Bestehende Buchung", "Existing booking";
    dependency_book_first: "braucht eine eigene Konfiguration und läuft bei Ihrer Organisation noch nicht. Buchen Sie es zuerst:", "needs a configuration of its own and does not run for your organisation yet. Book it first:";
    organisation: "Organisation", "Organisation";
    organisation_key: "Organisation (Schlüssel oder ID)", "Organisation (key or id)";
    organisation_key_hint: "Amtlicher Regionalschlüssel (ARS) oder Gemeindeschlüssel (AGS), z. B. 091620000000.", "Official regional key (ARS) or municipality key (AGS), e.g. 091620000000.";
    other_organisation: "Andere Organisation", "Other organisation";
    own_restrictions: "Eigene Einschränkungen der Platzierung", "Own placement restrictions";
    own_restrictions_none: "Ihre Organisation hat keine eigenen Einschränkungen; es gelten die Richtlinien von Föderation und Land.", "Your organisation has no restrictions of its own; the federation's and the Land's policies apply.";
    ozg_field: "OZG-Themenfeld", "OZG subject area";
    pause: "Anhalten", "Pause";
    per_month: "pro Monat", "per month";
    permits: "Erlaubnis", "Permission";
    placement_heading: "Warum hier? Die Platzierung", "Why here? The placement";
    placement_none: "Noch keine Platzierungsentscheidung.", "No placement decision yet.";
    plan: "Tarif", "Plan";
    plans_prices: "Tarife und Preise", "Plans and prices";
    policies_for: "Richtlinien, die für folgende Organisation gelten:", "Policies in force for";
    policies_in_force: "Geltende Richtlinien ansehen", "See the policies in force";
    policies_intro: "Die Föderation erlaubt und verbietet; Länder und Organisationen können nur zusätzlich verbieten.", "The federation permits and forbids; Länder and organisations can only forbid in addition.";
    preflight: "Vorabprüfung", "Preflight";
    preflight_fail: "nicht bestanden – keine neuen Buchungen", "failed – no new bookings";
    preflight_none: "keine Vorabprüfung gemeldet", "no preflight reported";
    preflight_pass: "bestanden", "passed";
    preflight_reported: "Geprüft", "Checked";
    preflight_warn: "bestanden mit Hinweisen", "passed with warnings";
    price_month: "Preis pro Monat", "Price per month";
    progress: "Fortschritt", "Progress";
    reason: "Grund", "Reason";
    reference: "Referenz", "reference";
    reject: "Ablehnen", "Reject";
    reject_reason: "Grund der Ablehnung", "Reason for rejecting";
    replicas_ready: "Instanzen bereit", "replicas ready";
    reported: "gemeldet", "reported";
    requires_approval: "Freigabe erforderlich", "Approval required";
    resources: "Ressourcen", "Resources";
    resume: "Fortsetzen", "Resume";
    retry: "Erneut versuchen", "Retry";
    rollout_new_intro: "Die Version geht zuerst in die Testumgebung jedes Rechenzentrums, dann in eine Pilotwelle, dann in Wellen in die Produktion. Fehler halten den Rollout an und werden zurückgerollt.", "The version goes first to every data center's test environment, then to a canary wave, then in waves to production. Failures halt the rollout and are rolled back.";
    rollout_start: "Rollout starten", "Start a rollout";
    rollouts_intro: "Neue Versionen gehen stufenweise in Betrieb: Testumgebungen zuerst, dann Produktion, mit automatischem Anhalten und Zurückrollen.", "New versions go live in stages: test environments first, then production, with automatic halt and rollback.";
    rollouts_none: "Noch keine Rollouts.", "No rollouts yet.";
    rollouts_none_next: "Ein Rollout beginnt, wenn ein Anbieter eine neue Version veröffentlicht oder auf der Seite einer Leistung einen Rollout startet.", "A rollout begins when a vendor publishes a new version or starts a rollout on a service's page.";
    rollouts_recent: "Letzte Rollouts", "Recent rollouts";
    running_version: "Läuft", "Running";
    save: "Speichern", "Save";
    seat: "Sitz", "seat";
    services_here: "Leistungen hier", "Services here";
    shared_heading: "Geteilte Instanzen (Einer für Alle)", "Shared instances (one for all)";
    shared_intro: "Diese Leistung betreibt ein Land oder sein IT-Dienstleister einmal für viele: Ihre Organisation wird Mandant einer laufenden Instanz, statt eine eigene zu buchen. Ihre Daten liegen dann im Rechenzentrum der Instanz.", "A Land or its IT service provider runs this service once for many: your organisation becomes a tenant of a running instance instead of booking its own. Your data is then in the instance's data center.";
    shared_none: "Noch betreibt niemand eine Instanz dieser Leistung, der Mandanten beitreten können.", "Nobody runs an instance of this service that tenants can join yet.";
    shared_operator: "Betrieben von", "Operated by";
    shared_tenants: "Mandanten", "Tenants";
    shared_join: "Als Mandant beitreten", "Join as a tenant";
    shared_tenancy: "als Mandant einer geteilten Instanz", "as a tenant of a shared instance";
    shared_tenancy_of: "Mandant der geteilten Instanz", "Tenant of the shared instance";
    shared_instance_tenants: "Mandanten dieser geteilten Instanz", "Tenants of this shared instance";
    templates_heading: "Vorlagen zur Nachnutzung", "Templates to adopt";
    templates_intro: "Andere Organisationen haben ihre Einstellungen dieser Leistung als Vorlage veröffentlicht. Übernehmen Sie eine: das Buchungsformular ist dann vorausgefüllt, und Sie ändern nur, was bei Ihnen anders ist.", "Other organisations have published their settings of this service as templates. Adopt one: the booking form is then pre-filled, and you change only what differs for you.";
    template_by: "von", "by";
    catalog_template_one: "Vorlage", "template";
    catalog_templates: "Vorlagen", "templates";
    template_version: "Version", "version";
    template_adopted_one: "übernommen von 1 Organisation", "adopted by 1 organisation";
    template_adopted_by: "übernommen von", "adopted by";
    template_organisations: "Organisationen", "organisations";
    template_adopt: "Vorlage übernehmen", "Adopt template";
    template_prefilled: "Vorausgefüllt aus einer Vorlage", "Pre-filled from a template";
    template_prefilled_hint: "Was Sie ändern, wird an Ihrer Buchung als Abweichung von der Vorlage gezeigt; Änderungen der Vorlage können Sie später übernehmen.", "What you change is shown on your booking as a difference from the template; you can take over later changes of the template.";
    template_lineage: "Übernommen aus der Vorlage", "Adopted from the template";
    template_differences: "Ihre Abweichungen von der Vorlage", "Your differences from the template";
    template_no_differences: "keine", "none";
    template_changed: "Die Vorlage wurde geändert", "The template has changed";
    template_changed_fields: "Geänderte Angaben", "Changed settings";
    template_take_over: "Änderungen übernehmen", "Take over the changes";
    template_publish: "Als Vorlage veröffentlichen", "Publish as a template";
    template_publish_intro: "Ihre Einstellungen dieser Buchung (ohne Geheimnisse wie Passwörter) und ihr Tarif werden zur Vorlage, die andere Organisationen übernehmen können.", "This booking's settings (without secrets such as passwords) and its plan become a template that other organisations can adopt.";
    template_name: "Kurzname", "Short name";
    template_name_hint: "Kleinbuchstaben, Ziffern und Bindestriche, z. B. hundesteuer-muenchen.", "Lower-case letters, digits and hyphens, e.g. hundesteuer-muenchen.";
    template_display_name: "Titel", "Title";
    template_description: "Beschreibung", "Description";
    template_visibility: "Wer darf sie sehen und übernehmen?", "Who may see and adopt it?";
    template_visibility_land: "Organisationen unseres Landes", "Organisations of our Land";
    template_visibility_everyone: "alle Organisationen", "every organisation";
    template_error_name: "Bitte einen anderen Kurznamen wählen: diesen hat Ihre Organisation schon vergeben, oder er hat nicht die Form (Kleinbuchstaben, Ziffern, Bindestriche).", "Please choose another short name: your organisation uses this one already, or it does not have the form (lower-case letters, digits, hyphens).";
    template_error_text: "Bitte kürzer fassen.", "Please make this shorter.";
    template_error_required: "Bitte ausfüllen.", "Please fill this in.";
    done_template_published: "Die Vorlage ist veröffentlicht.", "The template is published.";
    done_taken_over: "Die Änderungen der Vorlage sind übernommen.", "The template's changes are taken over.";
    join_title: "Mandant werden", "Become a tenant";
    join_intro: "Ihre Organisation wird Mandant dieser laufenden Instanz. Sie bucht keine eigene Kapazität; Updates der Instanz erreichen alle Mandanten zugleich.", "Your organisation becomes a tenant of this running instance. It books no capacity of its own; updates of the instance reach all tenants at once.";
    join_where: "Die Richtlinien Ihrer Organisation und Ihres Landes werden für das Rechenzentrum der Instanz geprüft. Verbieten sie es, wird die Buchung mit dem Grund abgelehnt.", "Your organisation's and your Land's policies are checked for the instance's data center. If they forbid it, the booking is rejected with the reason.";
    join_configuration: "Ihre Einstellungen als Mandant", "Your settings as a tenant";
    join_submit: "Mandant werden", "Become a tenant";
    join_no_instance: "Diese Instanz nimmt keine Mandanten (mehr) auf.", "This instance does not take tenants (any more).";
    join_error_organisation: "Diese Organisation kann hier nicht Mandant werden: Sie betreibt die Instanz selbst, oder ihr Land gehört nicht zu den Ländern, für die diese Einer-für-Alle-Leistung betrieben wird. Bitte eine andere Organisation wählen.", "This organisation cannot become a tenant here: it runs the instance itself, or its Land is not among those this one-for-all service is run for. Please choose another organisation.";
    join_error_conflict: "Die Organisation ist bereits Mandant dieser Instanz, oder die Instanz nimmt keine Mandanten mehr auf.", "The organisation is a tenant of this instance already, or the instance no longer takes tenants.";
    join_error_too_large: "Die Einstellungen sind zu umfangreich für die Mandantenliste der Instanz (höchstens 16 KiB). Bitte kürzen.", "The settings are too large for the instance's tenant list (at most 16 KiB). Please shorten them.";
    show: "Anzeigen", "Show";
    simulated: "simuliert", "simulated";
    simulated_hint: "Die Meldungen dieses Rechenzentrums kommen aus der Simulation (verbund simulate), nicht aus einem echten Cluster.", "This data center's reports come from the simulation (verbund simulate), not from a real cluster.";
    since: "seit", "since";
    site: "Rechenzentrum", "Data center";
    sites: "Rechenzentren", "Data centers";
    skip: "Überspringen", "Skip";
    stage: "Stufe", "Stage";
    stale_sites: "Ohne aktuelle Meldung", "Not reporting";
    started: "Gestartet", "Started";
    state: "Status", "State";
    status: "Stand", "Status";
    test_stage: "Testumgebung", "Test stage";
    time: "Zeit", "Time";
    undeliverable: "Nicht auslieferbar", "Not deliverable";
    undeliverable_detail: "Diese Buchung lässt sich so nicht ausliefern. Das Rechenzentrum behält die zuletzt ausgelieferte Fassung; andere Buchungen sind nicht betroffen. Korrigieren Sie die Konfiguration, dann wird sie wieder ausgeliefert.", "This booking cannot be delivered as it is. The data center keeps the last version delivered; other bookings are not affected. Correct the configuration and it is delivered again.";
    valid_until: "gültig bis", "valid until";
    vendor: "Anbieter", "Vendor";
    version: "Version", "Version";
    versions_changelog: "Versionen und Änderungen", "Versions and changes";
    versions_in_use: "Laufende Versionen", "Versions in use";
    wave: "Welle", "Wave";
    wave_size: "Buchungen je Standort und Welle höchstens", "Bookings per site and wave at most";
    waves: "Wellen", "Waves";
    where_intro: "Rechenzentren, die Daten verarbeiten von", "Data centers that process data of";
    where_may_run: "Wo darf die Leistung laufen?", "Where may it run?";
    where_may_run_intro: "Entscheidung der Richtlinien für", "What the policies decide for";
    where_may_run_none: "Melden Sie sich mit einer Organisation an, um zu sehen, wo die Leistung für sie laufen darf.", "Sign in with an organisation to see where the service may run for it.";
    where_none: "Derzeit verarbeitet kein Rechenzentrum Daten Ihrer Organisation.", "No data center processes your organisation's data at the moment.";
    whole_number: "Bitte eine ganze Zahl ab 0 eingeben", "Please enter a whole number from 0";
    environments: "Umgebungen", "Environments";
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

    #[test]
    fn the_ending_hint_names_the_day_the_sweep_reminds() {
        let days = verbund_domain::ending::REMIND_DAYS;
        assert!(DE.ending_hint.contains(&format!(" {days} Tage ")));
        assert!(EN.ending_hint.contains(&format!(" {days} days ")));
    }
}
