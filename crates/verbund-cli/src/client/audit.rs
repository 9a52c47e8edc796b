//! `verbund audit list`: the audit trail through the API, newest first.

use chrono::{DateTime, NaiveDate, Utc};
use clap::Args;

use super::http::{Api, ConnArgs};
use super::output::print_list;
use super::PageArgs;
use verbund_domain::audit::AuditEvent;

#[derive(Debug, Args)]
pub struct AuditListArgs {
    #[command(flatten)]
    conn: ConnArgs,
    /// Exact actor, e.g. `user/admin`.
    #[arg(long)]
    actor: Option<String>,
    /// Prefix of the action, e.g. `site.`.
    #[arg(long)]
    action: Option<String>,
    /// Prefix of the object, e.g. `site/dataport-hh-1`.
    #[arg(long)]
    object: Option<String>,
    /// Only events at or after this time (RFC 3339, or a day `YYYY-MM-DD` in UTC).
    #[arg(long, value_parser = parse_time)]
    since: Option<DateTime<Utc>>,
    /// Only events before this time (RFC 3339, or a day `YYYY-MM-DD` in UTC).
    #[arg(long, value_parser = parse_time)]
    until: Option<DateTime<Utc>>,
    #[command(flatten)]
    page: PageArgs,
}

fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .ok_or_else(|| format!("`{s}` is neither an RFC 3339 time nor a day `YYYY-MM-DD`"))
}

const HEADERS: &[&str] = &["SEQ", "AT", "ACTOR", "ACTION", "OBJECT"];

fn row(e: &AuditEvent) -> Vec<String> {
    vec![
        e.seq.to_string(),
        e.at.format("%Y-%m-%d %H:%M:%S").to_string(),
        e.actor.clone(),
        e.action.clone(),
        e.object.clone(),
    ]
}

pub async fn audit_list(args: AuditListArgs) -> anyhow::Result<()> {
    let api = Api::connect(&args.conn)?;
    let rfc = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let query = [
        ("actor", args.actor),
        ("action", args.action),
        ("object", args.object),
        ("since", args.since.map(rfc)),
        ("until", args.until.map(rfc)),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.map(|v| (k, v)))
    .collect();
    let list = api
        .list::<AuditEvent>("/audit", query, args.page.limit, args.page.all)
        .await?;
    print_list(
        args.conn.output,
        &list.items,
        list.next.as_deref(),
        HEADERS,
        row,
    )
}
