//! Headers parsed by attend equal those read by the PyPI `gguf` package; files written by its
//! writer (all value types, nested arrays, split models, big-endian) are read as intended.

use attend::gguf::{Gguf, GgufFile, GgufWriter, Value};
use attend::quant::GgmlType;

use crate::{assert_same_text, document, model, reference_dir, Rng, GEMMA, SMOL};

#[test]
fn smollm2_header_matches_gguf_py() {
    let f = GgufFile::open(model(SMOL)).unwrap();
    let want = std::fs::read_to_string(reference_dir().join("smollm2.json")).unwrap();
    assert_same_text(&document(&f.gguf), &want, "SmolLM2 header");

    let g = &f.gguf;
    assert_eq!(g.version, 3);
    assert_eq!(g.architecture().unwrap(), "llama");
    assert_eq!(g.u64("llama.block_count").unwrap(), 30);
    assert_eq!(g.u64("llama.embedding_length").unwrap(), 576);
    assert_eq!(g.f32("llama.rope.freq_base").unwrap(), 100000.0);
    assert!(!g.bool("tokenizer.ggml.add_bos_token").unwrap());
    assert_eq!(g.str("tokenizer.ggml.model").unwrap(), "gpt2");
    let tokens = g.array("tokenizer.ggml.tokens").unwrap();
    assert_eq!(tokens.len(), 49152);
    assert_eq!(tokens[1].as_str(), Some("<|im_start|>"));
    assert_eq!(g.opt_u64("llama.no_such_key").unwrap(), None);
    assert!(g.u64("general.architecture").is_err());
    let emb = g.tensor("token_embd.weight").unwrap();
    assert_eq!(
        (emb.ty, emb.dims.as_slice(), emb.shard),
        (GgmlType::Q8_0, &[576u64, 49152][..], 0)
    );
    assert!(
        g.tensor("output.weight").is_none(),
        "SmolLM2 ties its embeddings"
    );
    assert_eq!(g.tensors.len(), 272);
    assert_eq!(g.data_offsets.len(), 1);
    let last = g.tensors.iter().max_by_key(|t| t.offset).unwrap();
    let len = std::fs::metadata(model(SMOL)).unwrap().len();
    assert_eq!(
        g.data_offsets[0] + last.offset + last.byte_size(),
        len,
        "data runs to the end"
    );
}

#[test]
fn gemma3_header_matches_gguf_py() {
    let f = GgufFile::open(model(GEMMA)).unwrap();
    let want = std::fs::read_to_string(reference_dir().join("gemma3.json")).unwrap();
    assert_same_text(&document(&f.gguf), &want, "Gemma 3 header");
    let g = &f.gguf;
    assert_eq!(g.architecture().unwrap(), "gemma3");
    assert_eq!(g.array("tokenizer.ggml.tokens").unwrap().len(), 262144);
    let types: std::collections::HashSet<_> = g.tensors.iter().map(|t| t.ty).collect();
    for ty in [
        GgmlType::Q5_0,
        GgmlType::Q4K,
        GgmlType::Q6K,
        GgmlType::Q8_0,
        GgmlType::F32,
    ] {
        assert!(types.contains(&ty), "{ty:?}");
    }
}

#[test]
fn all_value_types_and_nested_arrays_from_gguf_py_writer() {
    let dir = reference_dir();
    let bytes = std::fs::read(dir.join("all_types.gguf")).unwrap();
    let want = std::fs::read_to_string(dir.join("all_types.json")).unwrap();
    let g = Gguf::parse(&bytes).unwrap();
    assert_same_text(&document(&g), &want, "all_types.gguf");
    assert_eq!(g.alignment, 64);
    assert_eq!(g.data_offsets[0] % 64, 0);
    let nested = g.array("a.nested").unwrap();
    assert_eq!(nested[1], Value::Array(vec![Value::I32(4)]));
    assert_eq!(g.get("t.u64"), Some(&Value::U64((1 << 63) + 5)));
    assert_eq!(
        g.array("a.strings").unwrap()[3].as_str(),
        Some("ünïcödé ✓ 😀")
    );

    // The same through the file reader, and tensor bytes where GGUFWriter put them.
    let f = GgufFile::open(dir.join("all_types.gguf")).unwrap();
    assert_same_text(&document(&f.gguf), &want, "all_types.gguf via GgufFile");
    let w16 = f.gguf.tensor("w.f16").unwrap();
    let start = (f.gguf.data_offsets[0] + w16.offset) as usize;
    assert_eq!(f.read_tensor(w16).unwrap(), &bytes[start..start + 14]);
    assert_eq!(
        f.read_range(w16, 4, 6).unwrap(),
        &bytes[start + 4..start + 10]
    );
    assert!(
        f.read_range(w16, 10, 5).is_err(),
        "range past the tensor's end"
    );

    // attend's writer, fed the same metadata and tensors, writes the same file byte for byte.
    let mut w = GgufWriter::new();
    for (k, v) in &g.metadata {
        w.add_metadata(k, v.clone());
    }
    w.set_alignment(64).unwrap();
    for t in &g.tensors {
        w.add_tensor(&t.name, &t.dims, t.ty, f.read_tensor(t).unwrap())
            .unwrap();
    }
    assert_eq!(w.to_bytes().unwrap(), bytes);
}

#[test]
fn big_endian_file_is_refused() {
    let bytes = std::fs::read(reference_dir().join("be.gguf")).unwrap();
    let e = Gguf::parse(&bytes).unwrap_err().to_string();
    assert!(e.contains("big-endian"), "{e}");
}

#[test]
fn split_model_from_gguf_py_loads_as_one() {
    let dir = reference_dir();
    for shard in 1..=3 {
        let f = GgufFile::open(dir.join(format!("split-{shard:05}-of-00003.gguf"))).unwrap();
        let g = &f.gguf;
        assert_eq!(g.str("general.name").unwrap(), "split test");
        assert_eq!(g.u64("split.count").unwrap(), 3);
        assert_eq!(g.data_offsets.len(), 3);
        assert_eq!(f.paths().len(), 3);
        let shards: Vec<usize> = g.tensors.iter().map(|t| t.shard).collect();
        assert_eq!(shards, [0, 0, 1, 1, 2]);
        for (i, t) in g.tensors.iter().enumerate() {
            assert_eq!(t.name, format!("blk.{i}.w"));
            let want: Vec<u8> = (0..8 + i)
                .flat_map(|j| (j as f32 + 100.0 * i as f32).to_le_bytes())
                .collect();
            assert_eq!(f.read_tensor(t).unwrap(), want, "{}", t.name);
        }
    }
}

#[test]
fn split_model_from_own_writer_loads_as_one() {
    let mut rng = Rng::new(5);
    let mut w = GgufWriter::new();
    w.add_metadata("general.architecture", Value::String("llama".into()));
    w.add_metadata("llama.block_count", Value::U32(7));
    let types = [
        GgmlType::F32,
        GgmlType::Q4_1,
        GgmlType::Q8_0,
        GgmlType::Q4K,
        GgmlType::F16,
    ];
    let mut want = Vec::new();
    for i in 0..7 {
        let ty = types[i % types.len()];
        let dims = [ty.block_len() as u64 * (1 + i as u64 % 3), 1 + i as u64];
        let n = dims[0] as usize / ty.block_len() * ty.block_bytes() * dims[1] as usize;
        let bytes: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
        w.add_tensor(&format!("t{i}"), &dims, ty, bytes.clone())
            .unwrap();
        want.push(bytes);
    }
    let dir = std::env::temp_dir().join(format!("attend-gguf-split-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let paths = w.write_split(&dir, "model", 3).unwrap();
    assert_eq!(paths.len(), 3);
    assert!(paths[1].ends_with("model-00002-of-00003.gguf"));
    let f = GgufFile::open(&paths[1]).unwrap();
    assert_eq!(f.gguf.u64("llama.block_count").unwrap(), 7);
    assert_eq!(f.gguf.u64("split.tensors.count").unwrap(), 7);
    assert_eq!(f.gguf.tensors.len(), 7);
    for (i, t) in f.gguf.tensors.iter().enumerate() {
        assert_eq!(t.shard, i / 3);
        assert_eq!(f.read_tensor(t).unwrap(), want[i], "{}", t.name);
    }
    // A missing shard is an error naming the file.
    std::fs::remove_file(&paths[2]).unwrap();
    let e = GgufFile::open(&paths[0]).err().unwrap().to_string();
    assert!(e.contains("model-00003-of-00003.gguf"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}
