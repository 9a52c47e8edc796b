//! `verbund token …`: list, create and revoke API tokens. A new token's secret is
//! printed once; the server keeps only its hash.

use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use reqwest::Method;
use serde::{Deserialize, Serialize};
use verbund_domain::account::{Token, TokenSpec};

use super::http::{segment, Api, ConnArgs};
use super::output::{emit_line, opt, print_data, print_list, Format};
use super::PageArgs;

#[derive(Debug, Args)]
pub struct TokenArgs {
    #[command(flatten)]
    conn: ConnArgs,
    #[command(subcommand)]
    cmd: TokenCommand,
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// List tokens (never their secrets).
    List {
        /// Whose tokens (user id); defaults to your own.
        #[arg(long)]
        user: Option<String>,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Create a token; its secret is shown only now.
    Create {
        /// What the token is for, e.g. `ci-pipeline`.
        name: String,
        /// The user the token acts as (id); defaults to you.
        #[arg(long)]
        user: Option<String>,
        /// Let the token expire after this many days.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=3650))]
        expires_in_days: Option<u32>,
    },
    /// Revoke a token.
    Revoke { id: String },
}

/// The answer to creating a token: the token and, this once, its secret.
#[derive(Debug, Serialize, Deserialize)]
struct IssuedToken {
    #[serde(flatten)]
    token: Token,
    secret: String,
}

const HEADERS: &[&str] = &["ID", "NAME", "USER", "CREATED", "EXPIRES", "STATUS"];

fn day(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M").to_string()
}

fn row(t: &Token) -> Vec<String> {
    let status = if t.revoked_at.is_some() {
        "revoked"
    } else if t.is_usable(Utc::now()) {
        "active"
    } else {
        "expired"
    };
    vec![
        t.id.clone(),
        t.name.clone(),
        t.user.clone(),
        day(&t.created_at),
        opt(t.expires_at.as_ref().map(day)),
        status.to_string(),
    ]
}

pub async fn run(a: TokenArgs) -> anyhow::Result<()> {
    let format = a.conn.output;
    let api = Api::connect(&a.conn)?;
    match a.cmd {
        TokenCommand::List { user, page } => {
            let query = user.map(|u| ("user", u)).into_iter().collect();
            let list = api
                .list::<Token>("/tokens", query, page.limit, page.all)
                .await?;
            print_list(format, &list.items, list.next.as_deref(), HEADERS, row)
        }
        TokenCommand::Create {
            name,
            user,
            expires_in_days,
        } => {
            let spec = TokenSpec {
                name,
                user,
                expires_at: expires_in_days
                    .map(|d| Utc::now() + chrono::Duration::days(i64::from(d))),
            };
            let (_, issued): (_, IssuedToken) = api.write(Method::POST, "/tokens", &spec).await?;
            if format == Format::Table {
                let t = &issued.token;
                let expires = t.expires_at.map_or_else(
                    || "never expires".to_string(),
                    |e| format!("expires {}", day(&e)),
                );
                emit_line(&format!(
                    "token/{} created for user {} ({expires})",
                    t.id, t.user
                ))?;
                emit_line(&format!("secret, shown only now: {}", issued.secret))
            } else {
                print_data(format, &issued)
            }
        }
        TokenCommand::Revoke { id } => {
            let t: Token = api.delete(&format!("/tokens/{}", segment(&id))).await?;
            if format == Format::Table {
                emit_line(&format!("token/{} revoked", t.id))
            } else {
                print_data(format, &t)
            }
        }
    }
}
