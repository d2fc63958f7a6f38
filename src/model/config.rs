//! Hyperparameters read from GGUF metadata (`<arch>.*` keys), with llama.cpp's defaults.

use crate::gguf::Gguf;
use crate::{Error, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    /// Llama 2/3.x, SmolLM2, TinyLlama, Mistral.
    Llama,
    /// Qwen2 / Qwen2.5: llama plus Q/K/V biases and NeoX RoPE.
    Qwen2,
    /// Gemma 3: scaled embeddings, q/k norms, pre+post norms, GeGLU, local/global layers.
    Gemma3,
}

impl Arch {
    pub fn from_name(name: &str) -> Result<Arch> {
        match name {
            "llama" | "mistral" => Ok(Arch::Llama),
            "qwen2" => Ok(Arch::Qwen2),
            "gemma3" => Ok(Arch::Gemma3),
            other => Err(Error::Model(format!(
                "architecture '{other}' is not supported (supported: llama, mistral, qwen2, gemma3)"
            ))),
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Arch::Llama => "llama",
            Arch::Qwen2 => "qwen2",
            Arch::Gemma3 => "gemma3",
        }
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
    /// Sliding window of local layers (0 = every layer is global).
    pub window: u32,
    /// Every `swa_period`-th layer (the last of each group) is global; the others are local.
    pub swa_period: u32,
    pub attn_scale: f32,
    pub embed_scale: f32,
}

impl Config {
    pub fn from_gguf(g: &Gguf) -> Result<Config> {
        let arch = Arch::from_name(g.architecture()?)?;
        let a = arch.name();
        let key = |k: &str| format!("{a}.{k}");
        let u = |k: &str| -> Result<u32> {
            let v = g.u64(&key(k))?;
            u32::try_from(v).map_err(|_| Error::Gguf(format!("{a}.{k} = {v} is too large")))
        };
        let opt_u = |k: &str| -> Result<Option<u32>> {
            match g.get(&key(k)) {
                None => Ok(None),
                Some(_) => u(k).map(Some),
            }
        };
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
        let (norm_eps, window, swa_period, rope_base_local, embed_scale, attn_scale, rope_neox);
        match arch {
            Arch::Llama | Arch::Qwen2 => {
                norm_eps = g.f32(&key("attention.layer_norm_rms_epsilon"))?;
                window = 0;
                swa_period = 1;
                rope_base_local = rope_base;
                embed_scale = 1.0;
                attn_scale = 1.0 / (head_dim as f32).sqrt();
                rope_neox = arch == Arch::Qwen2;
            }
            Arch::Gemma3 => {
                norm_eps = g
                    .opt_f32(&key("attention.layer_norm_rms_epsilon"))?
                    .unwrap_or(1e-6);
                window = opt_u("attention.sliding_window")?.unwrap_or(0);
                // llama.cpp: five local layers, then one global (pattern 6).
                swa_period = 6;
                rope_base_local = 10000.0;
                embed_scale = (d_model as f32).sqrt();
                attn_scale = 1.0 / (head_dim as f32).sqrt();
                rope_neox = true;
            }
        }
        let cfg = Config {
            arch,
            n_layers: u("block_count")?,
            d_model,
            n_heads,
            n_kv_heads,
            head_dim,
            ffn_dim: u("feed_forward_length")?,
            vocab,
            train_ctx: opt_u("context_length")?.unwrap_or(2048),
            norm_eps,
            rope_dims: opt_u("rope.dimension_count")?.unwrap_or(head_dim),
            rope_base,
            rope_base_local,
            rope_scale,
            rope_neox,
            window,
            swa_period,
            attn_scale,
            embed_scale,
        };
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

    pub fn q_dim(&self) -> u32 {
        self.n_heads * self.head_dim
    }
    pub fn kv_dim(&self) -> u32 {
        self.n_kv_heads * self.head_dim
    }
}
