//! Command-line grammar and dispatch.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use verbund_store::Store;

use crate::client;

#[derive(Debug, Parser)]
#[command(
    name = "verbund",
    version,
    about = "Control plane of the sovereign federated administration cloud"
)]
pub struct Cli {
    /// Log more (repeat for debug output).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

/// Where the data lives: the data folder, and optionally an external database.
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// Data folder: SQLite database, desired-state repository, admin token.
    #[arg(long, env = "VERBUND_DATA", default_value = "data")]
    pub data: PathBuf,
    /// Use this database instead of the SQLite file in the data folder
    /// (`postgres://…` for production).
    #[arg(long, env = "VERBUND_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Database connections kept for requests at most (default: PostgreSQL twice this
    /// host's cores, within 2–16; SQLite 8). Leaderships of replicas hold one more each
    /// beside them.
    #[arg(long, env = "VERBUND_DATABASE_CONNECTIONS", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub database_connections: Option<u32>,
}

impl StoreArgs {
    pub fn url(&self) -> String {
        match &self.database_url {
            Some(u) => u.clone(),
            None => format!("sqlite://{}", self.data.join("verbund.db").display()),
        }
    }

    /// Creates the data folder and opens the store.
    pub async fn open(&self) -> anyhow::Result<Store> {
        std::fs::create_dir_all(&self.data)
            .with_context(|| format!("cannot create the data folder {}", self.data.display()))?;
        Store::open_with(&self.url(), self.database_connections)
            .await
            .with_context(|| format!("cannot open the database {}", redact(&self.url())))
    }
}

/// Hides a password in a database URL.
fn redact(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// Where the desired state goes.
#[derive(Debug, Clone, Args)]
pub struct DeliveryArgs {
    /// URL of each site's desired-state repository as the site's Flux or Argo CD reach
    /// it, `{site}` standing for the site's name; it is written into each site's
    /// `root.yaml`. By default the repositories verbund serves itself:
    /// `<public URL>/git/{site}.git`.
    #[arg(long, env = "VERBUND_REPOSITORY_URL")]
    pub repository_url: Option<String>,
    /// Push every commit of the desired state to this Git remote (a URL or a path to a
    /// bare repository). With `{site}` in it (`https://git.example.org/verbund/{site}.git`)
    /// each site's own repository goes to its own remote; without, the whole desired
    /// state. Failed pushes are retried with back-off and never hold up a booking.
    #[arg(long, env = "VERBUND_GIT_REMOTE")]
    pub git_remote: Option<String>,
    /// The URL at which browsers and sites reach verbund (the OIDC redirect goes to
    /// `<public URL>/oidc/callback`, the sites' repositories are `<public URL>/git/…`).
    #[arg(
        long,
        env = "VERBUND_PUBLIC_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub public_url: String,
}

impl DeliveryArgs {
    /// The repository URL written into the sites' roots (with `{site}`).
    pub fn repository_url(&self) -> String {
        match &self.repository_url {
            Some(url) => url.clone(),
            None => format!("{}/git/{{site}}.git", self.public_url.trim_end_matches('/')),
        }
    }

    pub fn options(&self) -> verbund_delivery::PublisherOptions {
        let mut options = verbund_delivery::PublisherOptions::new(
            verbund_render::RenderOptions::new(self.repository_url()),
        );
        options.remote = self.git_remote.clone();
        options
    }
}

/// The desired-state repository inside the data folder.
pub fn repository_path(store: &StoreArgs) -> PathBuf {
    store.data.join("desired-state.git")
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub delivery: DeliveryArgs,
    /// Address to listen on.
    #[arg(long, env = "VERBUND_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// How often the rollout engine advances running rollouts, in milliseconds; a
    /// replica that does not lead asks for the lead as often.
    #[arg(long, env = "VERBUND_ROLLOUT_INTERVAL_MS", default_value_t = 2000,
        value_parser = clap::value_parser!(u64).range(50..=60_000))]
    pub rollout_interval_ms: u64,
    /// This replica's name in logs (several replicas share one PostgreSQL database;
    /// one of them leads the rollout engine).
    #[arg(long, env = "VERBUND_REPLICA")]
    pub replica: Option<String>,
    /// The federation's key (Ed25519, PKCS#8 as PEM or DER, e.g. from `openssl genpkey
    /// -algorithm ed25519`): verbund signs its Gaia-X credentials with it, as the
    /// `did:web` of the public URL. Without it, `DATA/federation.key`, generated on first
    /// start (mode 0600) — but on PostgreSQL, which replicas share, none: replicas must all
    /// be given the same key, and without one they issue no credentials.
    #[arg(long, env = "VERBUND_FEDERATION_KEY")]
    pub federation_key: Option<PathBuf>,
    #[command(flatten)]
    pub portal: PortalArgs,
}

/// The portal (served at `/` beside the API).
#[derive(Debug, Clone, clap::Args)]
pub struct PortalArgs {
    /// Mark the portal's cookies `Secure`: set this whenever browsers reach verbund over
    /// HTTPS (through a TLS-terminating proxy).
    #[arg(long, env = "VERBUND_SECURE_COOKIES")]
    pub secure_cookies: bool,
    /// How long a portal session lasts, in hours.
    #[arg(long, env = "VERBUND_SESSION_HOURS", default_value_t = 8,
        value_parser = clap::value_parser!(i64).range(1..=24))]
    pub session_hours: i64,
    /// Sign-in through this OpenID Connect provider (a Keycloak realm, e.g.
    /// `https://id.example.de/realms/verwaltung`); roles come from the ID token's groups.
    #[arg(long, env = "VERBUND_OIDC_ISSUER", requires_all = ["oidc_client_id", "oidc_client_secret"])]
    pub oidc_issuer: Option<String>,
    /// The portal's client id at the OpenID Connect provider.
    #[arg(long, env = "VERBUND_OIDC_CLIENT_ID")]
    pub oidc_client_id: Option<String>,
    /// The portal's client secret at the OpenID Connect provider.
    #[arg(long, env = "VERBUND_OIDC_CLIENT_SECRET", hide_env_values = true)]
    pub oidc_client_secret: Option<String>,
    /// The group path under which the provider keeps verbund's groups, e.g.
    /// `/verbund/organisation/<ARS>/org-admin`.
    #[arg(long, env = "VERBUND_OIDC_GROUP_PREFIX", default_value = "/verbund")]
    pub oidc_group_prefix: String,
    /// How many minutes the roles of an OIDC session may be old before the provider must
    /// confirm them again (with the session's refresh token; the session ends if it
    /// does not).
    #[arg(long, env = "VERBUND_OIDC_ROLES_MAX_AGE_MINUTES", default_value_t = 5,
        value_parser = clap::value_parser!(i64).range(1..=60))]
    pub oidc_roles_max_age_minutes: i64,
    /// The portal runs behind a reverse proxy that appends the client's address to
    /// `X-Forwarded-For`: sign-ins are throttled by that address (without this, by the
    /// connection's peer, which behind a proxy is the proxy for everyone).
    #[arg(long, env = "VERBUND_TRUST_FORWARDED_FOR")]
    pub trust_forwarded_for: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the control plane (the API and the portal).
    Serve(ServeArgs),
    /// Run the control plane with a demo federation loaded on first start, and
    /// simulated agents reporting for its sites.
    Demo(DemoArgs),
    /// Load official reference data into the store.
    #[command(subcommand)]
    Import(ImportCommand),
    /// Check or read the audit trail.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Check the desired-state repository against the store.
    #[command(subcommand, name = "desired-state")]
    DesiredState(DesiredStateCommand),
    /// The site agent: runs in a site's cluster and reports what runs there.
    #[command(subcommand)]
    Agent(crate::agent::AgentCommand),
    /// Simulated site agents: read the desired state and report as real sites would.
    Simulate(crate::simulate::SimulateArgs),
    #[command(flatten)]
    Client(client::ClientCommand),
}

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    #[command(flatten)]
    pub serve: ServeArgs,
    /// Do not start simulated agents (e.g. to run `verbund simulate` or real agents instead).
    #[arg(long)]
    pub no_simulation: bool,
    /// The Helm repository that serves the demo's own charts (`charts/` of the
    /// repository, packaged with `helm package` and indexed with `helm repo index`).
    #[arg(long, env = "VERBUND_DEMO_CHARTS", default_value = DEMO_CHARTS)]
    pub charts: String,
}

/// Where the demo's own charts are served unless `--charts` says otherwise.
pub const DEMO_CHARTS: &str = "https://charts.verbund.example/demo";

#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// Import the Destatis municipality directory (GV100AD fixed-width file).
    Gv100ad {
        file: PathBuf,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Import the OZG catalog (`ozg-leistungen.csv`).
    Ozg {
        file: PathBuf,
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Verify the hash chain of the whole audit trail in the database.
    Verify(StoreArgs),
    /// List audit events through the API.
    List(client::AuditListArgs),
}

#[derive(Debug, Subcommand)]
pub enum DesiredStateCommand {
    /// Render everything from the store and report every difference from the
    /// repository's HEAD, and every difference of a site's own repository from its
    /// folder there (exit status 1 when there is one); `--repair` commits the store's
    /// version instead and brings every site's repository in line, as the server does
    /// when it starts.
    Verify {
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        delivery: DeliveryArgs,
        /// Commit what differs (attributed to `system/cli`).
        #[arg(long)]
        repair: bool,
    },
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(a) => crate::serve::serve(a, None, crate::serve::Extras::None).await,
        Command::Demo(a) => crate::demo::run(a).await,
        Command::Import(ImportCommand::Gv100ad { file, store }) => {
            crate::import::gv100ad(&file, &store).await
        }
        Command::Import(ImportCommand::Ozg { file, store }) => {
            crate::import::ozg(&file, &store).await
        }
        Command::Audit(AuditCommand::Verify(store)) => verify_audit(&store).await,
        Command::Audit(AuditCommand::List(a)) => client::audit_list(a).await,
        Command::DesiredState(DesiredStateCommand::Verify {
            store,
            delivery,
            repair,
        }) => crate::serve::verify_desired_state(&store, &delivery, repair).await,
        Command::Agent(c) => crate::agent::command(c).await,
        Command::Simulate(a) => crate::simulate::run(a).await,
        Command::Client(c) => client::run(c).await,
    }
}

async fn verify_audit(args: &StoreArgs) -> anyhow::Result<()> {
    let store = args.open().await?;
    match store.verify_audit().await? {
        Ok(n) => {
            println!("audit chain intact: {n} events verified");
            Ok(())
        }
        Err(b) => anyhow::bail!(
            "audit chain broken at event {}: {} ({} events before it verified)",
            b.seq,
            b.reason,
            b.seq - 1
        ),
    }
}

pub fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "info,sqlx=warn,tower_http=warn",
        1 => "debug,sqlx=warn,hyper=info",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("VERBUND_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// An error chain as one plain sentence for the terminal.
pub fn sentence(e: &anyhow::Error) -> String {
    e.chain()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(": ")
}
