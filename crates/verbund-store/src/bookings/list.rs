//! A page of bookings, in id order, as a filter and a caller's scope select them.
//!
//! How the scope is applied depends on its breadth. Up to [`NARROW_SCOPE`] organisations
//! (a Gemeinde, a Kreis with delegation) are a filter of the query: the database finds
//! their few bookings by organisation and sorts them. A wider scope (the delegated
//! administrator of a Land: some 2,150 organisations in Bayern, 18,500 bookings) is
//! applied while walking the bookings in id order until the page is full: a Land's
//! share of the federation fills a page after a few thousand bookings at most. SQLite
//! walks in one query, told not to use the organisation index (`+organisation`) and
//! probing each booking against the scope passed as one JSON array; PostgreSQL plans
//! that probe as a comparison with the whole list for each booking, so the store walks
//! for it, a chunk of [`SCAN_CHUNK`] `(id, organisation)` at a time. As a plain filter,
//! neither database plans so wide a list well: SQLite sorts all the Land's bookings for
//! every page (18 ms) and PostgreSQL compares each booking with the whole list (1.2 s
//! by `EXPLAIN ANALYZE`).

use std::collections::HashSet;

use sqlx::Row;
use verbund_domain::booking::Booking;
use verbund_domain::page::{Page, PageRequest};

use super::{add_in, add_in_sub, booking, BookingFilter, COLUMNS};
use crate::rows::{from_json, paginate, placeholders, Arg, Select};
use crate::{Dialect, Result, Store};

/// The most organisations a scope may have to be a filter of the query.
const NARROW_SCOPE: usize = 500;

/// Bookings read per step of the walk through a wide scope.
const SCAN_CHUNK: usize = 1000;

impl Store {
    pub async fn list_bookings(
        &self,
        filter: &BookingFilter,
        page: &PageRequest,
    ) -> Result<Page<Booking>> {
        let members = match &filter.scope_organisations {
            Some(scope) => Some(self.scope_members(scope).await?),
            None => None,
        };
        let limit = page.limit();
        let want = limit as usize + 1;
        let mut s = conditions(filter);
        let wide = members.as_ref().is_some_and(|m| m.len() > NARROW_SCOPE);
        let mut items = match members {
            Some(members) if wide && self.dialect == Dialect::Postgres => {
                let ids = self
                    .walk_scope(&s, &members, page.after.as_deref(), want)
                    .await?;
                self.bookings_in_order(&ids).await?
            }
            Some(members) if wide => {
                // SQLite walks the bookings in id order itself, each probed against the
                // scope's organisations in one temporary index (`+` keeps it from
                // choosing the organisation index instead).
                s.and(
                    "+organisation IN (SELECT value FROM json_each({}))",
                    Arg::Text(crate::rows::to_json(&*members)?),
                );
                self.first_after(s, page.after.as_deref(), want).await?
            }
            members => {
                if let Some(members) = members {
                    add_in(&mut s, "organisation", &members);
                }
                self.first_after(s, page.after.as_deref(), want).await?
            }
        };
        self.attach_dependencies(&mut items).await?;
        let mut conn = self.pool.acquire().await?;
        crate::undeliverable::fill(&mut conn, self.dialect, &mut items).await?;
        crate::secrets::fill(&mut conn, self.dialect, &mut items).await?;
        Ok(paginate(items, limit, |b| b.id.clone()))
    }

    /// The first `want` bookings after `after` that meet `conditions`, in id order.
    async fn first_after(
        &self,
        mut conditions: Select,
        after: Option<&str>,
        want: usize,
    ) -> Result<Vec<Booking>> {
        if let Some(after) = after {
            conditions.and("id > {}", Arg::Text(after.to_owned()));
        }
        let sql = conditions.sql(
            &format!("SELECT {COLUMNS} FROM bookings"),
            &format!("ORDER BY id LIMIT {want}"),
        );
        let rows = conditions.bind(&sql).fetch_all(&self.pool).await?;
        rows.iter().map(booking).collect()
    }

    /// The ids of the first `want` bookings after `after` that meet `conditions` and
    /// belong to one of `members`, in id order, walking the bookings a chunk at a time.
    async fn walk_scope(
        &self,
        conditions: &Select,
        members: &[String],
        after: Option<&str>,
        want: usize,
    ) -> Result<Vec<String>> {
        let members: HashSet<&str> = members.iter().map(String::as_str).collect();
        let mut cursor = after.map(str::to_owned);
        let mut ids = Vec::with_capacity(want);
        loop {
            let chunk = self.id_chunk(conditions, cursor.as_deref()).await?;
            let complete = chunk.len() < SCAN_CHUNK;
            for (id, organisation) in chunk {
                if members.contains(organisation.as_str()) {
                    ids.push(id.clone());
                    if ids.len() == want {
                        return Ok(ids);
                    }
                }
                cursor = Some(id);
            }
            if complete {
                return Ok(ids);
            }
        }
    }

    /// The next [`SCAN_CHUNK`] `(id, organisation)` after `after` that meet
    /// `conditions`, in id order, as one JSON row. PostgreSQL only: SQLite walks in its
    /// own query (see the module docs).
    async fn id_chunk(
        &self,
        conditions: &Select,
        after: Option<&str>,
    ) -> Result<Vec<(String, String)>> {
        let mut s = conditions.clone();
        if let Some(after) = after {
            s.and("id > {}", Arg::Text(after.to_owned()));
        }
        let inner = s.sql(
            "SELECT id, organisation FROM bookings",
            &format!("ORDER BY id LIMIT {SCAN_CHUNK}"),
        );
        let sql = format!(
            "SELECT CAST(COALESCE(json_agg(json_build_array(id, organisation) ORDER BY id), \
             '[]') AS TEXT) FROM ({inner}) chunk"
        );
        let row = s.bind(&sql).fetch_one(&self.pool).await?;
        let text: Option<String> = row.try_get(0)?;
        from_json(text.as_deref().unwrap_or("[]"))
    }

    /// The bookings with `ids`, in id order.
    async fn bookings_in_order(&self, ids: &[String]) -> Result<Vec<Booking>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let list = placeholders(self.dialect, 1, ids.len());
        let sql = format!("SELECT {COLUMNS} FROM bookings WHERE id IN ({list}) ORDER BY id");
        let mut q = sqlx::query(&sql);
        for id in ids {
            q = q.bind(id.clone());
        }
        let rows = q.fetch_all(&self.pool).await?;
        rows.iter().map(booking).collect()
    }
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
