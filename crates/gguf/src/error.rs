//! The crate's error type. `GgufError` is the one top-level enum; the
//! sub-enums keep container, model and override failures apart so callers can
//! match on the stage that refused a file.

use std::io;
use std::path::PathBuf;

/// Every failure this crate reports.
#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    /// The model file does not exist.
    #[error("model file not found: {}", path.display())]
    NotFound { path: PathBuf },
    /// The model file exists but could not be opened or measured.
    #[error("cannot open model file {}: {source}", path.display())]
    Open { path: PathBuf, source: io::Error },
    /// The file was opened but its GGUF header is invalid.
    #[error("invalid GGUF file {}: {source}", path.display())]
    InFile { path: PathBuf, source: HeaderError },
    /// Header error from [`crate::parse`], where no path is known.
    #[error(transparent)]
    Header(#[from] HeaderError),
    /// Model-level refusal from [`crate::validate_model`].
    #[error(transparent)]
    Model(#[from] ModelError),
    /// A `--override-kv` style string could not be parsed.
    #[error(transparent)]
    Override(#[from] OverrideError),
}

impl GgufError {
    /// The header-level cause, whether or not a path was attached.
    pub fn header(&self) -> Option<&HeaderError> {
        match self {
            GgufError::InFile { source, .. } | GgufError::Header(source) => Some(source),
            _ => None,
        }
    }
}

/// The container (header, metadata, tensor table) is malformed.
#[derive(Debug, thiserror::Error)]
pub enum HeaderError {
    #[error("read error at byte {offset}: {source}")]
    Io { offset: u64, source: io::Error },
    #[error("file truncated: {what} at byte {offset} needs {need} bytes but only {remaining} remain")]
    Truncated { what: String, offset: u64, need: u64, remaining: u64 },
    #[error("not a GGUF file: magic bytes are {found:02x?} ({}), expected \"GGUF\"", String::from_utf8_lossy(found))]
    BadMagic { found: [u8; 4] },
    #[error("unsupported GGUF version {version}: {reason}")]
    Version { version: u32, reason: &'static str },
    #[error("implausible {what} count {count}: the remaining {remaining} bytes can hold at most {max} (truncated or corrupt file)")]
    ImplausibleCount { what: &'static str, count: u64, remaining: u64, max: u64 },
    #[error("{what}: string length {len} exceeds the {remaining} bytes left in the file")]
    StringPastEof { what: String, len: u64, remaining: u64 },
    #[error("{what}: string length {len} exceeds the limit of {max} bytes")]
    StringTooLong { what: String, len: u64, max: u64 },
    #[error("{what}: string is not valid UTF-8")]
    InvalidUtf8 { what: String },
    #[error("metadata key #{index} is empty")]
    EmptyKey { index: u64 },
    #[error("duplicate metadata key '{key}'")]
    DuplicateKey { key: String },
    #[error("metadata key '{key}' has unknown value type {type_id}")]
    UnknownValueType { key: String, type_id: u32 },
    #[error("metadata key '{key}' is a nested array, which GGUF loaders refuse")]
    NestedArray { key: String },
    #[error("metadata key '{key}': array of {len} elements needs at least {need} bytes but only {remaining} remain")]
    ArrayPastEof { key: String, len: u64, need: u64, remaining: u64 },
    #[error("metadata key '{key}': bool value byte is {byte}, expected 0 or 1")]
    BadBool { key: String, byte: u8 },
    #[error("general.alignment must be a u32, found {found}")]
    AlignmentType { found: &'static str },
    #[error("general.alignment = {value} is not a nonzero power of two")]
    BadAlignment { value: u32 },
    #[error("duplicate tensor name '{name}'")]
    DuplicateTensor { name: String },
    #[error("tensor name '{name}' is {len} bytes, the limit is {max}")]
    TensorNameTooLong { name: String, len: usize, max: usize },
    #[error("tensor '{name}' has {n_dims} dimensions, expected 1 to 4")]
    BadDimCount { name: String, n_dims: u32 },
    #[error("tensor '{name}' dimension {index} is {value}, expected 1 to 2^63-1")]
    BadDim { name: String, index: usize, value: u64 },
    #[error("tensor '{name}' shape {dims:?} has more elements than fit in 63 bits")]
    ElementOverflow { name: String, dims: Vec<u64> },
    #[error("tensor '{name}' has unknown ggml type {type_id}")]
    UnknownType { name: String, type_id: u32 },
    #[error("tensor '{name}' uses ggml type {type_id}, whose support was removed from GGUF files")]
    RemovedType { name: String, type_id: u32 },
    #[error(
        "tensor '{name}' of type {type_name} has rows of {row} elements, not a multiple of the block size {block}"
    )]
    RowNotBlockMultiple { name: String, type_name: &'static str, row: u64, block: u64 },
    #[error("tensor '{name}' byte size overflows")]
    SizeOverflow { name: String },
    #[error("tensor '{name}' offset {offset} is not a multiple of the alignment {alignment}")]
    MisalignedOffset { name: String, offset: u64, alignment: u64 },
    #[error("tensor '{name}' at offset {offset} overlaps the previous tensor, which ends at {expected}")]
    TensorOverlap { name: String, offset: u64, expected: u64 },
    #[error("tensor '{name}' at offset {offset} leaves a gap: llama.cpp requires it at {expected}")]
    TensorGap { name: String, offset: u64, expected: u64 },
    #[error("tensor '{name}' data ends at byte {end}, past the end of the {file_size}-byte file")]
    TensorPastEof { name: String, end: u64, file_size: u64 },
    #[error("tensor data section starts at byte {data_offset}, past the end of the {file_size}-byte file")]
    DataPastEof { data_offset: u64, file_size: u64 },
}

/// The container is valid but the model metadata would mislead the loader.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("required metadata key '{key}' is missing")]
    MissingKey { key: String },
    #[error("metadata key '{key}' has type {found}, expected {expected}")]
    WrongType { key: String, expected: &'static str, found: String },
    #[error("general.architecture = '{arch}' is not an architecture this llama.cpp supports")]
    UnknownArch { arch: String },
    #[error("{key} = {value}: {reason}")]
    Invalid { key: String, value: String, reason: String },
}

/// A metadata override string is malformed.
#[derive(Debug, thiserror::Error)]
pub enum OverrideError {
    #[error("override '{input}': expected KEY=TYPE:VALUE")]
    Syntax { input: String },
    #[error("override key '{key}': {reason}")]
    BadKey { key: String, reason: &'static str },
    #[error("override '{key}': unknown type '{ty}', expected int, float, bool or str")]
    UnknownType { key: String, ty: String },
    #[error("override '{key}': value '{value}' is not a valid {ty}: {reason}")]
    BadValue { key: String, ty: &'static str, value: String, reason: &'static str },
}
