//! The whole-buffer GGUF parser on arbitrary bytes: an error or a header, never a panic, and a
//! header only when every tensor lies inside the buffer.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(g) = attend::gguf::Gguf::parse(data) {
        for t in &g.tensors {
            let _ = t.byte_size();
        }
    }
});
