//! Process-wide llama.cpp initialisation and log capture.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::ffi::{c_char, c_void, CStr};
use std::sync::{Mutex, Once};

use llama_cpp_sys_2 as sys;

static INIT: Once = Once::new();
static RECENT: Mutex<VecDeque<String>> = Mutex::new(VecDeque::new());
const RECENT_LINES: usize = 16;

/// Initialise llama.cpp once per process. Its log goes to an in-memory ring
/// (so load failures can quote it) and to stderr only with `AUGUR_LLAMA_LOG=1`.
pub fn init() {
    INIT.call_once(|| {
        // SAFETY: called once, before any other llama.cpp call of this crate;
        // the callback is a plain function valid for the whole process.
        unsafe {
            sys::llama_backend_init();
            sys::llama_log_set(Some(log_callback), std::ptr::null_mut());
        }
    });
}

/// The environment switch of llama.cpp's tiled K-quant matmul. Left as the
/// user sets it: off, prompt prefixes are reusable in finer grains on the
/// AMD machine, but tree verification lost exactness in
/// `runtime/tests/kv_consistency.rs` (docs/ARCHITECTURE.md, "Prefix reuse").
const TILED_MM: &str = "GGML_CPU_TILED_MM";

fn echo_enabled() -> bool {
    static ECHO: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ECHO.get_or_init(|| std::env::var_os("AUGUR_LLAMA_LOG").is_some_and(|v| v == "1"))
}

// SAFETY: llama.cpp calls this with a NUL-terminated string or null, from
// any thread; it reads only that string and thread-safe state.
unsafe extern "C" fn log_callback(level: sys::ggml_log_level, text: *const c_char, _: *mut c_void) {
    if text.is_null() {
        return;
    }
    // SAFETY: llama.cpp passes a NUL-terminated string valid for this call.
    let line = unsafe { CStr::from_ptr(text) }.to_string_lossy();
    if echo_enabled() {
        eprint!("{line}");
    }
    if level == sys::GGML_LOG_LEVEL_ERROR || level == sys::GGML_LOG_LEVEL_WARN {
        if let Ok(mut recent) = RECENT.lock() {
            if recent.len() == RECENT_LINES {
                recent.pop_front();
            }
            recent.push_back(line.trim_end().to_string());
        }
    }
    if level == sys::GGML_LOG_LEVEL_INFO {
        note_load_info(&line);
    }
}

/// Hyperparameters as llama.cpp loaded them, after metadata overrides.
/// llama.h has no getter for these, and `llama_model_meta_val_str` returns
/// the file's value, not the overridden one; so they are read from the
/// `print_info: KEY = VALUE` lines `llama_model_load` logs
/// (`llama_model::print_info` in llama-model.cpp). `None` when the line was
/// not logged, e.g. if a future llama.cpp renames it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct LoadReport {
    pub n_expert: Option<u32>,
    /// Layer 0's count (llama.cpp prints `n_expert_used(0)`).
    pub n_expert_used: Option<u32>,
}

thread_local! {
    /// The report of the load running on this thread, if one is being
    /// captured. Thread-local because llama.cpp logs from the thread that
    /// calls `llama_model_load_from_file`, so loads on other threads (which
    /// log at the same time through the same callback) cannot mix in.
    static LOAD_REPORT: RefCell<Option<LoadReport>> = const { RefCell::new(None) };
}

/// Runs `load` while capturing the hyperparameters llama.cpp logs for it.
pub(crate) fn capture_load<T>(load: impl FnOnce() -> T) -> (T, LoadReport) {
    init();
    LOAD_REPORT.with(|r| *r.borrow_mut() = Some(LoadReport::default()));
    let out = load();
    let report = LOAD_REPORT.with(|r| r.borrow_mut().take()).unwrap_or_default();
    (out, report)
}

/// Called from the C log callback, so it must not panic: `try_with` and
/// `try_borrow_mut` instead of the panicking accessors.
fn note_load_info(line: &str) {
    let Some((key, value)) = parse_info_line(line) else { return };
    let _ = LOAD_REPORT.try_with(|r| {
        let Ok(mut slot) = r.try_borrow_mut() else { return };
        let Some(report) = slot.as_mut() else { return };
        match key {
            "n_expert" => report.n_expert = Some(value),
            "n_expert_used" => report.n_expert_used = Some(value),
            _ => {}
        }
    });
}

/// `print_info: n_expert_used         = 8` -> ("n_expert_used", 8). Lines
/// whose value is not a plain number (per-layer arrays, floats) give None.
fn parse_info_line(line: &str) -> Option<(&str, u32)> {
    let (key, value) = line.strip_prefix("print_info: ")?.split_once('=')?;
    Some((key.trim(), value.trim().parse().ok()?))
}

/// Clear the captured log before an operation whose failure we want to explain.
pub(crate) fn clear_recent() {
    if let Ok(mut recent) = RECENT.lock() {
        recent.clear();
    }
}

/// The warnings and errors llama.cpp logged since the last `clear_recent`.
pub(crate) fn recent_errors() -> String {
    match RECENT.lock() {
        Ok(recent) if !recent.is_empty() => recent.iter().cloned().collect::<Vec<_>>().join("; "),
        _ => "no detail logged".to_string(),
    }
}

/// llama.cpp's description of the CPU features it was built with, and the
/// kernel switches set for it (cached measurements depend on both).
pub fn system_info() -> String {
    static INFO: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    INFO.get_or_init(|| {
        init();
        // SAFETY: llama.cpp rebuilds a static std::string on every call, so
        // two threads calling it at once corrupt the heap; the OnceLock makes
        // this the only call. The pointer is NUL-terminated.
        let p = unsafe { sys::llama_print_system_info() };
        if p.is_null() {
            return String::new();
        }
        // SAFETY: non-null and NUL-terminated, see above.
        let info = unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned();
        let tiled = std::env::var(TILED_MM).unwrap_or_default();
        format!("{info} | {TILED_MM} = {tiled}")
    })
    .clone()
}

#[cfg(test)]
mod tests {
    use super::parse_info_line;

    #[test]
    fn info_lines_parse_to_numbers_only() {
        assert_eq!(parse_info_line("print_info: n_expert_used         = 8\n"), Some(("n_expert_used", 8)));
        assert_eq!(parse_info_line("print_info: n_expert              = 64\n"), Some(("n_expert", 64)));
        assert_eq!(parse_info_line("print_info: n_head                = [4, 8]\n"), None);
        assert_eq!(parse_info_line("print_info: f_norm_eps            = 0.0e+00\n"), None);
        assert_eq!(parse_info_line("load_tensors: n_expert_used = 8\n"), None);
    }
}
