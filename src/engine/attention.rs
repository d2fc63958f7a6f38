//! The attention lens for any token: the post-softmax attention weights of one query position
//! over every key it sees, per layer and head.
//!
//! The query token runs through the model as the decode step that sees exactly its prefix
//! (keys `0..=i` from the KV cache, the same q, scale and sliding-window mask as the attention
//! kernel that generates); each layer's weights are written by the lens kernel beside it and
//! copied out. Passes without a lens record nothing extra. The prefix is prefilled first unless
//! the cache already holds it (then the lens costs one decode step). That step rewrites the query
//! token's own keys and values with the same values (up to summation order), so the cache stays
//! usable for the conversation it holds.

use super::passes::{Fetch, Input};
use super::Engine;
use crate::model::{LensRequest, Logits, Tail};
use crate::{Error, Result};

/// Which query to look at, and how much of the model to return.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AttentionQuery {
    /// Index of the query token in the token list.
    pub token: u32,
    /// Only this layer (default: every layer).
    pub layer: Option<u32>,
    /// Only this head (default: every head).
    pub head: Option<u32>,
}

/// Attention weights of one query: `weights[k][h][j]` is how much head `heads[h]` of layer
/// `layers[k]` attends from token `query` to token `j` (`j` in `0..=query`; each row sums to 1,
/// keys outside a sliding window are 0).
#[derive(Clone, Debug, serde::Serialize)]
pub struct Attention {
    /// Every token of the sequence as text (lossy UTF-8 of its bytes).
    pub tokens: Vec<String>,
    pub query: u32,
    pub layers: Vec<u32>,
    pub heads: Vec<u32>,
    pub weights: Vec<Vec<Vec<f32>>>,
}

impl Attention {
    /// Keys ranked by weight for layer index `k` and head index `h` (largest first), at most `n`.
    pub fn top_keys(&self, k: usize, h: usize, n: usize) -> Vec<(usize, f32)> {
        let mut row: Vec<(usize, f32)> = self.weights[k][h].iter().copied().enumerate().collect();
        row.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        row.truncate(n);
        row
    }
}

impl Attention {
    /// A readable table: for every layer and head, its `top` strongest keys with their weights.
    pub fn table(&self, top: usize) -> String {
        let q = self.query as usize;
        let show = |j: usize| format!("{:?}", self.tokens.get(j).map_or("", String::as_str));
        let mut out = format!(
            "query token {q} {} attends to (top {top} keys per head, weight):\n",
            show(q)
        );
        for (k, layer) in self.layers.iter().enumerate() {
            for (h, head) in self.heads.iter().enumerate() {
                let keys: Vec<String> = self
                    .top_keys(k, h, top)
                    .iter()
                    .map(|&(j, w)| format!("{j} {} {w:.3}", show(j)))
                    .collect();
                out += &format!("layer {layer:>2} head {head:>2} | {}\n", keys.join(" | "));
            }
        }
        out
    }
}

impl Engine {
    /// Tokens whose keys and values are in the cache (the conversation so far), from position 0.
    pub fn cached_tokens(&self) -> &[u32] {
        &self.cached
    }

    /// Attention weights of token `q.token` of `ids` over tokens `0..=q.token`, per layer and
    /// head (see [`Attention`]). Tokens after the query do not matter (attention is causal).
    pub async fn attention(&mut self, ids: &[u32], q: &AttentionQuery) -> Result<Attention> {
        self.gpu.check_lost()?;
        let cfg = &self.model.cfg;
        let (n_layers, n_heads) = (cfg.n_layers, cfg.n_heads);
        let i = q.token as usize;
        if i >= ids.len() {
            return Err(Error::Invalid(format!(
                "token {i} does not exist (the prompt has {} tokens)",
                ids.len()
            )));
        }
        if let Some(l) = q.layer.filter(|&l| l >= n_layers) {
            return Err(Error::Invalid(format!(
                "layer {l} does not exist (the model has {n_layers})"
            )));
        }
        if let Some(h) = q.head.filter(|&h| h >= n_heads) {
            return Err(Error::Invalid(format!(
                "head {h} does not exist (the model has {n_heads})"
            )));
        }
        self.check_prompt(&ids[..=i])?;

        // The prefix 0..i in the cache: reuse what is there, prefill the rest.
        let reuse = self
            .cached
            .iter()
            .zip(&ids[..i])
            .take_while(|(a, b)| a == b)
            .count();
        if reuse < i {
            self.cached.truncate(reuse);
            let batch = self.model.scratch.batch as usize;
            for (c, chunk) in ids[reuse..i].chunks(batch).enumerate() {
                let pos = (reuse + c * batch) as u32;
                self.run(
                    Input::Ids(chunk),
                    pos,
                    Logits::None,
                    Tail::Logits,
                    Fetch::Nothing,
                )?;
            }
            self.cached.extend_from_slice(&ids[reuse..i]);
        }
        // Keep later positions only when the cache holds this very token at `i` (its K/V are
        // recomputed below, not changed).
        let keep = self.cached.get(i) == Some(&ids[i]);
        if !keep {
            self.cached.truncate(i);
        }

        let layers = q.layer.map_or(0..n_layers, |l| l..l + 1);
        let keys = i + 1;
        let slab = n_heads as usize * keys;
        let out = self
            .gpu
            .storage("attention lens", (layers.len() * slab * 4) as u64)?;
        let s = &self.model.scratch;
        self.gpu.write(&s.ids, 0, bytemuck::bytes_of(&ids[i]));
        let mut rec = self.gpu.recorder("lens");
        let req = LensRequest {
            layers: layers.clone(),
            out: Some(&out),
        };
        self.model
            .forward_with_lens(&mut rec, 1, i as u32, Logits::None, Some(req))?;
        rec.submit();
        let flat = self
            .gpu
            .read::<f32>(&out, 0, layers.len() * slab)
            .await
            .map_err(|e| self.lost_or(e))?;
        if !keep {
            self.cached.push(ids[i]);
        }

        let heads: Vec<u32> = q.head.map_or((0..n_heads).collect(), |h| vec![h]);
        let weights = flat
            .chunks(slab)
            .map(|layer| {
                heads
                    .iter()
                    .map(|&h| layer[h as usize * keys..(h as usize + 1) * keys].to_vec())
                    .collect()
            })
            .collect();
        let tokens = ids
            .iter()
            .map(|&id| String::from_utf8_lossy(self.tokenizer.token_bytes(id)).into_owned())
            .collect();
        Ok(Attention {
            tokens,
            query: q.token,
            layers: layers.collect(),
            heads,
            weights,
        })
    }
}
