//! The rule that keeps secrets out of the desired-state repository (see
//! [`verbund_domain::secrets`]): the renderer writes no `Secret`, only `ExternalSecret`s
//! that the site resolves, and refuses any literal secret value in what it renders.

pub use verbund_domain::secrets::{find_literal_secret, looks_like_secret_key};
