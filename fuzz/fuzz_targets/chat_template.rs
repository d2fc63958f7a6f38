//! Chat template compilation and rendering on arbitrary template text and message content (split
//! at the first NUL byte): an error or a prompt, never a panic, a hang or a blow-up, and within
//! the output limit.
#![no_main]
use attend::chat::{ChatTemplate, Message, MAX_RENDER_BYTES};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (src, content) = text.split_once('\0').unwrap_or((&text, "hello"));
    let Ok(t) = ChatTemplate::new(src, "<s>", "</s>") else {
        return;
    };
    let conv = [
        Message::system("sys"),
        Message::user(content),
        Message::assistant("ok"),
    ];
    if let Ok(out) = t.render(&conv, true) {
        assert!(out.len() <= MAX_RENDER_BYTES);
    }
});
