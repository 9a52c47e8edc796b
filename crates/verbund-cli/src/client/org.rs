//! `verbund org …`: list, read and create organisations.

use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::Value;
use verbund_domain::directory::{Organisation, OrganisationSpec};

use super::http::{segment, Api, ConnArgs};
use super::manifest::{Applier, FileArg, Manifest};
use super::output::{opt, print_list, print_one};
use super::PageArgs;

#[derive(Debug, Args)]
pub struct OrgArgs {
    #[command(flatten)]
    conn: ConnArgs,
    #[command(subcommand)]
    cmd: OrgCommand,
}

#[derive(Debug, Subcommand)]
enum OrgCommand {
    /// List organisations; all given filters must match.
    List(ListArgs),
    /// Show one organisation by id, or by ARS/AGS if the argument is all digits.
    Get {
        #[arg(value_name = "ID_OR_KEY")]
        id_or_key: String,
    },
    /// Create the organisations in a file (parents before children).
    Create(FileArg),
}

#[derive(Debug, Args)]
struct ListArgs {
    #[arg(long, value_parser = ["bund", "land", "kreis", "gemeinde", "verband"])]
    level: Option<String>,
    /// Id of the parent organisation.
    #[arg(long)]
    parent: Option<String>,
    /// Two-digit Land key, e.g. `09` for Bayern.
    #[arg(long)]
    land: Option<String>,
    /// Prefix of the name (case-sensitive).
    #[arg(long)]
    name: Option<String>,
    /// Exact ARS or AGS.
    #[arg(long)]
    key: Option<String>,
    #[command(flatten)]
    page: PageArgs,
}

const HEADERS: &[&str] = &["ID", "LEVEL", "ARS", "AGS", "NAME", "POPULATION"];

fn row(o: &Organisation) -> Vec<String> {
    vec![
        o.id.clone(),
        o.level.as_str().to_string(),
        opt(o.ars.as_deref()),
        opt(o.ags.as_deref()),
        o.name.clone(),
        opt(o.population),
    ]
}

pub async fn run(a: OrgArgs) -> anyhow::Result<()> {
    let format = a.conn.output;
    match a.cmd {
        OrgCommand::List(l) => {
            let api = Api::connect(&a.conn)?;
            let query: Vec<(&str, String)> = [
                ("level", l.level),
                ("parent", l.parent),
                ("land", l.land),
                ("name", l.name),
                ("key", l.key),
            ]
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, v)))
            .collect();
            let list = api
                .list::<Organisation>("/organisations", query, l.page.limit, l.page.all)
                .await?;
            print_list(format, &list.items, list.next.as_deref(), HEADERS, row)
        }
        OrgCommand::Get { id_or_key } => {
            let api = Api::connect(&a.conn)?;
            if !id_or_key.is_empty() && id_or_key.bytes().all(|b| b.is_ascii_digit()) {
                let list = api
                    .list::<Organisation>(
                        "/organisations",
                        vec![("key", id_or_key.clone())],
                        None,
                        false,
                    )
                    .await?;
                match list.items.as_slice() {
                    [] => anyhow::bail!("no organisation has the ARS or AGS `{id_or_key}`"),
                    [one] => print_one(format, one, HEADERS, row),
                    many => print_list(format, many, None, HEADERS, row),
                }
            } else {
                let org: Organisation = api
                    .get(&format!("/organisations/{}", segment(&id_or_key)), &[])
                    .await?;
                print_one(format, &org, HEADERS, row)
            }
        }
        OrgCommand::Create(f) => {
            let m = Manifest::read(&f.file)?;
            let specs: Vec<OrganisationSpec> = m.objects()?;
            let api = Api::connect(&a.conn)?;
            let mut applier = Applier::new(&m, format);
            for (i, spec) in specs.iter().enumerate() {
                match api
                    .write::<_, Organisation>(Method::POST, "/organisations", spec)
                    .await
                {
                    Ok((_, org)) => {
                        let label = format!("organisation/{}", org.id);
                        let line =
                            format!("{label} created ({}, {})", org.name, org.level.as_str());
                        applier.applied(
                            label,
                            line,
                            serde_json::to_value(&org).unwrap_or(Value::Null),
                        )?;
                    }
                    Err(e) => {
                        return Err(applier.failed(i, &format!("organisation `{}`", spec.name), e))
                    }
                }
            }
            applier.finish()
        }
    }
}
