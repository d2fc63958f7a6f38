//! Bad input gets a clear error naming the problem — never a panic, a hang or garbage:
//! unknown architectures, unsupported tensor types, wrong shapes, truncated files, prompts past
//! the context, ids outside the vocabulary.

use attend::engine::{Engine, GenParams, LoadOptions};
use attend::gguf::{GgufWriter, Value};
use attend::quant::GgmlType;
use std::path::PathBuf;

#[path = "support/cache.rs"]
mod cache;

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("attend-errors-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// A one-layer llama header with zeroed weights; `ty_of` picks each matrix's type.
fn tiny_llama(arch: &str, ty_of: impl Fn(&str) -> GgmlType) -> GgufWriter {
    let (d, f, vocab) = (256u64, 512u64, 64u64);
    let mut w = GgufWriter::new();
    w.add_metadata("general.architecture", Value::String(arch.into()));
    for (k, v) in [
        ("block_count", 1u32),
        ("embedding_length", d as u32),
        ("feed_forward_length", f as u32),
        ("attention.head_count", 4),
        ("attention.head_count_kv", 2),
        ("context_length", 128),
        ("vocab_size", vocab as u32),
    ] {
        w.add_metadata(&format!("{arch}.{k}"), Value::U32(v));
    }
    w.add_metadata(
        &format!("{arch}.attention.layer_norm_rms_epsilon"),
        Value::F32(1e-5),
    );
    w.add_metadata("tokenizer.ggml.model", Value::String("gpt2".into()));
    let mut mat = |name: &str, cols: u64, rows: u64| {
        let ty = ty_of(name);
        let bytes = vec![0u8; ty.row_bytes(cols as usize) * rows as usize];
        w.add_tensor(name, &[cols, rows], ty, bytes).unwrap();
    };
    let kv = d / 2;
    mat("token_embd.weight", d, vocab);
    mat("blk.0.attn_q.weight", d, d);
    mat("blk.0.attn_k.weight", d, kv);
    mat("blk.0.attn_v.weight", d, kv);
    mat("blk.0.attn_output.weight", d, d);
    mat("blk.0.ffn_gate.weight", d, f);
    mat("blk.0.ffn_up.weight", d, f);
    mat("blk.0.ffn_down.weight", f, d);
    for n in [
        "blk.0.attn_norm.weight",
        "blk.0.ffn_norm.weight",
        "output_norm.weight",
    ] {
        w.add_tensor(n, &[d], GgmlType::F32, vec![0u8; d as usize * 4])
            .unwrap();
    }
    w
}

fn load_err(path: &std::path::Path) -> String {
    match pollster::block_on(Engine::load_file(path, &LoadOptions::default())) {
        Ok(_) => panic!("{} loaded but should have failed", path.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn unknown_architecture_is_named() {
    let p = tmp("mamba.gguf");
    std::fs::write(
        &p,
        tiny_llama("mamba", |_| GgmlType::F32).to_bytes().unwrap(),
    )
    .unwrap();
    let e = load_err(&p);
    assert!(e.contains("'mamba'") && e.contains("not supported"), "{e}");
}

#[test]
fn unsupported_tensor_type_is_named() {
    // Q5_1 (llama.cpp's fallback for Q5_K rows that are not whole super-blocks): no GPU kernel.
    let p = tmp("q5_1.gguf");
    let w = tiny_llama("llama", |n| {
        if n == "blk.0.ffn_up.weight" {
            GgmlType::Q5_1
        } else {
            GgmlType::Q8_0
        }
    });
    std::fs::write(&p, w.to_bytes().unwrap()).unwrap();
    let e = load_err(&p);
    assert!(
        e.contains("blk.0.ffn_up.weight") && e.contains("Q5_1"),
        "{e}"
    );
}

/// RoPE frequency factors (`rope_freqs.weight`, Llama 3.1+) are read and checked: one per
/// rotated pair and each positive and finite, or the load fails naming the tensor. (That they are
/// applied is tests/models.rs's tiny-llama3 check.) The tiny llama fixture loads with 8 valid
/// factors, not with 7, nor with a zero or a NaN among them.
#[test]
fn rope_frequency_factors_are_checked() {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/reference/tiny-llama-spm.gguf");
    let file = attend::gguf::GgufFile::open(&src).unwrap();
    let with = |name: &str, factors: &[f32]| {
        let mut w = GgufWriter::copy_of(file.header(), |t| file.read_tensor(t)).unwrap();
        let bytes = factors.iter().flat_map(|f| f.to_le_bytes()).collect();
        w.add_tensor(
            "rope_freqs.weight",
            &[factors.len() as u64],
            GgmlType::F32,
            bytes,
        )
        .unwrap();
        let p = tmp(name);
        std::fs::write(&p, w.to_bytes().unwrap()).unwrap();
        p
    };
    // head_dim 16: 8 rotated pairs.
    let good = with(
        "llama3-good.gguf",
        &[1.0, 1.5, 2.0, 4.0, 8.0, 8.0, 8.0, 8.0],
    );
    pollster::block_on(Engine::load_file(&good, &LoadOptions::default()))
        .unwrap_or_else(|e| panic!("8 valid factors: {e}"));
    let e = load_err(&with("llama3-short.gguf", &[1.0; 7]));
    assert!(
        e.contains("rope_freqs.weight") && e.contains("shape"),
        "{e}"
    );
    for (name, bad) in [("zero", 0.0), ("nan", f32::NAN), ("negative", -2.0)] {
        let mut f = [1.0f32; 8];
        f[3] = bad;
        let e = load_err(&with(&format!("llama3-{name}.gguf"), &f));
        assert!(e.contains("rope_freqs.weight"), "{name}: {e}");
    }
    // LongRoPE's attention factor (multiplies cos and sin) must be positive and finite too.
    let mut w = GgufWriter::copy_of(file.header(), |t| file.read_tensor(t)).unwrap();
    w.add_metadata("llama.rope.scaling.attn_factor", Value::F32(0.0));
    let p = tmp("attn-factor.gguf");
    std::fs::write(&p, w.to_bytes().unwrap()).unwrap();
    let e = load_err(&p);
    assert!(e.contains("rope.scaling.attn_factor"), "{e}");
}

#[test]
fn wrong_shape_is_named() {
    let p = tmp("shape.gguf");
    let mut w = tiny_llama("llama", |_| GgmlType::F32);
    // The metadata promises 4 heads of 64 over d=256; claim a different embedding length.
    w.add_metadata("llama.embedding_length", Value::U32(512));
    std::fs::write(&p, w.to_bytes().unwrap()).unwrap();
    let e = load_err(&p);
    assert!(
        e.contains("token_embd.weight") && e.contains("shape"),
        "{e}"
    );
}

#[test]
fn truncated_file_is_an_error() {
    let p = tmp("truncated.gguf");
    let bytes = tiny_llama("llama", |_| GgmlType::F32).to_bytes().unwrap();
    std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    let e = load_err(&p);
    assert!(e.to_lowercase().contains("gguf"), "{e}");
    let missing = tmp("does-not-exist.gguf");
    let e = load_err(&missing);
    assert!(
        e.contains("does-not-exist.gguf") || e.to_lowercase().contains("no such file"),
        "{e}"
    );
}

#[test]
fn prompt_past_the_context_is_refused_and_the_engine_still_works() {
    let model = cache::cached_model("SmolLM2-135M-Instruct.Q4_1.gguf");
    let opts = LoadOptions {
        context: Some(32),
        ..Default::default()
    };
    let mut e = pollster::block_on(Engine::load_file(&model, &opts)).unwrap();
    let mut p = GenParams {
        max_tokens: 4,
        ..Default::default()
    };
    p.sampler.temperature = 0.0;
    let long: Vec<u32> = (0..40).map(|i| 100 + i).collect();
    let err = pollster::block_on(e.generate(&long, &p, |_| true))
        .unwrap_err()
        .to_string();
    assert!(err.contains("40 tokens") && err.contains("32"), "{err}");
    // Raw text over the input limit is refused before tokenizing; the limit itself passes.
    let max = attend::chat::MAX_CHAT_INPUT_BYTES;
    let err = e.encode(&"a".repeat(max + 1)).unwrap_err().to_string();
    assert!(err.contains(&format!("over the limit of {max}")), "{err}");
    assert!(!e.encode(&"a ".repeat(max / 2)).unwrap().is_empty());
    let err = pollster::block_on(e.generate(&[1, 999_999], &p, |_| true))
        .unwrap_err()
        .to_string();
    assert!(err.contains("999999"), "{err}");
    // Generation right up to the end of the context stops with "length", not an error.
    let fits: Vec<u32> = (0..30).map(|i| 100 + i).collect();
    let s = pollster::block_on(e.generate(
        &fits,
        &GenParams {
            max_tokens: 100,
            ..p.clone()
        },
        |_| true,
    ))
    .unwrap();
    match s.finish_reason.as_str() {
        "length" => assert_eq!(s.generated_tokens, 2),
        "stop" => assert!(s.generated_tokens <= 2), // the model chose end-of-text itself
        other => panic!("unexpected finish reason {other}"),
    }
}

/// A lost device (here `destroy()`; in a browser a driver reset or a reclaimed GPU) makes every
/// later call fail with an error saying to load the model again — not a wgpu panic — and a fresh
/// load works. The engine has a device of its own: the tests beside it share the process's one
/// (tests/shared_device.rs loses that one).
#[test]
fn device_loss_is_reported_and_a_new_load_works() {
    let tiny = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/reference/tiny-qwen2.gguf");
    let opts = LoadOptions {
        context: Some(64),
        ..Default::default()
    };
    let gpu = pollster::block_on(attend::gpu::Gpu::private()).unwrap();
    let mut e = Engine::load_file_on(gpu, &tiny, &opts).unwrap();
    let mut p = GenParams {
        max_tokens: 3,
        ..Default::default()
    };
    p.sampler.temperature = 0.0;
    pollster::block_on(e.generate(&[5, 6, 7], &p, |_| true)).unwrap();
    e.gpu.device.destroy();
    let err = pollster::block_on(e.generate(&[5, 6, 7, 8], &p, |_| true))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("device was lost") && err.contains("load the model again"),
        "{err}"
    );
    let mut again = pollster::block_on(Engine::load_file(&tiny, &opts)).unwrap();
    pollster::block_on(again.generate(&[5, 6, 7], &p, |_| true)).unwrap();
}
