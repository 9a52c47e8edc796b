//! `verbund user …`: list users, show the caller's own account, create users, and their
//! life cycle: change one's own password, hand out or complete a password reset,
//! disable and enable an account, revoke all its tokens and sessions.
//!
//! Passwords and reset tokens are read from standard input, one a line, so that they
//! never appear in the process list or the shell history.

use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::Value;
use verbund_domain::account::{User, UserSpec};

use super::http::{segment, Api, ConnArgs};
use super::manifest::{Applier, FileArg, Manifest};
use super::output::{emit_line, joined, opt, print_data, print_list, print_one, Format};
use super::PageArgs;

#[derive(Debug, Args)]
pub struct UserArgs {
    #[command(flatten)]
    conn: ConnArgs,
    #[command(subcommand)]
    cmd: UserCommand,
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// List users.
    List {
        /// Only members of this organisation (id).
        #[arg(long)]
        organisation: Option<String>,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Show the account the token belongs to.
    Me,
    /// Create the users in a file.
    Create(FileArg),
    /// Change your own portal password: the current one on the first line of standard
    /// input, the new one on the second.
    SetPassword {
        /// Your user id.
        id: String,
    },
    /// Hand out a one-time password reset for another person's account; prints the
    /// token, which the person gives to `verbund user complete-reset` within 24 hours.
    ResetPassword {
        /// The user's id.
        id: String,
    },
    /// Choose a new password with a reset token: the token on the first line of standard
    /// input, the new password on the second (needs no API token).
    CompleteReset,
    /// Disable an account: it signs in nowhere, its tokens stop working and its sessions
    /// end at once.
    Disable {
        /// The user's id.
        id: String,
    },
    /// Enable a disabled account again.
    Enable {
        /// The user's id.
        id: String,
    },
    /// Revoke every API token of an account and end all its portal sessions.
    RevokeAccess {
        /// The user's id.
        id: String,
    },
}

/// Disables or enables an account (`verb`), saying what it is now.
async fn switch(
    conn: &ConnArgs,
    format: Format,
    id: &str,
    verb: &str,
    done: &str,
) -> anyhow::Result<()> {
    let api = Api::connect(conn)?;
    let (_, u): (_, User) = api
        .write(
            Method::POST,
            &format!("/users/{}/{verb}", segment(id)),
            &serde_json::json!({}),
        )
        .await?;
    line_or_data(
        format,
        &format!("`{}` is {done}", u.spec.name),
        &serde_json::to_value(&u).unwrap_or(Value::Null),
    )
}

/// A sentence for a table, the whole answer for JSON or YAML.
fn line_or_data(format: Format, line: &str, data: &Value) -> anyhow::Result<()> {
    match format {
        Format::Table => emit_line(line),
        _ => print_data(format, data),
    }
}

/// The next line of standard input, without its line break.
fn read_line(what: &str) -> anyhow::Result<String> {
    let mut line = String::new();
    if std::io::stdin().read_line(&mut line)? == 0 {
        anyhow::bail!("expected {what} on standard input");
    }
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

const HEADERS: &[&str] = &["ID", "NAME", "DISPLAY NAME", "EMAIL", "ROLES"];

fn row(u: &User) -> Vec<String> {
    let roles = u.spec.memberships.iter().map(|m| {
        match m.organisation.as_deref().or(m.provider.as_deref()) {
            Some(scope) => format!("{}@{scope}", m.role.as_str()),
            None => m.role.as_str().to_string(),
        }
    });
    vec![
        u.id.clone(),
        u.spec.name.clone(),
        u.spec.display_name.clone(),
        opt(u.spec.email.as_deref()),
        joined(roles),
    ]
}

pub async fn run(a: UserArgs) -> anyhow::Result<()> {
    let format = a.conn.output;
    match a.cmd {
        UserCommand::List { organisation, page } => {
            let api = Api::connect(&a.conn)?;
            let query = organisation
                .map(|o| ("organisation", o))
                .into_iter()
                .collect();
            let list = api
                .list::<User>("/users", query, page.limit, page.all)
                .await?;
            print_list(format, &list.items, list.next.as_deref(), HEADERS, row)
        }
        UserCommand::Me => {
            let api = Api::connect(&a.conn)?;
            let me: User = api.get("/users/me", &[]).await?;
            print_one(format, &me, HEADERS, row)
        }
        UserCommand::SetPassword { id } => {
            let current = read_line("the current password")?;
            let password = read_line("the new password")?;
            let api = Api::connect(&a.conn)?;
            let body = serde_json::json!({ "current_password": current, "password": password });
            let (_, u): (_, User) = api
                .write(
                    Method::PUT,
                    &format!("/users/{}/password", segment(&id)),
                    &body,
                )
                .await?;
            println!(
                "the portal password of `{}` is changed; its portal sessions have ended",
                u.spec.name
            );
            Ok(())
        }
        UserCommand::ResetPassword { id } => {
            let api = Api::connect(&a.conn)?;
            let (_, r): (_, Value) = api
                .write(
                    Method::POST,
                    &format!("/users/{}/password-reset", segment(&id)),
                    &serde_json::json!({}),
                )
                .await?;
            let field = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or_default();
            line_or_data(
                format,
                &format!(
                    "password reset token (shown only now, valid until {}): {}",
                    field("expires_at"),
                    field("token")
                ),
                &r,
            )
        }
        UserCommand::CompleteReset => {
            let token = read_line("the reset token")?;
            let password = read_line("the new password")?;
            let api = Api::anonymous(&a.conn)?;
            let body = serde_json::json!({ "token": token, "password": password });
            let (_, u): (_, User) = api.write(Method::POST, "/password-reset", &body).await?;
            println!(
                "the portal password of `{}` is set; sign in with it now",
                u.spec.name
            );
            Ok(())
        }
        UserCommand::Disable { id } => switch(&a.conn, format, &id, "disable", "disabled").await,
        UserCommand::Enable { id } => switch(&a.conn, format, &id, "enable", "enabled").await,
        UserCommand::RevokeAccess { id } => {
            let api = Api::connect(&a.conn)?;
            let (_, r): (_, Value) = api
                .write(
                    Method::POST,
                    &format!("/users/{}/revoke", segment(&id)),
                    &serde_json::json!({}),
                )
                .await?;
            line_or_data(
                format,
                &format!(
                    "revoked {} token(s) and ended {} session(s)",
                    r.get("tokens").unwrap_or(&Value::Null),
                    r.get("sessions").unwrap_or(&Value::Null)
                ),
                &r,
            )
        }
        UserCommand::Create(f) => {
            let m = Manifest::read(&f.file)?;
            let specs: Vec<UserSpec> = m.objects()?;
            let api = Api::connect(&a.conn)?;
            let mut applier = Applier::new(&m, format);
            for (i, spec) in specs.iter().enumerate() {
                match api.write::<_, User>(Method::POST, "/users", spec).await {
                    Ok((_, u)) => {
                        let label = format!("user/{}", u.id);
                        let line = format!("{label} created ({})", u.spec.name);
                        applier.applied(
                            label,
                            line,
                            serde_json::to_value(&u).unwrap_or(Value::Null),
                        )?;
                    }
                    Err(e) => return Err(applier.failed(i, &format!("user `{}`", spec.name), e)),
                }
            }
            applier.finish()
        }
    }
}
