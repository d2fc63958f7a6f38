//! Hyperparameters read from GGUF metadata (`<arch>.*` keys), with llama.cpp's defaults.

use super::{Architecture, ARCHS};
use crate::gguf::Gguf;
use crate::kernels::attention::AttnParams;
use crate::kernels::norm::Norm;
use crate::kernels::rope::RopeParams;
use crate::{Error, Result};

/// An architecture of the registry (`model::ARCHS`), found by its GGUF name.
#[derive(Clone, Copy)]
pub struct Arch(pub &'static dyn Architecture);

impl Arch {
    pub fn from_name(name: &str) -> Result<Arch> {
        match ARCHS.iter().find(|a| a.names().contains(&name)) {
            Some(a) => Ok(Arch(*a)),
            None => {
                let all: Vec<_> = ARCHS.iter().flat_map(|a| a.names()).copied().collect();
                Err(Error::Model(format!(
                    "architecture '{name}' is not supported (supported: {})",
                    all.join(", ")
                )))
            }
        }
    }
    /// The name its metadata keys use (`<name>.block_count`, ...).
    pub fn name(self) -> &'static str {
        self.0.names()[0]
    }
}

impl PartialEq for Arch {
    fn eq(&self, other: &Arch) -> bool {
        self.name() == other.name()
    }
}
impl Eq for Arch {}

impl std::fmt::Debug for Arch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The `<arch>.*` metadata keys of a file, read with range checks.
pub struct Keys<'a> {
    pub g: &'a Gguf,
    pub arch: &'static str,
}

impl Keys<'_> {
    pub fn key(&self, k: &str) -> String {
        format!("{}.{k}", self.arch)
    }
    pub fn u32(&self, k: &str) -> Result<u32> {
        let v = self.g.u64(&self.key(k))?;
        u32::try_from(v).map_err(|_| Error::Gguf(format!("{}.{k} = {v} is too large", self.arch)))
    }
    pub fn opt_u32(&self, k: &str) -> Result<Option<u32>> {
        match self.g.get(&self.key(k)) {
            None => Ok(None),
            Some(_) => self.u32(k).map(Some),
        }
    }
    pub fn opt_f32(&self, k: &str) -> Result<Option<f32>> {
        self.g.opt_f32(&self.key(k))
    }
}

/// Largest head size the attention kernel takes (`kernels::attention` checks it again).
pub const MAX_HEAD_DIM: u32 = 256;

#[derive(Clone, Debug)]
pub struct Config {
    pub arch: Arch,
    pub n_layers: u32,
    pub d_model: u32,
    pub n_heads: u32,
    pub n_kv_heads: u32,
    pub head_dim: u32,
    pub ffn_dim: u32,
    pub vocab: u32,
    /// Context length the model was trained for.
    pub train_ctx: u32,
    pub norm_eps: f32,
    pub rope_dims: u32,
    pub rope_base: f32,
    /// RoPE base of sliding-window layers (Gemma 3's local layers).
    pub rope_base_local: f32,
    /// Linear RoPE scaling factor (positions are divided by it).
    pub rope_scale: f32,
    /// NeoX (half-split) RoPE instead of llama.cpp's adjacent pairs.
    pub rope_neox: bool,
    /// Multiplies RoPE's cos and sin (`rope.scaling.attn_factor`: LongRoPE's attention factor).
    pub rope_mscale: f32,
    /// The context RoPE was trained for before scaling (`rope.scaling.original_context_length`):
    /// LongRoPE uses its long factors for contexts past it.
    pub rope_orig_ctx: u32,
    /// Every `no_rope_period`-th layer (the last of each group) has no RoPE (SmolLM3; 0: none).
    pub no_rope_period: u32,
    /// Sliding window of local layers (0 = every layer is global).
    pub window: u32,
    /// Every `swa_period`-th layer (the last of each group) is global; the others are local.
    pub swa_period: u32,
    pub attn_scale: f32,
    pub embed_scale: f32,
    /// Attention logit soft-cap (Gemma 2: scores become `c · tanh(s / c)`; 0 = none).
    pub attn_softcap: f32,
    /// Final logit soft-cap (Gemma 2: logits become `c · tanh(z / c)`; 0 = none).
    pub final_softcap: f32,
}

impl Config {
    pub fn from_gguf(g: &Gguf) -> Result<Config> {
        let arch = Arch::from_name(g.architecture()?)?;
        let a = arch.name();
        let keys = Keys { g, arch: a };
        let key = |k: &str| keys.key(k);
        let u = |k: &str| keys.u32(k);
        let opt_u = |k: &str| keys.opt_u32(k);
        let d_model = u("embedding_length")?;
        let n_heads = u("attention.head_count")?;
        let n_kv_heads = opt_u("attention.head_count_kv")?.unwrap_or(n_heads);
        if n_heads == 0 || n_kv_heads == 0 || n_heads % n_kv_heads != 0 {
            return Err(Error::Model(format!(
                "{n_heads} attention heads cannot be grouped over {n_kv_heads} KV heads"
            )));
        }
        let head_dim = opt_u("attention.key_length")?.unwrap_or(d_model / n_heads);
        let vocab_key = if g.get(&key("vocab_size")).is_some() {
            key("vocab_size")
        } else {
            "tokenizer.ggml.tokens".into()
        };
        let vocab = match opt_u("vocab_size")? {
            Some(v) => v,
            None => g.array("tokenizer.ggml.tokens")?.len() as u32,
        };
        let rope_base = g.opt_f32(&key("rope.freq_base"))?.unwrap_or(10000.0);
        let rope_scale = match g.get(&key("rope.scaling.type")).and_then(|v| v.as_str()) {
            Some("linear") | None => g.opt_f32(&key("rope.scaling.factor"))?.unwrap_or(1.0),
            Some("none") => 1.0,
            Some(other) => {
                return Err(Error::Model(format!(
                    "RoPE scaling '{other}' is not supported"
                )))
            }
        };
        let train_ctx = opt_u("context_length")?.unwrap_or(2048);
        let rope_mscale = g.opt_f32(&key("rope.scaling.attn_factor"))?.unwrap_or(1.0);
        if !(rope_mscale > 0.0 && rope_mscale.is_finite()) {
            return Err(Error::Model(format!(
                "{a}.rope.scaling.attn_factor = {rope_mscale}: must be positive and finite"
            )));
        }
        let norm_eps = match arch.0.default_norm_eps() {
            Some(eps) => keys
                .opt_f32("attention.layer_norm_rms_epsilon")?
                .unwrap_or(eps),
            None => g.f32(&key("attention.layer_norm_rms_epsilon"))?,
        };
        let mut cfg = Config {
            arch,
            n_layers: u("block_count")?,
            d_model,
            n_heads,
            n_kv_heads,
            head_dim,
            ffn_dim: u("feed_forward_length")?,
            vocab,
            train_ctx,
            norm_eps,
            rope_dims: opt_u("rope.dimension_count")?.unwrap_or(head_dim),
            rope_base,
            rope_base_local: rope_base,
            rope_scale,
            rope_neox: false,
            rope_mscale,
            rope_orig_ctx: opt_u("rope.scaling.original_context_length")?.unwrap_or(train_ctx),
            no_rope_period: 0,
            window: 0,
            swa_period: 1,
            attn_scale: 1.0 / (head_dim as f32).sqrt(),
            embed_scale: 1.0,
            attn_softcap: 0.0,
            final_softcap: 0.0,
        };
        arch.0.config(&keys, &mut cfg)?;
        cfg.validate(g, &vocab_key)?;
        Ok(cfg)
    }

    /// Bounds the counts that drive allocation, before anything is planned from them: every
    /// layer needs tensors of its own (so `block_count` is at most the file's tensor count),
    /// head sizes are what the attention kernel takes, and derived dims fit in u32.
    fn validate(&self, g: &Gguf, vocab_key: &str) -> Result<()> {
        let a = self.arch.name();
        let bad = |k: &str, v: u32, why: &str| Err(Error::Model(format!("{a}.{k} = {v}: {why}")));
        let tensors = g.tensors.len();
        if self.n_layers == 0 || self.n_layers as usize > tensors {
            return bad(
                "block_count",
                self.n_layers,
                &format!("must be between 1 and the file's {tensors} tensors"),
            );
        }
        for (k, v) in [
            ("embedding_length", self.d_model),
            ("feed_forward_length", self.ffn_dim),
            ("context_length", self.train_ctx),
        ] {
            if v == 0 {
                return bad(k, v, "must be at least 1");
            }
        }
        if self.vocab == 0 {
            return Err(Error::Model(format!(
                "{vocab_key}: the vocabulary is empty"
            )));
        }
        if self.head_dim == 0 || !self.head_dim.is_multiple_of(2) || self.head_dim > MAX_HEAD_DIM {
            return bad(
                "attention.key_length",
                self.head_dim,
                &format!("the head size must be even and at most {MAX_HEAD_DIM}"),
            );
        }
        if self.rope_dims == 0
            || !self.rope_dims.is_multiple_of(2)
            || self.rope_dims > self.head_dim
        {
            return bad(
                "rope.dimension_count",
                self.rope_dims,
                &format!("must be even and at most the head size {}", self.head_dim),
            );
        }
        if self.n_heads.checked_mul(self.head_dim).is_none() {
            return bad(
                "attention.head_count",
                self.n_heads,
                &format!("{} heads of {} overflow", self.n_heads, self.head_dim),
            );
        }
        Ok(())
    }

    /// Whether layer `l` attends through a sliding window (a "local" layer).
    pub fn is_local(&self, l: u32) -> bool {
        self.window > 0 && !(l + 1).is_multiple_of(self.swa_period)
    }

    /// The RoPE of layer `l` for tokens from position `pos0`: local layers turn at their own
    /// base, unscaled; no-RoPE layers rotate nothing. No frequency factors: they are weights ([`Model::rope`](super::Model::rope)
    /// adds them).
    pub fn rope(&self, l: u32, pos0: u32) -> RopeParams<'static> {
        let (base, scale) = if self.is_local(l) {
            (self.rope_base_local, 1.0)
        } else {
            (self.rope_base, self.rope_scale)
        };
        let no_rope = self.no_rope_period > 0 && (l + 1).is_multiple_of(self.no_rope_period);
        RopeParams {
            n_heads: self.n_heads,
            // Nothing rotated: the kernel only writes k and v into the cache.
            rope_dims: if no_rope { 0 } else { self.rope_dims },
            pos0,
            base,
            scale,
            neox: self.rope_neox,
            factors: &[],
            mscale: self.rope_mscale,
        }
    }

    /// The attention of layer `l` for `m` queries from position `pos0`: local layers see the
    /// sliding window.
    pub fn attn(&self, l: u32, m: u32, pos0: u32) -> AttnParams {
        AttnParams {
            m,
            pos0,
            n_heads: self.n_heads,
            scale: self.attn_scale,
            window: if self.is_local(l) { self.window } else { 0 },
            softcap: self.attn_softcap,
        }
    }

    /// The RMSNorm with weight `weight` (and the model's eps).
    pub fn norm<'a>(&self, weight: &'a wgpu::Buffer) -> Norm<'a> {
        Norm::new(weight, self.norm_eps)
    }

    pub fn q_dim(&self) -> u32 {
        self.n_heads * self.head_dim
    }
    pub fn kv_dim(&self) -> u32 {
        self.n_kv_heads * self.head_dim
    }
}
