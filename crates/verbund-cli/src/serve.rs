//! `verbund serve`: open the store, make sure an administrator exists, serve HTTP until
//! told to stop.

use std::path::Path;

use anyhow::Context;
use verbund_api::{issue_token, AppState};
use verbund_domain::account::{Membership, Role, UserSpec};
use verbund_store::Store;

use crate::cli::ServeArgs;

/// Name of the federation administrator created on first start.
pub const ADMIN: &str = "admin";

/// Writes a secret to a file only its owner can read.
pub fn write_secret(path: &Path, secret: &str) -> anyhow::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    opts.mode(0o600);
    let mut f = opts
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(secret.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()?;
    Ok(())
}

/// On first start (no users), creates the federation admin and writes its token to
/// `DATA/admin.token`.
pub async fn bootstrap_admin(store: &Store, data: &Path) -> anyhow::Result<()> {
    let path = data.join("admin.token");
    if store.count_users().await? > 0 {
        if path.exists() {
            tracing::info!(path = %path.display(), "the federation admin's token is in this file");
        }
        return Ok(());
    }
    let now = chrono::Utc::now();
    let user = store
        .create_user(
            "system/bootstrap",
            &UserSpec {
                name: ADMIN.into(),
                display_name: "Federation administrator".into(),
                email: None,
                memberships: vec![Membership {
                    role: Role::FederationAdmin,
                    organisation: None,
                    provider: None,
                    delegated: false,
                }],
            },
            now,
        )
        .await?;
    let (_, secret) =
        issue_token(store, "system/bootstrap", &user.id, "bootstrap", None, now).await?;
    write_secret(&path, &secret)?;
    println!(
        "created the federation admin `{ADMIN}`; its API token is in {} (readable only by you)",
        path.display()
    );
    Ok(())
}

/// Serves the API; `ready` is called once the listener is bound (the demo prints hints).
pub async fn serve(args: ServeArgs, store: Option<Store>) -> anyhow::Result<()> {
    let store = match store {
        Some(s) => s,
        None => args.store.open().await?,
    };
    bootstrap_admin(&store, &args.store.data).await?;
    verbund_placement::ensure_default_policies(&store, chrono::Utc::now())
        .await
        .context("cannot install the federation's default policies")?;
    let state = AppState::new(store.clone());
    tokio::spawn(housekeeping(state.clone()));
    let app = verbund_api::app(state);
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    println!("verbund listens on http://{addr} (API at http://{addr}/api/v1)");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown())
        .await
        .context("server failed")?;
    store.close().await;
    Ok(())
}

/// How often placements are re-checked and the lifecycle swept, at the latest
/// (certificates expire by the day; site and policy changes wake it at once).
const HOUSEKEEPING_EVERY: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// Background work of the control plane: continuous compliance and the time-driven
/// lifecycle (cancelled bookings retained, retention ended → deleted).
async fn housekeeping(state: AppState) {
    loop {
        let now = state.now();
        if let Err(e) = state.bookings.reevaluate("system/compliance", now).await {
            tracing::error!(error = %e, "re-evaluating placements failed");
        }
        if let Err(e) = state.bookings.sweep("system/lifecycle", now).await {
            tracing::error!(error = %e, "the lifecycle sweep failed");
        }
        tokio::select! {
            _ = state.reevaluate.notified() => {
                // Let a burst of changes settle into one pass.
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            _ = tokio::time::sleep(HOUSEKEEPING_EVERY) => {}
        }
    }
}

async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}
