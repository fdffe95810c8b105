//! Arbitrary bytes through the reader and then the model validator. Seeding
//! the corpus with `augur_gguf::hostile::variants()` and the tiny llama makes
//! the fuzzer reach the validator quickly.
#![no_main]

use std::io::Cursor;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(f) = augur_gguf::parse(Cursor::new(data), data.len() as u64) {
        let _ = augur_gguf::validate_model(&f, &[]);
    }
});
