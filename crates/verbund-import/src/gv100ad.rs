//! Reads the Destatis municipality directory (GV100AD) into Länder, Kreise and
//! Gemeinden keyed by their official ARS, so that the federation's organisations match
//! the official territorial structure.
//!
//! The format is fixed-width: one record of 220 characters per line (UTF-8, CRLF),
//! columns counted in characters, not bytes, since names carry umlauts. The key sits in
//! columns 11–22 in the order Land (2), Regierungsbezirk (1), Kreis (2), Gemeinde (3),
//! Gemeindeverband (4): columns 11–18 are the AGS, and the ARS is Land, RB, Kreis,
//! Gemeindeverband, Gemeinde, so its last two parts are swapped against the file. (The
//! shared data README lists Gemeindeverband before Gemeinde; the file and Destatis's
//! record description put the Gemeinde first.) Regierungsbezirke,
//! Regionen and Gemeindeverbände are read, checked and skipped: kreisfreie Städte and
//! Landkreise sit directly below their Land, Gemeinden directly below their Kreis.
//! Gemeindefreie Gebiete are no authority and are skipped too, but their inhabitants
//! still count towards their Kreis and Land. Some lie outside any Kreis (Kreis key `000`,
//! e.g. the German-Luxembourg condominium in Rheinland-Pfalz and the coastal waters of
//! Mecklenburg-Vorpommern), so only real Gemeinden must name an existing Kreis.

use std::collections::HashMap;
use std::io::BufRead;

use serde::{Deserialize, Serialize};
use verbund_domain::directory::{KeyedOrganisation, Level};

use crate::error::{ImportError, Result};

/// Characters per record.
const RECORD_CHARS: usize = 220;

/// The organisations of one edition of the directory, parents before children.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Directory {
    /// Gebietsstand (the territorial state the edition describes), `YYYYMMDD`.
    pub gebietsstand: String,
    /// All Länder, then all Kreise, then all Gemeinden, each in file order.
    pub organisations: Vec<KeyedOrganisation>,
}

/// The record types (Satzarten) of GV100AD.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Satzart {
    Land,
    Regierungsbezirk,
    Region,
    Kreis,
    Gemeindeverband,
    Gemeinde,
}

impl Satzart {
    fn parse(code: &str) -> Option<Satzart> {
        Some(match code {
            "10" => Satzart::Land,
            "20" => Satzart::Regierungsbezirk,
            "30" => Satzart::Region,
            "40" => Satzart::Kreis,
            "50" => Satzart::Gemeindeverband,
            "60" => Satzart::Gemeinde,
            _ => return None,
        })
    }
}

/// Textkennzeichen of gemeindefreie Gebiete (inhabited, uninhabited).
const GEMEINDEFREI: [&str; 2] = ["65", "66"];

/// One record, its columns cut out but not yet interpreted.
struct Record {
    satzart: Satzart,
    gebietsstand: String,
    /// Columns 11–22: Land (2), RB (1), Kreis (2), Gemeinde (3), Gemeindeverband (4).
    key: String,
    name: String,
    textkennzeichen: String,
    population: Option<i64>,
}

impl Record {
    fn parse(line: u64, text: &str) -> Result<Record> {
        let chars: Vec<char> = text.chars().collect();
        if chars.len() != RECORD_CHARS {
            return Err(ImportError::RecordLength {
                line,
                found: chars.len(),
                expected: RECORD_CHARS,
            });
        }
        // 1-based, inclusive, as in the format description; every column lies within
        // the record's length, checked above.
        let col = |from: usize, to: usize| -> String {
            chars.get(from - 1..to).unwrap_or_default().iter().collect()
        };

        let code = col(1, 2);
        let satzart = Satzart::parse(&code).ok_or(ImportError::UnknownSatzart {
            line,
            satzart: code,
        })?;
        let gebietsstand = col(3, 10);
        digits(line, "Gebietsstand", &gebietsstand)?;
        // The key parts a record type uses are checked to be ASCII digits before
        // anything slices `key` by bytes.
        let key = col(11, 22);
        let land = col(11, 12);
        digits(line, "Land key", &land)?;
        if !matches!(land.parse::<u8>(), Ok(1..=16)) {
            return Err(ImportError::UnknownLand { line, land });
        }
        match satzart {
            Satzart::Kreis => digits(line, "Kreis key", &col(11, 15))?,
            Satzart::Gemeinde => digits(line, "Gemeinde key", &key)?,
            _ => {}
        }
        let name = col(23, 72).trim().to_string();
        if name.is_empty() {
            return Err(ImportError::EmptyField {
                line,
                field: "name",
            });
        }
        let population = col(140, 150);
        let population = match population.trim() {
            "" => None,
            p => {
                digits(line, "population", p)?;
                Some(p.parse::<i64>().map_err(|_| ImportError::NotDigits {
                    line,
                    field: "population",
                    value: p.to_string(),
                })?)
            }
        };
        Ok(Record {
            satzart,
            gebietsstand,
            key,
            name,
            textkennzeichen: col(123, 124).trim().to_string(),
            population,
        })
    }
}

fn digits(line: u64, field: &'static str, value: &str) -> Result<()> {
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(ImportError::NotDigits {
            line,
            field,
            value: value.to_string(),
        })
    }
}

/// Reads the lines of `reader`, tolerating CRLF and LF line ends and a missing final
/// line end, and hands each to `f` with its 1-based number.
fn for_each_line(
    mut reader: impl BufRead,
    mut f: impl FnMut(u64, &str) -> Result<()>,
) -> Result<()> {
    let mut buf = Vec::with_capacity(RECORD_CHARS * 2);
    let mut line = 0;
    loop {
        buf.clear();
        let n = reader
            .read_until(b'\n', &mut buf)
            .map_err(|e| ImportError::Read {
                line: line + 1,
                message: e.to_string(),
            })?;
        if n == 0 {
            return Ok(());
        }
        line += 1;
        let mut bytes = buf.as_slice();
        if let Some(rest) = bytes.strip_suffix(b"\n") {
            bytes = rest;
        }
        if let Some(rest) = bytes.strip_suffix(b"\r") {
            bytes = rest;
        }
        let text = std::str::from_utf8(bytes).map_err(|_| ImportError::InvalidUtf8 { line })?;
        f(line, text)?;
    }
}

/// An organisation read, with the line it came from, for errors found later.
struct Entry {
    line: u64,
    org: KeyedOrganisation,
}

/// Parses a GV100AD file. Refuses the whole file on the first problem, naming the line.
pub fn parse(reader: impl BufRead) -> Result<Directory> {
    let mut gebietsstand: Option<String> = None;
    let mut laender = Vec::new();
    let mut kreise = Vec::new();
    let mut gemeinden = Vec::new();
    // First line of every ARS and AGS, to refuse duplicates.
    let mut first_line: HashMap<String, u64> = HashMap::new();
    // Inhabitants per Land (2 digits) and Kreis (5 digits), summed from record 60.
    let mut inhabitants: HashMap<String, i64> = HashMap::new();

    for_each_line(reader, |line, text| {
        let r = Record::parse(line, text)?;
        match &gebietsstand {
            None => gebietsstand = Some(r.gebietsstand.clone()),
            Some(g) if *g != r.gebietsstand => {
                return Err(ImportError::MixedGebietsstand {
                    line,
                    found: r.gebietsstand,
                    expected: g.clone(),
                })
            }
            Some(_) => {}
        }
        let (level, ars, ags, parent) = match r.satzart {
            Satzart::Land => (
                Level::Land,
                r.key[..2].to_string(),
                r.key[..2].to_string(),
                None,
            ),
            Satzart::Kreis => (
                Level::Kreis,
                r.key[..5].to_string(),
                r.key[..5].to_string(),
                Some(r.key[..2].to_string()),
            ),
            Satzart::Gemeinde => {
                let kreis = &r.key[..5];
                if let Some(p) = r.population {
                    for k in [&r.key[..2], kreis] {
                        let sum = inhabitants.entry(k.to_string()).or_insert(0);
                        *sum = sum.saturating_add(p);
                    }
                }
                if GEMEINDEFREI.contains(&r.textkennzeichen.as_str()) {
                    return Ok(());
                }
                let ars = format!("{kreis}{}{}", &r.key[8..], &r.key[5..8]);
                let ags = r.key[..8].to_string();
                (Level::Gemeinde, ars, ags, Some(kreis.to_string()))
            }
            Satzart::Regierungsbezirk | Satzart::Region | Satzart::Gemeindeverband => return Ok(()),
        };
        // ARS and AGS must both be unique; their lengths (2, 5, 8, 12) keep them apart.
        for key in [&ars, &ags] {
            if let Some(&first) = first_line.get(key) {
                return Err(ImportError::DuplicateKey {
                    line,
                    key: key.clone(),
                    first_line: first,
                });
            }
        }
        first_line.insert(ars.clone(), line);
        first_line.insert(ags.clone(), line);
        let entry = Entry {
            line,
            org: KeyedOrganisation {
                name: r.name,
                level,
                ars,
                ags: Some(ags),
                parent_ars: parent,
                population: r.population,
            },
        };
        match level {
            Level::Land => laender.push(entry),
            Level::Kreis => kreise.push(entry),
            _ => gemeinden.push(entry),
        }
        Ok(())
    })?;

    let Some(gebietsstand) = gebietsstand else {
        return Err(ImportError::Empty);
    };

    // Land and Kreis keys differ in length, so one map answers for both levels.
    let has = |ars: &str| first_line.contains_key(ars);
    for k in &kreise {
        let land = &k.org.ars[..2];
        if !has(land) {
            return Err(ImportError::MissingLand {
                line: k.line,
                kreis: k.org.ars.clone(),
                land: land.to_string(),
            });
        }
    }
    for g in &gemeinden {
        let kreis = &g.org.ars[..5];
        if !has(kreis) {
            return Err(ImportError::MissingKreis {
                line: g.line,
                gemeinde: g.org.ars.clone(),
                kreis: kreis.to_string(),
            });
        }
    }

    let organisations = laender
        .into_iter()
        .chain(kreise)
        .map(|mut r| {
            if r.org.population.is_none() {
                r.org.population = inhabitants.get(&r.org.ars).copied();
            }
            r.org
        })
        .chain(gemeinden.into_iter().map(|r| r.org))
        .collect();
    Ok(Directory {
        gebietsstand,
        organisations,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a 220-character record: Satzart, the 12-digit key (columns 11–22, may be
    /// shorter and is padded with blanks), name, Textkennzeichen and population.
    fn rec(satzart: &str, key: &str, name: &str, tk: &str, pop: Option<i64>) -> String {
        let mut c = vec![' '; RECORD_CHARS];
        let mut put = |from: usize, s: &str| {
            for (i, ch) in s.chars().enumerate() {
                c[from - 1 + i] = ch;
            }
        };
        put(1, satzart);
        put(3, "20211130");
        put(11, key);
        put(23, name);
        put(123, tk);
        if let Some(p) = pop {
            put(140, &format!("{p:011}"));
        }
        c.into_iter().collect()
    }

    /// A small, consistent directory: Bayern with Oberbayern, the kreisfreie Stadt
    /// München and the Landkreis Starnberg with a Gemeindeverband, two Gemeinden and a
    /// gemeindefreies Gebiet; and Berlin.
    fn sample() -> Vec<String> {
        vec![
            rec("10", "09", "Bayern", "", None),
            rec("20", "091", "Oberbayern", "", None),
            rec("40", "09162", "München, Landeshauptstadt", "41", None),
            rec("50", "091620000", "München, Landeshauptstadt", "50", None),
            rec(
                "60",
                "091620000000",
                "München, Landeshauptstadt",
                "61",
                Some(1_488_202),
            ),
            rec("40", "09188", "Starnberg", "44", None),
            rec("50", "09188   5101", "Feldafing (VGem)", "52", None),
            rec("60", "091881390139", "Starnberg, St", "67", Some(23_498)),
            rec("60", "091881185101", "Feldafing", "64", Some(4_300)),
            rec("60", "091884519451", "Starnberger See", "65", Some(7)),
            rec("10", "11", "Berlin", "", None),
            rec("40", "11000", "Berlin, Stadt", "41", None),
            rec("60", "110000000000", "Berlin, Stadt", "61", None),
        ]
    }

    fn parse_lines(lines: &[String], end: &str) -> Result<Directory> {
        let mut text = lines.join(end);
        text.push_str(end);
        parse(text.as_bytes())
    }

    fn find<'a>(d: &'a Directory, ars: &str) -> &'a KeyedOrganisation {
        d.organisations.iter().find(|o| o.ars == ars).unwrap()
    }

    #[test]
    fn hierarchy() {
        let d = parse_lines(&sample(), "\r\n").unwrap();
        assert_eq!(d.gebietsstand, "20211130");
        let keys: Vec<_> = d.organisations.iter().map(|o| o.ars.as_str()).collect();
        assert_eq!(
            keys,
            [
                "09",
                "11",
                "09162",
                "09188",
                "11000",
                "091620000000",
                "091880139139",
                "091885101118",
                "110000000000"
            ]
        );
        let m = find(&d, "091620000000");
        assert_eq!(m.level, Level::Gemeinde);
        assert_eq!(m.name, "München, Landeshauptstadt");
        assert_eq!(m.ags.as_deref(), Some("09162000"));
        assert_eq!(m.parent_ars.as_deref(), Some("09162"));
        assert_eq!(m.population, Some(1_488_202));
        // The file holds AGS then Gemeindeverband; the ARS puts the Verband first.
        let f = find(&d, "091885101118");
        assert_eq!(f.ags.as_deref(), Some("09188118"));
        assert_eq!(find(&d, "091880139139").ags.as_deref(), Some("09188139"));
        let k = find(&d, "09188");
        assert_eq!(
            (k.level, k.ags.as_deref(), k.parent_ars.as_deref()),
            (Level::Kreis, Some("09188"), Some("09"))
        );
        let l = find(&d, "09");
        assert_eq!(
            (l.level, l.ags.as_deref(), l.parent_ars.as_deref()),
            (Level::Land, Some("09"), None)
        );
        // The gemeindefreie Gebiet is no organisation, but its inhabitants count.
        assert_eq!(k.population, Some(23_498 + 4_300 + 7));
        assert_eq!(l.population, Some(1_488_202 + 23_498 + 4_300 + 7));
        assert!(!d.organisations.iter().any(|o| o.name == "Starnberger See"));
        // Blank population stays unknown, and so do sums over nothing.
        assert_eq!(find(&d, "110000000000").population, None);
        assert_eq!(find(&d, "11").population, None);
        // Parents precede children.
        for (i, o) in d.organisations.iter().enumerate() {
            if let Some(p) = &o.parent_ars {
                assert!(
                    d.organisations[..i].iter().any(|q| &q.ars == p),
                    "{}",
                    o.ars
                );
            }
        }
    }

    #[test]
    fn line_ends_are_tolerated() {
        let crlf = parse_lines(&sample(), "\r\n").unwrap();
        assert_eq!(parse_lines(&sample(), "\n").unwrap(), crlf);
        let no_final_end = sample().join("\r\n");
        assert_eq!(parse(no_final_end.as_bytes()).unwrap(), crlf);
    }

    #[test]
    fn truncated_file_is_refused() {
        let text = sample().join("\r\n");
        let cut = &text[..text.len() - 163];
        assert_eq!(
            parse(cut.as_bytes()).unwrap_err(),
            ImportError::RecordLength {
                line: 13,
                found: 57,
                expected: 220
            }
        );
        assert_eq!(
            parse(cut.as_bytes()).unwrap_err().to_string(),
            "line 13: record is 57 characters long, expected 220"
        );
        // Cut inside a multi-byte character.
        let bytes = sample()[..3].join("\r\n").into_bytes();
        let umlaut = bytes.iter().rposition(|&b| b == 0xc3).unwrap();
        assert_eq!(
            parse(&bytes[..umlaut + 1]).unwrap_err(),
            ImportError::InvalidUtf8 { line: 3 }
        );
    }

    #[test]
    fn columns_are_characters_not_bytes() {
        // "München" has an umlaut: two bytes, one character.
        let r = rec("60", "091620000000", "München", "61", Some(1));
        assert_eq!(r.chars().count(), 220);
        assert_eq!(r.len(), 221);
        let mut lines = sample();
        lines[4] = r;
        assert_eq!(
            find(&parse_lines(&lines, "\r\n").unwrap(), "091620000000").population,
            Some(1)
        );
    }

    #[test]
    fn long_and_blank_records_are_refused() {
        let mut lines = sample();
        lines[2].push(' ');
        assert_eq!(
            parse_lines(&lines, "\r\n").unwrap_err(),
            ImportError::RecordLength {
                line: 3,
                found: 221,
                expected: 220
            }
        );
        let mut lines = sample();
        lines.insert(1, String::new());
        assert_eq!(
            parse_lines(&lines, "\r\n").unwrap_err(),
            ImportError::RecordLength {
                line: 2,
                found: 0,
                expected: 220
            }
        );
    }

    #[test]
    fn empty_file_is_refused() {
        assert_eq!(parse(&b""[..]).unwrap_err(), ImportError::Empty);
    }

    #[test]
    fn invalid_utf8_is_refused() {
        let mut bytes = sample()[..2].join("\r\n").into_bytes();
        bytes.extend_from_slice(b"\r\n");
        // Latin-1 "ü" in a record of 220 bytes.
        let mut latin1 = rec("40", "09162", "Mxnchen", "41", None).into_bytes();
        latin1[23] = 0xfc;
        bytes.extend_from_slice(&latin1);
        assert_eq!(
            parse(bytes.as_slice()).unwrap_err(),
            ImportError::InvalidUtf8 { line: 3 }
        );
    }

    #[test]
    fn unknown_satzart_is_refused() {
        let mut lines = sample();
        lines[3] = rec("70", "091620000", "X", "", None);
        let e = parse_lines(&lines, "\r\n").unwrap_err();
        assert_eq!(
            e,
            ImportError::UnknownSatzart {
                line: 4,
                satzart: "70".into()
            }
        );
        assert_eq!(e.to_string(), "line 4: unknown Satzart `70`");
    }

    #[test]
    fn non_digit_keys_are_refused() {
        let mut lines = sample();
        lines[4] = rec("60", "09162000000x", "München", "61", None);
        let e = parse_lines(&lines, "\r\n").unwrap_err();
        assert_eq!(
            e,
            ImportError::NotDigits {
                line: 5,
                field: "Gemeinde key",
                value: "09162000000x".into()
            }
        );
        assert_eq!(
            e.to_string(),
            "line 5: Gemeinde key `09162000000x` must consist of digits"
        );

        let mut lines = sample();
        lines[2] = rec("40", "091 2", "München", "41", None);
        assert!(matches!(
            parse_lines(&lines, "\r\n").unwrap_err(),
            ImportError::NotDigits {
                line: 3,
                field: "Kreis key",
                ..
            }
        ));

        let mut lines = sample();
        lines[0] = rec("10", "17", "Atlantis", "", None);
        let e = parse_lines(&lines, "\r\n").unwrap_err();
        assert_eq!(
            e,
            ImportError::UnknownLand {
                line: 1,
                land: "17".into()
            }
        );
        assert_eq!(e.to_string(), "line 1: Land key `17` is not one of 01–16");
        // Non-ASCII where digits belong is refused, not sliced.
        let mut lines = sample();
        lines[2] = rec("40", "09ü62", "München", "41", None);
        assert!(matches!(
            parse_lines(&lines, "\r\n").unwrap_err(),
            ImportError::NotDigits {
                line: 3,
                field: "Kreis key",
                ..
            }
        ));

        let mut lines = sample();
        lines[4].replace_range(139..150, "   12x4    ");
        assert!(matches!(
            parse_lines(&lines, "\r\n").unwrap_err(),
            ImportError::NotDigits {
                line: 5,
                field: "population",
                ..
            }
        ));
    }

    #[test]
    fn mixed_gebietsstand_is_refused() {
        let mut lines = sample();
        lines[6].replace_range(2..10, "20201231");
        let e = parse_lines(&lines, "\r\n").unwrap_err();
        assert_eq!(
            e,
            ImportError::MixedGebietsstand {
                line: 7,
                found: "20201231".into(),
                expected: "20211130".into()
            }
        );
        assert_eq!(
            e.to_string(),
            "line 7: Gebietsstand `20201231` differs from `20211130` of the first record"
        );
    }

    #[test]
    fn missing_land_is_refused() {
        let mut lines = sample();
        lines.remove(0);
        let e = parse_lines(&lines, "\r\n").unwrap_err();
        assert_eq!(
            e,
            ImportError::MissingLand {
                line: 2,
                kreis: "09162".into(),
                land: "09".into()
            }
        );
        assert_eq!(
            e.to_string(),
            "line 2: Kreis `09162` belongs to Land `09`, which is missing"
        );
    }

    #[test]
    fn missing_kreis_is_refused() {
        let mut lines = sample();
        lines.remove(5); // Landkreis Starnberg
        let e = parse_lines(&lines, "\r\n").unwrap_err();
        assert_eq!(
            e,
            ImportError::MissingKreis {
                line: 7,
                gemeinde: "091880139139".into(),
                kreis: "09188".into()
            }
        );
    }

    #[test]
    fn gemeindefreie_gebiete_may_lie_outside_any_kreis() {
        // As the German-Luxembourg condominium does in the real file.
        let mut lines = sample();
        lines.insert(
            10,
            rec(
                "50",
                "09000   9999",
                "Gemeinsames Hoheitsgebiet",
                "50",
                None,
            ),
        );
        lines.insert(
            11,
            rec(
                "60",
                "090009999999",
                "Gemeinsames Hoheitsgebiet",
                "66",
                Some(0),
            ),
        );
        let d = parse_lines(&lines, "\r\n").unwrap();
        assert_eq!(d, parse_lines(&sample(), "\r\n").unwrap());
    }

    #[test]
    fn duplicate_keys_are_refused() {
        let mut lines = sample();
        lines.push(rec("60", "091881390139", "Starnberg, St", "67", None));
        assert_eq!(
            parse_lines(&lines, "\r\n").unwrap_err(),
            ImportError::DuplicateKey {
                line: 14,
                key: "091880139139".into(),
                first_line: 8
            }
        );
        // The same Gemeinde in two Gemeindeverbände.
        let mut lines = sample();
        lines.push(rec("60", "091881395101", "Starnberg, St", "67", None));
        let e = parse_lines(&lines, "\r\n").unwrap_err();
        assert_eq!(
            e,
            ImportError::DuplicateKey {
                line: 14,
                key: "09188139".into(),
                first_line: 8
            }
        );
        assert_eq!(
            e.to_string(),
            "line 14: key `09188139` was already defined on line 8"
        );
    }

    #[test]
    fn empty_name_is_refused() {
        let mut lines = sample();
        lines[5] = rec("40", "09188", "", "44", None);
        assert_eq!(
            parse_lines(&lines, "\r\n").unwrap_err(),
            ImportError::EmptyField {
                line: 6,
                field: "name"
            }
        );
    }
}
