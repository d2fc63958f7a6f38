//! GPU memory a model will take, computed from its header alone (u64, checked) and held against
//! the adapter's limits before any buffer is allocated or any weight byte downloaded. The
//! per-buffer limits are the adapter's; the total is held against a budget when one is given
//! (WebGPU and wgpu do not report the device's memory).

use super::{loader, Config, Weights};
use crate::engine::LoadOptions;
use crate::gguf::Gguf;
use crate::gpu::Caps;
use crate::kernels::topk;
use crate::{Error, Result};

/// Estimated GPU bytes of a model at a given context and batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    pub weights: u64,
    pub kv_cache: u64,
    pub scratch: u64,
}

impl Budget {
    pub fn total(&self) -> u64 {
        self.weights
            .saturating_add(self.kv_cache)
            .saturating_add(self.scratch)
    }
}

fn overflow(what: &str) -> Error {
    Error::Model(format!("the size of {what} overflows"))
}

/// Product of `factors` in u64; an error naming `what` on overflow.
fn bytes(what: &str, factors: &[u64]) -> Result<u64> {
    factors
        .iter()
        .try_fold(1u64, |a, &f| a.checked_mul(f))
        .ok_or_else(|| overflow(what))
}

/// Sizes the weights (as the header lists them), the KV cache for `context` positions at
/// `opts.kv` precision and the activations for `opts.batch`-token chunks, and checks every
/// buffer against the adapter's limits and the total against `opts.max_gpu_bytes`. Errors name
/// the value, the limit and what to change. (`opts.context` is not read: `context` is already
/// capped by the model's trained context.)
pub fn check(
    cfg: &Config,
    g: &Gguf,
    context: u32,
    opts: &LoadOptions,
    caps: &Caps,
) -> Result<Budget> {
    let (batch, logit_rows, kv_precision) = (opts.batch, opts.logit_rows, opts.kv);
    let max_total = opts.max_gpu_bytes;
    if context == 0 || batch == 0 {
        return Err(Error::Invalid(
            "context and batch must be at least 1".into(),
        ));
    }
    // Below 4 GiB too: `Scratch::new` and the kernels count elements in u32.
    let binding = caps.max_binding.min(caps.max_buffer).min(u32::MAX as u64);
    let (ctx, b, rows) = (context as u64, batch as u64, logit_rows.max(1) as u64);
    let (d, q, kv) = (cfg.d_model as u64, cfg.q_dim() as u64, cfg.kv_dim() as u64);
    let (f, vocab, heads) = (cfg.ffn_dim as u64, cfg.vocab as u64, cfg.n_heads as u64);

    // KV cache: K and V per layer (f16 or f32), each one binding.
    let per_dim = kv_precision.bytes();
    let per_layer = bytes("the KV cache", &[ctx, kv, per_dim])?;
    if per_layer > binding {
        return Err(Error::Unsupported(format!(
            "a context of {context} tokens needs {per_layer} bytes of KV cache per layer, over the \
             adapter's {binding}-byte buffer limit; load with a smaller context (--context / \
             contextLength) of at most {}",
            binding / (kv * per_dim)
        )));
    }
    let kv_cache = bytes("the KV cache", &[per_layer, 2, cfg.n_layers as u64])?;

    // Activations (see `Scratch::new`), each bound whole.
    let scratch_bufs = [
        ("ids", vec![b]),
        ("x", vec![b, d]),
        ("h", vec![b, d.max(q)]),
        ("q", vec![b, q]),
        ("k", vec![b, kv]),
        ("v", vec![b, kv]),
        ("attn", vec![b, q]),
        ("o", vec![b, d]),
        ("gate", vec![b, 2, f]),
        ("up", vec![b, f]),
        ("act", vec![b, f]),
        ("last", vec![d]),
        ("logits", vec![rows, vocab]),
        ("lens", vec![heads, ctx]),
        (
            "candidates",
            vec![(topk::OUT_BYTES + topk::partial_bytes(cfg.vocab)) / 4],
        ),
    ];
    let mut scratch = 0u64;
    for (name, dims) in scratch_bufs {
        let mut factors = dims;
        factors.push(4);
        let n = bytes(&format!("activation '{name}'"), &factors)?;
        if n > binding {
            let advice = if name == "lens" {
                "load with a smaller context"
            } else {
                "use a smaller batch"
            };
            return Err(Error::Unsupported(format!(
                "activation '{name}' needs {n} bytes, over the adapter's {binding}-byte buffer \
                 limit; {advice}"
            )));
        }
        scratch = scratch
            .checked_add(n)
            .ok_or_else(|| overflow("the activations"))?;
    }

    // Weights: what the header says the planned tensors hold (vectors become f32).
    let mut weights = 0u64;
    for (name, shape) in Weights::plan(cfg) {
        let Some(t) = g.tensor(&name) else { continue };
        let n = if shape.dims.len() == 1 {
            bytes(&format!("tensor '{name}'"), &[t.elements(), 4])?
        } else {
            t.byte_size()
        };
        weights = weights
            .checked_add(n)
            .ok_or_else(|| overflow("the weights"))?;
    }
    // Tensors widened to their stack's type (Q5_0 → Q8_0) take more room than the file says.
    for st in loader::stacks(g, &Weights::fusions(cfg), caps.max_binding) {
        for t in st.members.iter().filter(|t| t.ty != st.ty) {
            let grown = st.ty.row_bytes_u64(t.dims[0]).unwrap_or(0) * t.dims[1];
            weights += grown.saturating_sub(t.byte_size());
        }
    }
    let budget = Budget {
        weights,
        kv_cache,
        scratch,
    };
    if let Some(max) = max_total {
        if budget.total() > max {
            return Err(Error::Unsupported(format!(
                "the model needs about {} bytes of GPU memory ({weights} weights, {kv_cache} KV \
                 cache for {context} tokens, {scratch} activations), over the limit of {max}; \
                 load with a smaller context or a smaller model",
                budget.total()
            )));
        }
    }
    Ok(budget)
}
