//! The API client behind `verbund org|provider|site|offering|user|token|render|rollout …` and
//! `verbund audit list`: talks to a running server over HTTP, never to the database.
//!
//! Each resource has its own module with its subcommands; `http` holds the connection
//! and error sentences, `manifest` reads `-f` files and applies them object by object,
//! `output` prints tables, JSON or YAML.

mod audit;
mod booking;
mod facts;
mod http;
mod manifest;
mod offering;
mod org;
mod output;
mod policy;
mod provider;
mod render;
mod rollout;
mod site;
mod template;
mod token;
mod trust;
mod user;

use clap::{Args, Subcommand};
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde_json::Value;

pub use audit::{audit_list, AuditListArgs};
pub use http::ConnArgs;
pub use output::{emit, print_data, Format, Table};

use http::{segment, Api};

/// The client's subcommands, one group per resource.
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Organisations: the directory of authorities (Bund, Länder, Kreise, Gemeinden).
    Org(org::OrgArgs),
    /// Providers: the legal entities that run data centers.
    Provider(provider::ProviderArgs),
    /// Sites: data centers and their Kubernetes clusters.
    Site(site::SiteArgs),
    /// Placement facts of providers and sites: who stated and approved them, and the
    /// operators' proposals a federation admin approves or rejects.
    Facts(facts::FactsArgs),
    /// The federation's trust list, sites' certification credentials (VC-JWT) and
    /// issuers' revocation lists.
    Trust(trust::TrustArgs),
    /// Offerings: the catalog, and the versions vendors publish.
    Offering(offering::OfferingArgs),
    /// Users and their roles.
    User(user::UserArgs),
    /// API tokens.
    Token(token::TokenArgs),
    /// Book an offering for an organisation; placement decides where it runs.
    Book(booking::BookArgs),
    /// Bookings: list, inspect, change, cancel, approve.
    Booking(booking::BookingArgs),
    /// Ask where a booking could run, and why not elsewhere.
    Placement(booking::PlacementArgs),
    /// Placement policies: federation rules, Land and organisation restrictions.
    Policy(policy::PolicyArgs),
    /// Templates (Nachnutzung): publish a booking's configuration, adopt one, take over
    /// its changes.
    Template(template::TemplateArgs),
    /// Show the desired state of a site (or one booking) exactly as it is committed.
    Render(render::RenderArgs),
    /// Staged rollouts of a new version: plan, start, watch, pause, resume, abort.
    Rollout(rollout::RolloutArgs),
}

pub async fn run(cmd: ClientCommand) -> anyhow::Result<()> {
    match cmd {
        ClientCommand::Org(a) => org::run(a).await,
        ClientCommand::Provider(a) => provider::run(a).await,
        ClientCommand::Site(a) => site::run(a).await,
        ClientCommand::Facts(a) => facts::run(a).await,
        ClientCommand::Trust(a) => trust::run(a).await,
        ClientCommand::Offering(a) => offering::run(a).await,
        ClientCommand::User(a) => user::run(a).await,
        ClientCommand::Token(a) => token::run(a).await,
        ClientCommand::Book(a) => booking::book(a).await,
        ClientCommand::Booking(a) => booking::booking(a).await,
        ClientCommand::Placement(a) => booking::placement(a).await,
        ClientCommand::Policy(a) => policy::run(a).await,
        ClientCommand::Template(a) => template::run(a).await,
        ClientCommand::Render(a) => render::run(a).await,
        ClientCommand::Rollout(a) => rollout::run(a).await,
    }
}

/// Page size and whether to follow the cursor through every page.
#[derive(Debug, Clone, Args)]
pub struct PageArgs {
    /// Items per page (1–1000; the server's default is 100).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub limit: Option<u32>,
    /// Fetch every page, not only the first.
    #[arg(long)]
    pub all: bool,
}

/// What an idempotent PUT did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Created,
    Configured,
    Unchanged,
    /// Placement facts an operator may only propose: they wait for a federation admin.
    Proposed,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Created => "created",
            Outcome::Configured => "configured",
            Outcome::Unchanged => "unchanged",
            Outcome::Proposed => {
                "placement facts proposed, waiting for a federation admin's approval"
            }
        }
    }
}

/// PUTs `spec` to `/{collection}/{name}` and tells created, configured, unchanged and
/// proposed apart: the server answers 201 for a new object, 202 with a proposal when an
/// operator's change touches placement facts, and leaves `updated_at` alone when nothing
/// changed.
async fn put_named<S: Serialize>(
    api: &Api,
    collection: &str,
    name: &str,
    spec: &S,
) -> anyhow::Result<(Outcome, Value)> {
    let path = format!("/{collection}/{}", segment(name));
    let before: Option<Value> = api.get_opt(&path).await?;
    let (status, after): (StatusCode, Value) = api.write(Method::PUT, &path, spec).await?;
    let outcome = if status == StatusCode::CREATED {
        Outcome::Created
    } else if status == StatusCode::ACCEPTED {
        Outcome::Proposed
    } else {
        match before {
            Some(b)
                if b.get("updated_at").is_some()
                    && b.get("updated_at") == after.get("updated_at") =>
            {
                Outcome::Unchanged
            }
            _ => Outcome::Configured,
        }
    };
    Ok((outcome, after))
}

/// Applies a file of named specs with PUT, one line per object.
async fn apply_named<S: Serialize + serde::de::DeserializeOwned>(
    conn: &ConnArgs,
    file: &manifest::FileArg,
    collection: &str,
    kind: &str,
    name_of: impl Fn(&S) -> &str,
) -> anyhow::Result<()> {
    let m = manifest::Manifest::read(&file.file)?;
    let specs: Vec<S> = m.objects()?;
    let api = Api::connect(conn)?;
    let mut applier = manifest::Applier::new(&m, conn.output);
    for (i, spec) in specs.iter().enumerate() {
        let label = format!("{kind}/{}", name_of(spec));
        match put_named(&api, collection, name_of(spec), spec).await {
            Ok((outcome, answer)) => {
                let line = match (outcome, answer.get("id").and_then(Value::as_str)) {
                    (Outcome::Proposed, Some(id)) => format!(
                        "{label}: placement facts proposed as fact-proposal/{id}, waiting for a federation admin's approval (the rest applied)"
                    ),
                    _ => format!("{label} {}", outcome.as_str()),
                };
                applier.applied(label.clone(), line, answer)?
            }
            Err(e) => return Err(applier.failed(i, &label, e)),
        }
    }
    applier.finish()
}
