//! Charts as inline SVG, laid out on the server: they work without JavaScript, print, and
//! cost no script or library. Every chart's page gives the same numbers as a table
//! beside it, which is what screen readers (and people who copy figures) read; the SVG
//! itself is one labelled image with a `<title>` per mark for pointer users.
//!
//! The layout is plain arithmetic over a fixed view box; the stylesheet scales the
//! picture to its column and colours each mark by its class.

use chrono::{DateTime, Utc};

/// The view box's width. It is about a phone's column, so that the text stays legible
/// there; the stylesheet lets the picture grow to a moderate width on larger screens.
pub const WIDTH: f64 = 360.0;
/// Room after each bar for its total.
const TOTAL_WIDTH: f64 = 44.0;
/// A row: its label on a line of its own, then the bar.
const LABEL_HEIGHT: f64 = 14.0;
const BAR_HEIGHT: f64 = 14.0;
const ROW_GAP: f64 = 10.0;
const ROW_HEIGHT: f64 = LABEL_HEIGHT + BAR_HEIGHT + ROW_GAP;
/// The narrowest band drawn, so that a short stretch stays visible.
const MIN_BAND: f64 = 3.0;
/// Labels longer than this are cut with "…" (the full text is in the mark's title and
/// in the table): at 13 px, 44 characters fill about the view box's width.
const LABEL_CHARS: usize = 44;

/// One part of a stacked bar.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub x: f64,
    pub width: f64,
    /// The stylesheet's class for its colour, e.g. `chart-active`.
    pub class: String,
    /// What a pointer shows: "Aktiv: 12".
    pub title: String,
}

/// One row: a label, its stacked segments and its total.
#[derive(Debug, Clone, PartialEq)]
pub struct BarRow {
    /// The label's baseline; the bar lies below it, from `bar_y`.
    pub y: f64,
    pub bar_y: f64,
    pub label: String,
    pub full_label: String,
    pub segments: Vec<Segment>,
    pub total: i64,
    pub total_x: f64,
}

/// Horizontal stacked bars, one row per label, all on one scale.
#[derive(Debug, Clone, PartialEq)]
pub struct StackedBars {
    pub width: f64,
    pub height: f64,
    pub bar_height: f64,
    pub rows: Vec<BarRow>,
}

/// One part of a row's input: its key (the class suffix), its label, its count.
pub type Part = (String, String, i64);

/// Lays out `rows` (label, parts) as stacked bars; the longest total fills the bar area.
/// Parts with no count draw nothing; a row without any keeps its place (it is a fact too).
pub fn stacked_bars(rows: &[(String, Vec<Part>)]) -> StackedBars {
    let max = rows
        .iter()
        .map(|(_, parts)| parts.iter().map(|p| p.2.max(0)).sum::<i64>())
        .max()
        .unwrap_or(0)
        .max(1);
    let area = WIDTH - TOTAL_WIDTH;
    let scale = area / max as f64;
    let laid = rows
        .iter()
        .enumerate()
        .map(|(i, (label, parts))| {
            let mut x = 0.0;
            let mut segments = Vec::new();
            let mut total = 0;
            for (key, title, n) in parts {
                let n = (*n).max(0);
                if n == 0 {
                    continue;
                }
                let width = n as f64 * scale;
                segments.push(Segment {
                    x,
                    width,
                    class: format!("chart-{key}"),
                    title: format!("{label} – {title}: {n}"),
                });
                x += width;
                total += n;
            }
            let top = i as f64 * ROW_HEIGHT;
            BarRow {
                y: top + LABEL_HEIGHT - 3.0,
                bar_y: top + LABEL_HEIGHT,
                label: shorten(label),
                full_label: label.clone(),
                segments,
                total,
                total_x: x + 4.0,
            }
        })
        .collect::<Vec<_>>();
    StackedBars {
        width: WIDTH,
        height: (laid.len().max(1) as f64) * ROW_HEIGHT,
        bar_height: BAR_HEIGHT,
        rows: laid,
    }
}

fn shorten(label: &str) -> String {
    if label.chars().count() <= LABEL_CHARS {
        return label.to_owned();
    }
    let cut: String = label.chars().take(LABEL_CHARS - 1).collect();
    format!("{}…", cut.trim_end())
}

/// One stretch of a timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Band {
    pub x: f64,
    pub width: f64,
    pub class: String,
    pub title: String,
}

/// A mark on the time axis.
#[derive(Debug, Clone, PartialEq)]
pub struct Tick {
    pub x: f64,
    pub label: String,
}

/// Stretches of time in a row, over a window, with a labelled axis.
#[derive(Debug, Clone, PartialEq)]
pub struct Timeline {
    pub width: f64,
    pub height: f64,
    pub band_y: f64,
    pub band_height: f64,
    pub axis_y: f64,
    pub bands: Vec<Band>,
    pub ticks: Vec<Tick>,
}

/// One stretch to draw: from, until, the class key, its title.
pub type Stretch = (DateTime<Utc>, DateTime<Utc>, String, String);

/// Lays out `stretches` over `[from, until)` (clipped to it) with `ticks` evenly spaced
/// marks labelled by `label`.
pub fn timeline(
    from: DateTime<Utc>,
    until: DateTime<Utc>,
    stretches: &[Stretch],
    ticks: usize,
    label: impl Fn(DateTime<Utc>) -> String,
) -> Timeline {
    let span = (until - from).num_milliseconds().max(1) as f64;
    let x_of = |t: DateTime<Utc>| {
        let ms = (t.clamp(from, until) - from).num_milliseconds() as f64;
        ms / span * WIDTH
    };
    let shown: Vec<&Stretch> = stretches
        .iter()
        .filter(|(a, b, ..)| b > a && *b > from && *a < until)
        .collect();
    let last = shown.len().saturating_sub(1);
    let bands = shown
        .into_iter()
        .enumerate()
        .map(|(i, (a, b, key, title))| {
            // The last stretch (the health now) shows however short, within the picture;
            // earlier ones keep their true width, so that short ones never paint over
            // their neighbours.
            let true_width = x_of(*b) - x_of(*a);
            let width = if i == last {
                true_width.max(MIN_BAND)
            } else {
                true_width
            };
            let x = x_of(*a).min(WIDTH - width);
            Band {
                x,
                width,
                class: format!("chart-{key}"),
                title: title.clone(),
            }
        })
        .collect();
    let ticks = (0..=ticks.max(1))
        .map(|i| {
            let at = from + (until - from) * i32::try_from(i).unwrap_or(0) / ticks.max(1) as i32;
            Tick {
                x: x_of(at),
                label: label(at),
            }
        })
        .collect();
    Timeline {
        width: WIDTH,
        height: 52.0,
        band_y: 2.0,
        band_height: 28.0,
        axis_y: 48.0,
        bands,
        ticks,
    }
}

/// How full a cell of a [`MonthGrid`] is, by its share in per cent: the stylesheet's
/// class suffix. Four steps, so that the colour says "room", "filling", "nearly full" and
/// "full" at a glance and the number is in the cell's title and the table.
pub fn load_class(percent: u32) -> &'static str {
    match percent {
        0..=69 => "load-low",
        70..=89 => "load-mid",
        90..=99 => "load-high",
        _ => "load-full",
    }
}

/// One month of a site's row.
#[derive(Debug, Clone, PartialEq)]
pub struct GridCell {
    pub x: f64,
    pub width: f64,
    pub class: String,
    /// "März 2027: 100 %".
    pub title: String,
}

/// A site's row: its label on a line of its own, then a cell per month.
#[derive(Debug, Clone, PartialEq)]
pub struct GridRow {
    pub y: f64,
    pub cell_y: f64,
    pub label: String,
    pub full_label: String,
    pub cells: Vec<GridCell>,
}

/// Rows of months, each cell coloured by how full it is ([`load_class`]), with the
/// months' names above the first row.
#[derive(Debug, Clone, PartialEq)]
pub struct MonthGrid {
    pub width: f64,
    pub height: f64,
    pub cell_height: f64,
    /// Each column's middle and short name ("Mär").
    pub columns: Vec<(f64, String)>,
    pub rows: Vec<GridRow>,
}

/// The room above the first row for the months' names.
const HEADER_HEIGHT: f64 = 16.0;

/// Lays out `rows` (label, per month its share in per cent and its title) under
/// `columns` (the months' short names); a month a row lacks is left blank.
pub fn month_grid(columns: &[String], rows: &[(String, Vec<(u32, String)>)]) -> MonthGrid {
    let n = columns.len().max(1) as f64;
    let step = WIDTH / n;
    let laid = rows
        .iter()
        .enumerate()
        .map(|(i, (label, cells))| {
            let top = HEADER_HEIGHT + i as f64 * ROW_HEIGHT;
            GridRow {
                y: top + LABEL_HEIGHT - 3.0,
                cell_y: top + LABEL_HEIGHT,
                label: shorten(label),
                full_label: label.clone(),
                cells: cells
                    .iter()
                    .take(columns.len())
                    .enumerate()
                    .map(|(m, (percent, title))| GridCell {
                        x: m as f64 * step,
                        width: (step - 2.0).max(1.0),
                        class: format!("chart-{}", load_class(*percent)),
                        title: title.clone(),
                    })
                    .collect(),
            }
        })
        .collect::<Vec<_>>();
    MonthGrid {
        width: WIDTH,
        height: HEADER_HEIGHT + (laid.len().max(1) as f64) * ROW_HEIGHT,
        cell_height: BAR_HEIGHT,
        columns: columns
            .iter()
            .enumerate()
            .map(|(m, c)| (m as f64 * step + step / 2.0, c.clone()))
            .collect(),
        rows: laid,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone};

    #[test]
    fn months_fill_the_width_and_colour_by_how_full_they_are() {
        let columns: Vec<String> = ["Jan", "Feb", "Mär"].map(String::from).to_vec();
        let grid = month_grid(
            &columns,
            &[(
                "Rechenzentrum Hamburg".into(),
                vec![
                    (25, "Jan: 25 %".into()),
                    (90, "Feb".into()),
                    (100, "Mär".into()),
                ],
            )],
        );
        let row = &grid.rows[0];
        assert_eq!(row.cells.len(), 3);
        assert_eq!(row.cells[0].class, "chart-load-low");
        assert_eq!(row.cells[1].class, "chart-load-high");
        assert_eq!(row.cells[2].class, "chart-load-full");
        assert!((row.cells[2].x + row.cells[2].width + 2.0 - WIDTH).abs() < 1e-9);
        assert_eq!(grid.columns[1].1, "Feb");
        assert!(row.cell_y > HEADER_HEIGHT, "the months' names stay above");
        assert_eq!(load_class(69), "load-low");
        assert_eq!(load_class(70), "load-mid");
        assert_eq!(load_class(140), "load-full");
    }

    fn parts(v: &[(&str, i64)]) -> Vec<Part> {
        v.iter()
            .map(|(k, n)| ((*k).into(), (*k).into(), *n))
            .collect()
    }

    #[test]
    fn bars_share_one_scale_and_stack_without_gaps() {
        let chart = stacked_bars(&[
            ("a".into(), parts(&[("active", 30), ("degraded", 10)])),
            ("b".into(), parts(&[("active", 20), ("placed", 0)])),
            ("c".into(), parts(&[])),
        ]);
        let area = WIDTH - TOTAL_WIDTH;
        let a = &chart.rows[0];
        assert_eq!(a.total, 40);
        assert_eq!(a.segments.len(), 2);
        assert!((a.segments[0].width + a.segments[1].width - area).abs() < 1e-9);
        assert_eq!(a.segments[1].x, a.segments[0].x + a.segments[0].width);
        let b = &chart.rows[1];
        assert_eq!(b.segments.len(), 1, "a zero draws nothing");
        assert!((b.segments[0].width - area / 2.0).abs() < 1e-9);
        assert_eq!(chart.rows[2].total, 0);
        assert_eq!(chart.height, 3.0 * ROW_HEIGHT);
        assert_eq!(a.segments[1].class, "chart-degraded");
    }

    #[test]
    fn long_labels_are_cut_and_kept_whole_in_the_title() {
        let long = "Rechenzentrum der Kommunalen IT-Dienstleister München-Nord 1";
        let chart = stacked_bars(&[(long.into(), parts(&[("active", 1)]))]);
        let row = &chart.rows[0];
        assert!(row.label.ends_with('…') && row.label.chars().count() <= LABEL_CHARS);
        assert_eq!(row.full_label, long);
        assert!(row.segments[0].title.starts_with(long));
    }

    #[test]
    fn a_timeline_covers_its_window_and_clips_what_lies_outside() {
        let t0 = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).single().unwrap();
        let day = Duration::days(1);
        let stretches: Vec<Stretch> = vec![
            (t0 - day * 5, t0 + day * 10, "healthy".into(), "h".into()),
            (t0 + day * 10, t0 + day * 20, "degraded".into(), "d".into()),
            (t0 + day * 20, t0 + day * 40, "unknown".into(), "u".into()),
            (
                t0 + day * 50,
                t0 + day * 60,
                "healthy".into(),
                "later".into(),
            ),
        ];
        let tl = timeline(t0, t0 + day * 30, &stretches, 3, |t| {
            t.format("%d.%m.").to_string()
        });
        assert_eq!(
            tl.bands.len(),
            3,
            "the stretch after the window draws nothing"
        );
        assert_eq!(tl.bands[0].x, 0.0);
        let end = tl.bands[2].x + tl.bands[2].width;
        assert!((end - WIDTH).abs() < 1e-9);
        assert!((tl.bands[1].x - WIDTH / 3.0).abs() < 1e-9);
        let labels: Vec<&str> = tl.ticks.iter().map(|t| t.label.as_str()).collect();
        assert_eq!(labels, ["01.11.", "11.11.", "21.11.", "01.12."]);
        assert_eq!(tl.ticks[3].x, WIDTH);
        // A stretch of a second at the end is still drawn, narrow but visible.
        let end = t0 + day * 30;
        let short: Vec<Stretch> = vec![(
            end - Duration::seconds(1),
            end,
            "healthy".into(),
            "now".into(),
        )];
        let tl = timeline(t0, end, &short, 1, |t| t.to_string());
        assert_eq!(tl.bands[0].width, MIN_BAND);
        assert_eq!(
            tl.bands[0].x + tl.bands[0].width,
            WIDTH,
            "inside the picture"
        );
    }
}
