//! A temporary booking's controls: the booking form's "Befristung" (last day and export
//! target) and the export target of a booking ended early.
//!
//! Whether an address is an export target and whether a last day may be booked is
//! decided by the domain (`ExportTarget::from_str`, `EndingSpec::validate`, the API's
//! decision too); this module only reads the controls and says each fault in the
//! reader's words at its control.

use chrono::{DateTime, NaiveDate, Utc};
use verbund_domain::ending::{EndingSpec, ExportTarget};

use crate::i18n::Lang;

/// The controls as entered (`ends_on`, `export_to`), with what is wrong with them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndingInput {
    pub ends_on: String,
    pub export_to: String,
    /// The fault in the reader's words, and its control: `ends_on` or `export_to`.
    pub error: Option<(&'static str, String)>,
}

impl EndingInput {
    /// The controls as the form sent them.
    pub fn read(answers: &[(String, String)]) -> EndingInput {
        EndingInput {
            ends_on: crate::form::answer(answers, "ends_on"),
            export_to: crate::form::answer(answers, "export_to"),
            error: None,
        }
    }

    /// Whether the fault is at `control`.
    pub fn error_at(&self, control: &str) -> bool {
        self.error.as_ref().is_some_and(|(at, _)| *at == control)
    }

    pub fn message(&self) -> &str {
        self.error.as_ref().map_or("", |(_, m)| m.as_str())
    }

    /// The ending entered (none when both controls are empty), or `Err` with the fault
    /// at its control: both or neither, a date, an export target, a last day the domain
    /// takes at `now`.
    pub fn ending(&mut self, now: DateTime<Utc>, lang: Lang) -> Result<Option<EndingSpec>, ()> {
        let t = lang.texts();
        let fault = match (self.ends_on.is_empty(), self.export_to.is_empty()) {
            (true, true) => return Ok(None),
            (true, false) => ("ends_on", t.error_ending_no_day),
            (false, true) => ("export_to", t.error_ending_no_target),
            (false, false) => match (
                NaiveDate::parse_from_str(&self.ends_on, "%Y-%m-%d"),
                export_target(&self.export_to, lang),
            ) {
                (Err(_), _) => ("ends_on", t.error_window_date),
                (_, Err(m)) => ("export_to", m),
                (Ok(ends_on), Ok(export_to)) => {
                    let spec = EndingSpec { ends_on, export_to };
                    match spec.validate("/ending", now) {
                        Ok(()) => return Ok(Some(spec)),
                        Err(i) => refused(&i.field, lang),
                    }
                }
            },
        };
        self.error = Some((fault.0, fault.1.into()));
        Err(())
    }

    /// Puts the API's refusal of the ending (a field below `/ending`) at its control.
    pub fn refused(&mut self, field: &str, lang: Lang) {
        let (at, text) = refused(field, lang);
        self.error = Some((at, text.into()));
    }
}

/// An export target as entered, or why it is none, in the reader's words.
pub fn export_target(entered: &str, lang: Lang) -> Result<ExportTarget, &'static str> {
    let t = lang.texts();
    if entered.trim().is_empty() {
        return Err(t.error_export_target_missing);
    }
    entered.trim().parse().map_err(|_| t.error_export_target)
}

/// The control and the words for a refusal of the ending at `field` (`/ending` itself:
/// the offering has no data export).
fn refused(field: &str, lang: Lang) -> (&'static str, &'static str) {
    let t = lang.texts();
    if field.contains("/export_to") {
        ("export_to", t.error_export_target)
    } else if field.ends_with("/ends_on") {
        ("ends_on", t.error_ends_on)
    } else {
        ("ends_on", t.ending_not_offered)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use chrono::TimeZone;

    use super::*;

    fn input(ends_on: &str, export_to: &str) -> EndingInput {
        EndingInput::read(&[
            ("ends_on".into(), ends_on.into()),
            ("export_to".into(), format!(" {export_to} ")),
        ])
    }

    /// 10 January 2027, noon.
    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2027, 1, 10, 12, 0, 0).unwrap()
    }

    /// The fault at its control, in German, for what was entered; what was entered stays.
    #[track_caller]
    fn check(ends_on: &str, export_to: &str, at: &str, text: &str) {
        let mut i = input(ends_on, export_to);
        assert_eq!(i.ending(now(), Lang::De), Err(()));
        assert!(i.error_at(at), "{ends_on} {export_to}: {:?}", i.error);
        assert_eq!(i.message(), text);
        assert_eq!(
            (i.ends_on.as_str(), i.export_to.as_str()),
            (ends_on, export_to)
        );
    }

    #[test]
    fn empty_controls_are_no_ending_and_filled_ones_are() {
        assert_eq!(input("", "").ending(now(), Lang::De), Ok(None));
        let spec = input("2027-06-30", "https://s3.stadt.de/exporte/impfzentrum")
            .ending(now(), Lang::De)
            .unwrap()
            .unwrap();
        assert_eq!(spec.ends_on, NaiveDate::from_ymd_opt(2027, 6, 30).unwrap());
        assert_eq!(spec.export_to.bucket, "exporte");
        assert_eq!(
            spec.export_to.url(),
            "https://s3.stadt.de/exporte/impfzentrum/"
        );
    }

    #[test]
    fn each_fault_is_said_in_german_at_its_control() {
        let target = "https://s3.stadt.de/exporte/";
        check(
            "",
            target,
            "ends_on",
            "Bitte auch den letzten Tag angeben – oder beide Angaben leer lassen.",
        );
        check(
            "2027-06-30",
            "",
            "export_to",
            "Bitte auch das Exportziel angeben – oder beide Angaben leer lassen.",
        );
        check(
            "30.6.2027",
            target,
            "ends_on",
            "Bitte ein Datum angeben, z. B. 01.03.2027.",
        );
        let not_a_target = DE_NOT_A_TARGET;
        for bad in [
            "http://s3.stadt.de/exporte/",
            "https://s3.stadt.de",
            "https://s3.stadt.de/Exporte/",
            "https://nutzer:geheim@s3.stadt.de/exporte/",
            "https://s3.stadt.de/exporte/../",
            "s3://exporte/",
        ] {
            check("2027-06-30", bad, "export_to", not_a_target);
        }
        let bounds = "Der letzte Tag muss heute oder später sein und darf höchstens fünf Jahre \
                      vorausliegen.";
        check("2027-01-09", target, "ends_on", bounds);
        check("2033-01-10", target, "ends_on", bounds);
    }

    const DE_NOT_A_TARGET: &str = "Das ist kein Exportziel. Bitte die https-Adresse des \
        Speichers mit dem Bucket und, wenn gewünscht, einem Pfad angeben, z. B. \
        https://s3.stadt.de/exporte/buergerportal/ (Bucket: 3–63 Kleinbuchstaben, Ziffern, \
        Punkt oder Bindestrich).";

    #[test]
    fn today_is_a_last_day_and_english_readers_get_english() {
        assert!(input("2027-01-10", "https://s3.stadt.de/exporte/")
            .ending(now(), Lang::De)
            .is_ok());
        let mut i = input("2027-06-30", "http://s3.stadt.de/exporte/");
        assert_eq!(i.ending(now(), Lang::En), Err(()));
        assert!(
            i.message().starts_with("This is not an export target."),
            "{i:?}"
        );
    }

    #[test]
    fn an_export_target_alone_is_checked_by_the_same_rule() {
        assert_eq!(
            export_target(" https://s3.stadt.de/exporte/a/b ", Lang::De)
                .unwrap()
                .prefix,
            "a/b/"
        );
        assert_eq!(
            export_target("", Lang::De),
            Err("Bitte das Exportziel angeben, z. B. https://s3.stadt.de/exporte/buergerportal/.")
        );
        assert_eq!(
            export_target("http://s3.stadt.de/exporte/", Lang::De),
            Err(DE_NOT_A_TARGET)
        );
    }

    #[test]
    fn the_apis_refusals_land_at_their_controls() {
        let mut i = input("2027-06-30", "https://s3.stadt.de/exporte/");
        i.refused("/ending/export_to/bucket", Lang::De);
        assert!(i.error_at("export_to"));
        i.refused("/ending/ends_on", Lang::De);
        assert!(i.error_at("ends_on"));
        i.refused("/ending", Lang::De);
        assert!(i.error_at("ends_on"));
        assert!(i.message().contains("keinen Datenexport"), "{i:?}");
    }
}
