//! Broken input gives `Error::Gguf` with a message naming the problem, through every entry point
//! (in-memory parse, push parser with and without a known size, file reader); never a panic.

use attend::gguf::{Event, Gguf, GgufFile, GgufStream, Value};
use attend::Error;

use crate::{reference_dir, Rng};

/// A hand-built GGUF, to get every field wrong on purpose.
struct Raw(Vec<u8>);

impl Raw {
    fn new(version: u32, n_tensors: u64, n_kv: u64) -> Raw {
        let mut r = Raw(b"GGUF".to_vec());
        r.u32(version).u64(n_tensors).u64(n_kv);
        r
    }
    fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }
    fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn str(&mut self, s: &str) -> &mut Self {
        self.u64(s.len() as u64);
        self.0.extend_from_slice(s.as_bytes());
        self
    }
    fn kv_u32(&mut self, key: &str, v: u32) -> &mut Self {
        self.str(key).u32(4).u32(v)
    }
    fn tensor(&mut self, name: &str, dims: &[u64], ty: u32, offset: u64) -> &mut Self {
        self.str(name).u32(dims.len() as u32);
        for &d in dims {
            self.u64(d);
        }
        self.u32(ty).u64(offset)
    }
    /// Appends `n` bytes (so that counts checked against the file size can fit).
    fn tail(&mut self, n: usize) -> &mut Self {
        self.0.resize(self.0.len() + n, 0);
        self
    }
    /// Pads to 32 and appends `n` data bytes.
    fn data(&mut self, n: usize) -> &mut Self {
        self.0.resize(self.0.len().div_ceil(32) * 32 + n, 0xAB);
        self
    }
}

/// Feeds a stream in 5-byte chunks; the first error from push or finish.
fn stream_result(bytes: &[u8], size: Option<u64>) -> Result<(), Error> {
    let mut s = GgufStream::with_file_size(size);
    for c in bytes.chunks(5) {
        s.push(c)?;
    }
    s.finish()
}

/// Every entry point refuses `bytes`; the in-memory parser's message contains `needle`.
fn refused(bytes: &[u8], needle: &str) {
    let e = Gguf::parse(bytes).expect_err(needle);
    assert!(matches!(e, Error::Gguf(_)), "{e:?}");
    let msg = e.to_string();
    assert!(msg.contains(needle), "expected '{needle}' in: {msg}");
    let e = stream_result(bytes, Some(bytes.len() as u64)).expect_err(needle);
    assert!(
        e.to_string().contains(needle),
        "stream with size: expected '{needle}' in: {e}"
    );
    assert!(
        stream_result(bytes, None).is_err(),
        "stream without size accepts ({needle})"
    );
    // Tests run in parallel: one file name per call.
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!(
        "attend-gguf-broken-{}-{n}.gguf",
        std::process::id()
    ));
    std::fs::write(&path, bytes).unwrap();
    let e = GgufFile::open(&path).err().expect(needle).to_string();
    assert!(e.contains(needle), "file: expected '{needle}' in: {e}");
    std::fs::remove_file(&path).unwrap();
}

const F32: u32 = 0;

#[test]
fn bad_preamble() {
    refused(b"GGUX\x03\0\0\0", "not a GGUF");
    refused(&Raw::new(1, 0, 0).0, "version 1");
    refused(&Raw::new(4, 0, 0).0, "unsupported GGUF version 4");
    refused(&Raw::new(3u32.swap_bytes(), 0, 0).0, "big-endian");
    refused(b"GGUF\x03\0", "file ends inside the header");
    refused(b"", "file ends inside the header");
}

#[test]
fn absurd_counts_and_lengths() {
    refused(&Raw::new(3, 0, u64::MAX).0, "metadata: count");
    refused(&Raw::new(3, 1 << 40, 0).0, "tensor infos: count");
    refused(&Raw::new(3, 0, 1).u64(u64::MAX).tail(64).0, "string length");
    refused(
        &Raw::new(3, 0, 1).str("k").u32(8).u64(1 << 40).tail(64).0,
        "string length",
    );
    let huge_array = Raw::new(3, 0, 1)
        .str("k")
        .u32(9)
        .u32(4)
        .u64(1 << 50)
        .tail(64)
        .0
        .clone();
    refused(&huge_array, "array of 1125899906842624 items");
    // Not absurd, but more than the file holds.
    refused(
        &Raw::new(3, 0, 1).str("k").u32(9).u32(4).u64(1000).u32(1).0,
        "cannot fit",
    );
}

#[test]
fn bad_metadata_values() {
    refused(
        &Raw::new(3, 0, 1).str("k").u32(13).0,
        "unknown value type 13",
    );
    refused(
        &Raw::new(3, 0, 1).str("k").u32(9).u32(77).u64(1).0,
        "array of unknown value type 77",
    );
    refused(&Raw::new(3, 0, 1).str("k").u32(7).u8(2).0, "bool byte 2");
    let mut bad_utf8 = Raw::new(3, 0, 1);
    bad_utf8.u64(2).u8(0xC3).u8(0x28).u32(4).u32(0);
    refused(&bad_utf8.0, "UTF-8");
    let mut deep = Raw::new(3, 0, 1);
    deep.str("k").u32(9);
    for _ in 0..20 {
        deep.u32(9).u64(1);
    }
    deep.u32(0).u64(0);
    refused(&deep.0, "nested deeper");
    refused(
        &Raw::new(3, 0, 2).kv_u32("k", 1).kv_u32("k", 2).0,
        "appears twice",
    );
    refused(
        &Raw::new(3, 0, 1).str("general.alignment").u32(4).u32(0).0,
        "power of two",
    );
    refused(
        &Raw::new(3, 0, 1).kv_u32("general.alignment", 48).0,
        "power of two",
    );
}

#[test]
fn bad_tensor_infos() {
    let e = Gguf::parse(
        Raw::new(3, 1, 0)
            .tensor("blk.0.w", &[32], 99, 0)
            .data(64)
            .0
            .as_slice(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("99") && e.contains("blk.0.w"), "{e}");
    refused(
        Raw::new(3, 1, 0)
            .tensor("w", &[32], 99, 0)
            .data(64)
            .0
            .as_slice(),
        "unknown type id 99",
    );
    refused(
        &Raw::new(3, 1, 0).tensor("w", &[1, 1, 1, 1, 1], F32, 0).0,
        "5 dimensions",
    );
    refused(
        &Raw::new(3, 1, 0).tensor("w", &[1 << 40, 1 << 40], F32, 0).0,
        "overflow",
    );
    refused(
        &Raw::new(3, 1, 0).tensor("w", &[u64::MAX / 2], F32, 0).0,
        "overflow",
    );
    refused(
        &Raw::new(3, 1, 0).tensor("w", &[33], 2, 0).data(64).0,
        "block length 32",
    );
    refused(
        &Raw::new(3, 1, 0).tensor("w", &[16], F32, 0).data(63).0,
        "past the end of the file",
    );
    refused(
        &Raw::new(3, 1, 0)
            .tensor("w", &[16], F32, 1 << 62)
            .data(64)
            .0,
        "past the end",
    );
    refused(
        &Raw::new(3, 1, 0)
            .tensor("w", &[16], F32, u64::MAX - 31)
            .data(64)
            .0,
        "overflows",
    );
    refused(
        &Raw::new(3, 1, 0).tensor("w", &[8], F32, 4).data(64).0,
        "not a multiple of the alignment",
    );
    let overlap = Raw::new(3, 2, 0)
        .tensor("a", &[16], F32, 0)
        .tensor("b", &[16], F32, 32)
        .data(96)
        .0
        .clone();
    refused(&overlap, "overlap");
    let twice = Raw::new(3, 2, 0)
        .tensor("a", &[8], F32, 0)
        .tensor("a", &[8], F32, 32)
        .data(64)
        .0
        .clone();
    refused(&twice, "appears twice");
}

#[test]
fn valid_edge_cases_are_accepted() {
    // No tensors, no metadata; an empty array; a zero-sized tensor; tensors out of file order.
    let g = Gguf::parse(&Raw::new(2, 0, 0).0).unwrap();
    assert_eq!((g.version, g.alignment, g.data_offsets[0]), (2, 32, 32));
    let g = Gguf::parse(&Raw::new(3, 0, 1).str("k").u32(9).u32(8).u64(0).0).unwrap();
    assert_eq!(g.get("k"), Some(&Value::Array(vec![])));
    let mut r = Raw::new(3, 3, 0);
    r.tensor("late", &[8], F32, 32)
        .tensor("empty", &[0, 4], F32, 64)
        .tensor("early", &[8], F32, 0);
    let bytes = r.data(64).0.clone();
    let g = Gguf::parse(&bytes).unwrap();
    let mut s = GgufStream::new();
    let order: Vec<usize> = s
        .push(&bytes)
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            Event::TensorData { tensor, .. } => Some(*tensor),
            _ => None,
        })
        .collect();
    assert_eq!(order, [2, 0], "file order, the empty tensor skipped");
    assert!(s.is_done());
    assert_eq!(g.tensor("empty").unwrap().byte_size(), 0);
}

#[test]
fn every_truncation_is_refused() {
    let bytes = std::fs::read(reference_dir().join("all_types.gguf")).unwrap();
    let g = Gguf::parse(&bytes).unwrap();
    let end = g
        .tensors
        .iter()
        .map(|t| g.data_offsets[0] + t.offset + t.byte_size())
        .max()
        .unwrap();
    for cut in 0..end as usize {
        let e = Gguf::parse(&bytes[..cut]).expect_err("truncated");
        let msg = e.to_string();
        let named = ["file ends", "cannot fit", "impossible", "past the end"];
        assert!(
            matches!(e, Error::Gguf(_)) && named.iter().any(|n| msg.contains(n)),
            "cut {cut}: {msg}"
        );
        assert!(
            stream_result(&bytes[..cut], None).is_err(),
            "stream, cut {cut}"
        );
    }
    // A truncated file on disk, and reads outside a file's tensors.
    let path = std::env::temp_dir().join(format!("attend-gguf-trunc-{}.gguf", std::process::id()));
    std::fs::write(&path, &bytes[..end as usize - 1]).unwrap();
    assert!(GgufFile::open(&path).is_err());
    std::fs::write(&path, &bytes).unwrap();
    let f = GgufFile::open(&path).unwrap();
    let mut t = f.gguf.tensors[0].clone();
    t.shard = 5;
    assert!(f.read_tensor(&t).is_err());
    t.shard = 0;
    t.offset = 1 << 40;
    assert!(f.read_tensor(&t).is_err());
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn mutated_headers_never_panic() {
    let bytes = std::fs::read(reference_dir().join("all_types.gguf")).unwrap();
    let header = Gguf::parse(&bytes).unwrap().data_offsets[0] as usize;
    let mut accepted = 0;
    for pos in 0..header {
        let b = bytes[pos];
        for v in [0x00, 0xFF, b ^ 0x01, b ^ 0x80, b.wrapping_add(1), b ^ 0x10] {
            let mut m = bytes.clone();
            m[pos] = v;
            accepted += Gguf::parse(&m).is_ok() as usize;
            let _ = stream_result(&m, None);
        }
    }
    // Several random bytes at once, then cut somewhere.
    let mut rng = Rng::new(11);
    for _ in 0..3000 {
        let mut m = bytes.clone();
        for _ in 0..rng.range(1, 8) {
            let p = rng.range(0, header - 1);
            m[p] = rng.next_u64() as u8;
        }
        m.truncate(rng.range(0, m.len()));
        accepted += Gguf::parse(&m).is_ok() as usize;
        let _ = stream_result(&m, Some(m.len() as u64));
    }
    assert!(
        accepted > 0,
        "some mutations (string contents, values) stay valid"
    );
}

/// Without a known size nothing bounds a tensor's offset: data offset + offset + size must not
/// overflow (it panicked in debug builds and wrapped on wasm32, handing header bytes out as data).
#[test]
fn offset_near_u64_max_is_refused_by_the_stream() {
    let bytes = Raw::new(3, 1, 0)
        .tensor("t", &[8], F32, u64::MAX - 63)
        .data(0)
        .0
        .clone();
    let e = stream_result(&bytes, None).expect_err("offset overflows");
    assert!(e.to_string().contains("overflows"), "{e}");
    let e = stream_result(&bytes, Some(bytes.len() as u64)).expect_err("past the end");
    assert!(e.to_string().contains("past the end"), "{e}");
}

/// A size learned after the first bytes (Content-Length after a cached prefix was replayed)
/// still refuses a tensor past the end before its header is handed out, and one learned after
/// the header refuses the tensors still to come.
#[test]
fn size_learned_late_is_enforced() {
    let bytes = Raw::new(3, 1, 0)
        .tensor("t", &[1 << 20], F32, 0)
        .data(64)
        .0
        .clone();
    let size = bytes.len() as u64;
    let mut s = GgufStream::new();
    s.push(&bytes[..3]).unwrap();
    s.set_file_size(size).unwrap();
    let e = s.push(&bytes[3..]).expect_err("tensor past the end");
    assert!(e.to_string().contains("past the end"), "{e}");

    // Header complete before the size is known: the check comes with the size.
    let header_end = bytes.len() - 64;
    let mut s = GgufStream::new();
    let events = s.push(&bytes[..header_end]).unwrap();
    assert!(matches!(events[0], Event::Header(_)));
    let e = s.set_file_size(size).expect_err("tensor past the end");
    assert!(e.to_string().contains("past the end"), "{e}");

    // A size smaller than what already arrived, or one that changes, is refused too.
    let mut s = GgufStream::new();
    s.push(&bytes[..10]).unwrap();
    assert!(s.set_file_size(5).is_err());
    s.set_file_size(size).unwrap();
    assert!(s.set_file_size(size + 1).is_err());
}
