//! Hard limits applied to untrusted templates.

use std::time::Duration;

/// Hard limits for compiling and rendering one chat template.
///
/// The defaults are far above what real model templates need (1-10 KB of
/// source, nesting below 20, a few thousand instructions per render) yet
/// small enough that a hostile template cannot exhaust memory or time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted template source.
    pub max_source_bytes: usize,
    /// Deepest nesting of blocks plus brackets, checked before parsing.
    pub max_nesting: usize,
    /// Most operators/tokens inside a single `{{ }}` / `{% %}` tag; long
    /// operator chains become deep syntax trees, so this bounds recursion too.
    pub max_expression_tokens: usize,
    /// Instructions the engine may execute in one render.
    pub fuel: u64,
    /// Largest rendered output (also bounds captured `{% set %}` blocks).
    pub max_output_bytes: usize,
    /// Largest single string any operation may produce.
    pub max_string_bytes: usize,
    /// Most items a list produced by an operation may hold.
    pub max_list_items: usize,
    /// Total bytes all string/list-producing operations may allocate in one
    /// render (cumulative, so it also bounds what is alive at any time).
    pub max_alloc_bytes: usize,
    /// Deepest macro / recursive-loop call chain.
    pub max_recursion: usize,
    /// Wall-clock budget for one render.
    pub timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_source_bytes: 256 * 1024,
            max_nesting: 64,
            max_expression_tokens: 2048,
            fuel: 10_000_000,
            max_output_bytes: 16 * 1024 * 1024,
            max_string_bytes: 16 * 1024 * 1024,
            max_list_items: 100_000,
            max_alloc_bytes: 256 * 1024 * 1024,
            max_recursion: 100,
            timeout: Duration::from_secs(2),
        }
    }
}
