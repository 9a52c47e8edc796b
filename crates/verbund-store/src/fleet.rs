//! Counts of the fleet's bookings, for the fleet view and the metrics.
//!
//! The federation's and a provider's views read running totals that triggers keep in the
//! transaction of every booking and observation write (`fleet_counts`,
//! `organisation_counts`, `applied_counts`, migration 0004): a few thousand rows instead
//! of 100,000 bookings. An organisation's own view counts its bookings directly, through
//! the `bookings_organisation_state` index; they are few.

use sqlx::Row;

use crate::bookings::add_in;
use crate::rows::{Arg, Select};
use crate::{Result, Store};

/// Which bookings to count: all, those on some sites, or those of some organisations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FleetScope {
    pub sites: Option<Vec<String>>,
    pub organisations: Option<Vec<String>>,
}

/// Booking counts along the fleet's dimensions (absent rows count zero).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FleetCounts {
    /// (site, offering, state, desired version, bookings); site and version `""` when none.
    pub bookings: Vec<(String, String, String, String, i64)>,
    /// (organisation, state, bookings)
    pub by_organisation: Vec<(String, String, i64)>,
    /// (offering, version its sites report running or `""`, bookings)
    pub applied: Vec<(String, String, i64)>,
}

impl Store {
    pub async fn fleet_counts(&self, scope: &FleetScope) -> Result<FleetCounts> {
        match &scope.organisations {
            Some(orgs) => {
                self.organisation_fleet_counts(orgs, scope.sites.as_deref())
                    .await
            }
            None => self.summed_fleet_counts(scope.sites.as_deref()).await,
        }
    }

    /// From the running totals, optionally only for `sites`.
    async fn summed_fleet_counts(&self, sites: Option<&[String]>) -> Result<FleetCounts> {
        let scoped = |col: &str| {
            let mut s = Select::default();
            s.and("bookings <> {}", Arg::Int(0));
            if let Some(sites) = sites {
                add_in(&mut s, col, sites);
            }
            s
        };
        let totals = scoped("site");
        let totals_sql = totals.sql(
            "SELECT site, offering, state, version, bookings FROM fleet_counts",
            "",
        );
        let applied = scoped("site");
        let applied_sql = applied.sql(
            "SELECT offering, applied_version, CAST(SUM(bookings) AS BIGINT) FROM applied_counts",
            "GROUP BY offering, applied_version",
        );
        let (totals, applied) = tokio::try_join!(
            totals.bind(&totals_sql).fetch_all(&self.pool),
            applied.bind(&applied_sql).fetch_all(&self.pool),
        )?;
        // Per organisation: the running totals for the whole federation; a provider's
        // share is counted from its sites' bookings.
        let organisations = match sites {
            // One row holding all ~11,000 as a JSON array: sqlx hands rows over from its
            // SQLite worker thread one message at a time, which cost more than the query.
            None => {
                let sql = match self.dialect {
                    crate::Dialect::Sqlite => {
                        "SELECT json_group_array(json_array(organisation, state, bookings)) \
                         FROM organisation_counts WHERE bookings <> 0"
                    }
                    crate::Dialect::Postgres => {
                        "SELECT CAST(COALESCE(json_agg(json_build_array(organisation, state, bookings)), \
                         '[]') AS TEXT) FROM organisation_counts WHERE bookings <> 0"
                    }
                };
                let row = sqlx::query(sql).fetch_one(&self.pool).await?;
                let text: Option<String> = row.try_get(0)?;
                crate::rows::from_json::<Vec<(String, String, i64)>>(
                    text.as_deref().unwrap_or("[]"),
                )?
            }
            Some(sites) => {
                let mut s = Select::default();
                add_in(&mut s, "site", sites);
                let sql = s.sql(
                    "SELECT organisation, state, CAST(COUNT(*) AS BIGINT) FROM bookings",
                    "GROUP BY organisation, state",
                );
                s.bind(&sql)
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
                    .collect::<Result<Vec<_>>>()?
            }
        };
        let mut counts = FleetCounts::default();
        for r in totals {
            counts.bookings.push((
                r.try_get(0)?,
                r.try_get(1)?,
                r.try_get(2)?,
                r.try_get(3)?,
                r.try_get(4)?,
            ));
        }
        counts.by_organisation = organisations;
        for r in applied {
            let n: i64 = r.try_get(2)?;
            if n != 0 {
                counts.applied.push((r.try_get(0)?, r.try_get(1)?, n));
            }
        }
        Ok(counts)
    }

    /// Counted directly from the bookings of `orgs` (and on `sites`, if given).
    async fn organisation_fleet_counts(
        &self,
        orgs: &[String],
        sites: Option<&[String]>,
    ) -> Result<FleetCounts> {
        let scoped = |org_col: &str, site_col: &str| {
            let mut s = Select::default();
            add_in(&mut s, org_col, orgs);
            if let Some(sites) = sites {
                add_in(&mut s, site_col, sites);
            }
            s
        };
        let totals = scoped("organisation", "site");
        let totals_sql = totals.sql(
            "SELECT COALESCE(site, ''), offering, state, COALESCE(version, ''), \
             CAST(COUNT(*) AS BIGINT) FROM bookings",
            "GROUP BY COALESCE(site, ''), offering, state, COALESCE(version, '')",
        );
        let organisations = scoped("organisation", "site");
        let organisations_sql = organisations.sql(
            "SELECT organisation, state, CAST(COUNT(*) AS BIGINT) FROM bookings",
            "GROUP BY organisation, state",
        );
        let applied = scoped("b.organisation", "s.site");
        let applied_sql = applied.sql(
            "SELECT s.offering, COALESCE(s.applied_version, ''), CAST(COUNT(*) AS BIGINT) \
             FROM booking_status s JOIN bookings b ON b.id = s.booking",
            "GROUP BY s.offering, COALESCE(s.applied_version, '')",
        );
        let (totals, organisations, applied) = tokio::try_join!(
            totals.bind(&totals_sql).fetch_all(&self.pool),
            organisations.bind(&organisations_sql).fetch_all(&self.pool),
            applied.bind(&applied_sql).fetch_all(&self.pool),
        )?;
        let mut counts = FleetCounts::default();
        for r in totals {
            counts.bookings.push((
                r.try_get(0)?,
                r.try_get(1)?,
                r.try_get(2)?,
                r.try_get(3)?,
                r.try_get(4)?,
            ));
        }
        for r in organisations {
            counts
                .by_organisation
                .push((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?));
        }
        for r in applied {
            counts
                .applied
                .push((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?));
        }
        Ok(counts)
    }
}
