//! `verbund offering …`: the catalog; `publish` applies offerings and publishes the
//! versions of them that are not yet published.

use clap::{Args, Subcommand};
use reqwest::Method;
use serde::Deserialize;
use serde_json::Value;
use verbund_domain::catalog::{Offering, OfferingSpec, OfferingVersion, Package, VersionSpec};

use super::http::{segment, Api, ConnArgs};
use super::manifest::{Applier, FileArg, Manifest};
use super::output::{joined, opt, print_list, print_one};
use super::PageArgs;

#[derive(Debug, Args)]
pub struct OfferingArgs {
    #[command(flatten)]
    conn: ConnArgs,
    #[command(subcommand)]
    cmd: OfferingCommand,
}

#[derive(Debug, Subcommand)]
enum OfferingCommand {
    /// List offerings; all given filters must match.
    List {
        #[arg(long, value_parser = ["iaas", "paas", "saas"])]
        category: Option<String>,
        /// Id of the vendor organisation.
        #[arg(long)]
        vendor: Option<String>,
        /// OZG id of the service implemented, e.g. `10048`.
        #[arg(long)]
        ozg_id: Option<String>,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Show one offering.
    Get { name: String },
    /// List an offering's published versions, newest first.
    Versions { name: String },
    /// Create or update offerings and publish their new versions. Each entry is
    /// `{offering: {…}, versions: [{…}, …]}` or a bare offering; versions already
    /// published are skipped, the others are published in the order given.
    Publish(FileArg),
}

/// An entry of a publish file: an offering and the versions it should have.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Release {
    offering: OfferingSpec,
    #[serde(default)]
    versions: Vec<VersionSpec>,
}

const HEADERS: &[&str] = &[
    "NAME",
    "DISPLAY NAME",
    "CATEGORY",
    "VENDOR",
    "OZG",
    "LATEST",
    "PLANS",
];

fn row(o: &Offering) -> Vec<String> {
    let s = &o.spec;
    vec![
        s.name.clone(),
        s.display_name.clone(),
        s.category.as_str().to_string(),
        s.vendor.clone(),
        opt(s.ozg_id.as_deref()),
        opt(o.latest_version.as_deref()),
        joined(s.plans.iter().map(|p| p.name.clone())),
    ]
}

const VERSION_HEADERS: &[&str] = &["VERSION", "PUBLISHED", "PACKAGE", "CHANGELOG"];

fn version_row(v: &OfferingVersion) -> Vec<String> {
    let package = match &v.spec.package {
        Package::Helm {
            repository,
            chart,
            chart_version,
            ..
        } => {
            format!("helm {chart} {chart_version} from {repository}")
        }
        Package::Manifests { manifests, .. } => format!("{} manifests", manifests.len()),
    };
    vec![
        v.spec.version.clone(),
        v.published_at.format("%Y-%m-%d %H:%M:%S").to_string(),
        package,
        opt(v
            .spec
            .changelog
            .lines()
            .next()
            .filter(|l| !l.trim().is_empty())),
    ]
}

pub async fn run(a: OfferingArgs) -> anyhow::Result<()> {
    let format = a.conn.output;
    match a.cmd {
        OfferingCommand::List {
            category,
            vendor,
            ozg_id,
            page,
        } => {
            let api = Api::connect(&a.conn)?;
            let query = [
                ("category", category),
                ("vendor", vendor),
                ("ozg_id", ozg_id),
            ]
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, v)))
            .collect();
            let list = api
                .list::<Offering>("/offerings", query, page.limit, page.all)
                .await?;
            print_list(format, &list.items, list.next.as_deref(), HEADERS, row)
        }
        OfferingCommand::Get { name } => {
            let api = Api::connect(&a.conn)?;
            let o: Offering = api
                .get(&format!("/offerings/{}", segment(&name)), &[])
                .await?;
            print_one(format, &o, HEADERS, row)
        }
        OfferingCommand::Versions { name } => {
            let api = Api::connect(&a.conn)?;
            let vs: Vec<OfferingVersion> = api
                .get(&format!("/offerings/{}/versions", segment(&name)), &[])
                .await?;
            print_list(format, &vs, None, VERSION_HEADERS, version_row)
        }
        OfferingCommand::Publish(f) => publish(&a.conn, &f).await,
    }
}

async fn publish(conn: &ConnArgs, f: &FileArg) -> anyhow::Result<()> {
    let m = Manifest::read(&f.file)?;
    let releases = m
        .entries
        .iter()
        .map(|e| {
            if e.value.get("offering").is_some_and(Value::is_object) {
                m.convert::<Release>(e)
            } else {
                m.convert::<OfferingSpec>(e).map(|offering| Release {
                    offering,
                    versions: vec![],
                })
            }
        })
        .collect::<anyhow::Result<Vec<Release>>>()?;
    let api = Api::connect(conn)?;
    let mut applier = Applier::new(&m, conn.output);
    for (i, r) in releases.iter().enumerate() {
        let name = &r.offering.name;
        let label = format!("offering/{name}");
        let (outcome, answer) = match super::put_named(&api, "offerings", name, &r.offering).await {
            Ok(x) => x,
            Err(e) => return Err(applier.failed(i, &label, e)),
        };
        applier.applied(
            label.clone(),
            format!("{label} {}", outcome.as_str()),
            answer,
        )?;
        if r.versions.is_empty() {
            continue;
        }
        let path = format!("/offerings/{}/versions", segment(name));
        let published: Vec<OfferingVersion> = match api.get(&path, &[]).await {
            Ok(p) => p,
            Err(e) => return Err(applier.failed(i, &label, e)),
        };
        for v in &r.versions {
            let vlabel = format!("{label}@{}", v.version);
            if let Some(existing) = published.iter().find(|p| p.spec.version == v.version) {
                let note = if &existing.spec == v {
                    ""
                } else {
                    " (the file differs from it; a published version never changes)"
                };
                let answer = serde_json::to_value(existing).unwrap_or(Value::Null);
                applier.applied(
                    vlabel.clone(),
                    format!("{vlabel} already published{note}"),
                    answer,
                )?;
                continue;
            }
            match api.write::<_, Value>(Method::POST, &path, v).await {
                Ok((_, answer)) => {
                    applier.applied(vlabel.clone(), format!("{vlabel} published"), answer)?
                }
                Err(e) => return Err(applier.failed(i, &vlabel, e)),
            }
        }
    }
    applier.finish()
}
