//! A page of bookings, in id order, as a filter and a caller's scope select them.
//!
//! How the scope is applied depends on its breadth. Up to [`NARROW_SCOPE`] organisations
//! (a Gemeinde, a Kreis with delegation) are a filter of the query: the database finds
//! their few bookings by organisation and sorts them. A wider scope (the delegated
//! administrator of a Land: some 2,150 organisations in Bayern, 18,500 bookings) is a
//! probe while the database walks the bookings in id order until the page is full: a
//! Land's share of the federation fills a page after a few thousand bookings at most.
//! The probe must be a hash of the scope, not a comparison with each member:
//! - SQLite is told not to use the organisation index (`+organisation`) and probes the
//!   scope passed as one JSON array, which it reads once into a temporary index.
//! - PostgreSQL hashes an `= ANY` list only when the list is a constant of the plan. The
//!   scope is passed as one text, split by the immutable `string_to_array`, which the
//!   planner folds into that constant when it plans with the value, as it does for an
//!   unnamed statement (`persistent(false)`). A named statement's generic plan would
//!   split the text again for every booking (3.8 s for the first page of Bayern by
//!   `EXPLAIN ANALYZE`, against 2 ms).
//!
//! As a plain filter, neither database plans so wide a list well: SQLite sorts all the
//! Land's bookings for every page (18 ms) and PostgreSQL compares each booking with the
//! whole list (1.2 s by `EXPLAIN ANALYZE`).

use verbund_domain::booking::Booking;
use verbund_domain::page::{Page, PageRequest};

use super::{add_in, add_in_sub, booking, BookingFilter, COLUMNS};
use crate::rows::{paginate, Arg, Select};
use crate::{Dialect, Result, Store, StoreError};

/// The most organisations a scope may have to be a filter of the query.
const NARROW_SCOPE: usize = 500;

impl Store {
    pub async fn list_bookings(
        &self,
        filter: &BookingFilter,
        page: &PageRequest,
    ) -> Result<Page<Booking>> {
        let limit = page.limit();
        let mut s = conditions(filter);
        // A statement planned with its values: see the module docs.
        let mut planned_with_values = false;
        if let Some(scope) = &filter.scope_organisations {
            let members = self.scope_members(scope).await?;
            planned_with_values = add_members(&mut s, self.dialect, &members)?;
        }
        if let Some(after) = &page.after {
            s.and("id > {}", Arg::Text(after.clone()));
        }
        let sql = s.sql(
            &format!("SELECT {COLUMNS} FROM bookings"),
            &format!("ORDER BY id LIMIT {}", limit as usize + 1),
        );
        let rows = s
            .bind(&sql)
            .persistent(!planned_with_values)
            .fetch_all(&self.pool)
            .await?;
        let mut items = rows.iter().map(booking).collect::<Result<Vec<_>>>()?;
        self.attach_dependencies(&mut items).await?;
        let mut conn = self.pool.acquire().await?;
        crate::undeliverable::fill(&mut conn, self.dialect, &mut items).await?;
        crate::secrets::fill(&mut conn, self.dialect, &mut items).await?;
        Ok(paginate(items, limit, |b| b.id.clone()))
    }
}

/// Restricts `s` to the bookings of `members`, as a filter or as a probe by their number
/// (see the module docs); whether the statement must be planned with its values.
fn add_members(s: &mut Select, dialect: Dialect, members: &[String]) -> Result<bool> {
    if members.len() <= NARROW_SCOPE {
        add_in(s, "organisation", members);
        return Ok(false);
    }
    match dialect {
        Dialect::Sqlite => {
            s.and(
                "+organisation IN (SELECT value FROM json_each({}))",
                Arg::Text(crate::rows::to_json(&members)?),
            );
            Ok(false)
        }
        Dialect::Postgres => {
            s.and(
                "organisation = ANY(string_to_array({}, ','))",
                Arg::Text(comma_separated(members)?),
            );
            Ok(true)
        }
    }
}

/// A scope's organisations as PostgreSQL's `string_to_array` splits them. Organisation
/// ids are the store's own UUIDs; one with a comma would split into others.
fn comma_separated(members: &[String]) -> Result<String> {
    if let Some(odd) = members.iter().find(|m| m.contains(',')) {
        return Err(StoreError::Corrupt(format!(
            "organisation id `{odd}` contains a comma"
        )));
    }
    Ok(members.join(","))
}

/// The filter's conditions, without the caller's organisations and the page's start.
fn conditions(filter: &BookingFilter) -> Select {
    let mut s = Select::default();
    if let Some(p) = &filter.scope_provider {
        s.and(
            "site IN (SELECT name FROM sites WHERE provider = {})",
            Arg::Text(p.clone()),
        );
    }
    if let Some(vendors) = &filter.scope_vendor {
        add_in_sub(
            &mut s,
            "offering IN (SELECT name FROM offerings WHERE vendor IN (",
            vendors,
        );
    }
    if let Some(o) = &filter.organisation {
        s.and("organisation = {}", Arg::Text(o.clone()));
    }
    if let Some(o) = &filter.offering {
        s.and("offering = {}", Arg::Text(o.clone()));
    }
    if let Some(i) = &filter.instance {
        s.and("instance = {}", Arg::Text(i.clone()));
    }
    if let Some(x) = &filter.site {
        s.and("site = {}", Arg::Text(x.clone()));
    }
    if let Some(st) = filter.state {
        s.and("state = {}", Arg::Text(st.as_str().into()));
    }
    if filter.noncompliant {
        s.and("compliant = {}", Arg::Int(0));
    }
    s
}
