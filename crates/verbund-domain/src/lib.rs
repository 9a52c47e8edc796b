//! The domain core of verbund: the federation's vocabulary and its rules, without I/O.
//!
//! Everything here is pure: input in, value or validation error out. The current time
//! is always a parameter, so that tests control it and adapters (store, API, CLI) stay
//! the only places that talk to the world.

pub mod account;
pub mod audit;
pub mod booking;
pub mod bounded;
pub mod capacity;
pub mod catalog;
pub mod directory;
pub mod ending;
pub mod error;
pub mod facts;
pub mod label;
pub mod name;
pub mod page;
pub mod portable;
pub mod preflight;
pub mod registration;
pub mod report;
pub mod rollout;
pub mod secrets;
pub mod shared;
pub mod site_history;
pub mod template;
pub mod tenancy;

pub use error::{Breach, Invalid, Result};
