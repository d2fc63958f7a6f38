//! Limits enforced from the header alone, before any weight byte is read: hyperparameters that
//! drive allocation, GPU sizes against the adapter, sizes computed without wrapping. Each case
//! goes through `EngineBuilder::new` with nothing but the parsed header.
#![cfg(not(target_arch = "wasm32"))]

use attend::engine::{EngineBuilder, LoadOptions};
use attend::gguf::{Gguf, GgufWriter, Value};
use attend::quant::GgmlType;
use attend::weights::QMatrix;
use attend::Gpu;

const D: u64 = 256;
const FFN: u64 = 512;
const VOCAB: u64 = 64;

/// A one-layer llama header with 4 heads of `head_dim` (2 KV heads) over d = 256, zeroed F32
/// weights; `meta` overrides or adds metadata.
fn header(head_dim: u64, meta: &[(&str, Value)]) -> Gguf {
    let mut w = GgufWriter::new();
    w.add_metadata("general.architecture", Value::String("llama".into()));
    for (k, v) in [
        ("block_count", 1u32),
        ("embedding_length", D as u32),
        ("feed_forward_length", FFN as u32),
        ("attention.head_count", 4),
        ("attention.head_count_kv", 2),
        ("attention.key_length", head_dim as u32),
        ("context_length", 128),
        ("vocab_size", VOCAB as u32),
    ] {
        w.add_metadata(&format!("llama.{k}"), Value::U32(v));
    }
    w.add_metadata("llama.attention.layer_norm_rms_epsilon", Value::F32(1e-5));
    w.add_metadata("tokenizer.ggml.model", Value::String("gpt2".into()));
    for (k, v) in meta {
        w.add_metadata(k, v.clone());
    }
    let (q, kv) = (4 * head_dim, 2 * head_dim);
    let mut t = |name: &str, dims: &[u64]| {
        let n: u64 = dims.iter().product();
        w.add_tensor(name, dims, GgmlType::F32, vec![0u8; n as usize * 4])
            .unwrap();
    };
    t("token_embd.weight", &[D, VOCAB]);
    t("blk.0.attn_q.weight", &[D, q]);
    t("blk.0.attn_k.weight", &[D, kv]);
    t("blk.0.attn_v.weight", &[D, kv]);
    t("blk.0.attn_output.weight", &[q, D]);
    t("blk.0.ffn_gate.weight", &[D, FFN]);
    t("blk.0.ffn_up.weight", &[D, FFN]);
    t("blk.0.ffn_down.weight", &[FFN, D]);
    for n in [
        "blk.0.attn_norm.weight",
        "blk.0.ffn_norm.weight",
        "output_norm.weight",
    ] {
        t(n, &[D]);
    }
    Gguf::parse(&w.to_bytes().unwrap()).unwrap()
}

fn gpu() -> Gpu {
    pollster::block_on(Gpu::new()).expect("a GPU adapter (lavapipe works)")
}

/// The error `EngineBuilder::new` gives for `g` (it must refuse it from the header alone).
fn refused(g: Gguf, opts: LoadOptions) -> String {
    match EngineBuilder::new(gpu(), g, opts) {
        Ok(_) => panic!("the header was accepted"),
        Err(e) => e.to_string(),
    }
}

/// `block_count = 2^32-1` in a few hundred bytes of header made the plan push names for four
/// billion layers (memory exhausted) before looking up a single tensor.
#[test]
fn block_count_is_bounded_by_the_tensors() {
    let g = header(64, &[("llama.block_count", Value::U32(u32::MAX))]);
    let e = refused(g, LoadOptions::default());
    assert!(e.contains("block_count") && e.contains("4294967295"), "{e}");
}

/// u64 metadata was silently truncated to u32 (2^32 + 2 KV heads read as 2).
#[test]
fn u64_metadata_is_not_truncated() {
    let g = header(
        64,
        &[("llama.attention.head_count_kv", Value::U64((1 << 32) + 2))],
    );
    let e = refused(g, LoadOptions::default());
    assert!(
        e.contains("llama.attention.head_count_kv") && e.contains("too large"),
        "{e}"
    );
}

/// A head size the attention kernel cannot take was found only after the whole download.
#[test]
fn head_dim_is_checked_from_the_header() {
    let e = refused(header(288, &[]), LoadOptions::default());
    assert!(e.contains("key_length") && e.contains("288"), "{e}");
    let g = header(64, &[("llama.rope.dimension_count", Value::U32(1000))]);
    let e = refused(g, LoadOptions::default());
    assert!(e.contains("rope.dimension_count"), "{e}");
}

/// The KV cache for a huge trained context was sized only after the download; now the header
/// is enough, and the error says what to change.
#[test]
fn kv_cache_over_the_adapter_limit_is_refused_early() {
    let g = header(64, &[("llama.context_length", Value::U32(1 << 31))]);
    let e = refused(g, LoadOptions::default());
    assert!(
        e.contains("KV cache") && e.contains("smaller context"),
        "{e}"
    );
    // With a context that fits, the same model passes the size checks.
    let g = header(64, &[("llama.context_length", Value::U32(1 << 31))]);
    let opts = LoadOptions {
        context: Some(64),
        ..Default::default()
    };
    let e = refused(g, opts); // no tokens: the tokenizer is the first to object
    assert!(!e.contains("KV cache"), "{e}");
}

#[test]
fn total_gpu_bytes_over_the_budget_are_refused() {
    let opts = LoadOptions {
        max_gpu_bytes: Some(100_000),
        ..Default::default()
    };
    let e = refused(header(64, &[]), opts);
    assert!(e.contains("GPU memory") && e.contains("100000"), "{e}");
}

/// Matrix sizes are computed in checked u64 (in usize a row of 2^32 bytes wrapped to 0 on
/// wasm32, and `limit / row_bytes` trapped; 2^40 such rows overflow u64 anywhere).
#[test]
fn matrix_sizes_do_not_wrap() {
    let gpu = gpu();
    let e = QMatrix::with_part_limit(&gpu, "w", GgmlType::F32, 1 << 40, 1 << 30, u64::MAX)
        .unwrap_err()
        .to_string();
    assert!(e.contains("too large"), "{e}");
    assert_eq!(GgmlType::F32.row_bytes_u64(1 << 30), Some(1 << 32));
    assert_eq!(GgmlType::Q8_0.row_bytes_u64(u64::MAX), None);
}

/// The chat template was compiled only in `finish()`, after the whole download: a template that
/// does not compile (`{%}` used to panic) is now refused from the header, before a weight byte.
#[test]
fn a_bad_chat_template_is_refused_from_the_header() {
    let bytes = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference/tiny-qwen2.gguf"),
    )
    .unwrap();
    let mut g = Gguf::parse(&bytes).unwrap();
    g.metadata.retain(|(k, _)| k != "tokenizer.chat_template");
    // The same header with a good template passes every check of `new`.
    let mut good = g.clone();
    good.metadata.push((
        "tokenizer.chat_template".into(),
        Value::String("{% for m in messages %}{{ m.content }}{% endfor %}".into()),
    ));
    assert!(EngineBuilder::new(gpu(), good, LoadOptions::default()).is_ok());
    g.metadata.push((
        "tokenizer.chat_template".into(),
        Value::String("{%}".into()),
    ));
    let e = refused(g, LoadOptions::default());
    assert!(e.contains("chat template"), "{e}");
}

/// An f32 KV cache (`LoadOptions::kv`) is budgeted at twice the f16 one, and a context that fits
/// the adapter's buffer limit in f16 but not in f32 is refused for f32 only, naming the context
/// that would fit.
#[test]
fn an_f32_kv_cache_is_budgeted_at_twice_the_bytes() {
    use attend::engine::KvPrecision;
    use attend::model::{budget, Config};
    let gpu = gpu();
    let g = header(64, &[]);
    let cfg = Config::from_gguf(&g).unwrap();
    let kv_dim = cfg.kv_dim() as u64;
    let check = |context: u32, kv| {
        let opts = LoadOptions {
            batch: 8,
            kv,
            ..Default::default()
        };
        budget::check(&cfg, &g, context, &opts, gpu.caps())
    };
    let f16 = check(256, KvPrecision::F16).unwrap();
    let f32 = check(256, KvPrecision::F32).unwrap();
    assert_eq!(f16.kv_cache, 256 * kv_dim * 2 * 2 * cfg.n_layers as u64);
    assert_eq!(f32.kv_cache, 2 * f16.kv_cache);
    let binding = gpu.caps().max_binding.min(gpu.caps().max_buffer);
    let context = (binding / (kv_dim * 4) + 1) as u32;
    assert!(check(context, KvPrecision::F16).is_ok());
    let e = check(context, KvPrecision::F32).unwrap_err().to_string();
    assert!(
        e.contains("KV cache") && e.contains(&format!("at most {}", context - 1)),
        "{e}"
    );
}

/// The catalog's fit check reads the adapter's limits without opening a device: they must be the
/// limits a load's device gets.
#[test]
fn default_caps_are_the_limits_a_device_gets() {
    let caps = pollster::block_on(attend::gpu::default_caps()).unwrap();
    assert_eq!(&caps, gpu().caps());
}
