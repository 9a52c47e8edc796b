//! `verbund serve`: open the store, make sure an administrator exists, serve HTTP until
//! told to stop.

use std::path::Path;

use anyhow::Context;
use verbund_api::verbund_gaiax::{self, Federation};
use verbund_api::{issue_token, AppState};
use verbund_domain::account::{Membership, UserSpec};
use verbund_store::Store;

use crate::cli::{repository_path, DeliveryArgs, ServeArgs, StoreArgs};

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
                memberships: vec![Membership::federation_admin()],
            },
            now,
        )
        .await?;
    let (_, secret) =
        issue_token(store, "system/bootstrap", &user.id, "bootstrap", None, now).await?;
    write_secret(&path, &secret)?;
    set_portal_password(
        store,
        "system/bootstrap",
        &user,
        &data.join("admin.password"),
    )
    .await?;
    println!(
        "created the federation admin `{ADMIN}`; its API token is in {} (readable only by you)",
        path.display()
    );
    Ok(())
}

/// Gives `user` a random portal password and writes it to `path` (readable only by you).
pub async fn set_portal_password(
    store: &Store,
    actor: &str,
    user: &verbund_domain::account::User,
    path: &Path,
) -> anyhow::Result<()> {
    const ALPHABET: &[u8; 32] = b"abcdefghijkmnpqrstuvwxyz23456789";
    let mut random = [0u8; 12];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut random);
    let password: String = random
        .iter()
        .map(|b| {
            ALPHABET
                .get(usize::from(*b) % ALPHABET.len())
                .map(|c| char::from(*c))
        })
        .collect::<Option<_>>()
        .context("a password character outside the alphabet")?;
    let hash = verbund_web::hash_password(&password).map_err(anyhow::Error::msg)?;
    store
        .set_password(actor, &user.id, &hash, chrono::Utc::now())
        .await?;
    write_secret(path, &password)?;
    Ok(())
}

/// What else runs in the server's process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extras {
    None,
    /// `verbund demo`: simulated agents for every site, reporting through the API.
    SimulatedSites,
}

/// Serves the API (with `extras` once the listener is bound).
pub async fn serve(args: ServeArgs, store: Option<Store>, extras: Extras) -> anyhow::Result<()> {
    let store = match store {
        Some(s) => s,
        None => args.store.open().await?,
    };
    bootstrap_admin(&store, &args.store.data).await?;
    let shared = store.dialect() == verbund_store::Dialect::Postgres;
    let federation = federation(&args, shared)?;
    verbund_placement::ensure_default_policies(&store, chrono::Utc::now())
        .await
        .context("cannot install the federation's default policies")?;
    let replica = args
        .replica
        .clone()
        .unwrap_or_else(|| format!("pid-{}", std::process::id()));
    let publisher = open_publisher(&args.store, &args.delivery, store.clone(), &replica).await?;
    let started = publisher
        .start()
        .await
        .context("cannot bring the desired-state repository in line with the store")?;
    println!(
        "desired state: {} ({})",
        publisher.repo().path().display(),
        match &started.commit {
            _ if !publisher.is_writer() =>
                "following the history the replicas share; another replica writes".to_string(),
            Some(c) => format!(
                "{} folders brought in line with the store in commit {}",
                started.folders.len(),
                short(&c.0)
            ),
            None => "in line with the store".to_string(),
        }
    );
    println!(
        "sites pull their desired state from {} (each with its site token as the password)",
        args.delivery.options().render.repository_url
    );
    publisher.spawn();
    let every = std::time::Duration::from_millis(args.rollout_interval_ms);
    let wake_publisher = publisher.clone();
    let engine = verbund_rollout::Engine::new(
        store.clone(),
        std::sync::Arc::new(chrono::Utc::now),
        every,
        every,
        replica,
    )
    .on_change(move || wake_publisher.wake());
    tokio::spawn(engine.clone().run());
    let mut state = AppState::new(store.clone())
        .with_publisher(publisher)
        .with_rollout_engine(engine);
    if let Some(federation) = federation {
        println!(
            "Gaia-X credentials are issued as {} (its DID document at /.well-known/did.json)",
            federation.did()
        );
        state = state.with_gaiax(federation);
    }
    tokio::spawn(housekeeping(state.clone()));
    tokio::spawn(watch_silent_sites(state.clone()));
    let web = verbund_web::WebState::new(
        state.clone(),
        portal_config(&args.portal, &args.delivery.public_url).await?,
    );
    let app = verbund_api::app(state).merge(verbund_web::router(web));
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    println!("verbund listens on http://{addr}: the portal at http://{addr}/, the API at http://{addr}/api/v1");
    let _simulation = match extras {
        Extras::SimulatedSites => {
            Some(simulate_sites(&store, &repository_path(&args.store), addr).await?)
        }
        Extras::None => None,
    };
    // The peer's address reaches the portal's sign-in throttling (`ClientAddress`).
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown())
    .await
    .context("server failed")?;
    store.close().await;
    Ok(())
}

/// The federation key's file in the data folder, when `--federation-key` names none.
const FEDERATION_KEY: &str = "federation.key";

/// The federation as the issuer of Gaia-X credentials, under the `did:web` of the public
/// URL: with the key `--federation-key` names, or else the data folder's, generated on
/// first start. On PostgreSQL, which replicas share, none is generated: each replica
/// would sign with a key of its own, which the DID documents they serve would contradict;
/// without `--federation-key` the server issues nothing there.
pub(crate) fn federation(args: &ServeArgs, shared: bool) -> anyhow::Result<Option<Federation>> {
    let path = match &args.federation_key {
        Some(path) => path.clone(),
        None if shared => {
            println!(
                "no Gaia-X credentials: replicas on PostgreSQL must all sign with one federation key, given with --federation-key (none is generated)"
            );
            return Ok(None);
        }
        None => {
            let path = args.store.data.join(FEDERATION_KEY);
            if !path.exists() {
                write_secret(&path, &verbund_gaiax::generate_key()?)?;
                println!(
                    "generated the federation key {} (readable only by you); replicas must all be given one key with --federation-key",
                    path.display()
                );
            }
            path
        }
    };
    let key = std::fs::read(&path)
        .with_context(|| format!("cannot read the federation key {}", path.display()))?;
    let federation = Federation::new(&args.delivery.public_url, &key).with_context(|| {
        format!(
            "cannot issue Gaia-X credentials with the key {} as the public URL's did:web",
            path.display()
        )
    })?;
    Ok(Some(federation))
}

/// The portal's settings from the command line.
async fn portal_config(
    args: &crate::cli::PortalArgs,
    public_url: &str,
) -> anyhow::Result<verbund_web::PortalConfig> {
    let oidc = match &args.oidc_issuer {
        Some(issuer) => {
            let redirect = format!("{}/oidc/callback", public_url.trim_end_matches('/'));
            let oidc = verbund_web::oidc::Oidc::discover(
                issuer,
                args.oidc_client_id.as_deref().unwrap_or_default(),
                args.oidc_client_secret.as_deref().unwrap_or_default(),
                &redirect,
            )
            .await
            .with_context(|| {
                format!("cannot use the OpenID Connect provider `{issuer}` (--oidc-issuer)")
            })?
            .with_group_prefix(&args.oidc_group_prefix);
            println!(
                "portal sign-in through {issuer}, redirecting to {redirect}, roles from groups under {}",
                oidc.group_prefix
            );
            Some(std::sync::Arc::new(oidc))
        }
        None => None,
    };
    Ok(verbund_web::PortalConfig {
        secure_cookies: args.secure_cookies,
        session_hours: args.session_hours,
        oidc,
        oidc_roles_max_age: chrono::Duration::minutes(args.oidc_roles_max_age_minutes),
        trust_forwarded_for: args.trust_forwarded_for,
        ..Default::default()
    })
}

/// The name of the site tokens the demo's simulation uses; revoked and issued anew at
/// every start, so that tokens do not pile up.
const DEMO_TOKEN: &str = "simulated agent (verbund demo)";

/// Starts a simulated agent for every site, each with a fresh site token.
async fn simulate_sites(
    store: &Store,
    repository: &std::path::Path,
    addr: std::net::SocketAddr,
) -> anyhow::Result<crate::simulate::SimulationHandle> {
    let now = chrono::Utc::now();
    let mut tokens = std::collections::BTreeMap::new();
    let sites = store
        .list_sites(
            &verbund_store::SiteFilter::default(),
            &verbund_domain::page::PageRequest {
                limit: Some(1000),
                after: None,
            },
        )
        .await?;
    for site in sites.items {
        let name = site.spec.name;
        for old in store.site_tokens(&name).await? {
            if old.name == DEMO_TOKEN && old.revoked_at.is_none() {
                store
                    .revoke_site_token("system/demo", &name, &old.id, now)
                    .await?;
            }
        }
        let (_, secret) =
            verbund_api::issue_site_token(store, "system/demo", &name, DEMO_TOKEN, None, now)
                .await?;
        tokens.insert(name, secret);
    }
    let count = tokens.len();
    let handle = crate::simulate::start_in_process(
        &format!("http://{addr}"),
        repository,
        tokens,
        std::time::Duration::from_secs(5),
        std::time::Duration::from_secs(3),
    )
    .await?;
    println!(
        "simulated agents report for {count} sites every 5 s (labelled simulated in /api/v1/fleet); bookings turn active once their simulated site reports them ready"
    );
    Ok(handle)
}

/// Opens the desired-state repository of the data folder (creating it on first start).
/// On PostgreSQL several replicas may share the database, so the history is shared
/// through it and only the replica holding the writer's lock writes.
async fn open_publisher(
    store_args: &StoreArgs,
    delivery: &DeliveryArgs,
    store: Store,
    replica: &str,
) -> anyhow::Result<verbund_delivery::Publisher> {
    let path = repository_path(store_args);
    let mut options = delivery.options();
    options.shared_history = store.dialect() == verbund_store::Dialect::Postgres;
    options.replica = replica.to_owned();
    let shown = path.display().to_string();
    tokio::task::spawn_blocking(move || verbund_delivery::Publisher::open(store, &path, options))
        .await?
        .with_context(|| format!("cannot open the desired-state repository {shown}"))
}

fn short(commit: &str) -> &str {
    commit.get(..12).unwrap_or(commit)
}

/// `verbund desired-state verify [--repair]`.
pub async fn verify_desired_state(
    store_args: &StoreArgs,
    delivery: &DeliveryArgs,
    repair: bool,
) -> anyhow::Result<()> {
    let store = store_args.open().await?;
    let publisher = open_publisher(
        store_args,
        delivery,
        store.clone(),
        &format!("cli-{}", std::process::id()),
    )
    .await?;
    // With a shared history, check (or repair) its head, not what this folder last saw.
    publisher
        .catch_up()
        .await
        .context("cannot catch up with the shared desired-state history")?;
    if repair {
        let r = publisher.reconcile("system/cli", "repair").await?;
        match &r.commit {
            Some(c) => println!(
                "repaired: {} folders brought in line with the store in commit {}",
                r.folders.len(),
                short(&c.0)
            ),
            None if r.sites.is_empty() => println!(
                "desired state in line with the store ({} bookings)",
                r.bookings
            ),
            None => {}
        }
        for site in &r.sites {
            println!("repaired: the own repository of site {site} brought in line with the desired state");
        }
        return Ok(());
    }
    let found = publisher.verify().await?;
    if found.is_clean() {
        println!(
            "desired state in line with the store: {} matches what the store renders",
            publisher.repo().path().display()
        );
        return Ok(());
    }
    for d in &found.differences {
        println!("{}", describe(d));
    }
    for r in &found.refused {
        println!("refused   {} booking {}: {}", r.folder, r.booking, r.reason);
    }
    for (folder, reason) in &found.failures {
        println!("failed    {folder}: {reason}");
    }
    for s in &found.sites {
        println!(
            "{} in site {}'s own repository",
            describe(&s.difference),
            s.site
        );
    }
    let sites: std::collections::BTreeSet<&str> =
        found.sites.iter().map(|s| s.site.as_str()).collect();
    anyhow::bail!(
        "the desired state differs from the store in {} files, {} bookings cannot be rendered and {} folders cannot be rendered at all, and {} sites' own repositories differ from it in {} files; `verbund desired-state verify --repair` (or a restart of the server) commits the store's version of what can be rendered and brings every site's repository in line with it",
        found.differences.len(),
        found.refused.len(),
        found.failures.len(),
        sites.len(),
        found.sites.len()
    )
}

fn describe(d: &verbund_git::Difference) -> String {
    use verbund_git::Difference;
    match d {
        Difference::Missing(p) => format!("missing   {p}"),
        Difference::Extra(p) => format!("extra     {p}"),
        Difference::Changed(p) => format!("changed   {p}"),
    }
}

/// How often placements are re-checked and the lifecycle swept, at the latest
/// (certificates expire by the day; site and policy changes wake it at once).
const HOUSEKEEPING_EVERY: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// Background work of the control plane: continuous compliance and the time-driven
/// lifecycle (cancelled bookings retained, retention ended → deleted).
async fn housekeeping(state: AppState) {
    // The publisher reconciled when it started; later passes reconcile on the timer only,
    // not on every site or policy change (those arrive as events the publisher follows).
    let mut reconciled = std::time::Instant::now();
    loop {
        let now = state.now();
        if let Err(e) = state.bookings.reevaluate("system/compliance", now).await {
            tracing::error!(error = %e, "re-evaluating placements failed");
        }
        if let Err(e) = state.bookings.sweep("system/lifecycle", now).await {
            tracing::error!(error = %e, "the lifecycle sweep failed");
        }
        if let Err(e) = state.store.forget_past_sign_in_attempts(now).await {
            tracing::error!(error = %e, "forgetting past sign-in attempts failed");
        }
        let due = reconciled.elapsed() >= HOUSEKEEPING_EVERY;
        if let Some(p) = state.publisher.as_ref().filter(|_| due) {
            reconciled = std::time::Instant::now();
            // Whatever changed without an event of its own (an organisation renamed, a
            // commit lost) is caught here, by the replica that writes; then Git packs
            // what the commits (or, on the other replicas, the catching up) wrote.
            if p.is_writer() {
                if let Err(e) = p.reconcile(verbund_delivery::ACTOR, "housekeeping").await {
                    tracing::error!(error = %e, "reconciling the desired state failed");
                }
            }
            if let Err(e) = p.maintain().await {
                tracing::warn!(error = %e, "packing the desired-state repositories failed");
            }
        }
        tokio::select! {
            _ = state.reevaluate.notified() => {
                // Let a burst of changes settle into one pass.
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            _ = tokio::time::sleep(until_next_pass(&state).await) => {}
        }
    }
}

/// How long housekeeping may sleep: until the next capacity window starts or ends, or a
/// temporary booking's reminder or end is due (so that it happens at 00:00 German time,
/// not up to a pass later), at most [`HOUSEKEEPING_EVERY`]. A window or ending entered
/// meanwhile is carried out at the next pass.
async fn until_next_pass(state: &AppState) -> std::time::Duration {
    let now = state.now();
    let window = match state.store.window_schedule(now).await {
        Ok(s) => s.next,
        Err(e) => {
            tracing::error!(error = %e, "reading the capacity windows' schedule failed");
            None
        }
    };
    let ending = match state.bookings.next_ending().await {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e, "reading the temporary bookings' ends failed");
            None
        }
    };
    window
        .into_iter()
        .chain(ending)
        .min()
        // Due already: the last pass could not carry it out; try again in a while.
        .map(|t| (t - now).to_std().unwrap_or(OVERDUE_RETRY))
        .map_or(HOUSEKEEPING_EVERY, |d| d.min(HOUSEKEEPING_EVERY))
}

/// How soon housekeeping tries again a change that was due but not carried out.
const OVERDUE_RETRY: std::time::Duration = std::time::Duration::from_secs(60);

/// How often silent sites are looked for. Reads answer `unknown` the moment a site is
/// silent past its interval anyway; this pass records it once in the audit trail.
const SILENCE_CHECK_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Marks sites that stopped reporting, auditing each as `site.silent` once.
async fn watch_silent_sites(state: AppState) {
    loop {
        match state
            .store
            .mark_silent_sites("system/fleet", state.now())
            .await
        {
            Ok(sites) => {
                for site in sites {
                    tracing::warn!(%site, "site is silent past its report interval: its health is unknown");
                }
            }
            Err(e) => tracing::error!(error = %e, "looking for silent sites failed"),
        }
        tokio::time::sleep(SILENCE_CHECK_EVERY).await;
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
