//! The KV cache layout in Rust, as shaders/attention*.wgsl read it (`k_pair`, `v_pair`) and
//! shaders/rope.wgsl writes it: the attention tests fill caches from the CPU with it, the RoPE
//! tests read back what `rope_kv` / `rmsnorm_rope_kv` stored.

use crate::common::*;
use attend::kernels::attention::{KvPrecision, LayerKv};
use half::f16;

/// Words per stored dim pair: 1 (two f16) or 2 (two f32).
fn units(precision: KvPrecision, d: usize) -> usize {
    match precision {
        KvPrecision::F16 => d / 2,
        KvPrecision::F32 => d,
    }
}

/// Word and bit shift of dim `dim` of kv head `kvh` at position `pos` in a cache of `cap`
/// positions. f16: K [kv head][dim pair][position], V [kv head][position][dim pair], the even dim
/// in the low half; f32: a word per dim, same orders.
fn slot(
    precision: KvPrecision,
    d: usize,
    cap: usize,
    is_k: bool,
    (pos, kvh, dim): (usize, usize, usize),
) -> (usize, u32) {
    let (unit, shift) = match precision {
        KvPrecision::F16 => (dim / 2, 16 * (dim as u32 % 2)),
        KvPrecision::F32 => (dim, 0),
    };
    let n = units(precision, d);
    let word = if is_k {
        (kvh * n + unit) * cap + pos
    } else {
        (kvh * cap + pos) * n + unit
    };
    (word, shift)
}

/// Bits of `x` as the cache stores it: f16 (rounded to nearest even) or f32.
pub fn stored_bits(precision: KvPrecision, x: f32) -> u32 {
    match precision {
        KvPrecision::F16 => f16::from_f32(x).to_bits() as u32,
        KvPrecision::F32 => x.to_bits(),
    }
}

/// Overwrite the whole cache with `k` and `v` ([positions][kv heads][head_dim], from position 0),
/// rounded as the cache stores them. Later positions hold NaN: a kernel that lets an unwritten
/// word into a sum (even times a zero weight) gives NaN and fails its test.
pub fn fill(gpu: &Gpu, kv: &LayerKv, k: &[f32], v: &[f32]) {
    let (cap, n_kv, d) = (
        kv.capacity as usize,
        kv.n_kv_heads as usize,
        kv.head_dim as usize,
    );
    let nan = match kv.precision {
        KvPrecision::F16 => 0x7E00_7E00,
        KvPrecision::F32 => 0x7FC0_0000,
    };
    for (is_k, x, buf) in [(true, k, &kv.k), (false, v, &kv.v)] {
        let mut words = vec![nan; (buf.size() / 4) as usize];
        let mut written = vec![false; words.len()];
        for (r, row) in x.chunks(d).enumerate() {
            for (dim, &val) in row.iter().enumerate() {
                let at = (r / n_kv, r % n_kv, dim);
                let (w, shift) = slot(kv.precision, d, cap, is_k, at);
                if !written[w] {
                    (words[w], written[w]) = (0, true);
                }
                words[w] |= stored_bits(kv.precision, val) << shift;
            }
        }
        gpu.write(buf, 0, bytemuck::cast_slice(&words));
    }
}

/// Positions `lo .. lo + len` of a cache, gathered on the GPU (a K row per (kv head, unit), so a
/// large cache is never read whole).
pub struct Span {
    precision: KvPrecision,
    d: usize,
    lo: usize,
    len: usize,
    k: Vec<u32>,
    v: Vec<u32>,
}

impl Span {
    pub async fn read(gpu: &Gpu, kv: &LayerKv, lo: usize, len: usize) -> Span {
        let (cap, n_kv, d) = (
            kv.capacity as usize,
            kv.n_kv_heads as usize,
            kv.head_dim as usize,
        );
        let n = units(kv.precision, d);
        let words = n_kv * n * len;
        let (gk, gv) = (
            gpu.storage("span K", words as u64 * 4).unwrap(),
            gpu.storage("span V", words as u64 * 4).unwrap(),
        );
        let mut rec = gpu.recorder("span");
        for row in 0..n_kv * n {
            let (src, dst) = ((row * cap + lo) * 4, row * len * 4);
            rec.copy(&kv.k, src as u64, &gk, dst as u64, len as u64 * 4);
        }
        for kvh in 0..n_kv {
            let (src, dst) = ((kvh * cap + lo) * n * 4, kvh * len * n * 4);
            rec.copy(&kv.v, src as u64, &gv, dst as u64, (len * n * 4) as u64);
        }
        rec.submit();
        Span {
            precision: kv.precision,
            d,
            lo,
            len,
            k: gpu.read(&gk, 0, words).await.unwrap(),
            v: gpu.read(&gv, 0, words).await.unwrap(),
        }
    }

    /// Stored bits (f16 in the low 16, or f32) of dim `dim` of kv head `kvh` at `pos`.
    pub fn bits(&self, is_k: bool, pos: usize, kvh: usize, dim: usize) -> u32 {
        let at = (pos - self.lo, kvh, dim);
        let (w, shift) = slot(self.precision, self.d, self.len, is_k, at);
        let words = if is_k { &self.k } else { &self.v };
        match self.precision {
            KvPrecision::F16 => (words[w] >> shift) & 0xFFFF,
            KvPrecision::F32 => words[w],
        }
    }

    /// The stored value as f32.
    pub fn value(&self, is_k: bool, pos: usize, kvh: usize, dim: usize) -> f32 {
        let b = self.bits(is_k, pos, kvh, dim);
        match self.precision {
            KvPrecision::F16 => f16::from_bits(b as u16).to_f32(),
            KvPrecision::F32 => f32::from_bits(b),
        }
    }
}
