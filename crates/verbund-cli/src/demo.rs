//! `verbund demo`: the control plane with a demo federation — all 16 Länder, a sample of
//! real municipalities, example providers and sites, a catalog of real open-source
//! applications used in administration, and a few bookings of München and Flensburg
//! (placed on the first start only), whose desired state the repository then holds.
//! Loading creates only what is missing: a restart loads nothing twice and never
//! overwrites what an administrator changed, while a demo object new in this version
//! still appears.

use std::path::Path;

use anyhow::Context;
use serde::Deserialize;
use verbund_api::issue_token;
use verbund_api::verbund_gaiax::Federation;
use verbund_domain::account::{Membership, Role, UserSpec};
use verbund_domain::catalog::{OfferingSpec, VersionSpec};
use verbund_domain::directory::{
    KeyedOrganisation, Level, OrganisationFilter, OrganisationSpec, OzgService, ProviderSpec,
    SiteSpec,
};
use verbund_domain::page::PageRequest;
use verbund_domain::registration::{Registration, RegistrationKind};
use verbund_store::{Store, StoreError};

use crate::cli::DemoArgs;

const MUNICIPALITIES: &str = include_str!("../demo/municipalities.yaml");
const OZG: &str = include_str!("../demo/ozg.yaml");
const PROVIDERS: &str = include_str!("../demo/providers.yaml");
const SITES: &str = include_str!("../demo/sites.yaml");
const OFFERINGS: &str = include_str!("../demo/offerings.yaml");
const BOOKINGS: &str = include_str!("../demo/bookings.yaml");

/// The actor recorded for everything the demo loads.
const ACTOR: &str = "system/demo";
/// Placeholder in `offerings.yaml` for the vendor organisation's id.
const VENDOR_PLACEHOLDER: &str = "demo-vendor";
const VENDOR_NAME: &str = "Open-Source-Anbieterverbund (Demo)";
/// The demo vendor's (fictional) number in the Vereinsregister.
const VENDOR_REGISTRATION: &str = "DEMO VR 1000";
/// Placeholder in `offerings.yaml` for the Helm repository of the demo's own charts.
const CHARTS_PLACEHOLDER: &str = "${VERBUND_DEMO_CHARTS}";

#[derive(Debug, Deserialize)]
struct OfferingEntry {
    offering: OfferingSpec,
    versions: Vec<VersionSpec>,
}

fn parse<T: serde::de::DeserializeOwned>(name: &str, text: &str) -> anyhow::Result<T> {
    serde_yaml_ng::from_str(text).with_context(|| format!("demo file {name} is invalid"))
}

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let DemoArgs {
        serve: args,
        no_simulation,
        charts,
    } = args;
    let store = args.store.open().await?;
    crate::serve::bootstrap_admin(&store, &args.store.data).await?;
    let shared = store.dialect() == verbund_store::Dialect::Postgres;
    let federation = crate::serve::federation(&args, shared)?;
    load(&store, &args.store.data, &charts, federation.as_ref()).await?;
    let extras = if no_simulation {
        crate::serve::Extras::None
    } else {
        crate::serve::Extras::SimulatedSites
    };
    crate::serve::serve(args, Some(store), extras).await
}

/// Loads the demo federation into the store; safe to call on every start. `charts` is
/// the Helm repository of the demo's own charts; `federation` attests the certificates
/// of the demo's sites (without it, none of them counts).
pub async fn load(
    store: &Store,
    data: &Path,
    charts: &str,
    federation: Option<&Federation>,
) -> anyhow::Result<()> {
    let now = chrono::Utc::now();
    let orgs: Vec<KeyedOrganisation> = parse("municipalities.yaml", MUNICIPALITIES)?;
    let known = known_keys(store).await?;
    let new_orgs: Vec<KeyedOrganisation> = orgs
        .iter()
        .filter(|o| !known.contains(&o.ars))
        .cloned()
        .collect();
    store
        .import_organisations(ACTOR, "demo-municipalities", &new_orgs, now)
        .await
        .context("loading the demo municipalities")?;
    let ozg: Vec<OzgService> = parse("ozg.yaml", OZG)?;
    store
        .import_ozg(ACTOR, "demo-ozg-sample", &ozg, now)
        .await?;
    let vendor = vendor_organisation(store, now).await?;
    let providers: Vec<ProviderSpec> = parse("providers.yaml", PROVIDERS)?;
    for p in &providers {
        if missing(store.get_provider(&p.name).await)? {
            store.put_provider(ACTOR, p, now).await?;
        }
    }
    let sites: Vec<SiteSpec> = parse("sites.yaml", SITES)?;
    let mut new_sites = Vec::new();
    for s in &sites {
        if missing(store.get_site(&s.name).await)? {
            store.put_site(ACTOR, s, now).await?;
            new_sites.push(s);
        }
    }
    attest_certifications(store, federation, &new_sites, now).await?;
    let offerings: Vec<OfferingEntry> = parse(
        "offerings.yaml",
        &OFFERINGS.replace(CHARTS_PLACEHOLDER, charts.trim_end_matches('/')),
    )?;
    for entry in &offerings {
        let mut spec = entry.offering.clone();
        if spec.vendor == VENDOR_PLACEHOLDER {
            spec.vendor = vendor.clone();
        }
        if missing(store.get_offering(&spec.name).await)? {
            store
                .put_offering(ACTOR, &spec, now)
                .await
                .with_context(|| format!("loading demo offering `{}`", spec.name))?;
        }
        let published = store.list_versions(&spec.name).await?;
        for v in &entry.versions {
            if !published.iter().any(|p| p.spec.version == v.version) {
                store.publish_version(ACTOR, &spec.name, v, now).await?;
            }
        }
    }
    demo_users(store, data, &vendor, &providers).await?;
    demo_bookings(store, now).await?;
    println!(
        "demo federation ready: {} organisations, {} providers, {} sites, {} offerings",
        orgs.len() + 2,
        providers.len(),
        sites.len(),
        offerings.len()
    );
    Ok(())
}

/// Whether a demo object is missing from the store (and is to be created); any other
/// failure to read it is an error.
fn missing<T>(found: Result<T, StoreError>) -> Result<bool, StoreError> {
    match found {
        Ok(_) => Ok(false),
        Err(StoreError::NotFound { .. }) => Ok(true),
        Err(e) => Err(e),
    }
}

/// The ARS of every organisation in the store.
async fn known_keys(store: &Store) -> anyhow::Result<std::collections::HashSet<String>> {
    let mut keys = std::collections::HashSet::new();
    let mut page = PageRequest {
        limit: Some(verbund_domain::page::MAX_LIMIT),
        after: None,
    };
    loop {
        let batch = store
            .list_organisations(&OrganisationFilter::default(), &page)
            .await?;
        keys.extend(batch.items.into_iter().filter_map(|o| o.ars));
        match batch.next {
            Some(next) => page.after = Some(next),
            None => return Ok(keys),
        }
    }
}

/// A booking of `bookings.yaml`: the organisation by its official key.
#[derive(Debug, Deserialize)]
struct BookingEntry {
    organisation: String,
    offering: String,
    plan: String,
    #[serde(default)]
    config: serde_json::Value,
}

/// The certification schemes the demo federation attests by hand.
const ATTESTED_SCHEMES: &[&str] = &["iso27001", "bsi-c5"];

/// A certification counts only as a credential of an issuer on the trust list: the
/// demo federation names itself on its list (when it has stated none yet) and attests
/// the certificates of its new sites that are valid today — as a federation admin does
/// who checked them by hand. The expired one stays a mere statement.
async fn attest_certifications(
    store: &Store,
    federation: Option<&Federation>,
    sites: &[&SiteSpec],
    now: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<()> {
    let Some(federation) = federation else {
        println!(
            "no federation key: the demo sites' certificates are not attested and do not count"
        );
        return Ok(());
    };
    if store.trust_list().await?.version == 0 {
        let list = verbund_trust::TrustList {
            issuers: vec![federation.trusted(ATTESTED_SCHEMES)],
            count_stated_certifications: false,
        };
        store.put_trust_list(ACTOR, &list, now).await?;
    }
    for site in sites {
        for c in &site.certifications {
            if c.valid_until < now.date_naive() {
                continue;
            }
            verbund_api::routes::trust::attest_certification(
                store,
                federation,
                ACTOR,
                (&site.name, c),
                "Demo: the certificate as stated in the demo's sites.yaml",
                now,
            )
            .await
            .with_context(|| {
                format!(
                    "the federation's attestation of {}'s `{}`",
                    site.name, c.scheme
                )
            })?;
        }
    }
    Ok(())
}

/// Places the demo's bookings on the first start (when there are no bookings at all).
async fn demo_bookings(store: &Store, now: chrono::DateTime<chrono::Utc>) -> anyhow::Result<()> {
    let (by_state, _noncompliant) = store.booking_counts().await?;
    if by_state.iter().any(|(_, n)| *n > 0) {
        return Ok(());
    }
    verbund_placement::ensure_default_policies(store, now)
        .await
        .context("installing the federation's default policies")?;
    let bookings = verbund_placement::Bookings::new(store.clone());
    let entries: Vec<BookingEntry> = parse("bookings.yaml", BOOKINGS)?;
    for e in &entries {
        let organisation = store
            .find_organisation_by_key(&e.organisation)
            .await?
            .with_context(|| {
                format!("demo booking: no organisation with key {}", e.organisation)
            })?;
        let spec = verbund_domain::booking::BookingSpec {
            dependencies: Default::default(),
            ending: None,
            organisation: organisation.id,
            offering: e.offering.clone(),
            plan: e.plan.clone(),
            config: e.config.clone(),
            channel: "stable".into(),
            windows: Vec::new(),
        };
        bookings.book(ACTOR, &spec, now).await.with_context(|| {
            format!("demo booking of `{}` for {}", e.offering, organisation.name)
        })?;
    }
    Ok(())
}

/// The organisation that publishes the demo catalog, created once.
async fn vendor_organisation(
    store: &Store,
    now: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<String> {
    let filter = OrganisationFilter {
        level: Some(Level::Verband),
        name_prefix: Some(VENDOR_NAME.into()),
        ..Default::default()
    };
    let found = store
        .list_organisations(&filter, &PageRequest::default())
        .await?;
    if let Some(o) = found.items.into_iter().find(|o| o.name == VENDOR_NAME) {
        return Ok(o.id);
    }
    let bund = store
        .list_organisations(
            &OrganisationFilter {
                level: Some(Level::Bund),
                ..Default::default()
            },
            &PageRequest::default(),
        )
        .await?
        .items
        .into_iter()
        .next()
        .context("the demo needs the Bund, which the municipality import creates")?;
    let org = store
        .create_organisation(
            ACTOR,
            &OrganisationSpec {
                name: VENDOR_NAME.into(),
                level: Level::Verband,
                ars: None,
                ags: None,
                parent: Some(bund.id),
                population: None,
            },
            now,
        )
        .await?;
    // A Verband has no ARS: its number in the Vereinsregister, which its Gaia-X legal
    // person names (fictional, as the Verband is).
    let registration = Registration {
        kind: RegistrationKind::Local,
        value: VENDOR_REGISTRATION.into(),
    };
    store
        .state_organisation_registration(ACTOR, &org.id, Some(&registration), now)
        .await?;
    Ok(org.id)
}

/// One user per role, each with a token in `DATA/tokens/<name>.token`.
async fn demo_users(
    store: &Store,
    data: &Path,
    vendor: &str,
    providers: &[ProviderSpec],
) -> anyhow::Result<()> {
    let by_key = |key: &'static str| async move {
        store
            .find_organisation_by_key(key)
            .await?
            .map(|o| o.id)
            .ok_or(StoreError::NotFound {
                kind: "organisation",
                id: key.into(),
            })
    };
    let mut users = vec![
        (
            "pruefer",
            "Prüferin (Datenschutz)",
            Membership {
                role: Role::Auditor,
                organisation: None,
                provider: None,
                delegated: false,
            },
        ),
        (
            "anbieter",
            "Anbieter des Demo-Katalogs",
            Membership {
                role: Role::Vendor,
                organisation: Some(vendor.into()),
                provider: None,
                delegated: false,
            },
        ),
        (
            "it-muenchen",
            "IT-Leitung München",
            Membership {
                role: Role::OrgAdmin,
                organisation: Some(by_key("09162000").await?),
                provider: None,
                delegated: false,
            },
        ),
        (
            "it-flensburg",
            "IT-Leitung Flensburg",
            Membership {
                role: Role::OrgAdmin,
                organisation: Some(by_key("01001000").await?),
                provider: None,
                delegated: false,
            },
        ),
    ];
    if let Some(p) = providers.first() {
        users.push((
            "betrieb",
            "Betrieb (Demo-Provider)",
            Membership {
                role: Role::ProviderOperator,
                organisation: None,
                provider: Some(p.name.clone()),
                delegated: false,
            },
        ));
    }
    let dir = data.join("tokens");
    std::fs::create_dir_all(&dir)?;
    let now = chrono::Utc::now();
    for (name, display, membership) in users {
        if let Some((user, credential)) = store.credential(name).await? {
            if credential.is_none() {
                let path = dir.join(format!("{name}.password"));
                crate::serve::set_portal_password(store, ACTOR, &user, &path).await?;
            }
            continue;
        }
        let user = store
            .create_user(
                ACTOR,
                &UserSpec {
                    name: name.into(),
                    display_name: display.into(),
                    email: None,
                    memberships: vec![membership],
                },
                now,
            )
            .await?;
        let (_, secret) = issue_token(store, ACTOR, &user.id, "demo", None, now).await?;
        crate::serve::write_secret(&dir.join(format!("{name}.token")), &secret)?;
        let path = dir.join(format!("{name}.password"));
        crate::serve::set_portal_password(store, ACTOR, &user, &path).await?;
    }
    println!(
        "demo users' API tokens (`<name>.token`) and portal passwords (`<name>.password`) are in {}",
        dir.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADMIN: &str = "user/federation-admin";

    /// The sequence number of the newest audit event.
    async fn audit_head(store: &Store) -> i64 {
        let page = PageRequest {
            limit: Some(1),
            after: None,
        };
        store
            .list_audit(&verbund_store::AuditFilter::default(), &page)
            .await
            .expect("list_audit")
            .items
            .first()
            .map_or(0, |e| e.seq)
    }

    /// What an administrator changed in demo objects, before the first start or after it,
    /// survives every later start; demo objects missing from the store are created.
    #[tokio::test]
    async fn restarts_create_what_is_missing_and_overwrite_nothing() {
        let dir = tempfile::TempDir::new().expect("a temporary folder");
        let url = format!("sqlite://{}", dir.path().join("verbund.db").display());
        let store = Store::open(&url).await.expect("store");
        let now = chrono::Utc::now();
        let charts = "https://charts.verbund.example/demo";

        // An administrator registered a demo provider and a demo site before the first
        // start, as they see them.
        let providers: Vec<ProviderSpec> = parse("providers.yaml", PROVIDERS).expect("providers");
        let sites: Vec<SiteSpec> = parse("sites.yaml", SITES).expect("sites");
        let mut provider = providers[0].clone();
        provider.display_name = "Nordwerk IT (umbenannt)".into();
        store
            .put_provider(ADMIN, &provider, now)
            .await
            .expect("put_provider");
        let mut site = sites
            .iter()
            .find(|s| s.provider == provider.name)
            .expect("a site of the first provider")
            .clone();
        site.capacity.cpu_millis /= 2;
        site.kubernetes_version = "1.33".into();
        store.put_site(ADMIN, &site, now).await.expect("put_site");

        let key = verbund_api::verbund_gaiax::generate_key().expect("a federation key");
        let federation =
            Federation::new("https://verbund.example", key.as_bytes()).expect("the federation");
        load(&store, dir.path(), charts, Some(&federation))
            .await
            .expect("first start");
        // The certificates of the sites the demo created count as the federation's
        // attestations (the expired one does not); the administrator's site is theirs.
        let trust = store.trust_list().await.expect("trust list");
        assert_eq!(trust.list.issuers.len(), 1);
        assert_eq!(trust.list.issuers[0].id, federation.did());
        assert!(!trust.list.count_stated_certifications);
        for s in sites.iter().filter(|s| s.name != site.name) {
            let attested = store.site_credentials(&s.name).await.expect("credentials");
            let valid = s
                .certifications
                .iter()
                .filter(|c| c.valid_until >= now.date_naive())
                .count();
            assert_eq!(attested.len(), valid, "{}'s attestations", s.name);
            assert!(attested
                .iter()
                .all(|c| c.certified.issuer == federation.did()));
        }
        assert!(store
            .site_credentials(&site.name)
            .await
            .expect("credentials")
            .is_empty());
        // The vendor, a Verband without ARS, is registered by the number stated for it.
        let vendor = store
            .get_offering("nextcloud")
            .await
            .expect("nextcloud")
            .spec
            .vendor;
        let stated = store
            .organisation_registration(&vendor)
            .await
            .expect("registration");
        assert_eq!(
            stated.registration.map(|r| r.value).as_deref(),
            Some(VENDOR_REGISTRATION)
        );
        assert_eq!(
            store
                .get_provider(&provider.name)
                .await
                .expect("provider")
                .spec,
            provider
        );
        assert_eq!(store.get_site(&site.name).await.expect("site").spec, site);
        // Everything else of the demo is there.
        for s in &sites {
            store.get_site(&s.name).await.expect("every demo site");
        }
        for p in &providers {
            store
                .get_provider(&p.name)
                .await
                .expect("every demo provider");
        }

        // After the first start the administrator changes an offering, another site and
        // an organisation, and gives a demo user another role.
        let mut offering = store
            .get_offering("nextcloud")
            .await
            .expect("nextcloud")
            .spec;
        offering.display_name = "Nextcloud (Landeslizenz)".into();
        offering.requires_approval = true;
        store
            .put_offering(ADMIN, &offering, now)
            .await
            .expect("put_offering");
        let mut other = sites
            .iter()
            .find(|s| s.name != site.name)
            .expect("a second site")
            .clone();
        other.capabilities.remove("ingress:nginx");
        store.put_site(ADMIN, &other, now).await.expect("put_site");
        let flensburg = store
            .find_organisation_by_key("010010000000")
            .await
            .expect("find")
            .expect("Flensburg");
        let renamed = OrganisationSpec {
            name: "Flensburg, Stadt (umbenannt)".into(),
            level: flensburg.level,
            ars: flensburg.ars.clone(),
            ags: flensburg.ags.clone(),
            parent: flensburg.parent.clone(),
            population: Some(1),
        };
        store
            .update_organisation(ADMIN, &flensburg.id, &renamed, now)
            .await
            .expect("update_organisation");
        let before = audit_head(&store).await;

        load(&store, dir.path(), charts, Some(&federation))
            .await
            .expect("restart");
        assert_eq!(
            store
                .get_offering("nextcloud")
                .await
                .expect("nextcloud")
                .spec,
            offering
        );
        assert_eq!(store.get_site(&other.name).await.expect("site").spec, other);
        assert_eq!(store.get_site(&site.name).await.expect("site").spec, site);
        let after = store
            .find_organisation_by_key("010010000000")
            .await
            .expect("find")
            .expect("Flensburg");
        assert_eq!(after.name, renamed.name);
        assert_eq!(after.population, Some(1));
        assert_eq!(audit_head(&store).await, before, "a restart writes nothing");
    }
}
