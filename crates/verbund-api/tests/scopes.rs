//! A caller's bookings through the real router on the real directory, on SQLite and
//! PostgreSQL: every page as an org-admin with delegation sees exactly the bookings of
//! the organisations below it, each once, also when a filter narrows the list — for a
//! Land (a scope of more than a thousand organisations, probed while the database walks
//! the bookings in id order), for a Kreis (a scope small enough to be a filter of the
//! query), and for an administrator of a Land and of a Kreis of another Land at once.

// Tests and benchmarks may panic: a failed expectation is a failed run.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[macro_use]
mod common;

use std::collections::{BTreeMap, BTreeSet};

use chrono::Utc;
use common::*;
use serde_json::Value;
use verbund_domain::account::{Membership, Role, UserSpec};
use verbund_domain::booking::BookingState;
use verbund_domain::page::PageRequest;
use verbund_store::BookingFilter;
use verbund_testkit::germany;

api_tests!(a_delegated_administrator_pages_through_exactly_the_bookings_below_it);

/// A token of a delegated org-admin of each of `organisations`.
async fn admin_of(kit: &Kit, name: &str, organisations: &[&String]) -> String {
    let now = Utc::now();
    let user = kit
        .store
        .create_user(
            "system/test",
            &UserSpec {
                name: name.into(),
                display_name: name.into(),
                email: None,
                memberships: organisations
                    .iter()
                    .map(|o| Membership {
                        role: Role::OrgAdmin,
                        organisation: Some(o.to_string()),
                        provider: None,
                        delegated: true,
                    })
                    .collect(),
            },
            now,
        )
        .await
        .unwrap();
    verbund_api::issue_token(&kit.store, "system/test", &user.id, "test", None, now)
        .await
        .unwrap()
        .1
}

/// The ids of every page of `path` read in pages of `limit`, each once.
async fn paged_ids(kit: &Kit, token: &str, path: &str, limit: u32) -> BTreeSet<String> {
    let items = all_in_pages_of(&kit.app, token, path, limit).await;
    let ids: BTreeSet<String> = items
        .iter()
        .map(|b| b["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), items.len(), "{path}: a booking listed twice");
    ids
}

async fn a_delegated_administrator_pages_through_exactly_the_bookings_below_it(kit: Kit) {
    let now = Utc::now();
    verbund_placement::ensure_default_policies(&kit.store, now)
        .await
        .unwrap();
    let fleet = germany::load(&kit.store, now).await;
    // More bookings than Gemeinden: each of the first Gemeinden has two, far apart in id
    // order, so a walk through a Land's bookings passes thousands of others in between.
    fleet
        .book(&kit.store, 12_000, BookingState::Active, now)
        .await;
    let mut all = Vec::new();
    let mut after = None;
    loop {
        let page = kit
            .store
            .list_bookings(
                &BookingFilter::default(),
                &PageRequest {
                    limit: Some(1000),
                    after,
                },
            )
            .await
            .unwrap();
        all.extend(page.items);
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    let organisations: Vec<String> = all.iter().map(|b| b.organisation.clone()).collect();
    let chains = kit.store.organisation_chains(&organisations).await.unwrap();
    let below = |root: &str, site: Option<&str>| -> BTreeSet<String> {
        all.iter()
            .filter(|b| chains[&b.organisation].iter().any(|o| o == root))
            .filter(|b| site.is_none_or(|s| b.site.as_deref() == Some(s)))
            .map(|b| b.id.clone())
            .collect()
    };
    // The Land of the first booked Gemeinde (the test data books Gemeinden in order).
    let chain = &chains[&all[0].organisation];
    let (kreis, land) = (&chain[1], &chain[chain.len() - 2]);
    // The site most of the Land's bookings are on, as a filter beside the scope.
    let mut per_site: BTreeMap<String, usize> = BTreeMap::new();
    for b in all.iter().filter(|b| below(land, None).contains(&b.id)) {
        *per_site
            .entry(b.site.clone().unwrap_or_default())
            .or_default() += 1;
    }
    let site = per_site.iter().max_by_key(|(_, n)| **n).unwrap().0.clone();

    // A Kreis of another Land.
    let elsewhere = all
        .iter()
        .map(|b| &chains[&b.organisation])
        .find(|c| &c[c.len() - 2] != land)
        .map(|c| &c[1])
        .expect("a booking in another Land");
    let below_all = |roots: &[&String], site: Option<&str>| -> BTreeSet<String> {
        roots.iter().flat_map(|r| below(r, site)).collect()
    };
    let callers: [(&str, Vec<&String>); 3] = [
        ("land-admin", vec![land]),
        ("kreis-admin", vec![kreis]),
        ("land-and-kreis-admin", vec![land, elsewhere]),
    ];
    for (name, roots) in callers {
        let token = admin_of(&kit, name, &roots).await;
        let expected = below_all(&roots, None);
        assert!(!expected.is_empty(), "{name}: bookings below it");
        for limit in [37, 500] {
            assert_eq!(
                paged_ids(&kit, &token, "/api/v1/bookings", limit).await,
                expected,
                "{name}, pages of {limit}"
            );
        }
        let path = format!("/api/v1/bookings?site={site}");
        assert_eq!(
            paged_ids(&kit, &token, &path, 50).await,
            below_all(&roots, Some(&site)),
            "{name} on {site}"
        );
        // A filter that leaves nothing: an empty page, not a walk without end.
        let none: Vec<Value> =
            all_in_pages_of(&kit.app, &token, "/api/v1/bookings?state=deleted", 50).await;
        assert!(none.is_empty(), "{name}: {none:?}");
    }
    let land_size = kit
        .store
        .scope_members(&verbund_store::OrganisationScope {
            alone: Vec::new(),
            with_descendants: vec![land.clone()],
        })
        .await
        .unwrap()
        .len();
    assert!(
        land_size > 1000,
        "the Land's scope is a wide one: {land_size}"
    );
}
