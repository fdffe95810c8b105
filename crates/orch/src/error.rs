//! The crate's one error type.

use augur_runtime::RuntimeError;

/// Everything configuration, routing, residency and remote calls can fail at.
/// Config errors name the offending key path so a user can find it.
#[derive(Debug, thiserror::Error)]
pub enum OrchError {
    #[error("reading {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("TOML syntax: {0}")]
    Syntax(String),
    #[error("`{path}`: {message}")]
    Key { path: String, message: String },
    #[error("`{path}`: model `{model}` is not defined under [models] (defined: {known})")]
    MissingModel { path: String, model: String, known: String },
    #[error("`{path}`: role `{role}` is not defined under [roles] (defined: {known})")]
    UnknownRole { path: String, role: String, known: String },
    #[error("`{path}`: draft role `{draft}` (model `{draft_model}`) has a different vocabulary from `{target_model}`: {why}")]
    VocabMismatch { path: String, draft: String, draft_model: String, target_model: String, why: String },
    #[error("`{path}`: model source `{source_name}` cannot be opened: {message}")]
    Source { path: String, source_name: String, message: String },
    #[error("several problems:\n{}", .0.iter().map(|e| format!("  - {e}")).collect::<Vec<_>>().join("\n"))]
    Many(Vec<OrchError>),
    #[error("no role or model named `{0}`")]
    NoSuchTarget(String),
    #[error("model `{model}` needs {need} bytes but the residency budget is {budget} bytes")]
    OverBudget { model: String, need: u64, budget: u64 },
    #[error("model `{model}` is still loading after {secs} s; retry later")]
    LoadTimeout { model: String, secs: u64 },
    #[error("model `{model}` could not be loaded: {message}")]
    LoadFailed { model: String, message: String },
    #[error("no memory for model `{model}`: every loaded model is busy; retry later")]
    NoRoom { model: String },
    #[error("remote backend {url}: {message}")]
    Remote { url: String, message: String },
    #[error("classification failed: {0}")]
    Classify(String),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
}

impl OrchError {
    pub(crate) fn key(path: impl Into<String>, message: impl Into<String>) -> Self {
        OrchError::Key { path: path.into(), message: message.into() }
    }

    /// One error, or all of them together, or none.
    pub(crate) fn collect(mut errors: Vec<OrchError>) -> Result<(), OrchError> {
        match errors.len() {
            0 => Ok(()),
            1 => Err(errors.remove(0)),
            _ => Err(OrchError::Many(errors)),
        }
    }

    /// The individual problems (a `Many` flattened).
    pub fn problems(&self) -> Vec<&OrchError> {
        match self {
            OrchError::Many(v) => v.iter().collect(),
            e => vec![e],
        }
    }
}
