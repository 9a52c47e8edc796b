//! `verbund book …`, `verbund booking …` and `verbund placement explain`: book
//! offerings, follow bookings through their lifecycle, and ask where one may run.

use anyhow::Context;
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{json, Value};
use verbund_domain::booking::{Booking, BookingPatch};
use verbund_domain::capacity::WindowSpec;
use verbund_domain::directory::Organisation;
use verbund_domain::ending::{EndingSpec, ExportOutcome, ExportTarget};
use verbund_domain::page::Page;

use super::http::{segment, Api, ConnArgs};
use super::output::{opt, print_data, print_list, print_one, Format, Table};
use super::PageArgs;

/// `verbund book`: book an offering for an organisation.
#[derive(Debug, Args)]
pub struct BookArgs {
    #[command(flatten)]
    conn: ConnArgs,
    /// The booking organisation: its id, or its AGS/ARS (e.g. `09162000`).
    #[arg(long = "org")]
    organisation: String,
    #[arg(long)]
    offering: String,
    #[arg(long)]
    plan: String,
    /// Tenant configuration as a YAML or JSON file (`-` for stdin).
    #[arg(long, value_name = "FILE")]
    config: Option<std::path::PathBuf>,
    /// Set one configuration value, e.g. `--set domain=cloud.example.de` or
    /// `--set contact.email=it@example.de` (repeatable; read as the offering's
    /// configuration schema wants it: text for a string, else numbers and booleans parsed).
    #[arg(long = "set", value_name = "PATH=VALUE")]
    set: Vec<String>,
    /// `stable`, `pinned:<version>` or `window:<days> <from>-<to>`.
    #[arg(long, default_value = "stable")]
    channel: String,
    /// A capacity window: first and last day (German local time) and the plan that
    /// holds between them, e.g. `--window 2027-03-01..2027-05-31=l` (repeatable).
    #[arg(long = "window", value_name = "FROM..TO=PLAN")]
    windows: Vec<WindowSpec>,
    #[command(flatten)]
    ending: EndingArgs,
    /// Bind a dependency to the organisation's running booking of it, e.g.
    /// `--bind keycloak=<booking id>` (repeatable): the booking goes to its site.
    #[arg(long = "bind", value_name = "OFFERING=BOOKING")]
    bind: Vec<String>,
    /// Create a dependency with the booking, configured from a YAML or JSON file, e.g.
    /// `--with keycloak=realm.yaml` (repeatable; optionally `keycloak:m=realm.yaml` for
    /// its plan `m`).
    #[arg(long = "with", value_name = "OFFERING[:PLAN]=FILE")]
    with: Vec<String>,
    /// The request's `Idempotency-Key` (default: a new random one). The command sends
    /// it again when an answer is lost; pass the key a failed command named to retry
    /// it later without booking twice (keys count for 24 hours).
    #[arg(long, value_name = "KEY")]
    idempotency_key: Option<String>,
}

/// A temporary booking's end: both or neither.
#[derive(Debug, Args)]
struct EndingArgs {
    /// The last day the booking runs (German local time), e.g. `2027-06-30`; then its
    /// data is exported to `--export-to` and it is torn down.
    #[arg(long, value_name = "DATE", requires = "export_to")]
    ends_on: Option<chrono::NaiveDate>,
    /// Where its data is exported at the end: an S3-compatible bucket as one address,
    /// e.g. `https://s3.stadt.de/bucket/prefix/`.
    #[arg(long, value_name = "URL", requires = "ends_on")]
    export_to: Option<ExportTarget>,
}

impl EndingArgs {
    fn spec(self) -> Option<EndingSpec> {
        Some(EndingSpec {
            ends_on: self.ends_on?,
            export_to: self.export_to?,
        })
    }
}

#[derive(Debug, Args)]
pub struct BookingArgs {
    #[command(flatten)]
    conn: ConnArgs,
    #[command(subcommand)]
    cmd: BookingCommand,
}

#[derive(Debug, Subcommand)]
enum BookingCommand {
    /// List the bookings you may see.
    List {
        /// Organisation id or AGS/ARS.
        #[arg(long = "org")]
        organisation: Option<String>,
        #[arg(long)]
        offering: Option<String>,
        #[arg(long)]
        site: Option<String>,
        #[arg(long)]
        state: Option<String>,
        /// Only bookings whose placement no longer complies with the policies.
        #[arg(long)]
        noncompliant: bool,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Show one booking.
    Get { id: String },
    /// Show why a booking was placed where it is (or rejected).
    Placement { id: String },
    /// Change plan, configuration or update channel.
    Update {
        id: String,
        #[arg(long)]
        plan: Option<String>,
        #[arg(long, value_name = "FILE")]
        config: Option<std::path::PathBuf>,
        #[arg(long)]
        channel: Option<String>,
        /// The capacity windows ahead, replacing those not begun, e.g.
        /// `--window 2027-03-01..2027-05-31=l` (repeatable; a window that runs stays).
        #[arg(long = "window", value_name = "FROM..TO=PLAN")]
        windows: Vec<WindowSpec>,
        /// Remove the capacity windows not begun.
        #[arg(long, conflicts_with = "windows")]
        no_windows: bool,
        /// A new last day and export target (also makes a booking temporary).
        #[command(flatten)]
        ending: EndingArgs,
    },
    /// End a booking now: its data is exported (to its own target, or `--export-to`),
    /// and it is torn down once its site reports the export verified.
    End {
        id: String,
        /// Where its data is exported, e.g. `https://s3.stadt.de/bucket/prefix/`
        /// (needed for a booking that was not booked for a time).
        #[arg(long, value_name = "URL")]
        export_to: Option<ExportTarget>,
    },
    /// Start a failed data export again (a new attempt with a Job of its own).
    RetryExport { id: String },
    /// Cancel a booking (its data is kept for the offering's retention period).
    Cancel { id: String },
    /// List the running instances of a shared offering that take tenants.
    Instances { offering: String },
    /// Become a tenant of a shared instance: a tenancy of the organisation, on the
    /// instance's site if the organisation's policies allow it.
    Join {
        /// The instance's booking id (see `verbund booking instances`).
        instance: String,
        /// The tenant organisation: its id, or its AGS/ARS.
        #[arg(long = "org")]
        organisation: String,
        /// The shared offering (its tenant schema types `--set` values).
        #[arg(long)]
        offering: String,
        /// The tenant configuration as a YAML or JSON file (`-` for stdin).
        #[arg(long, value_name = "FILE")]
        config: Option<std::path::PathBuf>,
        /// Set one value of the tenant configuration, e.g. `--set kennung=flensburg`.
        #[arg(long = "set", value_name = "PATH=VALUE")]
        set: Vec<String>,
    },
    /// List a shared instance's tenancies (its operator's view).
    Tenants {
        id: String,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Approve a booking that awaits approval (federation admins).
    Approve { id: String },
    /// Refuse a booking that awaits approval.
    Reject {
        id: String,
        #[arg(long)]
        reason: String,
    },
}

#[derive(Debug, Args)]
pub struct PlacementArgs {
    #[command(flatten)]
    conn: ConnArgs,
    #[command(subcommand)]
    cmd: PlacementCommand,
}

#[derive(Debug, Subcommand)]
enum PlacementCommand {
    /// Where could the organisation book the offering, and why not elsewhere? Books nothing.
    Explain {
        #[arg(long = "org")]
        organisation: String,
        #[arg(long)]
        offering: String,
        #[arg(long)]
        plan: String,
    },
}

const HEADERS: &[&str] = &[
    "ID",
    "OFFERING",
    "PLAN",
    "STATE",
    "SITE",
    "VERSION",
    "CHANNEL",
    "COMPLIANT",
];

const INSTANCE_HEADERS: &[&str] = &[
    "INSTANCE", "OPERATOR", "SITE", "STATE", "VERSION", "TENANTS",
];

fn row(b: &Booking) -> Vec<String> {
    vec![
        b.id.clone(),
        b.offering.clone(),
        b.plan.clone(),
        match &b.undeliverable {
            Some(_) => format!("{} (undeliverable)", b.state),
            None => b.state.to_string(),
        },
        opt(b.site.clone()),
        opt(b.version.clone()),
        b.channel.clone(),
        match &b.compliance {
            Some(c) if !c.compliant => format!("no → {}", opt(c.proposed_site.clone())),
            _ => "yes".into(),
        },
    ]
}

/// A temporary booking's end and export, in a sentence or two (tables only).
fn print_ending(format: Format, b: &Booking) {
    let (Format::Table, Some(e)) = (format, &b.ending) else {
        return;
    };
    println!(
        "\nEnds after {}; its data is exported to {}",
        e.ends_on,
        e.export_to.url()
    );
    if let Some(run) = &e.export {
        let state = match &run.outcome {
            ExportOutcome::Running => "running".to_string(),
            ExportOutcome::Verified { sha256, bytes, .. } => {
                format!("verified: {bytes} bytes, SHA-256 {sha256}")
            }
            ExportOutcome::Failed { reason, .. } => format!(
                "failed: {reason}\nNothing is torn down; try again with `verbund booking retry-export {}`.",
                b.id
            ),
        };
        println!(
            "Export {} (Job {}, object {}): {state}",
            run.attempt,
            run.job(),
            run.object
        );
    }
}

/// An organisation id, looked up by key when the argument is all digits.
pub(super) async fn organisation_id(api: &Api, arg: &str) -> anyhow::Result<String> {
    if !arg.is_empty() && arg.bytes().all(|b| b.is_ascii_digit()) {
        let page: Page<Organisation> = api
            .get("/organisations", &[("key", arg.to_string())])
            .await?;
        return page
            .items
            .into_iter()
            .next()
            .map(|o| o.id)
            .with_context(|| format!("no organisation has the key `{arg}`"));
    }
    Ok(arg.to_string())
}

pub(super) fn read_config(path: &std::path::Path) -> anyhow::Result<Value> {
    let text = if path.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin())
            .context("cannot read the configuration from stdin")?
    } else {
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?
    };
    serde_yaml_ng::from_str(&text)
        .with_context(|| format!("{} is not valid YAML or JSON", path.display()))
}

/// Applies `a.b.c=value` to a JSON object. The value is read as the offering's
/// configuration schema wants it at that path: text where it wants a string (so that
/// `municipality=14522150` stays the key it is), otherwise as a YAML scalar (numbers,
/// booleans, `null`), and as text when that fails.
pub(super) fn set_path(config: &mut Value, assignment: &str, schema: &Value) -> anyhow::Result<()> {
    let (path, raw) = assignment
        .split_once('=')
        .with_context(|| format!("`--set {assignment}` needs the form PATH=VALUE"))?;
    let parts: Vec<&str> = path.split('.').collect();
    let value = if wants_text(schema_at(schema, &parts)) {
        Value::String(raw.to_string())
    } else {
        serde_yaml_ng::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_string()))
    };
    let mut cur = config;
    for (i, part) in parts.iter().enumerate() {
        if part.is_empty() {
            anyhow::bail!("`--set {assignment}`: the path has an empty segment");
        }
        let obj = cur.as_object_mut().with_context(|| {
            let walked: Vec<&str> = parts.iter().take(i).copied().collect();
            format!(
                "`--set {assignment}`: `{}` is not an object",
                walked.join(".")
            )
        })?;
        if i == parts.len() - 1 {
            obj.insert((*part).to_string(), value);
            return Ok(());
        }
        cur = obj.entry((*part).to_string()).or_insert_with(|| json!({}));
    }
    Ok(())
}

/// The schema of the value at `path` (object properties, then `additionalProperties`),
/// if the schema says.
fn schema_at<'s>(schema: &'s Value, path: &[&str]) -> Option<&'s Value> {
    path.iter().try_fold(schema, |s, part| {
        s.get("properties")
            .and_then(|p| p.get(*part))
            .or_else(|| s.get("additionalProperties").filter(|a| a.is_object()))
    })
}

/// Whether a value with this schema is text only: its `type` is `string` (or a list of
/// types with `string` and no number or boolean), or it is an enum of strings only.
fn wants_text(schema: Option<&Value>) -> bool {
    let Some(schema) = schema else {
        return false;
    };
    let scalar = ["number", "integer", "boolean", "null"];
    match schema.get("type") {
        Some(Value::String(t)) => t == "string",
        Some(Value::Array(types)) => {
            types.iter().any(|t| t == "string")
                && !types
                    .iter()
                    .any(|t| t.as_str().is_some_and(|t| scalar.contains(&t)))
        }
        _ => schema
            .get("enum")
            .and_then(Value::as_array)
            .is_some_and(|e| !e.is_empty() && e.iter().all(Value::is_string)),
    }
}

fn print_decision(format: Format, d: &Value) -> anyhow::Result<()> {
    if format != Format::Table {
        return print_data(format, d);
    }
    let mut t = Table::new(&["RANK", "SITE", "PROVIDER", "REGION", "VERDICT"]);
    for c in d["candidates"].as_array().into_iter().flatten() {
        let reasons: Vec<String> = c["reasons"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| match r["kind"].as_str() {
                Some("forbidden-by") => format!(
                    "forbidden: {} ({})",
                    r["description"].as_str().unwrap_or(""),
                    r["policy"].as_str().unwrap_or("")
                ),
                Some("missing-capability") => {
                    format!("lacks `{}`", r["capability"].as_str().unwrap_or(""))
                }
                Some("kubernetes-too-old") => format!(
                    "Kubernetes {} < {}",
                    r["site"].as_str().unwrap_or(""),
                    r["required"].as_str().unwrap_or("")
                ),
                Some("insufficient-capacity") => "not enough free capacity".into(),
                Some("preflight-failed") => format!(
                    "failed its preflight: {}",
                    r["failures"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(" — ")
                ),
                Some("not-permitted") => "no policy permits it".into(),
                Some("same-land") => "in the organisation's Land".into(),
                Some("contracted-provider") => "contracted provider".into(),
                Some(other) => other.to_string(),
                None => String::new(),
            })
            .collect();
        let verdict = if c["allowed"].as_bool() == Some(true) {
            format!(
                "allowed{}",
                if reasons.is_empty() {
                    String::new()
                } else {
                    format!(": {}", reasons.join(", "))
                }
            )
        } else {
            format!("not allowed: {}", reasons.join("; "))
        };
        t.row(vec![
            c["rank"]
                .as_u64()
                .map(|r| r.to_string())
                .unwrap_or_else(|| "-".into()),
            c["site"].as_str().unwrap_or("").into(),
            c["provider"].as_str().unwrap_or("").into(),
            c["region"].as_str().unwrap_or("").into(),
            verdict,
        ]);
    }
    super::output::emit(&t.to_string())
}

/// `--bind OFFERING=BOOKING` and `--with OFFERING[:PLAN]=FILE` as the booking's
/// `dependencies`.
fn dependency_choices(bind: &[String], with: &[String]) -> anyhow::Result<Value> {
    let mut out = serde_json::Map::new();
    let split = |flag: &str, s: &str| -> anyhow::Result<(String, String)> {
        s.split_once('=')
            .filter(|(k, v)| !k.is_empty() && !v.is_empty())
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .ok_or_else(|| anyhow::anyhow!("`--{flag} {s}` is not NAME=VALUE"))
    };
    for b in bind {
        let (offering, booking) = split("bind", b)?;
        if out
            .insert(offering.clone(), json!({"booking": booking}))
            .is_some()
        {
            anyhow::bail!("dependency `{offering}` is chosen twice");
        }
    }
    for w in with {
        let (target, file) = split("with", w)?;
        let (offering, plan) = match target.split_once(':') {
            Some((o, p)) => (o.to_string(), Some(p.to_string())),
            None => (target, None),
        };
        let config = read_config(std::path::Path::new(&file))?;
        let choice = match plan {
            Some(p) => json!({"config": config, "plan": p}),
            None => json!({"config": config}),
        };
        if out.insert(offering.clone(), choice).is_some() {
            anyhow::bail!("dependency `{offering}` is chosen twice");
        }
    }
    Ok(Value::Object(out))
}

pub async fn book(a: BookArgs) -> anyhow::Result<()> {
    let api = Api::connect(&a.conn)?;
    let mut config = match &a.config {
        Some(p) => read_config(p)?,
        None => json!({}),
    };
    if !a.set.is_empty() {
        let offering: Value = api
            .get(&format!("/offerings/{}", segment(&a.offering)), &[])
            .await?;
        for s in &a.set {
            let schema = offering.get("config_schema").unwrap_or(&Value::Null);
            set_path(&mut config, s, schema)?;
        }
    }
    let body = json!({
        "organisation": organisation_id(&api, &a.organisation).await?,
        "offering": a.offering,
        "plan": a.plan,
        "config": config,
        "channel": a.channel,
        "windows": a.windows,
        "ending": a.ending.spec(),
        "dependencies": dependency_choices(&a.bind, &a.with)?,
    });
    let key = a
        .idempotency_key
        .clone()
        .unwrap_or_else(super::http::idempotency_key);
    let (_, created): (_, Value) = api
        .write_idempotent(Method::POST, "/bookings", &body, &key)
        .await?;
    if a.conn.output != Format::Table {
        return print_data(a.conn.output, &created);
    }
    let b = created.get("booking").unwrap_or(&Value::Null);
    let mut line = format!(
        "booking/{} {}",
        b["id"].as_str().unwrap_or("?"),
        b["state"].as_str().unwrap_or("?")
    );
    if let Some(site) = b["site"].as_str() {
        line.push_str(&format!(" on site {site}"));
    }
    if let Some(reason) = b["reason"].as_str() {
        line.push_str(&format!(": {reason}"));
    }
    super::output::emit_line(&line)?;
    let dependencies = created.get("dependencies").and_then(Value::as_array);
    for d in dependencies.into_iter().flatten() {
        super::output::emit_line(&format!(
            "  dependency booking/{} ({}) {} on site {}",
            d["id"].as_str().unwrap_or("?"),
            d["offering"].as_str().unwrap_or("?"),
            d["state"].as_str().unwrap_or("?"),
            d["site"].as_str().unwrap_or("-"),
        ))?;
    }
    if let Some(placement) = created.get("placement").filter(|p| !p.is_null()) {
        print_decision(Format::Table, placement)?;
    }
    Ok(())
}

pub async fn booking(a: BookingArgs) -> anyhow::Result<()> {
    let format = a.conn.output;
    let api = Api::connect(&a.conn)?;
    match a.cmd {
        BookingCommand::List {
            organisation,
            offering,
            site,
            state,
            noncompliant,
            page,
        } => {
            let mut query = Vec::new();
            if let Some(o) = organisation {
                query.push(("organisation", organisation_id(&api, &o).await?));
            }
            query.extend(offering.map(|v| ("offering", v)));
            query.extend(site.map(|v| ("site", v)));
            query.extend(state.map(|v| ("state", v)));
            if noncompliant {
                query.push(("noncompliant", "true".into()));
            }
            let list = api
                .list::<Booking>("/bookings", query, page.limit, page.all)
                .await?;
            print_list(format, &list.items, list.next.as_deref(), HEADERS, row)
        }
        BookingCommand::Get { id } => {
            let b: Booking = api.get(&format!("/bookings/{}", segment(&id)), &[]).await?;
            print_one(format, &b, HEADERS, row)?;
            print_ending(format, &b);
            if let (Format::Table, Some(u)) = (format, &b.undeliverable) {
                println!(
                    "\nNot delivered since {}: {}\nIts site keeps the last version that could be delivered; correct the configuration with `verbund booking update`.",
                    u.since, u.reason
                );
            }
            Ok(())
        }
        BookingCommand::Placement { id } => {
            let d: Value = api
                .get(&format!("/bookings/{}/placement", segment(&id)), &[])
                .await?;
            print_decision(format, &d)
        }
        BookingCommand::Update {
            id,
            plan,
            config,
            channel,
            windows,
            no_windows,
            ending,
        } => {
            let patch = BookingPatch {
                ending: ending.spec(),
                plan,
                config: config.as_deref().map(read_config).transpose()?,
                channel,
                windows: (no_windows || !windows.is_empty()).then_some(windows),
            };
            let (_, b): (_, Booking) = api
                .write(
                    Method::PATCH,
                    &format!("/bookings/{}", segment(&id)),
                    &patch,
                )
                .await?;
            print_one(format, &b, HEADERS, row)
        }
        BookingCommand::End { id, export_to } => {
            let (_, b): (_, Booking) = api
                .write(
                    Method::POST,
                    &format!("/bookings/{}/end", segment(&id)),
                    &json!({"export_to": export_to}),
                )
                .await?;
            print_one(format, &b, HEADERS, row)?;
            print_ending(format, &b);
            Ok(())
        }
        BookingCommand::RetryExport { id } => {
            let (_, b): (_, Booking) = api
                .write(
                    Method::POST,
                    &format!("/bookings/{}/export/retry", segment(&id)),
                    &json!({}),
                )
                .await?;
            print_one(format, &b, HEADERS, row)?;
            print_ending(format, &b);
            Ok(())
        }
        BookingCommand::Cancel { id } => {
            let b: Booking = api.delete(&format!("/bookings/{}", segment(&id))).await?;
            print_one(format, &b, HEADERS, row)
        }
        BookingCommand::Instances { offering } => {
            let instances: Vec<Value> = api
                .get(&format!("/offerings/{}/instances", segment(&offering)), &[])
                .await?;
            print_list(format, &instances, None, INSTANCE_HEADERS, |i| {
                let text = |k: &str| i[k].as_str().unwrap_or("-").to_string();
                vec![
                    text("booking"),
                    text("organisation_name"),
                    text("site"),
                    text("state"),
                    text("version"),
                    i["tenants"].to_string(),
                ]
            })
        }
        BookingCommand::Join {
            instance,
            organisation,
            offering,
            config,
            set,
        } => {
            let mut config = match &config {
                Some(p) => read_config(p)?,
                None => json!({}),
            };
            if !set.is_empty() {
                let o: Value = api
                    .get(&format!("/offerings/{}", segment(&offering)), &[])
                    .await?;
                let any = json!({"type": "object"});
                let schema = o.get("tenant_schema").unwrap_or(&any);
                for s in &set {
                    set_path(&mut config, s, schema)?;
                }
            }
            let body = json!({
                "organisation": organisation_id(&api, &organisation).await?,
                "config": config,
            });
            let (_, b): (_, Booking) = api
                .write(
                    Method::POST,
                    &format!("/bookings/{}/tenancies", segment(&instance)),
                    &body,
                )
                .await?;
            print_one(format, &b, HEADERS, row)?;
            if let (Format::Table, Some(reason)) = (format, &b.reason) {
                println!("\n{reason}");
            }
            Ok(())
        }
        BookingCommand::Tenants { id, page } => {
            let list = api
                .list::<Booking>(
                    &format!("/bookings/{}/tenancies", segment(&id)),
                    Vec::new(),
                    page.limit,
                    page.all,
                )
                .await?;
            print_list(format, &list.items, list.next.as_deref(), HEADERS, row)
        }
        BookingCommand::Approve { id } => {
            let (_, b): (_, Booking) = api
                .write(
                    Method::POST,
                    &format!("/bookings/{}/approve", segment(&id)),
                    &json!({}),
                )
                .await?;
            print_one(format, &b, HEADERS, row)
        }
        BookingCommand::Reject { id, reason } => {
            let (_, b): (_, Booking) = api
                .write(
                    Method::POST,
                    &format!("/bookings/{}/reject", segment(&id)),
                    &json!({"reason": reason}),
                )
                .await?;
            print_one(format, &b, HEADERS, row)
        }
    }
}

pub async fn placement(a: PlacementArgs) -> anyhow::Result<()> {
    let api = Api::connect(&a.conn)?;
    match a.cmd {
        PlacementCommand::Explain {
            organisation,
            offering,
            plan,
        } => {
            let body = json!({
                "organisation": organisation_id(&api, &organisation).await?,
                "offering": offering,
                "plan": plan,
            });
            let (_, d): (_, Value) = api.write(Method::POST, "/placement/explain", &body).await?;
            print_decision(a.conn.output, &d)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_builds_nested_values() {
        let mut c = json!({});
        let none = Value::Null;
        set_path(&mut c, "domain=cloud.example.de", &none).unwrap();
        set_path(&mut c, "contact.email=it@example.de", &none).unwrap();
        set_path(&mut c, "features.talk=true", &none).unwrap();
        set_path(&mut c, "quota=5", &none).unwrap();
        assert_eq!(
            c,
            json!({"domain": "cloud.example.de", "contact": {"email": "it@example.de"}, "features": {"talk": true}, "quota": 5})
        );
        assert!(set_path(&mut c, "novalue", &none).is_err());
        assert!(set_path(&mut c, "domain.x=1", &none).is_err());
    }

    #[test]
    fn set_reads_values_as_the_schema_wants_them() {
        let schema = json!({"type": "object", "properties": {
            "municipality": {"type": "string", "pattern": "^[0-9]{8}$"},
            "quota": {"type": "integer"},
            "talk": {"type": "boolean"},
            "size": {"type": ["string", "null"]},
            "either": {"type": ["string", "integer"]},
            "mode": {"enum": ["1", "2"]},
            "contact": {"type": "object", "properties": {"phone": {"type": "string"}}},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        }});
        let mut c = json!({});
        for s in [
            "municipality=14522150",
            "quota=5",
            "talk=true",
            "size=10",
            "either=7",
            "mode=2",
            "contact.phone=0331",
            "labels.release=2026",
            "unknown=3",
        ] {
            set_path(&mut c, s, &schema).unwrap();
        }
        assert_eq!(
            c,
            json!({"municipality": "14522150", "quota": 5, "talk": true, "size": 10,
                   "either": 7, "mode": "2", "contact": {"phone": "0331"},
                   "labels": {"release": "2026"}, "unknown": 3})
        );
    }
}
