// GGUF block decoders shared by matvec, matmul and embedding (prepended to each of those files at
// compile time). One part of a quantized matrix is bound at binding 1 as raw u32 words in GGUF
// layout; rows are `row_bytes` apart. `decode(rb, u)` turns the 32-element unit `u` of the row
// starting at byte `rb` into 8 vec4: a whole block for Q8_0/Q4_0/Q4_1/Q5_0, one 32-element
// sub-block of a 256-element K-quant block, or 32 plain floats. Blocks of Q8_0/Q4_0/Q5_0/Q6_K have
// even but not 4-multiple sizes, so their fields are read with `ld`, which tolerates a 2-byte
// misalignment. TYPE (the GGUF type id) is an override: each pipeline keeps only its own decoder.

override TYPE: u32 = 0u;

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

// Bits sh .. sh+3 of `v`.
fn bit4(v: u32, sh: u32) -> vec4<f32> {
    return vec4<f32>((vec4<u32>(v) >> vec4<u32>(sh, sh + 1u, sh + 2u, sh + 3u)) & vec4<u32>(1u));
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

// One decoded unit: weights = a * q + b, with q small integers (or the plain floats, a = 1, b = 0)
// so that a dot product can apply the block's scale and offset once per unit instead of per element.
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
    }
    return Unit(w, a, b);
}

// The 32 dequantized weights of a unit (as ggml computes them: one rounding of a * q + b).
fn decode(rb: u32, u: u32) -> array<vec4<f32>, 8> {
    let r = decode_unit(rb, u);
    var w: array<vec4<f32>, 8>;
    for (var i = 0u; i < 8u; i++) {
        w[i] = fma(r.q[i], vec4<f32>(r.a), vec4<f32>(r.b));
    }
    return w;
}
