//! Reads the OZG catalog (OZG-Leistungen as CSV), so that offerings can name the
//! administrative service they implement by its official OZG id.

use std::collections::HashMap;
use std::io::BufRead;

use verbund_domain::directory::OzgService;

use crate::error::{ImportError, Result};

/// The columns, in order: OZG id, name, Lage (situation), Themenfeld (field).
const HEADER: [&str; 4] = ["ozg_id", "name", "lage", "themenfeld"];

/// Parses the catalog. Refuses the whole file on the first problem, naming the line.
pub fn parse(mut reader: impl BufRead) -> Result<Vec<OzgService>> {
    // The catalog is small; holding it lets errors name the right line (see `Lines`).
    let mut bytes = Vec::new();
    reader
        .read_to_end(&mut bytes)
        .map_err(|e| ImportError::Read {
            line: 1,
            message: e.to_string(),
        })?;
    let lines = Lines::new(&bytes);
    let csv_error = |e: csv::Error| lines.error(e);
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(bytes.as_slice());
    let mut rows = csv.records();

    let header = match rows.next() {
        None => Vec::new(),
        Some(r) => {
            let r = r.map_err(csv_error)?;
            r.iter()
                .enumerate()
                // A spreadsheet may have saved a byte-order mark.
                .map(|(i, f)| {
                    if i == 0 {
                        f.trim_start_matches('\u{feff}')
                    } else {
                        f
                    }
                })
                .map(str::to_string)
                .collect()
        }
    };
    if header != HEADER {
        return Err(ImportError::Header {
            expected: HEADER.join(","),
            found: header.join(","),
        });
    }

    let mut services = Vec::new();
    let mut first_line: HashMap<String, u64> = HashMap::new();
    for row in rows {
        let row = row.map_err(csv_error)?;
        let line = lines.of(row.position());
        let fields: Vec<&str> = row.iter().collect();
        let [id, name, situation, field] = fields[..] else {
            return Err(ImportError::FieldCount {
                line,
                found: row.len(),
                expected: HEADER.len(),
            });
        };
        let id = id.trim();
        if id.is_empty() {
            return Err(ImportError::EmptyField {
                line,
                field: "ozg_id",
            });
        }
        if name.trim().is_empty() {
            return Err(ImportError::EmptyField {
                line,
                field: "name",
            });
        }
        if let Some(&first) = first_line.get(id) {
            return Err(ImportError::DuplicateId {
                line,
                id: id.to_string(),
                first_line: first,
            });
        }
        first_line.insert(id.to_string(), line);
        services.push(OzgService {
            id: id.to_string(),
            name: name.trim().to_string(),
            situation: situation.trim().to_string(),
            field: field.trim().to_string(),
        });
    }
    if services.is_empty() {
        return Err(ImportError::Empty);
    }
    Ok(services)
}

/// Line numbers of records. The csv crate counts a record that follows a CRLF as
/// starting on the previous line (at the pending LF), so lines are counted here from
/// the record's byte offset instead.
struct Lines<'a> {
    bytes: &'a [u8],
    /// Byte offsets of every LF.
    newlines: Vec<usize>,
}

impl<'a> Lines<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        let newlines = bytes
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b'\n')
            .map(|(i, _)| i)
            .collect();
        Lines { bytes, newlines }
    }

    /// The 1-based line on which the record starting at `pos` begins.
    fn of(&self, pos: Option<&csv::Position>) -> u64 {
        let Some(pos) = pos else { return 0 };
        let mut at = usize::try_from(pos.byte()).unwrap_or(usize::MAX);
        while matches!(self.bytes.get(at), Some(b'\r' | b'\n')) {
            at += 1;
        }
        1 + self.newlines.partition_point(|&n| n < at) as u64
    }

    fn error(&self, e: csv::Error) -> ImportError {
        let line = self.of(e.position());
        match e.kind() {
            csv::ErrorKind::Utf8 { pos, .. } => ImportError::InvalidUtf8 {
                line: self.of(pos.as_ref()),
            },
            csv::ErrorKind::Io(io) => ImportError::Read {
                line,
                message: io.to_string(),
            },
            _ => ImportError::Csv {
                line,
                message: e.to_string(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = "ozg_id,name,lage,themenfeld\r\n";

    fn parse_str(s: &str) -> Result<Vec<OzgService>> {
        parse(s.as_bytes())
    }

    #[test]
    fn reads_services() {
        let s = parse_str(&format!(
            "{HEAD}10124,Wohnsitzmeldungen,Wohnen & Umzug,Bauen & Wohnen\r\n\
             10359,\"Besteuerung von Lotterien, Ausspielungen und Sportwetten\",Steuern & Abgaben,Steuern & Zoll\n"
        ))
        .unwrap();
        assert_eq!(
            s[0],
            OzgService {
                id: "10124".into(),
                name: "Wohnsitzmeldungen".into(),
                situation: "Wohnen & Umzug".into(),
                field: "Bauen & Wohnen".into(),
            }
        );
        assert_eq!(
            s[1].name,
            "Besteuerung von Lotterien, Ausspielungen und Sportwetten"
        );
        assert_eq!(s[1].field, "Steuern & Zoll");
    }

    #[test]
    fn byte_order_mark_is_tolerated() {
        let s = parse_str(&format!(
            "\u{feff}{HEAD}10160,Hundehaltung,Tierhaltung,Engagement & Hobby"
        ))
        .unwrap();
        assert_eq!(s[0].id, "10160");
    }

    #[test]
    fn header_is_required() {
        let e = parse_str("").unwrap_err();
        assert_eq!(
            e,
            ImportError::Header {
                expected: "ozg_id,name,lage,themenfeld".into(),
                found: String::new()
            }
        );
        let e = parse_str("10160,Hundehaltung,Tierhaltung,Engagement & Hobby\n").unwrap_err();
        assert!(matches!(e, ImportError::Header { .. }));
        let e = parse_str("id,name,lage,themenfeld\n1,a,b,c\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "line 1: header must be `ozg_id,name,lage,themenfeld`, found `id,name,lage,themenfeld`"
        );
    }

    #[test]
    fn header_only_is_empty() {
        assert_eq!(parse_str(HEAD).unwrap_err(), ImportError::Empty);
    }

    #[test]
    fn wrong_field_count_is_refused() {
        let e = parse_str(&format!("{HEAD}1,a,b,c\n2,a,b\n")).unwrap_err();
        assert_eq!(
            e,
            ImportError::FieldCount {
                line: 3,
                found: 3,
                expected: 4
            }
        );
        assert_eq!(e.to_string(), "line 3: row has 3 fields, expected 4");
        let e = parse_str(&format!("{HEAD}1,a,b,c,d\n")).unwrap_err();
        assert_eq!(
            e,
            ImportError::FieldCount {
                line: 2,
                found: 5,
                expected: 4
            }
        );
    }

    #[test]
    fn empty_id_is_refused() {
        let e = parse_str(&format!("{HEAD}1,a,b,c\n  ,a,b,c\n")).unwrap_err();
        assert_eq!(
            e,
            ImportError::EmptyField {
                line: 3,
                field: "ozg_id"
            }
        );
        assert_eq!(e.to_string(), "line 3: field `ozg_id` must not be empty");
        let e = parse_str(&format!("{HEAD}1,,b,c\n")).unwrap_err();
        assert_eq!(
            e,
            ImportError::EmptyField {
                line: 2,
                field: "name"
            }
        );
    }

    #[test]
    fn lines_count_physical_lines() {
        // A quoted field may span lines; CRLF and LF may mix.
        let e = parse_str(&format!("{HEAD}1,\"a\r\nb\",c,d\r\n2,a,b\r\n")).unwrap_err();
        assert_eq!(
            e,
            ImportError::FieldCount {
                line: 4,
                found: 3,
                expected: 4
            }
        );
    }

    #[test]
    fn duplicate_id_is_refused() {
        let e = parse_str(&format!("{HEAD}1,a,b,c\n2,a,b,c\n1,x,y,z\n")).unwrap_err();
        assert_eq!(
            e,
            ImportError::DuplicateId {
                line: 4,
                id: "1".into(),
                first_line: 2
            }
        );
        assert_eq!(
            e.to_string(),
            "line 4: id `1` was already defined on line 2"
        );
    }

    #[test]
    fn invalid_utf8_is_refused() {
        let mut bytes = format!("{HEAD}1,a,b,c\n2,").into_bytes();
        bytes.extend_from_slice(b"M\xfcll,b,c\n");
        assert_eq!(
            parse(bytes.as_slice()).unwrap_err(),
            ImportError::InvalidUtf8 { line: 3 }
        );
    }
}
