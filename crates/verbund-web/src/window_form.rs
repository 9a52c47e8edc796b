//! The booking form's capacity windows: a few rows of first day, last day and plan.
//!
//! A row left empty is no window. What is wrong with the rows filled in is decided by
//! the domain (`verbund_domain::capacity::window_problem`, the API's decision too); this
//! module only reads the rows and says each fault in the reader's words at its control.

use chrono::{DateTime, NaiveDate, Utc};
use verbund_domain::capacity::{window_problem, WindowFault, WindowSpec};
use verbund_domain::catalog::OfferingSpec;

use crate::i18n::Lang;

/// How many window rows the form offers (the API takes up to twelve).
pub const ROWS: usize = 3;

/// One row of the form as entered, with what is wrong with it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WindowInput {
    pub index: usize,
    pub from: String,
    pub to: String,
    pub plan: String,
    /// The fault in the reader's words, and its control: `from`, `to` or `plan`.
    pub error: Option<(&'static str, String)>,
}

impl WindowInput {
    /// Whether the fault is at `control`.
    pub fn error_at(&self, control: &str) -> bool {
        self.error.as_ref().is_some_and(|(at, _)| *at == control)
    }

    pub fn message(&self) -> &str {
        self.error.as_ref().map_or("", |(_, m)| m.as_str())
    }

    fn is_empty(&self) -> bool {
        self.from.is_empty() && self.to.is_empty() && self.plan.is_empty()
    }
}

/// The rows as the form sent them (`window-<n>-from`, `-to`, `-plan`).
pub fn read(answers: &[(String, String)]) -> Vec<WindowInput> {
    let get = |k: String| crate::form::answer(answers, &k);
    (0..ROWS)
        .map(|index| WindowInput {
            index,
            from: get(format!("window-{index}-from")),
            to: get(format!("window-{index}-to")),
            plan: get(format!("window-{index}-plan")),
            error: None,
        })
        .collect()
}

/// Empty rows, for a new form.
pub fn empty() -> Vec<WindowInput> {
    (0..ROWS)
        .map(|index| WindowInput {
            index,
            ..Default::default()
        })
        .collect()
}

/// The windows the rows enter, or the rows with each fault at its control.
pub fn windows(
    rows: &mut [WindowInput],
    offering: &OfferingSpec,
    plan: &str,
    now: DateTime<Utc>,
    lang: Lang,
) -> Result<Vec<WindowSpec>, ()> {
    let t = lang.texts();
    let mut specs = Vec::new();
    // Which row each window came from.
    let mut from_row = Vec::new();
    for row in rows.iter_mut().filter(|r| !r.is_empty()) {
        let day = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok();
        let missing = if row.from.is_empty() {
            Some("from")
        } else if row.to.is_empty() {
            Some("to")
        } else if row.plan.is_empty() {
            Some("plan")
        } else {
            None
        };
        if let Some(at) = missing {
            row.error = Some((at, t.error_window_incomplete.into()));
            continue;
        }
        match (day(&row.from), day(&row.to)) {
            (Some(from), Some(to)) => {
                specs.push(WindowSpec {
                    from,
                    to,
                    plan: row.plan.clone(),
                });
                from_row.push(row.index);
            }
            (None, _) => row.error = Some(("from", t.error_window_date.into())),
            (_, None) => row.error = Some(("to", t.error_window_date.into())),
        }
    }
    if rows.iter().any(|r| r.error.is_some()) {
        return Err(());
    }
    let Some(problem) = window_problem(&specs, offering, plan, &[], now) else {
        return Ok(specs);
    };
    let (at, text) = match problem.fault {
        WindowFault::TooMany { .. } => ("from", t.error_window_too_many),
        WindowFault::EndsBeforeStart => ("to", t.error_window_ends_before),
        WindowFault::Over => ("to", t.error_window_over),
        WindowFault::TooFarAhead => ("from", t.error_window_far),
        WindowFault::TooLong => ("to", t.error_window_too_long),
        WindowFault::UnknownPlan { .. } | WindowFault::OwnPlan => ("plan", t.error_window_plan),
        WindowFault::Overlaps { .. } | WindowFault::OverlapsRunning { .. } => {
            ("from", t.error_window_overlaps)
        }
    };
    let row = problem
        .index
        .and_then(|i| from_row.get(i).copied())
        .unwrap_or_default();
    if let Some(r) = rows.get_mut(row) {
        r.error = Some((at, text.into()));
    }
    Err(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use chrono::TimeZone;
    use serde_json::json;

    use super::*;

    fn offering() -> OfferingSpec {
        serde_json::from_value(json!({
            "name": "o", "display_name": "O", "vendor": "v", "category": "saas",
            "data_classes": [],
            "plans": [
                {"name": "s", "display_name": "S", "replicas": 1, "monthly_price_cents": 1,
                 "resources": {"cpu_millis": 500, "memory_mib": 512, "storage_gib": 1}},
                {"name": "l", "display_name": "L", "replicas": 2, "monthly_price_cents": 2,
                 "resources": {"cpu_millis": 2000, "memory_mib": 2048, "storage_gib": 1}}
            ],
            "config_schema": {"type": "object"}
        }))
        .unwrap()
    }

    fn answers(rows: &[(usize, &str, &str, &str)]) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (i, from, to, plan) in rows {
            out.push((format!("window-{i}-from"), (*from).to_string()));
            out.push((format!("window-{i}-to"), (*to).to_string()));
            out.push((format!("window-{i}-plan"), (*plan).to_string()));
        }
        out
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2027, 1, 10, 12, 0, 0).unwrap()
    }

    #[test]
    fn empty_rows_are_no_windows_and_filled_ones_are() {
        let mut rows = read(&answers(&[(1, "2027-03-01", "2027-05-31", "l")]));
        let w = windows(&mut rows, &offering(), "s", now(), Lang::De).unwrap();
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].plan, "l");
    }

    #[test]
    fn each_fault_is_said_in_german_at_its_control_and_row() {
        let o = offering();
        let check = |rows: &[(usize, &str, &str, &str)], row: usize, at: &str| {
            let mut read = read(&answers(rows));
            assert!(windows(&mut read, &o, "s", now(), Lang::De).is_err());
            let r = &read[row];
            assert!(r.error_at(at), "{rows:?}: {:?}", r.error);
            assert!(!r.message().is_empty());
            assert!(read.iter().filter(|r| r.error.is_some()).count() == 1);
        };
        check(&[(0, "2027-03-01", "", "l")], 0, "to");
        check(&[(2, "1.3.2027", "2027-05-31", "l")], 2, "from");
        check(&[(0, "2027-05-31", "2027-03-01", "l")], 0, "to");
        check(&[(0, "2026-03-01", "2026-05-31", "l")], 0, "to");
        check(&[(1, "2027-03-01", "2027-05-31", "s")], 1, "plan");
        // The API counts the windows entered; the form its rows: the second window is in
        // the third row.
        check(
            &[
                (0, "2027-03-01", "2027-05-31", "l"),
                (2, "2027-05-01", "2027-06-30", "l"),
            ],
            2,
            "from",
        );
    }
}
