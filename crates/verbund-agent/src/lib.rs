//! The site side of verbund: what runs in (or stands in for) a site's cluster and tells
//! the control plane what actually runs there.
//!
//! - [`sender`] delivers a [`SiteReport`](verbund_domain::report::SiteReport) to
//!   `POST /api/v1/sites/{site}/reports` with the site's own token, retrying what may
//!   succeed later and giving up on what never will.
//! - [`observe`] keeps reflector stores of the cluster's objects and reads the
//!   report's observations from their snapshot (a pure function).
//! - [`report`] is the loop: observe, split into batches, send, every interval.
//! - [`desired`] fetches the desired-state repository with the `git` CLI and reads a
//!   site's environment folder the way kustomize would (only `resources` lists).
//! - [`apply`] applies it with server-side apply and prunes what is no longer desired
//!   (`--apply`, for sites whose delivery mode is the agent): verbund's own objects with
//!   the agent's rights, each booking's vendor content (its manifests, its chart rendered
//!   by [`chart`]) as the booking's deployer, so the API server holds it to its tenant's
//!   rights.
//! - [`sealed`] opens the Secrets verbund sealed for the site (a booking's declared
//!   secrets, SOPS for the site's age recipient) with the agent's age identity.
//! - [`kinds`] is the fixed table of kinds the agent applies; [`install`] builds the
//!   agent's own install manifests (RBAC from that table).
//! - [`preflight`] checks whether the cluster can run what verbund's desired state
//!   needs (versions, custom resources, secret store, ingress class, roles, and a probe
//!   that proves NetworkPolicy is enforced), for `verbund agent preflight`.
//!
//! Architecture Invariant: the Kubernetes client is only ever given to the stores, the
//! applier and the preflight's reads and probe; what the agent concludes ([`observe::observe`],
//! [`report::batches`], [`apply::plan_prune`], [`install::install_manifests`],
//! [`preflight::judge`]) is pure and tested without a cluster.

pub mod apply;
pub mod chart;
pub mod desired;
pub mod error;
pub mod install;
pub mod kinds;
pub mod observe;
pub mod preflight;
pub mod report;
pub mod sealed;
pub mod sender;

pub use error::{Error, Result};
pub use sender::{Receipt, ReportSender, SendError};
