// Decode matvec with 8-bit activations, for packed Q4_0/Q4_1/Q5_0/Q8_0 weights (src/quant/pack.rs)
// and one token. `quantize_x8` turns x (k f32) into blocks of 32 int8 with an f32 scale, as
// llama.cpp's Q8_1 activations: per block three vec4<u32>, the 32 int8 packed 4 to a word in
// element order, then (d, d * Σq, 0, 0) as f32 bits. `matvec_q8` / `matvec_q8_xu` (x from a uniform
// view) dot each weight unit with it by `dot4I8Packed`, 4 int8 multiply-adds an instruction: a
// mask makes the nibbles bytes, Q8_0's bytes are used as they are, the block scales apply once
// per unit, and no weight goes through int -> float. On SwiftShader that halves the matvec time
// (its cost there was the unpacking arithmetic, not the loads). The file stands alone because
// `dot4I8Packed` needs the WGSL language feature packed_4x8_integer_dot_product: a browser
// without it must still compile the quantized-matrix module. Row groups, shapes (WG, TPR, MV_G) and
// epilogues (GLU, split, bias) are those of `matvec` there, and their code below is a copy of it
// for one token (WGSL has no includes).

override TYPE: u32 = 0u;
override TPR: u32 = 1u;
override MV_G: u32 = 1u;
override WG: u32 = 64u;
override HAS_BIAS: bool = false;
override GLU: u32 = 0u;

struct MatvecParams {
    rows: u32,      // rows in this part
    k: u32,         // columns (elements), a multiple of 32
    row_bytes: u32,
    n: u32,         // total rows = row stride of y
    y_row0: u32,    // first row of this part
    tok0: u32,      // always 0 (one token)
    n1: u32,        // with a split output (n1 > 0): rows of y, then n2 rows of y2 (see store_y)
    n2: u32,
}

@group(0) @binding(0) var<uniform> pv: MatvecParams;
@group(0) @binding(1) var<storage, read> wq: array<u32>;
@group(0) @binding(2) var<storage, read> wq4: array<vec4<u32>>;
@group(0) @binding(3) var<storage, read> xq: array<vec4<u32>>;
@group(0) @binding(3) var<uniform> xqu: array<vec4<u32>, 4096>; // 64 KiB: k <= 43690
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(5) var<storage, read> bias: array<f32>;
@group(0) @binding(6) var<storage, read_write> y2: array<f32>;
@group(0) @binding(7) var<storage, read_write> y3: array<f32>;

struct QxParams {
    blocks: u32,
    _p0: u32,
    _p1: u32,
    _p2: u32,
}

@group(0) @binding(0) var<uniform> pqx: QxParams;
@group(0) @binding(1) var<storage, read> xf: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> xq_out: array<vec4<u32>>;

@compute @workgroup_size(64)
fn quantize_x8(@builtin(global_invocation_id) gid: vec3<u32>) {
    let b = gid.x;
    if (b >= pqx.blocks) {
        return;
    }
    var v: array<vec4<f32>, 8>;
    var m = vec4<f32>(0.0);
    for (var i = 0u; i < 8u; i++) {
        v[i] = xf[8u * b + i];
        m = max(m, abs(v[i]));
    }
    let d = max(max(m.x, m.y), max(m.z, m.w)) / 127.0;
    let id = select(0.0, 1.0 / d, d > 0.0);
    var w: array<u32, 8>;
    var s = vec4<i32>(0);
    for (var i = 0u; i < 8u; i++) {
        let q = vec4<i32>(round(v[i] * id));
        s += q;
        w[i] = pack4xI8(q);
    }
    xq_out[3u * b] = vec4<u32>(w[0], w[1], w[2], w[3]);
    xq_out[3u * b + 1u] = vec4<u32>(w[4], w[5], w[6], w[7]);
    let sum = f32((s.x + s.y) + (s.z + s.w));
    xq_out[3u * b + 2u] = vec4<u32>(bitcast<u32>(d), bitcast<u32>(d * sum), 0u, 0u);
}

// Σ over a unit of the int8 products of four weight words with four activation words.
fn dot4x4(w: vec4<u32>, x: vec4<u32>) -> i32 {
    return (dot4I8Packed(w.x, x.x) + dot4I8Packed(w.y, x.y))
        + (dot4I8Packed(w.z, x.z) + dot4I8Packed(w.w, x.w));
}

// Bit 4 of each byte set from four consecutive bits of `qh` starting at `sh` (Q5_0's 5th bits).
fn hi4(qh: u32, sh: u32) -> u32 {
    let t = qh >> sh;
    return ((t & 1u) | ((t & 2u) << 7u) | ((t & 4u) << 14u) | ((t & 8u) << 21u)) << 4u;
}

// The four rows of group g dotted with unit u of the int8 activations (xa, xb: its 32 int8;
// d: their scale; s: d * their sum). Packed layout: (row, unit) i = pair0(row / 4, u, ...) +
// row % 4 of n pairs (packed_index.wgsl); quants first, then Q4_1's / Q5_0's word per pair, then
// f16 scales.
fn q8_rows(g: u32, u: u32, xa: vec4<u32>, xb: vec4<u32>, d: f32, s: f32) -> vec4<f32> {
    let ku = pv.k / 32u;
    let n = ((pv.rows + 3u) & ~3u) * ku;
    var out = vec4<f32>(0.0);
    for (var r = 0u; r < 4u; r++) {
        // Rows past the end of the part read row 4g again (always present) and are not stored.
        let row = select(4u * g, 4u * g + r, 4u * g + r < pv.rows);
        let i = pair0(row >> 2u, u, (pv.rows + 3u) >> 2u, ku) + (row & 3u);
        if (TYPE == 8u) { // Q8_0
            let sc = unpack2x16float(wq[8u * n + (i >> 1u)]);
            let a = select(sc.x, sc.y, (i & 1u) != 0u);
            let q = dot4x4(wq4[2u * i], xa) + dot4x4(wq4[2u * i + 1u], xb);
            out[r] = a * d * f32(q);
        } else {
            let w = wq4[i];
            var lo = w & vec4<u32>(0x0f0f0f0fu);
            var hi = (w >> vec4<u32>(4u)) & vec4<u32>(0x0f0f0f0fu);
            if (TYPE == 6u) { // Q5_0: the 5th bits
                let qh = wq[4u * n + i];
                lo |= vec4<u32>(hi4(qh, 0u), hi4(qh, 4u), hi4(qh, 8u), hi4(qh, 12u));
                hi |= vec4<u32>(hi4(qh, 16u), hi4(qh, 20u), hi4(qh, 24u), hi4(qh, 28u));
            }
            let q = f32(dot4x4(lo, xa) + dot4x4(hi, xb));
            if (TYPE == 3u) { // Q4_1: w = dm.x q + dm.y
                let dm = unpack2x16float(wq[4u * n + i]);
                out[r] = fma(dm.x * d, q, dm.y * s);
            } else { // Q4_0: w = a (q - 8); Q5_0: w = a (q - 16)
                let so = select(4u * n, 5u * n, TYPE == 6u);
                let sc = unpack2x16float(wq[so + (i >> 1u)]);
                let a = select(sc.x, sc.y, (i & 1u) != 0u);
                out[r] = a * fma(d, q, select(-8.0, -16.0, TYPE == 6u) * s);
            }
        }
    }
    return out;
}

// Whether row group g computes outputs (with GLU only the gate half has groups of its own).
fn mv_live(g: u32) -> bool {
    return 4u * g < select(pv.rows, pv.rows / 2u, GLU != 0u);
}

// Unit u of x for row group g (and its up group, and with MV_G = 2 the next group) into acc / up.
fn q8_unit(g: u32, u: u32, xa: vec4<u32>, xb: vec4<u32>, ds: vec4<u32>,
        acc: ptr<function, array<vec4<f32>, 2>>, up: ptr<function, array<vec4<f32>, 2>>) {
    let d = bitcast<f32>(ds.x);
    let s = bitcast<f32>(ds.y);
    (*acc)[0] += q8_rows(g, u, xa, xb, d, s);
    if (GLU != 0u) {
        (*up)[0] += q8_rows(g + pv.rows / 8u, u, xa, xb, d, s);
    }
    if (MV_G == 2u && mv_live(g + 1u)) {
        (*acc)[1] += q8_rows(g + 1u, u, xa, xb, d, s);
        if (GLU != 0u) {
            (*up)[1] += q8_rows(g + 1u + pv.rows / 8u, u, xa, xb, d, s);
        }
    }
}

// ----- from here on: matvec's epilogue (shaders/matvec.wgsl) for one token -----

fn store_y(row: u32, v: f32) {
    if (pv.n1 == 0u || row < pv.n1) {
        y[row] = v;
    } else if (row < pv.n1 + pv.n2) {
        y2[row - pv.n1] = v;
    } else {
        y3[row - pv.n1 - pv.n2] = v;
    }
}

var<workgroup> red: array<vec4<f32>, 64>;

// Sum the TPR partial sums of a row group (the result is valid in the group's first lane).
fn mv_reduce(li: u32, acc: vec4<f32>) -> vec4<f32> {
    if (TPR == 1u) {
        return acc;
    }
    let lane = li % TPR;
    red[li] = acc;
    workgroupBarrier();
    for (var st = TPR / 2u; st > 0u; st >>= 1u) {
        if (lane < st) {
            red[li] += red[li + st];
        }
        workgroupBarrier();
    }
    let v = red[li];
    workgroupBarrier(); // `red` may be reused by a second reduction
    return v;
}

fn glu_gate(x: vec4<f32>) -> vec4<f32> {
    if (GLU == 1u) {
        return x / (vec4<f32>(1.0) + exp(-x));
    }
    let u = 0.7978845608028654 * x * (vec4<f32>(1.0) + 0.044715 * x * x);
    let e = exp(2.0 * clamp(u, vec4<f32>(-15.0), vec4<f32>(15.0)));
    return 0.5 * x * (vec4<f32>(2.0) - 2.0 / (e + vec4<f32>(1.0)));
}

fn mv_store(g: u32, li: u32, acc: vec4<f32>, up: vec4<f32>) {
    var o = mv_reduce(li, acc);
    if (GLU != 0u) {
        o = glu_gate(o) * mv_reduce(li, up);
    }
    if (li % TPR != 0u) {
        return;
    }
    let rows = select(pv.rows, pv.rows / 2u, GLU != 0u);
    for (var r = 0u; r < 4u; r++) {
        let row = 4u * g + r;
        if (row < rows) {
            var y1 = o[r];
            if (HAS_BIAS) {
                y1 += bias[pv.y_row0 + row];
            }
            store_y(pv.y_row0 + row, y1);
        }
    }
}

fn mv_group(wid: vec3<u32>, nwg: vec3<u32>, li: u32) -> u32 {
    return ((wid.x + wid.y * nwg.x) * (WG / TPR) + li / TPR) * MV_G;
}

fn mv_store_all(g: u32, li: u32, acc: array<vec4<f32>, 2>, up: array<vec4<f32>, 2>) {
    mv_store(g, li, acc[0], up[0]);
    if (MV_G == 2u) {
        mv_store(g + 1u, li, acc[1], up[1]);
    }
}

@compute @workgroup_size(WG)
fn matvec_q8(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
    let g = mv_group(wid, nwg, li);
    var acc: array<vec4<f32>, 2>;
    var up: array<vec4<f32>, 2>;
    if (mv_live(g)) {
        for (var u = li % TPR; u < pv.k / 32u; u += TPR) {
            q8_unit(g, u, xq[3u * u], xq[3u * u + 1u], xq[3u * u + 2u], &acc, &up);
        }
    }
    mv_store_all(g, li, acc, up);
}

// matvec_q8 with the int8 activations in a uniform buffer (bound from offset 0, 64 KiB).
@compute @workgroup_size(WG)
fn matvec_q8_xu(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
    let g = mv_group(wid, nwg, li);
    var acc: array<vec4<f32>, 2>;
    var up: array<vec4<f32>, 2>;
    if (mv_live(g)) {
        for (var u = li % TPR; u < pv.k / 32u; u += TPR) {
            q8_unit(g, u, xqu[3u * u], xqu[3u * u + 1u], xqu[3u * u + 2u], &acc, &up);
        }
    }
    mv_store_all(g, li, acc, up);
}
