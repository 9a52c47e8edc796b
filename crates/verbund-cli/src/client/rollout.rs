//! `verbund rollout …`: plan a rollout before it starts, start it, watch it, and pause,
//! resume, abort, retry or skip a site.

use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{json, Value};
use verbund_domain::rollout::{Counts, ItemState, Plan, Rollout, RolloutItem, Stage};

use super::http::{segment, Api, ConnArgs};
use super::output::{emit, emit_line, opt, print_data, print_list, Format, Table};
use super::PageArgs;

#[derive(Debug, Args)]
pub struct RolloutArgs {
    #[command(flatten)]
    conn: ConnArgs,
    #[command(subcommand)]
    cmd: RolloutCommand,
}

/// The rollout's policy; every option left out takes the server's default.
#[derive(Debug, Clone, Args)]
struct PolicyArgs {
    /// Share of production bookings in the canary stage, in percent (0–50; default 5).
    #[arg(long)]
    canary_percent: Option<u32>,
    /// Bookings per site in one production wave (default 100).
    #[arg(long)]
    wave_size: Option<u32>,
    /// Sites in one production wave (default 5).
    #[arg(long)]
    max_concurrent_sites: Option<u32>,
    /// Seconds a booking must stay ready before it passes (default 300).
    #[arg(long)]
    bake_seconds: Option<u32>,
    /// Failed bookings a wave tolerates before the rollout halts (default 0).
    #[arg(long)]
    failure_budget: Option<u32>,
    /// Seconds a booking may take to report the new version ready (default 1800).
    #[arg(long)]
    progress_deadline_seconds: Option<u32>,
    /// `exclude-site` (default) or `halt`: what a failing test stage does.
    #[arg(long)]
    test_failure: Option<String>,
    /// `exclude` (default) or `allow`: sites without a test environment.
    #[arg(long)]
    untested_sites: Option<String>,
}

impl PolicyArgs {
    fn json(&self) -> Value {
        let mut p = serde_json::Map::new();
        let mut put = |k: &str, v: Option<Value>| {
            if let Some(v) = v {
                p.insert(k.to_owned(), v);
            }
        };
        put("canary_percent", self.canary_percent.map(Value::from));
        put("wave_size", self.wave_size.map(Value::from));
        put(
            "max_concurrent_sites",
            self.max_concurrent_sites.map(Value::from),
        );
        put("bake_seconds", self.bake_seconds.map(Value::from));
        put("failure_budget", self.failure_budget.map(Value::from));
        put(
            "progress_deadline_seconds",
            self.progress_deadline_seconds.map(Value::from),
        );
        put("test_failure", self.test_failure.clone().map(Value::from));
        put(
            "untested_sites",
            self.untested_sites.clone().map(Value::from),
        );
        Value::Object(p)
    }
}

#[derive(Debug, Subcommand)]
enum RolloutCommand {
    /// Show the plan of a rollout without starting it: test stage, canary, waves.
    Plan {
        #[arg(long)]
        offering: String,
        #[arg(long)]
        version: String,
        #[command(flatten)]
        policy: PolicyArgs,
    },
    /// Start a rollout (publishing a version starts one with the default policy).
    Start {
        #[arg(long)]
        offering: String,
        #[arg(long)]
        version: String,
        #[command(flatten)]
        policy: PolicyArgs,
    },
    /// List rollouts, newest first.
    List {
        #[arg(long)]
        offering: Option<String>,
        /// running, paused, halted, completed or aborted.
        #[arg(long)]
        state: Option<String>,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Show a rollout: its waves and sites.
    Get { id: String },
    /// List a rollout's bookings and where each is.
    Items {
        id: String,
        #[arg(long)]
        wave: Option<u32>,
        #[arg(long)]
        site: Option<String>,
        #[arg(long)]
        state: Option<String>,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Pause: nothing new starts until it is resumed.
    Pause { id: String },
    /// Resume after a pause, or after a halt (accepting the current wave's failures).
    Resume { id: String },
    /// Abort: stop for good and roll back every booking the rollout changed.
    Abort { id: String },
    /// Retry a site's failed or skipped bookings (its test stage first).
    RetrySite { id: String, site: String },
    /// Skip a site (e.g. under maintenance): its bookings that have not started are left out.
    SkipSite {
        id: String,
        site: String,
        #[arg(long)]
        reason: Option<String>,
    },
}

fn counts(c: &Counts) -> String {
    if c.is_empty() {
        return "-".into();
    }
    c.iter()
        .map(|(s, n)| format!("{n} {s}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn stage(s: Stage) -> &'static str {
    s.as_str()
}

const HEADERS: &[&str] = &[
    "ID",
    "OFFERING",
    "VERSION",
    "STATE",
    "WAVE",
    "BOOKINGS",
    "STARTED BY",
];

fn row(r: &Rollout) -> Vec<String> {
    vec![
        r.id.clone(),
        r.offering.clone(),
        r.version.clone(),
        match &r.reason {
            Some(reason) => format!("{}: {reason}", r.state),
            None => r.state.to_string(),
        },
        format!(
            "{}/{}",
            (r.current_wave + 1).min(r.waves.len() as u32),
            r.waves.len()
        ),
        counts(&r.bookings),
        r.created_by.clone(),
    ]
}

fn print_rollout(format: Format, r: &Rollout) -> anyhow::Result<()> {
    if format != Format::Table {
        return print_data(format, r);
    }
    emit_line(&format!(
        "rollout/{} of {} to {}: {}{}",
        r.id,
        r.offering,
        r.version,
        r.state,
        r.reason
            .as_ref()
            .map(|x| format!(" ({x})"))
            .unwrap_or_default()
    ))?;
    let mut t = Table::new(&["WAVE", "STAGE", "STATUS", "SITES", "BOOKINGS"]);
    for w in &r.waves {
        t.row(vec![
            w.index.to_string(),
            stage(w.stage).into(),
            w.status.clone(),
            w.sites.join(", "),
            counts(&w.bookings),
        ]);
    }
    emit(&t.to_string())?;
    let mut t = Table::new(&["SITE", "TEST STAGE", "PRODUCTION"]);
    for s in &r.sites {
        t.row(vec![s.site.clone(), opt(s.test), counts(&s.bookings)]);
    }
    emit(&t.to_string())?;
    if !r.pinned.is_empty() {
        emit_line(&format!("{} pinned booking(s) left alone", r.pinned.len()))?;
    }
    Ok(())
}

fn print_plan(format: Format, p: &Plan) -> anyhow::Result<()> {
    if format != Format::Table {
        return print_data(format, p);
    }
    emit_line(&format!(
        "plan: {} to {}, {} production booking(s) in {} wave(s)",
        p.offering,
        p.version,
        p.bookings(),
        p.waves.len()
    ))?;
    let mut t = Table::new(&["WAVE", "STAGE", "SITES", "BOOKINGS", "WAITING FOR WINDOW"]);
    for w in &p.waves {
        t.row(vec![
            w.index.to_string(),
            stage(w.stage).into(),
            w.sites.join(", "),
            w.items.len().to_string(),
            w.items.iter().filter(|i| i.window).count().to_string(),
        ]);
    }
    emit(&t.to_string())?;
    for e in &p.pinned {
        emit_line(&format!("pinned: booking/{} ({})", e.booking, e.reason))?;
    }
    for e in &p.excluded {
        emit_line(&format!("left out: booking/{} ({})", e.booking, e.reason))?;
    }
    if !p.untested_sites.is_empty() {
        emit_line(&format!(
            "sites without a test environment: {}",
            p.untested_sites.join(", ")
        ))?;
    }
    Ok(())
}

const ITEM_HEADERS: &[&str] = &["BOOKING", "SITE", "WAVE", "STATE", "FROM", "REASON"];

fn item_row(i: &RolloutItem) -> Vec<String> {
    vec![
        if i.reference {
            format!("{} (reference)", i.booking)
        } else {
            i.booking.clone()
        },
        i.site.clone(),
        i.wave.to_string(),
        i.state.to_string(),
        opt(i.from_version.clone()),
        opt(i.reason.clone()),
    ]
}

fn check_state(s: &Option<String>) -> anyhow::Result<()> {
    if let Some(s) = s {
        if ItemState::parse(s).is_none() {
            anyhow::bail!(
                "`{s}` is not a state of a rollout's booking (pending, waiting, updating, baking, passed, failed, rolled-back, skipped)"
            );
        }
    }
    Ok(())
}

pub async fn run(a: RolloutArgs) -> anyhow::Result<()> {
    let format = a.conn.output;
    let api = Api::connect(&a.conn)?;
    let path = |id: &str, rest: &str| format!("/rollouts/{}{rest}", segment(id));
    match a.cmd {
        RolloutCommand::Plan {
            offering,
            version,
            policy,
        } => {
            let body = json!({"offering": offering, "version": version, "policy": policy.json()});
            let (_, p): (_, Plan) = api.write(Method::POST, "/rollouts/plan", &body).await?;
            print_plan(format, &p)
        }
        RolloutCommand::Start {
            offering,
            version,
            policy,
        } => {
            let body = json!({"offering": offering, "version": version, "policy": policy.json()});
            let (_, r): (_, Rollout) = api.write(Method::POST, "/rollouts", &body).await?;
            print_rollout(format, &r)
        }
        RolloutCommand::List {
            offering,
            state,
            page,
        } => {
            let mut query = Vec::new();
            query.extend(offering.map(|v| ("offering", v)));
            query.extend(state.map(|v| ("state", v)));
            let list = api
                .list::<Rollout>("/rollouts", query, page.limit, page.all)
                .await?;
            print_list(format, &list.items, list.next.as_deref(), HEADERS, row)
        }
        RolloutCommand::Get { id } => {
            let r: Rollout = api.get(&path(&id, ""), &[]).await?;
            print_rollout(format, &r)
        }
        RolloutCommand::Items {
            id,
            wave,
            site,
            state,
            page,
        } => {
            check_state(&state)?;
            let mut query = Vec::new();
            query.extend(wave.map(|v| ("wave", v.to_string())));
            query.extend(site.map(|v| ("site", v)));
            query.extend(state.map(|v| ("state", v)));
            let list = api
                .list::<RolloutItem>(&path(&id, "/items"), query, page.limit, page.all)
                .await?;
            print_list(
                format,
                &list.items,
                list.next.as_deref(),
                ITEM_HEADERS,
                item_row,
            )
        }
        RolloutCommand::Pause { id } => {
            control(&api, format, &path(&id, "/pause"), json!({})).await
        }
        RolloutCommand::Resume { id } => {
            control(&api, format, &path(&id, "/resume"), json!({})).await
        }
        RolloutCommand::Abort { id } => {
            control(&api, format, &path(&id, "/abort"), json!({})).await
        }
        RolloutCommand::RetrySite { id, site } => {
            let p = path(&id, &format!("/sites/{}/retry", segment(&site)));
            control(&api, format, &p, json!({})).await
        }
        RolloutCommand::SkipSite { id, site, reason } => {
            let p = path(&id, &format!("/sites/{}/skip", segment(&site)));
            control(&api, format, &p, json!({"reason": reason})).await
        }
    }
}

async fn control(api: &Api, format: Format, path: &str, body: Value) -> anyhow::Result<()> {
    let (_, r): (_, Rollout) = api.write(Method::POST, path, &body).await?;
    print_rollout(format, &r)
}
