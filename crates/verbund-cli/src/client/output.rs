//! Rendering answers for the terminal: aligned tables for people, JSON and YAML for
//! scripts.

use std::fmt::{self, Write as _};
use std::io::Write as _;

use serde::Serialize;

/// How to print what the server answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// An aligned table with the key columns.
    #[default]
    Table,
    /// The server's JSON, pretty-printed.
    Json,
    /// The same as YAML.
    Yaml,
}

/// Writes text to stdout. A closed pipe (`verbund org list | head`) ends the output
/// quietly instead of with a panic.
pub fn emit(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        other => Ok(other?),
    }
}

/// Writes one line to stdout.
pub fn emit_line(line: &str) -> anyhow::Result<()> {
    emit(&format!("{line}\n"))
}

/// Prints a value as JSON or YAML.
pub fn print_data<T: Serialize + ?Sized>(format: Format, value: &T) -> anyhow::Result<()> {
    match format {
        Format::Yaml => emit(&serde_yaml_ng::to_string(value)?),
        Format::Json | Format::Table => emit_line(&serde_json::to_string_pretty(value)?),
    }
}

/// A table of text cells, printed with columns aligned by two spaces.
pub struct Table {
    headers: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[&'static str]) -> Table {
        Table {
            headers: headers.to_vec(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        debug_assert_eq!(cells.len(), self.headers.len());
        self.rows.push(cells);
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = |s: &str| s.chars().count();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| width(h)).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(width(cell));
            }
        }
        let headers: Vec<String> = self.headers.iter().map(|h| h.to_string()).collect();
        for row in std::iter::once(&headers).chain(&self.rows) {
            let mut line = String::new();
            for (i, (cell, w)) in row.iter().zip(&widths).enumerate() {
                if i + 1 == row.len() {
                    line.push_str(cell);
                } else {
                    let _ = write!(line, "{cell}{}  ", " ".repeat(w - width(cell)));
                }
            }
            writeln!(f, "{}", line.trim_end())?;
        }
        Ok(())
    }
}

/// Prints a list: as a table built by `row`, or as a JSON/YAML array. When more pages
/// exist, says so on stderr, where it does not disturb a script reading stdout.
pub fn print_list<T: Serialize>(
    format: Format,
    items: &[T],
    next: Option<&str>,
    headers: &[&'static str],
    row: impl Fn(&T) -> Vec<String>,
) -> anyhow::Result<()> {
    match format {
        Format::Table => {
            if items.is_empty() {
                eprintln!("nothing found");
            } else {
                let mut t = Table::new(headers);
                for item in items {
                    t.row(row(item));
                }
                emit(&t.to_string())?;
            }
        }
        _ => print_data(format, items)?,
    }
    if next.is_some() {
        eprintln!(
            "showing the first {} only; pass `--all` to list every page",
            items.len()
        );
    }
    Ok(())
}

/// Prints one object: as a one-row table, or as a JSON/YAML object.
pub fn print_one<T: Serialize>(
    format: Format,
    item: &T,
    headers: &[&'static str],
    row: impl Fn(&T) -> Vec<String>,
) -> anyhow::Result<()> {
    match format {
        Format::Table => print_list(format, std::slice::from_ref(item), None, headers, row),
        _ => print_data(format, item),
    }
}

/// An optional cell: the value or `-`.
pub fn opt<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_string(), |v| v.to_string())
}

/// A list of cells in one: comma-separated, or `-`.
pub fn joined<I: IntoIterator<Item = String>>(items: I) -> String {
    let v: Vec<String> = items.into_iter().collect();
    if v.is_empty() {
        "-".to_string()
    } else {
        v.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_and_the_last_is_not_padded() {
        let mut t = Table::new(&["NAME", "CITY"]);
        t.row(vec!["nordwerk-hh-1".into(), "Hamburg".into()]);
        t.row(vec!["a".into(), "München".into()]);
        assert_eq!(
            t.to_string(),
            "NAME           CITY\nnordwerk-hh-1  Hamburg\na              München\n"
        );
    }
}
