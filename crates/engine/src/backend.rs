//! Process-wide llama.cpp initialisation and log capture.

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

fn echo_enabled() -> bool {
    static ECHO: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ECHO.get_or_init(|| std::env::var_os("AUGUR_LLAMA_LOG").is_some_and(|v| v == "1"))
}

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

/// llama.cpp's description of the CPU features it was built with.
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
        unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
    })
    .clone()
}
