// The quantized-matrix kernel family: every kernel that reads a weight in its GGUF block layout.
// Entry points: `matvec` / `matvec_xu` (decode), `matmul` (prefill, workgroup tiles) and
// `matmul_rt` / `matmul_rt_xu` (prefill, register tiles, for CPU adapters), `embedding` (row
// gather); the `_xu` variants read the activations from a uniform buffer. They share the block
// decoders below and the weight bindings `wq` / `wq4` (the same buffer seen as u32 and as
// vec4<u32>); each entry point uses only its own parameters and buffers (bindings are per entry
// point, so `embedding`'s ids/out and the `_xu` entries' uniform x may reuse binding numbers).
//
// ---------------------------------------------------------------------------------------------
// Block decoders
// ---------------------------------------------------------------------------------------------
// GGUF block decoders shared by every entry point of this file. One part of a quantized matrix is
// bound at binding 1 as raw u32 words in GGUF layout (and at binding 2 as vec4<u32>); rows are
// `row_bytes` apart. `decode(rb, u)` turns the 32-element unit `u` of the row starting at byte `rb`
// into 8 vec4: a whole block for Q8_0/Q4_0/Q4_1/Q5_0/IQ4_NL, one 32-element sub-block of a
// 256-element K-quant or IQ4_XS block, or 32 plain floats. Blocks of Q8_0, Q4_0, Q5_0, Q3_K, Q6_K
// and IQ4_NL have even but not 4-multiple sizes, so their fields are read with `ld`/`h16`/`win4`/
// `win8`, which tolerate a 2-byte misalignment. TYPE (the GGUF type id) is an override: each pipeline keeps only
// its own decoder.
// With PACKED, Q4_0/Q4_1/Q5_0/Q8_0/Q4_K/Q6_K are read from the packed layout of
// `src/quant/pack.rs` instead: quants as vec4<u32>, the auxiliary words and the f16 scale from their
// own aligned regions.

override TYPE: u32 = 0u;
override PACKED: bool = false;

@group(0) @binding(1) var<storage, read> wq: array<u32>;
@group(0) @binding(2) var<storage, read> wq4: array<vec4<u32>>;

// The 4 bytes at the even byte offset `o`, little-endian. Branch-free: both neighbouring words are
// read (loops over consecutive offsets share them once unrolled) and the halves selected.
fn ld(o: u32) -> u32 {
    let i = o >> 2u;
    let lo = wq[i];
    let hi = wq[i + 1u];
    return select(lo, (lo >> 16u) | (hi << 16u), (o & 2u) != 0u);
}

// The f16 at an even byte offset, reading only the word that holds it.
fn h16(o: u32) -> f32 {
    let v = unpack2x16float(wq[o >> 2u]);
    return select(v.x, v.y, (o & 2u) != 0u);
}

// The 4 (`win4`) or 8 (`win8`) consecutive u32 at the even byte offset `o`: one load per word
// touched, halves recombined without branches when `o` is 2 mod 4.
fn win4(o: u32) -> array<u32, 4> {
    let b = o >> 2u;
    let mis = (o & 2u) != 0u;
    var a: array<u32, 5>;
    for (var i = 0u; i < 5u; i++) {
        a[i] = wq[b + i];
    }
    var r: array<u32, 4>;
    for (var i = 0u; i < 4u; i++) {
        r[i] = select(a[i], (a[i] >> 16u) | (a[i + 1u] << 16u), mis);
    }
    return r;
}

fn win8(o: u32) -> array<u32, 8> {
    let b = o >> 2u;
    let mis = (o & 2u) != 0u;
    var a: array<u32, 9>;
    for (var i = 0u; i < 9u; i++) {
        a[i] = wq[b + i];
    }
    var r: array<u32, 8>;
    for (var i = 0u; i < 8u; i++) {
        r[i] = select(a[i], (a[i] >> 16u) | (a[i + 1u] << 16u), mis);
    }
    return r;
}

// Four 4-bit fields of the four bytes of `v`, starting at bit `sh` of each byte.
fn nib4(v: u32, sh: u32) -> vec4<f32> {
    return vec4<f32>((vec4<u32>(v) >> vec4<u32>(sh, sh + 8u, sh + 16u, sh + 24u)) & vec4<u32>(15u));
}

// Four 2-bit fields of the four bytes of `v`, starting at bit `sh` of each byte.
fn crumb4(v: u32, sh: u32) -> vec4<f32> {
    return vec4<f32>((vec4<u32>(v) >> vec4<u32>(sh, sh + 8u, sh + 16u, sh + 24u)) & vec4<u32>(3u));
}

// Bits sh .. sh+3 of `v`.
fn bit4(v: u32, sh: u32) -> vec4<f32> {
    return vec4<f32>((vec4<u32>(v) >> vec4<u32>(sh, sh + 1u, sh + 2u, sh + 3u)) & vec4<u32>(1u));
}

// ggml's kvalues_iq4nl: the level each IQ4_NL/IQ4_XS 4-bit code stands for.
const KV_IQ4 = array<f32, 16>(-127.0, -104.0, -83.0, -65.0, -49.0, -35.0, -22.0, -10.0,
                              1.0, 13.0, 25.0, 38.0, 53.0, 69.0, 89.0, 113.0);

// The levels of the four 4-bit codes of the four bytes of `v` at bit `sh` of each byte.
fn kv4(v: u32, sh: u32) -> vec4<f32> {
    let c = (vec4<u32>(v) >> vec4<u32>(sh, sh + 8u, sh + 16u, sh + 24u)) & vec4<u32>(15u);
    return vec4<f32>(KV_IQ4[c.x], KV_IQ4[c.y], KV_IQ4[c.z], KV_IQ4[c.w]);
}

// The four bytes of `v` as signed int8.
fn i8x4(v: u32) -> vec4<f32> {
    let s = bitcast<vec4<i32>>(vec4<u32>(v << 24u, v << 16u, v << 8u, v)) >> vec4<u32>(24u);
    return vec4<f32>(s);
}

// Byte `b` of the 12 packed scale bytes of the K-quant block at word `o` (they start at word o+1).
fn kbyte(o: u32, b: u32) -> u32 {
    return (wq[o + 1u + (b >> 2u)] >> ((b & 3u) * 8u)) & 255u;
}

// ggml's get_scale_min_k4: 6-bit scale and min of sub-block j (0..8).
fn scale_min(o: u32, j: u32) -> vec2<f32> {
    if (j < 4u) {
        return vec2<f32>(f32(kbyte(o, j) & 63u), f32(kbyte(o, j + 4u) & 63u));
    }
    let a = kbyte(o, j + 4u);
    return vec2<f32>(f32((a & 15u) | ((kbyte(o, j - 4u) >> 6u) << 4u)),
                     f32((a >> 4u) | ((kbyte(o, j) >> 6u) << 4u)));
}

// `scale_min` of the 12 scale bytes held in words y, z, w of `v` (a packed Q4_K auxiliary entry),
// without indexing the vector dynamically: sub-block j uses byte j & 3 of each of the three words.
fn scale_min_v(v: vec4<u32>, j: u32) -> vec2<f32> {
    let b = (v.yzw >> vec3<u32>(8u * (j & 3u))) & vec3<u32>(255u);
    let lo = vec2<u32>(b.x & 63u, b.y & 63u);
    let hi = vec2<u32>((b.z & 15u) | ((b.x >> 6u) << 4u), (b.z >> 4u) | ((b.y >> 6u) << 4u));
    return vec2<f32>(select(hi, lo, j < 4u));
}

// One decoded unit: weights = a * q + b, with q small integers (or, for plain floats and Q2_K, the
// weights themselves, a = 1, b = 0) so that a dot product can apply the block's scale and offset
// once per unit instead of per element.
struct Unit {
    q: array<vec4<f32>, 8>,
    a: f32,
    b: f32,
}

fn decode_unit(rb: u32, u: u32) -> Unit {
    var w: array<vec4<f32>, 8>;
    var a = 1.0;
    var b = 0.0;
    if (TYPE == 0u) { // F32
        let o = (rb >> 2u) + u * 32u;
        for (var i = 0u; i < 8u; i++) {
            let b = o + 4u * i;
            w[i] = bitcast<vec4<f32>>(vec4<u32>(wq[b], wq[b + 1u], wq[b + 2u], wq[b + 3u]));
        }
    } else if (TYPE == 1u) { // F16
        let o = (rb >> 2u) + u * 16u;
        for (var i = 0u; i < 8u; i++) {
            w[i] = vec4<f32>(unpack2x16float(wq[o + 2u * i]), unpack2x16float(wq[o + 2u * i + 1u]));
        }
    } else if (TYPE == 30u) { // BF16: the high half of an f32
        let o = (rb >> 2u) + u * 16u;
        for (var i = 0u; i < 8u; i++) {
            let a = wq[o + 2u * i];
            let b = wq[o + 2u * i + 1u];
            w[i] = bitcast<vec4<f32>>(vec4<u32>(a << 16u, a & 0xffff0000u, b << 16u, b & 0xffff0000u));
        }
    } else if (TYPE == 8u) { // Q8_0: d, qs[32] int8
        let o = rb + u * 34u;
        let d = h16(o);
        let q = win8(o + 2u);
        a = d;
        for (var i = 0u; i < 8u; i++) {
            w[i] = i8x4(q[i]);
        }
    } else if (TYPE == 2u) { // Q4_0: d, qs[16]; element j low nibble, j+16 high nibble
        let o = rb + u * 18u;
        let d = h16(o);
        let qs = win4(o + 2u);
        a = d;
        b = -8.0 * d;
        for (var i = 0u; i < 4u; i++) {
            let q = qs[i];
            w[i] = nib4(q, 0u);
            w[i + 4u] = nib4(q, 4u);
        }
    } else if (TYPE == 3u) { // Q4_1: d, m, qs[16]; blocks are 20 bytes, always aligned
        let o = (rb + u * 20u) >> 2u;
        let dm = unpack2x16float(wq[o]);
        a = dm.x;
        b = dm.y;
        for (var i = 0u; i < 4u; i++) {
            let q = wq[o + 1u + i];
            w[i] = nib4(q, 0u);
            w[i + 4u] = nib4(q, 4u);
        }
    } else if (TYPE == 6u) { // Q5_0: d, qh (bit e = 5th bit of element e), qs[16]
        let o = rb + u * 22u;
        let d = h16(o);
        let qh = ld(o + 2u);
        let qs = win4(o + 6u);
        a = d;
        b = -16.0 * d;
        for (var i = 0u; i < 4u; i++) {
            let q = qs[i];
            w[i] = fma(bit4(qh, 4u * i), vec4<f32>(16.0), nib4(q, 0u));
            w[i + 4u] = fma(bit4(qh, 16u + 4u * i), vec4<f32>(16.0), nib4(q, 4u));
        }
    } else if (TYPE == 12u) { // Q4_K: d, dmin, scales[12], qs[128]; 144-byte blocks
        let o = (rb + (u >> 3u) * 144u) >> 2u;
        let s = u & 7u;
        let dm = unpack2x16float(wq[o]);
        let sm = scale_min(o, s);
        a = dm.x * sm.x;
        b = -(dm.y * sm.y);
        let q0 = o + 4u + 8u * (s >> 1u);
        let sh = 4u * (s & 1u);
        for (var i = 0u; i < 8u; i++) {
            w[i] = nib4(wq[q0 + i], sh);
        }
    } else if (TYPE == 13u) { // Q5_K: d, dmin, scales[12], qh[32], qs[128]; 176-byte blocks
        let o = (rb + (u >> 3u) * 176u) >> 2u;
        let s = u & 7u;
        let dm = unpack2x16float(wq[o]);
        let sm = scale_min(o, s);
        a = dm.x * sm.x;
        b = -(dm.y * sm.y);
        let q0 = o + 12u + 8u * (s >> 1u);
        let sh = 4u * (s & 1u);
        for (var i = 0u; i < 8u; i++) {
            let h = (vec4<u32>(wq[o + 4u + i]) >> vec4<u32>(s, s + 8u, s + 16u, s + 24u)) & vec4<u32>(1u);
            w[i] = fma(vec4<f32>(h), vec4<f32>(16.0), nib4(wq[q0 + i], sh));
        }
    } else if (TYPE == 14u) { // Q6_K: ql[128], qh[64], scales[16] int8, d; 210-byte blocks
        let o = rb + (u >> 3u) * 210u;
        let s = u & 7u;
        let half = s >> 2u;
        let q = s & 3u;
        let ql = o + 64u * half + 32u * (q & 1u);
        let nsh = 4u * (q >> 1u);
        let qh = o + 128u + 32u * half;
        let hsh = 2u * q;
        let sc = i8x4(ld(o + 192u + 8u * half + 2u * q));
        a = h16(o + 208u);
        let l = win8(ql);
        let h = win8(qh);
        for (var i = 0u; i < 8u; i++) {
            // Integer-valued and exact: (q - 32) times its int8 sub-block scale.
            let v = fma(crumb4(h[i], hsh), vec4<f32>(16.0), nib4(l[i], nsh)) - 32.0;
            w[i] = select(sc.y, sc.x, i < 4u) * v;
        }
    } else if (TYPE == 10u) { // Q2_K: scales[16] (scale | min << 4), qs[64], d, dmin; 84 bytes
        let o = (rb + (u >> 3u) * 84u) >> 2u;
        let s = u & 7u;
        let dm = unpack2x16float(wq[o + 20u]);
        let sc = wq[o + (s >> 1u)] >> (16u * (s & 1u)); // scale bytes 2s, 2s + 1
        let dl = dm.x * vec2<f32>(f32(sc & 15u), f32((sc >> 8u) & 15u));
        let ml = dm.y * vec2<f32>(f32((sc >> 4u) & 15u), f32((sc >> 12u) & 15u));
        let q0 = o + 4u + 8u * (s >> 2u);
        for (var i = 0u; i < 8u; i++) {
            // A min per 16 elements does not fit one offset b: the weights themselves (a = 1),
            // dl * q exact so one rounding as in ggml.
            let j = select(1u, 0u, i < 4u);
            w[i] = dl[j] * crumb4(wq[q0 + i], 2u * (s & 3u)) - ml[j];
        }
    } else if (TYPE == 11u) { // Q3_K: hmask[32], qs[64], scales[12] (16 × 6 bits), d; 110 bytes
        let o = rb + (u >> 3u) * 110u;
        let s = u & 7u;
        // Scales 2s, 2s + 1: low nibbles from bytes 2(s & 3), +1 (high nibbles when s >= 4), top
        // two bits from bytes 8 + 2(s & 1), +1 at bit 2(s >> 1).
        let lo = ld(o + 96u + 2u * (s & 3u)) >> (4u * (s >> 2u));
        let hi = ld(o + 104u + 2u * (s & 1u)) >> (2u * (s >> 1u));
        let sc = vec2<f32>(f32((lo & 15u) | ((hi & 3u) << 4u)),
                           f32(((lo >> 8u) & 15u) | (((hi >> 8u) & 3u) << 4u))) - 32.0;
        a = h16(o + 108u);
        let h = win8(o);
        let l = win8(o + 32u + 32u * (s >> 2u));
        for (var i = 0u; i < 8u; i++) {
            // q - 4 unless hmask bit s is set, times its scale: integer-valued and exact.
            let hb = (vec4<u32>(h[i]) >> vec4<u32>(s, s + 8u, s + 16u, s + 24u)) & vec4<u32>(1u);
            let v = crumb4(l[i], 2u * (s & 3u)) + 4.0 * vec4<f32>(hb) - 4.0;
            w[i] = select(sc.y, sc.x, i < 4u) * v;
        }
    } else if (TYPE == 20u) { // IQ4_NL: d, qs[16] as Q4_0, codes pick non-uniform levels
        let o = rb + u * 18u;
        a = h16(o);
        let qs = win4(o + 2u);
        for (var i = 0u; i < 4u; i++) {
            w[i] = kv4(qs[i], 0u);
            w[i + 4u] = kv4(qs[i], 4u);
        }
    } else if (TYPE == 23u) { // IQ4_XS: d, scales_h, scales_l[4], qs[128]; 136-byte blocks
        let o = (rb + (u >> 3u) * 136u) >> 2u;
        let s = u & 7u;
        let w0 = wq[o];
        a = unpack2x16float(w0).x;
        // 6-bit scale: 4 bits from scales_l, 2 from scales_h; levels times (scale - 32) are exact.
        let ls = ((wq[o + 1u] >> (4u * s)) & 15u) | (((w0 >> (16u + 2u * s)) & 3u) << 4u);
        let sc = f32(ls) - 32.0;
        for (var i = 0u; i < 4u; i++) {
            let q = wq[o + 2u + 4u * s + i];
            w[i] = sc * kv4(q, 0u);
            w[i + 4u] = sc * kv4(q, 4u);
        }
    }
    return Unit(w, a, b);
}

// Unit `u` of row `row` of a packed part of `rows` rows and `ku` units per row (src/quant/pack.rs):
// (row, unit) pair i = ((row / 4) * ku + u) * 4 + row % 4 of n = rows_padded * ku pairs; the quant
// region holds n runs of 4 (8 for Q8_0) words, then n auxiliary words (Q4_1, Q5_0), then n f16
// scales (Q4_0, Q5_0, Q8_0). For Q4_K and Q6_K the pairs are (row, 256-element block) and unit u
// is sub-block u % 8 of block u / 8 (see `decode_packed_k`).
fn decode_packed(row: u32, u: u32, rows: u32, ku: u32) -> Unit {
    if (TYPE == 12u || TYPE == 14u) {
        return decode_packed_k(row, u, rows, ku);
    }
    let i = ((row >> 2u) * ku + u) * 4u + (row & 3u);
    let n = ((rows + 3u) & ~3u) * ku;
    var w: array<vec4<f32>, 8>;
    var a = 1.0;
    var b = 0.0;
    if (TYPE == 8u) { // Q8_0
        let s = unpack2x16float(wq[8u * n + (i >> 1u)]);
        a = select(s.x, s.y, (i & 1u) != 0u);
        let q0 = wq4[2u * i];
        let q1 = wq4[2u * i + 1u];
        for (var j = 0u; j < 4u; j++) {
            w[j] = i8x4(q0[j]);
            w[j + 4u] = i8x4(q1[j]);
        }
    } else {
        let q = wq4[i];
        for (var j = 0u; j < 4u; j++) {
            w[j] = nib4(q[j], 0u);
            w[j + 4u] = nib4(q[j], 4u);
        }
        if (TYPE == 3u) { // Q4_1: aux = d | m << 16
            let dm = unpack2x16float(wq[4u * n + i]);
            a = dm.x;
            b = dm.y;
        } else { // Q4_0, Q5_0: d from the scale region
            let so = select(4u * n, 5u * n, TYPE == 6u);
            let s = unpack2x16float(wq[so + (i >> 1u)]);
            a = select(s.x, s.y, (i & 1u) != 0u);
            b = -8.0 * a;
            if (TYPE == 6u) { // Q5_0: aux = the 5th bits
                let qh = wq[4u * n + i];
                b = -16.0 * a;
                for (var j = 0u; j < 4u; j++) {
                    w[j] = fma(bit4(qh, 4u * j), vec4<f32>(16.0), w[j]);
                    w[j + 4u] = fma(bit4(qh, 16u + 4u * j), vec4<f32>(16.0), w[j + 4u]);
                }
            }
        }
    }
    return Unit(w, a, b);
}

// Packed Q4_K / Q6_K: pair i = ((row / 4) * kb + u / 8) * 4 + row % 4 of n = rows_padded * kb
// (kb blocks per row). Q4_K: n runs of 8 vec4 (qs), then n vec4 (d | dmin << 16, 12 scale bytes).
// Q6_K: n runs of 12 vec4 (ql[128], qh[64]), then n runs of 16 int8 scales, then n f16 d. The
// same values and arithmetic as `decode_unit`'s GGUF decoders, from 3 (Q4_K) or 6 (Q6_K) loads.
fn decode_packed_k(row: u32, u: u32, rows: u32, ku: u32) -> Unit {
    let kb = ku >> 3u;
    let i = ((row >> 2u) * kb + (u >> 3u)) * 4u + (row & 3u);
    let n = ((rows + 3u) & ~3u) * kb;
    let s = u & 7u;
    var w: array<vec4<f32>, 8>;
    var a = 1.0;
    var b = 0.0;
    if (TYPE == 12u) { // Q4_K
        let aux = wq4[8u * n + i];
        let dm = unpack2x16float(aux.x);
        let sm = scale_min_v(aux, s);
        a = dm.x * sm.x;
        b = -(dm.y * sm.y);
        let q0 = wq4[8u * i + 2u * (s >> 1u)];
        let q1 = wq4[8u * i + 2u * (s >> 1u) + 1u];
        let sh = 4u * (s & 1u);
        for (var j = 0u; j < 4u; j++) {
            w[j] = nib4(q0[j], sh);
            w[j + 4u] = nib4(q1[j], sh);
        }
    } else { // Q6_K
        let half = s >> 2u;
        let q = s & 3u;
        let l = 12u * i + 4u * half + 2u * (q & 1u);
        let h = 12u * i + 8u + 2u * half;
        let l0 = wq4[l];
        let l1 = wq4[l + 1u];
        let h0 = wq4[h];
        let h1 = wq4[h + 1u];
        let nsh = 4u * (q >> 1u);
        let hsh = 2u * q;
        let sc = i8x4(wq[48u * n + 4u * i + (s >> 1u)] >> (16u * (s & 1u)));
        let d = unpack2x16float(wq[52u * n + (i >> 1u)]);
        a = select(d.x, d.y, (i & 1u) != 0u);
        for (var j = 0u; j < 4u; j++) {
            // As in `decode_unit`: (q - 32) times the int8 sub-block scale, exact.
            let v0 = fma(crumb4(h0[j], hsh), vec4<f32>(16.0), nib4(l0[j], nsh)) - 32.0;
            let v1 = fma(crumb4(h1[j], hsh), vec4<f32>(16.0), nib4(l1[j], nsh)) - 32.0;
            w[j] = sc.x * v0;
            w[j + 4u] = sc.y * v1;
        }
    }
    return Unit(w, a, b);
}

// Unit `u` of row `row` (of a part of `rows` rows, `ku` units and `row_bytes` bytes per row) in
// whichever layout the pipeline reads.
fn decode_row(row: u32, u: u32, rows: u32, ku: u32, row_bytes: u32) -> Unit {
    if (PACKED) {
        return decode_packed(row, u, rows, ku);
    }
    return decode_unit(row * row_bytes, u);
}

// The 32 dequantized weights of a unit (as ggml computes them: one rounding of a * q + b; Q2_K
// rounds once in its decoder, and a * q + b with a = 1, b = 0 leaves that exact).
fn decode(row: u32, u: u32, rows: u32, ku: u32, row_bytes: u32) -> array<vec4<f32>, 8> {
    let r = decode_row(row, u, rows, ku, row_bytes);
    var w: array<vec4<f32>, 8>;
    for (var i = 0u; i < 8u; i++) {
        w[i] = fma(r.q[i], vec4<f32>(r.a), vec4<f32>(r.b));
    }
    return w;
}

// ---------------------------------------------------------------------------------------------
// matvec
// ---------------------------------------------------------------------------------------------
// matvec (decode): y[t, r] = sum_j W[r, j] * x[t, j] (+ bias[r]) for TOK (1..4) tokens at once,
// over the rows of one part of W (a dispatch per part; rows land at y_row0 + r).
// Work distribution: workgroups of WG invocations; TPR consecutive invocations share a group of
// 4 rows, so a workgroup covers 4 * WG / TPR rows. Each invocation walks the 32-element units of its
// rows with stride TPR (on GPUs neighbouring invocations read neighbouring blocks), loads the TOK
// activation units once and dots them with all 4 rows, each decoded once per unit as integer codes
// q with a scale a and offset b (w = a q + b, applied once per unit). TPR partial sums are reduced
// in workgroup memory. On CPU adapters (lavapipe, SwiftShader) TPR is 1: every invocation owns its
// rows, all invocations read the same activations at the same time, and `matvec_xu` takes them
// from a uniform buffer, whose lane-uniform loads such drivers make cheap (storage loads there are
// per-lane loops). WG, TPR and the x binding are chosen per adapter (src/kernels/matvec.rs).

struct MatvecParams {
    rows: u32,      // rows in this part
    k: u32,         // columns (elements), a multiple of 32
    row_bytes: u32,
    n: u32,         // total rows = row stride of y
    y_row0: u32,    // first row of this part
    tok0: u32,      // first token of this dispatch
    n1: u32,        // with a split output (n1 > 0): rows of y, then n2 rows of y2 (see store_y)
    n2: u32,
}

override TOK: u32 = 1u;
override TPR: u32 = 1u;
// Row groups (of 4) per invocation group when TOK is 1: 2 loads each unit of x once for 8 rows
// (on CPU adapters activation loads cost as much as weight loads).
override MV_G: u32 = 1u;
override WG: u32 = 64u;
override HAS_BIAS: bool = false;
// GLU feed-forward in one dispatch: the part holds [gate; up] (2f rows); the invocations of row
// group g also compute up group g + f/4 and store act(gate) * up as f outputs. 0: plain matvec,
// 1: SiLU (SwiGLU), 2: GELU-tanh (GeGLU).
override GLU: u32 = 0u;

@group(0) @binding(0) var<uniform> pv: MatvecParams;
@group(0) @binding(3) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(3) var<uniform> xu: array<vec4<f32>, 4096>; // 64 KiB: TOK * k <= 16384
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(5) var<storage, read> bias: array<f32>;
@group(0) @binding(6) var<storage, read_write> y2: array<f32>;
@group(0) @binding(7) var<storage, read_write> y3: array<f32>;

// Store output row `row` (of n) of token t. With a split (n1 > 0) a stacked [q; k; v] weight
// writes three outputs: rows [0, n1) to y, [n1, n1 + n2) to y2 and the rest to y3, each with its
// own row stride. Without one, y2 and y3 are bound to small spare buffers and never written.
fn store_y(t: u32, row: u32, n: u32, n1: u32, n2: u32, v: f32) {
    if (n1 == 0u) {
        y[t * n + row] = v;
    } else if (row < n1) {
        y[t * n1 + row] = v;
    } else if (row < n1 + n2) {
        y2[t * n2 + row - n1] = v;
    } else {
        y3[t * (n - n1 - n2) + row - n1 - n2] = v;
    }
}

var<workgroup> red: array<vec4<f32>, 256>; // [token][invocation], TOK * WG <= 256

// One unit of activations for every token.
alias XUnit = array<array<vec4<f32>, 8>, 4>;

// Several tokens: acc[t][r] += row (4g + r) · x[t] over unit u (each row decoded once for all).
fn mv_unit(g: u32, u: u32, xs: XUnit, acc: ptr<function, array<vec4<f32>, 4>>) {
    let ku = pv.k / 32u;
    var sx: array<f32, 4>;
    for (var t = 0u; t < TOK; t++) {
        var s = xs[t][0];
        for (var i = 1u; i < 8u; i++) {
            s += xs[t][i];
        }
        sx[t] = (s.x + s.y) + (s.z + s.w);
    }
    for (var r = 0u; r < 4u; r++) {
        // Rows past the end of the part decode row 4g again (always present) and are not stored.
        let row = select(4u * g, 4u * g + r, 4u * g + r < pv.rows);
        let w = decode_row(row, u, pv.rows, ku, pv.row_bytes);
        for (var t = 0u; t < TOK; t++) {
            var s = w.q[0] * xs[t][0];
            for (var i = 1u; i < 8u; i++) {
                s = fma(w.q[i], xs[t][i], s);
            }
            // w·x = a (q·x) + b Σx (b is a literal 0 for formats without offset: Σx folds away).
            (*acc)[t][r] += fma(w.a, (s.x + s.y) + (s.z + s.w), w.b * sx[t]);
        }
    }
}

// One token: the four rows of group g dotted with one unit of x, given as eight named vec4 (no
// private arrays: CPU adapters keep these in registers, while arrays indexed in loops may be
// spilled to per-lane memory).
fn mv_rows(g: u32, u: u32, x0: vec4<f32>, x1: vec4<f32>, x2: vec4<f32>, x3: vec4<f32>,
        x4: vec4<f32>, x5: vec4<f32>, x6: vec4<f32>, x7: vec4<f32>) -> vec4<f32> {
    let sv = ((x0 + x1) + (x2 + x3)) + ((x4 + x5) + (x6 + x7));
    let sx = (sv.x + sv.y) + (sv.z + sv.w);
    var d = vec4<f32>(0.0);
    for (var r = 0u; r < 4u; r++) {
        let row = select(4u * g, 4u * g + r, 4u * g + r < pv.rows);
        let w = decode_row(row, u, pv.rows, pv.k / 32u, pv.row_bytes);
        var s = w.q[0] * x0;
        s = fma(w.q[1], x1, s);
        s = fma(w.q[2], x2, s);
        s = fma(w.q[3], x3, s);
        s = fma(w.q[4], x4, s);
        s = fma(w.q[5], x5, s);
        s = fma(w.q[6], x6, s);
        s = fma(w.q[7], x7, s);
        d[r] = fma(w.a, (s.x + s.y) + (s.z + s.w), w.b * sx);
    }
    return d;
}

// Sum the TPR partial sums of a row group (the result is valid in the group's first lane).
fn mv_reduce(li: u32, acc: array<vec4<f32>, 4>) -> array<vec4<f32>, 4> {
    if (TPR == 1u) {
        return acc;
    }
    let lane = li % TPR;
    var v = acc;
    for (var t = 0u; t < TOK; t++) {
        red[t * WG + li] = acc[t];
    }
    workgroupBarrier();
    for (var st = TPR / 2u; st > 0u; st >>= 1u) {
        if (lane < st) {
            for (var t = 0u; t < TOK; t++) {
                red[t * WG + li] += red[t * WG + li + st];
            }
        }
        workgroupBarrier();
    }
    for (var t = 0u; t < TOK; t++) {
        v[t] = red[t * WG + li];
    }
    workgroupBarrier(); // `red` may be reused by a second reduction
    return v;
}

// The GLU gate activations (the same formulas as shaders/elementwise.wgsl).
fn glu_gate(x: vec4<f32>) -> vec4<f32> {
    if (GLU == 1u) {
        return x / (vec4<f32>(1.0) + exp(-x));
    }
    let u = 0.7978845608028654 * x * (vec4<f32>(1.0) + 0.044715 * x * x);
    let e = exp(2.0 * clamp(u, vec4<f32>(-15.0), vec4<f32>(15.0)));
    return 0.5 * x * (vec4<f32>(2.0) - 2.0 / (e + vec4<f32>(1.0)));
}

// Store the reduced sums of row group g (GLU: act(gate group g) * up group g + f/4 as f outputs).
fn mv_store(g: u32, li: u32, acc: array<vec4<f32>, 4>, up: array<vec4<f32>, 4>) {
    let v = mv_reduce(li, acc);
    var w = up;
    if (GLU != 0u) {
        w = mv_reduce(li, up);
    }
    if (li % TPR != 0u) {
        return;
    }
    let rows = select(pv.rows, pv.rows / 2u, GLU != 0u);
    let n = select(pv.n, pv.n / 2u, GLU != 0u);
    for (var t = 0u; t < TOK; t++) {
        var o = v[t];
        if (GLU != 0u) {
            o = glu_gate(o) * w[t];
        }
        for (var r = 0u; r < 4u; r++) {
            let row = 4u * g + r;
            if (row < rows) {
                var y1 = o[r];
                if (HAS_BIAS) {
                    y1 += bias[pv.y_row0 + row];
                }
                store_y(pv.tok0 + t, pv.y_row0 + row, n, pv.n1, pv.n2, y1);
            }
        }
    }
}

// One token: acc[0] (and with GLU up[0]) += unit u of row group g (and of its up group).
fn mv_tok1(g: u32, u: u32, x0: vec4<f32>, x1: vec4<f32>, x2: vec4<f32>, x3: vec4<f32>,
        x4: vec4<f32>, x5: vec4<f32>, x6: vec4<f32>, x7: vec4<f32>,
        acc: ptr<function, array<vec4<f32>, 4>>, up: ptr<function, array<vec4<f32>, 4>>) {
    (*acc)[0] += mv_rows(g, u, x0, x1, x2, x3, x4, x5, x6, x7);
    if (GLU != 0u) {
        (*up)[0] += mv_rows(g + pv.rows / 8u, u, x0, x1, x2, x3, x4, x5, x6, x7);
    }
}

// Several tokens: the same with every token's unit of x.
fn mv_toks(g: u32, u: u32, xs: XUnit, acc: ptr<function, array<vec4<f32>, 4>>,
        up: ptr<function, array<vec4<f32>, 4>>) {
    mv_unit(g, u, xs, acc);
    if (GLU != 0u) {
        mv_unit(g + pv.rows / 8u, u, xs, up);
    }
}

// Whether row group g computes outputs (with GLU only the gate half has groups of its own).
fn mv_live(g: u32) -> bool {
    return 4u * g < select(pv.rows, pv.rows / 2u, GLU != 0u);
}

fn mv_group(wid: vec3<u32>, nwg: vec3<u32>, li: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * (WG / TPR) + li / TPR;
}

// The second row group of an invocation (MV_G = 2, one token): accumulate, then store.
fn mv_tok1_second(g: u32, u: u32, x0: vec4<f32>, x1: vec4<f32>, x2: vec4<f32>, x3: vec4<f32>,
        x4: vec4<f32>, x5: vec4<f32>, x6: vec4<f32>, x7: vec4<f32>,
        acc: ptr<function, array<vec4<f32>, 4>>, up: ptr<function, array<vec4<f32>, 4>>) {
    if (mv_live(g + 1u)) {
        (*acc)[1] += mv_rows(g + 1u, u, x0, x1, x2, x3, x4, x5, x6, x7);
        if (GLU != 0u) {
            (*up)[1] += mv_rows(g + 1u + pv.rows / 8u, u, x0, x1, x2, x3, x4, x5, x6, x7);
        }
    }
}

fn mv_store_all(g: u32, li: u32, acc: array<vec4<f32>, 4>, up: array<vec4<f32>, 4>) {
    mv_store(g, li, acc, up);
    if (MV_G == 2u && TOK == 1u) {
        var a2: array<vec4<f32>, 4>;
        var u2: array<vec4<f32>, 4>;
        a2[0] = acc[1];
        u2[0] = up[1];
        mv_store(g + 1u, li, a2, u2);
    }
}

@compute @workgroup_size(WG)
fn matvec(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
    let g = mv_group(wid, nwg, li) * select(1u, MV_G, TOK == 1u);
    var acc: array<vec4<f32>, 4>;
    var up: array<vec4<f32>, 4>;
    if (mv_live(g)) {
        for (var u = li % TPR; u < pv.k / 32u; u += TPR) {
            if (TOK == 1u) {
                let b = pv.tok0 * (pv.k / 4u) + u * 8u;
                let x0 = x[b];
                let x1 = x[b + 1u];
                let x2 = x[b + 2u];
                let x3 = x[b + 3u];
                let x4 = x[b + 4u];
                let x5 = x[b + 5u];
                let x6 = x[b + 6u];
                let x7 = x[b + 7u];
                mv_tok1(g, u, x0, x1, x2, x3, x4, x5, x6, x7, &acc, &up);
                if (MV_G == 2u) {
                    mv_tok1_second(g, u, x0, x1, x2, x3, x4, x5, x6, x7, &acc, &up);
                }
                continue;
            }
            var xs: XUnit;
            for (var t = 0u; t < TOK; t++) {
                let xb = (pv.tok0 + t) * (pv.k / 4u) + u * 8u;
                for (var i = 0u; i < 8u; i++) {
                    xs[t][i] = x[xb + i];
                }
            }
            mv_toks(g, u, xs, &acc, &up);
        }
    }
    mv_store_all(g, li, acc, up);
}

// matvec with the activations in a uniform buffer (bound from offset 0, 64 KiB).
@compute @workgroup_size(WG)
fn matvec_xu(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
    let g = mv_group(wid, nwg, li) * select(1u, MV_G, TOK == 1u);
    var acc: array<vec4<f32>, 4>;
    var up: array<vec4<f32>, 4>;
    if (mv_live(g)) {
        for (var u = li % TPR; u < pv.k / 32u; u += TPR) {
            if (TOK == 1u) {
                let b = pv.tok0 * (pv.k / 4u) + u * 8u;
                let x0 = xu[b];
                let x1 = xu[b + 1u];
                let x2 = xu[b + 2u];
                let x3 = xu[b + 3u];
                let x4 = xu[b + 4u];
                let x5 = xu[b + 5u];
                let x6 = xu[b + 6u];
                let x7 = xu[b + 7u];
                mv_tok1(g, u, x0, x1, x2, x3, x4, x5, x6, x7, &acc, &up);
                if (MV_G == 2u) {
                    mv_tok1_second(g, u, x0, x1, x2, x3, x4, x5, x6, x7, &acc, &up);
                }
                continue;
            }
            var xs: XUnit;
            for (var t = 0u; t < TOK; t++) {
                let xb = (pv.tok0 + t) * (pv.k / 4u) + u * 8u;
                for (var i = 0u; i < 8u; i++) {
                    xs[t][i] = xu[xb + i];
                }
            }
            mv_toks(g, u, xs, &acc, &up);
        }
    }
    mv_store_all(g, li, acc, up);
}

// ---------------------------------------------------------------------------------------------
// matmul
// ---------------------------------------------------------------------------------------------
// matmul (prefill): y[t, r] = sum_j W[r, j] * x[t, j] (+ bias[r]) for all m tokens, over the rows
// of one part of W (a dispatch per part; rows land at y_row0 + r).
// Work distribution: a 64-invocation workgroup computes a 32-token x 32-row output tile, each
// invocation a 4x4 block (tokens 4*ty.., rows 4*tx..). The k loop advances one 32-element unit per
// step: invocations 0..31 each decode one weight row's unit (so every weight unit is dequantized
// once per tile and reused by all 32 tokens) while invocations 32..63 each load one token's 32
// activations; both tiles are stored k-major in workgroup memory (8 KiB) so the inner loop reads
// one vec4 of tokens and one vec4 of rows per k and does 16 FMAs. Edges (m, n not multiples of 32)
// are zero-filled on load and masked on store.

struct MatmulParams {
    rows: u32,      // rows in this part
    k: u32,
    row_bytes: u32,
    n: u32,         // total rows = row stride of y
    y_row0: u32,
    m: u32,
    tiles_n: u32,   // row tiles in this part
    tiles: u32,     // row tiles x token tiles
    n1: u32,        // split output, as in MatvecParams
    n2: u32,
    _pad0: u32,
    _pad1: u32,
}


@group(0) @binding(0) var<uniform> pm: MatmulParams;

var<workgroup> ws: array<vec4<f32>, 256>; // [kk][row / 4]
var<workgroup> xs: array<vec4<f32>, 256>; // [kk][token / 4]

@compute @workgroup_size(64)
fn matmul(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
    let g = wid.x + wid.y * nwg.x;
    if (g >= pm.tiles) {
        return; // grid overshoot: the whole workgroup leaves together
    }
    let r0 = (g % pm.tiles_n) * 32u;
    let t0 = (g / pm.tiles_n) * 32u;
    let tx = li % 8u;
    let ty = li / 8u;
    let ku = pm.k / 32u;
    let kv = pm.k / 4u;
    var acc: array<vec4<f32>, 4>;
    for (var i = 0u; i < 4u; i++) {
        acc[i] = vec4<f32>(0.0);
    }
    for (var u = 0u; u < ku; u++) {
        if (li < 32u) {
            let r = r0 + li;
            var w: array<vec4<f32>, 8>;
            if (r < pm.rows) {
                w = decode(r, u, pm.rows, ku, pm.row_bytes);
            } else {
                for (var i = 0u; i < 8u; i++) {
                    w[i] = vec4<f32>(0.0);
                }
            }
            for (var i = 0u; i < 8u; i++) {
                for (var c = 0u; c < 4u; c++) {
                    ws[(4u * i + c) * 8u + li / 4u][li % 4u] = w[i][c];
                }
            }
        } else {
            let j = li - 32u;
            let t = t0 + j;
            for (var i = 0u; i < 8u; i++) {
                var v = vec4<f32>(0.0);
                if (t < pm.m) {
                    v = x[t * kv + u * 8u + i];
                }
                for (var c = 0u; c < 4u; c++) {
                    xs[(4u * i + c) * 8u + j / 4u][j % 4u] = v[c];
                }
            }
        }
        workgroupBarrier();
        for (var kk = 0u; kk < 32u; kk++) {
            let b = ws[kk * 8u + tx];
            let a = xs[kk * 8u + ty];
            acc[0] = fma(vec4<f32>(a.x), b, acc[0]);
            acc[1] = fma(vec4<f32>(a.y), b, acc[1]);
            acc[2] = fma(vec4<f32>(a.z), b, acc[2]);
            acc[3] = fma(vec4<f32>(a.w), b, acc[3]);
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < 4u; i++) {
        let t = t0 + 4u * ty + i;
        if (t < pm.m) {
            for (var c = 0u; c < 4u; c++) {
                let r = r0 + 4u * tx + c;
                if (r < pm.rows) {
                    var v = acc[i][c];
                    if (HAS_BIAS) {
                        v += bias[pm.y_row0 + r];
                    }
                    store_y(t, pm.y_row0 + r, pm.n, pm.n1, pm.n2, v);
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// matmul_rt: register-tiled prefill for CPU adapters
// ---------------------------------------------------------------------------------------------
// y[t, r] = sum_j W[r, j] * x[t, j] (+ bias[r]) like `matmul`, but with no workgroup memory, no
// barriers and no private arrays indexed in loops (CPU drivers spill those to per-lane memory,
// which made the tiled kernel ~100x slower per token there than decode). Each invocation owns a
// 4-row x 4-token (or 8-token, RT_T) output block held in vec4 registers: per 32-element unit it loads the four
// tokens' activations once (named vec4s in structs) and decodes each of its rows once, so a
// weight unit is read once per 4 tokens and an activation unit once per 4 rows. Neighbouring
// invocations take neighbouring row groups of the same tokens, so all lanes load the same
// activation words: `matmul_rt_xu` reads them from a 64 KiB uniform view that starts at this
// dispatch's first token (lane-uniform loads are cheap there); `matmul_rt` from storage.
// Rows past the part and tokens past m repeat a valid one and are not stored. RT_T = 8 tokens
// per invocation halves the weight decoding per token again, at twice the registers.

struct RtParams {
    rows: u32,      // rows in this part
    k: u32,
    row_bytes: u32,
    n: u32,         // total rows = row stride of y
    y_row0: u32,
    m: u32,         // tokens in this dispatch
    tok0: u32,      // first token of this dispatch (of y; x is read from its view's start)
    groups: u32,    // row groups (of 4) in this part
    n1: u32,        // split output, as in MatvecParams
    n2: u32,
    x0: u32,        // vec4 index of token tok0's activations in the bound x
    _pad: u32,
}

@group(0) @binding(0) var<uniform> pr: RtParams;

struct X8 {
    v0: vec4<f32>, v1: vec4<f32>, v2: vec4<f32>, v3: vec4<f32>,
    v4: vec4<f32>, v5: vec4<f32>, v6: vec4<f32>, v7: vec4<f32>,
}

struct X4 {
    t0: X8, t1: X8, t2: X8, t3: X8,
}

fn x8_storage(b: u32) -> X8 {
    return X8(x[b], x[b + 1u], x[b + 2u], x[b + 3u], x[b + 4u], x[b + 5u], x[b + 6u], x[b + 7u]);
}

fn x8_uniform(b: u32) -> X8 {
    return X8(xu[b], xu[b + 1u], xu[b + 2u], xu[b + 3u], xu[b + 4u], xu[b + 5u], xu[b + 6u],
              xu[b + 7u]);
}

fn x8_sum(x: X8) -> f32 {
    let s = ((x.v0 + x.v1) + (x.v2 + x.v3)) + ((x.v4 + x.v5) + (x.v6 + x.v7));
    return (s.x + s.y) + (s.z + s.w);
}

// q · x over one unit (the integer codes of a decoded unit against 32 activations).
fn q_dot(w: Unit, x: X8) -> f32 {
    var s = w.q[0] * x.v0;
    s = fma(w.q[1], x.v1, s);
    s = fma(w.q[2], x.v2, s);
    s = fma(w.q[3], x.v3, s);
    s = fma(w.q[4], x.v4, s);
    s = fma(w.q[5], x.v5, s);
    s = fma(w.q[6], x.v6, s);
    s = fma(w.q[7], x.v7, s);
    return (s.x + s.y) + (s.z + s.w);
}

// Tokens per invocation: 4 or 8 (a second set of four in `Acc.s*`, loaded only when 8).
override RT_T: u32 = 4u;

struct Acc {
    r0: vec4<f32>, r1: vec4<f32>, r2: vec4<f32>, r3: vec4<f32>, // rows 0..3, tokens 0..3
    s0: vec4<f32>, s1: vec4<f32>, s2: vec4<f32>, s3: vec4<f32>, // rows 0..3, tokens 4..7
}

fn x4_sums(xs: X4) -> vec4<f32> {
    return vec4<f32>(x8_sum(xs.t0), x8_sum(xs.t1), x8_sum(xs.t2), x8_sum(xs.t3));
}

fn x4_dots(w: Unit, xs: X4, sx: vec4<f32>) -> vec4<f32> {
    let d = vec4<f32>(q_dot(w, xs.t0), q_dot(w, xs.t1), q_dot(w, xs.t2), q_dot(w, xs.t3));
    return fma(vec4<f32>(w.a), d, w.b * sx);
}

// Unit u of rows 4g..4g+3 (clamped into the part) against the tokens' activations: `xs` holds
// tokens 0..3 and `ys` tokens 4..7 (unused when RT_T is 4). Each row is decoded once.
fn rt_unit(g: u32, u: u32, xs: X4, ys: X4, acc: Acc) -> Acc {
    let sx = x4_sums(xs);
    let sy = x4_sums(ys);
    let last = pr.rows - 1u;
    let ku = pr.k / 32u;
    var o = acc;
    let w0 = decode_row(min(4u * g, last), u, pr.rows, ku, pr.row_bytes);
    o.r0 += x4_dots(w0, xs, sx);
    if (RT_T == 8u) { o.s0 += x4_dots(w0, ys, sy); }
    let w1 = decode_row(min(4u * g + 1u, last), u, pr.rows, ku, pr.row_bytes);
    o.r1 += x4_dots(w1, xs, sx);
    if (RT_T == 8u) { o.s1 += x4_dots(w1, ys, sy); }
    let w2 = decode_row(min(4u * g + 2u, last), u, pr.rows, ku, pr.row_bytes);
    o.r2 += x4_dots(w2, xs, sx);
    if (RT_T == 8u) { o.s2 += x4_dots(w2, ys, sy); }
    let w3 = decode_row(min(4u * g + 3u, last), u, pr.rows, ku, pr.row_bytes);
    o.r3 += x4_dots(w3, xs, sx);
    if (RT_T == 8u) { o.s3 += x4_dots(w3, ys, sy); }
    return o;
}

// Rows per invocation: 4, 8 or 16 (groups of 4, each with its own Acc). Every activation load
// serves RT_R rows: on CPU adapters those loads, not the weights, are the cost.
override RT_R: u32 = 4u;

// This invocation's (first row group of RT_R / 4, first token); the token is >= m when it has
// no block.
fn rt_block(wid: vec3<u32>, nwg: vec3<u32>, li: u32) -> vec2<u32> {
    let i = (wid.x + wid.y * nwg.x) * WG + li;
    let blocks = (pr.groups + RT_R / 4u - 1u) / (RT_R / 4u);
    return vec2<u32>((i % blocks) * (RT_R / 4u), RT_T * (i / blocks));
}

// Vec4 index of unit u of token t (< m) in the bound x; t past m reads token m - 1.
fn rt_x(t: u32, u: u32) -> u32 {
    return pr.x0 + min(t, pr.m - 1u) * (pr.k / 4u) + u * 8u;
}

fn rt_store(g: u32, t0: u32, acc: Acc) {
    for (var r = 0u; r < 4u; r++) {
        let row = 4u * g + r;
        if (row >= pr.rows) {
            break;
        }
        var v = acc.r0;
        var v2 = acc.s0;
        if (r == 1u) { v = acc.r1; v2 = acc.s1; }
        if (r == 2u) { v = acc.r2; v2 = acc.s2; }
        if (r == 3u) { v = acc.r3; v2 = acc.s3; }
        var b = 0.0;
        if (HAS_BIAS) {
            b = bias[pr.y_row0 + row];
        }
        for (var t = 0u; t < RT_T; t++) {
            if (t0 + t < pr.m) {
                let e = select(v2[t & 3u], v[t & 3u], t < 4u);
                store_y(pr.tok0 + t0 + t, pr.y_row0 + row, pr.n, pr.n1, pr.n2, e + b);
            }
        }
    }
}

fn acc_zero() -> Acc {
    let z = vec4<f32>(0.0);
    return Acc(z, z, z, z, z, z, z, z);
}

// The whole block: `a` is row group g, `b`..`d` the next ones (used when RT_R is 8 or 16;
// groups past the part decode its last rows again and store nothing).
struct Block {
    a: Acc, b: Acc, c: Acc, d: Acc,
}

fn rt_units(g: u32, u: u32, xs: X4, ys: X4, blk: Block) -> Block {
    var o = blk;
    o.a = rt_unit(g, u, xs, ys, o.a);
    if (RT_R >= 8u) {
        o.b = rt_unit(g + 1u, u, xs, ys, o.b);
    }
    if (RT_R >= 16u) {
        o.c = rt_unit(g + 2u, u, xs, ys, o.c);
        o.d = rt_unit(g + 3u, u, xs, ys, o.d);
    }
    return o;
}

fn rt_store_block(g: u32, t0: u32, blk: Block) {
    rt_store(g, t0, blk.a);
    if (RT_R >= 8u) {
        rt_store(g + 1u, t0, blk.b);
    }
    if (RT_R >= 16u) {
        rt_store(g + 2u, t0, blk.c);
        rt_store(g + 3u, t0, blk.d);
    }
}

@compute @workgroup_size(WG)
fn matmul_rt(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
    let b = rt_block(wid, nwg, li);
    if (b.y >= pr.m) {
        return;
    }
    var blk = Block(acc_zero(), acc_zero(), acc_zero(), acc_zero());
    for (var u = 0u; u < pr.k / 32u; u++) {
        let xs = X4(x8_storage(rt_x(b.y, u)), x8_storage(rt_x(b.y + 1u, u)),
                    x8_storage(rt_x(b.y + 2u, u)), x8_storage(rt_x(b.y + 3u, u)));
        var ys = xs;
        if (RT_T == 8u) {
            ys = X4(x8_storage(rt_x(b.y + 4u, u)), x8_storage(rt_x(b.y + 5u, u)),
                    x8_storage(rt_x(b.y + 6u, u)), x8_storage(rt_x(b.y + 7u, u)));
        }
        blk = rt_units(b.x, u, xs, ys, blk);
    }
    rt_store_block(b.x, b.y, blk);
}

@compute @workgroup_size(WG)
fn matmul_rt_xu(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
    let b = rt_block(wid, nwg, li);
    if (b.y >= pr.m) {
        return;
    }
    var blk = Block(acc_zero(), acc_zero(), acc_zero(), acc_zero());
    for (var u = 0u; u < pr.k / 32u; u++) {
        let xs = X4(x8_uniform(rt_x(b.y, u)), x8_uniform(rt_x(b.y + 1u, u)),
                    x8_uniform(rt_x(b.y + 2u, u)), x8_uniform(rt_x(b.y + 3u, u)));
        var ys = xs;
        if (RT_T == 8u) {
            ys = X4(x8_uniform(rt_x(b.y + 4u, u)), x8_uniform(rt_x(b.y + 5u, u)),
                    x8_uniform(rt_x(b.y + 6u, u)), x8_uniform(rt_x(b.y + 7u, u)));
        }
        blk = rt_units(b.x, u, xs, ys, blk);
    }
    rt_store_block(b.x, b.y, blk);
}

// ---------------------------------------------------------------------------------------------
// embedding
// ---------------------------------------------------------------------------------------------
// embedding: out[i, :] = scale * dequant(table[ids[i], :]), for the rows held by one part of the
// table (a dispatch per part).
// Work distribution: one invocation per (token, 32-element unit), 64 per workgroup; each decodes
// its unit and writes 8 vec4. Tokens whose id lies in another part are skipped; ids past the end
// of the whole table write zeros (in the dispatch of part 0) and never read out of bounds.

struct EmbedParams {
    row0: u32,       // first row of this part
    rows: u32,       // rows in this part
    total_rows: u32,
    cols: u32,
    row_bytes: u32,
    m: u32,
    first: u32,      // 1 for the dispatch of part 0
    scale: f32,
}

@group(0) @binding(0) var<uniform> pe: EmbedParams;
@group(0) @binding(3) var<storage, read> ids: array<u32>;
@group(0) @binding(4) var<storage, read_write> out: array<vec4<f32>>;

@compute @workgroup_size(64)
fn embedding(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
    let ku = pe.cols / 32u;
    let idx = (wid.x + wid.y * nwg.x) * 64u + li;
    let tok = idx / ku;
    let u = idx % ku;
    if (tok >= pe.m) {
        return;
    }
    let id = ids[tok];
    let ob = tok * (pe.cols / 4u) + u * 8u;
    if (id >= pe.total_rows) {
        if (pe.first == 1u) {
            for (var i = 0u; i < 8u; i++) {
                out[ob + i] = vec4<f32>(0.0);
            }
        }
        return;
    }
    if (id < pe.row0 || id - pe.row0 >= pe.rows) {
        return;
    }
    let w = decode(id - pe.row0, u, pe.rows, ku, pe.row_bytes);
    for (var i = 0u; i < 8u; i++) {
        out[ob + i] = w[i] * pe.scale;
    }
}
