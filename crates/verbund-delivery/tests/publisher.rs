//! The publisher on a real store (SQLite and PostgreSQL) and a real repository: each
//! change becomes one attributed commit, incremental delivery always equals a full
//! render, drift is found and repaired, and no secret ever enters the history.

// Tests and benchmarks may panic: a failed expectation is a failed run.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{json, Value};
use verbund_delivery::{render_booking, Publisher, PublisherOptions, SiteDifference};
use verbund_domain::booking::{Booking, BookingPatch, BookingSpec, BookingState};
use verbund_domain::catalog::{OfferingSpec, VersionSpec};
use verbund_domain::directory::{Level, OrganisationSpec, ProviderSpec, SiteSpec};
use verbund_domain::page::PageRequest;
use verbund_git::{Author, Difference};
use verbund_placement::{ensure_default_policies, BookingError, Bookings};
use verbund_render::RenderOptions;
use verbund_store::{AuditFilter, Store, StoreError};
use verbund_testkit::on_both;

const ADMIN: &str = "user/federation-admin";
const ERIKA: &str = "user/erika";
const MAX: &str = "user/max";
const LIFECYCLE: &str = "system/lifecycle";
const REPOSITORY_URL: &str = "https://git.example.org/desired-state.git";
/// Flux site in Bayern.
const FLUX: &str = "by-muc-1";
/// Argo CD site in Schleswig-Holstein.
const ARGO: &str = "sh-ki-1";

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 8, 0, 0)
        .single()
        .expect("a time")
}

// ---------------------------------------------------------------------------------------
// The federation

/// Bund; Bayern with the Landkreis München and three of its Gemeinden; Schleswig-Holstein
/// with the Kreis Pinneberg and Elmshorn. One provider runs a Flux site in Bayern and an
/// Argo CD site in Schleswig-Holstein (own Land first, so each Gemeinde's bookings land
/// on its Land's site). Offerings `nextcloud` (needs `postgresql`) and `postgresql`.
struct Fed {
    store: Store,
    bookings: Bookings,
    /// Unterhaching, Haar, Ottobrunn (Bayern), Elmshorn (Schleswig-Holstein).
    gemeinden: Vec<String>,
    publisher: Publisher,
    /// Holds the repository.
    _dir: tempfile::TempDir,
}

fn org(
    name: &str,
    level: Level,
    keys: Option<(&str, &str)>,
    parent: Option<&str>,
) -> OrganisationSpec {
    OrganisationSpec {
        name: name.into(),
        level,
        ars: keys.map(|k| k.0.into()),
        ags: keys.map(|k| k.1.into()),
        parent: parent.map(Into::into),
        population: None,
    }
}

fn site(name: &str, region: &str, delivery: &str) -> SiteSpec {
    serde_json::from_value(json!({
        "name": name,
        "display_name": format!("Rechenzentrum {name}"),
        "provider": "kommunal-it",
        "location": {"country": "DE", "region": region, "city": "Stadt"},
        "certifications": [
            {"scheme": "iso27001", "level": "it-grundschutz", "valid_until": "2099-12-31"},
            {"scheme": "bsi-c5", "level": "type2", "valid_until": "2099-12-31"},
        ],
        "kubernetes_version": "1.31",
        "capabilities": ["storage:rwx", "storage:rwo", "ingress:nginx", "backup"],
        "capacity": {"cpu_millis": 1_000_000, "memory_mib": 4_000_000, "storage_gib": 1_000_000},
        "environments": ["test", "prod"],
        "delivery": delivery
    }))
    .expect("site fixture")
}

fn offering(name: &str, vendor: &str, extra: Value) -> OfferingSpec {
    let mut v = json!({
        "name": name,
        "display_name": format!("Angebot {name}"),
        "vendor": vendor,
        "category": "saas",
        "data_classes": ["internal", "personal"],
        "plans": [
            {"name": "s", "display_name": "S", "replicas": 1, "monthly_price_cents": 9900,
             "resources": {"cpu_millis": 1000, "memory_mib": 1024, "storage_gib": 10}},
            {"name": "m", "display_name": "M", "replicas": 2, "monthly_price_cents": 19900,
             "resources": {"cpu_millis": 2000, "memory_mib": 2048, "storage_gib": 20}}
        ]
    });
    if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
        o.extend(e.clone());
    }
    serde_json::from_value(v).expect("offering fixture")
}

fn version(chart: &str, v: &str) -> VersionSpec {
    serde_json::from_value(json!({
        "version": v,
        "package": {"type": "helm", "repository": "https://charts.example.org",
                    "chart": chart, "chart_version": v}
    }))
    .expect("version fixture")
}

async fn federation(store: Store) -> Fed {
    federation_pushing(store, Remote::None).await
}

/// Where the publisher of a test federation pushes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Remote {
    None,
    /// A bare repository beside the desired-state repository.
    Bare,
    /// A path where no repository is.
    Missing,
    /// `remote-{site}.git`: a bare repository per site, created for every site the test
    /// federation has.
    PerSite,
}

async fn federation_pushing(store: Store, remote: Remote) -> Fed {
    let now = t0();
    let create = |spec: OrganisationSpec| {
        let store = store.clone();
        async move {
            store
                .create_organisation(ADMIN, &spec, now)
                .await
                .unwrap_or_else(|e| panic!("create `{}`: {e}", spec.name))
                .id
        }
    };
    let bund = create(org("Bundesrepublik Deutschland", Level::Bund, None, None)).await;
    let bayern = create(org(
        "Freistaat Bayern",
        Level::Land,
        Some(("09", "09")),
        Some(&bund),
    ))
    .await;
    let lk = create(org(
        "Landkreis München",
        Level::Kreis,
        Some(("09184", "09184")),
        Some(&bayern),
    ))
    .await;
    let sh = create(org(
        "Schleswig-Holstein",
        Level::Land,
        Some(("01", "01")),
        Some(&bund),
    ))
    .await;
    let pinneberg = create(org(
        "Kreis Pinneberg",
        Level::Kreis,
        Some(("01056", "01056")),
        Some(&sh),
    ))
    .await;
    let mut gemeinden = Vec::new();
    for (name, ars, ags, parent) in [
        ("Unterhaching", "091840147147", "09184147", &lk),
        ("Haar", "091840121121", "09184121", &lk),
        ("Ottobrunn", "091840137137", "09184137", &lk),
        ("Elmshorn", "010560015015", "01056015", &pinneberg),
    ] {
        gemeinden.push(create(org(name, Level::Gemeinde, Some((ars, ags)), Some(parent))).await);
    }
    let provider: ProviderSpec = serde_json::from_value(json!({
        "name": "kommunal-it",
        "display_name": "Kommunale IT",
        "legal_form": "AöR",
        "public_law": true,
        "seat": {"city": "München", "country": "DE"},
        "jurisdictions": ["DE"],
    }))
    .expect("provider fixture");
    store
        .put_provider(ADMIN, &provider, now)
        .await
        .expect("put_provider");
    for s in [site(FLUX, "DE-BY", "flux"), site(ARGO, "DE-SH", "argocd")] {
        store.put_site(ADMIN, &s, now).await.expect("put_site");
    }
    verbund_testkit::certified::certify_stated(&store, now).await;
    ensure_default_policies(&store, now)
        .await
        .expect("default policies");
    // The schema lets anything through: whether a literal secret is refused is the
    // booking's and the publisher's business, not the vendor's.
    let nextcloud = offering(
        "nextcloud",
        &bund,
        json!({"dependencies": [{"offering": "postgresql", "plan": "s"}], "retention_days": 30}),
    );
    let postgresql = offering("postgresql", &bund, json!({"category": "paas"}));
    for (spec, chart) in [(&postgresql, "postgresql"), (&nextcloud, "nextcloud")] {
        store
            .put_offering(ADMIN, spec, now)
            .await
            .expect("put_offering");
        store
            .publish_version(ADMIN, &spec.name, &version(chart, "1.0.0"), now)
            .await
            .expect("publish_version");
    }

    let dir = tempfile::tempdir().expect("temporary folder");
    let mut options = PublisherOptions::new(RenderOptions::new(REPOSITORY_URL));
    let remote_path = dir.path().join("remote.git");
    if remote == Remote::Bare {
        let made = Command::new("git")
            .args(["init", "-q", "--bare", "-b", "main"])
            .arg(&remote_path)
            .status()
            .expect("git init");
        assert!(made.success());
    }
    if remote == Remote::PerSite {
        for site in [FLUX, ARGO] {
            let made = Command::new("git")
                .args(["init", "-q", "--bare", "-b", "main"])
                .arg(dir.path().join(format!("remote-{site}.git")))
                .status()
                .expect("git init");
            assert!(made.success());
        }
    }
    if remote != Remote::None {
        options.remote = Some(match remote {
            Remote::PerSite => dir.path().join("remote-{site}.git").display().to_string(),
            _ => remote_path.display().to_string(),
        });
        options.push = verbund_git::PushOptions {
            attempts: 2,
            initial_backoff: std::time::Duration::from_millis(10),
            max_backoff: std::time::Duration::from_millis(50),
            attempt_timeout: std::time::Duration::from_secs(10),
        };
    }
    let publisher = Publisher::open(
        store.clone(),
        &dir.path().join("desired-state.git"),
        options,
    )
    .expect("open the publisher");
    let started = publisher.start().await.expect("start");
    assert!(
        started.commit.is_some(),
        "the sites' entry points are committed on start"
    );
    Fed {
        bookings: Bookings::new(store.clone()),
        store,
        gemeinden,
        publisher,
        _dir: dir,
    }
}

fn spec(organisation: &str, offering: &str, plan: &str, config: Value) -> BookingSpec {
    BookingSpec {
        dependencies: Default::default(),
        ending: None,
        organisation: organisation.into(),
        offering: offering.into(),
        plan: plan.into(),
        config,
        channel: "stable".into(),
        windows: Vec::new(),
    }
}

impl Fed {
    /// Books `nextcloud` for a Gemeinde: the booking first, then a new `postgresql`.
    async fn book(&self, actor: &str, gemeinde: usize, plan: &str) -> Vec<Booking> {
        let s = spec(
            &self.gemeinden[gemeinde],
            "nextcloud",
            plan,
            json!({"domain": "cloud.example.de"}),
        );
        let out = self
            .bookings
            .book(actor, &s, t0())
            .await
            .unwrap_or_else(|e| panic!("book: {e}"));
        assert!(
            out.iter().all(|b| b.state == BookingState::Placed),
            "{out:#?}"
        );
        out
    }

    async fn get(&self, id: &str) -> Booking {
        self.store.get_booking(id).await.expect("get_booking")
    }

    async fn deliver(&self) -> Vec<verbund_git::CommitId> {
        self.publisher
            .deliver_pending()
            .await
            .expect("deliver_pending")
    }

    /// Incremental delivery left the repository exactly as a full render would.
    async fn assert_in_line(&self, when: &str) {
        let verification = self.publisher.verify().await.expect("verify");
        assert!(verification.is_clean(), "{when}: {verification:#?}");
    }

    fn repo_path(&self) -> &Path {
        self.publisher.repo().path()
    }

    fn git(&self, args: &[&str]) -> String {
        git(self.repo_path(), args)
    }

    fn head(&self) -> Option<String> {
        self.publisher.repo().head().expect("head").map(|c| c.0)
    }

    /// Every file at HEAD below `prefix`, with its content.
    fn files_at_head(&self, prefix: &str) -> BTreeMap<String, String> {
        self.git(&["ls-tree", "-r", "--name-only", "HEAD", "--", prefix])
            .lines()
            .map(|p| (p.to_owned(), self.git(&["show", &format!("HEAD:{p}")])))
            .collect()
    }

    /// Sequence numbers of the audit events of one object, oldest first.
    async fn audit_seqs(&self, object: &str, action: Option<&str>) -> Vec<i64> {
        let filter = AuditFilter {
            object: Some(object.into()),
            action: action.map(Into::into),
            ..Default::default()
        };
        let page = PageRequest {
            limit: Some(1000),
            after: None,
        };
        let mut seqs: Vec<i64> = self
            .store
            .list_audit(&filter, &page)
            .await
            .expect("list_audit")
            .items
            .into_iter()
            .map(|e| e.seq)
            .collect();
        seqs.sort_unstable();
        seqs
    }

    /// The folder of a delivered booking: `sites/<site>/prod/bookings/<namespace>`.
    async fn folder(&self, b: &Booking) -> String {
        let files = self.rendered(b).await;
        let first = files.keys().next().expect("a delivered booking has files");
        let parts: Vec<&str> = first.splitn(6, '/').collect();
        assert_eq!(
            parts[..4],
            ["sites", b.site.as_deref().unwrap_or(""), "prod", "bookings"]
        );
        parts[..5].join("/")
    }

    async fn rendered(&self, b: &Booking) -> BTreeMap<String, String> {
        let b = self.get(&b.id).await;
        render_booking(&self.store, &b, &self.publisher.options().render)
            .await
            .expect("render_booking")
            .into_iter()
            .map(|f| (f.path, f.content))
            .collect()
    }

    /// The end of every test: the repository is in line, fsck-clean and secret-free.
    async fn finish(&self) {
        self.assert_in_line("at the end").await;
        self.fsck();
        let findings = self
            .publisher
            .repo()
            .scan_history_for_secrets()
            .expect("scan");
        assert!(findings.is_empty(), "secrets in the history: {findings:#?}");
    }

    /// The namespaces the shards of `site`'s production environment list at HEAD.
    fn listed(&self, site: &str) -> Vec<String> {
        let files = self.files_at_head(&format!("sites/{site}/prod/shards"));
        let mut out: Vec<String> = files
            .values()
            .flat_map(|text| verbund_render::listed_namespaces(text))
            .collect();
        out.sort();
        out
    }

    /// Commits files behind the publisher's back.
    fn hand_edit(&self, files: &[(&str, &str)]) {
        let mut change = self.publisher.repo().change().expect("change");
        for (path, content) in files {
            change.put_file(path, Some(content)).expect("put_file");
        }
        let author = Author {
            name: "mallory".into(),
            email: "mallory@example.org".into(),
        };
        change
            .commit(&author, "hand edit", &[])
            .expect("commit")
            .expect("a commit");
    }

    fn fsck(&self) {
        self.git(&["fsck", "--full", "--strict", "--no-progress"]);
    }
}

/// Runs git in the bare repository; panics on failure.
fn git(repo: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("--git-dir")
        .arg(repo)
        .args(args)
        .env_remove("GIT_DIR")
        .env_remove("GIT_INDEX_FILE")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8")
}

/// The `Audit-Event:` trailers of HEAD's message.
fn trailers(message: &str) -> Vec<i64> {
    message
        .lines()
        .filter_map(|l| l.strip_prefix("Audit-Event: "))
        .map(|s| s.trim().parse().expect("a sequence number"))
        .collect()
}

// ---------------------------------------------------------------------------------------
// The tests

on_both!(
    a_booking_is_one_attributed_commit,
    incremental_delivery_equals_a_full_render,
    a_random_sequence_stays_in_line,
    drift_is_reported_and_repaired,
    drift_is_not_activated_by_a_later_delivery,
    a_sites_own_repository_changed_behind_its_back_is_reported_and_repaired,
    a_literal_secret_never_reaches_the_repository,
    a_change_without_a_booking_event_is_caught_by_reconciling,
    site_capacity_totals_match_the_bookings,
    every_commit_reaches_the_remote,
    each_site_is_pushed_to_its_own_remote,
    a_failing_remote_never_holds_up_a_booking,
    a_crash_between_commit_and_provisioning_is_completed_on_start,
    a_booking_the_renderer_refuses_is_its_own_problem,
    a_declared_secret_is_sealed_once_for_its_site_and_never_in_plaintext,
    packs_stay_few_however_many_commits,
    a_capacity_window_reaches_the_site_at_its_start_and_its_end,
    a_shared_instance_delivers_its_tenant_list,
);

/// The tenancy ids a shared instance's folder at HEAD lists in its `tenants.yaml`.
fn tenants_at_head(files: &BTreeMap<String, String>) -> BTreeSet<String> {
    let Some((_, text)) = files.iter().find(|(p, _)| p.ends_with("/tenants.yaml")) else {
        return BTreeSet::new();
    };
    let mut out = BTreeSet::new();
    for doc in serde_yaml_ng::Deserializer::from_str(text) {
        let cm: Value = serde::Deserialize::deserialize(doc).expect("a ConfigMap");
        for entry in cm["data"].as_object().expect("data").values() {
            let entry: Value = serde_json::from_str(entry.as_str().expect("text")).expect("JSON");
            out.insert(entry["booking"].as_str().expect("an id").to_string());
        }
    }
    out
}

/// A shared instance through the publisher: tenancies are no folders of their own; each
/// one booked or cancelled rewrites its instance's tenant list in one commit, moves on to
/// `provisioning` with it, and leaves the repository equal to a full render.
async fn a_shared_instance_delivers_its_tenant_list(store: Store) {
    let f = federation(store).await;
    let now = t0();
    let vendor = f.get(&f.book(ADMIN, 0, "s").await[0].id).await;
    let vendor = f
        .store
        .get_offering(&vendor.offering)
        .await
        .expect("nextcloud")
        .spec
        .vendor;
    let shared = offering(
        "bauportal",
        &vendor,
        json!({"tenancy": "shared", "tenant_schema": {"type": "object"}}),
    );
    f.store
        .put_offering(ADMIN, &shared, now)
        .await
        .expect("put_offering");
    f.store
        .publish_version(ADMIN, "bauportal", &version("bauportal", "1.0.0"), now)
        .await
        .expect("publish_version");
    let bayern = f
        .store
        .find_organisation_by_key("09")
        .await
        .expect("find")
        .expect("Bayern");
    let instance = f
        .bookings
        .book(ADMIN, &spec(&bayern.id, "bauportal", "s", json!({})), now)
        .await
        .expect("the instance")
        .remove(0);
    f.deliver().await;
    let mut tenancies = Vec::new();
    for g in &f.gemeinden {
        let t = f
            .bookings
            .book_tenancy(
                ADMIN,
                &instance.id,
                &verbund_domain::shared::TenancySpec {
                    organisation: g.clone(),
                    config: json!({"kennung": g}),
                },
                now,
            )
            .await
            .expect("a tenancy");
        assert_eq!(t.state, BookingState::Placed, "{:?}", t.reason);
        tenancies.push(t.id);
    }
    let before = f.head();
    f.deliver().await;
    assert_ne!(f.head(), before, "the tenancies are committed");
    let folder = f.folder(&f.get(&instance.id).await).await;
    let files = f.files_at_head(&folder);
    let listed = tenants_at_head(&files);
    assert_eq!(listed, tenancies.iter().cloned().collect::<BTreeSet<_>>());
    for t in &tenancies {
        assert_eq!(f.get(t).await.state, BookingState::Provisioning);
    }
    let site = instance.site.clone().expect("placed");
    assert_eq!(
        f.listed(&site)
            .iter()
            .filter(|n| n.starts_with("bauportal-"))
            .count(),
        1,
        "tenancies have no namespace of their own"
    );
    f.assert_in_line("with the tenants").await;
    // One tenancy cancelled: its instance's list drops it, the others stay.
    let gone = tenancies.remove(0);
    f.bookings.cancel(ADMIN, &gone, now).await.expect("cancel");
    f.bookings.sweep(ADMIN, now).await.expect("sweep");
    f.deliver().await;
    let listed = tenants_at_head(&f.files_at_head(&folder));
    assert_eq!(listed, tenancies.iter().cloned().collect::<BTreeSet<_>>());
    for t in &tenancies {
        assert_eq!(f.get(t).await.state, BookingState::Provisioning);
    }
    f.assert_in_line("after a tenancy went").await;
    f.finish().await;
}

/// A capacity window's start and end are changes like any other: the sweep carries each
/// out once, and each is one commit by `system/lifecycle` that moves the booking's folder
/// to the plan then in effect (and back), the repository equal to a full render after
/// each.
async fn a_capacity_window_reaches_the_site_at_its_start_and_its_end(store: Store) {
    let f = federation(store).await;
    let mut s = spec(
        &f.gemeinden[0],
        "nextcloud",
        "s",
        json!({"domain": "cloud.example.de"}),
    );
    // 1 to 30 April 2026, German summer time.
    s.windows = vec!["2026-04-01..2026-04-30=m".parse().expect("a window")];
    let booked = f.bookings.book(ERIKA, &s, t0()).await.expect("booked");
    let nc = &booked[0];
    f.deliver().await;
    let folder = f.folder(nc).await;
    let plan_label = |f: &Fed| {
        f.files_at_head(&folder)
            .values()
            .find_map(|text| {
                text.lines()
                    .find_map(|l| l.trim().strip_prefix("verbund.dev/plan: "))
                    .map(str::to_owned)
            })
            .expect("the plan label")
    };
    assert_eq!(plan_label(&f), "s");
    let head = f.head();
    let bookings = &f.bookings;
    let sweep = async |at: DateTime<Utc>| bookings.sweep(LIFECYCLE, at).await.expect("sweep");
    let start = Utc.with_ymd_and_hms(2026, 3, 31, 22, 0, 0).unwrap();
    assert_eq!(sweep(start - chrono::Duration::seconds(1)).await, 0);
    assert!(f.deliver().await.is_empty());
    assert_eq!(f.head(), head);
    assert_eq!(sweep(start).await, 1);
    assert_eq!(f.deliver().await.len(), 1, "the start is one commit");
    assert_eq!(plan_label(&f), "m");
    let log = f.git(&["log", "-1", "--format=%an"]);
    assert_eq!(log.trim(), LIFECYCLE);
    f.assert_in_line("the window runs").await;
    assert_eq!(sweep(start).await, 0, "once");
    let end = Utc.with_ymd_and_hms(2026, 4, 30, 22, 0, 0).unwrap();
    assert_eq!(sweep(end).await, 1);
    assert_eq!(f.deliver().await.len(), 1, "the end is one commit");
    assert_eq!(plan_label(&f), "s");
    f.assert_in_line("the window is over").await;
    f.finish().await;
}

/// Each delivery commits a pack to the whole desired state and to the site's own
/// repository; past `PACKS_BEFORE_COMPACTION` the publisher folds them after its commits,
/// on a task of its own (the next delivery does not wait for it), so neither repository piles up packs between housekeeping passes (before: one pack per
/// commit until `gc --auto` every 15 minutes).
async fn packs_stay_few_however_many_commits(store: Store) {
    let f = federation(store).await;
    let commits = verbund_delivery::PACKS_BEFORE_COMPACTION + 8;
    for _ in 0..commits {
        f.book(ERIKA, 0, "s").await;
        assert_eq!(f.deliver().await.len(), 1);
        // Compactions run beside the commits; reads see the repository meanwhile.
        assert!(f.publisher.verify().await.expect("verify").is_clean());
    }
    f.publisher.compaction_finished().await;
    let whole = f.publisher.repo().pack_count().expect("packs");
    let own = f
        .publisher
        .sites()
        .repo(FLUX)
        .expect("site repository")
        .pack_count()
        .expect("packs");
    for (name, packs) in [("whole", whole), ("site", own)] {
        assert!(
            packs <= verbund_delivery::PACKS_BEFORE_COMPACTION,
            "{packs} packs in the {name} repository after {commits} commits"
        );
    }
    let verification = f.publisher.verify().await.expect("verify");
    assert!(verification.is_clean(), "{verification:?}");
    f.finish().await;
}

/// A booking's declared secret reaches the repository only sealed for its site, in
/// `secrets.yaml`; an unchanged booking is not sealed again (a reconciliation, a second
/// render and `verify` find nothing to do), a new value is a new sealed document; the
/// site's identity opens it; the value is in no commit.
async fn a_declared_secret_is_sealed_once_for_its_site_and_never_in_plaintext(store: Store) {
    let f = federation(store).await;
    let (identity, recipient) = verbund_seal::Identities::generate();
    let identities = verbund_seal::Identities::parse(&identity).expect("identity");
    let mut flux = site(FLUX, "DE-BY", "flux");
    flux.age_recipient = Some(recipient.clone());
    f.store
        .put_site(ADMIN, &flux, t0())
        .await
        .expect("put_site");
    let vendor = f
        .store
        .get_offering("nextcloud")
        .await
        .expect("nextcloud")
        .spec
        .vendor;
    let keycloak = offering(
        "keycloak",
        &vendor,
        json!({"config_schema": {"type": "object", "properties": {
            "realm": {"type": "string"},
            "admin_password": {"type": "string", "writeOnly": true}
        }}}),
    );
    f.store
        .put_offering(ADMIN, &keycloak, t0())
        .await
        .expect("put_offering");
    f.store
        .publish_version(ADMIN, "keycloak", &version("keycloak", "1.0.0"), t0())
        .await
        .expect("publish_version");
    f.deliver().await;
    let booked = f
        .bookings
        .book(
            ERIKA,
            &spec(
                &f.gemeinden[0],
                "keycloak",
                "s",
                json!({"realm": "unterhaching", "admin_password": "hunter2-geheim"}),
            ),
            t0(),
        )
        .await
        .expect("book");
    let b = &booked[0];
    assert_eq!(b.site.as_deref(), Some(FLUX), "{b:?}");
    f.deliver().await;
    let folder = f.folder(b).await;
    let opened = |files: &BTreeMap<String, String>| -> (String, Value) {
        let text = files
            .get(&format!("{folder}/secrets.yaml"))
            .unwrap_or_else(|| panic!("no secrets.yaml in {files:#?}"))
            .clone();
        let sealed: Value = serde_yaml_ng::from_str(&text).expect("YAML");
        assert!(verbund_render::sealed::is_sealed_secret(&sealed), "{text}");
        let plain = verbund_seal::open(&sealed, &identities).expect("the site opens it");
        (text, plain)
    };
    let (first, plain) = opened(&f.files_at_head(&folder));
    use base64::Engine;
    let value = |plain: &Value| {
        let b64 = plain["data"]["values.yaml"].as_str().expect("values.yaml");
        let json = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .expect("base64");
        serde_json::from_slice::<Value>(&json).expect("JSON")
    };
    assert_eq!(value(&plain), json!({"admin_password": "hunter2-geheim"}));
    assert!(
        f.files_at_head(&folder)[&format!("{folder}/kustomization.yaml")].contains("secrets.yaml")
    );

    // Unchanged: not sealed again, whoever renders.
    let head = f.head();
    let again = f
        .publisher
        .reconcile("system/test", "again")
        .await
        .expect("reconcile");
    assert_eq!(again.commit, None, "{again:?}");
    assert_eq!(f.head(), head);
    assert_eq!(
        f.rendered(b).await[&format!("{folder}/secrets.yaml")],
        first
    );
    f.assert_in_line("unchanged").await;

    // A new value: a new sealed document.
    f.bookings
        .patch(
            ERIKA,
            &b.id,
            &BookingPatch {
                config: Some(json!({"realm": "unterhaching", "admin_password": "n3u-geheim"})),
                ..Default::default()
            },
            t0(),
        )
        .await
        .expect("patch");
    f.deliver().await;
    let (second, plain) = opened(&f.files_at_head(&folder));
    assert_ne!(first, second);
    assert_eq!(value(&plain), json!({"admin_password": "n3u-geheim"}));
    let history = f.git(&["log", "--all", "-p"]);
    for secret in ["hunter2-geheim", "n3u-geheim"] {
        assert!(!history.contains(secret), "{secret} in the history");
    }
    f.finish().await;
}

/// A booking whose configuration the renderer refuses (here a control character no GitOps
/// engine can carry, stored before the rule that refuses it at the API existed): its site's
/// other bookings are delivered, it keeps the folder its site already has, it shows why
/// (audited once), `verify` names it, and once it is mended it is delivered again.
async fn a_booking_the_renderer_refuses_is_its_own_problem(store: Store) {
    let f = federation(store).await;
    let first = f.book(ERIKA, 0, "s").await;
    f.deliver().await;
    let bad = first[0].clone();
    let folder = f.folder(&bad).await;
    let before = f.files_at_head(&folder);
    assert!(!before.is_empty());
    // The configuration changes behind the API's back: legacy data.
    let poisoned = json!({"domain": "cloud\u{7F}.example.de"});
    f.store
        .update_booking(ADMIN, &bad.id, t0(), |b, _| {
            let mut b = b.clone();
            b.config = poisoned.clone();
            Ok::<_, verbund_store::StoreError>(Some(verbund_store::NewBooking {
                resources: Default::default(),
                booking: b,
                decision: None,
                action: "booking.update".into(),
                secrets: None,
            }))
        })
        .await
        .expect("stored");
    // Another booking of the same site is made and delivered all the same.
    let second = f.book(ERIKA, 1, "s").await;
    let commits = f.deliver().await;
    assert_eq!(
        commits.len(),
        1,
        "{}",
        f.git(&["log", "-p", "-3", "--format=%s"])
    );
    assert!(
        !f.files_at_head(&f.folder(&second[0]).await).is_empty(),
        "the other booking is delivered"
    );
    assert_eq!(f.get(&second[0].id).await.state, BookingState::Provisioning);
    // The refused one keeps what its site has, and is still listed for it.
    assert_eq!(f.files_at_head(&folder), before);
    let namespace = folder.rsplit('/').next().expect("a namespace").to_owned();
    let site = bad.site.clone().expect("placed");
    assert!(f.listed(&site).contains(&namespace));
    // It says why, and the audit trail says when.
    let shown = f.get(&bad.id).await;
    let why = shown.undeliverable.expect("undeliverable").reason;
    assert!(
        why.contains("U+007F") && why.contains("/config/domain"),
        "{why}"
    );
    assert_eq!(
        f.audit_seqs(
            &format!("booking/{}", bad.id),
            Some("booking.undeliverable")
        )
        .await
        .len(),
        1
    );
    // A full reconciliation agrees, and records nothing twice.
    f.publisher
        .reconcile("system/test", "test")
        .await
        .expect("reconcile");
    assert_eq!(
        f.audit_seqs(
            &format!("booking/{}", bad.id),
            Some("booking.undeliverable")
        )
        .await
        .len(),
        1
    );
    assert_eq!(f.files_at_head(&folder), before);
    // `verify` names it.
    let found = f.publisher.verify().await.expect("verify");
    assert_eq!(found.refused.len(), 1, "{found:?}");
    assert_eq!(found.refused[0].booking, bad.id);
    assert!(found.differences.is_empty(), "{found:?}");
    // Mended through the API, it is delivered again.
    f.bookings
        .patch(
            ERIKA,
            &bad.id,
            &BookingPatch {
                config: Some(json!({"domain": "cloud2.example.de"})),
                ..Default::default()
            },
            t0(),
        )
        .await
        .expect("patch");
    f.deliver().await;
    assert!(f.get(&bad.id).await.undeliverable.is_none());
    assert_eq!(
        f.audit_seqs(&format!("booking/{}", bad.id), Some("booking.deliverable"))
            .await
            .len(),
        1
    );
    assert_ne!(f.files_at_head(&folder), before);
    assert!(f.publisher.verify().await.expect("verify").is_clean());
    f.finish().await;
}

/// The process died after committing a placed booking's folder but before moving the
/// booking to `provisioning`: the reconciliation on start finds nothing to commit and
/// completes the move.
async fn a_crash_between_commit_and_provisioning_is_completed_on_start(store: Store) {
    let f = federation(store).await;
    let booked = f.book(ERIKA, 0, "s").await;
    let site = booked[0].site.clone().expect("placed");
    let folder = format!("sites/{site}/prod");
    let files = verbund_delivery::render_site(
        &f.store,
        &site,
        verbund_domain::directory::Environment::Prod,
        &RenderOptions::new(REPOSITORY_URL),
    )
    .await
    .expect("render");
    let mut change = f.publisher.repo().change().expect("change");
    change.put_folder(&folder, files).expect("put");
    change
        .commit(
            &verbund_git::Author {
                name: ERIKA.into(),
                email: "erika@example.org".into(),
            },
            "the commit before the crash",
            &[],
        )
        .expect("commit")
        .expect("a commit");
    let head = f.head();
    for b in &booked {
        assert_eq!(f.get(&b.id).await.state, BookingState::Placed);
    }
    let r = f
        .publisher
        .reconcile("system/delivery", "start")
        .await
        .expect("reconcile");
    assert!(r.commit.is_none(), "{r:?}");
    assert_eq!(f.head(), head);
    for b in &booked {
        assert_eq!(f.get(&b.id).await.state, BookingState::Provisioning);
    }
}

/// Waits (≤ 10 s) until the publisher's push status satisfies `done`.
async fn push_settles(f: &Fed, done: impl Fn(&verbund_delivery::PushStatus) -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !done(&f.publisher.push_status()) {
        assert!(
            std::time::Instant::now() < deadline,
            "push status: {:?}",
            f.publisher.push_status()
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// With `--git-remote`, the running publisher pushes each commit to the Git server the
/// sites pull from: the remote's `main` is HEAD after a booking is delivered.
async fn every_commit_reaches_the_remote(store: Store) {
    let f = federation_pushing(store, Remote::Bare).await;
    let worker = f.publisher.spawn();
    f.book(ERIKA, 0, "s").await;
    f.publisher.wake();
    let first = f.head();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while f.head() == first {
        assert!(std::time::Instant::now() < deadline, "no commit");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let head = f.head();
    push_settles(&f, |s| s.pushed == head).await;
    let remote = f.repo_path().parent().expect("parent").join("remote.git");
    assert_eq!(
        git(&remote, &["rev-parse", "main"]).trim(),
        head.as_deref().unwrap_or_default()
    );
    worker.abort();
}

/// With `{site}` in `--git-remote`, each site's own repository goes to its own remote:
/// the remote holds exactly the site's repository (the same commit, nothing of another
/// site), and a site whose bookings did not change is not pushed again.
async fn each_site_is_pushed_to_its_own_remote(store: Store) {
    let f = federation_pushing(store, Remote::PerSite).await;
    let worker = f.publisher.spawn();
    let booked = f.book(ERIKA, 0, "s").await;
    f.publisher.wake();
    let site = f.get(&booked[0].id).await.site.expect("placed");
    let own = f.publisher.sites().repo(&site).expect("site repository");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let remotes = f.repo_path().parent().expect("parent").to_path_buf();
    let remote_head = |site: &str| {
        let out = Command::new("git")
            .arg("-C")
            .arg(remotes.join(format!("remote-{site}.git")))
            .args(["rev-parse", "--verify", "-q", "main"])
            .output()
            .expect("git rev-parse");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    loop {
        let head = own.head().expect("head").map(|h| h.0);
        if head.is_some() && head.as_deref() == Some(remote_head(&site).as_str()) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "site `{site}` not pushed: {:?}",
            f.publisher.push_status()
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // Each remote holds its own site's repository (whose tree is the site's folder of the
    // whole state only), never the whole state.
    let whole = f.head().expect("a commit");
    for name in [FLUX, ARGO] {
        let theirs = || {
            f.publisher
                .sites()
                .repo(name)
                .expect("site")
                .head()
                .expect("head")
                .map(|h| h.0)
                .unwrap_or_default()
        };
        // Each push follows the commit it was woken for; wait until it caught up.
        while remote_head(name) != theirs() {
            assert!(
                std::time::Instant::now() < deadline,
                "`{name}`: remote {} but repository {}",
                remote_head(name),
                theirs()
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert_ne!(
            remote_head(name),
            whole,
            "the whole state went to `{name}`'s remote"
        );
    }
    worker.abort();
}

/// A remote that cannot be reached is retried and reported, and changes go on being
/// committed locally meanwhile.
async fn a_failing_remote_never_holds_up_a_booking(store: Store) {
    let f = federation_pushing(store, Remote::Missing).await;
    let worker = f.publisher.spawn();
    for gemeinde in [0, 3] {
        let before = f.head();
        let booked = f.book(ERIKA, gemeinde, "s").await;
        f.publisher.wake();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while f.head() == before {
            assert!(std::time::Instant::now() < deadline, "no local commit");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert!(!f.files_at_head(&f.folder(&booked[0]).await).is_empty());
    }
    push_settles(&f, |s| s.error.is_some()).await;
    assert!(f.publisher.push_status().pushed.is_none());
    worker.abort();
    f.assert_in_line("with a failing remote").await;
}

/// Renaming an organisation changes its bookings' namespaces but is no booking event:
/// the reconciliation (whose shortcut skips only sites whose inputs are unchanged) finds
/// it and moves the folders, and the repository is again what a full render gives.
async fn a_change_without_a_booking_event_is_caught_by_reconciling(store: Store) {
    let f = federation(store).await;
    let booked = f.book(ERIKA, 0, "s").await;
    f.deliver().await;
    let before = f.folder(&booked[0]).await;
    let unchanged = f
        .publisher
        .reconcile("system/test", "test")
        .await
        .expect("reconcile");
    assert!(unchanged.commit.is_none(), "{unchanged:?}");

    let mut org = f
        .store
        .get_organisation(&f.gemeinden[0])
        .await
        .expect("org");
    org.name = "Gemeinde Unterhaching (umbenannt)".into();
    let spec = verbund_domain::directory::OrganisationSpec {
        name: org.name.clone(),
        level: org.level,
        ars: org.ars.clone(),
        ags: org.ags.clone(),
        parent: org.parent.clone(),
        population: org.population,
    };
    f.store
        .update_organisation(ERIKA, &org.id, &spec, t0())
        .await
        .expect("rename");
    assert_ne!(f.folder(&booked[0]).await, before);
    let renamed = f
        .publisher
        .reconcile("system/test", "test")
        .await
        .expect("reconcile");
    assert!(renamed.commit.is_some(), "the rename was not delivered");
    f.assert_in_line("after the rename").await;
    assert!(
        f.files_at_head(&before).is_empty(),
        "the old folder is still there"
    );
}

/// The running capacity totals the triggers keep equal the sum over the bookings that
/// hold capacity, after bookings, changes of plan, cancellation and retention.
async fn site_capacity_totals_match_the_bookings(store: Store) {
    let f = federation(store).await;
    let a = f.book(ERIKA, 0, "s").await;
    f.book(MAX, 3, "s").await;
    f.bookings
        .patch(
            ERIKA,
            &a[0].id,
            &verbund_domain::booking::BookingPatch {
                plan: Some("m".into()),
                ..Default::default()
            },
            t0(),
        )
        .await
        .expect("patch");
    f.bookings
        .cancel(ERIKA, &a[0].id, t0())
        .await
        .expect("cancel");
    f.bookings
        .sweep("system/lifecycle", t0())
        .await
        .expect("sweep");
    let usage = f.store.site_usage().await.expect("usage");
    let live = f.store.live_bookings().await.expect("live");
    let cancelling = f
        .store
        .list_bookings(
            &verbund_store::BookingFilter {
                state: Some(BookingState::Cancelling),
                ..Default::default()
            },
            &Default::default(),
        )
        .await
        .expect("list");
    assert!(cancelling.items.is_empty());
    for u in &usage {
        let mut sum = verbund_domain::directory::Resources::default();
        for (b, r) in live
            .iter()
            .filter(|(b, _)| b.site.as_deref() == Some(u.site.spec.name.as_str()))
        {
            assert!(b.state.holds_capacity());
            sum.cpu_millis += r.cpu_millis;
            sum.memory_mib += r.memory_mib;
            sum.storage_gib += r.storage_gib;
        }
        assert_eq!(u.used, sum, "site {}", u.site.spec.name);
    }
}

/// (1, 2) A booking with its new dependency is one commit by the booking's actor naming
/// both audit events; both folders are exactly what `render_booking` gives, listed in
/// the site's kustomization; both bookings move on to `provisioning`. Delivering or
/// reconciling again changes nothing.
async fn a_booking_is_one_attributed_commit(store: Store) {
    let f = federation(store).await;
    let booked = f.book(ERIKA, 0, "s").await;
    assert_eq!(booked.len(), 2, "nextcloud and its postgresql");
    assert_eq!(booked[1].offering, "postgresql");
    assert_eq!(booked[0].site.as_deref(), Some(FLUX));

    let commits = f.deliver().await;
    assert_eq!(commits.len(), 1, "{commits:?}");
    assert_eq!(f.head().as_ref(), Some(&commits[0].0));
    let log = f.git(&["log", "-1", "--format=%an%n%ae%n%B"]);
    let mut lines = log.lines();
    assert_eq!(lines.next(), Some(ERIKA), "{log}");
    assert_eq!(lines.next(), Some("erika@users.verbund.invalid"), "{log}");
    let mut expected = Vec::new();
    for b in &booked {
        expected.extend(
            f.audit_seqs(&format!("booking/{}", b.id), Some("booking.create"))
                .await,
        );
    }
    expected.sort_unstable();
    assert_eq!(expected.len(), 2);
    assert_eq!(trailers(&log), expected, "{log}");

    let listed = f.listed(FLUX);
    for b in &booked {
        let folder = f.folder(b).await;
        assert_eq!(f.files_at_head(&folder), f.rendered(b).await, "{folder}");
        let namespace = folder.rsplit('/').next().expect("a namespace");
        assert!(listed.iter().any(|n| n == namespace), "{listed:?}");
        assert_eq!(f.get(&b.id).await.state, BookingState::Provisioning);
    }
    assert!(
        f.files_at_head(&format!("sites/{ARGO}/prod/bookings"))
            .is_empty(),
        "nothing was booked on the Argo CD site"
    );

    let head = f.head();
    assert!(
        f.deliver().await.is_empty(),
        "the move to provisioning is not a change"
    );
    let again = f
        .publisher
        .reconcile("system/test", "test")
        .await
        .expect("reconcile");
    assert_eq!(again.commit, None, "{again:?}");
    assert_eq!(f.head(), head);
    f.finish().await;
}

/// (3) After each step of a scripted sequence the repository equals a full render:
/// bookings on both sites, a plan change, a cancellation (the folder stays), the sweep
/// (the folder and its kustomization line go), and the dependency's network policy
/// admitting exactly its dependents.
async fn incremental_delivery_equals_a_full_render(store: Store) {
    let f = federation(store).await;
    let first = f.book(ERIKA, 1, "s").await;
    let (nc1, pg) = (&first[0], &first[1]);
    f.deliver().await;
    f.assert_in_line("first booking").await;
    // A second nextcloud of the same Gemeinde binds the existing postgresql.
    let second = f.book(ERIKA, 1, "m").await;
    assert_eq!(second.len(), 1);
    let nc2 = &second[0];
    assert_eq!(nc2.dependencies, vec![pg.id.clone()]);
    let elmshorn = f.book(MAX, 3, "s").await;
    assert_eq!(elmshorn[0].site.as_deref(), Some(ARGO));
    assert_eq!(f.deliver().await.len(), 2, "one commit per actor");
    f.assert_in_line("bookings on both sites").await;

    let pg_folder = f.folder(pg).await;
    let policy = |f: &Fed| f.files_at_head(&format!("{pg_folder}/networkpolicies.yaml"));
    let nc1_ns = f
        .folder(nc1)
        .await
        .rsplit('/')
        .next()
        .map(str::to_owned)
        .unwrap_or_default();
    let nc2_folder = f.folder(nc2).await;
    let nc2_ns = nc2_folder
        .rsplit('/')
        .next()
        .map(str::to_owned)
        .unwrap_or_default();
    let before = policy(&f).into_values().collect::<String>();
    assert!(before.contains("allow-from-dependents"), "{before}");
    assert!(
        before.contains(&nc1_ns) && before.contains(&nc2_ns),
        "{before}"
    );

    f.bookings
        .patch(
            ERIKA,
            &nc1.id,
            &BookingPatch {
                plan: Some("m".into()),
                ..Default::default()
            },
            t0(),
        )
        .await
        .expect("patch");
    assert_eq!(f.deliver().await.len(), 1);
    f.assert_in_line("plan changed").await;

    f.bookings
        .cancel(ERIKA, &nc2.id, t0())
        .await
        .expect("cancel");
    f.deliver().await;
    f.assert_in_line("cancelled").await;
    assert_eq!(f.get(&nc2.id).await.state, BookingState::Cancelling);
    assert!(
        !f.files_at_head(&nc2_folder).is_empty(),
        "a cancelling booking keeps running"
    );

    assert_eq!(f.bookings.sweep(LIFECYCLE, t0()).await.expect("sweep"), 1);
    assert_eq!(f.get(&nc2.id).await.state, BookingState::Retained);
    let commits = f.deliver().await;
    assert_eq!(
        commits.len(),
        1,
        "{}",
        f.git(&["log", "-p", "-3", "--format=%s"])
    );
    f.assert_in_line("retained").await;
    assert!(
        f.files_at_head(&nc2_folder).is_empty(),
        "a retained booking's folder is removed"
    );
    let listed = f.listed(FLUX);
    assert!(!listed.contains(&nc2_ns), "{listed:?}");
    let after = policy(&f).into_values().collect::<String>();
    assert!(
        after.contains(&nc1_ns) && !after.contains(&nc2_ns),
        "{after}"
    );
    assert_eq!(
        f.git(&["log", "-1", "--format=%an"]).trim(),
        LIFECYCLE,
        "the sweep's commit is the lifecycle's"
    );
    f.finish().await;
}

/// A small deterministic generator (xorshift64*), so that the sequence is reproducible.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % n.max(1)
    }
}

/// (3) A seeded random sequence of bookings, plan changes, cancellations (of
/// applications and of dependencies) and sweeps by alternating actors, delivered after
/// one to three steps at a time: after each delivery the repository equals a full render.
async fn a_random_sequence_stays_in_line(store: Store) {
    let f = federation(store).await;
    let mut rng = Rng(0x5eed_f00d_7e57_2026);
    let mut live: Vec<String> = Vec::new();
    let mut log = Vec::new();
    let actors = [ERIKA, MAX];
    for step in 0..36 {
        let actor = actors[rng.below(2)];
        match rng.below(10) {
            0..=3 => {
                let g = rng.below(f.gemeinden.len());
                let plan = ["s", "m"][rng.below(2)];
                let out = f.book(actor, g, plan).await;
                log.push(format!("{step}: {actor} books for {g} ({plan})"));
                live.extend(out.into_iter().map(|b| b.id));
            }
            4..=5 if !live.is_empty() => {
                let id = live[rng.below(live.len())].clone();
                let plan = ["s", "m"][rng.below(2)];
                let patch = BookingPatch {
                    plan: Some(plan.into()),
                    ..Default::default()
                };
                f.bookings
                    .patch(actor, &id, &patch, t0())
                    .await
                    .expect("patch");
                log.push(format!("{step}: {actor} changes {id} to {plan}"));
            }
            6..=7 if !live.is_empty() => {
                let id = live.remove(rng.below(live.len()));
                match f.bookings.cancel(actor, &id, t0()).await {
                    Ok(_) => log.push(format!("{step}: {actor} cancels {id}")),
                    // A dependency others still run on stays.
                    Err(BookingError::Store(StoreError::Conflict(why))) => {
                        log.push(format!("{step}: {actor} may not cancel {id}: {why}"));
                        live.push(id);
                    }
                    Err(e) => panic!("cancel: {e:?}"),
                }
            }
            _ => {
                let moved = f.bookings.sweep(LIFECYCLE, t0()).await.expect("sweep");
                log.push(format!("{step}: sweep moved {moved}"));
            }
        }
        if rng.below(3) == 0 || step == 35 {
            f.deliver().await;
            f.assert_in_line(&log.join("\n")).await;
        }
    }
    assert!(
        live.len() >= 3,
        "the sequence should leave a fleet: {log:#?}"
    );
    f.finish().await;
}

/// A federation with Erika's and Max's bookings delivered and in line, and the folder of
/// Erika's first booking.
async fn two_delivered(store: Store) -> (Fed, String) {
    let f = federation(store).await;
    let booked = f.book(ERIKA, 0, "s").await;
    f.book(MAX, 3, "s").await;
    f.deliver().await;
    f.assert_in_line("delivered").await;
    let folder = f.folder(&booked[0]).await;
    (f, folder)
}

/// (4) A commit behind the publisher's back is reported by `verify` and repaired by
/// `reconcile`, in a commit naming its `desired_state.reconcile` audit event.
async fn drift_is_reported_and_repaired(store: Store) {
    let (f, folder) = two_delivered(store).await;
    let changed = format!("{folder}/kustomization.yaml");
    let extra = format!("sites/{FLUX}/prod/bookings/unbekannt/deployment.yaml");
    let ghost = "sites/ghost-1/prod/kustomization.yaml".to_owned();
    f.hand_edit(&[
        (&changed, "resources: []\n"),
        (&extra, "kind: Deployment\n"),
        (&ghost, "resources: []\n"),
    ]);
    let differences = f.publisher.verify().await.expect("verify").differences;
    assert_eq!(
        differences,
        vec![
            Difference::Extra(extra.clone()),
            Difference::Extra(ghost.clone()),
            Difference::Changed(changed.clone()),
        ]
        .into_iter()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect::<Vec<_>>(),
    );
    let repaired = f
        .publisher
        .reconcile("system/test", "test")
        .await
        .expect("reconcile");
    let commit = repaired.commit.expect("a repair commit");
    assert_eq!(f.head(), Some(commit.0));
    let reconciles = f
        .audit_seqs("desired-state/", Some("desired_state.reconcile"))
        .await;
    let log = f.git(&["log", "-1", "--format=%an%n%B"]);
    assert!(log.starts_with("system/test\n"), "{log}");
    assert_eq!(
        trailers(&log),
        vec![*reconciles.last().expect("an event")],
        "{log}"
    );
    assert!(f.files_at_head(&extra).is_empty() && f.files_at_head("sites/ghost-1").is_empty());
    assert!(f
        .publisher
        .reconcile("system/test", "test")
        .await
        .expect("reconcile")
        .commit
        .is_none());
    f.finish().await;
}

/// (4) A commit behind the publisher's back in a site's own repository (what the site
/// pulls) — a file changed, one added, one removed, one beside the site's folder — is
/// reported by `verify` for that site, by path, while the whole desired state is in
/// line; `reconcile` brings the site's repository back in a commit naming the
/// `desired_state.reconcile` audit event that lists the site, and then finds nothing.
async fn a_sites_own_repository_changed_behind_its_back_is_reported_and_repaired(store: Store) {
    let (f, folder) = two_delivered(store).await;
    let changed = format!("{folder}/kustomization.yaml");
    let removed = f
        .files_at_head(&folder)
        .into_keys()
        .find(|p| *p != changed)
        .expect("a second file");
    let extra = format!("sites/{FLUX}/prod/bookings/unbekannt/deployment.yaml");
    let beside = "README.md".to_owned();
    let own = f.publisher.sites().repo(FLUX).expect("site repository");
    let mut change = own.change().expect("change");
    for (path, content) in [
        (&changed, Some("resources: []\n")),
        (&removed, None),
        (&extra, Some("kind: Deployment\n")),
        (&beside, Some("hello\n")),
    ] {
        change.put_file(path, content).expect("put_file");
    }
    let mallory = Author {
        name: "mallory".into(),
        email: "mallory@example.org".into(),
    };
    change
        .commit(&mallory, "hand edit", &[])
        .expect("commit")
        .expect("a commit");

    let found = f.publisher.verify().await.expect("verify");
    assert!(found.differences.is_empty(), "{found:#?}");
    let flux = |difference| SiteDifference {
        site: FLUX.to_owned(),
        difference,
    };
    let mut expected = vec![
        flux(Difference::Changed(changed.clone())),
        flux(Difference::Missing(removed.clone())),
        flux(Difference::Extra(extra.clone())),
        flux(Difference::Extra(beside.clone())),
    ];
    expected.sort();
    assert_eq!(found.sites, expected);
    assert!(!found.is_clean());

    let repaired = f
        .publisher
        .reconcile("system/test", "test")
        .await
        .expect("reconcile");
    assert_eq!(repaired.sites, vec![FLUX.to_owned()]);
    assert_eq!(repaired.commit, None, "the whole desired state was in line");
    let filter = AuditFilter {
        action: Some("desired_state.reconcile".into()),
        ..Default::default()
    };
    let page = PageRequest {
        limit: Some(1000),
        after: None,
    };
    let events = f
        .store
        .list_audit(&filter, &page)
        .await
        .expect("list_audit")
        .items;
    let event = events
        .iter()
        .max_by_key(|e| e.seq)
        .expect("a reconcile event");
    assert_eq!(event.actor, "system/test");
    assert_eq!(
        event.after.as_ref().map(|a| a["sites"].clone()),
        Some(json!([FLUX]))
    );
    let log = git(own.path(), &["log", "-1", "--format=%an%n%B"]);
    assert!(log.starts_with("system/test\n"), "{log}");
    assert_eq!(trailers(&log), vec![event.seq], "{log}");
    assert_eq!(
        git(own.path(), &["rev-parse", &format!("HEAD:sites/{FLUX}")]),
        f.git(&["rev-parse", &format!("HEAD:sites/{FLUX}")]),
    );
    assert_eq!(
        git(own.path(), &["ls-tree", "--name-only", "HEAD"]).trim(),
        "sites"
    );
    f.assert_in_line("repaired").await;
    let again = f
        .publisher
        .reconcile("system/test", "test")
        .await
        .expect("reconcile");
    assert!(
        again.sites.is_empty() && again.commit.is_none(),
        "{again:?}"
    );
    let after = f
        .store
        .list_audit(&filter, &page)
        .await
        .expect("list_audit")
        .items
        .len();
    assert_eq!(after, events.len(), "nothing repaired, nothing audited");
    f.finish().await;
}

/// (4) A folder committed behind the publisher's back stays inert: the next booking on
/// the same site does not list it in the site's kustomization (which would make the
/// site's engine apply it), and `verify` keeps reporting only the folder itself.
async fn drift_is_not_activated_by_a_later_delivery(store: Store) {
    let f = federation(store).await;
    f.book(ERIKA, 0, "s").await;
    f.deliver().await;
    let extra = format!("sites/{FLUX}/prod/bookings/unbekannt/deployment.yaml");
    f.hand_edit(&[(&extra, "kind: Deployment\n")]);
    assert_eq!(
        f.publisher.verify().await.expect("verify").differences,
        vec![Difference::Extra(extra.clone())]
    );

    f.book(MAX, 2, "s").await;
    assert_eq!(f.deliver().await.len(), 1);
    let listed = f.listed(FLUX);
    assert!(
        !listed.iter().any(|n| n == "unbekannt"),
        "a delivery listed the hand-made folder for the site to apply: {listed:?}"
    );
    assert_eq!(
        f.publisher.verify().await.expect("verify").differences,
        vec![Difference::Extra(extra)]
    );
    f.publisher
        .reconcile("system/test", "test")
        .await
        .expect("reconcile");
    f.finish().await;
}

/// (5) A configuration holding a literal secret is refused when booked or changed, or
/// else never committed; either way the scan of the history stays empty and the rest of
/// the fleet, the same Gemeinde included, is still delivered and verifiable.
async fn a_literal_secret_never_reaches_the_repository(store: Store) {
    let f = federation(store).await;
    let secret = json!({"domain": "cloud.example.de", "smtp": {"password": "hunter2"}});
    assert_eq!(
        verbund_render::secrets::find_literal_secret(&secret).as_deref(),
        Some("/smtp/password")
    );
    let good = f.book(ERIKA, 0, "s").await;
    f.deliver().await;

    // Booked with the secret, by the same actor as a good booking right after it.
    let booked = f
        .bookings
        .book(
            ERIKA,
            &spec(&f.gemeinden[0], "nextcloud", "s", secret.clone()),
            t0(),
        )
        .await;
    let later = f.book(ERIKA, 0, "m").await;
    // Changed to hold the secret.
    let patched = f
        .bookings
        .patch(
            ERIKA,
            &good[0].id,
            &BookingPatch {
                config: Some(secret.clone()),
                ..Default::default()
            },
            t0(),
        )
        .await;
    f.deliver().await;
    let findings = f.publisher.repo().scan_history_for_secrets().expect("scan");
    assert!(findings.is_empty(), "{findings:#?}");
    assert!(!f.git(&["log", "--all", "-p"]).contains("hunter2"));
    if let Ok(b) = &booked {
        assert!(
            f.files_at_head(&format!("sites/{FLUX}/prod/bookings"))
                .keys()
                .all(|p| !p.contains(&b[0].id[..8])),
            "the secret booking's folder must not be committed"
        );
    }

    // The rest of the fleet is delivered: another Gemeinde's booking, and the good
    // booking of the same Gemeinde that shares its postgresql with the refused one.
    let other = f.book(MAX, 1, "s").await;
    f.deliver().await;
    for b in other.iter().chain(&later) {
        let state = f.get(&b.id).await.state;
        assert_eq!(
            state,
            BookingState::Provisioning,
            "{} {} was never committed (secret booking: {booked:?}, change: {patched:?})",
            b.offering,
            b.id
        );
    }
    for b in other.iter().chain(&later) {
        let folder = f.folder(b).await;
        assert_eq!(f.files_at_head(&folder), f.rendered(b).await, "{folder}");
    }
    eprintln!("booking with a literal secret: {booked:?}; change to one: {patched:?}");
    // What a starting server does must still work.
    f.publisher
        .reconcile("system/test", "restart")
        .await
        .expect("reconcile");
    f.finish().await;
}

// ---------------------------------------------------------------------------------------
// Several replicas on one PostgreSQL database share one history

/// A publisher of replica `name` on `store` whose repositories live in `dir/<name>`,
/// sharing the history through the store or not.
fn replica(store: &Store, dir: &Path, name: &str, shared: bool) -> Publisher {
    let mut options = PublisherOptions::new(RenderOptions::new(REPOSITORY_URL));
    options.shared_history = shared;
    options.replica = name.to_owned();
    Publisher::open(
        store.clone(),
        &dir.join(name).join("desired-state.git"),
        options,
    )
    .expect("open the publisher")
}

/// `git rev-list HEAD` of a repository: its whole history, newest first.
fn rev_list(repo: &verbund_git::DesiredStateRepo) -> Vec<String> {
    git(repo.path(), &["rev-list", "HEAD"])
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Both replicas hold the same commits in the whole desired state and in each site's
/// repository, and their histories are the same line.
fn assert_same_history(a: &Publisher, b: &Publisher) {
    assert_eq!(rev_list(a.repo()), rev_list(b.repo()), "the whole state");
    for site in [FLUX, ARGO] {
        let (ra, rb) = (
            a.sites().repo(site).expect("site"),
            b.sites().repo(site).expect("site"),
        );
        assert_eq!(rev_list(&ra), rev_list(&rb), "{site}");
        assert_eq!(
            rb.tree_oid_at(&format!("sites/{site}")).expect("tree"),
            b.repo()
                .tree_oid_at(&format!("sites/{site}"))
                .expect("tree"),
            "{site}'s repository follows its folder"
        );
        git(rb.path(), &["fsck", "--full", "--strict", "--no-progress"]);
    }
    git(
        b.repo().path(),
        &["fsck", "--full", "--strict", "--no-progress"],
    );
}

/// Two replicas on one PostgreSQL database: the first starts from a repository it had
/// before the replicas shared one history (seeded from it) and writes; the second
/// follows it, commit for commit, in the whole state and every site's repository; a
/// second writer that is behind is refused and moves nothing; when the first writer's
/// session ends, the second takes over, commits what was not committed yet on top of
/// the first's last commit, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_replicas_share_one_history_and_the_next_writer_continues_it() {
    let Some(db) = verbund_testkit::Scratch::postgres("replicas").await else {
        return;
    };
    let store = Store::open(&db.url).await.expect("open the store");
    let outcome = tokio::spawn(replicas_share_one_history(store.clone(), db.url.clone())).await;
    store.close().await;
    db.remove().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

async fn replicas_share_one_history(store: Store, url: String) {
    let f = federation(store).await;
    let dir = tempfile::tempdir().expect("temporary folder");
    // The first replica has its own store (its own sessions), so that ending them
    // frees the writer's lock as a killed process would.
    let first_store = Store::open(&url).await.expect("open the store");
    let legacy = replica(&first_store, dir.path(), "one", false);
    legacy.start().await.expect("start");
    let legacy_head = legacy.repo().head().expect("head").expect("a commit");
    drop(legacy);

    let one = replica(&first_store, dir.path(), "one", true);
    one.start().await.expect("start");
    assert!(one.is_writer());
    let two = replica(&f.store, dir.path(), "two", true);
    let started = two.start().await.expect("start");
    assert!(!two.is_writer() && started.commit.is_none());
    assert_eq!(two.repo().head().expect("head"), Some(legacy_head.clone()));
    assert_same_history(&one, &two);

    // A booking: the writer commits it, the follower installs the same commits.
    f.book(ERIKA, 0, "s").await;
    one.pass().await.expect("pass");
    two.pass().await.expect("pass");
    assert!(!two.is_writer());
    assert_ne!(one.repo().head().expect("head"), Some(legacy_head.clone()));
    assert_same_history(&one, &two);

    // A second writer that is behind is refused by the shared history; nothing moves.
    f.book(MAX, 3, "s").await;
    one.pass().await.expect("pass");
    let stale = two.repo().head().expect("head");
    let refused = two
        .deliver_pending()
        .await
        .expect_err("a second writer is refused");
    assert!(
        matches!(
            refused,
            verbund_delivery::DeliveryError::Store(verbund_store::StoreError::Conflict(_))
        ),
        "{refused}"
    );
    assert_eq!(two.repo().head().expect("head"), stale);
    two.pass().await.expect("pass");
    assert_same_history(&one, &two);

    // A change the first writer never commits; then its sessions end.
    let last_of_one = one.repo().head().expect("head").expect("a commit");
    let late = f.book(ERIKA, 1, "s").await;
    drop(one);
    first_store.close().await;
    // The server frees the lock once it has noticed the sessions ended.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !two.is_writer() {
        assert!(
            std::time::Instant::now() < deadline,
            "the second replica takes over"
        );
        two.pass().await.expect("pass");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let log = git(two.repo().path(), &["log", "--format=%H %P"]);
    let mut lines = log.lines();
    let newest = lines.next().expect("a commit");
    assert_eq!(
        newest.split(' ').nth(1),
        Some(last_of_one.0.as_str()),
        "the takeover's first commit follows the first writer's last: {log}"
    );
    assert!(
        log.lines().all(|l| l.split(' ').count() <= 2),
        "one line, no merges: {log}"
    );
    assert!(rev_list(two.repo()).contains(&legacy_head.0));
    // Every delivered audit event is named by exactly one commit.
    let messages = git(two.repo().path(), &["log", "--format=%B%x00"]);
    let mut named: Vec<i64> = messages.split('\0').flat_map(trailers).collect();
    let all = named.len();
    named.sort();
    named.dedup();
    assert_eq!(named.len(), all, "an audit event named twice:\n{messages}");
    for b in &late {
        let created = f.audit_seqs(&format!("booking/{}", b.id), None).await;
        assert!(
            created.iter().any(|seq| named.contains(seq)),
            "{} is committed",
            b.id
        );
        let folder = f.folder(b).await;
        let site = two.sites().repo(FLUX).expect("site");
        assert!(
            site.tree_oid_at(&folder).expect("tree").is_some(),
            "{folder} reached the site's repository"
        );
    }
    let verification = two.verify().await.expect("verify");
    assert!(verification.is_clean(), "{verification:#?}");
}
