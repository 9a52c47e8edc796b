//! The store's conformance suite: the behaviour that the API, the CLI and the importers
//! rely on, checked on SQLite and on PostgreSQL alike, each test on a fresh database.
//!
//! Every body `async fn x(store: Store)` becomes `sqlite_x` and `postgres_x` (see
//! `common`). Time is a parameter everywhere, so the tests choose it.

// Tests and benchmarks may panic: a failed expectation is a failed run.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::io::BufReader;
use std::sync::OnceLock;

use chrono::Duration;
use common::*;
use serde_json::json;
use verbund_domain::account::{hash_token, token_secret, Membership, Role, UserSpec};
use verbund_domain::audit::BrokenLink;
use verbund_domain::catalog::{Category, Dependency};
use verbund_domain::directory::{
    ImportSummary, KeyedOrganisation, Level, Organisation, OrganisationFilter, OrganisationSpec,
    OzgService,
};
use verbund_domain::page::PageRequest;
use verbund_import::gv100ad::Directory;
use verbund_store::{AuditFilter, OfferingFilter, SiteFilter, Store, StoreError, UserFilter};

const ADMIN: &str = "user/admin";

conformance!(
    organisations_form_the_federal_hierarchy,
    unknown_parent_is_invalid_and_stores_nothing,
    wrong_level_order_is_refused,
    duplicate_keys_conflict_and_store_nothing,
    second_bund_is_refused,
    update_keeps_level_and_parent,
    list_organisations_filters,
    list_organisations_pages_through_everything_once,
    find_by_key_prefers_an_ars_match,
    gv100ad_import_builds_the_directory,
    gv100ad_reimport_updates_exactly_the_changed_records,
    import_with_unknown_parent_stores_nothing,
    providers_are_created_then_updated,
    sites_belong_to_one_existing_provider,
    ozg_import_and_offerings_check_their_references,
    versions_only_grow_and_list_newest_first,
    users_and_memberships,
    tokens_authenticate_until_revoked_or_expired,
    records_read_back_as_written,
    list_audit_filters_and_pages_newest_first,
    concurrent_writes_are_serialised,
    writes_after_failed_writes_succeed,
    declared_secrets_are_kept_apart_and_sealed_documents_by_digest,
    idempotency_keys_are_recorded_with_their_booking_only,
    an_idempotency_key_books_once_under_concurrent_retries,
    organisation_chains_of_many_organisations_are_read_at_once,
    a_scope_covers_its_organisations_and_everything_below_the_delegated_ones,
    parallel_sign_in_attempts_pass_at_most_the_limit,
    disabled_accounts_work_nowhere_until_enabled,
    revoking_access_ends_every_token_and_session,
    password_resets_are_one_time_and_expire,
    accounts_of_an_identity_provider_have_no_local_password_or_roles,
    a_password_change_ends_the_other_sessions,
);

conformance_db!(
    opening_twice_migrates_once,
    tampering_breaks_the_audit_chain,
    two_stores_on_one_database_write_concurrently,
    the_shared_history_moves_only_from_its_head,
    one_replica_at_a_time_writes_the_desired_state,
    leaderships_leave_the_pool_to_requests,
    a_cycle_in_the_organisation_chain_is_corrupt_data,
);

// ---------------------------------------------------------------------------------------
// Opening

async fn opening_twice_migrates_once(store: Store, db: Db) {
    let bund = store
        .create_organisation(ADMIN, &bund(), t(0))
        .await
        .unwrap();
    let second = db.open().await;
    assert_eq!(second.get_organisation(&bund.id).await.unwrap(), bund);
    second
        .put_provider(ADMIN, &provider("dataport"), t(1))
        .await
        .unwrap();
    second.close().await;

    let third = db.open().await;
    assert_eq!(
        third.get_provider("dataport").await.unwrap().spec,
        provider("dataport")
    );
    assert_eq!(
        store.get_provider("dataport").await.unwrap().created_at,
        t(1)
    );
    assert_eq!(third.verify_audit().await.unwrap(), Ok(2));
    third.close().await;
}

// ---------------------------------------------------------------------------------------
// Organisations

/// A small directory with real keys: three Länder, five Kreise, seven Gemeinden (one of
/// them, Hamburg, directly below its Land as in a city-state).
struct Tree {
    bund: Organisation,
    bayern: Organisation,
    hamburg: Organisation,
    nrw: Organisation,
    k_muenchen: Organisation,
    lk_muenchen: Organisation,
    k_muehldorf: Organisation,
    k_garmisch: Organisation,
    k_muelheim: Organisation,
    g_muenchen: Organisation,
    unterhaching: Organisation,
    garching: Organisation,
    g_muehldorf: Organisation,
    murnau: Organisation,
    g_hamburg: Organisation,
    g_muelheim: Organisation,
}

impl Tree {
    async fn create(store: &Store) -> Tree {
        let mut n = 0;
        let mut mk = |spec: OrganisationSpec| {
            n += 1;
            let now = t(n);
            async move { store.create_organisation(ADMIN, &spec, now).await.unwrap() }
        };
        let bund = mk(bund()).await;
        let bayern = mk(land("Bayern", "09", &bund.id)).await;
        let hamburg = mk(land("Hamburg", "02", &bund.id)).await;
        let nrw = mk(land("Nordrhein-Westfalen", "05", &bund.id)).await;
        let k_muenchen = mk(kreis("München, Landeshauptstadt", "09162", &bayern.id)).await;
        let lk_muenchen = mk(kreis("München", "09184", &bayern.id)).await;
        let k_muehldorf = mk(kreis("Mühldorf a.Inn", "09183", &bayern.id)).await;
        let k_garmisch = mk(kreis("Garmisch-Partenkirchen", "09180", &bayern.id)).await;
        let k_muelheim = mk(kreis("Mülheim an der Ruhr, Stadt", "05117", &nrw.id)).await;
        let g_muenchen = mk(gemeinde(
            "München, Landeshauptstadt",
            "091620000000",
            "09162000",
            &k_muenchen.id,
        ))
        .await;
        let unterhaching = mk(gemeinde(
            "Unterhaching",
            "091840148148",
            "09184148",
            &lk_muenchen.id,
        ))
        .await;
        let garching = mk(gemeinde(
            "Garching b.München, St",
            "091840119119",
            "09184119",
            &lk_muenchen.id,
        ))
        .await;
        let g_muehldorf = mk(gemeinde(
            "Mühldorf a.Inn, St",
            "091831280128",
            "09183128",
            &k_muehldorf.id,
        ))
        .await;
        let murnau = mk(gemeinde(
            "Murnau a.Staffelsee",
            "091800000124",
            "09180124",
            &k_garmisch.id,
        ))
        .await;
        let g_hamburg = mk(gemeinde(
            "Hamburg, Freie und Hansestadt",
            "020000000000",
            "02000000",
            &hamburg.id,
        ))
        .await;
        let g_muelheim = mk(gemeinde(
            "Mülheim an der Ruhr, Stadt",
            "051170000000",
            "05117000",
            &k_muelheim.id,
        ))
        .await;
        Tree {
            bund,
            bayern,
            hamburg,
            nrw,
            k_muenchen,
            lk_muenchen,
            k_muehldorf,
            k_garmisch,
            k_muelheim,
            g_muenchen,
            unterhaching,
            garching,
            g_muehldorf,
            murnau,
            g_hamburg,
            g_muelheim,
        }
    }
}

fn ids<'a>(orgs: impl IntoIterator<Item = &'a Organisation>) -> BTreeSet<String> {
    orgs.into_iter().map(|o| o.id.clone()).collect()
}

async fn organisations_form_the_federal_hierarchy(store: Store) {
    let mut head = 0;
    let mut create = |spec: OrganisationSpec, n: i64| {
        let store = &store;
        let h = head;
        head += 1;
        async move {
            let o = store.create_organisation(ADMIN, &spec, t(n)).await.unwrap();
            let e = assert_one_event(
                store,
                h,
                ADMIN,
                "organisation.create",
                &format!("organisation/{}", o.id),
            )
            .await;
            assert_eq!(e.before, None);
            assert_eq!(e.after.as_ref().unwrap()["name"], json!(o.name));
            assert_eq!(e.at, t(n));
            assert_eq!(store.get_organisation(&o.id).await.unwrap(), o);
            o
        }
    };
    let bund = create(bund(), 1).await;
    let bayern = create(land("Bayern", "09", &bund.id), 2).await;
    let kreis = create(kreis("München, Landeshauptstadt", "09162", &bayern.id), 3).await;
    let mut spec = gemeinde(
        "München, Landeshauptstadt",
        "091620000000",
        "09162000",
        &kreis.id,
    );
    spec.population = Some(1_488_202);
    let muenchen = create(spec, 4).await;
    let hamburg = create(land("Hamburg", "02", &bund.id), 5).await;
    let g_hamburg = create(
        gemeinde(
            "Hamburg, Freie und Hansestadt",
            "020000000000",
            "02000000",
            &hamburg.id,
        ),
        6,
    )
    .await;

    assert_eq!(
        (bund.level, bund.parent.as_deref(), bund.land.as_deref()),
        (Level::Bund, None, None)
    );
    assert_eq!(bayern.level, Level::Land);
    assert_eq!(bayern.parent.as_deref(), Some(bund.id.as_str()));
    assert_eq!(bayern.land.as_deref(), Some("09"));
    assert_eq!(kreis.level, Level::Kreis);
    assert_eq!(kreis.parent.as_deref(), Some(bayern.id.as_str()));
    assert_eq!(kreis.land.as_deref(), Some("09"));
    assert_eq!(muenchen.level, Level::Gemeinde);
    assert_eq!(muenchen.parent.as_deref(), Some(kreis.id.as_str()));
    assert_eq!(muenchen.land.as_deref(), Some("09"));
    assert_eq!(muenchen.population, Some(1_488_202));
    assert_eq!((muenchen.created_at, muenchen.updated_at), (t(4), t(4)));
    assert_eq!(g_hamburg.parent.as_deref(), Some(hamburg.id.as_str()));
    assert_eq!(g_hamburg.land.as_deref(), Some("02"));

    assert_eq!(
        store.organisation_ancestors(&muenchen.id).await.unwrap(),
        vec![kreis.id.clone(), bayern.id.clone(), bund.id.clone()]
    );
    assert_not_found(store.get_organisation("no-such-id").await);
    assert_eq!(store.verify_audit().await.unwrap(), Ok(6));
}

async fn unknown_parent_is_invalid_and_stores_nothing(store: Store) {
    let bund = store
        .create_organisation(ADMIN, &bund(), t(0))
        .await
        .unwrap();
    let bayern = store
        .create_organisation(ADMIN, &land("Bayern", "09", &bund.id), t(1))
        .await
        .unwrap();
    let (count, head) = (count_organisations(&store).await, audit_head(&store).await);

    for spec in [
        kreis("München, Landeshauptstadt", "09162", "no-such-id"),
        land("Hessen", "06", "no-such-id"),
        gemeinde("Unterhaching", "091840148148", "09184148", "09184"),
    ] {
        assert_invalid(
            store.create_organisation(ADMIN, &spec, t(2)).await,
            "/parent",
        );
    }
    assert_eq!(count_organisations(&store).await, count);
    assert_eq!(audit_head(&store).await, head);
    assert_eq!(store.find_organisation_by_key("09162").await.unwrap(), None);

    // Parents are named by id, not by key; with the id the same Kreis is accepted.
    assert_invalid(
        store
            .create_organisation(
                ADMIN,
                &kreis("München, Landeshauptstadt", "09162", "09"),
                t(3),
            )
            .await,
        "/parent",
    );
    let ok = kreis("München, Landeshauptstadt", "09162", &bayern.id);
    store.create_organisation(ADMIN, &ok, t(4)).await.unwrap();
    assert_eq!(count_organisations(&store).await, count + 1);
}

async fn wrong_level_order_is_refused(store: Store) {
    let bund = store
        .create_organisation(ADMIN, &bund(), t(0))
        .await
        .unwrap();
    let bayern = store
        .create_organisation(ADMIN, &land("Bayern", "09", &bund.id), t(1))
        .await
        .unwrap();
    let kreis = store
        .create_organisation(ADMIN, &kreis("München", "09184", &bayern.id), t(2))
        .await
        .unwrap();
    let gemeinde = store
        .create_organisation(
            ADMIN,
            &gemeinde("Unterhaching", "091840148148", "09184148", &kreis.id),
            t(3),
        )
        .await
        .unwrap();
    let (count, head) = (count_organisations(&store).await, audit_head(&store).await);

    let cases = [
        (land("Hessen", "06", &bayern.id), "/parent"),
        (land("Hessen", "06", &kreis.id), "/parent"),
        (self::kreis("Starnberg", "09188", &gemeinde.id), "/parent"),
        (
            self::gemeinde(
                "Garching b.München, St",
                "091840119119",
                "09184119",
                &gemeinde.id,
            ),
            "/parent",
        ),
        (
            org("Bund 2", Level::Bund, None, None, Some(&bund.id)),
            "/parent",
        ),
        (
            org("Ohne Eltern", Level::Kreis, Some("09188"), None, None),
            "/parent",
        ),
        // A Kreis of Hessen cannot sit in Bayern.
        (self::kreis("Darmstadt", "06411", &bayern.id), "/ars"),
    ];
    for (spec, field) in cases {
        assert_invalid(store.create_organisation(ADMIN, &spec, t(4)).await, field);
    }
    assert_eq!(count_organisations(&store).await, count);
    assert_eq!(audit_head(&store).await, head);
}

async fn duplicate_keys_conflict_and_store_nothing(store: Store) {
    let bund = store
        .create_organisation(ADMIN, &bund(), t(0))
        .await
        .unwrap();
    let bayern = store
        .create_organisation(ADMIN, &land("Bayern", "09", &bund.id), t(1))
        .await
        .unwrap();
    let kreis = store
        .create_organisation(ADMIN, &kreis("München", "09184", &bayern.id), t(2))
        .await
        .unwrap();
    store
        .create_organisation(
            ADMIN,
            &gemeinde("Unterhaching", "091840148148", "09184148", &kreis.id),
            t(3),
        )
        .await
        .unwrap();
    let (count, head) = (count_organisations(&store).await, audit_head(&store).await);

    let same_ars = org(
        "Landkreis München",
        Level::Kreis,
        Some("09184"),
        None,
        Some(&bayern.id),
    );
    let same_ags = org(
        "München (AGS)",
        Level::Kreis,
        Some("09185"),
        Some("09184"),
        Some(&bayern.id),
    );
    let same_gemeinde = gemeinde("Unterhaching 2", "091840148148", "09184148", &kreis.id);
    let same_land = land("Bayern 2", "09", &bund.id);
    for spec in [same_ars, same_ags, same_gemeinde, same_land] {
        assert_conflict(store.create_organisation(ADMIN, &spec, t(4)).await);
    }
    assert_eq!(count_organisations(&store).await, count);
    assert_eq!(audit_head(&store).await, head);
    assert_eq!(store.verify_audit().await.unwrap(), Ok(head));
}

async fn second_bund_is_refused(store: Store) {
    store
        .create_organisation(ADMIN, &bund(), t(0))
        .await
        .unwrap();
    let head = audit_head(&store).await;
    let other = org("Zweiter Bund", Level::Bund, None, None, None);
    assert_conflict(store.create_organisation(ADMIN, &other, t(1)).await);
    assert_eq!(count_organisations(&store).await, 1);
    assert_eq!(audit_head(&store).await, head);
}

async fn update_keeps_level_and_parent(store: Store) {
    let tree = Tree::create(&store).await;
    let lk = &tree.lk_muenchen;
    let head = audit_head(&store).await;

    let mut spec = kreis("Landkreis München", "09184", &tree.bayern.id);
    spec.population = Some(350_473);
    let updated = store
        .update_organisation(ADMIN, &lk.id, &spec, t(100))
        .await
        .unwrap();
    assert_eq!(updated.name, "Landkreis München");
    assert_eq!(updated.population, Some(350_473));
    assert_eq!(updated.level, Level::Kreis);
    assert_eq!(updated.parent.as_deref(), Some(tree.bayern.id.as_str()));
    assert_eq!(updated.land.as_deref(), Some("09"));
    assert_eq!(
        (updated.created_at, updated.updated_at),
        (lk.created_at, t(100))
    );
    assert_eq!(store.get_organisation(&lk.id).await.unwrap(), updated);
    let e = assert_one_event(
        &store,
        head,
        ADMIN,
        "organisation.update",
        &format!("organisation/{}", lk.id),
    )
    .await;
    assert_eq!(e.before.as_ref().unwrap()["name"], json!("München"));
    assert_eq!(
        e.after.as_ref().unwrap()["name"],
        json!("Landkreis München")
    );

    // Unchanged: nothing written, nothing recorded.
    let again = store
        .update_organisation(ADMIN, &lk.id, &spec, t(200))
        .await
        .unwrap();
    assert_eq!(again, updated);
    assert_eq!(audit_head(&store).await, head + 1);

    // Level and parent stay.
    let moved = kreis("Landkreis München", "09184", &tree.hamburg.id);
    assert_invalid(
        store
            .update_organisation(ADMIN, &lk.id, &moved, t(300))
            .await,
        "/parent",
    );
    let relevelled = org(
        "Landkreis München",
        Level::Gemeinde,
        Some("091840000000"),
        None,
        Some(&tree.bayern.id),
    );
    assert_invalid(
        store
            .update_organisation(ADMIN, &lk.id, &relevelled, t(300))
            .await,
        "/parent",
    );
    // Keys stay unique.
    let taken = kreis("Landkreis München", "09162", &tree.bayern.id);
    assert_conflict(
        store
            .update_organisation(ADMIN, &lk.id, &taken, t(300))
            .await,
    );
    assert_not_found(
        store
            .update_organisation(ADMIN, "no-such-id", &spec, t(300))
            .await,
    );
    assert_eq!(store.get_organisation(&lk.id).await.unwrap(), updated);
    assert_eq!(audit_head(&store).await, head + 1);
}

async fn list_organisations_filters(store: Store) {
    let tree = Tree::create(&store).await;
    let list = |filter: OrganisationFilter| {
        let store = store.clone();
        async move {
            let p = store
                .list_organisations(&filter, &PageRequest::default())
                .await
                .unwrap();
            assert_eq!(p.next, None);
            ids(&p.items)
        }
    };
    let f = OrganisationFilter::default;

    assert_eq!(list(f()).await.len(), 16);
    assert_eq!(
        list(OrganisationFilter {
            level: Some(Level::Bund),
            ..f()
        })
        .await,
        ids([&tree.bund])
    );
    assert_eq!(
        list(OrganisationFilter {
            level: Some(Level::Land),
            ..f()
        })
        .await,
        ids([&tree.bayern, &tree.hamburg, &tree.nrw])
    );
    assert_eq!(
        list(OrganisationFilter {
            level: Some(Level::Kreis),
            ..f()
        })
        .await,
        ids([
            &tree.k_muenchen,
            &tree.lk_muenchen,
            &tree.k_muehldorf,
            &tree.k_garmisch,
            &tree.k_muelheim
        ])
    );
    assert_eq!(
        list(OrganisationFilter {
            level: Some(Level::Gemeinde),
            ..f()
        })
        .await
        .len(),
        7
    );
    assert_eq!(
        list(OrganisationFilter {
            parent: Some(tree.lk_muenchen.id.clone()),
            ..f()
        })
        .await,
        ids([&tree.unterhaching, &tree.garching])
    );
    assert_eq!(
        list(OrganisationFilter {
            parent: Some(tree.hamburg.id.clone()),
            ..f()
        })
        .await,
        ids([&tree.g_hamburg])
    );
    assert_eq!(
        list(OrganisationFilter {
            parent: Some(tree.bayern.id.clone()),
            ..f()
        })
        .await,
        ids([
            &tree.k_muenchen,
            &tree.lk_muenchen,
            &tree.k_muehldorf,
            &tree.k_garmisch
        ])
    );
    assert_eq!(
        list(OrganisationFilter {
            land: Some("02".into()),
            ..f()
        })
        .await,
        ids([&tree.hamburg, &tree.g_hamburg])
    );
    assert_eq!(
        list(OrganisationFilter {
            land: Some("05".into()),
            ..f()
        })
        .await,
        ids([&tree.nrw, &tree.k_muelheim, &tree.g_muelheim])
    );
    assert_eq!(
        list(OrganisationFilter {
            land: Some("09".into()),
            ..f()
        })
        .await
        .len(),
        10
    );
    assert_eq!(
        list(OrganisationFilter {
            land: Some("09".into()),
            level: Some(Level::Gemeinde),
            ..f()
        })
        .await,
        ids([
            &tree.g_muenchen,
            &tree.unterhaching,
            &tree.garching,
            &tree.g_muehldorf,
            &tree.murnau
        ])
    );
    assert!(list(OrganisationFilter {
        land: Some("16".into()),
        ..f()
    })
    .await
    .is_empty());

    // Name prefixes are case-sensitive and compare umlauts as themselves.
    let prefix = |p: &str| OrganisationFilter {
        name_prefix: Some(p.into()),
        ..f()
    };
    assert_eq!(
        list(prefix("Mü")).await,
        ids([
            &tree.k_muenchen,
            &tree.lk_muenchen,
            &tree.g_muenchen,
            &tree.k_muehldorf,
            &tree.g_muehldorf,
            &tree.k_muelheim,
            &tree.g_muelheim
        ])
    );
    assert_eq!(list(prefix("Mu")).await, ids([&tree.murnau]));
    assert_eq!(
        list(prefix("München")).await,
        ids([&tree.k_muenchen, &tree.lk_muenchen, &tree.g_muenchen])
    );
    assert_eq!(
        list(prefix("München,")).await,
        ids([&tree.k_muenchen, &tree.g_muenchen])
    );
    assert_eq!(
        list(prefix("Mühl")).await,
        ids([&tree.k_muehldorf, &tree.g_muehldorf])
    );
    assert!(list(prefix("MÜ")).await.is_empty());
    assert!(list(prefix("mü")).await.is_empty());
    assert!(list(prefix("Muenchen")).await.is_empty());
    assert_eq!(
        list(OrganisationFilter {
            level: Some(Level::Gemeinde),
            ..prefix("Mü")
        })
        .await,
        ids([&tree.g_muenchen, &tree.g_muehldorf, &tree.g_muelheim])
    );

    // Keys: an ARS or an AGS, exactly.
    let key = |k: &str| OrganisationFilter {
        key: Some(k.into()),
        ..f()
    };
    assert_eq!(list(key("091620000000")).await, ids([&tree.g_muenchen]));
    assert_eq!(list(key("09162000")).await, ids([&tree.g_muenchen]));
    assert_eq!(list(key("09162")).await, ids([&tree.k_muenchen]));
    assert_eq!(list(key("09")).await, ids([&tree.bayern]));
    assert!(list(key("0916")).await.is_empty());
    assert!(list(OrganisationFilter {
        level: Some(Level::Kreis),
        ..key("09")
    })
    .await
    .is_empty());

    let by_key = |k: &'static str| {
        let store = store.clone();
        async move {
            store
                .find_organisation_by_key(k)
                .await
                .unwrap()
                .map(|o| o.id)
        }
    };
    assert_eq!(
        by_key("091620000000").await,
        Some(tree.g_muenchen.id.clone())
    );
    assert_eq!(by_key("09162000").await, Some(tree.g_muenchen.id.clone()));
    assert_eq!(by_key("02000000").await, Some(tree.g_hamburg.id.clone()));
    assert_eq!(by_key("05117").await, Some(tree.k_muelheim.id.clone()));
    assert_eq!(by_key("99999").await, None);
}

async fn list_organisations_pages_through_everything_once(store: Store) {
    let bund = store
        .create_organisation(ADMIN, &bund(), t(0))
        .await
        .unwrap();
    let bayern = store
        .create_organisation(ADMIN, &land("Bayern", "09", &bund.id), t(0))
        .await
        .unwrap();
    let mut kreise = BTreeSet::new();
    for i in 1..=30 {
        // Several per millisecond, so that ids created at the same time page correctly.
        let k = store
            .create_organisation(
                ADMIN,
                &kreis(&format!("Kreis {i}"), &format!("091{i:02}"), &bayern.id),
                t(i / 4),
            )
            .await
            .unwrap();
        kreise.insert(k.id);
    }
    let mut everything = kreise.clone();
    everything.extend([bund.id, bayern.id]);

    let pages = |filter: OrganisationFilter, limit: u32| {
        let store = store.clone();
        async move {
            let mut pages = Vec::new();
            let mut after = None;
            loop {
                let p = store
                    .list_organisations(&filter, &page(limit, after))
                    .await
                    .unwrap();
                assert!(p.items.len() <= limit as usize);
                assert!(!p.items.is_empty(), "an empty page");
                pages.push(p.items.iter().map(|o| o.id.clone()).collect::<Vec<_>>());
                match p.next {
                    Some(n) => {
                        assert_eq!(Some(&n), p.items.last().map(|o| &o.id));
                        after = Some(n);
                    }
                    None => return pages,
                }
            }
        }
    };
    let exactly_once = |pages: &[Vec<String>], expected: &BTreeSet<String>| {
        let flat: Vec<&String> = pages.iter().flatten().collect();
        let unique: HashSet<&String> = flat.iter().copied().collect();
        assert_eq!(unique.len(), flat.len(), "an item came twice");
        assert_eq!(
            flat.iter().map(|s| (*s).clone()).collect::<BTreeSet<_>>(),
            *expected
        );
        assert!(
            flat.windows(2).all(|w| w[0] < w[1]),
            "pages are not in id order"
        );
    };

    let all = pages(OrganisationFilter::default(), 7).await;
    assert_eq!(
        all.iter().map(Vec::len).collect::<Vec<_>>(),
        vec![7, 7, 7, 7, 4]
    );
    exactly_once(&all, &everything);

    // A limit that divides the total ends without an empty page.
    let all = pages(OrganisationFilter::default(), 8).await;
    assert_eq!(all.len(), 4);
    exactly_once(&all, &everything);

    let filtered = OrganisationFilter {
        level: Some(Level::Kreis),
        land: Some("09".into()),
        ..Default::default()
    };
    let k = pages(filtered, 10).await;
    assert_eq!(k.len(), 3);
    exactly_once(&k, &kreise);

    let one = pages(OrganisationFilter::default(), 1000).await;
    assert_eq!(one.len(), 1);
    exactly_once(&one, &everything);
}

/// When one organisation has a key as its ARS and another as its AGS, both backends
/// answer with the ARS match.
async fn find_by_key_prefers_an_ars_match(store: Store) {
    let bund = store
        .create_organisation(ADMIN, &bund(), t(0))
        .await
        .unwrap();
    let bayern = store
        .create_organisation(ADMIN, &land("Bayern", "09", &bund.id), t(0))
        .await
        .unwrap();
    let by_ags = store
        .create_organisation(
            ADMIN,
            &org(
                "Nur AGS",
                Level::Kreis,
                None,
                Some("09162"),
                Some(&bayern.id),
            ),
            t(1),
        )
        .await
        .unwrap();
    let by_ars = store
        .create_organisation(
            ADMIN,
            &org(
                "Nur ARS",
                Level::Kreis,
                Some("09162"),
                None,
                Some(&bayern.id),
            ),
            t(2),
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .find_organisation_by_key("09162")
            .await
            .unwrap()
            .map(|o| o.id),
        Some(by_ars.id.clone())
    );
    let both = store
        .list_organisations(
            &OrganisationFilter {
                key: Some("09162".into()),
                ..Default::default()
            },
            &PageRequest::default(),
        )
        .await
        .unwrap();
    assert_eq!(ids(&both.items), ids([&by_ags, &by_ars]));
}

// ---------------------------------------------------------------------------------------
// GV100AD import

const GV100AD: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/data/GV100AD_301121.ASC"
);
const GV100AD_SOURCE: &str = "GV100AD_301121.ASC";
const IMPORTER: &str = "system/import";

/// The real municipality directory, parsed once per test run.
fn directory() -> &'static Directory {
    static DIRECTORY: OnceLock<Directory> = OnceLock::new();
    DIRECTORY.get_or_init(|| {
        let file =
            std::fs::File::open(GV100AD).unwrap_or_else(|e| panic!("cannot open `{GV100AD}`: {e}"));
        verbund_import::gv100ad::parse(BufReader::new(file))
            .unwrap_or_else(|e| panic!("cannot parse `{GV100AD}`: {e}"))
    })
}

const LAENDER: usize = 16;
const KREISE: usize = 400;
const GEMEINDEN: usize = 10_787;
const ORGANISATIONS: usize = 1 + LAENDER + KREISE + GEMEINDEN;

async fn gv100ad_import_builds_the_directory(store: Store) {
    let d = directory();
    assert_eq!(d.organisations.len(), ORGANISATIONS - 1);
    let summary = store
        .import_organisations(IMPORTER, GV100AD_SOURCE, &d.organisations, t(0))
        .await
        .unwrap();
    assert_eq!(
        summary,
        ImportSummary {
            created: ORGANISATIONS as u64,
            updated: 0,
            unchanged: 0
        }
    );
    let e = assert_one_event(
        &store,
        0,
        IMPORTER,
        "directory.import",
        &format!("import/{GV100AD_SOURCE}"),
    )
    .await;
    assert_eq!(
        e.after.as_ref().unwrap()["summary"]["created"],
        json!(ORGANISATIONS)
    );

    let all = all_organisations(&store, &OrganisationFilter::default()).await;
    assert_eq!(all.len(), ORGANISATIONS);
    let by_id: HashMap<&str, &Organisation> = all.iter().map(|o| (o.id.as_str(), o)).collect();
    let mut per_level: HashMap<Level, usize> = HashMap::new();
    for o in &all {
        *per_level.entry(o.level).or_default() += 1;
        let parent = o.parent.as_deref().map(|p| by_id[p]);
        let ars = o.ars.as_deref().unwrap_or_default();
        match o.level {
            Level::Bund => {
                assert_eq!((&o.parent, &o.land, &o.ars), (&None, &None, &None));
            }
            Level::Land => {
                assert_eq!(parent.map(|p| p.level), Some(Level::Bund), "{o:?}");
                assert_eq!(o.land.as_deref(), Some(ars));
            }
            Level::Kreis => {
                let p = parent.unwrap();
                assert_eq!(
                    (p.level, p.ars.as_deref()),
                    (Level::Land, Some(&ars[..2])),
                    "{o:?}"
                );
                assert_eq!(o.land.as_deref(), Some(&ars[..2]));
            }
            Level::Gemeinde => {
                let p = parent.unwrap();
                assert_eq!(
                    (p.level, p.ars.as_deref()),
                    (Level::Kreis, Some(&ars[..5])),
                    "{o:?}"
                );
                assert_eq!(o.land.as_deref(), Some(&ars[..2]));
            }
            Level::Verband => panic!("no Verband in GV100AD: {o:?}"),
        }
    }
    assert_eq!(per_level[&Level::Bund], 1);
    assert_eq!(per_level[&Level::Land], LAENDER);
    assert_eq!(per_level[&Level::Kreis], KREISE);
    assert_eq!(per_level[&Level::Gemeinde], GEMEINDEN);
    let laender = store
        .list_organisations(
            &OrganisationFilter {
                level: Some(Level::Land),
                ..Default::default()
            },
            &PageRequest::default(),
        )
        .await
        .unwrap();
    assert_eq!(laender.items.len(), LAENDER);

    let muenchen = store
        .find_organisation_by_key("09162000")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(muenchen.level, Level::Gemeinde);
    assert!(muenchen.name.starts_with("München"), "{muenchen:?}");
    assert_eq!(muenchen.ars.as_deref(), Some("091620000000"));
    let chain = store.organisation_ancestors(&muenchen.id).await.unwrap();
    let chain: Vec<(Level, Option<String>)> = chain
        .iter()
        .map(|id| (by_id[id.as_str()].level, by_id[id.as_str()].ars.clone()))
        .collect();
    assert_eq!(
        chain,
        vec![
            (Level::Kreis, Some("09162".to_string())),
            (Level::Land, Some("09".to_string())),
            (Level::Bund, None),
        ]
    );

    // The same edition again changes nothing and records nothing.
    let again = store
        .import_organisations(IMPORTER, GV100AD_SOURCE, &d.organisations, t(10))
        .await
        .unwrap();
    assert_eq!(
        again,
        ImportSummary {
            created: 0,
            updated: 0,
            unchanged: (ORGANISATIONS - 1) as u64
        }
    );
    assert_eq!(audit_head(&store).await, 1);
    assert_eq!(store.verify_audit().await.unwrap(), Ok(1));
    assert_eq!(count_organisations(&store).await, ORGANISATIONS);
    assert_eq!(
        store.get_organisation(&muenchen.id).await.unwrap(),
        muenchen
    );
}

async fn gv100ad_reimport_updates_exactly_the_changed_records(store: Store) {
    let d = directory();
    store
        .import_organisations(IMPORTER, GV100AD_SOURCE, &d.organisations, t(0))
        .await
        .unwrap();
    let mut records = d.organisations.clone();
    let find = |records: &[KeyedOrganisation], ars: &str| {
        records.iter().position(|r| r.ars == ars).unwrap()
    };
    let muenchen = find(&records, "091620000000");
    records[muenchen].name = "München".into();
    let unterhaching = find(&records, "091840148148");
    let population = records[unterhaching].population.unwrap_or(0) + 1;
    records[unterhaching].population = Some(population);

    let summary = store
        .import_organisations(IMPORTER, "GV100AD_301121-korrigiert.ASC", &records, t(10))
        .await
        .unwrap();
    assert_eq!(
        summary,
        ImportSummary {
            created: 0,
            updated: 2,
            unchanged: (ORGANISATIONS - 3) as u64
        }
    );
    assert_one_event(
        &store,
        1,
        IMPORTER,
        "directory.import",
        "import/GV100AD_301121-korrigiert.ASC",
    )
    .await;

    let m = store
        .find_organisation_by_key("091620000000")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (m.name.as_str(), m.updated_at, m.created_at),
        ("München", t(10), t(0))
    );
    let u = store
        .find_organisation_by_key("09184148")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((u.population, u.updated_at), (Some(population), t(10)));
    let changed: Vec<Organisation> = all_organisations(&store, &OrganisationFilter::default())
        .await
        .into_iter()
        .filter(|o| o.updated_at != t(0))
        .collect();
    assert_eq!(ids(&changed), ids([&m, &u]));
    assert_eq!(store.verify_audit().await.unwrap(), Ok(2));
}

async fn import_with_unknown_parent_stores_nothing(store: Store) {
    // At the end of the real directory, so that thousands of rows are rolled back.
    let mut records = directory().organisations.clone();
    records.push(KeyedOrganisation {
        name: "Nirgendwo".into(),
        level: Level::Gemeinde,
        ars: "099990000001".into(),
        ags: Some("09999001".into()),
        parent_ars: Some("09999".into()),
        population: None,
    });
    assert_invalid(
        store
            .import_organisations(IMPORTER, GV100AD_SOURCE, &records, t(0))
            .await,
        &format!("/records/{}/parent_ars", records.len() - 1),
    );
    assert_eq!(count_organisations(&store).await, 0);
    assert_eq!(audit_head(&store).await, 0);

    // Into an existing directory: it stays as it was.
    let keyed = |name: &str, level, ars: &str, parent: Option<&str>| KeyedOrganisation {
        name: name.into(),
        level,
        ars: ars.into(),
        ags: Some(ars.into()),
        parent_ars: parent.map(Into::into),
        population: None,
    };
    let good = vec![
        keyed("Bayern", Level::Land, "09", None),
        keyed("München", Level::Kreis, "09184", Some("09")),
    ];
    store
        .import_organisations(IMPORTER, "klein", &good, t(1))
        .await
        .unwrap();
    let bad = vec![
        keyed("Freistaat Bayern", Level::Land, "09", None),
        keyed("Starnberg", Level::Kreis, "09188", Some("08")),
    ];
    assert_invalid(
        store
            .import_organisations(IMPORTER, "kaputt", &bad, t(2))
            .await,
        "/records/1/parent_ars",
    );
    assert_eq!(count_organisations(&store).await, 3);
    assert_eq!(
        store
            .find_organisation_by_key("09")
            .await
            .unwrap()
            .unwrap()
            .name,
        "Bayern"
    );
    assert_eq!(audit_head(&store).await, 1);
}

// ---------------------------------------------------------------------------------------
// Providers and sites

async fn providers_are_created_then_updated(store: Store) {
    let spec = provider("dataport");
    let (p, created) = store.put_provider(ADMIN, &spec, t(1)).await.unwrap();
    assert!(created);
    assert_eq!((&p.spec, p.created_at, p.updated_at), (&spec, t(1), t(1)));
    let e = assert_one_event(&store, 0, ADMIN, "provider.create", "provider/dataport").await;
    assert_eq!(e.before, None);
    assert_eq!(e.after, Some(serde_json::to_value(&spec).unwrap()));
    assert_eq!(store.get_provider("dataport").await.unwrap(), p);

    // Unchanged: no write, no event.
    let (same, created) = store.put_provider(ADMIN, &spec, t(2)).await.unwrap();
    assert!(!created);
    assert_eq!(same, p);
    assert_eq!(audit_head(&store).await, 1);

    let mut changed = spec.clone();
    changed.display_name = "Dataport AöR".into();
    changed.jurisdictions.insert("AT".into());
    let (q, created) = store
        .put_provider("user/operator", &changed, t(3))
        .await
        .unwrap();
    assert!(!created);
    assert_eq!(
        (&q.spec, q.created_at, q.updated_at),
        (&changed, t(1), t(3))
    );
    let e = assert_one_event(
        &store,
        1,
        "user/operator",
        "provider.update",
        "provider/dataport",
    )
    .await;
    assert_eq!(e.before, Some(serde_json::to_value(&spec).unwrap()));
    assert_eq!(e.after, Some(serde_json::to_value(&changed).unwrap()));
    assert_eq!(store.get_provider("dataport").await.unwrap(), q);

    for name in ["itdz", "akdb", "komm-one"] {
        store
            .put_provider(ADMIN, &provider(name), t(4))
            .await
            .unwrap();
    }
    let first = store.list_providers(&page(3, None)).await.unwrap();
    let names: Vec<&str> = first.items.iter().map(|p| p.spec.name.as_str()).collect();
    assert_eq!(names, ["akdb", "dataport", "itdz"]);
    let rest = store.list_providers(&page(3, first.next)).await.unwrap();
    let names: Vec<&str> = rest.items.iter().map(|p| p.spec.name.as_str()).collect();
    assert_eq!((names, rest.next), (vec!["komm-one"], None));

    assert_not_found(store.get_provider("nope").await);
    assert_invalid(
        store
            .put_provider(ADMIN, &provider("Not_A_Name"), t(5))
            .await,
        "/name",
    );
    assert_eq!(store.verify_audit().await.unwrap(), Ok(5));
}

async fn sites_belong_to_one_existing_provider(store: Store) {
    store
        .put_provider(ADMIN, &provider("dataport"), t(0))
        .await
        .unwrap();
    store
        .put_provider(ADMIN, &provider("itdz"), t(0))
        .await
        .unwrap();
    let head = audit_head(&store).await;
    let all_sites = |filter: SiteFilter| {
        let store = store.clone();
        async move {
            store
                .list_sites(&filter, &PageRequest::default())
                .await
                .unwrap()
                .items
                .into_iter()
                .map(|s| s.spec.name)
                .collect::<Vec<_>>()
        }
    };

    assert_invalid(
        store
            .put_site(ADMIN, &site("nowhere-1", "nope"), t(1))
            .await,
        "/provider",
    );
    assert!(all_sites(SiteFilter::default()).await.is_empty());
    assert_eq!(audit_head(&store).await, head);

    let spec = site("dataport-hh-1", "dataport");
    let (s, created) = store.put_site(ADMIN, &spec, t(2)).await.unwrap();
    assert!(created);
    assert_eq!((&s.spec, s.created_at, s.updated_at), (&spec, t(2), t(2)));
    assert_one_event(&store, head, ADMIN, "site.create", "site/dataport-hh-1").await;
    assert_eq!(store.get_site("dataport-hh-1").await.unwrap(), s);

    let (same, created) = store.put_site(ADMIN, &spec, t(3)).await.unwrap();
    assert!(!created);
    assert_eq!(same, s);
    assert_eq!(audit_head(&store).await, head + 1);

    let mut bigger = spec.clone();
    bigger.capacity.cpu_millis *= 2;
    let (u, created) = store.put_site(ADMIN, &bigger, t(4)).await.unwrap();
    assert!(!created);
    assert_eq!((&u.spec, u.created_at, u.updated_at), (&bigger, t(2), t(4)));
    let e = assert_one_event(&store, head + 1, ADMIN, "site.update", "site/dataport-hh-1").await;
    assert_eq!(e.before.unwrap()["capacity"]["cpu_millis"], json!(64000));

    let mut moved = bigger.clone();
    moved.provider = "itdz".into();
    assert_invalid(store.put_site(ADMIN, &moved, t(5)).await, "/provider");
    assert_eq!(store.get_site("dataport-hh-1").await.unwrap(), u);
    assert_eq!(audit_head(&store).await, head + 2);

    store
        .put_site(ADMIN, &site("itdz-be-1", "itdz"), t(6))
        .await
        .unwrap();
    store
        .put_site(ADMIN, &site("dataport-hh-2", "dataport"), t(7))
        .await
        .unwrap();
    let by = |p: &str| SiteFilter {
        provider: Some(p.into()),
    };
    assert_eq!(
        all_sites(by("dataport")).await,
        ["dataport-hh-1", "dataport-hh-2"]
    );
    assert_eq!(all_sites(by("itdz")).await, ["itdz-be-1"]);
    assert!(all_sites(by("nope")).await.is_empty());
    assert_eq!(
        all_sites(SiteFilter::default()).await,
        ["dataport-hh-1", "dataport-hh-2", "itdz-be-1"]
    );
    let first = store
        .list_sites(&by("dataport"), &page(1, None))
        .await
        .unwrap();
    let second = store
        .list_sites(&by("dataport"), &page(1, first.next.clone()))
        .await
        .unwrap();
    assert_eq!(first.items[0].spec.name, "dataport-hh-1");
    assert_eq!(
        (second.items[0].spec.name.as_str(), second.next),
        ("dataport-hh-2", None)
    );
    assert_not_found(store.get_site("nope").await);
}

// ---------------------------------------------------------------------------------------
// Catalog

fn ozg(id: &str, name: &str) -> OzgService {
    OzgService {
        id: id.into(),
        name: name.into(),
        situation: "Umzug".into(),
        field: "Bauen & Wohnen".into(),
    }
}

async fn ozg_import_and_offerings_check_their_references(store: Store) {
    let bund = store
        .create_organisation(ADMIN, &bund(), t(0))
        .await
        .unwrap();
    let bayern = store
        .create_organisation(ADMIN, &land("Bayern", "09", &bund.id), t(0))
        .await
        .unwrap();

    let services = vec![ozg("10048", "Meldebescheinigung"), ozg("10220", "Wohngeld")];
    let head = audit_head(&store).await;
    let s = store
        .import_ozg(IMPORTER, "ozg-leistungen.csv", &services, t(1))
        .await
        .unwrap();
    assert_eq!((s.created, s.updated, s.unchanged), (2, 0, 0));
    assert_one_event(
        &store,
        head,
        IMPORTER,
        "catalog.ozg.import",
        "import/ozg-leistungen.csv",
    )
    .await;
    assert_eq!(store.count_ozg_services().await.unwrap(), 2);
    assert_eq!(
        store.get_ozg_service("10220").await.unwrap(),
        Some(services[1].clone())
    );
    assert_eq!(store.get_ozg_service("99999").await.unwrap(), None);
    let s = store
        .import_ozg(IMPORTER, "ozg-leistungen.csv", &services, t(2))
        .await
        .unwrap();
    assert_eq!((s.created, s.updated, s.unchanged), (0, 0, 2));
    assert_eq!(audit_head(&store).await, head + 1);
    let renamed = vec![ozg("10220", "Wohngeld beantragen")];
    let s = store
        .import_ozg(IMPORTER, "ozg-leistungen.csv", &renamed, t(3))
        .await
        .unwrap();
    assert_eq!((s.created, s.updated, s.unchanged), (0, 1, 0));
    assert_eq!(
        store.get_ozg_service("10220").await.unwrap(),
        Some(renamed[0].clone())
    );
    let head = head + 2;
    assert_eq!(audit_head(&store).await, head);

    let count = || {
        let store = store.clone();
        async move {
            store
                .list_offerings(&OfferingFilter::default(), &PageRequest::default())
                .await
                .unwrap()
                .items
                .len()
        }
    };

    let mut no_vendor = offering("nextcloud", "no-such-org");
    no_vendor.ozg_id = Some("10048".into());
    assert_invalid(store.put_offering(ADMIN, &no_vendor, t(4)).await, "/vendor");
    let mut no_ozg = offering("nextcloud", &bund.id);
    no_ozg.ozg_id = Some("99999".into());
    assert_invalid(store.put_offering(ADMIN, &no_ozg, t(4)).await, "/ozg_id");
    let mut no_dep = offering("nextcloud", &bund.id);
    no_dep.dependencies = vec![Dependency {
        offering: "postgres".into(),
        plan: None,
    }];
    assert_invalid(
        store.put_offering(ADMIN, &no_dep, t(4)).await,
        "/dependencies/0/offering",
    );
    assert_eq!(count().await, 0);
    assert_eq!(audit_head(&store).await, head);

    let mut postgres = offering("postgres", &bund.id);
    postgres.category = Category::Paas;
    let (pg, created) = store.put_offering(ADMIN, &postgres, t(5)).await.unwrap();
    assert!(created);
    assert_eq!((pg.latest_version.as_deref(), pg.created_at), (None, t(5)));
    assert_one_event(&store, head, ADMIN, "offering.create", "offering/postgres").await;

    let mut bad_plan = offering("nextcloud", &bund.id);
    bad_plan.dependencies = vec![Dependency {
        offering: "postgres".into(),
        plan: Some("xl".into()),
    }];
    assert_invalid(
        store.put_offering(ADMIN, &bad_plan, t(6)).await,
        "/dependencies/0/plan",
    );
    assert_eq!(count().await, 1);
    assert_eq!(audit_head(&store).await, head + 1);

    let mut nextcloud = offering("nextcloud", &bund.id);
    nextcloud.ozg_id = Some("10048".into());
    nextcloud.dependencies = vec![Dependency {
        offering: "postgres".into(),
        plan: Some("m".into()),
    }];
    let (nc, created) = store.put_offering(ADMIN, &nextcloud, t(7)).await.unwrap();
    assert!(created);
    assert_eq!(store.get_offering("nextcloud").await.unwrap(), nc);
    assert_one_event(
        &store,
        head + 1,
        ADMIN,
        "offering.create",
        "offering/nextcloud",
    )
    .await;

    let (same, created) = store.put_offering(ADMIN, &nextcloud, t(8)).await.unwrap();
    assert!(!created);
    assert_eq!(same, nc);
    assert_eq!(audit_head(&store).await, head + 2);

    let mut other_vendor = nextcloud.clone();
    other_vendor.vendor = bayern.id.clone();
    assert_invalid(
        store.put_offering(ADMIN, &other_vendor, t(9)).await,
        "/vendor",
    );

    let mut described = nextcloud.clone();
    described.description = "Dateiablage".into();
    let (d, created) = store.put_offering(ADMIN, &described, t(10)).await.unwrap();
    assert!(!created);
    assert_eq!((d.created_at, d.updated_at), (t(7), t(10)));
    assert_one_event(
        &store,
        head + 2,
        ADMIN,
        "offering.update",
        "offering/nextcloud",
    )
    .await;

    let names = |filter: OfferingFilter| {
        let store = store.clone();
        async move {
            store
                .list_offerings(&filter, &PageRequest::default())
                .await
                .unwrap()
                .items
                .into_iter()
                .map(|o| o.spec.name)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        names(OfferingFilter::default()).await,
        ["nextcloud", "postgres"]
    );
    assert_eq!(
        names(OfferingFilter {
            category: Some(Category::Paas),
            ..Default::default()
        })
        .await,
        ["postgres"]
    );
    assert_eq!(
        names(OfferingFilter {
            ozg_id: Some("10048".into()),
            ..Default::default()
        })
        .await,
        ["nextcloud"]
    );
    assert_eq!(
        names(OfferingFilter {
            vendor: Some(bund.id.clone()),
            ..Default::default()
        })
        .await,
        ["nextcloud", "postgres"]
    );
    assert!(names(OfferingFilter {
        vendor: Some(bayern.id.clone()),
        ..Default::default()
    })
    .await
    .is_empty());
    assert_eq!(store.verify_audit().await.unwrap(), Ok(head + 3));
}

async fn versions_only_grow_and_list_newest_first(store: Store) {
    let bund = store
        .create_organisation(ADMIN, &bund(), t(0))
        .await
        .unwrap();
    store
        .put_offering(ADMIN, &offering("nextcloud", &bund.id), t(0))
        .await
        .unwrap();
    let head = audit_head(&store).await;

    let v = store
        .publish_version("user/vendor", "nextcloud", &version("1.0.0"), t(1))
        .await
        .unwrap();
    assert_eq!(
        (v.offering.as_str(), v.spec.version.as_str(), v.published_at),
        ("nextcloud", "1.0.0", t(1))
    );
    assert_one_event(
        &store,
        head,
        "user/vendor",
        "offering.version.publish",
        "offering/nextcloud/versions/1.0.0",
    )
    .await;
    assert_eq!(
        store
            .get_offering("nextcloud")
            .await
            .unwrap()
            .latest_version
            .as_deref(),
        Some("1.0.0")
    );

    for bad in [
        "1.0.0",
        "0.9.9",
        "1.0.0-rc.1",
        "1.1",
        "v1.1.0",
        "latest",
        "",
    ] {
        assert_invalid(
            store
                .publish_version("user/vendor", "nextcloud", &version(bad), t(2))
                .await,
            "/version",
        );
    }
    assert_eq!(store.list_versions("nextcloud").await.unwrap().len(), 1);
    assert_eq!(audit_head(&store).await, head + 1);

    for (i, good) in ["1.9.0", "1.10.0", "2.0.0-rc.1", "2.0.0"]
        .into_iter()
        .enumerate()
    {
        store
            .publish_version("user/vendor", "nextcloud", &version(good), t(3 + i as i64))
            .await
            .unwrap();
    }
    assert_invalid(
        store
            .publish_version("user/vendor", "nextcloud", &version("2.0.0-rc.2"), t(9))
            .await,
        "/version",
    );
    let listed: Vec<String> = store
        .list_versions("nextcloud")
        .await
        .unwrap()
        .into_iter()
        .map(|v| v.spec.version)
        .collect();
    assert_eq!(listed, ["2.0.0", "2.0.0-rc.1", "1.10.0", "1.9.0", "1.0.0"]);
    assert_eq!(
        store
            .get_offering("nextcloud")
            .await
            .unwrap()
            .latest_version
            .as_deref(),
        Some("2.0.0")
    );

    // Updating the offering keeps its versions.
    let mut described = offering("nextcloud", &bund.id);
    described.description = "Dateiablage".into();
    let (o, _) = store.put_offering(ADMIN, &described, t(10)).await.unwrap();
    assert_eq!(o.latest_version.as_deref(), Some("2.0.0"));
    assert_eq!(
        store
            .get_offering("nextcloud")
            .await
            .unwrap()
            .latest_version
            .as_deref(),
        Some("2.0.0")
    );

    assert_not_found(
        store
            .publish_version("user/vendor", "nope", &version("1.0.0"), t(11))
            .await,
    );
    assert_not_found(store.list_versions("nope").await);
    assert_eq!(store.verify_audit().await.unwrap(), Ok(head + 6));
}

// ---------------------------------------------------------------------------------------
// Accounts

fn member(role: Role, organisation: Option<&str>, provider: Option<&str>) -> Membership {
    Membership {
        role,
        organisation: organisation.map(Into::into),
        provider: provider.map(Into::into),
        delegated: false,
    }
}

fn user(name: &str, memberships: Vec<Membership>) -> UserSpec {
    UserSpec {
        name: name.into(),
        display_name: format!("User {name}"),
        email: Some(format!("{name}@example.org")),
        memberships,
    }
}

async fn users_and_memberships(store: Store) {
    let bund = store
        .create_organisation(ADMIN, &bund(), t(0))
        .await
        .unwrap();
    let bayern = store
        .create_organisation(ADMIN, &land("Bayern", "09", &bund.id), t(0))
        .await
        .unwrap();
    let hamburg = store
        .create_organisation(ADMIN, &land("Hamburg", "02", &bund.id), t(0))
        .await
        .unwrap();
    store
        .put_provider(ADMIN, &provider("dataport"), t(0))
        .await
        .unwrap();
    let head = audit_head(&store).await;

    let alice = store
        .create_user(
            ADMIN,
            &user(
                "alice",
                vec![member(Role::OrgAdmin, Some(&bayern.id), None)],
            ),
            t(1),
        )
        .await
        .unwrap();
    assert_one_event(
        &store,
        head,
        ADMIN,
        "user.create",
        &format!("user/{}", alice.id),
    )
    .await;
    assert_eq!(store.get_user(&alice.id).await.unwrap(), alice);
    assert_eq!(
        store.get_user_by_name("alice").await.unwrap(),
        Some(alice.clone())
    );
    assert_eq!(store.get_user_by_name("nobody").await.unwrap(), None);

    let head = head + 1;
    let twin = user("alice", vec![member(Role::Auditor, None, None)]);
    assert_conflict(store.create_user(ADMIN, &twin, t(2)).await);
    assert_invalid(
        store
            .create_user(
                ADMIN,
                &user(
                    "bob",
                    vec![member(Role::OrgMember, Some("no-such-org"), None)],
                ),
                t(2),
            )
            .await,
        "/memberships/0/organisation",
    );
    assert_invalid(
        store
            .create_user(
                ADMIN,
                &user(
                    "bob",
                    vec![
                        member(Role::FederationAdmin, None, None),
                        member(Role::ProviderOperator, None, Some("no-such-provider")),
                    ],
                ),
                t(2),
            )
            .await,
        "/memberships/1/provider",
    );
    assert_eq!(store.count_users().await.unwrap(), 1);
    assert_eq!(store.get_user_by_name("bob").await.unwrap(), None);
    assert_eq!(audit_head(&store).await, head);

    let bob = store
        .create_user(
            ADMIN,
            &user(
                "bob",
                vec![
                    member(Role::Auditor, None, None),
                    member(Role::FederationAdmin, None, None),
                ],
            ),
            t(3),
        )
        .await
        .unwrap();
    let carol = store
        .create_user(
            ADMIN,
            &user(
                "carol",
                vec![
                    member(Role::OrgMember, Some(&hamburg.id), None),
                    member(Role::ProviderOperator, None, Some("dataport")),
                    member(Role::Vendor, Some(&bayern.id), None),
                    member(Role::OrgMember, Some(&hamburg.id), None),
                ],
            ),
            t(4),
        )
        .await
        .unwrap();
    assert_eq!(carol.spec.memberships.len(), 3, "duplicates are dropped");
    assert_eq!(store.get_user(&bob.id).await.unwrap(), bob);
    assert_eq!(store.get_user(&carol.id).await.unwrap(), carol);

    let listed = |organisation: Option<&str>, limit: u32| {
        let store = store.clone();
        let filter = UserFilter {
            organisation: organisation.map(Into::into),
        };
        async move {
            let mut names = Vec::new();
            let mut after = None;
            loop {
                let p = store
                    .list_users(&filter, &page(limit, after))
                    .await
                    .unwrap();
                names.extend(p.items.into_iter().map(|u| u.spec.name));
                match p.next {
                    Some(n) => after = Some(n),
                    None => return names.into_iter().collect::<BTreeSet<_>>(),
                }
            }
        }
    };
    let set = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<BTreeSet<_>>();
    assert_eq!(
        listed(Some(&bayern.id), 100).await,
        set(&["alice", "carol"])
    );
    assert_eq!(listed(Some(&hamburg.id), 100).await, set(&["carol"]));
    assert_eq!(listed(Some(&bund.id), 100).await, set(&[]));
    assert_eq!(listed(None, 2).await, set(&["alice", "bob", "carol"]));
    assert_eq!(listed(Some(&bayern.id), 1).await, set(&["alice", "carol"]));
    assert_eq!(store.count_users().await.unwrap(), 3);
    assert_not_found(store.get_user("no-such-user").await);
}

async fn tokens_authenticate_until_revoked_or_expired(store: Store) {
    let alice = store
        .create_user(
            ADMIN,
            &user("alice", vec![member(Role::FederationAdmin, None, None)]),
            t(0),
        )
        .await
        .unwrap();
    let secret = token_secret(&[7; 32]);
    let hash = hash_token(&secret);

    let token = store
        .create_token(ADMIN, &alice.id, "ci", &hash, None, t(1))
        .await
        .unwrap();
    let e = assert_one_event(
        &store,
        1,
        ADMIN,
        "token.create",
        &format!("token/{}", token.id),
    )
    .await;
    assert!(
        !e.after.unwrap().to_string().contains(&hash),
        "the hash is not audited"
    );
    assert_eq!(store.get_token(&token.id).await.unwrap(), token);
    assert_eq!(
        store.authenticate(&hash, t(2)).await.unwrap(),
        Some((token.clone(), alice.clone()))
    );
    assert_eq!(
        store
            .authenticate(&hash_token(&token_secret(&[8; 32])), t(2))
            .await
            .unwrap(),
        None
    );

    let revoked = store.revoke_token(ADMIN, &token.id, t(3)).await.unwrap();
    assert_eq!(revoked.revoked_at, Some(t(3)));
    assert_one_event(
        &store,
        2,
        ADMIN,
        "token.revoke",
        &format!("token/{}", token.id),
    )
    .await;
    assert_eq!(store.authenticate(&hash, t(4)).await.unwrap(), None);
    assert_eq!(store.get_token(&token.id).await.unwrap(), revoked);
    // Revoking again changes nothing.
    assert_eq!(
        store.revoke_token(ADMIN, &token.id, t(5)).await.unwrap(),
        revoked
    );
    assert_eq!(audit_head(&store).await, 3);

    let hash2 = hash_token(&token_secret(&[9; 32]));
    let expiring = store
        .create_token(ADMIN, &alice.id, "short", &hash2, Some(t(100)), t(6))
        .await
        .unwrap();
    assert_eq!(expiring.expires_at, Some(t(100)));
    assert!(store.authenticate(&hash2, t(99)).await.unwrap().is_some());
    assert_eq!(store.authenticate(&hash2, t(100)).await.unwrap(), None);
    assert_eq!(store.authenticate(&hash2, t(10_000)).await.unwrap(), None);

    assert_invalid(
        store
            .create_token(ADMIN, &alice.id, "late", &hash_token("x"), Some(t(6)), t(7))
            .await,
        "/expires_at",
    );
    assert_invalid(
        store
            .create_token(ADMIN, "no-such-user", "ci", &hash_token("y"), None, t(7))
            .await,
        "/user",
    );
    let listed = store
        .list_tokens(Some(&alice.id), &PageRequest::default())
        .await
        .unwrap();
    assert_eq!(
        ids_of_tokens(&listed.items),
        [token.id.clone(), expiring.id.clone()].into()
    );
    assert!(store
        .list_tokens(Some("no-such-user"), &PageRequest::default())
        .await
        .unwrap()
        .items
        .is_empty());
    assert_not_found(store.get_token("no-such-token").await);
    assert_eq!(store.verify_audit().await.unwrap(), Ok(4));
}

fn ids_of_tokens(tokens: &[verbund_domain::account::Token]) -> BTreeSet<String> {
    tokens.iter().map(|t| t.id.clone()).collect()
}

/// What a write returns is what a later read returns, also when the clock has more
/// precision than the store keeps.
async fn records_read_back_as_written(store: Store) {
    let now = t(0) + Duration::nanoseconds(123_456_789);
    let bund = store
        .create_organisation(ADMIN, &bund(), now)
        .await
        .unwrap();
    assert_eq!(store.get_organisation(&bund.id).await.unwrap(), bund);
    let (p, _) = store
        .put_provider(ADMIN, &provider("dataport"), now)
        .await
        .unwrap();
    assert_eq!(store.get_provider("dataport").await.unwrap(), p);
    let (s, _) = store
        .put_site(ADMIN, &site("dataport-hh-1", "dataport"), now)
        .await
        .unwrap();
    assert_eq!(store.get_site("dataport-hh-1").await.unwrap(), s);
    let (o, _) = store
        .put_offering(ADMIN, &offering("nextcloud", &bund.id), now)
        .await
        .unwrap();
    assert_eq!(store.get_offering("nextcloud").await.unwrap(), o);
    let v = store
        .publish_version(ADMIN, "nextcloud", &version("1.0.0"), now)
        .await
        .unwrap();
    assert_eq!(store.list_versions("nextcloud").await.unwrap(), [v]);
    let u = store
        .create_user(
            ADMIN,
            &user("alice", vec![member(Role::FederationAdmin, None, None)]),
            now,
        )
        .await
        .unwrap();
    assert_eq!(store.get_user(&u.id).await.unwrap(), u);
    let tok = store
        .create_token(
            ADMIN,
            &u.id,
            "ci",
            &hash_token("s"),
            Some(now + Duration::days(1)),
            now,
        )
        .await
        .unwrap();
    assert_eq!(store.get_token(&tok.id).await.unwrap(), tok);
    let revoked = store.revoke_token(ADMIN, &tok.id, now).await.unwrap();
    assert_eq!(store.get_token(&tok.id).await.unwrap(), revoked);
    assert_eq!(store.verify_audit().await.unwrap(), Ok(8));
}

// ---------------------------------------------------------------------------------------
// Declared secrets

/// A booking's declared-secret values live beside it, never in its configuration or its
/// audit trail; the booking shows only their pointers; a change replaces them; a final
/// state forgets them. The sealed documents are kept by booking, site, recipient and
/// digest, the latest only.
async fn declared_secrets_are_kept_apart_and_sealed_documents_by_digest(store: Store) {
    use verbund_domain::booking::{Booking, BookingState};
    use verbund_domain::secrets::SecretValues;
    use verbund_store::{NewBooking, SealedDocument};

    let now = t(0);
    let bund = store
        .create_organisation(ADMIN, &bund(), now)
        .await
        .unwrap();
    store
        .put_provider(ADMIN, &provider("dataport"), now)
        .await
        .unwrap();
    store
        .put_site(ADMIN, &site("dataport-hh-1", "dataport"), now)
        .await
        .unwrap();
    store
        .put_offering(ADMIN, &offering("keycloak", &bund.id), now)
        .await
        .unwrap();
    let values = |pairs: &[(&str, &str)]| -> SecretValues {
        pairs
            .iter()
            .map(|(p, v)| (p.to_string(), v.to_string()))
            .collect()
    };
    let first = values(&[
        ("/smtp/password", "hunter2"),
        ("/admin_password", "s3cret!"),
    ]);
    let booking = Booking {
        ending: None,
        id: "b-1".into(),
        organisation: bund.id.clone(),
        offering: "keycloak".into(),
        plan: "s".into(),
        config: json!({"password_policy": "length(12)", "smtp": {"host": "mail"}}),
        channel: "stable".into(),
        state: BookingState::Placed,
        site: Some("dataport-hh-1".into()),
        version: Some("1.0.0".into()),
        environment: Default::default(),
        reason: None,
        dependency_of: None,
        dependencies: vec![],
        compliance: None,
        created_at: now,
        updated_at: now,
        state_since: now,
        undeliverable: None,
        instance: None,
        secrets_set: first.keys().cloned().collect(),
        windows: Vec::new(),
    };
    let new = |booking: Booking, secrets: Option<SecretValues>| NewBooking {
        resources: Default::default(),
        decision: None,
        action: "booking.create".into(),
        booking,
        secrets,
    };
    store
        .create_bookings(ADMIN, &bund.id, now, |_| {
            Ok::<_, StoreError>(vec![new(booking.clone(), Some(first.clone()))])
        })
        .await
        .unwrap();
    let read = store.get_booking("b-1").await.unwrap();
    assert_eq!(read.secrets_set, ["/admin_password", "/smtp/password"]);
    assert_eq!(read.config, booking.config);
    let listed = store
        .list_bookings(&Default::default(), &PageRequest::default())
        .await
        .unwrap();
    assert_eq!(listed.items[0].secrets_set, read.secrets_set);
    assert_eq!(
        store.bookings_by_ids(&["b-1".into()]).await.unwrap()[0].secrets_set,
        read.secrets_set
    );
    assert_eq!(
        store
            .booking_secrets(&["b-1".into(), "b-2".into()])
            .await
            .unwrap(),
        HashMap::from([("b-1".to_string(), first.clone())])
    );

    // A change without secrets (`None`) keeps them; one with replaces them.
    let later = now + Duration::minutes(1);
    let changed = |plan: &str, secrets: Option<SecretValues>| {
        let plan = plan.to_string();
        let store = store.clone();
        async move {
            store
                .update_booking(ADMIN, "b-1", later, |b, _| {
                    let mut next = b.clone();
                    next.plan = plan;
                    if let Some(s) = &secrets {
                        next.secrets_set = s.keys().cloned().collect();
                    }
                    Ok::<_, StoreError>(Some(NewBooking {
                        action: "booking.update".into(),
                        ..new(next, secrets)
                    }))
                })
                .await
                .unwrap()
        }
    };
    changed("m", None).await;
    assert_eq!(
        store.booking_secrets(&["b-1".into()]).await.unwrap()["b-1"],
        first
    );
    let second = values(&[("/smtp/password", "n3u")]);
    let after = changed("s", Some(second.clone())).await;
    assert_eq!(after.secrets_set, ["/smtp/password"]);
    assert_eq!(
        store.get_booking("b-1").await.unwrap().secrets_set,
        ["/smtp/password"]
    );
    assert_eq!(
        store.booking_secrets(&["b-1".into()]).await.unwrap()["b-1"],
        second
    );

    // No value in any audit event.
    let audit = store
        .list_audit(&AuditFilter::default(), &PageRequest::default())
        .await
        .unwrap();
    let text = serde_json::to_string(&audit.items).unwrap();
    for value in ["hunter2", "s3cret!", "n3u"] {
        assert!(!text.contains(value), "{value} in the audit trail: {text}");
    }

    // Sealed documents: by digest, the latest only.
    let sealed = |digest: &str| SealedDocument {
        booking: "b-1".into(),
        site: "dataport-hh-1".into(),
        recipient: "age1recipient".into(),
        digest: digest.into(),
        document: json!({"kind": "Secret", "sops": {"mac": digest}}),
    };
    let ids = ["b-1".to_string()];
    assert!(store.sealed_documents(&ids).await.unwrap().is_empty());
    store
        .store_sealed_document(&sealed("d1"), now)
        .await
        .unwrap();
    store
        .store_sealed_document(&sealed("d2"), later)
        .await
        .unwrap();
    let kept = store.sealed_documents(&["b-1".into()]).await.unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept["b-1"], sealed("d2"));
    // Nothing is kept for a booking that does not exist.
    store
        .store_sealed_document(
            &SealedDocument {
                booking: "b-9".into(),
                ..sealed("d3")
            },
            now,
        )
        .await
        .unwrap();
    assert!(store
        .sealed_documents(&["b-9".into()])
        .await
        .unwrap()
        .is_empty());

    // A final state forgets the values and what was sealed of them.
    store
        .update_booking(ADMIN, "b-1", later, |b, _| {
            let mut next = b.clone();
            next.state = BookingState::Deleted;
            Ok::<_, StoreError>(Some(NewBooking {
                action: "booking.purge".into(),
                ..new(next, None)
            }))
        })
        .await
        .unwrap();
    assert!(store.booking_secrets(&ids).await.unwrap().is_empty());
    assert!(store.sealed_documents(&ids).await.unwrap().is_empty());
    assert!(store
        .get_booking("b-1")
        .await
        .unwrap()
        .secrets_set
        .is_empty());
    assert!(store.verify_audit().await.unwrap().is_ok());
}

// ---------------------------------------------------------------------------------------
// Audit trail

async fn tampering_breaks_the_audit_chain(store: Store, db: Db) {
    for (i, name) in ["p1", "p2", "p3", "p4", "p5"].into_iter().enumerate() {
        store
            .put_provider(ADMIN, &provider(name), t(i as i64))
            .await
            .unwrap();
    }
    assert_eq!(store.verify_audit().await.unwrap(), Ok(5));

    let changed = db
        .execute(r#"UPDATE audit_events SET after = '{"name":"forged"}' WHERE seq = 3"#)
        .await;
    assert_eq!(changed, 1);
    match store.verify_audit().await.unwrap() {
        Err(BrokenLink { seq: 3, .. }) => {}
        other => panic!("expected the chain to break at 3, got {other:?}"),
    }

    // A removed event is named too (the first break still wins).
    db.execute("DELETE FROM audit_events WHERE seq = 2").await;
    match store.verify_audit().await.unwrap() {
        Err(BrokenLink { seq: 2, .. }) => {}
        other => panic!("expected the chain to break at 2, got {other:?}"),
    }
}

async fn list_audit_filters_and_pages_newest_first(store: Store) {
    let alice = "user/alice";
    let bob = "user/bob";
    store
        .put_provider(alice, &provider("dataport"), t(1))
        .await
        .unwrap();
    store
        .put_provider(bob, &provider("itdz"), t(2))
        .await
        .unwrap();
    store
        .put_site(alice, &site("dataport-hh-1", "dataport"), t(3))
        .await
        .unwrap();
    store
        .put_site(alice, &site("dataport-hh-2", "dataport"), t(4))
        .await
        .unwrap();
    store
        .put_site(bob, &site("itdz-be-1", "itdz"), t(5))
        .await
        .unwrap();
    let mut renamed = provider("dataport");
    renamed.display_name = "Dataport AöR".into();
    store.put_provider(bob, &renamed, t(6)).await.unwrap();
    store
        .import_ozg(
            IMPORTER,
            "OZG-Katalog",
            &[ozg("10048", "Meldebescheinigung")],
            t(7),
        )
        .await
        .unwrap();

    let seqs = |filter: AuditFilter| {
        let store = store.clone();
        async move {
            let p = store
                .list_audit(&filter, &PageRequest::default())
                .await
                .unwrap();
            assert_eq!(p.next, None);
            p.items.iter().map(|e| e.seq).collect::<Vec<_>>()
        }
    };
    let f = AuditFilter::default;
    assert_eq!(seqs(f()).await, [7, 6, 5, 4, 3, 2, 1]);
    assert_eq!(
        seqs(AuditFilter {
            actor: Some(alice.into()),
            ..f()
        })
        .await,
        [4, 3, 1]
    );
    assert_eq!(
        seqs(AuditFilter {
            actor: Some(bob.into()),
            ..f()
        })
        .await,
        [6, 5, 2]
    );
    assert!(seqs(AuditFilter {
        actor: Some("user".into()),
        ..f()
    })
    .await
    .is_empty());

    let action = |a: &str| AuditFilter {
        action: Some(a.into()),
        ..f()
    };
    assert_eq!(seqs(action("site.")).await, [5, 4, 3]);
    assert_eq!(seqs(action("provider")).await, [6, 2, 1]);
    assert_eq!(seqs(action("provider.update")).await, [6]);
    assert_eq!(seqs(action("catalog.")).await, [7]);
    assert!(seqs(action("site_")).await.is_empty(), "`_` is no wildcard");
    assert!(seqs(action("%")).await.is_empty(), "`%` is no wildcard");
    assert!(
        seqs(action("SITE.")).await.is_empty(),
        "prefixes are case-sensitive"
    );

    let object = |o: &str| AuditFilter {
        object: Some(o.into()),
        ..f()
    };
    assert_eq!(seqs(object("site/dataport-hh")).await, [4, 3]);
    assert_eq!(seqs(object("site/dataport-hh-1")).await, [3]);
    assert_eq!(seqs(object("provider/dataport")).await, [6, 1]);
    assert_eq!(seqs(object("import/OZG")).await, [7]);
    assert!(
        seqs(object("import/ozg")).await.is_empty(),
        "prefixes are case-sensitive"
    );
    assert!(seqs(object("provider/%")).await.is_empty());

    assert_eq!(
        seqs(AuditFilter {
            actor: Some(bob.into()),
            ..action("site.")
        })
        .await,
        [5]
    );
    assert_eq!(
        seqs(AuditFilter {
            since: Some(t(3)),
            until: Some(t(6)),
            ..f()
        })
        .await,
        [5, 4, 3]
    );

    let pages = |filter: AuditFilter, limit: u32| {
        let store = store.clone();
        async move {
            let mut pages = Vec::new();
            let mut after = None;
            loop {
                let p = store
                    .list_audit(&filter, &page(limit, after))
                    .await
                    .unwrap();
                pages.push(p.items.iter().map(|e| e.seq).collect::<Vec<_>>());
                match p.next {
                    Some(n) => after = Some(n),
                    None => return pages,
                }
            }
        }
    };
    assert_eq!(pages(f(), 3).await, [vec![7, 6, 5], vec![4, 3, 2], vec![1]]);
    assert_eq!(pages(f(), 7).await, [vec![7, 6, 5, 4, 3, 2, 1]]);
    assert_eq!(
        pages(
            AuditFilter {
                actor: Some(alice.into()),
                ..f()
            },
            2
        )
        .await,
        [vec![4, 3], vec![1]]
    );
    assert_eq!(store.verify_audit().await.unwrap(), Ok(7));
}

// ---------------------------------------------------------------------------------------
// Concurrency

/// Writers from many tasks at once all succeed and leave one unbroken chain.
async fn concurrent_writes_are_serialised(store: Store) {
    const TASKS: i64 = 8;
    const WRITES: i64 = 20;
    let mut handles = Vec::new();
    for task in 0..TASKS {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            for i in 0..WRITES {
                // Half to the task's own provider, half to one all tasks share; each
                // write changes the display name, so each is recorded.
                let name = if i % 2 == 0 {
                    format!("p{task}")
                } else {
                    "shared".into()
                };
                let mut spec = provider(&name);
                spec.display_name = format!("written by task {task}, write {i}");
                store
                    .put_provider(&format!("user/task{task}"), &spec, t(i))
                    .await
                    .unwrap_or_else(|e| panic!("task {task}, write {i}: {e}"));
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let total = TASKS * WRITES;
    assert_eq!(store.verify_audit().await.unwrap(), Ok(total));
    let creates = store
        .list_audit(
            &AuditFilter {
                action: Some("provider.create".into()),
                ..Default::default()
            },
            &page(1000, None),
        )
        .await
        .unwrap();
    assert_eq!(creates.items.len(), TASKS as usize + 1);
    let providers = store.list_providers(&page(1000, None)).await.unwrap();
    assert_eq!(providers.items.len(), TASKS as usize + 1);
}

/// A write that failed after it had begun writing does not block the next one, although
/// its rollback may still be under way when the next writer starts.
async fn writes_after_failed_writes_succeed(store: Store) {
    let bund = store
        .create_organisation(ADMIN, &bund(), t(0))
        .await
        .unwrap();
    store
        .create_organisation(ADMIN, &land("Bayern", "09", &bund.id), t(0))
        .await
        .unwrap();
    for i in 0..200 {
        let twin = land("Freistaat Bayern", "09", &bund.id);
        assert_conflict(store.create_organisation(ADMIN, &twin, t(i)).await);
        let mut spec = provider("dataport");
        spec.display_name = format!("Dataport {i}");
        store
            .put_provider(ADMIN, &spec, t(i))
            .await
            .unwrap_or_else(|e| panic!("write {i} after a failed one: {e}"));
    }
    assert_eq!(count_organisations(&store).await, 2);
    assert_eq!(store.verify_audit().await.unwrap(), Ok(202));
}

/// Two stores on one database (a server and a CLI, or two replicas) serialise their
/// writes through the database itself, so the chain stays one line.
async fn two_stores_on_one_database_write_concurrently(store: Store, db: Db) {
    let other = db.open().await;
    let mut handles = Vec::new();
    for task in 0..8i64 {
        let store = if task % 2 == 0 {
            store.clone()
        } else {
            other.clone()
        };
        handles.push(tokio::spawn(async move {
            for i in 0..10 {
                let mut spec = provider("shared");
                spec.display_name = format!("written by task {task}, write {i}");
                store
                    .put_provider(&format!("user/task{task}"), &spec, t(i))
                    .await
                    .unwrap_or_else(|e| panic!("task {task}, write {i}: {e}"));
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    other.close().await;
    assert_eq!(store.verify_audit().await.unwrap(), Ok(80));
}

// ---------------------------------------------------------------------------------------
// The shared desired-state history

/// A commit of `repository` from `old` to `new` whose pack is `pack`.
fn history_commit<'a>(
    repository: &'a str,
    old: Option<&'a str>,
    new: &'a str,
    pack: &'a [u8],
    delivered: Option<std::ops::RangeInclusive<i64>>,
) -> verbund_store::NewHistoryCommit<'a> {
    verbund_store::NewHistoryCommit {
        repository,
        old,
        new,
        pack,
        idx: b"idx",
        written_by: "replica-a",
        delivered,
    }
}

/// The history of a repository moves only from where it stands (compare-and-swap), one
/// writer wins a race, each commit reads back with its whole pack (also one of several
/// chunks) in order, and the delivered cursor only grows.
async fn the_shared_history_moves_only_from_its_head(store: Store, db: Db) {
    const WHOLE: &str = "desired-state";
    let small = b"PACK small".to_vec();
    let large: Vec<u8> = (0..9 * 1024 * 1024 + 17)
        .map(|i: u32| (i % 251) as u8)
        .collect();
    assert!(store.history_heads().await.unwrap().is_empty());
    assert_eq!(store.delivered_cursor().await.unwrap(), None);

    let first = store
        .append_history(history_commit(WHOLE, None, "c1", &small, Some(3..=5)), t(1))
        .await
        .unwrap();
    assert_eq!(first, 1);
    let again = store
        .append_history(history_commit(WHOLE, None, "other", &small, None), t(1))
        .await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
    let second = store
        .append_history(
            history_commit(WHOLE, Some("c1"), "c2", &large, Some(6..=9)),
            t(2),
        )
        .await
        .unwrap();
    assert_eq!(second, 2);
    let stale = store
        .append_history(
            history_commit(WHOLE, Some("c1"), "fork", &small, Some(10..=99)),
            t(3),
        )
        .await;
    assert!(matches!(stale, Err(StoreError::Conflict(_))), "{stale:?}");
    store
        .append_history(history_commit("sites/s1", None, "s1", &small, None), t(2))
        .await
        .unwrap();

    let heads: Vec<(String, String, i64)> = store
        .history_heads()
        .await
        .unwrap()
        .into_iter()
        .map(|h| (h.repository, h.head, h.seq))
        .collect();
    assert_eq!(
        heads,
        vec![
            (WHOLE.to_owned(), "c2".to_owned(), 2),
            ("sites/s1".to_owned(), "s1".to_owned(), 1)
        ]
    );
    assert_eq!(store.history_seq(WHOLE, "c1").await.unwrap(), Some(1));
    assert_eq!(store.history_seq(WHOLE, "fork").await.unwrap(), None);
    assert_eq!(store.history_seq("sites/s1", "c1").await.unwrap(), None);
    // A refused commit left nothing behind, not even its cursor.
    let delivered = |through, last_run_from| {
        Some(verbund_store::Delivered {
            through,
            last_run_from,
        })
    };
    assert_eq!(
        store.delivered_cursor().await.unwrap(),
        delivered(9, Some(6))
    );
    assert_eq!(
        store.history_head(WHOLE).await.unwrap().map(|h| h.head),
        Some("c2".to_owned())
    );
    assert_eq!(store.history_head("sites/none").await.unwrap(), None);

    let all = store.history_after(WHOLE, 0, i64::MAX).await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(
        (all[0].seq, all[0].old.as_deref(), all[0].new.as_str()),
        (1, None, "c1")
    );
    assert_eq!(
        (all[1].seq, all[1].old.as_deref(), all[1].new.as_str()),
        (2, Some("c1"), "c2")
    );
    assert_eq!(all[0].pack, small);
    assert!(
        all[1].pack == large,
        "the large pack reads back whole, chunk after chunk"
    );
    assert_eq!(
        (all[1].idx.as_slice(), all[1].written_by.as_str()),
        (&b"idx"[..], "replica-a")
    );
    let bounded = store.history_after(WHOLE, 0, 1).await.unwrap();
    assert_eq!(bounded.len(), 1, "at least one, then only what fits");
    assert!(store
        .history_after(WHOLE, 2, i64::MAX)
        .await
        .unwrap()
        .is_empty());

    store.advance_delivered_cursor(7).await.unwrap();
    assert_eq!(
        store.delivered_cursor().await.unwrap(),
        delivered(9, Some(6))
    );
    store.advance_delivered_cursor(9).await.unwrap();
    assert_eq!(
        store.delivered_cursor().await.unwrap(),
        delivered(9, None),
        "what follows the last commit is done"
    );
    store.advance_delivered_cursor(12).await.unwrap();
    assert_eq!(store.delivered_cursor().await.unwrap(), delivered(12, None));

    // Two stores race from the same head: exactly one wins.
    let other = db.open().await;
    let (a, b) = tokio::join!(
        store.append_history(
            history_commit(WHOLE, Some("c2"), "from-a", &small, None),
            t(4)
        ),
        other.append_history(
            history_commit(WHOLE, Some("c2"), "from-b", &small, None),
            t(4)
        ),
    );
    assert!(a.is_ok() != b.is_ok(), "{a:?} {b:?}");
    let head = store.history_heads().await.unwrap()[0].clone();
    assert_eq!(head.seq, 3);
    assert_eq!(head.head, if a.is_ok() { "from-a" } else { "from-b" });
    other.close().await;
}

/// On PostgreSQL one store at a time holds the desired state's writer lock, apart from
/// the rollout engine's; on SQLite (one process) it is always held.
async fn one_replica_at_a_time_writes_the_desired_state(store: Store, db: Db) {
    let other = db.open().await;
    let mut writer = store
        .try_lead_delivery()
        .await
        .unwrap()
        .expect("the first leads");
    let second = other.try_lead_delivery().await.unwrap();
    let engine = other.try_lead().await.unwrap();
    assert!(engine.is_some(), "the rollout engine's lock is another");
    match db.backend {
        Backend::Sqlite => assert!(second.is_some()),
        Backend::Postgres => assert!(second.is_none(), "only one writer"),
    }
    assert!(writer.holds().await);
    drop(second);
    drop(engine);
    // A writer that gives up its lock frees it at once: the other store leads next, also
    // while this store's process (and its pool) lives on.
    drop(writer);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        if other.try_lead_delivery().await.unwrap().is_some() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the dropped writer's lock stayed held"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    other.close().await;
}

/// A replica's leaderships hold connections of their own beside the pool: a store with
/// one pooled connection that leads the rollout engine and writes the desired state
/// still answers requests.
async fn leaderships_leave_the_pool_to_requests(store: Store, db: Db) {
    drop(store);
    let narrow = Store::open_with(&db.url, Some(1)).await.unwrap();
    let engine = narrow
        .try_lead()
        .await
        .unwrap()
        .expect("the engine's lock is free");
    let writer = narrow
        .try_lead_delivery()
        .await
        .unwrap()
        .expect("the writer's lock is free");
    let answered = tokio::time::timeout(std::time::Duration::from_secs(5), narrow.ping()).await;
    assert!(
        matches!(answered, Ok(Ok(()))),
        "a request waited for a connection a leadership holds: {answered:?}"
    );
    drop((engine, writer));
    narrow.close().await;
}

// ---------------------------------------------------------------------------------------
// Idempotency keys of bookings

/// The Bund with a site and an offering to book.
async fn bookable(store: &Store) -> Organisation {
    let bund = store
        .create_organisation(ADMIN, &bund(), t(0))
        .await
        .unwrap();
    store
        .put_provider(ADMIN, &provider("dataport"), t(0))
        .await
        .unwrap();
    store
        .put_site(ADMIN, &site("dataport-hh-1", "dataport"), t(0))
        .await
        .unwrap();
    store
        .put_offering(ADMIN, &offering("nextcloud", &bund.id), t(0))
        .await
        .unwrap();
    bund
}

fn new_booking(
    id: &str,
    organisation: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> verbund_store::NewBooking {
    verbund_store::NewBooking {
        booking: serde_json::from_value(json!({
            "id": id, "organisation": organisation, "offering": "nextcloud", "plan": "s",
            "config": {}, "channel": "stable", "state": "placed", "site": "dataport-hh-1",
            "version": "1.0.0", "created_at": now, "updated_at": now, "state_since": now,
        }))
        .expect("a booking"),
        resources: Default::default(),
        decision: None,
        action: "booking.create".into(),
        secrets: None,
    }
}

fn idempotency_key(
    account: &str,
    key: &str,
    organisation: &str,
    fingerprint: &str,
    expires_at: chrono::DateTime<chrono::Utc>,
) -> verbund_store::IdempotencyKey {
    verbund_store::IdempotencyKey {
        account: account.into(),
        key: key.into(),
        organisation: organisation.into(),
        fingerprint: fingerprint.into(),
        expires_at,
    }
}

async fn booking_ids(store: &Store) -> Vec<String> {
    store
        .list_bookings(&Default::default(), &page(1000, None))
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|b| b.id)
        .collect()
}

async fn idempotency_keys_are_recorded_with_their_booking_only(store: Store) {
    let bund = bookable(&store).await;
    let day = Duration::hours(24);
    let key = |account: &str, fingerprint: &str, now| {
        idempotency_key(account, "k-1", &bund.id, fingerprint, now + day)
    };

    // A booking that fails records no key: the retry may book.
    let failed = store
        .idempotent(key("alice", "f1", t(0)))
        .create_bookings(ADMIN, &bund.id, t(0), |_| {
            Err::<Vec<verbund_store::NewBooking>, _>(StoreError::Conflict("no".into()))
        })
        .await;
    assert_conflict(failed);
    assert_eq!(
        store
            .idempotent_booking("alice", "k-1", t(1))
            .await
            .unwrap(),
        None
    );

    // The booking and its key, in one transaction.
    store
        .idempotent(key("alice", "f1", t(1)))
        .create_bookings(ADMIN, &bund.id, t(1), |_| {
            Ok::<_, StoreError>(vec![new_booking("b-1", &bund.id, t(1))])
        })
        .await
        .unwrap();
    let recorded = store
        .idempotent_booking("alice", "k-1", t(2))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        recorded,
        verbund_store::IdempotentBooking {
            key: key("alice", "f1", t(1)),
            booking: "b-1".into(),
            created_at: t(1),
        }
    );

    // The same key again is a conflict before anything is decided or stored.
    let head = audit_head(&store).await;
    let again = store
        .idempotent(key("alice", "f1", t(2)))
        .create_bookings(
            ADMIN,
            &bund.id,
            t(2),
            |_| -> Result<Vec<verbund_store::NewBooking>, StoreError> {
                panic!("a used key must not get to the decision")
            },
        )
        .await;
    assert_conflict(again);
    assert_eq!(booking_ids(&store).await, ["b-1"]);
    assert_eq!(audit_head(&store).await, head);

    // Keys belong to their account: another account's `k-1` is another key.
    store
        .idempotent(key("bob", "f2", t(3)))
        .create_bookings(ADMIN, &bund.id, t(3), |_| {
            Ok::<_, StoreError>(vec![new_booking("b-2", &bund.id, t(3))])
        })
        .await
        .unwrap();
    assert_eq!(
        store
            .idempotent_booking("bob", "k-1", t(4))
            .await
            .unwrap()
            .map(|r| r.booking),
        Some("b-2".to_string())
    );

    // A plain handle records nothing.
    store
        .create_bookings(ADMIN, &bund.id, t(4), |_| {
            Ok::<_, StoreError>(vec![new_booking("b-3", &bund.id, t(4))])
        })
        .await
        .unwrap();

    // After a day the key no longer counts, and may book again (replacing the old).
    let expired = t(1) + day;
    assert_eq!(
        store
            .idempotent_booking("alice", "k-1", expired)
            .await
            .unwrap(),
        None
    );
    assert!(store
        .idempotent_booking("alice", "k-1", expired - Duration::milliseconds(1))
        .await
        .unwrap()
        .is_some());
    store
        .idempotent(key("alice", "f3", expired))
        .create_bookings(ADMIN, &bund.id, expired, |_| {
            Ok::<_, StoreError>(vec![new_booking("b-4", &bund.id, expired)])
        })
        .await
        .unwrap();
    let renewed = store
        .idempotent_booking("alice", "k-1", expired)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (renewed.booking.as_str(), renewed.key.fingerprint.as_str()),
        ("b-4", "f3")
    );
    // Only expired keys went: Bob's, two seconds younger, still counts.
    assert_eq!(
        store
            .idempotent_booking("bob", "k-1", expired)
            .await
            .unwrap()
            .map(|r| r.booking),
        Some("b-2".to_string())
    );
    assert_eq!(booking_ids(&store).await, ["b-1", "b-2", "b-3", "b-4"]);
}

async fn an_idempotency_key_books_once_under_concurrent_retries(store: Store) {
    let bund = bookable(&store).await;
    let tries = (0..8).map(|i| {
        let store = store.clone();
        let org = bund.id.clone();
        tokio::spawn(async move {
            let key = idempotency_key("alice", "k-1", &org, "f", t(1) + Duration::hours(24));
            store
                .idempotent(key)
                .create_bookings(ADMIN, &org, t(1), |_| {
                    Ok::<_, StoreError>(vec![new_booking(&format!("b-{i}"), &org, t(1))])
                })
                .await
        })
    });
    let mut booked = Vec::new();
    for h in tries.collect::<Vec<_>>() {
        match h.await.unwrap() {
            Ok(b) => booked.push(b[0].id.clone()),
            Err(StoreError::Conflict(_)) => {}
            Err(e) => panic!("a retry failed: {e}"),
        }
    }
    assert_eq!(booked.len(), 1, "{booked:?}");
    assert_eq!(booking_ids(&store).await, booked);
    assert_eq!(
        store
            .idempotent_booking("alice", "k-1", t(2))
            .await
            .unwrap()
            .map(|r| r.booking),
        booked.first().cloned()
    );
}

// ---------------------------------------------------------------------------------------
// Organisation chains

/// The chains of a page's worth of organisations from all over the directory, read at
/// once, are those a walk from parent to parent finds (what `organisation_chain` read
/// one organisation at a time before).
/// The real directory imported into `store`; every organisation of it.
async fn imported_directory(store: &Store) -> Vec<Organisation> {
    let d = directory();
    store
        .import_organisations(IMPORTER, GV100AD_SOURCE, &d.organisations, t(0))
        .await
        .unwrap();
    all_organisations(store, &OrganisationFilter::default()).await
}

async fn organisation_chains_of_many_organisations_are_read_at_once(store: Store) {
    let all = imported_directory(&store).await;
    let parent: HashMap<&str, Option<&str>> = all
        .iter()
        .map(|o| (o.id.as_str(), o.parent.as_deref()))
        .collect();
    let walk = |id: &str| -> Vec<String> {
        let mut chain = vec![id.to_string()];
        let mut current = parent[id];
        while let Some(p) = current {
            chain.push(p.to_string());
            current = parent[p];
        }
        chain
    };
    // Every ninth: Bund, Länder, Kreise and Gemeinden of every Land, more than one
    // query's worth of ids, with one asked twice and one that does not exist.
    let mut ids: Vec<String> = all.iter().step_by(9).map(|o| o.id.clone()).collect();
    assert!(ids.len() > 1000, "{}", ids.len());
    ids.push(ids[0].clone());
    ids.push("no-such-organisation".into());
    let chains = store.organisation_chains(&ids).await.unwrap();
    assert_eq!(chains.len(), ids.len() - 2);
    let depths: BTreeSet<usize> = chains.values().map(Vec::len).collect();
    assert_eq!(
        depths,
        BTreeSet::from([1, 2, 3, 4]),
        "the Bund, Länder, Kreise, Gemeinden"
    );
    for id in &ids[..ids.len() - 2] {
        assert_eq!(chains[id], walk(id), "chain of `{id}`");
        assert_eq!(store.organisation_chain(id).await.unwrap(), walk(id));
        assert_eq!(
            store.organisation_ancestors(id).await.unwrap(),
            walk(id)[1..]
        );
    }
    let bund = all.iter().find(|o| o.parent.is_none()).unwrap();
    assert_eq!(
        store.organisation_chain(&bund.id).await.unwrap(),
        std::slice::from_ref(&bund.id)
    );
    assert!(store.organisation_chains(&[]).await.unwrap().is_empty());
    assert_not_found(store.organisation_chain("no-such-organisation").await);
    assert_not_found(store.organisation_ancestors("no-such-organisation").await);
}

async fn a_cycle_in_the_organisation_chain_is_corrupt_data(store: Store, db: Db) {
    let bund = store
        .create_organisation(ADMIN, &bund(), t(0))
        .await
        .unwrap();
    let bayern = store
        .create_organisation(ADMIN, &land("Bayern", "09", &bund.id), t(0))
        .await
        .unwrap();
    db.execute(&format!(
        "UPDATE organisations SET parent = '{}' WHERE id = '{}'",
        bayern.id, bund.id
    ))
    .await;
    for id in [&bund.id, &bayern.id] {
        match store.organisation_chain(id).await {
            Err(StoreError::Corrupt(m)) => assert!(m.contains("cycle"), "{m}"),
            other => panic!("expected corrupt data, got {other:?}"),
        }
    }
}

// ---------------------------------------------------------------------------------------
// The life cycle of accounts (issue 16)

/// An account with a token and two sessions (`s1`, `s2`); returns it and the token's secret.
async fn account_in_use(store: &Store, name: &str) -> (verbund_domain::account::User, String) {
    let u = store
        .create_user(
            ADMIN,
            &user(name, vec![member(Role::Auditor, None, None)]),
            t(0),
        )
        .await
        .unwrap();
    let seed = name
        .bytes()
        .fold(0u8, |a, b| a.wrapping_mul(31).wrapping_add(b));
    let secret = token_secret(&[seed; 32]);
    store
        .create_token(ADMIN, &u.id, "ci", &hash_token(&secret), None, t(0))
        .await
        .unwrap();
    for s in ["s1", "s2"] {
        store
            .open_session(
                &u,
                &format!("{name}-{s}"),
                "csrf",
                "password",
                None,
                t(3600),
                t(0),
            )
            .await
            .unwrap();
    }
    (u, secret)
}

async fn parallel_sign_in_attempts_pass_at_most_the_limit(store: Store) {
    let window = Duration::minutes(15);
    let attempts = (0..40).map(|_| {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .reserve_sign_in("account:admin|10.0.0.1", 5, window, t(0))
                .await
                .unwrap()
        })
    });
    let mut allowed = 0;
    for a in attempts {
        if a.await.unwrap() == verbund_store::Attempt::Allowed {
            allowed += 1;
        }
    }
    assert_eq!(
        allowed, 5,
        "exactly the limit passes, however many arrive at once"
    );
    // Refused until the window ends, and only this key.
    assert_eq!(
        store
            .reserve_sign_in("account:admin|10.0.0.1", 5, window, t(60))
            .await
            .unwrap(),
        verbund_store::Attempt::Refused {
            until: t(0) + window
        }
    );
    assert_eq!(
        store
            .reserve_sign_in("account:admin|10.0.0.2", 5, window, t(60))
            .await
            .unwrap(),
        verbund_store::Attempt::Allowed
    );
    assert_eq!(
        store
            .reserve_sign_in("account:admin|10.0.0.1", 5, window, t(0) + window)
            .await
            .unwrap(),
        verbund_store::Attempt::Allowed,
        "a new window starts afresh"
    );
    // A failure that reaches the limit locks for `lock_for` from then on.
    for _ in 0..4 {
        store
            .reserve_sign_in("account:max|x", 5, window, t(10))
            .await
            .unwrap();
    }
    let policy = verbund_store::LockPolicy::default();
    assert_eq!(
        store
            .login_failed(None, "account:max|x", policy, t(10))
            .await
            .unwrap(),
        None
    );
    store
        .reserve_sign_in("account:max|x", 5, window, t(20))
        .await
        .unwrap();
    assert_eq!(
        store
            .login_failed(None, "account:max|x", policy, t(20))
            .await
            .unwrap(),
        Some(t(20) + policy.lock_for)
    );
    // A refund gives an attempt back; forgetting starts the key afresh.
    store.refund_sign_in("account:max|x", 5).await.unwrap();
    assert_eq!(
        store
            .reserve_sign_in("account:max|x", 5, window, t(30))
            .await
            .unwrap(),
        verbund_store::Attempt::Allowed
    );
    store.forget_sign_in("account:max|x").await.unwrap();
    assert_eq!(
        store
            .forget_past_sign_in_attempts(t(0) + window * 3)
            .await
            .unwrap(),
        2,
        "the two address keys of `admin` are past their windows"
    );
}

async fn disabled_accounts_work_nowhere_until_enabled(store: Store) {
    let (u, secret) = account_in_use(&store, "clerk").await;
    assert!(store
        .authenticate(&hash_token(&secret), t(1))
        .await
        .unwrap()
        .is_some());
    let head = audit_head(&store).await;
    let disabled = store.disable_user(ADMIN, &u.id, t(2)).await.unwrap();
    assert_eq!(disabled.disabled_at, Some(t(2)));
    assert_one_event(
        &store,
        head,
        ADMIN,
        "user.disable",
        &format!("user/{}", u.id),
    )
    .await;
    assert_eq!(store.get_user(&u.id).await.unwrap(), disabled);
    assert!(store
        .authenticate(&hash_token(&secret), t(3))
        .await
        .unwrap()
        .is_none());
    for s in ["clerk-s1", "clerk-s2"] {
        assert!(store.session(s, t(3)).await.unwrap().is_none(), "{s}");
    }
    // Again: nothing changes, nothing is recorded.
    let head = audit_head(&store).await;
    assert_eq!(
        store.disable_user(ADMIN, &u.id, t(4)).await.unwrap(),
        disabled
    );
    assert_eq!(audit_head(&store).await, head);

    let enabled = store.enable_user(ADMIN, &u.id, t(5)).await.unwrap();
    assert_eq!(enabled.disabled_at, None);
    assert_one_event(
        &store,
        head,
        ADMIN,
        "user.enable",
        &format!("user/{}", u.id),
    )
    .await;
    assert!(
        store
            .authenticate(&hash_token(&secret), t(6))
            .await
            .unwrap()
            .is_some(),
        "its tokens work again"
    );
    assert!(
        store.session("clerk-s1", t(6)).await.unwrap().is_none(),
        "its sessions stay ended"
    );
}

async fn revoking_access_ends_every_token_and_session(store: Store) {
    let (u, secret) = account_in_use(&store, "leaver").await;
    let (other, other_secret) = account_in_use(&store, "stayer").await;
    let head = audit_head(&store).await;
    let revoked = store.revoke_access(ADMIN, &u.id, t(1)).await.unwrap();
    assert_eq!(
        revoked,
        verbund_domain::account::Revoked {
            tokens: 1,
            sessions: 2
        }
    );
    assert_one_event(
        &store,
        head,
        ADMIN,
        "user.revoke",
        &format!("user/{}", u.id),
    )
    .await;
    assert!(store
        .authenticate(&hash_token(&secret), t(2))
        .await
        .unwrap()
        .is_none());
    assert!(store.session("leaver-s1", t(2)).await.unwrap().is_none());
    assert!(store.session("leaver-s2", t(2)).await.unwrap().is_none());
    // Nobody else's.
    assert!(store
        .authenticate(&hash_token(&other_secret), t(2))
        .await
        .unwrap()
        .is_some());
    assert_eq!(
        store
            .session("stayer-s1", t(2))
            .await
            .unwrap()
            .map(|(_, u)| u.id),
        Some(other.id)
    );
    assert_eq!(
        store.revoke_access(ADMIN, &u.id, t(3)).await.unwrap(),
        verbund_domain::account::Revoked {
            tokens: 0,
            sessions: 0
        }
    );
}

async fn password_resets_are_one_time_and_expire(store: Store) {
    let (u, _) = account_in_use(&store, "forgetful").await;
    let head = audit_head(&store).await;
    let reset = store
        .create_password_reset(ADMIN, &u.id, "hash-1", t(100), t(1))
        .await
        .unwrap();
    assert_eq!(
        (reset.user.as_str(), reset.expires_at),
        (u.id.as_str(), t(100))
    );
    let e = assert_one_event(
        &store,
        head,
        ADMIN,
        "user.password-reset",
        &format!("user/{}", u.id),
    )
    .await;
    assert!(
        !e.after.unwrap().to_string().contains("hash-1"),
        "the token stays secret"
    );

    // Two completions at once: exactly one sets the password.
    let tries = (0..6).map(|i| {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .complete_password_reset("hash-1", &format!("$argon2id$new-{i}"), t(2))
                .await
        })
    });
    let mut done = 0;
    for r in tries {
        match r.await.unwrap() {
            Ok(user) => {
                assert_eq!(user.id, u.id);
                done += 1;
            }
            Err(e) => assert!(
                matches!(e, StoreError::Invalid(ref i) if i.field == "/token"),
                "{e}"
            ),
        }
    }
    assert_eq!(done, 1);
    let (_, c) = store.credential("forgetful").await.unwrap().unwrap();
    assert!(c
        .unwrap()
        .password_hash
        .unwrap()
        .starts_with("$argon2id$new-"));
    assert!(
        store.session("forgetful-s1", t(3)).await.unwrap().is_none(),
        "sessions end"
    );
    let newest = store
        .list_audit(&AuditFilter::default(), &page(1, None))
        .await
        .unwrap()
        .items;
    assert_eq!(
        (newest[0].actor.as_str(), newest[0].action.as_str()),
        ("user/forgetful", "user.password")
    );

    // Expired, and superseded by a newer reset.
    store
        .create_password_reset(ADMIN, &u.id, "hash-2", t(10), t(5))
        .await
        .unwrap();
    assert_invalid(
        store
            .complete_password_reset("hash-2", "$argon2id$x", t(10))
            .await,
        "/token",
    );
    store
        .create_password_reset(ADMIN, &u.id, "hash-3", t(100), t(11))
        .await
        .unwrap();
    store
        .create_password_reset(ADMIN, &u.id, "hash-4", t(100), t(12))
        .await
        .unwrap();
    assert_invalid(
        store
            .complete_password_reset("hash-3", "$argon2id$x", t(13))
            .await,
        "/token",
    );
    assert_invalid(
        store
            .complete_password_reset("unknown", "$argon2id$x", t(13))
            .await,
        "/token",
    );
    assert!(store
        .complete_password_reset("hash-4", "$argon2id$y", t(13))
        .await
        .is_ok());
}

async fn accounts_of_an_identity_provider_have_no_local_password_or_roles(store: Store) {
    let oidc = store
        .create_oidc_user(
            "system/oidc",
            "https://id.example/realms/v",
            "sub-1",
            &user("erika", vec![member(Role::Auditor, None, None)]),
            t(0),
        )
        .await
        .unwrap();
    let head = audit_head(&store).await;
    assert_conflict(
        store
            .set_password(ADMIN, &oidc.id, "$argon2id$x", t(1))
            .await,
    );
    assert_conflict(
        store
            .create_password_reset(ADMIN, &oidc.id, "h", t(100), t(1))
            .await,
    );
    assert_conflict(
        store
            .set_roles(
                ADMIN,
                &oidc.id,
                &[member(Role::FederationAdmin, None, None)],
                t(1),
            )
            .await,
    );
    assert_eq!(audit_head(&store).await, head, "nothing changed");
    assert_eq!(store.credential("erika").await.unwrap().unwrap().1, None);

    // A local account's roles change, and the change is audited.
    let local = store
        .create_user(
            ADMIN,
            &user("max", vec![member(Role::Auditor, None, None)]),
            t(0),
        )
        .await
        .unwrap();
    let head = audit_head(&store).await;
    let changed = store
        .set_roles(
            ADMIN,
            &local.id,
            &[member(Role::Monitoring, None, None)],
            t(2),
        )
        .await
        .unwrap();
    assert_eq!(
        changed.spec.memberships,
        [member(Role::Monitoring, None, None)]
    );
    assert_one_event(
        &store,
        head,
        ADMIN,
        "user.roles",
        &format!("user/{}", local.id),
    )
    .await;
    assert_eq!(store.get_user(&local.id).await.unwrap(), changed);
}

async fn a_password_change_ends_the_other_sessions(store: Store) {
    let (u, _) = account_in_use(&store, "careful").await;
    store
        .change_password(
            &format!("user/{}", u.spec.name),
            &u.id,
            "$argon2id$1",
            Some("careful-s1"),
            t(1),
        )
        .await
        .unwrap();
    assert!(
        store.session("careful-s1", t(2)).await.unwrap().is_some(),
        "the changing one stays"
    );
    assert!(
        store.session("careful-s2", t(2)).await.unwrap().is_none(),
        "the other one ends"
    );
    store
        .set_password(ADMIN, &u.id, "$argon2id$2", t(3))
        .await
        .unwrap();
    assert!(
        store.session("careful-s1", t(4)).await.unwrap().is_none(),
        "set by the system: all end"
    );
}

async fn a_scope_covers_its_organisations_and_everything_below_the_delegated_ones(store: Store) {
    let all = imported_directory(&store).await;
    let children: HashMap<&str, Vec<&str>> = all.iter().fold(HashMap::new(), |mut children, o| {
        if let Some(p) = o.parent.as_deref() {
            children.entry(p).or_default().push(o.id.as_str());
        }
        children
    });
    let subtree = |root: &str| -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let mut todo = vec![root];
        while let Some(id) = todo.pop() {
            out.insert(id.to_string());
            todo.extend(children.get(id).into_iter().flatten());
        }
        out
    };
    let by_level = |level: Level| all.iter().filter(move |o| o.level == level);
    let land = by_level(Level::Land).next().unwrap();
    let kreis = by_level(Level::Kreis)
        .find(|k| k.land == land.land)
        .unwrap();
    let other_kreis = by_level(Level::Kreis)
        .find(|k| k.land != land.land)
        .unwrap();
    let gemeinde = by_level(Level::Gemeinde)
        .find(|g| g.parent.as_deref() == Some(other_kreis.id.as_str()))
        .unwrap();
    let scope = |alone: &[&str], below: &[&str]| verbund_store::OrganisationScope {
        alone: alone.iter().map(|s| s.to_string()).collect(),
        with_descendants: below.iter().map(|s| s.to_string()).collect(),
    };
    let members = |scope| {
        let store = store.clone();
        async move {
            let m = store.scope_members(&scope).await.unwrap();
            let set: BTreeSet<String> = m.iter().cloned().collect();
            assert_eq!(set.len(), m.len(), "each member once");
            set
        }
    };
    // A Land with delegation: itself and its Kreise and Gemeinden, nothing else.
    let expected = subtree(&land.id);
    assert!(expected.len() > 2, "{}", expected.len());
    assert_eq!(members(scope(&[], &[&land.id])).await, expected);
    // Alone: only what is named, its children not.
    assert_eq!(
        members(scope(&[&kreis.id, &gemeinde.id], &[])).await,
        BTreeSet::from([kreis.id.clone(), gemeinde.id.clone()])
    );
    // Both, overlapping: the union, each once.
    let mut union = subtree(&other_kreis.id);
    union.extend(expected.iter().cloned());
    assert_eq!(
        members(scope(
            &[&gemeinde.id, &land.id],
            &[&other_kreis.id, &land.id]
        ))
        .await,
        union
    );
    // Nothing named, nothing covered; an unknown organisation covers nothing.
    assert!(members(scope(&[], &[])).await.is_empty());
    assert!(members(scope(&[], &["no-such-organisation"]))
        .await
        .is_empty());
}
