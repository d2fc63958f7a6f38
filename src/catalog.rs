//! The model catalog: small GGUF models of the supported architectures that people run in
//! browsers (`catalog.json`, data only), and whether one fits an adapter, and with what context,
//! before a byte of it is downloaded.
//!
//! The fit check does not size anything itself: it builds the header the file would have (the
//! entry's hyperparameters as `<arch>.*` metadata, every tensor the engine plans with the type
//! llama.cpp's quantizer gives it) and runs the engine's own `Config::from_gguf` and
//! `budget::check` on it, so a verdict here is the one loading the file would give (the real
//! header is checked again at load). The URLs and sizes were written from the model cards and
//! were not fetched here.

use crate::engine::LoadOptions;
use crate::gguf::{Gguf, TensorInfo, Value};
use crate::gpu::Caps;
use crate::model::budget::{self, Budget};
use crate::model::{Config, Weights};
use crate::quant::{GgmlType, QK_K};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::sync::OnceLock;

/// One catalog entry. `file_bytes` is approximate (from the model card, not fetched).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Model {
    pub name: String,
    /// GGUF `general.architecture`.
    pub architecture: String,
    /// The file's quantization as llama.cpp names it (`Q8_0`, `Q4_K_M`, ...).
    pub quant: String,
    pub file_bytes: u64,
    /// Context length the model was trained for.
    pub context: u32,
    pub license: String,
    /// One URL, or the shards of a split GGUF in order.
    pub urls: Vec<String>,
    pub layers: u32,
    pub d_model: u32,
    pub heads: u32,
    pub kv_heads: u32,
    pub head_dim: u32,
    pub ffn_dim: u32,
    pub vocab: u32,
    /// No `output.weight`: the token embedding is the output head.
    pub tied_embeddings: bool,
    /// Gemma 3's local-attention window (0: none).
    pub sliding_window: u32,
}

/// The catalog, parsed once.
pub fn models() -> &'static [Model] {
    static MODELS: OnceLock<Vec<Model>> = OnceLock::new();
    MODELS.get_or_init(|| {
        serde_json::from_str(include_str!("catalog.json"))
            .expect("src/catalog.json parses (tests/catalog.rs)")
    })
}

/// The entry called `name`.
pub fn find(name: &str) -> Result<&'static Model> {
    models().iter().find(|m| m.name == name).ok_or_else(|| {
        Error::Invalid(format!(
            "'{name}' is not in the model catalog (it has: {})",
            models()
                .iter()
                .map(|m| m.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })
}

/// llama.cpp's replacement for a K-quant on a row that is not a whole number of 256-element
/// super-blocks (`llama_tensor_get_type`): Q4_K → Q5_0, Q5_K → Q5_1, Q6_K → Q8_0, and
/// Q2_K/Q3_K/IQ4_XS → IQ4_NL.
fn fallback(ty: GgmlType, cols: u32) -> GgmlType {
    if ty.block_len() != QK_K || (cols as usize).is_multiple_of(QK_K) {
        return ty;
    }
    match ty {
        GgmlType::Q4K => GgmlType::Q5_0,
        GgmlType::Q5K => GgmlType::Q5_1,
        GgmlType::Q6K => GgmlType::Q8_0,
        GgmlType::Q2K | GgmlType::Q3K | GgmlType::IQ4XS => GgmlType::IQ4NL,
        other => other,
    }
}

/// llama.cpp's `use_more_bits`: the layers Q4_K_M gives 6 bits in `attn_v` and `ffn_down`.
fn more_bits(layer: u32, layers: u32) -> bool {
    let (i, n) = (layer as i64, layers as i64);
    i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2
}

impl Model {
    /// The bulk tensor type of the file's quantization; an error for one whose tensor mix this
    /// catalog does not model (Q2_K, Q3_K_*, IQ4_*: attend reads those types, but llama.cpp mixes
    /// in others per tensor that are not written down here).
    pub fn bulk_type(&self) -> Result<GgmlType> {
        Ok(match self.quant.as_str() {
            "F16" => GgmlType::F16,
            "Q8_0" => GgmlType::Q8_0,
            "Q4_0" => GgmlType::Q4_0,
            "Q4_1" => GgmlType::Q4_1,
            "Q4_K_M" | "Q4_K_S" => GgmlType::Q4K,
            "Q5_K_M" | "Q5_K_S" => GgmlType::Q5K,
            "Q6_K" => GgmlType::Q6K,
            other => {
                return Err(Error::Unsupported(format!(
                    "{}: quantization '{other}' is not one the catalog models (which tensor \
                     types llama.cpp gives such a file, and whether attend reads them all)",
                    self.name
                )))
            }
        })
    }

    /// The type llama.cpp's quantizer gives tensor `name` (a `[cols, rows]` matrix) of layer
    /// `layer` in this file: the output head (or the tied embedding) gets Q6_K, Q4_K_M gives
    /// some layers' `attn_v`/`ffn_down` Q6_K, vectors stay F32, and every K-quant falls back on
    /// rows that are not whole super-blocks.
    pub fn tensor_type(&self, name: &str, cols: u32, layer: Option<u32>) -> Result<GgmlType> {
        let bulk = self.bulk_type()?;
        let q4km = self.quant == "Q4_K_M";
        let head = name == "output.weight" || (self.tied_embeddings && name == "token_embd.weight");
        let ty = if head && !matches!(bulk, GgmlType::F16 | GgmlType::Q8_0) {
            GgmlType::Q6K
        } else if let (true, Some(l)) = (q4km, layer) {
            let six = name.ends_with("attn_v.weight") || name.ends_with("ffn_down.weight");
            if six && more_bits(l, self.layers) {
                GgmlType::Q6K
            } else {
                bulk
            }
        } else {
            bulk
        };
        Ok(fallback(ty, cols))
    }

    /// The header this file would have: `<arch>.*` metadata from the entry, and every tensor the
    /// engine plans (`Weights::plan`) with its type. Offsets are not meaningful.
    pub fn header(&self) -> Result<Gguf> {
        let a = &self.architecture;
        let mut metadata = vec![
            ("general.architecture".to_string(), Value::String(a.clone())),
            ("general.name".to_string(), Value::String(self.name.clone())),
        ];
        let u = |k: &str, v: u32| (format!("{a}.{k}"), Value::U32(v));
        metadata.extend([
            u("block_count", self.layers),
            u("embedding_length", self.d_model),
            u("attention.head_count", self.heads),
            u("attention.head_count_kv", self.kv_heads),
            u("attention.key_length", self.head_dim),
            u("attention.value_length", self.head_dim),
            u("feed_forward_length", self.ffn_dim),
            u("vocab_size", self.vocab),
            u("context_length", self.context),
        ]);
        // Not in the entry (no size depends on it); required for these architectures.
        metadata.push((
            format!("{a}.attention.layer_norm_rms_epsilon"),
            Value::F32(1e-6),
        ));
        if self.sliding_window > 0 {
            metadata.push(u("attention.sliding_window", self.sliding_window));
        }
        // The plan needs a config; its shapes need only the sizes, which `from_gguf` reads
        // from the metadata alone (layer count aside, checked against the tensors below).
        let plan_cfg = Config::from_gguf(&Gguf {
            metadata: metadata.clone(),
            tensors: vec![placeholder(); self.layers as usize],
            ..Default::default()
        })?;
        let mut tensors = Vec::new();
        for (name, shape) in Weights::plan(&plan_cfg) {
            // Tied heads have no `output.weight`; RoPE frequency factors (Llama 3.x's
            // `rope_freqs`, LongRoPE's: half a head of f32) are left out, as no size or type here
            // depends on them.
            let rope_factors = name.starts_with("rope_f");
            if (name == "output.weight" && self.tied_embeddings) || rope_factors {
                continue;
            }
            let dims: Vec<u64> = shape.dims.iter().map(|&d| d as u64).collect();
            let ty = if dims.len() == 1 {
                GgmlType::F32
            } else {
                let layer = name
                    .strip_prefix("blk.")
                    .and_then(|r| r.split('.').next())
                    .and_then(|n| n.parse().ok());
                self.tensor_type(&name, dims[0] as u32, layer)?
            };
            tensors.push(TensorInfo {
                name,
                dims,
                ty,
                offset: 0,
                shard: 0,
            });
        }
        Ok(Gguf {
            version: 3,
            metadata,
            tensors,
            alignment: crate::gguf::DEFAULT_ALIGNMENT,
            data_offsets: vec![0],
        })
    }

    /// The model's config as the engine reads it from [`header`](Self::header).
    pub fn config(&self) -> Result<Config> {
        Config::from_gguf(&self.header()?)
    }
}

fn placeholder() -> TensorInfo {
    TensorInfo {
        name: String::new(),
        dims: vec![1],
        ty: GgmlType::F32,
        offset: 0,
        shard: 0,
    }
}

/// Below this many tokens a model is not worth loading for a chat: "does not fit".
pub const MIN_CONTEXT: u32 = 256;

/// Whether a catalog model fits an adapter, with what context and about how much GPU memory.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Fit {
    pub name: String,
    pub fits: bool,
    /// The context asked for (the option, capped at the trained context).
    pub requested_context: u32,
    /// The largest context up to `requested_context` that passes the budget check (0: none).
    pub context: u32,
    /// Estimated GPU bytes at `context` (at `MIN_CONTEXT` when it does not fit).
    pub gpu_bytes: u64,
    pub weights_bytes: u64,
    pub kv_cache_bytes: u64,
    pub scratch_bytes: u64,
    /// Why the requested context does not fit (null when it does).
    pub reason: Option<String>,
}

/// Checks `m` against `caps` and `opts` (`opts.context`: the context wanted, default the
/// trained one) as loading it would, and finds the largest context up to that which fits
/// (the budget grows with the context, so a binary search finds it).
pub fn check_fit(m: &Model, opts: &LoadOptions, caps: &Caps) -> Result<Fit> {
    let g = m.header()?;
    let cfg = Config::from_gguf(&g)?;
    let requested = opts.context.map_or(cfg.train_ctx, |c| c.min(cfg.train_ctx));
    let at = |c: u32| budget::check(&cfg, &g, c, opts, caps);
    let fit = |context: u32, b: Budget, reason: Option<String>| Fit {
        name: m.name.clone(),
        fits: context >= MIN_CONTEXT.min(requested),
        requested_context: requested,
        context,
        gpu_bytes: b.total(),
        weights_bytes: b.weights,
        kv_cache_bytes: b.kv_cache,
        scratch_bytes: b.scratch,
        reason,
    };
    let why = match at(requested) {
        Ok(b) => return Ok(fit(requested, b, None)),
        Err(Error::Unsupported(why)) => why,
        Err(e) => return Err(e),
    };
    let floor = MIN_CONTEXT.min(requested);
    let b = match at(floor) {
        Ok(b) => b,
        Err(Error::Unsupported(_)) => {
            // Not even the smallest useful context: report the sizes at it, unchecked.
            let unlimited = LoadOptions {
                max_gpu_bytes: None,
                ..opts.clone()
            };
            let b =
                budget::check(&cfg, &g, floor, &unlimited, &unbounded(caps)).unwrap_or(Budget {
                    weights: 0,
                    kv_cache: 0,
                    scratch: 0,
                });
            let mut f = fit(0, b, Some(why));
            f.fits = false;
            return Ok(f);
        }
        Err(e) => return Err(e),
    };
    // Invariant: `lo` fits, `hi` does not.
    let (mut lo, mut hi, mut best) = (floor, requested, b);
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        match at(mid) {
            Ok(b) => (lo, best) = (mid, b),
            Err(_) => hi = mid,
        }
    }
    Ok(fit(lo, best, Some(why)))
}

/// `caps` without buffer limits (to size a model that does not fit).
fn unbounded(caps: &Caps) -> Caps {
    Caps {
        max_binding: u64::MAX,
        max_buffer: u64::MAX,
        ..caps.clone()
    }
}
