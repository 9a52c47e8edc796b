//! `verbund demo`: the control plane with a demo federation — all 16 Länder, a sample of
//! real municipalities, example providers and sites, a catalog of real open-source
//! applications used in administration, and a few bookings of München and Flensburg
//! (placed on the first start only), whose desired state the repository then holds. Loading is idempotent: a restart loads nothing
//! twice, and what a user changed in the demo is only overwritten where the demo
//! defines it.

use std::path::Path;

use anyhow::Context;
use serde::Deserialize;
use verbund_api::issue_token;
use verbund_domain::account::{Membership, Role, UserSpec};
use verbund_domain::catalog::{OfferingSpec, VersionSpec};
use verbund_domain::directory::{
    KeyedOrganisation, Level, OrganisationFilter, OrganisationSpec, OzgService, ProviderSpec,
    SiteSpec,
};
use verbund_domain::page::PageRequest;
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
    load(&store, &args.store.data, &charts).await?;
    let extras = if no_simulation {
        crate::serve::Extras::None
    } else {
        crate::serve::Extras::SimulatedSites
    };
    crate::serve::serve(args, Some(store), extras).await
}

/// Loads the demo federation into the store; safe to call on every start. `charts` is
/// the Helm repository of the demo's own charts.
pub async fn load(store: &Store, data: &Path, charts: &str) -> anyhow::Result<()> {
    let now = chrono::Utc::now();
    let orgs: Vec<KeyedOrganisation> = parse("municipalities.yaml", MUNICIPALITIES)?;
    store
        .import_organisations(ACTOR, "demo-municipalities", &orgs, now)
        .await
        .context("loading the demo municipalities")?;
    let ozg: Vec<OzgService> = parse("ozg.yaml", OZG)?;
    store
        .import_ozg(ACTOR, "demo-ozg-sample", &ozg, now)
        .await?;
    let vendor = vendor_organisation(store, now).await?;
    let providers: Vec<ProviderSpec> = parse("providers.yaml", PROVIDERS)?;
    for p in &providers {
        store.put_provider(ACTOR, p, now).await?;
    }
    let sites: Vec<SiteSpec> = parse("sites.yaml", SITES)?;
    for s in &sites {
        store.put_site(ACTOR, s, now).await?;
    }
    let offerings: Vec<OfferingEntry> = parse(
        "offerings.yaml",
        &OFFERINGS.replace(CHARTS_PLACEHOLDER, charts.trim_end_matches('/')),
    )?;
    for entry in &offerings {
        let mut spec = entry.offering.clone();
        if spec.vendor == VENDOR_PLACEHOLDER {
            spec.vendor = vendor.clone();
        }
        store
            .put_offering(ACTOR, &spec, now)
            .await
            .with_context(|| format!("loading demo offering `{}`", spec.name))?;
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

/// A booking of `bookings.yaml`: the organisation by its official key.
#[derive(Debug, Deserialize)]
struct BookingEntry {
    organisation: String,
    offering: String,
    plan: String,
    #[serde(default)]
    config: serde_json::Value,
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
            organisation: organisation.id,
            offering: e.offering.clone(),
            plan: e.plan.clone(),
            config: e.config.clone(),
            channel: "stable".into(),
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
