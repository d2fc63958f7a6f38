// Where a (row group, unit) sits in the packed layout of a part (src/quant/pack.rs), shared by the
// quantized-matrix module and `matvec_q8.wgsl`. Row groups of 4 rows come in blocks of
// PACK_BLOCK groups (the last block of a part may be shorter); within a block, unit u of all its
// groups is one run, group after group. Why: on CPU adapters each SIMD lane of a matvec owns a
// row group, so the lanes of one fibre now read one contiguous run per unit instead of eight
// streams a group's run apart (measured on llvmpipe: SmolLM2's Q4_1 matvecs took 16% less
// time); on GPUs the invocations of a row group still read 64 contiguous bytes, and neighbouring
// groups' runs touch.

const PACK_BLOCK: u32 = 16u;

// The first of the 4 pairs of row group g, unit u, in a part of `gt` row groups of `ku` units.
fn pair0(g: u32, u: u32, gt: u32, ku: u32) -> u32 {
    let b0 = g & ~(PACK_BLOCK - 1u);
    let lb = min(PACK_BLOCK, gt - b0);
    return (b0 * ku + u * lb + (g - b0)) * 4u;
}

// A packed Q5_0 unit's quant words q with its reordered 5th bits qh (src/quant/pack.rs,
// `q5_0_high_bits`) as 5-bit codes, one per byte: `lo` word j holds elements 4j..4j+3, `hi` word j
// elements 16+4j..16+4j+3. Word j's bits sit where a shift by j (low nibbles) or a multiply by
// 2^(4 - j) (high) puts them at bit 4 of each byte.
struct Q5Codes {
    lo: vec4<u32>,
    hi: vec4<u32>,
}

fn q5_0_codes(q: vec4<u32>, qh: u32) -> Q5Codes {
    let h = vec4<u32>(qh);
    let b4 = vec4<u32>(0x10101010u);
    let m = vec4<u32>(0x0f0f0f0fu);
    return Q5Codes((q & m) | ((h >> vec4<u32>(0u, 1u, 2u, 3u)) & b4),
                   ((q >> vec4<u32>(4u)) & m) | ((h * vec4<u32>(16u, 8u, 4u, 2u)) & b4));
}

// `scale_min` of the 12 scale bytes held in words y, z, w of `v` (a packed Q4_K auxiliary entry),
// without indexing the vector dynamically: sub-block j uses byte j & 3 of each of the three words.
fn scale_min_v(v: vec4<u32>, j: u32) -> vec2<f32> {
    let b = (v.yzw >> vec3<u32>(8u * (j & 3u))) & vec3<u32>(255u);
    let lo = vec2<u32>(b.x & 63u, b.y & 63u);
    let hi = vec2<u32>((b.z & 15u) | ((b.x >> 6u) << 4u), (b.z >> 4u) | ((b.y >> 6u) << 4u));
    return vec2<f32>(select(hi, lo, j < 4u));
}
