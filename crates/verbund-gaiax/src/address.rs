//! `gx:Address`: a country code, the NUTS region where verbund's facts determine it, and
//! the locality.
//!
//! The 25.11 shapes take `vcard:region` only as a NUTS-2 code of their list (NUTS 2021);
//! a NUTS-1 code (`DE6`) is refused. A site's location names its Land (ISO 3166-2,
//! `DE-HH`). Nine Länder are one NUTS-2 region each (a NUTS-1 region with a single NUTS-2
//! region `…0`, or Brandenburg's `DE40`), so the Land determines it; the other seven
//! are divided into several (Regierungsbezirke or former ones: Baden-Württemberg DE11–14,
//! Bayern DE21–27, Hessen DE71–73, Niedersachsen DE91–94, Nordrhein-Westfalen DEA1–A5,
//! Rheinland-Pfalz DEB1–B3, Sachsen DED2/4/5), which the Land alone does not say: there
//! the address has no region rather than a guess. So has every place outside Germany.

use serde_json::{json, Map, Value};

/// The NUTS-2 region (NUTS 2021) that is the whole of the ISO 3166-2 subdivision
/// `region`, if there is one.
pub fn nuts_region(region: &str) -> Option<&'static str> {
    Some(match region {
        "DE-BE" => "DE30",
        "DE-BB" => "DE40",
        "DE-HB" => "DE50",
        "DE-HH" => "DE60",
        "DE-MV" => "DE80",
        "DE-SL" => "DEC0",
        "DE-ST" => "DEE0",
        "DE-SH" => "DEF0",
        "DE-TH" => "DEG0",
        // Several NUTS-2 regions each: DE-BW, DE-BY, DE-HE, DE-NI, DE-NW, DE-RP, DE-SN.
        _ => return None,
    })
}

/// A `gx:Address` in `country` (ISO 3166-1 alpha-2), in the ISO 3166-2 subdivision
/// `region` and at `locality` where known.
pub(crate) fn address(country: &str, region: Option<&str>, locality: Option<&str>) -> Value {
    let mut a = Map::new();
    a.insert("type".into(), json!("gx:Address"));
    a.insert("countryCode".into(), json!(country));
    if let Some(nuts) = region.and_then(nuts_region) {
        a.insert("region".into(), json!(nuts));
    }
    if let Some(l) = locality {
        a.insert("locality".into(), json!(l));
    }
    Value::Object(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_land_that_is_one_nuts_2_region_has_it_the_others_none() {
        let lands = [
            "DE-BW", "DE-BY", "DE-BE", "DE-BB", "DE-HB", "DE-HH", "DE-HE", "DE-MV", "DE-NI",
            "DE-NW", "DE-RP", "DE-SL", "DE-SN", "DE-ST", "DE-SH", "DE-TH",
        ];
        let known: Vec<_> = lands.iter().filter_map(|l| nuts_region(l)).collect();
        assert_eq!(
            known,
            ["DE30", "DE40", "DE50", "DE60", "DE80", "DEC0", "DEE0", "DEF0", "DEG0"]
        );
        assert_eq!(nuts_region("AT-9"), None);
    }

    #[test]
    fn an_address_says_what_is_known() {
        assert_eq!(
            address("DE", Some("DE-HH"), Some("Hamburg")),
            json!({"type": "gx:Address", "countryCode": "DE", "region": "DE60", "locality": "Hamburg"})
        );
        assert_eq!(
            address("DE", Some("DE-BY"), None),
            json!({"type": "gx:Address", "countryCode": "DE"})
        );
    }
}
