//! Shared by the integration tests: the example config and the model store.

#![allow(dead_code)]

use std::path::PathBuf;

use augur_orch::TeamConfig;
use augur_store::Store;

pub fn example_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/examples/augur.toml")
}

pub fn example() -> TeamConfig {
    TeamConfig::load(&example_path()).expect("the example config is valid")
}

pub fn store() -> Store {
    Store::open_default().expect("AUGUR_HOME points at the model store")
}

/// A catalogue model's file, pulled on first use.
pub fn model_path(name: &str) -> PathBuf {
    store().ensure(name, false).expect("model available")
}

pub fn resolver() -> impl Fn(&str) -> Result<PathBuf, String> {
    let s = store();
    move |src: &str| s.ensure(src, false).map_err(|e| e.to_string())
}
