//! Decode plans (a pass built once, replayed with new position words) must give exactly what a
//! freshly recorded pass gives, at every position: across the 1024-key step where the split-K
//! attention kernel splits (a new plan shape; the register kernel keeps one), and past Gemma 3's
//! 512-token sliding window. Greedy decoding that submits token t+1 before reading token t must
//! give the same tokens as the read-then-submit loop. Sampling and logprobs from the GPU's
//! candidates must pick the tokens and give the logprobs that reading the logits row gives. Real
//! models from the test cache (tests/fetch-models.sh), and the tiny random llama given a longer
//! trained context (the split-K step is the attention kernel's, whatever the model; a tiny model
//! prefills 1016 tokens quickly).

use attend::engine::{Engine, GenParams, LoadOptions};
use attend::gguf::{GgufFile, GgufWriter, Value};
use attend::kernels::attention::AttnKernels;
use attend::sampler::SamplerConfig;
use std::path::PathBuf;
use std::sync::Mutex;

#[path = "support/cache.rs"]
mod cache;

static GPU_LOCK: Mutex<()> = Mutex::new(());

fn model(file: &str) -> PathBuf {
    cache::cached_model(file)
}

fn load(file: &str, context: u32) -> Engine {
    load_path(&model(file), context)
}

fn load_path(path: &std::path::Path, context: u32) -> Engine {
    let opts = LoadOptions {
        context: Some(context),
        ..Default::default()
    };
    pollster::block_on(Engine::load_file(path, &opts)).expect("load")
}

/// tests/reference/tiny-llama-spm.gguf (2 layers, 4 heads over 2 kv heads, head_dim 16) with a
/// trained context of 2048 instead of 512, written to a temporary file.
fn tiny_long_context() -> PathBuf {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/reference/tiny-llama-spm.gguf");
    let file = GgufFile::open(&src).unwrap();
    let mut w = GgufWriter::copy_of(file.header(), |t| file.read_tensor(t)).unwrap();
    w.add_metadata("llama.context_length", Value::U32(2048));
    let path = std::env::temp_dir().join(format!("attend-plans-{}.gguf", std::process::id()));
    std::fs::write(&path, w.to_bytes().unwrap()).unwrap();
    path
}

/// A prompt of `n` ordinary token ids (the model's own encoding of some text, repeated).
fn prompt(e: &Engine, n: usize) -> Vec<u32> {
    let text = "The animal didn't cross the street because it was too tired. ";
    let ids = e.encode(text).unwrap();
    ids.iter().cycle().take(n).copied().collect()
}

/// Ids and top-5 logprobs of a seeded sampled generation.
fn sampled(e: &mut Engine, prompt: &[u32], n: u32) -> Vec<(u32, Vec<(u32, f32)>)> {
    let p = GenParams {
        max_tokens: n,
        sampler: SamplerConfig {
            temperature: 0.8,
            seed: Some(7),
            ..Default::default()
        },
        top_logprobs: 5,
        ignore_eog: true,
        ..Default::default()
    };
    let mut out = Vec::new();
    pollster::block_on(e.generate(prompt, &p, |t| {
        out.push((t.id, t.top_logprobs.clone()));
        true
    }))
    .unwrap();
    out
}

fn greedy(e: &mut Engine, prompt: &[u32], n: u32) -> Vec<u32> {
    let p = GenParams {
        max_tokens: n,
        sampler: SamplerConfig::greedy(),
        ignore_eog: true,
        ..Default::default()
    };
    let mut out = Vec::new();
    pollster::block_on(e.generate(prompt, &p, |t| {
        out.push(t.id);
        true
    }))
    .unwrap();
    out
}

/// Same tokens and bit-identical logprobs with plans and with recorded passes. A first short
/// answer caches the prompt, so both runs recompute only its last token, as a decode step (a
/// prefill chunk's logits come from the matmul kernels and may differ in the last bits).
fn plans_match_recording(e: &mut Engine, prompt: &[u32], n: u32) {
    e.reset();
    let _ = sampled(e, prompt, 1);
    let with_plans = sampled(e, prompt, n);
    assert!(e.plans() >= 1, "no decode plan was built");
    e.set_plans(false);
    let recorded = sampled(e, prompt, n);
    e.set_plans(true);
    assert_eq!(with_plans.len(), n as usize);
    for (i, (a, b)) in with_plans.iter().zip(&recorded).enumerate() {
        assert_eq!(a, b, "step {i} (position {})", prompt.len() + i);
    }
}

#[test]
fn decode_plans_cross_the_split_k_step_exactly() {
    let _g = GPU_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let path = tiny_long_context();
    let mut e = load_path(&path, 1100);
    std::fs::remove_file(&path).unwrap();
    // The register decode kernel (CPU adapters' default, here forced on any adapter) is one
    // dispatch at any length: one plan shape across 1024 keys.
    e.model.attention_kernels = AttnKernels::Registers;
    e.set_plans(true);
    let p = prompt(&e, 1016);
    plans_match_recording(&mut e, &p, 16);
    let _ = sampled(&mut e, &p, 16);
    assert_eq!(e.plans(), 1, "the register kernels need one plan shape");
    // The same with the merge as a second dispatch (SwiftShader's default).
    e.model.attention_kernels = AttnKernels::RegistersSplit;
    e.set_plans(true);
    plans_match_recording(&mut e, &p, 16);
    let _ = sampled(&mut e, &p, 16);
    assert_eq!(
        e.plans(),
        1,
        "the split register decode needs one plan shape"
    );
    // The split-K kernel (GPUs' default, here forced on any adapter). Positions 1016..1032: the
    // attention shape changes at 1024 keys (a second plan).
    e.model.attention_kernels = AttnKernels::Workgroup;
    e.set_plans(true); // drops the register kernel's plan
    plans_match_recording(&mut e, &p, 16);
    e.set_plans(true);
    let _ = sampled(&mut e, &p, 16);
    assert!(
        e.plans() >= 2,
        "crossing 1024 keys should need a second plan shape"
    );

    // Greedy: submitting the next pass before reading (pipelined) changes nothing.
    e.pipeline = true;
    let pipelined = greedy(&mut e, &p, 24);
    e.pipeline = false;
    let serial = greedy(&mut e, &p, 24);
    assert_eq!(pipelined, serial);
    // A stop mid-answer with a pass in flight leaves a cache the next answer can reuse.
    e.pipeline = true;
    let mut short = Vec::new();
    let params = GenParams {
        max_tokens: 24,
        sampler: SamplerConfig::greedy(),
        ignore_eog: true,
        ..Default::default()
    };
    pollster::block_on(e.generate(&p, &params, |t| {
        short.push(t.id);
        short.len() < 5
    }))
    .unwrap();
    assert_eq!(short, serial[..5]);
    assert_eq!(greedy(&mut e, &p, 24), serial);
}

#[test]
fn decode_plans_slide_past_the_gemma3_window_exactly() {
    let _g = GPU_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let mut e = load("gemma-3-270m-q4_k_m.gguf", 600);
    // Positions 506..518 cross the 512-token window of the local layers.
    let p = prompt(&e, 506);
    plans_match_recording(&mut e, &p, 12);
}

/// Gemma 2's soft-caps on the plan and candidates paths (tests/reference/tiny-gemma2.gguf: scores
/// capped at 10, logits at 15, window 8 on even layers): decode plans replayed past the window
/// give what recorded passes give, and sampling and logprobs from the GPU's candidates (which
/// read the capped logits) match the logits row.
#[test]
fn gemma2_soft_caps_on_plans_and_gpu_sampling() {
    let _g = GPU_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/reference/tiny-gemma2.gguf");
    let mut e = load_path(&path, 128);
    // Positions 20..36: the local layers' 8-key window slides at every step.
    let p = prompt(&e, 20);
    plans_match_recording(&mut e, &p, 16);
    let configs = [
        sampling(0.0, 0, 1.0, 0.0),
        sampling(0.8, 40, 1.0, 0.0),
        sampling(0.8, 0, 0.9, 0.0),
        sampling(0.9, 0, 1.0, 0.1),
    ];
    candidates_match_the_row(&mut e, &p, 12, &configs);
}

/// Ids, logprobs and top-3 logprobs of a seeded generation under `sampler`.
type Steps = Vec<(u32, Option<f32>, Vec<(u32, f32)>)>;

fn steps(e: &mut Engine, prompt: &[u32], n: u32, sampler: &SamplerConfig) -> Steps {
    let p = GenParams {
        max_tokens: n,
        sampler: sampler.clone(),
        logprobs: true,
        top_logprobs: 3,
        ignore_eog: true,
        ..Default::default()
    };
    let mut out = Vec::new();
    pollster::block_on(e.generate(prompt, &p, |t| {
        out.push((t.id, t.logprob, t.top_logprobs.clone()));
        true
    }))
    .unwrap();
    out
}

/// The candidates path (`kernels::topk`) against the logits-row path on the same engine: same
/// tokens, logprobs within 1e-4, and the row read on few steps.
fn candidates_match_the_row(e: &mut Engine, prompt: &[u32], n: u32, configs: &[SamplerConfig]) {
    // Cache the prompt first, so every run recomputes only its last token, as a decode step.
    steps(e, prompt, 1, &configs[0]);
    for (c, cfg) in configs.iter().enumerate() {
        e.gpu_sampling = false;
        let row = steps(e, prompt, n, cfg);
        e.gpu_sampling = true;
        e.pass_stats.take();
        let gpu = steps(e, prompt, n, cfg);
        let reads = e.pass_stats.take().row_reads;
        eprintln!("config {c}: the row was read on {reads} of {n} steps");
        assert!(
            reads <= n / 2,
            "config {c}: the row was read on {reads} of {n} steps"
        );
        for (i, (a, b)) in gpu.iter().zip(&row).enumerate() {
            assert_eq!(a.0, b.0, "config {c} step {i}: token");
            let (la, lb) = (a.1.unwrap(), b.1.unwrap());
            assert!(
                (la - lb).abs() < 1e-4,
                "config {c} step {i}: logprob {la} vs {lb}"
            );
            assert_eq!(a.2.len(), 3);
            for (x, y) in a.2.iter().zip(&b.2) {
                assert_eq!(x.0, y.0, "config {c} step {i}: top logprob token");
                assert!(
                    (x.1 - y.1).abs() < 1e-4,
                    "config {c} step {i}: {x:?} vs {y:?}"
                );
            }
        }
    }
    // Plain temperature sampling draws on the GPU (Gumbel-max): reproducible from the seed,
    // and the row is never read.
    let t = SamplerConfig {
        temperature: 1.0,
        seed: Some(11),
        ..Default::default()
    };
    e.pass_stats.take();
    let a = steps(e, prompt, n, &t);
    assert_eq!(e.pass_stats.take().row_reads, 0);
    assert_eq!(a, steps(e, prompt, n, &t), "a seeded draw repeats");
}

fn sampling(temperature: f32, top_k: usize, top_p: f32, min_p: f32) -> SamplerConfig {
    SamplerConfig {
        temperature,
        top_k,
        top_p,
        min_p,
        seed: Some(5),
        ..Default::default()
    }
}

#[test]
fn gpu_sampling_picks_what_the_logits_row_picks() {
    let _g = GPU_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let configs = [
        sampling(0.0, 0, 1.0, 0.0),
        sampling(0.8, 40, 1.0, 0.0),
        sampling(0.8, 0, 0.9, 0.0),
        sampling(0.9, 0, 1.0, 0.1),
    ];
    let mut e = load("SmolLM2-135M-Instruct.Q4_1.gguf", 256);
    let p = prompt(&e, 20);
    // (Gemma 3's 262,144-token row, the most chunks the kernel merges, is in tests/kernels/topk.rs.)
    candidates_match_the_row(&mut e, &p, 12, &configs);
}

/// Ids and per-step logprob (of the chosen token) of a greedy generation, and the dispatches of
/// its last pass.
fn greedy_logprobs(e: &mut Engine, prompt: &[u32], n: u32) -> (Vec<(u32, f32)>, u32) {
    let p = GenParams {
        max_tokens: n,
        sampler: SamplerConfig::greedy(),
        logprobs: true,
        ignore_eog: true,
        ..Default::default()
    };
    let mut out = Vec::new();
    pollster::block_on(e.generate(prompt, &p, |t| {
        out.push((t.id, t.logprob.unwrap()));
        true
    }))
    .unwrap();
    (out, e.pass_stats.get().dispatches)
}

/// Decode with the norms folded into the matvecs (`kernels::matvec::Fold`, the default where the
/// block allows) and RoPE in the Q/K/V matvec's store gives the tokens of the pass that runs the
/// norm and RoPE kernels, logprobs within rounding, and two or three dispatches fewer per layer:
/// SmolLM2 (llama) and the tiny Llama 3 (frequency factors), SmolLM3 (layers without RoPE), Qwen2
/// (biases, NeoX RoPE), Qwen3 (per-head q/k norms) and Phi-3 (stacked Q/K/V and gate/up)
/// fixtures. Gemma's post-norms keep their kernels (the same dispatches either way).
#[test]
fn folded_norms_decode_like_the_norm_kernels() {
    let _g = GPU_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let fixture = |f: &str| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/reference")
            .join(f)
    };
    // Dispatches saved per layer: the two norms, and RoPE with the cache write where the stacked
    // Q/K/V matvec rotates in its store (llama's adjacent pairs; not NeoX's, not Qwen3's q/k norms).
    let models = [
        (model("SmolLM2-135M-Instruct.Q4_1.gguf"), 3),
        (fixture("tiny-llama3.gguf"), 3),
        (fixture("tiny-smollm3.gguf"), 3),
        (fixture("tiny-qwen2.gguf"), 2),
        (fixture("tiny-qwen3.gguf"), 2),
        (fixture("tiny-phi3.gguf"), 2),
        (model("gemma-3-270m-q4_k_m.gguf"), 0),
    ];
    for (path, saved) in models {
        let mut e = load_path(&path, 256);
        let what = path.file_name().unwrap().to_string_lossy().to_string();
        let layers = e.model.cfg.n_layers;
        let p = prompt(&e, 24);
        assert!(e.model.fold_norms, "{what}: folding is the default");
        e.set_plans(true);
        let (folded, fd) = greedy_logprobs(&mut e, &p, 12);
        e.model.fold_norms = false;
        e.set_plans(true); // drops the folded plans
        let (plain, pd) = greedy_logprobs(&mut e, &p, 12);
        let ids = |v: &[(u32, f32)]| v.iter().map(|s| s.0).collect::<Vec<_>>();
        assert_eq!(ids(&folded), ids(&plain), "{what}: greedy tokens");
        for (i, (a, b)) in folded.iter().zip(&plain).enumerate() {
            assert!(
                (a.1 - b.1).abs() <= 2e-3,
                "{what}: step {i} logprob {} vs {}",
                a.1,
                b.1
            );
        }
        let saved = saved * layers;
        assert_eq!(
            pd - fd,
            saved,
            "{what}: dispatches {fd} folded, {pd} with the norm kernels"
        );
    }
}

/// Scoring whose last chunk is one token (a pass without logits, whose final norms the head then
/// reads) gives the rows that scoring in longer chunks gives: such a pass runs the norm kernels.
#[test]
fn scoring_a_one_token_chunk_reads_normed_rows() {
    let _g = GPU_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/reference/tiny-llama-spm.gguf");
    let e = load_path(&path, 64);
    let p = prompt(&e, 9);
    drop(e);
    let scored = |batch: u32| {
        let opts = LoadOptions {
            context: Some(64),
            batch,
            ..Default::default()
        };
        let mut e = pollster::block_on(Engine::load_file(&path, &opts)).expect("load");
        pollster::block_on(e.score(&p)).unwrap()
    };
    let (one_left, whole) = (scored(8), scored(16));
    assert_eq!(one_left.len(), whole.len());
    for (i, (a, b)) in one_left.iter().zip(&whole).enumerate() {
        let worst = a
            .iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        assert!(worst <= 1e-3, "position {i}: logits differ by {worst}");
    }
}
