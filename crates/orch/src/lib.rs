//! Several models as one team.
//!
//! - [`config`]: the `[models.*]`, `[roles.*]`, `[routing]` and `[residency]`
//!   tables of augur's TOML config file, as written;
//! - [`resolve`]: their checks, into a [`TeamConfig`];
//! - [`route`]: which role answers a request (rules, then the front door's
//!   [`classify`] model);
//! - [`registry`]: the loaded backends, with hot and warm residency under a
//!   memory budget;
//! - [`remote`]: a role served by another OpenAI-compatible server;
//! - [`escalate`]: the checks an answer must pass before the next role in
//!   the chain is tried.

#![forbid(unsafe_code)]

pub mod classify;
pub mod config;
mod error;
pub mod escalate;
pub mod registry;
pub mod remote;
pub mod resolve;
pub mod route;

pub use error::OrchError;
pub use registry::{Lease, LoadState, Registry};
pub use remote::RemoteBackend;
pub use resolve::{check_files, ModelDef, RoleBackend, RoleDef, TeamConfig, AUTO, FRONTDOOR};
pub use route::{Classified, Classify, DecidedBy, Decision, RouteInput, Router};
