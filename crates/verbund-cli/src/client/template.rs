//! `verbund template …`: Nachnutzung from the command line — publish a booking's
//! configuration as a template, list and read the templates one may see, adopt one (a
//! booking pre-filled from it, `--set` changing what differs), and take over what a
//! template changed since a booking adopted it.

use clap::{Args, Subcommand, ValueEnum};
use reqwest::Method;
use serde_json::{json, Value};
use verbund_domain::booking::Booking;
use verbund_domain::template::Template;

use super::booking::{organisation_id, read_config, set_path};
use super::http::{segment, Api, ConnArgs};
use super::output::{print_data, print_list, print_one, Format};
use super::PageArgs;

#[derive(Debug, Args)]
pub struct TemplateArgs {
    #[command(flatten)]
    conn: ConnArgs,
    #[command(subcommand)]
    cmd: TemplateCommand,
}

/// Who may see and adopt a template.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Visibility {
    /// The organisations of the publisher's Land.
    Land,
    /// Every organisation.
    Everyone,
}

/// What a template says of itself.
#[derive(Debug, Args)]
struct Published {
    /// The booking whose configuration and plan it carries (one of your organisation's).
    #[arg(long)]
    booking: String,
    /// Its short name among your organisation's templates, e.g. `hundesteuer-muenchen`.
    #[arg(long)]
    name: String,
    /// Its title.
    #[arg(long)]
    title: String,
    #[arg(long, default_value = "")]
    description: String,
    #[arg(long, value_enum, default_value = "land")]
    visibility: Visibility,
}

impl Published {
    fn body(&self) -> Value {
        json!({
            "booking": self.booking,
            "name": self.name,
            "display_name": self.title,
            "description": self.description,
            "visibility": match self.visibility {
                Visibility::Land => "land",
                Visibility::Everyone => "everyone",
            },
        })
    }
}

#[derive(Debug, Subcommand)]
enum TemplateCommand {
    /// List the templates you may see (for everyone, for your Land, your own).
    List {
        #[arg(long)]
        offering: Option<String>,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Show one template at its current version.
    Get { id: String },
    /// Publish a booking's configuration (without secrets) and plan as a template.
    Publish(Published),
    /// Change a template: a new version from the booking as it is now.
    Update {
        id: String,
        #[command(flatten)]
        published: Published,
    },
    /// Book the template's offering for an organisation, pre-filled from it.
    Adopt {
        id: String,
        /// The adopting organisation: its id, or its AGS/ARS.
        #[arg(long = "org")]
        organisation: String,
        /// The whole configuration as a YAML or JSON file (default: the template's).
        #[arg(long, value_name = "FILE")]
        config: Option<std::path::PathBuf>,
        /// Change one value of the template's configuration, e.g. `--set municipality=Haar`.
        #[arg(long = "set", value_name = "PATH=VALUE")]
        set: Vec<String>,
        /// Another plan than the template's.
        #[arg(long)]
        plan: Option<String>,
    },
    /// Take over what a booking's template changed since the version it adopted.
    TakeOver { booking: String },
}

const HEADERS: &[&str] = &[
    "ID",
    "OFFERING",
    "NAME",
    "TITLE",
    "VISIBILITY",
    "VERSION",
    "ADOPTERS",
];

fn row(t: &Template) -> Vec<String> {
    vec![
        t.id.clone(),
        t.offering.clone(),
        t.name.clone(),
        t.display_name.clone(),
        match t.visibility {
            verbund_domain::template::Visibility::Land => "land".into(),
            verbund_domain::template::Visibility::Everyone => "everyone".into(),
        },
        t.version.to_string(),
        t.adopters.to_string(),
    ]
}

pub async fn run(a: TemplateArgs) -> anyhow::Result<()> {
    let format = a.conn.output;
    let api = Api::connect(&a.conn)?;
    match a.cmd {
        TemplateCommand::List { offering, page } => {
            let query = offering.map(|o| ("offering", o)).into_iter().collect();
            let list = api
                .list::<Template>("/templates", query, page.limit, page.all)
                .await?;
            print_list(format, &list.items, list.next.as_deref(), HEADERS, row)
        }
        TemplateCommand::Get { id } => {
            let t: Template = api
                .get(&format!("/templates/{}", segment(&id)), &[])
                .await?;
            print_one(format, &t, HEADERS, row)
        }
        TemplateCommand::Publish(p) => {
            let (_, t): (_, Template) = api.write(Method::POST, "/templates", &p.body()).await?;
            print_one(format, &t, HEADERS, row)
        }
        TemplateCommand::Update { id, published } => {
            let (_, t): (_, Template) = api
                .write(
                    Method::PUT,
                    &format!("/templates/{}", segment(&id)),
                    &published.body(),
                )
                .await?;
            print_one(format, &t, HEADERS, row)
        }
        TemplateCommand::Adopt {
            id,
            organisation,
            config,
            set,
            plan,
        } => {
            let t: Template = api
                .get(&format!("/templates/{}", segment(&id)), &[])
                .await?;
            let mut config = match &config {
                Some(p) => read_config(p)?,
                None => t.config.clone(),
            };
            if !set.is_empty() {
                let offering: Value = api
                    .get(&format!("/offerings/{}", segment(&t.offering)), &[])
                    .await?;
                let schema = offering.get("config_schema").unwrap_or(&Value::Null);
                for s in &set {
                    set_path(&mut config, s, schema)?;
                }
            }
            let body = json!({
                "organisation": organisation_id(&api, &organisation).await?,
                "config": config,
                "plan": plan,
            });
            let key = super::http::idempotency_key();
            let (_, adopted): (_, Value) = api
                .write_idempotent(
                    Method::POST,
                    &format!("/templates/{}/adopt", segment(&id)),
                    &body,
                    &key,
                )
                .await?;
            if format != Format::Table {
                return print_data(format, &adopted);
            }
            let b = adopted.get("booking").unwrap_or(&Value::Null);
            let differences: Vec<&str> = adopted
                .get("differences")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            super::output::emit_line(&format!(
                "booking/{} {}{}; differs from the template at: {}",
                b["id"].as_str().unwrap_or("?"),
                b["state"].as_str().unwrap_or("?"),
                b["site"]
                    .as_str()
                    .map(|s| format!(" on site {s}"))
                    .unwrap_or_default(),
                if differences.is_empty() {
                    "nothing".to_string()
                } else {
                    differences.join(", ")
                }
            ))
        }
        TemplateCommand::TakeOver { booking } => {
            let (_, b): (_, Booking) = api
                .write(
                    Method::POST,
                    &format!("/bookings/{}/template/take-over", segment(&booking)),
                    &json!({}),
                )
                .await?;
            print_data(format, &b)
        }
    }
}
