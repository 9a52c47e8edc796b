//! Parsers for the official reference data verbund imports: the Destatis municipality
//! directory (GV100AD) and the OZG catalog.
//!
//! Architecture Invariant: this crate is pure. It reads from a `BufRead` the caller
//! opened and returns domain values or an [`ImportError`] naming the offending line; it
//! never opens files, talks to a store or knows about ids. A bad input is refused as a
//! whole, never turned into a partial result.

pub mod error;
pub mod gv100ad;
pub mod ozg;

pub use error::{ImportError, Result};
pub use gv100ad::Directory;
