//! The packed GPU layout of the 32-element block formats (Q4_0, Q4_1, Q5_0, Q8_0) and of the
//! K-quants Q4_K and Q6_K, made at load.
//!
//! GGUF stores a row as blocks of `[d f16][min or high bits][quants]`: 18, 20, 22 or 34 bytes,
//! so most blocks are only 2-byte aligned and a shader needs extra loads and selects per word
//! (Q6_K's 210-byte blocks too; Q4_K's 144-byte blocks are aligned but their fields are read a
//! word at a time). The packed layout takes the same bytes of each block (a "unit" here: 32
//! elements, or 256 for the K-quants) apart into three regions, each 4-byte aligned:
//!
//! - Q: the quant bytes of every (row, unit), read as `vec4<u32>`: 16, or 32 for Q8_0; 128 for
//!   Q4_K (`qs`); 192 for Q6_K (`ql` then `qh`);
//! - A: auxiliary bytes per (row, unit): Q4_1's `d | m << 16`, Q5_0's high bits (`qh`), Q4_K's
//!   first 16 bytes (`d`, `dmin`, the 12 scale bytes: one `vec4<u32>`), Q6_K's 16 int8 scales;
//! - S: one f16 scale `d` per (row, unit) (Q4_0, Q5_0, Q8_0, Q6_K), two to a word.
//!
//! Q5_0's `qh` word is also reordered ([`q5_0_high_bits`]): the shaders want each element's 5th
//! bit at bit 4 of the byte that holds its nibble, and with GGUF's order (bit e for element e)
//! that took four shifts per byte; SwiftShader's int8 matvec spent about half its Q5_0 time
//! there (4096×640 in Chromium: 4.6–5.0 ms against Q4_1's 2.3–2.4).
//!
//! Within each region the (row, unit) pairs are ordered by groups of [`GROUP`] rows, and the
//! groups by blocks of [`BLOCK`] groups (the last block of a part may be shorter): pair
//! [`pair`]`(g, u) + r` for row `GROUP * g + r`, so within a block, unit `u` of all its groups is
//! one run. One invocation that owns a row group finds the four rows of a unit side by side; on
//! CPU adapters, where the SIMD lanes of a matvec own neighbouring groups, a fibre reads one
//! contiguous run per unit, not eight streams a group's run (`units * 64` bytes for Q4) apart:
//! SmolLM2's Q4_1 matvecs took 16% less time on llvmpipe (why, the driver does not tell); on a
//! GPU neighbouring invocations that walk the units of a group read 64-byte runs, and
//! neighbouring groups' runs touch (coalesced). Rows are padded with zeros to a multiple of
//! [`GROUP`]; the total size equals the GGUF size of the padded rows. The shaders compute the
//! same index (`shaders/packed_index.wgsl`).

use super::GgmlType;

/// Rows per group in the packed layout (the rows one matvec invocation owns).
pub const GROUP: usize = 4;
/// Row groups per block (`PACK_BLOCK` in `shaders/packed_index.wgsl`).
pub const BLOCK: usize = 16;
/// Rows per block.
pub const BLOCK_ROWS: usize = GROUP * BLOCK;

/// The first of the [`GROUP`] pairs of row group `g`, unit `u`, in a part of `groups` row groups
/// of `units` units each.
pub fn pair(g: usize, u: usize, groups: usize, units: usize) -> usize {
    let b0 = g / BLOCK * BLOCK;
    let lb = BLOCK.min(groups - b0);
    (b0 * units + u * lb + (g - b0)) * GROUP
}

/// Bytes per (row, unit) in each region (Q, A, S) for a packable type, or `None`.
pub fn regions(ty: GgmlType) -> Option<[usize; 3]> {
    Some(match ty {
        GgmlType::Q4_0 => [16, 0, 2],
        GgmlType::Q4_1 => [16, 4, 0],
        GgmlType::Q5_0 => [16, 4, 2],
        GgmlType::Q8_0 => [32, 0, 2],
        GgmlType::Q4K => [128, 16, 0],
        GgmlType::Q6K => [192, 16, 2],
        _ => return None,
    })
}

/// Where the Q, A and S bytes of a region entry start in a GGUF block of `ty`.
fn sources(ty: GgmlType) -> [usize; 3] {
    match ty {
        GgmlType::Q4_1 => [4, 0, 0],
        GgmlType::Q5_0 => [6, 2, 0],
        GgmlType::Q4K => [16, 0, 0],
        GgmlType::Q6K => [0, 192, 208],
        // Q4_0, Q8_0: d, then the quants.
        _ => [2, 0, 0],
    }
}

/// Byte offsets of the three regions in a buffer of `rows` (a multiple of [`GROUP`]) rows of
/// `units` units.
pub fn region_offsets(ty: GgmlType, rows: usize, units: usize) -> [usize; 3] {
    let [q, a, _] = regions(ty).expect("packable type");
    let n = rows * units;
    [0, n * q, n * (q + a)]
}

/// Pack whole blocks of row groups given in GGUF layout (`src` holds rows of `row_bytes` =
/// `units` blocks from the start of a block of a part to the end of a block or of the part, the
/// last group possibly short: missing rows count as zeros) into the three region slices of those
/// groups, which are contiguous in each region.
pub fn pack_groups(ty: GgmlType, src: &[u8], row_bytes: usize, units: usize) -> [Vec<u8>; 3] {
    let sizes = regions(ty).expect("packable type");
    let from = sources(ty);
    let [qb, ab, sb] = sizes;
    let block = ty.block_bytes();
    let rows = src.len().div_ceil(row_bytes);
    let groups = rows.div_ceil(GROUP);
    let n = groups * GROUP * units;
    let mut out = [vec![0u8; n * qb], vec![0u8; n * ab], vec![0u8; n * sb]];
    for row in 0..rows {
        let (g, r) = (row / GROUP, row % GROUP);
        let src_row = &src[row * row_bytes..((row + 1) * row_bytes).min(src.len())];
        for (u, b) in src_row.chunks_exact(block).enumerate() {
            let i = pair(g, u, groups, units) + r;
            for ((dst, &len), &at) in out.iter_mut().zip(&sizes).zip(&from) {
                dst[i * len..(i + 1) * len].copy_from_slice(&b[at..at + len]);
            }
            if ty == GgmlType::Q5_0 {
                let a = &mut out[1][i * 4..i * 4 + 4];
                let qh = q5_0_high_bits(u32::from_le_bytes(a.try_into().unwrap()));
                a.copy_from_slice(&qh.to_le_bytes());
            }
        }
    }
    out
}

/// Q5_0's 5th bits reordered for the packed layout. Quant word j (0..4) holds elements 4j + b
/// (low nibble of byte b) and 16 + 4j + b (high nibble); their 5th bits go to bits 8b + 4 + j
/// and 8b + j. So `(qh >> j) & 0x10101010` puts the low nibbles' bits at bit 4 of each byte, and
/// `(qh << (4 - j)) & 0x10101010` (a multiply) the high nibbles' (`q5_0_codes` in
/// `shaders/packed_index.wgsl`).
pub fn q5_0_high_bits(qh: u32) -> u32 {
    (0..32).fold(0, |out, e| {
        let (hi, j, b) = (e / 16, e % 16 / 4, e % 4);
        let at = 8 * b + j + 4 * (1 - hi);
        out | ((qh >> e) & 1) << at
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_size_equals_gguf_size() {
        for ty in [
            GgmlType::Q4_0,
            GgmlType::Q4_1,
            GgmlType::Q5_0,
            GgmlType::Q8_0,
            GgmlType::Q4K,
            GgmlType::Q6K,
        ] {
            let [q, a, s] = regions(ty).unwrap();
            assert_eq!(q + a + s, ty.block_bytes(), "{ty:?}");
        }
    }

    #[test]
    fn pack_q4_1_places_fields() {
        let ty = GgmlType::Q4_1;
        let units = 2;
        let row_bytes = 2 * 20;
        // 5 rows: one full group and a short one.
        let src: Vec<u8> = (0..5 * row_bytes).map(|i| (i % 251) as u8).collect();
        let [q, a, s] = pack_groups(ty, &src, row_bytes, units);
        assert_eq!(q.len(), 8 * units * 16);
        assert_eq!(a.len(), 8 * units * 4);
        assert!(s.is_empty());
        // Row 5 (group 1, r 1) is missing: zeros. One block of 2 groups: row 4 (group 1) unit 1
        // is at index (1*2 + 1) * 4 + 0 = 12, row 1 (group 0) unit 1 at (2 + 0) * 4 + 1 = 9.
        let i = 12;
        assert_eq!(pair(1, 1, 2, units), 12);
        let b1 = &src[row_bytes + 20..row_bytes + 40];
        assert_eq!(&q[9 * 16..10 * 16], &b1[4..]);
        let b = &src[4 * row_bytes + 20..4 * row_bytes + 40];
        assert_eq!(&q[i * 16..i * 16 + 16], &b[4..]);
        assert_eq!(&a[i * 4..i * 4 + 4], &b[..4]);
        assert!(q[13 * 16..14 * 16].iter().all(|&x| x == 0));
    }

    #[test]
    fn q5_0_high_bits_land_beside_their_nibbles() {
        // A permutation: every element's bit lands alone.
        let mut seen = 0u32;
        for e in 0..32 {
            let v = q5_0_high_bits(1 << e);
            assert_eq!(v.count_ones(), 1, "{e}");
            assert_eq!(seen & v, 0, "{e}");
            seen |= v;
        }
        assert_eq!(seen, u32::MAX);
        // Element 4j + b (low nibble of byte b of word j) at bit 8b + 4 + j; 16 + 4j + b at 8b + j.
        assert_eq!(q5_0_high_bits(1 << 6), 1 << (8 * 2 + 4 + 1));
        assert_eq!(q5_0_high_bits(1 << 31), 1 << (8 * 3 + 3));
        for j in 0..4 {
            let lo: u32 = (0..4).map(|b| 1 << (4 * j + b)).sum();
            assert_eq!(q5_0_high_bits(lo) >> j & 0x1010_1010, 0x1010_1010);
            let hi: u32 = (0..4).map(|b| 1 << (16 + 4 * j + b)).sum();
            assert_eq!(q5_0_high_bits(hi) << (4 - j) & 0x1010_1010, 0x1010_1010);
        }
    }

    #[test]
    fn pairs_run_unit_by_unit_within_blocks() {
        // 40 groups of 3 units: blocks of 16, 16 and a short one of 8, each unit a run of groups.
        let (groups, units) = (40, 3);
        let mut seen = vec![false; groups * units * GROUP];
        for g in 0..groups {
            for u in 0..units {
                let i = pair(g, u, groups, units);
                assert_eq!(i % GROUP, 0);
                for r in 0..GROUP {
                    assert!(!std::mem::replace(&mut seen[i + r], true), "{g} {u}");
                }
            }
        }
        assert!(seen.iter().all(|&s| s));
        assert_eq!(pair(1, 0, groups, units), pair(0, 0, groups, units) + GROUP);
        assert_eq!(pair(0, 1, groups, units), 16 * GROUP);
        assert_eq!(pair(33, 2, groups, units), (32 * 3 + 2 * 8 + 1) * GROUP);
    }
}
