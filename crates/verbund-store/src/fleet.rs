//! Counts of the fleet's bookings, for the fleet view and the metrics.
//!
//! Each count is one `GROUP BY` answered from an index alone (`bookings_site`,
//! `bookings_offering_state`, `bookings_organisation_state`, `booking_status_versions`),
//! and the four run concurrently on the pool, so the view of 100,000 bookings stays a
//! few index scans instead of loading rows.

use sqlx::Row;

use crate::bookings::add_in;
use crate::rows::Select;
use crate::{Result, Store};

/// Which bookings to count: all, or only those on some sites or of some organisations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FleetScope {
    pub sites: Option<Vec<String>>,
    pub organisations: Option<Vec<String>>,
}

/// Booking counts along the fleet's dimensions (rows with zero bookings are absent).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FleetCounts {
    /// (site, state, bookings)
    pub by_site: Vec<(String, String, i64)>,
    /// (offering, state, desired version, bookings)
    pub by_offering: Vec<(String, String, Option<String>, i64)>,
    /// (organisation, state, bookings)
    pub by_organisation: Vec<(String, String, i64)>,
    /// (offering, applied version as reported, bookings)
    pub applied: Vec<(String, Option<String>, i64)>,
}

impl FleetScope {
    fn select(&self, site_col: &str, org_col: Option<&str>) -> Select {
        let mut s = Select::default();
        if let Some(sites) = &self.sites {
            add_in(&mut s, site_col, sites);
        }
        if let (Some(orgs), Some(col)) = (&self.organisations, org_col) {
            add_in(&mut s, col, orgs);
        }
        s
    }
}

impl Store {
    pub async fn fleet_counts(&self, scope: &FleetScope) -> Result<FleetCounts> {
        let site = scope.select("site", Some("organisation"));
        let site_sql = site.sql(
            "SELECT site, state, CAST(COUNT(*) AS BIGINT) FROM bookings",
            "GROUP BY site, state",
        );
        let offering = scope.select("site", Some("organisation"));
        let offering_sql = offering.sql(
            "SELECT offering, state, version, CAST(COUNT(*) AS BIGINT) FROM bookings",
            "GROUP BY offering, state, version",
        );
        let organisation = scope.select("site", Some("organisation"));
        let organisation_sql = organisation.sql(
            "SELECT organisation, state, CAST(COUNT(*) AS BIGINT) FROM bookings",
            "GROUP BY organisation, state",
        );
        // Reported versions: scoped by organisation through the booking.
        let applied = if scope.organisations.is_some() {
            scope.select("s.site", Some("b.organisation"))
        } else {
            scope.select("site", None)
        };
        let applied_sql = if scope.organisations.is_some() {
            applied.sql(
                "SELECT s.offering, s.applied_version, CAST(COUNT(*) AS BIGINT) \
                 FROM booking_status s JOIN bookings b ON b.id = s.booking",
                "GROUP BY s.offering, s.applied_version",
            )
        } else {
            applied.sql(
                "SELECT offering, applied_version, CAST(COUNT(*) AS BIGINT) FROM booking_status",
                "GROUP BY offering, applied_version",
            )
        };
        let (by_site, by_offering, by_organisation, applied) = tokio::try_join!(
            site.bind(&site_sql).fetch_all(&self.pool),
            offering.bind(&offering_sql).fetch_all(&self.pool),
            organisation.bind(&organisation_sql).fetch_all(&self.pool),
            applied.bind(&applied_sql).fetch_all(&self.pool),
        )?;
        let mut counts = FleetCounts::default();
        for r in by_site {
            let site: Option<String> = r.try_get(0)?;
            counts
                .by_site
                .push((site.unwrap_or_default(), r.try_get(1)?, r.try_get(2)?));
        }
        for r in by_offering {
            counts
                .by_offering
                .push((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?));
        }
        for r in by_organisation {
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
