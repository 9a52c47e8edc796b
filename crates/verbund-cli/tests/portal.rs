//! The portal in a real browser: headless Chromium (Debian's `chromium` and
//! `chromium-driver`, installed by `scripts/test`) driven through ChromeDriver against the
//! real `verbund demo`, with its simulated sites.
//!
//! One journey, as the people who use verbund would take it: a municipality's IT lead
//! signs in by keyboard, finds an offering, books it with an invalid and then a valid
//! configuration, reads where it was placed and why, and watches it become active; it
//! books a service for a time and ends it early, its data exported and verified; the
//! vendor starts a rollout of a new version and pauses it; another municipality signs in
//! and cannot see the first one's booking. Every page on the way is checked by the
//! axe-core engine for WCAG 2.1 A and AA violations (there must be none) and for its
//! landmarks, its one `h1` and its skip link. With `VERBUND_SCREENSHOTS=<dir>` the main
//! pages are also saved at desktop and phone width (that is how `docs/screenshots/` is
//! made).

// Tests and benchmarks may panic: a failed expectation is a failed run.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::Datelike;
use fantoccini::elements::Element;
use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

use common::{free_port, token, Server};

const DESKTOP: (u32, u32) = (1280, 900);
const PHONE: (u32, u32) = (390, 844);

/// ChromeDriver with one headless Chromium session; both end when dropped.
struct Browser {
    driver: Child,
    client: Client,
    axe: String,
    shots: Option<PathBuf>,
    base: String,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn axe_source() -> String {
    let path = std::env::var("VERBUND_AXE_JS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../target/browser-tools/node_modules/axe-core/axe.min.js")
        });
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "the accessibility engine axe-core is not at {} ({e}); ./scripts/test installs it",
            path.display()
        )
    })
}

impl Browser {
    async fn start(base: &str) -> Browser {
        let chromedriver =
            std::env::var("VERBUND_CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
        let chromium =
            std::env::var("VERBUND_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        let port = free_port();
        let driver = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {chromedriver} ({e}); ./scripts/test installs chromium-driver")
            });
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while reqwest::get(format!("{url}/status")).await.is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--hide-scrollbars",
                         format!("--window-size={},{}", DESKTOP.0, DESKTOP.1)]
            }),
        );
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&url)
            .await
            .expect("a Chromium session");
        Browser {
            driver,
            client,
            axe: axe_source(),
            shots: std::env::var("VERBUND_SCREENSHOTS").ok().map(PathBuf::from),
            base: base.to_string(),
        }
    }

    async fn goto(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .unwrap_or_else(|e| panic!("open {path}: {e}"));
    }

    async fn path(&self) -> String {
        let url = self.client.current_url().await.expect("the current URL");
        let mut p = url.path().to_string();
        if let Some(q) = url.query() {
            p.push('?');
            p.push_str(q);
        }
        p
    }

    async fn find(&self, css: &str) -> Element {
        let found = self
            .client
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css(css))
            .await;
        match found {
            Ok(e) => e,
            Err(e) => {
                let main = self.js("return document.querySelector('main') ? document.querySelector('main').innerText : document.body.innerText;").await;
                panic!(
                    "no `{css}` on {}: {e}\n{}",
                    self.path().await,
                    main.as_str().unwrap_or_default()
                )
            }
        }
    }

    async fn text(&self, css: &str) -> String {
        self.find(css).await.text().await.expect("element text")
    }

    async fn js(&self, script: &str) -> Value {
        self.client
            .execute(script, vec![])
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}"))
    }

    async fn fill(&self, css: &str, value: &str) {
        let el = self.find(css).await;
        el.clear().await.expect("clear");
        el.send_keys(value).await.expect("type");
    }

    async fn click(&self, css: &str) {
        let el = self.find(css).await;
        let arg = serde_json::to_value(&el).expect("element reference");
        self.client
            .execute(
                "arguments[0].scrollIntoView({block: 'center', behavior: 'instant'});",
                vec![arg],
            )
            .await
            .expect("scroll");
        if let Err(e) = el.click().await {
            let arg = serde_json::to_value(&el).expect("element reference");
            let cover = self
                .client
                .execute(
                    "const r = arguments[0].getBoundingClientRect();
                     const t = document.elementFromPoint(r.x + r.width / 2, r.y + r.height / 2);
                     return t ? t.outerHTML.slice(0, 300) : null;",
                    vec![arg],
                )
                .await;
            panic!(
                "click `{css}` on {}: {e}; covered by {cover:?}",
                self.path().await
            );
        }
    }

    /// Signs in through the form with the keyboard only: Tab from the top of the page
    /// reaches the skip link first; the name and the password are typed, Enter submits.
    async fn sign_in(&self, name: &str, password: &str) {
        self.goto("/login").await;
        self.check_page("sign-in").await;
        self.fill("#name", name).await;
        let pw = self.find("#password").await;
        pw.send_keys(password).await.expect("type");
        pw.send_keys(&Key::Enter.to_string()).await.expect("enter");
        self.wait_until("signed in", || async {
            (!self.path().await.starts_with("/login")).then_some(())
        })
        .await;
    }

    async fn sign_out(&self) {
        self.click("form[action='/logout'] button").await;
        self.wait_until("signed out", || async {
            self.path().await.starts_with("/login").then_some(())
        })
        .await;
    }

    async fn wait_until<T, F, Fut>(&self, what: &str, mut probe: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Some(v) = probe().await {
                return v;
            }
            assert!(Instant::now() < deadline, "timed out waiting: {what}");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// The page's structure (one h1, landmarks, skip link as the first tab stop, a
    /// visible focus) and axe-core's WCAG 2.1 A/AA rules, with zero violations allowed.
    async fn check_page(&self, name: &str) {
        let s = self
            .js("return {
                    h1: document.querySelectorAll('h1').length,
                    main: document.querySelectorAll('main').length,
                    banner: document.querySelectorAll('body > header').length,
                    contentinfo: document.querySelectorAll('body > footer').length,
                    lang: document.documentElement.lang,
                    skip: (document.querySelector('a.skip-link') || {}).hash || null
                };")
            .await;
        assert_eq!(s["h1"], 1, "{name}: exactly one h1: {s}");
        assert_eq!(s["main"], 1, "{name}: one main landmark: {s}");
        assert_eq!(s["banner"], 1, "{name}: one banner: {s}");
        assert_eq!(s["contentinfo"], 1, "{name}: one contentinfo: {s}");
        assert_eq!(
            s["skip"], "#main",
            "{name}: a skip link to the content: {s}"
        );
        assert!(s["lang"] == "de" || s["lang"] == "en", "{name}: {s}");
        // Keyboard: from the page's start the first Tab lands on the skip link, and the
        // focus is visible. A page may have moved the focus on purpose (`autofocus` on a
        // new row), so the start is set as a person returning to the top would: a
        // temporary, unfocusable-by-Tab mark before everything is focused, then removed.
        self.js("window.scrollTo(0, 0);
             const mark = document.createElement('span');
             mark.id = 'verbund-test-start';
             mark.tabIndex = -1;
             document.body.prepend(mark);
             mark.focus();")
            .await;
        self.find("body")
            .await
            .send_keys(&Key::Tab.to_string())
            .await
            .expect("tab");
        self.js("document.getElementById('verbund-test-start').remove();")
            .await;
        let focus = self
            .js(
                "const a = document.activeElement; const st = getComputedStyle(a);
                 return {cls: a.className, outline: st.outlineStyle, width: st.outlineWidth};",
            )
            .await;
        assert_eq!(focus["cls"], "skip-link", "{name}: first tab stop: {focus}");
        assert!(
            focus["outline"] != "none" && focus["width"] != "0px",
            "{name}: the focus is not visible: {focus}"
        );
        self.client
            .execute(&self.axe, vec![])
            .await
            .expect("axe-core loads");
        let violations = self
            .client
            .execute_async(
                "const done = arguments[arguments.length - 1];
                 axe.run(document, {runOnly: {type: 'tag',
                     values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}})
                   .then(r => done(r.violations.map(v => ({id: v.id, impact: v.impact,
                       help: v.help, nodes: v.nodes.slice(0, 5).map(n => n.target.join(' '))}))))
                   .catch(e => done([{id: 'axe-failed', help: String(e)}]));",
                vec![],
            )
            .await
            .expect("axe-core runs");
        assert_eq!(
            violations,
            json!([]),
            "{name} ({}): WCAG 2.1 A/AA violations",
            self.path().await
        );
    }

    /// Renders the page for `media` ("print" or "" for the screen) through Chromium's own
    /// DevTools command, as its print preview and "save as PDF" do.
    async fn emulate_media(&self, media: &str) {
        self.client
            .issue_cmd(Cdp {
                cmd: "Emulation.setEmulatedMedia",
                params: json!({ "media": media }),
            })
            .await
            .unwrap_or_else(|e| panic!("emulate media `{media}`: {e}"));
    }

    /// The page printed to PDF by the browser (WebDriver's Print Page), and its page count.
    async fn print_pdf(&self) -> (Vec<u8>, usize) {
        let pdf = self
            .client
            .print(fantoccini::wd::PrintConfiguration::default())
            .await
            .expect("print to PDF");
        let text = String::from_utf8_lossy(&pdf);
        let pages = text
            .match_indices("/Type /Page")
            .filter(|(i, m)| text.as_bytes().get(i + m.len()) != Some(&b's'))
            .count();
        (pdf, pages)
    }

    /// Saves the page at desktop and phone width when screenshots are asked for.
    async fn shoot(&self, name: &str) {
        let Some(dir) = &self.shots else { return };
        std::fs::create_dir_all(dir).expect("screenshot folder");
        self.js("document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0);")
            .await;
        for (label, (w, h)) in [("desktop", DESKTOP), ("phone", PHONE)] {
            self.client.set_window_size(w, h).await.expect("resize");
            let height = self
                .js("return Math.min(document.documentElement.scrollHeight, 2400);")
                .await
                .as_u64()
                .unwrap_or(u64::from(h));
            // The window's outer size includes no chrome in headless mode.
            self.client
                .set_window_size(w, u32::try_from(height).unwrap_or(h).max(h))
                .await
                .expect("resize");
            let png = self.client.screenshot().await.expect("screenshot");
            std::fs::write(dir.join(format!("{name}-{label}.png")), png).expect("write png");
        }
        self.client
            .set_window_size(DESKTOP.0, DESKTOP.1)
            .await
            .expect("resize");
    }
}

/// A Chrome DevTools command sent through ChromeDriver's `goog/cdp/execute` endpoint.
#[derive(Debug)]
struct Cdp {
    cmd: &'static str,
    params: Value,
}

impl fantoccini::wd::WebDriverCompatibleCommand for Cdp {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!(
            "session/{}/goog/cdp/execute",
            session.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        let body = json!({ "cmd": self.cmd, "params": self.params });
        (http::Method::POST, Some(body.to_string()))
    }
}

fn password(data: &Path, user: &str) -> String {
    token(data, &format!("tokens/{user}.password"))
}

async fn api(
    base: &str,
    admin: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> Value {
    let mut r = reqwest::Client::new()
        .request(method, format!("{base}/api/v1{path}"))
        .bearer_auth(admin);
    if let Some(b) = body {
        r = r.json(&b);
    }
    let r = r.send().await.expect("API request");
    let status = r.status();
    let v: Value = r.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "{path}: {status} {v}");
    v
}

/// Submits the booking form and returns the new booking as the API has it.
async fn submit_booking(b: &Browser, base: &str, admin: &str) -> Value {
    b.click("form.portal-form button.kern-btn--primary[type=submit]")
        .await;
    let id = b
        .wait_until("the new booking", || async {
            let p = b.path().await;
            p.strip_prefix("/bookings/")
                .and_then(|rest| rest.strip_suffix("?new=1"))
                .map(str::to_string)
        })
        .await;
    api(
        base,
        admin,
        reqwest::Method::GET,
        &format!("/bookings/{id}"),
        None,
    )
    .await
}

/// Sets a select's value as a person choosing an option would, or a date input's as the
/// browser's date picker would (`YYYY-MM-DD`, whatever the picker shows in its locale).
async fn choose(b: &Browser, css: &str, value: &str) {
    b.find(css).await;
    b.js(&format!(
        "const s = document.querySelector({css:?}); s.value = {value:?}; s.dispatchEvent(new Event('change'));"
    ))
    .await;
}

/// Every list and group of the demo's offerings booked through the form, as inputs,
/// with their German titles, without a line of JSON: Keycloak's LDAP connection,
/// Nextcloud's SSO and features, Collabora's WOPI hosts (rows added and removed),
/// Wohnsitzanmeldung's Melderegister and Hundesteuer's tax rates (a missing rate shown
/// at its control first); then PostgreSQL, OpenProject, Matrix and Bauantrag online, so
/// that every demo offering has been booked through its form.
async fn books_lists_and_groups_through_forms(b: &Browser, base: &str, admin: &str) {
    let no_json = "return document.querySelectorAll('form.portal-form textarea').length;";

    b.goto("/offerings/keycloak/book").await;
    b.check_page("booking form with a group").await;
    assert_eq!(b.js(no_json).await, 0);
    assert_eq!(
        b.text("#cfg-ldap_federation-legend").await,
        "LDAP-Anbindung (optional)"
    );
    b.fill("#cfg-realm", "muenchen").await;
    b.fill("#cfg-hostname", "login.muenchen.de").await;
    b.fill("#cfg-ldap_federation-url", "ldaps://ldap.muenchen.de")
        .await;
    b.fill(
        "#cfg-ldap_federation-users_dn",
        "ou=people,dc=muenchen,dc=de",
    )
    .await;
    let k = submit_booking(b, base, admin).await;
    assert_eq!(
        k["config"]["ldap_federation"],
        json!({"url": "ldaps://ldap.muenchen.de", "users_dn": "ou=people,dc=muenchen,dc=de"}),
        "{k}"
    );

    b.goto("/offerings/nextcloud/book").await;
    assert_eq!(b.js(no_json).await, 0);
    assert_eq!(
        b.text("#cfg-features-legend").await,
        "Funktionen (optional)"
    );
    b.fill("#cfg-domain", "cloud.muenchen.de").await;
    b.fill("#cfg-admin_email", "it@muenchen.de").await;
    b.fill(
        "#cfg-sso-issuer",
        "https://login.muenchen.de/realms/muenchen",
    )
    .await;
    b.click("#cfg-features-office").await;
    b.click("#cfg-features-external_sharing").await;
    let n = submit_booking(b, base, admin).await;
    assert_eq!(
        n["config"]["sso"],
        json!({"issuer": "https://login.muenchen.de/realms/muenchen", "client_id": "nextcloud"}),
        "{n}"
    );
    assert_eq!(
        n["config"]["features"],
        json!({"office": true, "talk": true, "server_side_encryption": true, "external_sharing": true}),
        "{n}"
    );

    b.goto("/offerings/collabora-online/book").await;
    assert_eq!(b.js(no_json).await, 0);
    assert_eq!(
        b.text("#cfg-wopi_hosts-legend").await,
        "Erlaubte Nextcloud-Hosts (WOPI)"
    );
    b.fill("#cfg-wopi_hosts-0", "cloud.muenchen.de").await;
    b.click("#cfg-wopi_hosts-add").await;
    b.find("#cfg-wopi_hosts-1").await;
    assert_eq!(
        b.js("return document.activeElement.id;").await,
        "cfg-wopi_hosts-1",
        "the new row has the focus"
    );
    assert_eq!(
        b.js("return document.querySelector('#cfg-wopi_hosts-0').value;")
            .await,
        "cloud.muenchen.de"
    );
    b.check_page("booking form with a second row").await;
    b.fill("#cfg-wopi_hosts-1", "weg.muenchen.de").await;
    b.click("#cfg-wopi_hosts-add").await;
    b.find("#cfg-wopi_hosts-2").await;
    b.fill("#cfg-wopi_hosts-2", "office.muenchen.de").await;
    b.click("button[name=remove][value='wopi_hosts.1']").await;
    b.wait_until("the row is removed", || async {
        let rows = b
            .js("return [...document.querySelectorAll('#cfg-wopi_hosts input[type=text]')].map(i => i.value);")
            .await;
        (rows == json!(["cloud.muenchen.de", "office.muenchen.de"])).then_some(())
    })
    .await;
    b.shoot("book-rows").await;
    let c = submit_booking(b, base, admin).await;
    assert_eq!(
        c["config"]["wopi_hosts"],
        json!(["cloud.muenchen.de", "office.muenchen.de"]),
        "{c}"
    );

    b.goto("/offerings/wohnsitzanmeldung/book").await;
    assert_eq!(b.js(no_json).await, 0);
    assert_eq!(b.text("#cfg-melderegister-legend").await, "Melderegister");
    b.fill("#cfg-municipality", "09162000").await;
    b.fill("#cfg-contact_email", "buergerbuero@muenchen.de")
        .await;
    choose(b, "#cfg-melderegister-procedure", "ewo").await;
    b.fill(
        "#cfg-melderegister-xmeld_endpoint",
        "https://xmeld.muenchen.de/api",
    )
    .await;
    let m = submit_booking(b, base, admin).await;
    assert_eq!(
        m["config"]["melderegister"],
        json!({"procedure": "ewo", "xmeld_endpoint": "https://xmeld.muenchen.de/api"}),
        "{m}"
    );

    b.goto("/offerings/hundesteuer-anmeldung/book").await;
    assert_eq!(b.js(no_json).await, 0);
    assert_eq!(b.text("#cfg-tax_rates-legend").await, "Steuersätze");
    b.fill("#cfg-municipality", "09162000").await;
    b.fill("#cfg-contact_email", "steueramt@muenchen.de").await;
    b.fill("#cfg-tax_rates-first_dog", "10000").await;
    b.click("form.portal-form button.kern-btn--primary[type=submit]")
        .await;
    assert_eq!(
        b.text("#cfg-tax_rates-further_dog-error").await,
        "Bitte ausfüllen."
    );
    assert_eq!(
        b.js("return document.querySelector('#cfg-tax_rates-further_dog').getAttribute('aria-invalid');")
            .await,
        "true"
    );
    assert!(b
        .text("#form-errors")
        .await
        .contains("Steuersätze – Jeder weitere Hund (Cent im Jahr): Bitte ausfüllen."));
    b.check_page("booking form with a fault in a group").await;
    b.fill("#cfg-tax_rates-further_dog", "16000").await;
    let h = submit_booking(b, base, admin).await;
    assert_eq!(
        h["config"]["tax_rates"],
        json!({"first_dog": 10000, "further_dog": 16000}),
        "{h}"
    );

    // The other four offerings, so that every demo offering's every field has been
    // booked through its form: a checkbox group (PostgreSQL's extensions), numbers with
    // bounds, selects (Matrix's federation, Bauantrag's Landesbauordnung and XBau
    // version), a list of texts (Matrix's allowlist) and a group of switches
    // (OpenProject's features).
    open_form(
        b,
        "postgresql",
        Some(("extensions", "Erweiterungen (optional)")),
    )
    .await;
    b.fill("#cfg-database", "fachverfahren").await;
    b.click("#cfg-extensions-1").await;
    b.click("#cfg-extensions-3").await;
    b.fill("#cfg-backup_retention_days", "45").await;
    assert_config(
        &submit_booking(b, base, admin).await,
        json!({"database": "fachverfahren", "extensions": ["pg_trgm", "postgis"],
               "backup_retention_days": 45}),
    );

    open_form(
        b,
        "openproject",
        Some(("features", "Funktionen (optional)")),
    )
    .await;
    b.fill("#cfg-domain", "projekte.muenchen.de").await;
    b.fill("#cfg-admin_email", "pmo@muenchen.de").await;
    choose(b, "#cfg-default_language", "en").await;
    b.click("#cfg-features-bim").await;
    b.click("#cfg-features-time_tracking").await;
    assert_config(
        &submit_booking(b, base, admin).await,
        json!({"default_language": "en",
               "features": {"bim": true, "time_tracking": false, "nextcloud_integration": false}}),
    );

    open_form(
        b,
        "matrix-synapse",
        Some((
            "federation_allowlist",
            "Erlaubte Server der Föderation (optional)",
        )),
    )
    .await;
    b.fill("#cfg-server_name", "muenchen.de").await;
    choose(b, "#cfg-federation", "allowlist").await;
    b.fill("#cfg-federation_allowlist-0", "bund.de").await;
    b.click("#cfg-federation_allowlist-add").await;
    b.find("#cfg-federation_allowlist-1").await;
    b.fill("#cfg-federation_allowlist-1", "bayern.de").await;
    b.fill("#cfg-media_retention_days", "730").await;
    assert_config(
        &submit_booking(b, base, admin).await,
        json!({"federation": "allowlist", "federation_allowlist": ["bund.de", "bayern.de"],
               "media_retention_days": 730}),
    );

    open_form(b, "bauantrag-online", None).await;
    b.fill("#cfg-authority", "09162").await;
    b.fill("#cfg-contact_email", "bauaufsicht@muenchen.de")
        .await;
    choose(b, "#cfg-land_building_code", "BayBO").await;
    choose(b, "#cfg-xbau_version", "2.3").await;
    b.fill("#cfg-max_upload_mib", "1024").await;
    assert_config(
        &submit_booking(b, base, admin).await,
        json!({"land_building_code": "BayBO", "xbau_version": "2.3", "max_upload_mib": 1024}),
    );
}

/// A campaign's peak booked through the form: PostgreSQL on `s` with next spring on `m`.
/// A window whose last day lies before its first is refused in German at its control and
/// books nothing; then the booking shows its window, scheduled, and the plan for now.
async fn books_a_campaign_with_a_capacity_window(b: &Browser, base: &str, admin: &str) {
    let year = chrono::Utc::now().year() + 1;
    let count = async || booking_count(base, admin).await;
    let before = count().await;
    b.goto("/offerings/postgresql/book").await;
    b.click("#plan-s").await;
    choose(b, "#window-1-from", &format!("{year}-05-31")).await;
    choose(b, "#window-1-to", &format!("{year}-03-01")).await;
    choose(b, "#window-1-plan", "m").await;
    b.click("form.portal-form button.kern-btn--primary[type=submit]")
        .await;
    assert_eq!(
        b.text("#window-1-to-error").await,
        "Der letzte Tag liegt vor dem ersten. Bitte den letzten Tag ändern."
    );
    assert_eq!(
        b.js("return document.querySelector('#window-1-to').getAttribute('aria-invalid');")
            .await,
        "true"
    );
    assert!(b.text("#form-errors").await.contains("Zeitfenster 2"));
    b.check_page("booking form with a window error").await;
    assert_eq!(count().await, before, "the refused form booked nothing");
    choose(b, "#window-1-from", &format!("{year}-03-01")).await;
    choose(b, "#window-1-to", &format!("{year}-05-31")).await;
    b.shoot("book-window").await;
    let booking = submit_booking(b, base, admin).await;
    assert_eq!(booking["plan"], "s", "{booking}");
    let w = &booking["windows"][0];
    assert_eq!(w["from"], format!("{year}-03-01"), "{booking}");
    assert_eq!(w["plan"], "m");
    assert_eq!(w["state"], "scheduled");
    b.check_page("booking with a capacity window").await;
    let shown = b.text("#booking-windows").await;
    assert!(
        shown.contains(&format!("01.03.{year} – 31.05.{year}")),
        "{shown}"
    );
    assert!(shown.contains("M – 2 vCPU"), "{shown}");
    assert!(shown.contains("geplant"), "{shown}");
}

/// How many bookings the API lists.
async fn booking_count(base: &str, admin: &str) -> Option<usize> {
    api(
        base,
        admin,
        reqwest::Method::GET,
        "/bookings?limit=1000",
        None,
    )
    .await["items"]
        .as_array()
        .map(Vec::len)
}

/// Hundesteuer-Anmeldung (the demo's offering with a data export) booked for a time
/// through the form: an `http://` export target is refused in German at its control and
/// books nothing, with everything entered kept; the booking shows its last day and
/// target. Ended early with the button (after the question, which names the booking's
/// own target), the page shows the export's Job and, by itself, its verification as the
/// simulated site reports it: SHA-256 and size.
async fn books_for_a_time_and_ends_early(b: &Browser, base: &str, admin: &str) {
    const TARGET: &str = "https://s3.muenchen.de/hundesteuer/export/";
    let before = booking_count(base, admin).await;
    let ends_on = chrono::Utc::now().date_naive() + chrono::Days::new(60);
    let day = ends_on.format("%Y-%m-%d").to_string();
    open_form(
        b,
        "hundesteuer-anmeldung",
        Some(("tax_rates", "Steuersätze")),
    )
    .await;
    b.fill("#cfg-municipality", "09162000").await;
    b.fill("#cfg-contact_email", "steueramt@muenchen.de").await;
    b.fill("#cfg-tax_rates-first_dog", "10000").await;
    b.fill("#cfg-tax_rates-further_dog", "16000").await;
    choose(b, "#ends_on", &day).await;
    b.fill("#export_to", "http://s3.muenchen.de/hundesteuer/export/")
        .await;
    b.click("form.portal-form button.kern-btn--primary[type=submit]")
        .await;
    let refused = "Das ist kein Exportziel. Bitte die https-Adresse des Speichers mit dem \
                   Bucket und, wenn gewünscht, einem Pfad angeben, z. B. \
                   https://s3.stadt.de/exporte/buergerportal/ (Bucket: 3–63 Kleinbuchstaben, \
                   Ziffern, Punkt oder Bindestrich).";
    assert_eq!(b.text("#export_to-error").await, refused);
    assert_eq!(
        b.js("const e = document.querySelector('#export_to');
              return [e.getAttribute('aria-invalid'), e.value, document.querySelector('#ends_on').value];")
            .await,
        json!(["true", "http://s3.muenchen.de/hundesteuer/export/", day])
    );
    assert!(b
        .text("#form-errors")
        .await
        .contains("Befristung: Das ist kein Exportziel."));
    b.check_page("booking form with a bad export target").await;
    assert_eq!(
        booking_count(base, admin).await,
        before,
        "the refused form booked nothing"
    );
    b.fill("#export_to", TARGET).await;
    let booking = submit_booking(b, base, admin).await;
    let id = booking["id"].as_str().expect("an id").to_string();
    assert_eq!(booking["ending"]["ends_on"], day, "{booking}");
    assert_eq!(booking["ending"]["export_to"]["bucket"], "hundesteuer");
    b.check_page("booking for a time").await;
    let shown = b.text("#booking-ending").await;
    assert!(
        shown.contains(&ends_on.format("%d.%m.%Y").to_string()),
        "{shown}"
    );
    assert!(shown.contains(TARGET), "{shown}");

    // "Jetzt beenden" asks first, with the booking's own target; then the export runs.
    b.click(&format!("a[href='/bookings/{id}/end']")).await;
    assert_eq!(b.path().await, format!("/bookings/{id}/end"));
    b.check_page("end a booking now?").await;
    b.shoot("booking-end").await;
    assert_eq!(
        b.js("return document.querySelector('#export_to').value;")
            .await,
        TARGET
    );
    b.click(&format!(
        "form[action='/bookings/{id}/end'] button[type=submit]"
    ))
    .await;
    b.wait_until("the booking ended", || async {
        (b.path().await == format!("/bookings/{id}?done=ended")).then_some(())
    })
    .await;
    b.check_page("booking being exported").await;
    assert!(b.text("#booking-export").await.contains("data-export-1"));
    // The simulated site runs the export Job and reports agreeing sums: the page shows the
    // verification without a reload.
    b.js("window.sameDocument = true;").await;
    b.wait_until("the export is verified", || async {
        let s = b
            .js("const e = document.querySelector('[data-export]');
                 return e && window.sameDocument === true ? e.dataset.export : null;")
            .await;
        (s == "verified").then_some(())
    })
    .await;
    let export = b.text("#booking-export").await;
    assert!(export.contains("verifiziert"), "{export}");
    assert!(
        export.contains("SHA-256") && export.contains("Bytes"),
        "{export}"
    );
    b.check_page("booking with its export verified").await;
    b.shoot("booking-export").await;
}

/// Opens `offering`'s booking form: no control asks for JSON, and the group or list
/// `legend` (field, text) is titled from the schema.
/// München runs Nextcloud and OpenProject on one PostgreSQL: Nextcloud's booking form
/// offers that PostgreSQL to use, and the PostgreSQL's page names the bookings that use
/// it — both checked with axe.
async fn chooses_a_running_dependency_and_sees_who_uses_it(b: &Browser) {
    b.goto("/offerings/nextcloud/book").await;
    let running = b
        .js("const s = document.getElementById('dependency-postgresql');
             return s ? Array.from(s.options).map(o => o.value).filter(v => v) : null;")
        .await;
    let ids: Vec<String> = serde_json::from_value(running.clone())
        .unwrap_or_else(|_| panic!("the form offers München's PostgreSQL: {running}"));
    let postgresql = ids.first().expect("a running PostgreSQL").clone();
    b.check_page("booking form with a dependency to choose")
        .await;
    b.goto(&format!("/bookings/{postgresql}")).await;
    let links = b.text("#booking-links").await;
    assert!(links.contains("Wird genutzt von"), "{links}");
    assert!(links.contains("Nextcloud"), "{links}");
    b.check_page("booking used by others").await;
}

/// "Einer für Alle": Bayern runs the one instance of a shared offering; München finds
/// it on the offering's page and joins it with the form (a Kennung the tenant schema
/// refuses first, said at its control), and its booking page names the instance's
/// operator — each page checked with axe.
async fn joins_the_shared_instance_of_its_land(b: &Browser, base: &str, admin: &str) {
    use reqwest::Method;
    let vendor = api(base, admin, Method::GET, "/offerings/jitsi-meet", None).await["vendor"]
        .as_str()
        .expect("a vendor")
        .to_string();
    api(
        base,
        admin,
        Method::POST,
        "/offerings",
        Some(json!({
            "name": "bauportal", "display_name": "Bauportal",
            "description": "Bauanträge online, von einem Land für seine Kommunen betrieben.",
            "vendor": vendor, "category": "saas", "data_classes": ["internal"],
            "tenancy": "shared",
            "tenant_schema": {"type": "object", "required": ["kennung"], "properties": {
                "kennung": {"type": "string", "title": "Kennung der Kommune",
                            "description": "Kleinbuchstaben, Ziffern und Bindestriche.",
                            "pattern": "^[a-z0-9-]{2,40}$"}}},
            "plans": [{"name": "s", "display_name": "Klein", "replicas": 1,
                       "resources": {"cpu_millis": 500, "memory_mib": 512, "storage_gib": 10},
                       "monthly_price_cents": 900}],
        })),
    )
    .await;
    api(
        base,
        admin,
        Method::POST,
        "/offerings/bauportal/versions?rollout=false",
        Some(json!({
            "version": "1.0.0", "changelog": "Erste Fassung.",
            "package": {"type": "helm", "repository": "https://charts.example.org",
                        "chart": "bauportal", "chart_version": "1.0.0"},
        })),
    )
    .await;
    let bayern = api(base, admin, Method::GET, "/organisations?key=09", None).await["items"][0]
        ["id"]
        .as_str()
        .expect("Bayern")
        .to_string();
    let instance = api(
        base,
        admin,
        Method::POST,
        "/bookings",
        Some(json!({"organisation": bayern, "offering": "bauportal", "plan": "s"})),
    )
    .await;
    assert_eq!(instance["booking"]["state"], "placed", "{instance}");
    let instance = instance["booking"]["id"]
        .as_str()
        .expect("an id")
        .to_string();
    b.goto("/offerings/bauportal").await;
    b.check_page("shared offering with its instances").await;
    b.click(&format!("a[href='/offerings/bauportal/join/{instance}']"))
        .await;
    b.check_page("form to join a shared instance").await;
    b.fill("#cfg-kennung", "Große Buchstaben").await;
    b.click("form.portal-form button.kern-btn--primary[type=submit]")
        .await;
    assert_eq!(
        b.text("#cfg-kennung-error").await,
        "Die Eingabe hat nicht das erwartete Format."
    );
    b.check_page("form to join a shared instance, with an error")
        .await;
    b.fill("#cfg-kennung", "muenchen").await;
    let tenancy = submit_booking(b, base, admin).await;
    assert_eq!(tenancy["instance"], json!(instance), "{tenancy}");
    // Placed, or delivered already: the publisher moves it on with its instance's folder.
    assert!(
        ["placed", "provisioning", "active"].contains(&tenancy["state"].as_str().unwrap_or("")),
        "{tenancy}"
    );
    let of = b.text("#tenancy-of").await;
    assert!(of.contains("Betrieben von"), "{of}");
    b.check_page("tenancy of a shared instance").await;
}

/// Nachnutzung: München publishes its Jitsi booking's configuration as a template for
/// every organisation (a short name that is no label refused first, at its control).
async fn publishes_its_booking_as_a_template(b: &Browser, booking: &str) {
    b.goto(&format!("/bookings/{booking}")).await;
    b.click(&format!("a[href='/bookings/{booking}/template']"))
        .await;
    b.check_page("form to publish a template").await;
    b.fill("#name", "Jitsi wie in München").await;
    b.fill("#display_name", "Videokonferenzen wie in München")
        .await;
    b.fill("#description", "Anmeldung nötig, Domäne anpassen.")
        .await;
    b.click("#visibility-everyone").await;
    b.click("form.portal-form button.kern-btn--primary[type=submit]")
        .await;
    assert!(b.text("#name-error").await.contains("Kurznamen"));
    b.check_page("form to publish a template, with an error")
        .await;
    b.fill("#name", "jitsi-muenchen").await;
    b.click("form.portal-form button.kern-btn--primary[type=submit]")
        .await;
    b.wait_until("the published template", || async {
        b.path()
            .await
            .contains("done=template-published")
            .then_some(())
    })
    .await;
}

/// Nachnutzung: Flensburg finds München's template on the offering's page, books from
/// the pre-filled form with its own domain, and its booking names the template and the
/// difference — each page checked with axe.
async fn adopts_a_template(b: &Browser, base: &str, admin: &str) {
    b.goto("/offerings/jitsi-meet").await;
    assert!(b.text("#templates").await.contains("Vorlagen"));
    b.check_page("offering with templates").await;
    b.click("a[href^='/offerings/jitsi-meet/book?template=']")
        .await;
    assert!(b
        .text("#from-template")
        .await
        .contains("Videokonferenzen wie in München"));
    b.check_page("booking form pre-filled from a template")
        .await;
    b.fill("#cfg-domain", "meet.flensburg.de").await;
    let booking = submit_booking(b, base, admin).await;
    assert_eq!(
        booking["config"]["domain"], "meet.flensburg.de",
        "{booking}"
    );
    let lineage = b.text("#booking-lineage").await;
    assert!(
        lineage.contains("Videokonferenzen wie in München"),
        "{lineage}"
    );
    assert!(
        lineage.contains("Ihre Abweichungen von der Vorlage"),
        "{lineage}"
    );
    b.check_page("booking adopted from a template").await;
}

async fn open_form(b: &Browser, offering: &str, legend: Option<(&str, &str)>) {
    b.goto(&format!("/offerings/{offering}/book")).await;
    assert_eq!(
        b.js("return document.querySelectorAll('form.portal-form textarea').length;")
            .await,
        0,
        "{offering}: a field asks for JSON"
    );
    if let Some((field, text)) = legend {
        assert_eq!(b.text(&format!("#cfg-{field}-legend")).await, text);
    }
}

/// Every field of `want` is in the booking's configuration as given.
#[track_caller]
fn assert_config(booking: &Value, want: Value) {
    for (key, value) in want.as_object().expect("fields") {
        assert_eq!(&booking["config"][key], value, "{key}: {booking}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_municipality_books_watches_and_a_vendor_rolls_out_in_a_real_browser() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let server = Server::start("demo", &data).await;
    let base = server.base.clone();
    let admin = token(&data, "admin.token");
    let b = Browser::start(&base).await;

    // Sign in: a wrong password first (the form says so, in German), then the right one.
    b.goto("/").await;
    assert!(b.path().await.starts_with("/login"), "{}", b.path().await);
    b.fill("#name", "it-muenchen").await;
    b.fill("#password", "wrong password, long enough").await;
    b.click("form[action='/login'] button[type=submit]").await;
    assert_eq!(
        b.text("#login-error").await,
        "Benutzername oder Passwort ist falsch."
    );
    b.check_page("sign-in with an error").await;
    b.sign_in("it-muenchen", &password(&data, "it-muenchen"))
        .await;
    assert_eq!(b.path().await, "/organisation");
    b.check_page("my organisation").await;

    // Find an offering: search the catalog, open it.
    b.goto("/catalog").await;
    b.check_page("catalog").await;
    b.shoot("catalog").await;
    b.fill("#q", "jitsi").await;
    b.find("#q")
        .await
        .send_keys(&Key::Enter.to_string())
        .await
        .expect("enter");
    b.wait_until("search results", || async {
        b.path().await.contains("q=jitsi").then_some(())
    })
    .await;
    let titles = b
        .js("return [...document.querySelectorAll('.portal-cards h2')].map(h => h.textContent.trim());")
        .await;
    assert_eq!(titles, json!(["Jitsi Meet – Videokonferenzen"]), "{titles}");
    b.click(".portal-cards h2 a").await;
    assert_eq!(b.path().await, "/offerings/jitsi-meet");
    b.check_page("offering").await;
    b.shoot("offering").await;
    let may_run = b.text("main").await;
    assert!(may_run.contains("zulässig, Rang 1"), "{may_run}");
    // The vendor's English description on the German page says it is English.
    assert_eq!(
        b.js("return document.querySelector('main p.kern-body--large').lang;")
            .await,
        "en"
    );

    // Book it: an invalid domain first, shown at its control; then a valid one.
    b.click("a[href='/offerings/jitsi-meet/book']").await;
    b.check_page("booking form").await;
    // A checkbox's hint runs beside the checkbox under its label, not one word a line.
    let hint = b
        .js("const h = document.querySelector('#cfg-require_authentication-hint');
             const l = document.querySelector('label[for=cfg-require_authentication]');
             const r = h.getBoundingClientRect();
             return {width: r.width, lines: Math.round(r.height / parseFloat(getComputedStyle(h).lineHeight)),
                     left: Math.round(r.left - l.getBoundingClientRect().left)};")
        .await;
    assert!(hint["width"].as_f64().unwrap_or_default() > 300.0, "{hint}");
    assert_eq!(
        b.js("return document.querySelector('#cfg-require_authentication-hint').lang;")
            .await,
        "en"
    );
    assert_eq!(hint["lines"], 1, "{hint}");
    b.fill("#cfg-domain", "Kein Domainname!").await;
    b.click("form.portal-form button.kern-btn--primary[type=submit]")
        .await;
    assert_eq!(
        b.text("#cfg-domain-error").await,
        "Die Eingabe hat nicht das erwartete Format."
    );
    assert_eq!(
        b.js("return document.querySelector('#cfg-domain').getAttribute('aria-invalid');")
            .await,
        "true"
    );
    assert!(b.text("#form-errors").await.contains("Domain"));
    b.check_page("booking form with an error").await;
    b.shoot("book-error").await;
    let before = api(
        &base,
        &admin,
        reqwest::Method::GET,
        "/bookings?limit=1000",
        None,
    )
    .await;
    b.fill("#cfg-domain", "meet.muenchen.de").await;
    b.click("form.portal-form button.kern-btn--primary[type=submit]")
        .await;
    let id = b
        .wait_until("the new booking", || async {
            let p = b.path().await;
            p.strip_prefix("/bookings/")
                .and_then(|rest| rest.strip_suffix("?new=1"))
                .map(str::to_string)
        })
        .await;
    let after = api(
        &base,
        &admin,
        reqwest::Method::GET,
        "/bookings?limit=1000",
        None,
    )
    .await;
    assert_eq!(
        after["items"].as_array().map(Vec::len),
        before["items"].as_array().map(|v| v.len() + 1),
        "exactly one booking was created (the invalid form created none)"
    );
    b.check_page("booking").await;
    let explained = b.text("main").await;
    assert!(explained.contains("Gewählt:"), "{explained}");
    assert!(explained.contains(": zulässig"), "{explained}");
    assert!(
        explained.contains("nicht zulässig, weil"),
        "the demo has sites a personal-data booking may not use: {explained}"
    );

    // Watch it become active: the page updates itself (no reload) from the simulated
    // site's reports, and the state's live region stays the same node, so that screen
    // readers announce the change (WCAG 4.1.3).
    b.js("window.stateNode = document.getElementById('booking-state');")
        .await;
    b.wait_until("the booking turns active", || async {
        let s = b
            .js("const e = document.querySelector('#booking-state [data-state]'); return e && e.dataset.state;")
            .await;
        (s == "active").then_some(())
    })
    .await;
    let region = b
        .js("const e = document.getElementById('booking-state');
             return {same: e === window.stateNode, role: e.getAttribute('role')};")
        .await;
    assert_eq!(
        region,
        json!({"same": true, "role": "status"}),
        "no reload, one live region"
    );
    assert!(b.text("#booking-state").await.contains("simuliert"));
    b.shoot("booking").await;
    // "Buchung kündigen" asks first, saying until when the data is kept; the first
    // click cancels nothing, and "keep" leads back.
    b.click(&format!("a[href='/bookings/{id}/cancel']")).await;
    assert_eq!(b.path().await, format!("/bookings/{id}/cancel"));
    b.check_page("cancel a booking?").await;
    assert!(b.text("main").await.contains("bis voraussichtlich"));
    let still = api(
        &base,
        &admin,
        reqwest::Method::GET,
        &format!("/bookings/{id}"),
        None,
    )
    .await;
    assert_eq!(still["state"], "active", "{still}");
    b.click(&format!("main a[href='/bookings/{id}']")).await;
    assert_eq!(b.path().await, format!("/bookings/{id}"));
    books_lists_and_groups_through_forms(&b, &base, &admin).await;
    books_a_campaign_with_a_capacity_window(&b, &base, &admin).await;
    books_for_a_time_and_ends_early(&b, &base, &admin).await;
    chooses_a_running_dependency_and_sees_who_uses_it(&b).await;
    joins_the_shared_instance_of_its_land(&b, &base, &admin).await;
    publishes_its_booking_as_a_template(&b, &id).await;
    b.goto("/organisation/data").await;
    // München's tenancy in Bayern's shared instance is there, as such.
    assert!(
        b.text("main")
            .await
            .contains("Bauportal (als Mandant einer geteilten Instanz)"),
        "where is our data names the tenancy"
    );
    b.check_page("where is our data").await;
    b.shoot("where-is-our-data").await;
    // The answer on a map: one numbered dot per data center card, in the same order.
    let map = b
        .js("return {
               pins: [...document.querySelectorAll('#where-map g.site')].map(g => g.dataset.site),
               cards: [...document.querySelectorAll('main article.kern-card')].map(a => a.id.replace('site-', '')),
               numbers: [...document.querySelectorAll('#where-map g.site text')].map(t => t.textContent)
             };")
        .await;
    assert!(!map["cards"].as_array().unwrap().is_empty(), "{map}");
    assert_eq!(map["pins"], map["cards"], "{map}");
    let numbers: Vec<String> = (1..=map["cards"].as_array().unwrap().len())
        .map(|i| i.to_string())
        .collect();
    assert_eq!(map["numbers"], json!(numbers), "{map}");
    // Printed, it is the answer alone (date, map, cards), with no navigation, buttons or
    // footer; the PDF the browser makes of it is a few pages an authority can file.
    assert!(b
        .find("button[data-print]")
        .await
        .is_displayed()
        .await
        .expect("print button"));
    b.emulate_media("print").await;
    let printed = b
        .js("const shown = s => { const e = document.querySelector(s);
                                  return !!e && e.getClientRects().length > 0; };
             return { nav: shown('.portal-nav'), footer: shown('.portal-footer'),
                      button: shown('button[data-print]'), account: shown('.portal-account'),
                      map: shown('#where-map svg'), as_of: shown('#as-of'),
                      cards: shown('main article.kern-card') };")
        .await;
    assert_eq!(
        printed,
        json!({"nav": false, "footer": false, "button": false, "account": false,
               "map": true, "as_of": true, "cards": true}),
        "print view"
    );
    b.shoot("where-is-our-data-print").await;
    let (pdf, pages) = b.print_pdf().await;
    assert!(pdf.starts_with(b"%PDF-"), "not a PDF");
    assert!((1..=4).contains(&pages), "{pages} pages");
    b.emulate_media("").await;
    assert!(b
        .find(".portal-nav")
        .await
        .is_displayed()
        .await
        .expect("nav"));
    // Each site's card is wide enough on a laptop, and no label breaks inside a word,
    // there or on a phone.
    for (w, h) in [(1366, 768), PHONE] {
        b.client.set_window_size(w, h).await.expect("resize");
        let cards = b
            .js("const widths = [...document.querySelectorAll('main .kern-card')]
                     .map(c => Math.round(c.getBoundingClientRect().width));
                 const broken = [];
                 for (const el of document.querySelectorAll('main .kern-card dt, main .kern-card dd')) {
                   const st = getComputedStyle(el);
                   for (const word of el.textContent.split(/\\s+/).filter(x => x)) {
                     const probe = document.createElement('span');
                     probe.style.cssText = 'position:absolute;visibility:hidden;white-space:nowrap';
                     probe.style.font = st.font;
                     probe.textContent = word;
                     document.body.appendChild(probe);
                     const need = probe.getBoundingClientRect().width;
                     probe.remove();
                     if (need > el.clientWidth + 1) broken.push(word);
                   }
                 }
                 return {widths, broken};")
            .await;
        let widths = cards["widths"].as_array().cloned().unwrap_or_default();
        assert!(!widths.is_empty(), "{cards}");
        if w == 1366 {
            assert!(
                widths
                    .iter()
                    .all(|x| x.as_f64().unwrap_or_default() > 600.0),
                "cards at 1366 px: {cards}"
            );
        }
        assert_eq!(
            cards["broken"],
            json!([]),
            "words broken at {w} px: {cards}"
        );
    }
    b.client
        .set_window_size(DESKTOP.0, DESKTOP.1)
        .await
        .expect("resize");
    b.goto("/policies").await;
    b.check_page("policies").await;
    b.shoot("policies").await;
    b.goto("/organisation").await;
    b.shoot("organisation").await;
    b.sign_out().await;

    // The vendor publishes a new version in the portal (a Helm chart's reference), sees
    // the plan of the rollout it would start, and starts it, then pauses it.
    b.sign_in("anbieter", &password(&data, "anbieter")).await;
    b.goto("/offerings/jitsi-meet").await;
    b.click("a[href='/offerings/jitsi-meet/publish']").await;
    b.check_page("publish a version").await;
    b.fill("#version", "2.0.9700").await;
    b.fill("#repository", "https://jitsi-contrib.github.io/jitsi-helm/")
        .await;
    b.fill("#chart", "jitsi-meet").await;
    b.fill("#chart_version", "1.5.1").await;
    b.fill("#changelog", "Jitsi Meet stable-9700.").await;
    b.click("form.portal-form button.kern-btn--primary[type=submit]")
        .await;
    b.wait_until("the start page with the plan", || async {
        b.path()
            .await
            .starts_with("/rollouts/new?offering=jitsi-meet&version=2.0.9700")
            .then_some(())
    })
    .await;
    let versions = api(
        &base,
        &admin,
        reqwest::Method::GET,
        "/offerings/jitsi-meet/versions",
        None,
    )
    .await;
    assert!(
        versions
            .as_array()
            .is_some_and(|v| v.iter().any(|x| x["version"] == "2.0.9700")),
        "{versions}"
    );
    b.check_page("start a rollout with its plan").await;
    assert_eq!(
        b.js("return document.querySelector('#version').value;")
            .await,
        "2.0.9700",
        "the version just published is chosen"
    );
    let waves = b
        .js("return document.querySelectorAll('#rollout-plan tbody tr').length;")
        .await;
    assert!(
        waves.as_u64().unwrap_or_default() >= 1,
        "the plan's waves: {waves}"
    );
    b.shoot("rollout-plan").await;
    b.fill("#bake_seconds", "600").await;
    b.js("window.beforePreview = true;").await;
    b.click("form.portal-form button[name=preview]").await;
    b.wait_until("the plan for the new bake time", || async {
        let s = b
            .js("return {old: window.beforePreview === true,
                         bake: (document.querySelector('#bake_seconds') || {}).value};")
            .await;
        (s == json!({"old": false, "bake": "600"})).then_some(())
    })
    .await;
    b.check_page("the plan for the new bake time").await;
    b.click("form.portal-form button.kern-btn--primary[type=submit]")
        .await;
    let rollout = b
        .wait_until("the rollout page", || async {
            let p = b.path().await;
            p.strip_prefix("/rollouts/")
                .and_then(|rest| rest.strip_suffix("?done=started"))
                .map(str::to_string)
        })
        .await;
    b.check_page("rollout").await;
    b.click("#pause").await;
    b.wait_until("paused", || async {
        b.path().await.ends_with("done=pause").then_some(())
    })
    .await;
    assert_eq!(
        b.js("return document.querySelector('#rollout-state').dataset.state;")
            .await,
        "paused"
    );
    let r = api(
        &base,
        &admin,
        reqwest::Method::GET,
        &format!("/rollouts/{rollout}"),
        None,
    )
    .await;
    assert_eq!(r["state"], "paused", "{r}");
    let audit = api(
        &base,
        &admin,
        reqwest::Method::GET,
        "/audit?action=rollout.pause",
        None,
    )
    .await;
    assert_eq!(audit["items"][0]["actor"], "user/anbieter", "{audit}");
    b.check_page("paused rollout").await;
    // Resumed elsewhere (the API), the page follows without a reload, all of it
    // together: the state in its live region (the same node, so screen readers announce
    // the change), the controls and the tables; no status badge lies outside what
    // refreshes.
    b.js("window.sameDocument = true; window.statusNode = document.getElementById('rollout-status');")
        .await;
    api(
        &base,
        &admin,
        reqwest::Method::POST,
        &format!("/rollouts/{rollout}/resume"),
        None,
    )
    .await;
    b.wait_until("the page shows the resumed rollout", || async {
        let s = b
            .js("return document.querySelector('#rollout-state').dataset.state;")
            .await;
        (s == "running").then_some(())
    })
    .await;
    let live = b
        .js("const s = document.getElementById('rollout-status');
             return {same: window.sameDocument === true, node: s !== null && s === window.statusNode,
                     role: s && s.getAttribute('role'),
                     pause: !!document.querySelector('#pause'), resume: !!document.querySelector('#resume'),
                     stale: [...document.querySelectorAll('main .kern-badge')]
                         .filter(e => !e.closest('[data-live]')).map(e => e.textContent.trim())};")
        .await;
    assert_eq!(
        live,
        json!({"same": true, "node": true, "role": "status", "pause": true, "resume": false, "stale": []})
    );
    // The buttons of a site ("Erneut versuchen", "Überspringen") never overlap.
    for (w, h) in [DESKTOP, (1366, 768), PHONE] {
        b.client.set_window_size(w, h).await.expect("resize");
        let overlaps = b
            .js("const out = []; let n = 0;
                 for (const cell of document.querySelectorAll('main td')) {
                   const bs = [...cell.querySelectorAll('button')].map(x => x.getBoundingClientRect());
                   n += bs.length;
                   for (let i = 0; i < bs.length; i++) for (let j = i + 1; j < bs.length; j++) {
                     const a = bs[i], c = bs[j];
                     if (a.left < c.right && c.left < a.right && a.top < c.bottom && c.top < a.bottom)
                       out.push(cell.closest('tr').querySelector('th').textContent.trim());
                   }
                 }
                 return {buttons: n, overlaps: out};")
            .await;
        assert!(
            overlaps["buttons"].as_u64().unwrap_or_default() >= 2,
            "{overlaps}"
        );
        assert_eq!(overlaps["overlaps"], json!([]), "at {w} px: {overlaps}");
    }
    b.client
        .set_window_size(DESKTOP.0, DESKTOP.1)
        .await
        .expect("resize");
    b.shoot("rollout").await;
    b.goto("/rollouts").await;
    b.check_page("rollouts").await;
    b.click("nav a[href='/work']").await;
    b.check_page("tasks of a vendor").await;
    assert!(b
        .text("main")
        .await
        .contains("Gestoppte und abgebrochene Rollouts"));
    b.sign_out().await;

    // Another municipality signs in and cannot see München's booking.
    b.sign_in("it-flensburg", &password(&data, "it-flensburg"))
        .await;
    assert_eq!(b.path().await, "/organisation");
    assert!(!b.text("main").await.contains(&id));
    b.goto(&format!("/bookings/{id}")).await;
    assert_eq!(b.text("h1").await, "Nicht gefunden");
    assert!(!b.text("main").await.contains("meet.muenchen.de"));
    b.check_page("not found").await;
    let muenchen = api(
        &base,
        &admin,
        reqwest::Method::GET,
        &format!("/bookings/{id}"),
        None,
    )
    .await;
    let org = muenchen["organisation"]
        .as_str()
        .expect("organisation")
        .to_string();
    for page in ["/organisation", "/organisation/data"] {
        b.goto(&format!("{page}?org={org}")).await;
        assert_eq!(b.text("h1").await, "Nicht gefunden", "{page}");
        assert!(!b.text("main").await.contains("München"), "{page}");
    }
    adopts_a_template(&b, &base, &admin).await;
    // A municipality sees the current health of the sites it uses, not a site's past:
    // no history links in its fleet, and the page itself refused in German.
    b.goto("/fleet").await;
    let fleet = b
        .js(
            "return {rows: document.querySelectorAll('main tr[id^=\"site-\"]').length,
                     links: document.querySelectorAll('main a[href^=\"/fleet/sites/\"]').length};",
        )
        .await;
    assert!(
        fleet["rows"].as_u64().unwrap() > 0,
        "the sites it uses: {fleet}"
    );
    assert_eq!(
        fleet["links"], 0,
        "history links for a municipality: {fleet}"
    );
    let site = muenchen["site"].as_str().expect("a placed booking's site");
    b.goto(&format!("/fleet/sites/{site}")).await;
    assert_eq!(b.text("h1").await, "Keine Berechtigung");
    b.check_page("a site's history refused").await;
    // In English, by choice.
    b.goto("/organisation").await;
    b.click("a[hreflang='en']").await;
    assert_eq!(b.js("return document.documentElement.lang;").await, "en");
    assert!(b.text("nav").await.contains("Where is our data?"));
    b.check_page("organisation in English").await;
    b.click("a[hreflang='de']").await;
    b.sign_out().await;

    // The operator's fleet and the auditor's trail.
    b.sign_in("betrieb", &password(&data, "betrieb")).await;
    b.goto("/fleet").await;
    b.check_page("fleet").await;
    assert!(b
        .find("svg.portal-map circle")
        .await
        .is_displayed()
        .await
        .expect("map"));
    b.shoot("fleet").await;
    // Booking states per site as a chart, whose numbers are also a table: each row's
    // total drawn beside its bar is the table's total, and the table's cells add up.
    let chart = b
        .js(
            "const rows = [...document.querySelectorAll('#states-chart svg g.row')];
             const table = [...document.querySelectorAll('#states-table tbody tr')];
             return {
               bars: document.querySelectorAll('#states-chart svg rect').length,
               drawn: rows.map(g => Number(g.querySelector('text:last-of-type').textContent)),
               totals: table.map(tr => Number(tr.lastElementChild.textContent)),
               sums: table.map(tr => [...tr.querySelectorAll('td')].slice(0, -1)
                                       .reduce((a, td) => a + Number(td.textContent), 0)),
               legend: document.querySelectorAll('#states-chart .portal-legend li').length
             };",
        )
        .await;
    assert!(chart["bars"].as_u64().unwrap() > 0, "{chart}");
    assert!(chart["legend"].as_u64().unwrap() > 0, "{chart}");
    assert_eq!(chart["drawn"], chart["totals"], "{chart}");
    assert_eq!(chart["sums"], chart["totals"], "{chart}");
    // The capacity outlook: twelve months per site, drawn and as a table, the same
    // per cent in each cell's title as in the table; next spring's window is reserved.
    let outlook = b
        .js(
            "const rows = [...document.querySelectorAll('#outlook-chart svg g.row')];
             const table = [...document.querySelectorAll('#outlook-table tbody tr')];
             return {
               months: document.querySelectorAll('#outlook-table thead th').length - 1,
               cells: rows.map(g => g.querySelectorAll('rect').length),
               drawn: rows.map(g => [...g.querySelectorAll('rect title')].map(t => t.textContent.match(/: (\\d+) %/)[1])),
               table: table.map(tr => [...tr.querySelectorAll('td')].map(td => td.textContent.replace(' %', ''))),
               legend: document.querySelectorAll('#outlook-chart .portal-legend li').length
             };",
        )
        .await;
    assert_eq!(outlook["months"], 12, "{outlook}");
    assert!(
        !outlook["cells"].as_array().unwrap().is_empty(),
        "{outlook}"
    );
    assert!(
        outlook["cells"].as_array().unwrap().iter().all(|n| n == 12),
        "{outlook}"
    );
    assert_eq!(outlook["drawn"], outlook["table"], "{outlook}");
    assert_eq!(outlook["legend"], 4, "{outlook}");
    let reserved = api(&base, &admin, reqwest::Method::GET, "/fleet/capacity", None).await;
    assert!(
        reserved["sites"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["steps"].as_array().unwrap().len() > 1),
        "the window's start and end are steps ahead: {reserved}"
    );
    // A site's history, one click from its row: the health over time as a band, its
    // stretches and events as tables; the newest stretch is the health the fleet shows.
    let site_link = b
        .js(
            "const a = document.querySelector('main table a[href^=\"/fleet/sites/\"]');
             return a ? a.getAttribute('href') : null;",
        )
        .await;
    let site_path = site_link.as_str().expect("a history link for an own site");
    let site_name = site_path.trim_start_matches("/fleet/sites/").to_string();
    let fleet_health = b
        .js(&format!(
            "return document.querySelector('#site-{site_name} [data-health]').dataset.health;"
        ))
        .await;
    b.click(&format!("main table a[href='{site_path}']")).await;
    b.check_page("a site's history").await;
    let history = b
        .js("return {
               bands: document.querySelectorAll('#history-chart svg rect').length,
               newest: document.querySelector('#spans tbody tr [data-health]').dataset.health,
               events: [...document.querySelectorAll('#turns tbody tr td:first-of-type')]
                         .some(td => td.textContent.includes('meldet sich')),
               current: document.querySelector('.portal-windows [aria-current]').textContent.trim()
             };")
        .await;
    assert!(history["bands"].as_u64().unwrap() >= 1, "{history}");
    assert_eq!(history["newest"], fleet_health, "{history}");
    assert_eq!(history["events"], true, "{history}");
    assert_eq!(history["current"], "Letzte 30 Tage", "{history}");
    b.shoot("site-history").await;
    b.click(".portal-windows a[href$='?days=7']").await;
    assert_eq!(
        b.text(".portal-windows [aria-current]").await,
        "Letzte 7 Tage"
    );
    b.check_page("a site's history of a week").await;
    b.click("nav a[href='/work']").await;
    b.check_page("tasks of an operator").await;
    let work = b.text("main").await;
    assert!(
        work.contains("Ihre offenen Vorschläge für Platzierungsfakten"),
        "{work}"
    );
    assert!(work.contains("Probleme Ihrer Rechenzentren"), "{work}");
    b.shoot("tasks").await;
    b.sign_out().await;
    b.sign_in("pruefer", &password(&data, "pruefer")).await;
    b.goto("/audit").await;
    b.check_page("audit").await;
    assert!(b.text("#chain-status").await.contains("unversehrt"));
    b.shoot("audit").await;
    b.goto("/fleet").await;
    b.check_page("fleet for the auditor").await;
    b.sign_out().await;

    // The federation admin's queue: München's Wohnsitzanmeldung awaits approval; its
    // page shows the requested configuration (the Melderegister connection) before the
    // admin approves it, and the queue is empty afterwards.
    b.sign_in("admin", &token(&data, "admin.password")).await;
    b.goto("/work").await;
    b.check_page("tasks of the federation").await;
    let waiting = b
        .js("return [...document.querySelectorAll('#approvals tbody a')].map(a => a.getAttribute('href'));")
        .await;
    let waiting = waiting.as_array().cloned().unwrap_or_default();
    assert_eq!(waiting.len(), 1, "one booking awaits approval: {waiting:?}");
    let path = waiting[0].as_str().unwrap().to_string();
    b.click(&format!("#approvals a[href='{path}']")).await;
    b.check_page("a booking awaiting approval").await;
    let config = b.text("#booking-config").await;
    assert!(
        config.contains("https://xmeld.muenchen.de/api") && config.contains("Melderegister"),
        "{config}"
    );
    b.click(&format!("form[action='{path}/approve'] button"))
        .await;
    let approved = b
        .wait_until("approved", || async {
            let id = path.trim_start_matches("/bookings/");
            let booking = api(
                &base,
                &admin,
                reqwest::Method::GET,
                &format!("/bookings/{id}"),
                None,
            )
            .await;
            (booking["state"] != "awaiting-approval").then_some(booking)
        })
        .await;
    assert!(
        ["placed", "provisioning", "active"].contains(&approved["state"].as_str().unwrap_or("")),
        "approved, not refused: {approved}"
    );
    b.goto("/work").await;
    assert_eq!(
        b.js("return document.querySelectorAll('#approvals tbody a').length;")
            .await,
        0
    );
    b.shoot("tasks-federation").await;
    b.sign_out().await;

    drop(b);
    drop(server);
}
