//! `verbund render`: shows exactly the files the desired-state repository holds for a
//! site's environment, or for one booking, as the server renders them from the current
//! store. Printed one after another under `### <path>` headings, or written into a
//! folder (`--out`) for `kubectl kustomize` or a diff against a clone of the repository.

use std::io::Write;
use std::path::{Component, Path, PathBuf};

use anyhow::Context;
use clap::Args;
use serde::Deserialize;

use super::http::{segment, Api, ConnArgs};

#[derive(Debug, Args)]
pub struct RenderArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
    /// The site whose desired state to show.
    #[arg(long, required_unless_present = "booking", conflicts_with = "booking")]
    pub site: Option<String>,
    /// The site's environment: `prod` or `test`.
    #[arg(long, default_value = "prod", value_parser = ["prod", "test"])]
    pub environment: String,
    /// Show only this booking's folder.
    #[arg(long)]
    pub booking: Option<String>,
    /// Write the files below this folder (by their repository paths) instead of printing.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
struct FileView {
    path: String,
    content: String,
}

pub async fn run(a: RenderArgs) -> anyhow::Result<()> {
    let api = Api::connect(&a.conn)?;
    let files: Vec<FileView> = match (&a.site, &a.booking) {
        (_, Some(id)) => {
            api.get(&format!("/bookings/{}/manifests", segment(id)), &[])
                .await?
        }
        (Some(site), None) => {
            api.get(
                &format!("/sites/{}/desired-state", segment(site)),
                &[("environment", a.environment.clone())],
            )
            .await?
        }
        (None, None) => anyhow::bail!("name a site (--site) or a booking (--booking)"),
    };
    match &a.out {
        Some(dir) => {
            for f in &files {
                let target = inside(dir, &f.path)?;
                if let Some(parent) = target.parent() {
                    std::fs::create_dir_all(parent)
                        .with_context(|| format!("cannot create {}", parent.display()))?;
                }
                std::fs::write(&target, &f.content)
                    .with_context(|| format!("cannot write {}", target.display()))?;
            }
            println!("wrote {} files below {}", files.len(), dir.display());
        }
        None => {
            if files.is_empty() {
                eprintln!("nothing is delivered there");
            }
            let mut out = std::io::stdout().lock();
            for f in &files {
                let written = writeln!(out, "### {}\n{}", f.path, f.content);
                // A reader that stops early (`| head`) is not an error.
                match written {
                    Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
                    other => other.context("cannot write to standard output")?,
                }
            }
        }
    }
    Ok(())
}

/// `dir/path`, refusing a path from the server that would leave `dir`.
fn inside(dir: &Path, path: &str) -> anyhow::Result<PathBuf> {
    let rel = Path::new(path);
    if !rel.components().all(|c| matches!(c, Component::Normal(_))) {
        anyhow::bail!("the server sent the unsafe path `{path}`; nothing more was written");
    }
    Ok(dir.join(rel))
}
