//! Any template text, rendered with a fixed conversation: an error is fine,
//! a crash, hang or runaway allocation is not (the limits must hold).
#![no_main]

use augur_template::{ChatMessage, ChatTemplate, Limits, RenderOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(source) = std::str::from_utf8(data) else { return };
    let Ok(t) = ChatTemplate::compile(source, Limits::default()) else { return };
    let msgs = [ChatMessage::new("system", "s"), ChatMessage::new("user", "hello")];
    let _ = t.render(&msgs, &RenderOptions { add_generation_prompt: true, ..Default::default() });
});
