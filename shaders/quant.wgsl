// The quantized-matrix kernel family: every kernel that reads a weight in its GGUF block layout.
// Its module is this file followed by `quant_packed.wgsl` (the packed layouts), one of the weight
// loaders `quant_load.wgsl` / `quant_load64.wgsl`, `matvec.wgsl` and `matmul.wgsl` (and, on
// devices with subgroups of 8+, natively, `matmul_sg.wgsl`): see the `include_shader!` lines in
// src/kernels/matvec.rs. WGSL has no includes; the files are parts of one module, split by what
// they hold, and none compiles alone.
// Entry points: `matvec` / `matvec_xu` (decode, matvec.wgsl), `matmul` (prefill, workgroup tiles)
// and `matmul_rt` / `matmul_rt_xu` (prefill, register tiles, for CPU adapters), `embedding` (row
// gather; all three in matmul.wgsl); the `_xu` variants read the activations from a uniform
// buffer. They share the block decoders of this file and the weight bindings `wq` (binding 1) and
// the loader's wide view of the same buffer (binding 2); each entry point uses only its own parameters and
// buffers (bindings are per entry point, so `embedding`'s ids/out and the `_xu` entries' uniform x
// may reuse binding numbers).
//
// ---------------------------------------------------------------------------------------------
// Block decoders
// ---------------------------------------------------------------------------------------------
// GGUF block decoders shared by every entry point of the module. One part of a quantized matrix is
// bound at binding 1 as raw u32 words in GGUF layout (and at binding 2 in wide words); rows are
// `row_bytes` apart. `decode(rb, u)` turns the 32-element unit `u` of the row starting at byte `rb`
// into 8 vec4: a whole block for Q8_0/Q4_0/Q4_1/Q5_0/IQ4_NL, one 32-element sub-block of a
// 256-element K-quant or IQ4_XS block, or 32 plain floats. Blocks of Q8_0, Q4_0, Q5_0, Q3_K, Q6_K
// and IQ4_NL have even but not 4-multiple sizes, so their fields are read with `ld`/`h16`/`win4`/
// `win8`, which tolerate a 2-byte misalignment. TYPE (the GGUF type id) is an override: each pipeline keeps only
// its own decoder.
// With PACKED, Q4_0/Q4_1/Q5_0/Q8_0/Q4_K/Q6_K are read from the packed layout of
// `src/quant/pack.rs` instead (`quant_packed.wgsl`).

override TYPE: u32 = 0u;
override PACKED: bool = false;

@group(0) @binding(1) var<storage, read> wq: array<u32>;

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

// The four bytes of `v`, unsigned.
fn u8x4(v: u32) -> vec4<f32> {
    return vec4<f32>((vec4<u32>(v) >> vec4<u32>(0u, 8u, 16u, 24u)) & vec4<u32>(255u));
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
