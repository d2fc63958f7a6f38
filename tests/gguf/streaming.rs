//! The push parser gives the same header as the file reader and byte-identical tensor data, for
//! any chunking (header spread over many tiny chunks, tensors cut anywhere, empty chunks).

use std::io::Read;

use attend::gguf::{Event, Gguf, GgufFile, GgufStream};

use crate::{document, model, reference_dir, Fnv, Rng, SMOL};

/// Per-tensor running checksum and how many bytes arrived, checking order and contiguity.
struct Sink {
    header: Option<Gguf>,
    sums: Vec<(Fnv, u64)>,
    done: usize,
}

impl Sink {
    fn new() -> Sink {
        Sink {
            header: None,
            sums: Vec::new(),
            done: 0,
        }
    }
    fn take(&mut self, events: Vec<Event>) {
        for ev in events {
            assert_eq!(self.done, 0, "no events after Done");
            match ev {
                Event::Header(g) => {
                    assert!(self.header.is_none(), "one header");
                    self.sums = vec![(Fnv::new(), 0); g.tensors.len()];
                    self.header = Some(g);
                }
                Event::TensorData {
                    tensor,
                    offset,
                    bytes,
                } => {
                    let (h, got) = &mut self.sums[tensor];
                    assert_eq!(offset, *got, "tensor {tensor}: pieces in order, no gaps");
                    assert!(!bytes.is_empty());
                    h.update(bytes);
                    *got += bytes.len() as u64;
                }
                Event::Done => self.done += 1,
            }
        }
    }
}

#[test]
fn smollm2_streamed_in_random_chunks_equals_file_reads() {
    let path = model(SMOL);
    let file = GgufFile::open(&path).unwrap();
    let size = std::fs::metadata(&path).unwrap().len();
    for (seed, known_size) in [(1u64, false), (2, true)] {
        let mut rng = Rng::new(seed);
        let mut stream = GgufStream::with_file_size(known_size.then_some(size));
        let mut sink = Sink::new();
        let mut f = std::fs::File::open(&path).unwrap();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            // Tiny chunks through the header (1.7 MB here), larger ones after, some empty.
            let n = match stream.received() {
                r if r < 2_000_000 => rng.range(0, if seed == 1 { 97 } else { 4096 }),
                _ => rng.range(0, buf.len()),
            };
            let got = f.read(&mut buf[..n]).unwrap();
            if got == 0 && n > 0 {
                break;
            }
            sink.take(stream.push(&buf[..got]).unwrap());
            // Only an unfinished header item (here < 1 KB: the chat template) plus one chunk.
            assert!(
                stream.buffered() <= 1024 + got,
                "{} bytes buffered",
                stream.buffered()
            );
        }
        stream.finish().unwrap();
        assert_eq!(sink.done, 1);
        let g = sink.header.unwrap();
        assert_eq!(document(&g), document(&file.gguf));
        assert_eq!(g.tensors, file.gguf.tensors);
        for (t, (h, got)) in g.tensors.iter().zip(&sink.sums) {
            assert_eq!(*got, t.byte_size(), "{}: all bytes", t.name);
            let mut want = Fnv::new();
            want.update(&file.read_tensor(t).unwrap());
            assert_eq!(*h, want, "{}: same bytes", t.name);
        }
    }
}

#[test]
fn byte_by_byte_and_whole_file_give_the_same_events() {
    let bytes = std::fs::read(reference_dir().join("all_types.gguf")).unwrap();
    let g = Gguf::parse(&bytes).unwrap();
    for chunk in [1, 2, 3, 7, 64, 100, bytes.len()] {
        let mut stream = GgufStream::new();
        let mut sink = Sink::new();
        let mut data: Vec<Vec<u8>> = vec![Vec::new(); g.tensors.len()];
        for c in bytes.chunks(chunk) {
            let events = stream.push(c).unwrap();
            for ev in &events {
                if let Event::TensorData { tensor, bytes, .. } = ev {
                    data[*tensor].extend_from_slice(bytes);
                }
            }
            sink.take(events);
        }
        stream.finish().unwrap();
        assert_eq!(sink.done, 1, "chunk {chunk}");
        assert_eq!(document(&sink.header.unwrap()), document(&g));
        for (t, d) in g.tensors.iter().zip(&data) {
            let start = (g.data_offsets[0] + t.offset) as usize;
            assert_eq!(
                d,
                &bytes[start..start + t.byte_size() as usize],
                "chunk {chunk}: {}",
                t.name
            );
        }
        // Trailing bytes after Done are ignored.
        assert!(stream.push(b"trailing").unwrap().is_empty());
    }
}

#[test]
fn truncated_stream_is_an_error_at_finish() {
    let bytes = std::fs::read(reference_dir().join("all_types.gguf")).unwrap();
    let g = Gguf::parse(&bytes).unwrap();
    let end = g
        .tensors
        .iter()
        .map(|t| g.data_offsets[0] + t.offset + t.byte_size())
        .max()
        .unwrap();
    for cut in [0, 3, 10, 300, 895, 900, end as usize - 1] {
        let mut stream = GgufStream::new();
        stream.push(&bytes[..cut]).unwrap();
        let e = stream.finish().unwrap_err().to_string();
        assert!(e.contains("file ends"), "cut {cut}: {e}");
    }
    // With the size announced, a longer stream is refused.
    let mut stream = GgufStream::with_file_size(Some(100));
    assert!(stream.push(&bytes[..101]).is_err());
}
