//! The streaming GGUF parser (what the browser feeds from the network) with random chunk sizes
//! and a file size known from the start, announced late, or never. The first two bytes choose
//! the chunking and when the size is told; tensor pieces must arrive in order and add up to
//! each tensor's size.
#![no_main]
use attend::gguf::{Event, GgufStream};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let [a, b, data @ ..] = input else { return };
    let chunk = 1 + (*a as usize) * 7;
    let size_mode = b % 3;
    let mut s = match size_mode {
        0 => GgufStream::with_file_size(Some(data.len() as u64)),
        _ => GgufStream::new(),
    };
    let mut got: Vec<u64> = Vec::new();
    let mut sizes: Vec<u64> = Vec::new();
    let mut pos = 0;
    let mut n = 0usize;
    while pos < data.len() {
        if size_mode == 1 && n == 2 && s.set_file_size(data.len() as u64).is_err() {
            return;
        }
        // Vary the chunk size as a network does.
        let len = (chunk + (n * 13) % 31).min(data.len() - pos);
        n += 1;
        let Ok(events) = s.push(&data[pos..pos + len]) else {
            return;
        };
        for ev in events {
            match ev {
                Event::Header(g) => {
                    sizes = g.tensors.iter().map(|t| t.byte_size()).collect();
                    got = vec![0; sizes.len()];
                }
                Event::TensorData {
                    tensor,
                    offset,
                    bytes,
                } => {
                    assert_eq!(offset, got[tensor], "pieces in order");
                    got[tensor] += bytes.len() as u64;
                    assert!(
                        got[tensor] <= sizes[tensor],
                        "no more than the tensor's size"
                    );
                }
                Event::Done => {}
            }
        }
        pos += len;
    }
    if s.finish().is_ok() {
        assert_eq!(got, sizes, "a finished stream delivered every tensor whole");
    }
});
