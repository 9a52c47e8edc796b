//! `verbund site …`: list, read and apply sites.

use clap::{Args, Subcommand};
use verbund_domain::directory::{Delivery, Site, SiteSpec};

use super::http::{segment, Api, ConnArgs};
use super::manifest::FileArg;
use super::output::{joined, print_list, print_one};
use super::PageArgs;

#[derive(Debug, Args)]
pub struct SiteArgs {
    #[command(flatten)]
    conn: ConnArgs,
    #[command(subcommand)]
    cmd: SiteCommand,
}

#[derive(Debug, Subcommand)]
enum SiteCommand {
    /// List sites.
    List {
        /// Only sites of this provider.
        #[arg(long)]
        provider: Option<String>,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Show one site.
    Get { name: String },
    /// Create or update the sites in a file (idempotent).
    Apply(FileArg),
}

const HEADERS: &[&str] = &[
    "NAME",
    "PROVIDER",
    "REGION",
    "CITY",
    "K8S",
    "DELIVERY",
    "CERTIFICATIONS",
];

fn row(s: &Site) -> Vec<String> {
    let s = &s.spec;
    let delivery = match s.delivery {
        Delivery::Flux => "flux",
        Delivery::Argocd => "argocd",
        Delivery::Agent => "agent",
    };
    vec![
        s.name.clone(),
        s.provider.clone(),
        s.location.region.clone(),
        s.location.city.clone(),
        s.kubernetes_version.clone(),
        delivery.to_string(),
        joined(s.certifications.iter().map(|c| match &c.level {
            Some(l) => format!("{} {l} until {}", c.scheme, c.valid_until),
            None => format!("{} until {}", c.scheme, c.valid_until),
        })),
    ]
}

pub async fn run(a: SiteArgs) -> anyhow::Result<()> {
    let format = a.conn.output;
    match a.cmd {
        SiteCommand::List { provider, page } => {
            let api = Api::connect(&a.conn)?;
            let query = provider.map(|p| ("provider", p)).into_iter().collect();
            let list = api
                .list::<Site>("/sites", query, page.limit, page.all)
                .await?;
            print_list(format, &list.items, list.next.as_deref(), HEADERS, row)
        }
        SiteCommand::Get { name } => {
            let api = Api::connect(&a.conn)?;
            let s: Site = api.get(&format!("/sites/{}", segment(&name)), &[]).await?;
            print_one(format, &s, HEADERS, row)
        }
        SiteCommand::Apply(f) => {
            super::apply_named(&a.conn, &f, "sites", "site", |s: &SiteSpec| &s.name).await
        }
    }
}
