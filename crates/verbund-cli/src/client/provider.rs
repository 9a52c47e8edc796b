//! `verbund provider …`: list, read and apply providers.

use clap::{Args, Subcommand};
use verbund_domain::directory::{Provider, ProviderSpec};

use super::http::{segment, Api, ConnArgs};
use super::manifest::FileArg;
use super::output::{joined, print_list, print_one};
use super::PageArgs;

#[derive(Debug, Args)]
pub struct ProviderArgs {
    #[command(flatten)]
    conn: ConnArgs,
    #[command(subcommand)]
    cmd: ProviderCommand,
}

#[derive(Debug, Subcommand)]
enum ProviderCommand {
    /// List providers.
    List(PageArgs),
    /// Show one provider.
    Get { name: String },
    /// Create or update the providers in a file (idempotent).
    Apply(FileArg),
}

const HEADERS: &[&str] = &[
    "NAME",
    "DISPLAY NAME",
    "LEGAL FORM",
    "PUBLIC LAW",
    "SEAT",
    "JURISDICTIONS",
];

fn row(p: &Provider) -> Vec<String> {
    let s = &p.spec;
    let mut jurisdictions: Vec<String> = s.jurisdictions.iter().cloned().collect();
    jurisdictions.extend(
        s.parent_companies
            .iter()
            .map(|c| format!("{} (via {})", c.jurisdiction, c.name)),
    );
    vec![
        s.name.clone(),
        s.display_name.clone(),
        s.legal_form.clone(),
        if s.public_law { "yes" } else { "no" }.to_string(),
        format!("{}, {}", s.seat.city, s.seat.country),
        joined(jurisdictions),
    ]
}

pub async fn run(a: ProviderArgs) -> anyhow::Result<()> {
    let format = a.conn.output;
    match a.cmd {
        ProviderCommand::List(page) => {
            let api = Api::connect(&a.conn)?;
            let list = api
                .list::<Provider>("/providers", vec![], page.limit, page.all)
                .await?;
            print_list(format, &list.items, list.next.as_deref(), HEADERS, row)
        }
        ProviderCommand::Get { name } => {
            let api = Api::connect(&a.conn)?;
            let p: Provider = api
                .get(&format!("/providers/{}", segment(&name)), &[])
                .await?;
            print_one(format, &p, HEADERS, row)
        }
        ProviderCommand::Apply(f) => {
            super::apply_named(&a.conn, &f, "providers", "provider", |s: &ProviderSpec| {
                &s.name
            })
            .await
        }
    }
}
