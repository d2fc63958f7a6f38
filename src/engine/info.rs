//! [`EngineInfo`]: what a loaded engine is, one struct for both faces. `attend info` prints it as
//! text or JSON, the browser's `engine.info()` returns it (plus `wasm_heap_bytes`), and
//! `tests/dts.rs` checks its field names against `EngineInfo` in `www/attend-llm/index.d.ts`.

use super::Engine;
use serde::Serialize;

/// The warm-up's cost, kept for [`Engine::info`] (zero until [`Engine::warmup`] has run).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CompileStats {
    /// Seconds spent tuning kernel shapes and compiling pipelines (the browser's load widens it
    /// to the reading and writing of its remembered shapes).
    pub seconds: f64,
    /// Pipelines created by the end of the warm-up: every candidate shape on a first tune, only
    /// the winners when the shapes were remembered.
    pub pipelines: usize,
}

/// A loaded model: architecture, hyperparameters, memory, adapter and load cost.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EngineInfo {
    /// The file (or URL, or Blob) name the model was loaded from.
    pub model: String,
    pub architecture: String,
    pub parameters: Parameters,
    /// KV-cache positions of this engine (the trained context is `parameters.trained_context`).
    pub context_length: u32,
    pub weight_bytes: u64,
    pub kv_cache_bytes: u64,
    /// Activations and other per-pass buffers.
    pub activation_bytes: u64,
    /// `"f16"` or `"f32"`.
    pub kv_precision: &'static str,
    /// Everything alive on the device (weights, KV cache, activations, pools).
    pub gpu_bytes: u64,
    pub adapter: String,
    /// The kernels never need shader-f16, so it is reported, not requested.
    pub shader_f16_available: bool,
    pub compile_s: f64,
    pub pipelines: usize,
    /// The file's tensors by type, in order of first appearance.
    pub tensor_types: Vec<TensorTypes>,
}

/// Hyperparameters (`parameters` is a `Record<string, number | string>` in index.d.ts, so only
/// numbers and strings go here).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Parameters {
    pub layers: u32,
    pub d_model: u32,
    pub heads: u32,
    pub kv_heads: u32,
    pub head_dim: u32,
    pub ffn: u32,
    pub vocab: u32,
    /// 0: every layer attends to the whole context.
    pub sliding_window: u32,
    pub trained_context: u32,
    pub rope_base: f32,
    /// RoPE base of the sliding-window layers (Gemma 3's local layers).
    pub rope_base_local: f32,
    pub rope_scale: f32,
    /// `"neox"` (half-split pairs) or `"normal"` (adjacent pairs, llama.cpp's name).
    pub rope_layout: &'static str,
    pub rope_dims: u32,
    pub norm_eps: f32,
    /// Attention logit soft-cap (Gemma 2); 0: none.
    pub attn_softcap: f32,
    /// Final logit soft-cap (Gemma 2); 0: none.
    pub final_softcap: f32,
    /// The RoPE frequency factors applied: `"none"`, `"llama3"` (`rope_freqs`, Llama 3.1+),
    /// `"longrope-long"` or `"longrope-short"` (Phi-3.5 / Phi-4-mini, chosen by the context).
    pub rope_factors: &'static str,
    /// Multiplies RoPE's cos and sin (LongRoPE's attention factor); 1: none.
    pub rope_attn_factor: f32,
    /// Every n-th layer has no RoPE (SmolLM3: 4); 0: every layer has it.
    pub no_rope_every: u32,
}

/// How many tensors of one type the file holds, and their bytes.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TensorTypes {
    #[serde(rename = "type")]
    pub ty: &'static str,
    pub count: usize,
    pub bytes: u64,
}

impl Engine {
    /// What this engine is and what it holds, for the CLI's `info` and the browser's alike.
    pub fn info(&self) -> EngineInfo {
        let c = &self.model.cfg;
        let m = self.memory();
        let mut tensor_types: Vec<TensorTypes> = Vec::new();
        for t in &self.header.tensors {
            match tensor_types.iter_mut().find(|x| x.ty == t.ty.name()) {
                Some(x) => {
                    x.count += 1;
                    x.bytes += t.byte_size();
                }
                None => tensor_types.push(TensorTypes {
                    ty: t.ty.name(),
                    count: 1,
                    bytes: t.byte_size(),
                }),
            }
        }
        EngineInfo {
            model: self.name.clone(),
            architecture: c.arch.name().to_string(),
            parameters: Parameters {
                layers: c.n_layers,
                d_model: c.d_model,
                heads: c.n_heads,
                kv_heads: c.n_kv_heads,
                head_dim: c.head_dim,
                ffn: c.ffn_dim,
                vocab: c.vocab,
                sliding_window: c.window,
                trained_context: c.train_ctx,
                rope_base: c.rope_base,
                rope_base_local: c.rope_base_local,
                rope_scale: c.rope_scale,
                rope_layout: if c.rope_neox { "neox" } else { "normal" },
                rope_dims: c.rope_dims,
                norm_eps: c.norm_eps,
                attn_softcap: c.attn_softcap,
                final_softcap: c.final_softcap,
                rope_factors: self
                    .model
                    .weights
                    .rope
                    .for_context(self.model.context, c.rope_orig_ctx)
                    .0,
                rope_attn_factor: c.rope_mscale,
                no_rope_every: c.no_rope_period,
            },
            context_length: self.model.context,
            weight_bytes: m.weights,
            kv_cache_bytes: m.kv_cache,
            activation_bytes: m.scratch,
            kv_precision: self.model.kv_precision().name(),
            gpu_bytes: m.gpu_total,
            adapter: self.gpu.adapter.name.clone(),
            shader_f16_available: self.gpu.caps().shader_f16,
            compile_s: self.compile.seconds,
            pipelines: self.compile.pipelines,
            tensor_types,
        }
    }
}
