//! Lossless re-encoding of Q4_0 and Q5_0 blocks as Q8_0, so that tensors quantized differently
//! can still be stacked into one matrix (one dispatch instead of two or three per layer).
//!
//! Q4_0 and Q5_0 store `y = (q - 8) * d` and `y = (q - 16) * d` with q in 0..16 and 0..32; Q8_0
//! stores `y = q * d` with q an int8 and the same f16 `d`. So `q - 8` (or `q - 16`) as an int8
//! beside the unchanged `d` dequantizes to the very same f32 values (ggml multiplies the same
//! integer by the same scale), at 34 instead of 18 or 22 bytes per block.

use super::GgmlType;
use crate::{Error, Result};

/// The type a stack of tensors of types `types` is stored in: their common type, or Q8_0 when
/// they are all Q8_0, Q5_0 or Q4_0 (widened losslessly); None when they cannot share one.
pub fn common_type(types: &[GgmlType]) -> Option<GgmlType> {
    let first = *types.first()?;
    if types.iter().all(|&t| t == first) {
        return Some(first);
    }
    let widenable = |t: &GgmlType| matches!(t, GgmlType::Q8_0 | GgmlType::Q5_0 | GgmlType::Q4_0);
    types.iter().all(widenable).then_some(GgmlType::Q8_0)
}

/// Q8_0 blocks with exactly the values of the whole Q4_0 or Q5_0 blocks in `src`.
pub fn to_q8_0(ty: GgmlType, src: &[u8]) -> Result<Vec<u8>> {
    let bb = ty.block_bytes();
    let offset = match ty {
        GgmlType::Q4_0 => 8,
        GgmlType::Q5_0 => 16,
        _ => {
            return Err(Error::Invalid(format!(
                "{} does not widen to Q8_0",
                ty.name()
            )))
        }
    };
    if !src.len().is_multiple_of(bb) {
        return Err(Error::Invalid(format!(
            "{} bytes are not whole {} blocks",
            src.len(),
            ty.name()
        )));
    }
    let mut out = Vec::with_capacity(src.len() / bb * GgmlType::Q8_0.block_bytes());
    for b in src.chunks_exact(bb) {
        // Q5_0 keeps the fifth bit of element j in bit j of a u32 before the nibbles.
        let (qh, qs) = match ty {
            GgmlType::Q5_0 => (u32::from_le_bytes([b[2], b[3], b[4], b[5]]), &b[6..22]),
            _ => (0, &b[2..18]),
        };
        out.extend_from_slice(&b[..2]);
        for j in 0..32 {
            let nibble = if j < 16 { qs[j] & 15 } else { qs[j - 16] >> 4 };
            let q = nibble as i32 | (((qh >> j) & 1) << 4) as i32;
            out.push((q - offset) as i8 as u8);
        }
    }
    Ok(out)
}
