//! `verbund policy …`: the placement policies in force, and Land and organisation
//! restrictions submitted from files.

use clap::{Args, Subcommand};
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::http::{segment, Api, ConnArgs};
use super::manifest::{Applier, FileArg, Manifest};
use super::output::{opt, print_list, print_one};

#[derive(Debug, Args)]
pub struct PolicyArgs {
    #[command(flatten)]
    conn: ConnArgs,
    #[command(subcommand)]
    cmd: PolicyCommand,
}

#[derive(Debug, Subcommand)]
enum PolicyCommand {
    /// List the documents in force (for one organisation: the federation's, its
    /// ancestors' and its own).
    List {
        #[arg(long = "org")]
        organisation: Option<String>,
    },
    /// Show a document, e.g. `federation:sovereignty`.
    Get { id: String },
    /// Every version of a document.
    Versions { id: String },
    /// Submit the documents in a file: `{name, layer, owner, text}` each.
    Apply(FileArg),
    /// Withdraw a document (its history stays).
    Delete { id: String },
}

/// What the API returns for a policy document.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct PolicyView {
    id: String,
    name: String,
    layer: String,
    #[serde(default)]
    owner: Option<String>,
    text: String,
    version: i64,
    deleted: bool,
    created_by: String,
}

/// What a file holds for one document.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Submission {
    name: String,
    layer: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    owner: Option<String>,
    text: String,
}

const HEADERS: &[&str] = &["ID", "LAYER", "OWNER", "VERSION", "BY"];

fn row(p: &PolicyView) -> Vec<String> {
    vec![
        p.id.clone(),
        p.layer.clone(),
        opt(p.owner.clone()),
        p.version.to_string(),
        p.created_by.clone(),
    ]
}

pub async fn run(a: PolicyArgs) -> anyhow::Result<()> {
    let format = a.conn.output;
    let api = Api::connect(&a.conn)?;
    match a.cmd {
        PolicyCommand::List { organisation } => {
            let query: Vec<(&str, String)> = organisation
                .map(|o| ("organisation", o))
                .into_iter()
                .collect();
            let list: Vec<PolicyView> = api.get("/policies", &query).await?;
            print_list(format, &list, None, HEADERS, row)
        }
        PolicyCommand::Get { id } => {
            let p: PolicyView = api.get(&format!("/policies/{}", segment(&id)), &[]).await?;
            if format == super::output::Format::Table {
                return super::output::emit(&p.text);
            }
            print_one(format, &p, HEADERS, row)
        }
        PolicyCommand::Versions { id } => {
            let list: Vec<PolicyView> = api
                .get(&format!("/policies/{}/versions", segment(&id)), &[])
                .await?;
            print_list(format, &list, None, HEADERS, row)
        }
        PolicyCommand::Apply(file) => {
            let m = Manifest::read(&file.file)?;
            let subs: Vec<Submission> = m.objects()?;
            let mut applier = Applier::new(&m, format);
            for (i, s) in subs.iter().enumerate() {
                let label = format!("policy/{}", s.name);
                match api.write::<_, Value>(Method::POST, "/policies", s).await {
                    Ok((_, answer)) => {
                        let line = format!(
                            "policy/{} version {}",
                            answer.get("id").and_then(Value::as_str).unwrap_or("?"),
                            answer.get("version").and_then(Value::as_i64).unwrap_or(0)
                        );
                        applier.applied(label, line, answer)?
                    }
                    Err(e) => return Err(applier.failed(i, &label, e)),
                }
            }
            applier.finish()
        }
        PolicyCommand::Delete { id } => {
            let p: PolicyView = api.delete(&format!("/policies/{}", segment(&id))).await?;
            print_one(format, &p, HEADERS, row)
        }
    }
}
