//! GGUF/ggml tensor types on the CPU: block layouts, reference quantizers and dequantizers. The GPU
//! kernels read these same bytes directly.
//!
//! `quantize` is bit-exact with ggml's C `quantize_row_*_ref` (built without FMA contraction) for
//! Q8_0, Q8_1, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q8_K, and with gguf-py for F16
//! and BF16; `dequantize` is bit-exact with gguf-py for every type (tests/quant.rs). IQ4_NL and
//! IQ4_XS are read only: `quantize` rejects them (ggml's IQ4 quantizers are not ported).

use crate::{Error, Result};

/// ggml tensor types, numbered as in GGUF files.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum GgmlType {
    F32 = 0,
    F16 = 1,
    Q4_0 = 2,
    Q4_1 = 3,
    Q5_0 = 6,
    Q5_1 = 7,
    Q8_0 = 8,
    Q8_1 = 9,
    Q2K = 10,
    Q3K = 11,
    Q4K = 12,
    Q5K = 13,
    Q6K = 14,
    Q8K = 15,
    IQ4NL = 20,
    IQ4XS = 23,
    BF16 = 30,
}

impl GgmlType {
    pub fn from_u32(v: u32) -> Result<GgmlType> {
        use GgmlType::*;
        Ok(match v {
            0 => F32,
            1 => F16,
            2 => Q4_0,
            3 => Q4_1,
            6 => Q5_0,
            7 => Q5_1,
            8 => Q8_0,
            9 => Q8_1,
            10 => Q2K,
            11 => Q3K,
            12 => Q4K,
            13 => Q5K,
            14 => Q6K,
            15 => Q8K,
            20 => IQ4NL,
            23 => IQ4XS,
            30 => BF16,
            _ => return Err(Error::Gguf(format!("unknown tensor type id {v}"))),
        })
    }

    pub fn name(self) -> &'static str {
        use GgmlType::*;
        match self {
            F32 => "F32",
            F16 => "F16",
            Q4_0 => "Q4_0",
            Q4_1 => "Q4_1",
            Q5_0 => "Q5_0",
            Q5_1 => "Q5_1",
            Q8_0 => "Q8_0",
            Q8_1 => "Q8_1",
            Q2K => "Q2_K",
            Q3K => "Q3_K",
            Q4K => "Q4_K",
            Q5K => "Q5_K",
            Q6K => "Q6_K",
            Q8K => "Q8_K",
            IQ4NL => "IQ4_NL",
            IQ4XS => "IQ4_XS",
            BF16 => "BF16",
        }
    }

    /// Elements per block.
    pub fn block_len(self) -> usize {
        use GgmlType::*;
        match self {
            F32 | F16 | BF16 => 1,
            Q4_0 | Q4_1 | Q5_0 | Q5_1 | Q8_0 | Q8_1 | IQ4NL => 32,
            Q2K | Q3K | Q4K | Q5K | Q6K | Q8K | IQ4XS => 256,
        }
    }

    /// Bytes per block.
    pub fn block_bytes(self) -> usize {
        use GgmlType::*;
        match self {
            F32 => 4,
            F16 | BF16 => 2,
            Q4_0 => 18,
            Q4_1 => 20,
            Q5_0 => 22,
            Q5_1 => 24,
            Q8_0 => 34,
            Q8_1 => 36,
            Q2K => 84,
            Q3K => 110,
            Q4K => 144,
            Q5K => 176,
            Q6K => 210,
            Q8K => 292,
            IQ4NL => 18,
            IQ4XS => 136,
        }
    }

    /// Bytes of a row of `n` elements (`n` must be a multiple of the block length). Wraps on
    /// wasm32 for rows of 4 GiB or more: sizes read from a file go through
    /// [`row_bytes_u64`](Self::row_bytes_u64) first (`QMatrix` does).
    pub fn row_bytes(self, n: usize) -> usize {
        n / self.block_len() * self.block_bytes()
    }

    /// [`row_bytes`](Self::row_bytes) in u64; None on overflow.
    pub fn row_bytes_u64(self, n: u64) -> Option<u64> {
        (n / self.block_len() as u64).checked_mul(self.block_bytes() as u64)
    }

    /// Whether the GPU kernels (matvec, matmul, embedding) read this type.
    pub fn gpu_supported(self) -> bool {
        use GgmlType::*;
        matches!(
            self,
            F32 | F16
                | BF16
                | Q8_0
                | Q4_0
                | Q4_1
                | Q5_0
                | Q2K
                | Q3K
                | Q4K
                | Q5K
                | Q6K
                | IQ4NL
                | IQ4XS
        )
    }

    /// Shader constant selecting the decoder for this type (the GGUF type id).
    pub fn id(self) -> u32 {
        self as u32
    }
}

/// The 16 non-uniform levels an IQ4_NL/IQ4_XS 4-bit code stands for (ggml's `kvalues_iq4nl`).
pub const KVALUES_IQ4NL: [i8; 16] = [
    -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113,
];

/// Elements per K-quant super-block.
pub const QK_K: usize = 256;

/// f32 → IEEE half bits, rounded to nearest even (ggml's `GGML_FP32_TO_FP16`).
pub fn f16_bits(v: f32) -> u16 {
    half::f16::from_f32(v).to_bits()
}

/// IEEE half bits → f32 (exact).
pub fn f16_to_f32(bits: u16) -> f32 {
    half::f16::from_bits(bits).to_f32()
}

/// f32 → bfloat16 bits as ggml does it (`ggml_compute_fp32_to_bf16`): NaN keeps its top bits and
/// becomes quiet (bit 6 set), everything else rounds to nearest even (overflow goes to ±inf).
pub fn bf16_bits(v: f32) -> u16 {
    let u = v.to_bits();
    if u & 0x7fff_ffff > 0x7f80_0000 {
        return ((u >> 16) | 64) as u16;
    }
    ((u as u64 + (0x7fff + ((u >> 16) & 1)) as u64) >> 16) as u16
}

/// bfloat16 bits → f32 (exact).
pub fn bf16_to_f32(bits: u16) -> f32 {
    f32::from_bits((bits as u32) << 16)
}

/// The 6-bit scale and min of sub-block `j` (0..8) from a Q4_K/Q5_K `scales[12]` field.
pub fn get_scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

mod dequantize;
mod kquants;
pub mod pack;
mod quantize;
pub mod widen;

pub use dequantize::dequantize;
pub use quantize::quantize;
