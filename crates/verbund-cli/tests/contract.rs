//! The API keeps its own contract: schemathesis (from PyPI; `scripts/test` installs it)
//! reads `/api/v1/openapi.json` from the real binary, serving the demo federation, and
//! sends what the document allows and what it forbids, with every check it has: no
//! server error, every status, content type, header and body as documented, valid input
//! accepted and invalid input refused, authentication not ignored, and the stateful
//! links followed. Any finding fails the test, with schemathesis's own report.
//!
//! `positive_data_acceptance` (a request the document allows is accepted) holds the server
//! to one rule of statuses (`verbund_api::problem` states it): 400 answers only what
//! breaks the document, so every rule of form a validator applies must be stated there (a
//! pattern, a length, a bound, an enum, a field another one's value requires, NUL in no
//! string), from the constant or function that checks it. A request that keeps to the
//! document may still be refused for what no schema can state, and the answer says which
//! it is: 404 when it names an object that does not exist (a booking's organisation, a
//! pinned version), 409 when it conflicts with the current state (a version not newer than
//! the latest), 422 when it breaks a rule across fields or items (a site's region within
//! its country, plan names unique), against stored data or the time (a Land policy's
//! owner is a Land, a token's expiry lies ahead), or inside free-form content (a
//! configuration against its offering's schema, a Cedar policy's text, an age recipient's
//! checksum). `schemathesis.toml` beside this file expects exactly those, and not 400: a
//! validator that refuses with 400 what the document allows fails the run.
//!
//! One exception: `revoke_token` and `revoke_user_access` are left out: revoking a token
//! listed by `GET /tokens`, or "sign out everywhere" on the account `GET /users/me` names,
//! would revoke the run's own credential (the API suite covers both).

// Tests may panic: a failed expectation is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::PathBuf;
use std::process::Command;

mod common;
use common::{token, Server};

/// The variable naming schemathesis's `st` command.
const SCHEMATHESIS_VAR: &str = "VERBUND_SCHEMATHESIS";

/// Test cases per operation and generation mode: enough to find what a run of hundreds
/// finds first, in a few minutes on two cores.
const MAX_EXAMPLES: &str = "10";

/// schemathesis's `st`, named by `VERBUND_SCHEMATHESIS`; the test fails without it
/// rather than skip.
fn schemathesis() -> PathBuf {
    match std::env::var_os(SCHEMATHESIS_VAR) {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => panic!(
            "the contract test needs schemathesis: set {SCHEMATHESIS_VAR} to its `st` command \
             (./scripts/test installs it from PyPI into target/schemathesis and sets it; by hand: \
             `python3 -m venv target/schemathesis && target/schemathesis/bin/pip install \
             schemathesis==4.32.5`, then {SCHEMATHESIS_VAR}=$PWD/target/schemathesis/bin/st)"
        ),
    }
}

/// Runs schemathesis with every check against `verbund demo` on `database` (SQLite in the
/// data folder when `None`) with a federation admin's token, and fails on any finding.
async fn the_api_keeps_its_contract(database: Option<common::Database>) {
    let st = schemathesis();
    let dir = tempfile::tempdir().expect("temporary folder");
    let data = dir.path().join("data");
    let mut args = vec!["--no-simulation"];
    if let Some(db) = &database {
        args.extend(db.args());
    }
    let server = Server::start_with("demo", &args, &data).await;
    let admin = token(&data, "admin.token");
    let schema = format!("{}/api/v1/openapi.json", server.base);
    let auth = format!("Authorization: Bearer {admin}");
    let config = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/schemathesis.toml");
    let out = tokio::task::spawn_blocking(move || {
        Command::new(&st)
            .arg("--config-file")
            .arg(&config)
            .args(["run", &schema, "--checks", "all", "--mode", "all"])
            .args(["--exclude-operation-id", "revoke_token"])
            .args(["--exclude-operation-id", "revoke_user_access"])
            .args(["--max-examples", MAX_EXAMPLES, "--workers", "2"])
            .args(["--generation-database", "none", "--no-color"])
            .args(["--header", &auth])
            .output()
            .unwrap_or_else(|e| panic!("{} does not run: {e}", st.display()))
    })
    .await
    .expect("schemathesis ran");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found the API breaking its contract:\n{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A run that tested nothing would pass too.
    assert!(
        report.contains("Tested: ") && !report.contains("Tested: 0"),
        "schemathesis tested no operation:\n{report}"
    );
    // The run kept its credential (a revoked one would have made it a run of 401s).
    let me = reqwest::Client::new()
        .get(format!("{}/api/v1/users/me", server.base))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("request");
    assert_eq!(me.status().as_u16(), 200, "the run lost its token");
    drop(server);
}

mod the_api_keeps_its_contract {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        super::the_api_keeps_its_contract(None).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        super::the_api_keeps_its_contract(Some(super::common::Database::create(
            "verbund_contract",
        )))
        .await;
    }
}
