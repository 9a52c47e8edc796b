//! Simulated site agents: sites that behave like real ones without Kubernetes.
//!
//! Demos, load tests and the rollout engine's tests need sites that take time to roll a
//! version out, pass or fail smoke tests, lose replicas and fall silent, on demand. A
//! simulated agent reads the desired state from the real Git repository (as a site's
//! engine would) and reports through the same HTTP API and sender as the real agent,
//! labelled `simulated: true`.
//!
//! - [`model`]: one booking over time (rollout latency, ready, smoke test), pure.
//! - [`faults`]: failure injection rules and the handle to change them at runtime.
//! - [`desired`]: reading a booking's folder (labels, replicas, smoke-test Job, quota).
//! - [`source`]: reading the repository read-only, also while the server writes it.
//! - [`site`]: one site's reports at a given moment, pure.
//! - [`run`]: the tasks ([`Simulation::start`] → [`SimulationHandle`]).
//!
//! ```no_run
//! # async fn demo() -> verbund_simulate::Result<()> {
//! use std::collections::BTreeMap;
//! use std::time::Duration;
//! use verbund_simulate::{Simulation, SimulationConfig};
//!
//! let tokens = BTreeMap::from([("site-a".to_string(), "vbs_…".to_string())]);
//! let config = SimulationConfig::new("http://127.0.0.1:8080", "data/desired-state.git", tokens)
//!     .interval(Duration::from_millis(300))
//!     .latency(Duration::from_millis(300));
//! let sim = Simulation::start(config).await?;
//! sim.faults().update(|f| {
//!     f.degraded.insert("<booking id>".into());
//! })?;
//! // … the booking goes active → degraded; clearing the fault brings it back.
//! sim.faults().set(Default::default())?;
//! sim.stop().await;
//! # Ok(())
//! # }
//! ```
//!
//! Architecture Invariant: the simulator only knows what a real agent knows — the
//! repository's content and the report API. It never reads the store.

pub mod desired;
pub mod error;
pub mod faults;
pub mod model;
pub mod run;
pub mod site;
pub mod source;

pub use error::{Error, Result};
pub use faults::{Faults, FaultsHandle};
pub use model::Resources;
pub use run::{mint_site_token, Simulation, SimulationConfig, SimulationHandle, SiteStats};
pub use site::{profiles_from_yaml, SiteProfile, AGENT_NAME};
