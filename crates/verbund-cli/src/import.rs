//! `verbund import …`: official reference data from files, straight into the store.

use std::io::BufReader;
use std::path::Path;

use anyhow::Context;

use crate::cli::StoreArgs;

/// The actor recorded for imports run from the command line.
fn local_actor() -> String {
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    format!("local/{user}")
}

fn open_file(file: &Path) -> anyhow::Result<BufReader<std::fs::File>> {
    let f = std::fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
    Ok(BufReader::new(f))
}

pub async fn gv100ad(file: &Path, args: &StoreArgs) -> anyhow::Result<()> {
    let dir = verbund_import::gv100ad::parse(open_file(file)?)
        .with_context(|| format!("{} is not a valid GV100AD file", file.display()))?;
    let store = args.open().await?;
    let source = format!("gv100ad-{}", dir.gebietsstand);
    let summary = store
        .import_organisations(
            &local_actor(),
            &source,
            &dir.organisations,
            chrono::Utc::now(),
        )
        .await
        .context("import failed; nothing was stored")?;
    println!(
        "imported GV100AD (Gebietsstand {}): {} records, {} created, {} updated, {} unchanged",
        dir.gebietsstand,
        dir.organisations.len(),
        summary.created,
        summary.updated,
        summary.unchanged
    );
    Ok(())
}

pub async fn ozg(file: &Path, args: &StoreArgs) -> anyhow::Result<()> {
    let services = verbund_import::ozg::parse(open_file(file)?)
        .with_context(|| format!("{} is not a valid OZG catalog", file.display()))?;
    let store = args.open().await?;
    let summary = store
        .import_ozg(
            &local_actor(),
            "ozg-leistungen",
            &services,
            chrono::Utc::now(),
        )
        .await
        .context("import failed; nothing was stored")?;
    println!(
        "imported OZG catalog: {} services, {} created, {} updated, {} unchanged",
        services.len(),
        summary.created,
        summary.updated,
        summary.unchanged
    );
    Ok(())
}
