//! `verbund trust …`: the federation's trust list, the certification credentials of
//! sites (handed in as VC-JWT files, or attested by the federation for what a federation
//! admin checked by hand), and issuers' revocation status lists.

use anyhow::Context;
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::json;
use verbund_trust::TrustedIssuer;

use super::http::{segment, Api, ConnArgs};
use super::manifest::{FileArg, Manifest};
use super::output::{emit_line, opt, print_data, print_list, Format};

#[derive(Debug, Args)]
pub struct TrustArgs {
    #[command(flatten)]
    conn: ConnArgs,
    #[command(subcommand)]
    cmd: TrustCommand,
}

#[derive(Debug, Subcommand)]
enum TrustCommand {
    /// Show the trust list in force: issuers, their keys, the schemes each may attest.
    List,
    /// State a new version of the trust list from a YAML or JSON file (federation
    /// admins); credentials of issuers it drops stop counting.
    Apply {
        #[command(flatten)]
        file: FileArg,
    },
    /// Name the federation itself on the trust list for the schemes it attests by hand
    /// (federation admins): its did:web and the key this server signs with; every other
    /// issuer stays.
    Federation {
        /// A scheme the federation attests, e.g. `iso27001`; repeat for more.
        #[arg(long = "scheme", required = true, value_name = "SCHEME")]
        schemes: Vec<String>,
    },
    /// A site's certification credentials, revoked ones included.
    Credentials { site: String },
    /// Hand in a certification credential of a site: a file holding the VC-JWT its
    /// certification body issued (`-` for stdin).
    Add {
        site: String,
        #[arg(short = 'f', long = "file", value_name = "FILE")]
        file: std::path::PathBuf,
    },
    /// Have the federation attest a certification of a site that you checked by hand
    /// (federation admins): signed with the federation's key, it counts where the trust
    /// list names the federation itself with the scheme.
    Attest {
        site: String,
        /// The certification scheme, e.g. `bsi-c5` or `iso27001`.
        #[arg(long)]
        scheme: String,
        /// Its level, e.g. `type2` or `it-grundschutz`.
        #[arg(long)]
        level: Option<String>,
        /// The last day it is valid (YYYY-MM-DD).
        #[arg(long, value_name = "DATE")]
        until: chrono::NaiveDate,
        /// What you checked: the certificate's number, the report's date.
        #[arg(long)]
        evidence: String,
    },
    /// Hand in an issuer's revocation status list (a VC-JWT file; federation admins).
    Revocations {
        #[arg(short = 'f', long = "file", value_name = "FILE")]
        file: std::path::PathBuf,
    },
}

const ISSUER_HEADERS: &[&str] = &["ISSUER", "NAME", "KEYS", "SCHEMES"];
const CREDENTIAL_HEADERS: &[&str] = &[
    "ID",
    "SCHEME",
    "ISSUER",
    "VALID UNTIL",
    "REVOKED",
    "SUBMITTED BY",
];

/// A VC-JWT from a file (`-` for stdin), without surrounding whitespace.
fn read_jwt(path: &std::path::Path) -> anyhow::Result<String> {
    let text = if path == std::path::Path::new("-") {
        std::io::read_to_string(std::io::stdin()).context("cannot read standard input")?
    } else {
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?
    };
    Ok(text.trim().to_string())
}

pub async fn run(a: TrustArgs) -> anyhow::Result<()> {
    let format = a.conn.output;
    let api = Api::connect(&a.conn)?;
    match a.cmd {
        TrustCommand::List => {
            let list: serde_json::Value = api.get("/trust-list", &[]).await?;
            if format != Format::Table {
                return print_data(format, &list);
            }
            let issuers: Vec<TrustedIssuer> =
                serde_json::from_value(list.get("issuers").cloned().unwrap_or_default())
                    .context("the server's trust list is not one")?;
            emit_line(&format!(
                "trust list version {} (stated by {}); {}",
                list.get("version").cloned().unwrap_or_default(),
                Some(text(&list, "stated_by"))
                    .filter(|s| !s.is_empty())
                    .unwrap_or("nobody yet"),
                if list.get("count_stated_certifications") == Some(&json!(false)) {
                    "only credentials count"
                } else {
                    "the certifications the federation stated count beside credentials"
                }
            ))?;
            print_list(format, &issuers, None, ISSUER_HEADERS, |i| {
                vec![
                    i.id.clone(),
                    i.name.clone(),
                    i.keys
                        .iter()
                        .map(|k| k.kid.as_str())
                        .collect::<Vec<_>>()
                        .join(" "),
                    i.schemes.iter().cloned().collect::<Vec<_>>().join(", "),
                ]
            })
        }
        TrustCommand::Apply { file } => {
            let manifest = Manifest::read(&file.file)?;
            let [entry] = manifest.entries.as_slice() else {
                anyhow::bail!(
                    "{} holds {} objects; a trust list is one object with `issuers`",
                    manifest.file,
                    manifest.entries.len()
                );
            };
            let (_, stored): (_, serde_json::Value) =
                api.write(Method::PUT, "/trust-list", &entry.value).await?;
            if format == Format::Table {
                emit_line(&format!(
                    "trust-list version {} stated",
                    stored.get("version").cloned().unwrap_or_default()
                ))
            } else {
                print_data(format, &stored)
            }
        }
        TrustCommand::Federation { schemes } => {
            let (_, stored): (_, serde_json::Value) = api
                .write(
                    Method::PUT,
                    "/trust-list/federation",
                    &json!({"schemes": schemes}),
                )
                .await?;
            if format == Format::Table {
                emit_line(&format!(
                    "trust-list version {} stated: the federation attests {}",
                    stored.get("version").cloned().unwrap_or_default(),
                    schemes.join(", ")
                ))
            } else {
                print_data(format, &stored)
            }
        }
        TrustCommand::Credentials { site } => {
            let list: Vec<serde_json::Value> = api
                .get(&format!("/sites/{}/credentials", segment(&site)), &[])
                .await?;
            print_list(format, &list, None, CREDENTIAL_HEADERS, credential_row)
        }
        TrustCommand::Add { site, file } => {
            let jwt = read_jwt(&file)?;
            let (_, c): (_, serde_json::Value) = api
                .write(
                    Method::POST,
                    &format!("/sites/{}/credentials", segment(&site)),
                    &json!({"jwt": jwt}),
                )
                .await?;
            if format == Format::Table {
                emit_line(&format!(
                    "credential {} counts: {} {} for site/{site}, attested by {} until {}",
                    text(&c, "id"),
                    text(&c, "scheme"),
                    text(&c, "level"),
                    text(&c, "issuer_name"),
                    text(&c, "valid_until")
                ))
            } else {
                print_data(format, &c)
            }
        }
        TrustCommand::Attest {
            site,
            scheme,
            level,
            until,
            evidence,
        } => {
            let body = json!({
                "certification": {"scheme": scheme, "level": level, "valid_until": until},
                "evidence": evidence,
            });
            let (_, c): (_, serde_json::Value) = api
                .write(
                    Method::POST,
                    &format!("/sites/{}/attestations", segment(&site)),
                    &body,
                )
                .await?;
            if format == Format::Table {
                emit_line(&format!(
                    "the federation attests {} {} for site/{site} until {}: it counts (credential {})",
                    text(&c, "scheme"),
                    text(&c, "level"),
                    text(&c, "valid_until"),
                    text(&c, "id")
                ))
            } else {
                print_data(format, &c)
            }
        }
        TrustCommand::Revocations { file } => {
            let jwt = read_jwt(&file)?;
            let (_, applied): (_, serde_json::Value) = api
                .write(Method::POST, "/status-lists", &json!({"jwt": jwt}))
                .await?;
            if format == Format::Table {
                let revoked = applied
                    .get("revoked")
                    .and_then(serde_json::Value::as_array)
                    .map_or(0, Vec::len);
                emit_line(&format!(
                    "status list {}: {revoked} credential(s) revoked now",
                    text(&applied, "list")
                ))
            } else {
                print_data(format, &applied)
            }
        }
    }
}

/// A string field of an answer (empty when it has none).
fn text<'v>(v: &'v serde_json::Value, key: &str) -> &'v str {
    v.get(key)
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default()
}

fn credential_row(c: &serde_json::Value) -> Vec<String> {
    let level = text(c, "level");
    vec![
        text(c, "id").to_string(),
        if level.is_empty() {
            text(c, "scheme").to_string()
        } else {
            format!("{} ({level})", text(c, "scheme"))
        },
        text(c, "issuer_name").to_string(),
        text(c, "valid_until").to_string(),
        opt(Some(text(c, "revoked_reason").to_string()).filter(|r| !r.is_empty())),
        text(c, "submitted_by").to_string(),
    ]
}
