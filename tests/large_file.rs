//! Files past 2 GiB (issue #9 item 6), natively. The tiny random llama is written after a
//! 2.25 GiB tensor it does not read, so every tensor the model reads starts past byte 2^31: the
//! file must load (whole, and as split shards) and give bit for bit the tiny model's own logits.
//! The padding is zeros, written as a hole (`GgufWriter::write_file`), so the files cost no disk;
//! they are left in `$ATTEND_CACHE/large/` for the browser's long test (tests/e2e/large/).
#![cfg(not(target_arch = "wasm32"))]

use attend::engine::{Engine, LoadOptions};
use attend::gguf::{GgufFile, GgufWriter};
use attend::quant::GgmlType;
use std::path::{Path, PathBuf};

#[path = "support/cache.rs"]
mod cache;

/// Bytes of the unread tensor in front of the model's own.
const PADDING: u64 = 9 << 28; // 2.25 GiB

fn tiny() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/reference/tiny-llama-spm.gguf")
}

/// tiny-llama-spm with the padding tensor first: the big file, and its shards (the padding alone
/// in the first), in `$ATTEND_CACHE/large/`.
fn write_large() -> (PathBuf, Vec<PathBuf>) {
    let dir = cache::cache_dir().join("large");
    std::fs::create_dir_all(&dir).unwrap();
    let file = GgufFile::open(tiny()).unwrap();
    let g = file.header();
    let mut w = GgufWriter::with_metadata_of(g).unwrap();
    // vec! of zeros is a lazily mapped allocation: no 2.25 GiB is touched or copied.
    w.add_tensor(
        "padding",
        &[PADDING / 4],
        GgmlType::F32,
        vec![0; PADDING as usize],
    )
    .unwrap();
    for t in &g.tensors {
        w.add_tensor(&t.name, &t.dims, t.ty, file.read_tensor(t).unwrap())
            .unwrap();
    }
    let big = dir.join("tiny-llama-past-2gib.gguf");
    w.write_file(&big).unwrap();
    for old in std::fs::read_dir(&dir).unwrap() {
        let p = old.unwrap().path();
        if p.to_string_lossy().contains("-of-") {
            std::fs::remove_file(p).unwrap();
        }
    }
    let shards = w.write_split(&dir, "tiny-llama-past-2gib", 1 + 9).unwrap();
    (big, shards)
}

fn logits(path: &Path) -> Vec<Vec<f32>> {
    let opts = LoadOptions {
        context: Some(64),
        ..Default::default()
    };
    let mut e = pollster::block_on(Engine::load_file(path, &opts)).unwrap();
    pollster::block_on(e.score(&[1, 45, 496, 173, 17, 43, 172, 97])).unwrap()
}

#[test]
fn a_model_past_2_gib_loads_whole_and_split() {
    let (big, shards) = write_large();
    let len = std::fs::metadata(&big).unwrap().len();
    assert!(len > PADDING + 100_000, "{len} bytes");
    // Every tensor the model reads lies past 2^31.
    let g = GgufFile::open(&big).unwrap();
    let first = g.header().tensors.iter().filter(|t| t.name != "padding");
    assert!(first.clone().count() > 10);
    for t in first {
        assert!(
            g.header().data_offsets[0] + t.offset > 1 << 31,
            "{}",
            t.name
        );
    }
    assert_eq!(shards.len(), 3, "{shards:?}");
    let want = logits(&tiny());
    assert!(logits(&big) == want, "the big file's logits differ");
    assert!(logits(&shards[1]) == want, "the split file's logits differ");
}

/// `write_file` writes what `to_bytes` makes, zero tensors included (as holes).
#[test]
fn write_file_equals_to_bytes() {
    let mut w = GgufWriter::new();
    w.add_metadata(
        "general.architecture",
        attend::gguf::Value::String("x".into()),
    );
    w.add_tensor("a", &[8], GgmlType::F32, (1..=32).collect())
        .unwrap();
    w.add_tensor("zeros", &[100], GgmlType::F32, vec![0; 400])
        .unwrap();
    w.add_tensor("b", &[3], GgmlType::F16, vec![7; 6]).unwrap();
    w.add_tensor("tail", &[5], GgmlType::F32, vec![0; 20])
        .unwrap();
    let p = std::env::temp_dir().join(format!("attend-write-file-{}.gguf", std::process::id()));
    w.write_file(&p).unwrap();
    let got = std::fs::read(&p).unwrap();
    std::fs::remove_file(&p).unwrap();
    assert_eq!(got, w.to_bytes().unwrap());
}
