//! `attend bench` (natively) and `engine.bench()` (in the browser): prefill and decode speed of a
//! loaded model, set against the bandwidth a shader gets on the same adapter.
//!
//! Decoding is memory-bound: every token reads all weights once (the output head included) plus
//! the KV cache up to its position. `bytes_per_token` counts exactly those bytes, `decode_gb_s`
//! is that times the decode speed, and `roofline_fraction` divides it by `copy_gb_s`, the fastest
//! of a few read kernels on a large buffer ([`crate::kernels::bandwidth`]): 1.0 would mean the
//! decode step reads its bytes as fast as the best plain streaming shader does.

use crate::engine::{Engine, GenParams};
use crate::kernels::bandwidth;
use crate::model::Model;
use crate::sampler::SamplerConfig;
use crate::Result;
use serde::Serialize;

#[derive(Clone, Debug)]
pub struct BenchOptions {
    pub prompt_tokens: usize,
    pub gen_tokens: u32,
    /// Timed runs (after one warm-up run); figures are medians.
    pub repeat: usize,
    /// Size of the buffer the bandwidth probes read.
    pub probe_bytes: u64,
    /// One more run with per-kernel GPU timestamps (adapters with timestamp queries; an error
    /// where there are none).
    pub profile: bool,
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions {
            prompt_tokens: 128,
            gen_tokens: 64,
            repeat: 3,
            probe_bytes: 64 << 20,
            profile: false,
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    pub adapter: String,
    pub prompt_tokens: usize,
    pub gen_tokens: u32,
    pub repeat: usize,
    pub prefill_tok_s: f64,
    pub decode_tok_s: f64,
    /// Sampled decoding (T 0.8, top-p 0.9): from the GPU's candidates, and reading the logits
    /// row every token as before them (one run each).
    pub sampled_decode_tok_s: f64,
    pub sampled_row_decode_tok_s: f64,
    /// Seconds from the request to the first generated token (prefill included).
    pub ttft_s: f64,
    /// Seconds to read the file and upload the weights, and to compile the pipelines (set by the
    /// caller, who did the loading).
    pub load_s: f64,
    pub compile_s: f64,
    /// Of `compile_s`: pipelines created by then, and the seconds spent creating them (the rest
    /// is tuning the matvec and matmul shapes, and the two warm-up passes).
    pub pipelines: usize,
    pub pipeline_s: f64,
    /// Weights plus KV cache read by one decoded token (mean over the decoded positions).
    pub bytes_per_token: u64,
    pub decode_gb_s: f64,
    /// Read bandwidth of the fastest probe kernel, and which one it was.
    pub copy_gb_s: f64,
    pub copy_kernel: String,
    /// `copy_buffer_to_buffer`, bytes read plus written per second.
    pub buffer_copy_gb_s: f64,
    pub roofline_fraction: f64,
    pub dispatches_per_token: u32,
    pub dispatches_per_layer: f64,
    /// CPU time to record and submit one decode step, in milliseconds.
    pub cpu_ms_per_token: f64,
    pub gpu_bytes: u64,
    pub weight_bytes: u64,
    pub kv_bytes: u64,
    /// With `profile`: GPU milliseconds per kernel in one extra run, per prefill (all of it) and
    /// per decoded token (mean), largest first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub profile: Vec<crate::gpu::KernelTime>,
}

/// Bytes one decoded token at `pos` reads: every weight of the blocks (norms included), the output
/// head, one embedding row, and the K and V cache entries its attention sees.
pub fn decode_bytes(model: &Model, pos: u32) -> u64 {
    let (c, w) = (&model.cfg, &model.weights);
    let head = w.output.as_ref().unwrap_or(&w.token_embd);
    let embed_row = w.token_embd.row_bytes() as u64;
    let per_dim = model.kv_precision().bytes();
    let kv_per_key = 2 * c.n_kv_heads as u64 * c.head_dim as u64 * per_dim; // K and V
    let kv: u64 = (0..c.n_layers)
        .map(|l| {
            let keys = pos as u64 + 1;
            let keys = if c.is_local(l) && c.window > 0 {
                keys.min(c.window as u64)
            } else {
                keys
            };
            keys * kv_per_key
        })
        .sum();
    // Weights (norms included) minus the tables, plus what is read of them.
    let tables = w.token_embd.bytes() + w.output.as_ref().map_or(0, |m| m.bytes());
    w.bytes() - tables + head.bytes() + embed_row + kv
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Benchmark `engine`: `repeat` greedy generations of `gen_tokens` after a prompt of
/// `prompt_tokens` (a fixed English sentence repeated), then the bandwidth probes.
pub async fn run(engine: &mut Engine, o: &BenchOptions) -> Result<BenchReport> {
    let base = engine.tokenizer.encode(
        "The quick brown fox jumps over the lazy dog while the attentive model reads every word at once. ",
        false,
        false,
    );
    let ctx = engine.model.context as usize;
    let n = o.prompt_tokens.clamp(1, ctx.saturating_sub(2).max(1));
    let gen = o.gen_tokens.clamp(2, (ctx - n) as u32);
    let prompt: Vec<u32> = base.iter().cycle().take(n).copied().collect();
    let p = GenParams {
        max_tokens: gen,
        sampler: SamplerConfig {
            temperature: 0.0,
            ..Default::default()
        },
        ignore_eog: true, // always decode exactly `gen` tokens
        ..Default::default()
    };
    let (mut pre, mut dec, mut ttft, mut cpu) = (vec![], vec![], vec![], vec![]);
    let mut dispatches = 0;
    for r in 0..=o.repeat.max(1) {
        engine.reset();
        engine.pass_stats.take();
        let s = engine.generate(&prompt, &p, |_| true).await?;
        let st = engine.pass_stats.take();
        if r > 0 {
            pre.push(s.prefill_tok_s());
            dec.push(s.decode_tok_s());
            ttft.push(s.prefill_s);
            cpu.push(st.decode_cpu_s / st.decode_passes.max(1) as f64);
            dispatches = st.dispatches;
        }
    }
    // Sampled decoding, candidates against the logits row; the first run of each warms up.
    let sp = GenParams {
        sampler: SamplerConfig {
            temperature: 0.8,
            top_p: 0.9,
            seed: Some(1),
            ..Default::default()
        },
        ..p.clone()
    };
    let mut sampled = [0.0; 2];
    for (i, on) in [true, false].into_iter().enumerate() {
        engine.gpu_sampling = on;
        for _ in 0..2 {
            engine.reset();
            let r = engine.generate(&prompt, &sp, |_| true).await;
            engine.gpu_sampling = true;
            sampled[i] = r?.decode_tok_s();
            engine.gpu_sampling = on;
        }
    }
    engine.gpu_sampling = true;
    let profile = if o.profile {
        engine.reset();
        engine.gpu.set_profiling(true)?;
        let r = engine.generate(&prompt, &p, |_| true).await;
        engine.gpu.set_profiling(false)?;
        r?;
        let decode_passes = (gen - 1).max(1) as f64;
        let mut v = engine.gpu.take_profile().await?;
        for k in &mut v {
            if k.pass == "decode" {
                k.ms /= decode_passes;
                k.calls = (k.calls as f64 / decode_passes).round() as u64;
            }
        }
        v
    } else {
        Vec::new()
    };
    engine.reset();
    let bw = bandwidth::measure(&engine.gpu, o.probe_bytes).await?;
    let m = engine.memory();
    let bytes_per_token = (0..gen)
        .map(|i| decode_bytes(&engine.model, (n as u32 + i).min(ctx as u32 - 1)))
        .sum::<u64>()
        / gen as u64;
    let decode_tok_s = median(&mut dec);
    let decode_gb_s = bytes_per_token as f64 * decode_tok_s / 1e9;
    Ok(BenchReport {
        adapter: engine.gpu.adapter.name.clone(),
        prompt_tokens: n,
        gen_tokens: gen,
        repeat: o.repeat.max(1),
        prefill_tok_s: median(&mut pre),
        decode_tok_s,
        sampled_decode_tok_s: sampled[0],
        sampled_row_decode_tok_s: sampled[1],
        ttft_s: median(&mut ttft),
        load_s: 0.0,
        compile_s: 0.0,
        pipelines: 0,
        pipeline_s: 0.0,
        bytes_per_token,
        decode_gb_s,
        copy_gb_s: bw.read_gb_s,
        copy_kernel: bw.read_kernel,
        buffer_copy_gb_s: bw.buffer_copy_gb_s,
        roofline_fraction: decode_gb_s / bw.read_gb_s.max(1e-9),
        dispatches_per_token: dispatches,
        dispatches_per_layer: dispatches as f64 / engine.model.cfg.n_layers.max(1) as f64,
        cpu_ms_per_token: median(&mut cpu) * 1e3,
        gpu_bytes: m.gpu_total,
        weight_bytes: m.weights,
        kv_bytes: m.kv_cache,
        profile,
    })
}
