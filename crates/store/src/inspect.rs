//! What the store reports about a model, read from its GGUF header only.

use std::path::Path;

use crate::error::{Result, StoreError};

/// Header facts about one model file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Summary {
    pub arch: Option<String>,
    pub params: u64,
    pub quant: String,
}

/// Validates the header and extracts a summary, without touching weights.
pub(crate) fn inspect(path: &Path) -> Result<Summary> {
    let file =
        augur_gguf::read_file(path).map_err(|source| StoreError::InvalidGguf { path: path.to_path_buf(), source })?;
    Ok(Summary { arch: file.arch().map(str::to_string), params: file.param_count(), quant: file.quant_label() })
}

/// Parameter count the way model cards write it: "1.54B", "494M", "12K".
pub fn human_params(n: u64) -> String {
    const UNITS: [(u64, &str); 4] = [(1_000_000_000_000, "T"), (1_000_000_000, "B"), (1_000_000, "M"), (1_000, "K")];
    for (scale, unit) in UNITS {
        if n >= scale {
            let v = n as f64 / scale as f64;
            // Three significant digits, as model cards do.
            let decimals = if v >= 100.0 {
                0
            } else if v >= 10.0 {
                1
            } else {
                2
            };
            return format!("{v:.decimals$}{unit}");
        }
    }
    n.to_string()
}

#[cfg(test)]
mod tests {
    use super::human_params;

    #[test]
    fn formats_like_model_cards() {
        assert_eq!(human_params(1_543_714_304), "1.54B");
        assert_eq!(human_params(494_032_768), "494M");
        assert_eq!(human_params(268_098_176), "268M");
        assert_eq!(human_params(12_345), "12.3K");
        assert_eq!(human_params(7), "7");
        assert_eq!(human_params(u64::MAX), "18446744T");
    }
}
