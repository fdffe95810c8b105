//! Arbitrary bytes through the header reader: it must return, never panic,
//! and never allocate beyond what the input length justifies.
#![no_main]

use std::io::Cursor;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(f) = augur_gguf::parse(Cursor::new(data), data.len() as u64) {
        let _ = (
            f.quant_label(),
            f.param_count(),
            f.vocab_size(),
            f.block_count(),
        );
    }
});
