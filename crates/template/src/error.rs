//! The single error type of this crate.

/// Why a chat template could not be compiled or rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// The template text is not valid jinja.
    #[error("chat template syntax error: {0}; fix the template or override it with a known-good one")]
    Syntax(String),

    /// The template exceeded one of the hard limits in [`crate::Limits`].
    #[error(
        "chat template exceeded the {limit} limit ({value} > {max}); the template is \
         hostile or broken, override it, or raise the limit if it is legitimate"
    )]
    OverLimit {
        /// Which limit tripped (the `Limits` field name).
        limit: &'static str,
        /// The observed value (at least; counting may stop early).
        value: u64,
        /// The configured maximum.
        max: u64,
    },

    /// The template itself called `raise_exception(message)`.
    #[error("chat template raised an exception: {0}")]
    Raised(String),

    /// Any other failure while rendering (type errors, unknown filters...).
    #[error("chat template failed to render: {0}; the template may not support this conversation")]
    Render(String),
}

impl TemplateError {
    pub(crate) fn over(limit: &'static str, value: usize, max: usize) -> Self {
        let wide = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        TemplateError::OverLimit { limit, value: wide(value), max: wide(max) }
    }
}
