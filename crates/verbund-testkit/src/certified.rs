//! A certification body for tests and benchmarks whose sites must be certified.
//!
//! Placement counts a certification only as a verified credential of an issuer on the
//! federation's trust list. Fixtures state their sites' certifications in the site
//! facts (as an operator would claim them); [`certify_stated`] then does what a
//! certification body and the federation do in a real federation: the body signs a
//! credential for each, the federation puts the body on its trust list, and the store
//! verifies and keeps each credential — the path a handed-in credential takes, with the
//! real signature check.

use std::sync::OnceLock;

use chrono::{DateTime, NaiveDate, Utc};
use verbund_domain::directory::Certification;
use verbund_domain::page::PageRequest;
use verbund_store::{SiteFilter, Store};
use verbund_trust::{site_subject, verify_certification, Issuer, TrustList};

/// The schemes the test body attests.
pub const SCHEMES: &[&str] = &["iso27001", "bsi-c5"];

/// Who hands the credentials in, in the audit log.
const ACTOR: &str = "test/certification-body";

/// The test certification body: one key per process, so that every store of a test
/// binary trusts the same body.
pub fn body() -> &'static Issuer {
    static BODY: OnceLock<Issuer> = OnceLock::new();
    BODY.get_or_init(|| {
        Issuer::generate("did:web:zertifizierung.test", "Test-Zertifizierungsstelle")
            .expect("an Ed25519 key")
    })
}

/// Puts the test body on the store's trust list (keeping the issuers already there) and
/// hands in a credential for every certification stated in the facts of every site that
/// is still valid at `now` and not yet attested by the body. Returns how many it handed
/// in.
pub async fn certify_stated(store: &Store, now: DateTime<Utc>) -> usize {
    trust_body(store, now).await;
    let mut handed_in = 0;
    let mut page = PageRequest {
        limit: Some(500),
        after: None,
    };
    loop {
        let sites = store
            .list_sites(&SiteFilter::default(), &page)
            .await
            .expect("list sites");
        for site in &sites.items {
            let attested = store
                .site_credentials(&site.spec.name)
                .await
                .expect("site credentials");
            for c in &site.spec.certifications {
                let done = attested.iter().any(|a| {
                    a.certified.issuer == body().id
                        && a.certified.scheme == c.scheme
                        && a.certified.level == c.level
                        && a.certified.valid_until.date_naive() == c.valid_until
                });
                if done || c.valid_until < now.date_naive() {
                    continue;
                }
                hand_in(store, &site.spec.name, c, now).await;
                handed_in += 1;
            }
        }
        match sites.next {
            Some(next) => page.after = Some(next),
            None => return handed_in,
        }
    }
}

/// Adds the body to the trust list unless it is on it.
async fn trust_body(store: &Store, now: DateTime<Utc>) {
    let stored = store.trust_list().await.expect("trust list");
    if stored.list.issuers.iter().any(|i| i.id == body().id) {
        return;
    }
    let mut list: TrustList = stored.list;
    list.issuers.push(body().trusted(SCHEMES));
    store
        .put_trust_list(ACTOR, &list, now)
        .await
        .expect("put the test body on the trust list");
}

/// The body's credential for `certification` of `site`, verified and stored (the body
/// must be on the trust list: [`certify_stated`] puts it there).
pub async fn hand_in(store: &Store, site: &str, certification: &Certification, now: DateTime<Utc>) {
    let subject = site_subject(site);
    let from = NaiveDate::from_ymd_opt(2020, 1, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .expect("a date")
        .and_utc();
    let until = certification
        .valid_until
        .and_hms_opt(23, 59, 59)
        .expect("a time")
        .and_utc();
    let jwt = body()
        .certify(
            &subject,
            &certification.scheme,
            certification.level.as_deref(),
            (from, until),
            None,
        )
        .expect("sign");
    store
        .add_site_credential(ACTOR, site, &jwt, now, |list| {
            verify_certification(&jwt, list, &subject, now).map_err(|e| {
                verbund_store::StoreError::Invalid(verbund_domain::Invalid::meaning(
                    "/certification",
                    e.to_string(),
                ))
            })
        })
        .await
        .unwrap_or_else(|e| panic!("the credential for {site}'s {}: {e}", certification.scheme));
}
