//! `verbund user …`: list users, show the caller's own account, create users.

use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::Value;
use verbund_domain::account::{User, UserSpec};

use super::http::{Api, ConnArgs};
use super::manifest::{Applier, FileArg, Manifest};
use super::output::{joined, opt, print_list, print_one};
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
    /// Set a user's portal password (your own, or one of an account you administer),
    /// read from the first line of standard input so that it never appears in the
    /// process list or the shell history.
    SetPassword {
        /// The user's id.
        id: String,
    },
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
            let mut line = String::new();
            std::io::stdin().read_line(&mut line)?;
            let password = line.trim_end_matches(['\r', '\n']);
            let api = Api::connect(&a.conn)?;
            let body = serde_json::json!({ "password": password });
            let (_, u): (_, User) = api
                .write(Method::PUT, &format!("/users/{id}/password"), &body)
                .await?;
            println!("the portal password of `{}` is set", u.spec.name);
            Ok(())
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
