//! Parses the real reference files (Destatis GV100AD, OZG catalog) from the shared data
//! folder next to the repository, so that the parsers are known to read the official
//! editions and not just our idea of them.

// Tests and benchmarks may panic: a failed expectation is a failed run.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::io::BufReader;

use verbund_domain::directory::{check_ags, check_ars, KeyedOrganisation, Level, OrganisationSpec};

const GV100AD: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/data/GV100AD_301121.ASC"
);
const OZG: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/data/ozg-leistungen.csv"
);

fn open(path: &str) -> BufReader<File> {
    BufReader::new(File::open(path).unwrap_or_else(|e| panic!("cannot open {path}: {e}")))
}

#[test]
fn real_files() {
    let d = verbund_import::gv100ad::parse(open(GV100AD)).unwrap();
    assert_eq!(d.gebietsstand, "20211130");
    let count = |l: Level| d.organisations.iter().filter(|o| o.level == l).count();
    assert_eq!(count(Level::Land), 16);
    assert_eq!(count(Level::Kreis), 400);
    assert_eq!(count(Level::Gemeinde), 10_787);

    let mut seen = HashMap::new();
    for o in &d.organisations {
        check_ars("/ars", &o.ars).unwrap();
        check_ags("/ags", o.ags.as_deref().unwrap()).unwrap();
        // As the store will see it: every level but the Bund sits below something.
        as_spec(o)
            .validate()
            .unwrap_or_else(|e| panic!("{}: {e}", o.ars));
        if let Some(p) = &o.parent_ars {
            let parent: &Level = seen
                .get(p.as_str())
                .unwrap_or_else(|| panic!("parent {p} of {} is missing or comes later", o.ars));
            assert!(o.level.may_have_parent(*parent), "{}", o.ars);
            assert!(o.ars.starts_with(p.as_str()));
        } else {
            assert_eq!(o.level, Level::Land);
        }
        assert!(
            seen.insert(o.ars.as_str(), o.level).is_none(),
            "{} twice",
            o.ars
        );
    }

    let by_ags = |ags: &str| {
        d.organisations
            .iter()
            .find(|o| o.ags.as_deref() == Some(ags))
            .unwrap()
    };
    let muenchen = by_ags("09162000");
    assert_eq!(muenchen.level, Level::Gemeinde);
    assert_eq!(muenchen.ars, "091620000000");
    assert_eq!(muenchen.parent_ars.as_deref(), Some("09162"));
    assert!(muenchen.name.starts_with("München"));
    let kreis = by_ags("09162");
    assert_eq!(
        (kreis.level, kreis.parent_ars.as_deref()),
        (Level::Kreis, Some("09"))
    );
    assert_eq!(by_ags("09").level, Level::Land);
    assert_eq!(by_ags("09").name, "Bayern");

    // Büsum lies in the Amt Büsum-Wesselburen (Gemeindeverband 5178): its ARS puts the
    // Verband before the Gemeinde, its AGS leaves the Verband out.
    let buesum = by_ags("01051013");
    assert_eq!(buesum.name, "Büsum");
    assert_eq!(buesum.ars, "010515178013");
    assert_eq!(buesum.parent_ars.as_deref(), Some("01051"));

    let berlin = d
        .organisations
        .iter()
        .find(|o| o.ars == "110000000000")
        .unwrap();
    assert_eq!(berlin.level, Level::Gemeinde);

    // Every Gemeinde in this edition has a population; Länder sum to Germany's.
    let total: i64 = d
        .organisations
        .iter()
        .filter(|o| o.level == Level::Land)
        .map(|o| o.population.unwrap())
        .sum();
    assert_eq!(total, 83_155_031);

    let ozg = verbund_import::ozg::parse(open(OZG)).unwrap();
    assert_eq!(ozg.len(), 557);
    let fields: BTreeSet<_> = ozg.iter().map(|s| s.field.as_str()).collect();
    assert_eq!(fields.len(), 14);
    assert!(ozg
        .iter()
        .any(|s| s.id == "10124" && s.name == "Wohnsitzmeldungen"));
}

fn as_spec(o: &KeyedOrganisation) -> OrganisationSpec {
    OrganisationSpec {
        name: o.name.clone(),
        level: o.level,
        ars: Some(o.ars.clone()),
        ags: o.ags.clone(),
        parent: Some(o.parent_ars.clone().unwrap_or_else(|| "bund".into())),
        population: o.population,
    }
}
