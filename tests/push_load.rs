//! The browser's push loader (`attend::push`) natively: the tiny models, re-written as split GGUFs
//! with the GGUF writer (as `attend split` does), are pushed shard by shard in odd-sized chunks
//! through the same shard merging and tensor remapping the browser uses, and must give exactly
//! the logits and greedy tokens of the model loaded from its file (and HF's greedy tokens). Also:
//! shards pushed in another order, one shard alone, a shard of another model. Native only; the
//! browser runs the same code in tests/wasm_engine.rs (split sources) and tests/wasm_models.rs.
#![cfg(not(target_arch = "wasm32"))]

use attend::engine::{Engine, GenParams, LoadOptions};
use attend::gguf::{Gguf, GgufFile, GgufWriter};
use attend::gpu::Gpu;
use attend::push::{HeaderReader, PushLoader};
use attend::sampler::SamplerConfig;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// One GPU user at a time: lavapipe on two cores is slow enough already.
static GPU_LOCK: Mutex<()> = Mutex::new(());

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/reference")
        .join(name)
}

fn opts() -> LoadOptions {
    LoadOptions {
        context: Some(64),
        ..Default::default()
    }
}

/// The model as shards of at most `max_tensors` tensors each, written like `attend split`.
fn split(model: &Path, max_tensors: usize, tag: &str) -> Vec<Vec<u8>> {
    let file = GgufFile::open(model).unwrap();
    let w = GgufWriter::copy_of(file.header(), |t| file.read_tensor(t)).unwrap();
    let dir = std::env::temp_dir().join(format!("attend-push-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let paths = w.write_split(&dir, "m", max_tensors).unwrap();
    let shards = paths.iter().map(|p| std::fs::read(p).unwrap()).collect();
    std::fs::remove_dir_all(&dir).unwrap();
    shards
}

/// A shard's header from its first chunks, as the browser reads every shard before loading.
fn header(bytes: &[u8]) -> Gguf {
    let mut r = HeaderReader::new();
    r.set_file_size(bytes.len() as u64).unwrap();
    for chunk in bytes.chunks(1021) {
        if let Some(h) = r.push(chunk).unwrap() {
            return h;
        }
    }
    panic!("no complete header");
}

/// Pushes `files` (with `headers` of a split model's shards, in their order) in odd chunks.
fn push_load(headers: Vec<Gguf>, files: &[&[u8]]) -> attend::Result<Engine> {
    let gpu = pollster::block_on(Gpu::new())?;
    let mut loader = PushLoader::new(gpu, opts(), headers)?;
    for (i, f) in files.iter().enumerate() {
        // The size arrives after the first chunk, as Content-Length may after a cached prefix.
        let mut sized = false;
        for chunk in f.chunks(4093 + 1000 * i) {
            loader.push(chunk)?;
            if !sized {
                loader.set_file_size(f.len() as u64)?;
                sized = true;
            }
        }
        loader.end_file()?;
    }
    loader.finish()
}

/// Logits of every position of the first golden prompts and greedy continuations.
fn outputs(e: &mut Engine, golden: &Value) -> (Vec<Vec<f32>>, Vec<Vec<u32>>) {
    let p = GenParams {
        max_tokens: 8,
        sampler: SamplerConfig {
            temperature: 0.0,
            ..Default::default()
        },
        ignore_eog: true,
        ..Default::default()
    };
    let (mut logits, mut greedy) = (Vec::new(), Vec::new());
    for prompt in golden["prompts"].as_array().unwrap().iter().take(2) {
        let ids: Vec<u32> = prompt["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u32)
            .collect();
        e.reset();
        logits.extend(pollster::block_on(e.score(&ids)).unwrap());
        e.reset();
        let mut out = Vec::new();
        pollster::block_on(e.generate(&ids, &p, |t| {
            out.push(t.id);
            true
        }))
        .unwrap();
        let hf: Vec<u32> = prompt["hf_greedy"].as_array().unwrap()[..8]
            .iter()
            .map(|x| x.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(out, hf, "greedy ids differ from HF for {}", prompt["text"]);
        greedy.push(out);
    }
    (logits, greedy)
}

fn golden(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture(name)).unwrap()).unwrap()
}

/// Split in shards of `max_tensors`, pushed in `order`: the same outputs as the file.
fn check_split(model: &str, max_tensors: usize, reverse: bool) {
    let _g = GPU_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let path = fixture(&format!("{model}.gguf"));
    let g = golden(&format!("{model}.json"));
    let mut direct = pollster::block_on(Engine::load_file(&path, &opts())).unwrap();
    let want = outputs(&mut direct, &g);
    let want_info = direct.info();
    drop(direct);

    let shards = split(&path, max_tensors, model);
    assert!(shards.len() >= 3, "{} shards", shards.len());
    let headers: Vec<Gguf> = shards.iter().map(|s| header(s)).collect();
    let mut files: Vec<&[u8]> = shards.iter().map(|s| &s[..]).collect();
    if reverse {
        files.reverse();
    }
    let mut pushed = push_load(headers, &files).unwrap();
    let got = outputs(&mut pushed, &g);
    assert!(
        got.0 == want.0,
        "{model}: logits of the pushed shards differ"
    );
    assert_eq!(got.1, want.1, "{model}: greedy tokens differ");
    // The same model and memory; only the name differs (`load_file` names it after the file).
    let mut info = pushed.info();
    assert_eq!(info.model, direct_name(&path));
    info.model = want_info.model.clone();
    assert_eq!(info, want_info);
}

/// `general.name` until the loader's caller names the engine (the browser: the first source).
fn direct_name(path: &Path) -> String {
    GgufFile::open(path)
        .unwrap()
        .header()
        .get("general.name")
        .and_then(|v| v.as_str())
        .unwrap_or("model")
        .to_string()
}

#[test]
fn split_qwen2_pushed_in_chunks_equals_the_file() {
    // Qwen2: separate Q/K/V with biases; 27 tensors in 7 shards.
    check_split("tiny-qwen2", 4, false);
}

#[test]
fn split_qwen3_pushed_in_chunks_equals_the_file() {
    // Qwen3: stacked Q/K/V beside the per-head q/k norms; 25 tensors in 7 shards.
    check_split("tiny-qwen3", 4, false);
}

#[test]
fn split_llama3_pushed_in_chunks_equals_the_file() {
    // Llama 3.x: the RoPE frequency factors are a host-side vector read from a shard too.
    check_split("tiny-llama3", 4, false);
}

#[test]
fn split_smollm3_pushed_in_chunks_equals_the_file() {
    // SmolLM3: four layers, the last without RoPE.
    check_split("tiny-smollm3", 5, true);
}

#[test]
fn split_phi3_longrope_pushed_in_chunks_equals_the_file() {
    // Phi-3 LongRoPE: stacked matrices from the file, the long/short factors from a shard.
    check_split("tiny-phi3-longrope", 4, true);
}

#[test]
fn split_gemma2_pushed_in_chunks_equals_the_file() {
    // Gemma 2: post-norms, tied embeddings, soft-capped logits (the info carries the caps).
    check_split("tiny-gemma2", 4, false);
}

#[test]
fn split_llama_pushed_out_of_order_equals_the_file() {
    // Llama: Q/K/V and gate/up are stacked into one matrix whose members now lie in different
    // shards, pushed last shard first: the remapping by name still finds every tensor's place.
    check_split("tiny-llama-spm", 3, true);
}

#[test]
fn one_file_pushed_equals_the_file() {
    let _g = GPU_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let path = fixture("tiny-qwen2.gguf");
    let g = golden("tiny-qwen2.json");
    let bytes = std::fs::read(&path).unwrap();
    let mut pushed = push_load(Vec::new(), &[&bytes]).unwrap();
    let got = outputs(&mut pushed, &g);
    drop(pushed);
    let mut direct = pollster::block_on(Engine::load_file(&path, &opts())).unwrap();
    assert!(got == outputs(&mut direct, &g));
}

#[test]
fn wrong_shards_are_refused() {
    let _g = GPU_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let shards = split(&fixture("tiny-qwen2.gguf"), 10, "refused");
    let headers = || shards.iter().map(|s| header(s)).collect::<Vec<_>>();
    let all: Vec<&[u8]> = shards.iter().map(|s| &s[..]).collect();
    let err = |r: attend::Result<Engine>| r.err().expect("refused").to_string();

    // One shard alone, without the others' headers.
    let e = err(push_load(Vec::new(), &all[..1]));
    assert!(e.contains("one shard of a model split in 3"), "{e}");
    // Headers out of order.
    let mut h = headers();
    h.swap(0, 1);
    let e = err(push_load(h, &all));
    assert!(e.contains("split.no"), "{e}");
    // A shard missing: its tensors never arrive.
    let e = err(push_load(headers(), &all[..2]));
    assert!(e.contains("2 of the model's 3 files"), "{e}");
    // A shard pushed twice.
    let e = err(push_load(headers(), &[all[0], all[1], all[2], all[2]]));
    assert!(e.contains("more files pushed than the 3"), "{e}");
    // A shard of another model whose tensors share names but not shapes.
    let other = split(&fixture("tiny-llama-spm.gguf"), 10, "other");
    let e = err(push_load(headers(), &[all[0], &other[1], all[2]]));
    assert!(e.contains("another type or shape"), "{e}");
    // A file cut short.
    let cut = &all[2][..all[2].len() - 1];
    let e = err(push_load(headers(), &[all[0], all[1], cut]));
    assert!(e.contains("file ends") || e.contains("runs past"), "{e}");
}

/// Q5_0 `attn_q` / `attn_k` beside a Q8_0 `attn_v` (as in half the layers of llama.cpp's Gemma 3
/// Q4_K_M) are stacked into one Q8_0 QKV matrix, one dispatch, the Q5_0 blocks re-encoded as
/// they stream in. Pushed in chunks that cut blocks apart, the model gives bit for bit the logits
/// of the same weights re-encoded before writing the file (all Q8_0 already), nearly those of
/// the same values stored as F32, and every layer holds one QKV matrix.
#[test]
fn q5_0_qk_beside_q8_0_v_stack_into_one_widened_matrix() {
    use attend::model::Qkv;
    use attend::quant::{dequantize, quantize, widen, GgmlType};
    let _g = GPU_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let file = GgufFile::open(fixture("tiny-llama-spm.gguf")).unwrap();
    let g = file.header();
    // How the Q5_0 q/k (and the Q8_0 v) are written: as they are (0), q/k re-encoded as Q8_0
    // (1), all dequantized to F32 (2).
    let retyped = |form: u32| {
        let mut w = GgufWriter::with_metadata_of(g).unwrap();
        for t in &g.tensors {
            let bytes = file.read_tensor(t).unwrap();
            let n = t.elements() as usize;
            let requant = |ty| quantize(ty, &dequantize(t.ty, &bytes, n).unwrap()).unwrap();
            let (ty, data) =
                if t.name.ends_with("attn_q.weight") || t.name.ends_with("attn_k.weight") {
                    let q5 = requant(GgmlType::Q5_0);
                    match form {
                        0 => (GgmlType::Q5_0, q5),
                        1 => (GgmlType::Q8_0, widen::to_q8_0(GgmlType::Q5_0, &q5).unwrap()),
                        _ => (
                            GgmlType::F32,
                            f32s(&dequantize(GgmlType::Q5_0, &q5, n).unwrap()),
                        ),
                    }
                } else if t.name.ends_with("attn_v.weight") {
                    let q8 = requant(GgmlType::Q8_0);
                    match form {
                        0 | 1 => (GgmlType::Q8_0, q8),
                        _ => (
                            GgmlType::F32,
                            f32s(&dequantize(GgmlType::Q8_0, &q8, n).unwrap()),
                        ),
                    }
                } else {
                    (t.ty, bytes)
                };
            w.add_tensor(&t.name, &t.dims, ty, data).unwrap();
        }
        w.to_bytes().unwrap()
    };
    let ids = [1u32, 45, 496, 173, 17, 43, 172, 97, 278, 173, 112];
    let run = |bytes: &[u8]| {
        let gpu = pollster::block_on(Gpu::new()).unwrap();
        let mut loader = PushLoader::new(gpu, opts(), vec![header(bytes)]).unwrap();
        loader.set_file_size(bytes.len() as u64).unwrap();
        for chunk in bytes.chunks(333) {
            loader.push(chunk).unwrap();
        }
        loader.end_file().unwrap();
        let mut e = loader.finish().unwrap();
        let blocks = &e.model.weights.blocks;
        assert!(blocks.iter().all(|b| matches!(b.qkv(), Qkv::Fused(_))));
        pollster::block_on(e.score(&ids)).unwrap()
    };
    let (widened, prewidened) = (run(&retyped(0)), run(&retyped(1)));
    assert_eq!(widened.len(), ids.len());
    assert!(
        widened == prewidened,
        "logits of the re-encoded Q5_0 blocks differ"
    );
    // The F32 copy sums in another order: equal to within f32 rounding of the largest logit.
    for (a, b) in widened.iter().zip(run(&retyped(2))) {
        let top = b.iter().fold(0f32, |m, x| m.max(x.abs()));
        let worst = a
            .iter()
            .zip(&b)
            .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
        assert!(worst <= 1e-4 * top, "{worst} off, largest logit {top}");
    }
}

fn f32s(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}
