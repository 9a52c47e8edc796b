//! The site side of verbund: what runs in (or stands in for) a site's cluster and tells
//! the control plane what actually runs there.
//!
//! - [`sender`] delivers a [`SiteReport`](verbund_domain::report::SiteReport) to
//!   `POST /api/v1/sites/{site}/reports` with the site's own token, retrying what may
//!   succeed later and giving up on what never will.

pub mod sender;

pub use sender::{Receipt, ReportSender, SendError};
