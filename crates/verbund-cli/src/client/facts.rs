//! `verbund facts …`: the placement facts of a provider or a site with who stated and
//! approved each, and the operators' proposals that a federation admin other than the
//! proposer approves or rejects.

use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::json;
use verbund_domain::facts::{FactProposal, FactSheet, Facts, StatedFact};

use super::http::{segment, Api, ConnArgs};
use super::output::{emit_line, opt, print_data, print_list, print_one, Format};
use super::PageArgs;

#[derive(Debug, Args)]
pub struct FactsArgs {
    #[command(flatten)]
    conn: ConnArgs,
    #[command(subcommand)]
    cmd: FactsCommand,
}

#[derive(Debug, Subcommand)]
enum FactsCommand {
    /// Show a provider's placement facts, who stated and approved each, and its pending
    /// proposals.
    Provider { name: String },
    /// Show a site's placement facts, who stated and approved each, and its pending
    /// proposals.
    Site { name: String },
    /// List proposals of placement facts (operators see their own providers').
    List {
        /// Only proposals in this state: pending, approved or rejected.
        #[arg(long)]
        state: Option<String>,
        /// Only proposals concerning this provider or its sites.
        #[arg(long)]
        provider: Option<String>,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Show one proposal.
    Get { id: String },
    /// Approve a proposal (a federation admin other than its proposer); its facts apply.
    Approve { id: String },
    /// Reject a proposal; nothing changes.
    Reject {
        id: String,
        /// Why, for the proposer.
        #[arg(long)]
        reason: String,
    },
}

const PROPOSAL_HEADERS: &[&str] = &[
    "ID",
    "STATE",
    "OBJECT",
    "FACTS",
    "PROPOSED BY",
    "DECIDED BY",
];

fn when(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M").to_string()
}

fn facts_cell(f: &Facts) -> String {
    f.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn proposal_row(p: &FactProposal) -> Vec<String> {
    vec![
        p.id.clone(),
        p.state.as_str().to_string(),
        format!("{}/{}", p.kind.as_str(), p.object),
        facts_cell(&p.facts),
        format!("{} at {}", p.proposed_by, when(&p.proposed_at)),
        opt(p.decided_by.as_ref().map(|d| {
            format!(
                "{d} at {}",
                p.decided_at.as_ref().map_or_else(String::new, when)
            )
        })),
    ]
}

const FACT_HEADERS: &[&str] = &["FACT", "VALUE", "STATED BY", "APPROVED BY"];

fn fact_row(f: &StatedFact) -> Vec<String> {
    vec![
        f.field.clone(),
        f.value.to_string(),
        match (&f.stated_by, &f.stated_at) {
            (Some(by), Some(at)) => format!("{by} at {}", when(at)),
            _ => "- (before provenance was recorded)".to_string(),
        },
        opt(f.approved_by.as_ref().map(|by| {
            format!(
                "{by} at {}",
                f.approved_at.as_ref().map_or_else(String::new, when)
            )
        })),
    ]
}

fn print_sheet(format: Format, sheet: &FactSheet) -> anyhow::Result<()> {
    if format != Format::Table {
        return print_data(format, sheet);
    }
    print_list(format, &sheet.facts, None, FACT_HEADERS, fact_row)?;
    if sheet.pending.is_empty() {
        return emit_line("no pending proposals");
    }
    emit_line("pending proposals:")?;
    print_list(format, &sheet.pending, None, PROPOSAL_HEADERS, proposal_row)
}

pub async fn run(a: FactsArgs) -> anyhow::Result<()> {
    let format = a.conn.output;
    let api = Api::connect(&a.conn)?;
    match a.cmd {
        FactsCommand::Provider { name } => {
            let sheet: FactSheet = api
                .get(&format!("/providers/{}/facts", segment(&name)), &[])
                .await?;
            print_sheet(format, &sheet)
        }
        FactsCommand::Site { name } => {
            let sheet: FactSheet = api
                .get(&format!("/sites/{}/facts", segment(&name)), &[])
                .await?;
            print_sheet(format, &sheet)
        }
        FactsCommand::List {
            state,
            provider,
            page,
        } => {
            let mut query = Vec::new();
            if let Some(s) = state {
                query.push(("state", s));
            }
            if let Some(p) = provider {
                query.push(("provider", p));
            }
            let list = api
                .list::<FactProposal>("/fact-proposals", query, page.limit, page.all)
                .await?;
            print_list(
                format,
                &list.items,
                list.next.as_deref(),
                PROPOSAL_HEADERS,
                proposal_row,
            )
        }
        FactsCommand::Get { id } => {
            let p: FactProposal = api
                .get(&format!("/fact-proposals/{}", segment(&id)), &[])
                .await?;
            print_one(format, &p, PROPOSAL_HEADERS, proposal_row)
        }
        FactsCommand::Approve { id } => {
            let (_, p): (_, FactProposal) = api
                .write(
                    Method::POST,
                    &format!("/fact-proposals/{}/approve", segment(&id)),
                    &json!({}),
                )
                .await?;
            if format == Format::Table {
                emit_line(&format!(
                    "fact-proposal/{} approved: {}/{} now has {} (proposed by {})",
                    p.id,
                    p.kind.as_str(),
                    p.object,
                    facts_cell(&p.facts),
                    p.proposed_by
                ))
            } else {
                print_data(format, &p)
            }
        }
        FactsCommand::Reject { id, reason } => {
            let (_, p): (_, FactProposal) = api
                .write(
                    Method::POST,
                    &format!("/fact-proposals/{}/reject", segment(&id)),
                    &json!({"reason": reason}),
                )
                .await?;
            if format == Format::Table {
                emit_line(&format!("fact-proposal/{} rejected", p.id))
            } else {
                print_data(format, &p)
            }
        }
    }
}
