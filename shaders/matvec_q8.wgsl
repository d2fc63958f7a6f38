// Matvec (decode) and matmul (prefill) with 8-bit activations, for packed Q4_0/Q4_1/Q5_0/Q8_0 and
// Q4_K weights (src/quant/pack.rs). `quantize_x8` turns x (k f32) into blocks of 32 int8 with an
// f32 scale (quant_x8.wgsl, the module's file before this one; the decode norms can write the
// same words themselves, rmsnorm.wgsl's *_q8 entries). `matvec_q8` / `matvec_q8_xu` (x from a
// uniform view) dot each weight unit with them in integers: Q8_0 by `dot4I8Packed` (4 int8
// multiply-adds an instruction), the 4- and 5-bit formats (Q4_K's 32-element sub-blocks too) by
// `swar_dot` (two nibble products per 32-bit multiply, masks straight from the packed words); the
// block scales apply once per unit, and no weight goes through int -> float.
// On SwiftShader, whose cost is the unpacking arithmetic rather than the loads, int8 halved the
// f32-activation matvec's time and `swar_dot` then took 28% off `dot4I8Packed`'s (SmolLM2's
// Q4_1 matvecs, 134 -> 97 ms a token; for Q8_0 it measured slower, so Q8_0 keeps the dot). The
// file stands alone because `dot4I8Packed` needs the WGSL language feature
// packed_4x8_integer_dot_product: a browser without it must still compile the quantized-matrix
// module. Row groups, shapes (WG, TPR, MV_G) and epilogues (GLU, split, bias) are those of `matvec`
// there, and their code below is a copy of it for one token (WGSL has no includes). `matmul_q8`
// (end of file) runs the same per-token arithmetic for many tokens: on SwiftShader it prefilled
// SmolLM2 1.6x faster than the f32 `matmul_rt_xu` (an f32 product costs a multiply and an add
// there, two int8 products a multiply and an add).

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
    m: u32,         // tokens: 1 for the matvecs, any for matmul_q8
    n1: u32,        // with a split output (n1 > 0): rows of y, then n2 rows of y2 (see store_y)
    n2: u32,
}

@group(0) @binding(0) var<uniform> pv: MatvecParams;
@group(0) @binding(1) var<storage, read> wq: array<u32>;
@group(0) @binding(2) var<storage, read> wq4: array<vec4<u32>>;
@group(0) @binding(3) var<storage, read> xq: array<vec4<u32>>;
@group(0) @binding(3) var<uniform> xqu: array<vec4<u32>, 4096>; // 64 KiB: k <= 18724
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

// One unit (quant_x8.wgsl) an invocation.
@compute @workgroup_size(64)
fn quantize_x8(@builtin(global_invocation_id) gid: vec3<u32>) {
    let b = gid.x;
    if (b >= pqx.blocks) {
        return;
    }
    var v: array<vec4<f32>, 8>;
    for (var i = 0u; i < 8u; i++) {
        v[i] = xf[8u * b + i];
    }
    let q = x8_unit(v);
    for (var j = 0u; j < XQ_UNIT; j++) {
        xq_out[XQ_UNIT * b + j] = q[j];
    }
}

// Σ over a unit of the int8 products of four weight words with four activation words.
fn dot4x4(w: vec4<u32>, x: vec4<u32>) -> i32 {
    return (dot4I8Packed(w.x, x.x) + dot4I8Packed(w.y, x.y))
        + (dot4I8Packed(w.z, x.z) + dot4I8Packed(w.w, x.w));
}

// Σ over a 4- or 5-bit unit of weight times int8 activation, two products per 32-bit multiply
// (SWAR): m* hold two unsigned weights w0 + w1 * 65536, p* the two activations that meet them
// crossed, x1 + x0 * 65536, so that the product's upper half is w0 x0 + w1 x1 (mod 2^32 the
// signed activations need no offset; the w1 x0 * 2^32 term falls off). The lower half, w0 x1, and
// four such products per lane stay within ±2^15 (8 products of |w| <= 31 and |x| <= 127 sum to
// <= 31496), so rounding at bit 16 recovers the upper half exactly: the same integer as
// `dot4I8Packed` (tests/kernels/matvec_i8.rs drives every format to those bounds).
fn swar_dot(m0: vec4<u32>, m1: vec4<u32>, m2: vec4<u32>, m3: vec4<u32>, pa: vec4<u32>,
        pb: vec4<u32>, pc: vec4<u32>, pd: vec4<u32>) -> i32 {
    let t = (m0 * pa + m1 * pb) + (m2 * pc + m3 * pd);
    let h = bitcast<vec4<i32>>(t + vec4<u32>(0x8000u)) >> vec4<u32>(16u);
    return (h.x + h.y) + (h.z + h.w);
}

// One unit of the quantized activations: its 32 int8 (a, b; read for Q8_0), the scale word
// (d, d * Σq) and the crossed pairs of `swar_dot` (read for the 4- and 5-bit formats).
struct XUnit {
    a: vec4<u32>,
    b: vec4<u32>,
    ds: vec4<u32>,
    pa: vec4<u32>,
    pb: vec4<u32>,
    pc: vec4<u32>,
    pd: vec4<u32>,
}

// The words of unit u that TYPE reads, from the storage view (the uniform one: `x_unit_u`; two
// functions, as an entry point may use only one of the two bindings 3).
fn x_unit(u: u32) -> XUnit {
    var x: XUnit;
    let o = XQ_UNIT * u;
    x.ds = xq[o + 2u];
    if (TYPE == 8u) {
        x.a = xq[o];
        x.b = xq[o + 1u];
    } else {
        x.pa = xq[o + 3u];
        x.pb = xq[o + 4u];
        x.pc = xq[o + 5u];
        x.pd = xq[o + 6u];
    }
    return x;
}

fn x_unit_u(u: u32) -> XUnit {
    var x: XUnit;
    let o = XQ_UNIT * u;
    x.ds = xqu[o + 2u];
    if (TYPE == 8u) {
        x.a = xqu[o];
        x.b = xqu[o + 1u];
    } else {
        x.pa = xqu[o + 3u];
        x.pb = xqu[o + 4u];
        x.pc = xqu[o + 5u];
        x.pd = xqu[o + 6u];
    }
    return x;
}

// One row's weights of unit u, ready for any token's activations: the 4- and 5-bit formats' pair
// masks for `swar_dot` (Q8_0: its two vec4 of int8 in m0, m1) and the terms of its epilogue,
// w = a q + b (Q4_1: a = d, b = m; Q4_0 / Q5_0: a = d, and b = -8 / -16 times Σx below).
struct RowW {
    m0: vec4<u32>,
    m1: vec4<u32>,
    m2: vec4<u32>,
    m3: vec4<u32>,
    a: f32,
    b: f32,
}

struct GroupW {
    r0: RowW,
    r1: RowW,
    r2: RowW,
    r3: RowW,
}

// The four rows of group g at unit u. Packed layout: (row, unit) i = pair0(row / 4, u, ...) +
// row % 4 of n pairs (packed_index.wgsl); quants first, then Q4_1's / Q5_0's word per pair, then
// f16 scales. A group's four pairs are consecutive and parts are padded with zero rows to whole
// groups, so the group's rows are read without bounds (padding rows are never stored) and Q4_1's
// four words come in one vec4 load.
fn q8_group(g: u32, u: u32) -> GroupW {
    if (TYPE == 12u) {
        return q4k_group(g, u);
    }
    let ku = pv.k / 32u;
    let n = ((pv.rows + 3u) & ~3u) * ku;
    let i0 = pair0(g, u, (pv.rows + 3u) >> 2u, ku);
    // Q4_1: the four rows' (d, m) words; else the two words of their f16 scales.
    var sw = vec4<u32>(0u);
    if (TYPE == 3u) {
        sw = wq4[n + (i0 >> 2u)];
    } else {
        let so = select(select(4u * n, 5u * n, TYPE == 6u), 8u * n, TYPE == 8u) + (i0 >> 1u);
        sw = vec4<u32>(wq[so], 0u, wq[so + 1u], 0u);
    }
    return GroupW(q8_row(i0, 0u, n, sw), q8_row(i0 + 1u, 1u, n, sw), q8_row(i0 + 2u, 2u, n, sw),
                  q8_row(i0 + 3u, 3u, n, sw));
}

// Row r of a group: pair i, the group's scale words sw.
fn q8_row(i: u32, r: u32, n: u32, sw: vec4<u32>) -> RowW {
    var w: RowW;
    if (TYPE == 8u) { // Q8_0
        w.m0 = wq4[2u * i];
        w.m1 = wq4[2u * i + 1u];
        w.a = unpack2x16float(sw[r & 2u])[r & 1u];
        return w;
    }
    let q = wq4[i];
    if (TYPE == 6u) { // Q5_0: the 5th bits into bytes, then (byte 0, byte 2) pairs
        // (From GGUF's bit order this took ~40 shifts a unit, half of SwiftShader's Q5_0 time.)
        let c = q5_0_codes(q, wq[4u * n + i]);
        let lo = c.lo;
        let hi = c.hi;
        let m = vec4<u32>(0x00ff00ffu);
        w.m0 = lo & m;
        w.m1 = (lo >> vec4<u32>(8u)) & m;
        w.m2 = hi & m;
        w.m3 = (hi >> vec4<u32>(8u)) & m;
    } else { // nibbles straight into (element j, element j + 2) pairs
        let m = vec4<u32>(0x000f000fu);
        w.m0 = q & m;
        w.m1 = (q >> vec4<u32>(8u)) & m;
        w.m2 = (q >> vec4<u32>(4u)) & m;
        w.m3 = (q >> vec4<u32>(12u)) & m;
    }
    if (TYPE == 3u) { // Q4_1: w = d q + m
        let dm = unpack2x16float(sw[r]);
        w.a = dm.x;
        w.b = dm.y;
    } else { // Q4_0: w = d (q - 8); Q5_0: w = d (q - 16)
        w.a = unpack2x16float(sw[r & 2u])[r & 1u];
        w.b = select(-8.0, -16.0, TYPE == 6u);
    }
    return w;
}

// Q4_K: unit u is sub-block u % 8 of the (row, 256-element block) pairs of block u / 8, whose
// 32 quant bytes it shares with its neighbour (low nibbles for even sub-blocks, high for odd):
// byte e of the run holds element e, as in a Q4_1 word, so the same pairs of `swar_dot` apply,
// and w = d sc q - dmin m makes the epilogue Q4_1's (a = d sc, b = -dmin m; quant_packed.wgsl's
// `unit_q4k` arithmetic).
fn q4k_group(g: u32, u: u32) -> GroupW {
    let kb = pv.k / 256u;
    let n = ((pv.rows + 3u) & ~3u) * kb;
    let i0 = pair0(g, u >> 3u, (pv.rows + 3u) >> 2u, kb);
    let s = u & 7u;
    return GroupW(q4k_row(i0, n, s), q4k_row(i0 + 1u, n, s), q4k_row(i0 + 2u, n, s),
                  q4k_row(i0 + 3u, n, s));
}

fn q4k_row(i: u32, n: u32, s: u32) -> RowW {
    let aux = wq4[8u * n + i];
    let qo = 8u * i + 2u * (s >> 1u);
    let qa = wq4[qo];
    let qb = wq4[qo + 1u];
    let sh = vec4<u32>(4u * (s & 1u));
    let sh8 = sh + vec4<u32>(8u);
    let m = vec4<u32>(0x000f000fu);
    var w: RowW;
    w.m0 = (qa >> sh) & m;
    w.m1 = (qa >> sh8) & m;
    w.m2 = (qb >> sh) & m;
    w.m3 = (qb >> sh8) & m;
    let dm = unpack2x16float(aux.x);
    let sm = scale_min_v(aux, s);
    w.a = dm.x * sm.x;
    w.b = -(dm.y * sm.y);
    return w;
}

// One row dotted with one unit of a token's int8 activations (x.ds: their scale d and d Σq).
fn q8_dot(w: RowW, x: XUnit) -> f32 {
    let d = bitcast<f32>(x.ds.x);
    let s = bitcast<f32>(x.ds.y);
    if (TYPE == 8u) {
        let q = dot4x4(w.m0, x.a) + dot4x4(w.m1, x.b);
        return w.a * d * f32(q);
    }
    let q = f32(swar_dot(w.m0, w.m1, w.m2, w.m3, x.pa, x.pb, x.pc, x.pd));
    if (TYPE == 3u || TYPE == 12u) {
        return fma(w.a * d, q, w.b * s);
    }
    return w.a * fma(d, q, w.b * s);
}

// The four rows of a group against one token's unit.
fn q8_tok(w: GroupW, x: XUnit) -> vec4<f32> {
    return vec4<f32>(q8_dot(w.r0, x), q8_dot(w.r1, x), q8_dot(w.r2, x), q8_dot(w.r3, x));
}

// Whether row group g computes outputs (with GLU only the gate half has groups of its own).
fn mv_live(g: u32) -> bool {
    return 4u * g < select(pv.rows, pv.rows / 2u, GLU != 0u);
}

// Unit u of x for row group g (and its up group, and with MV_G = 2 the next group) into acc / up.
fn q8_unit(g: u32, u: u32, x: XUnit, acc: ptr<function, array<vec4<f32>, 2>>,
        up: ptr<function, array<vec4<f32>, 2>>) {
    (*acc)[0] += q8_tok(q8_group(g, u), x);
    if (GLU != 0u) {
        (*up)[0] += q8_tok(q8_group(g + pv.rows / 8u, u), x);
    }
    if (MV_G == 2u && mv_live(g + 1u)) {
        (*acc)[1] += q8_tok(q8_group(g + 1u, u), x);
        if (GLU != 0u) {
            (*up)[1] += q8_tok(q8_group(g + 1u + pv.rows / 8u, u), x);
        }
    }
}

// ----- from here on: matvec's epilogue (shaders/matvec.wgsl) for one token -----

// Row `row` of token t (with a split output each part has its own row stride, as in matvec.wgsl).
fn store_y(t: u32, row: u32, v: f32) {
    if (pv.n1 == 0u) {
        y[t * pv.n + row] = v;
    } else if (row < pv.n1) {
        y[t * pv.n1 + row] = v;
    } else if (row < pv.n1 + pv.n2) {
        y2[t * pv.n2 + row - pv.n1] = v;
    } else {
        y3[t * (pv.n - pv.n1 - pv.n2) + row - pv.n1 - pv.n2] = v;
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
            store_y(0u, pv.y_row0 + row, y1);
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
            q8_unit(g, u, x_unit(u), &acc, &up);
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
            q8_unit(g, u, x_unit_u(u), &acc, &up);
        }
    }
    mv_store_all(g, li, acc, up);
}

// ---------------------------------------------------------------------------------------------
// matmul_q8 (prefill): y[t, r] = W[r] · x[t] (+ bias) for pv.m tokens from their int8
// activations (`quantize_x8` over all of them: unit u of token t is unit t * k / 32 + u). An
// invocation owns QG row groups of 4 and 8 tokens (tokens past m repeat the last and store
// nothing); each row's weights are unpacked once per unit for all 8 tokens. Per token the
// arithmetic and its order are matvec_q8's with TPR 1, so prefill and decode give the same bits.
override QG: u32 = 2u; // 1, 2 or 4

struct Xq8 {
    t0: XUnit, t1: XUnit, t2: XUnit, t3: XUnit, t4: XUnit, t5: XUnit, t6: XUnit, t7: XUnit,
}

// Rows 0..3 of a group for tokens 0..7.
struct Acc8 {
    t0: vec4<f32>, t1: vec4<f32>, t2: vec4<f32>, t3: vec4<f32>,
    t4: vec4<f32>, t5: vec4<f32>, t6: vec4<f32>, t7: vec4<f32>,
}

fn xq8(t: u32, u: u32) -> Xq8 {
    let ku = pv.k / 32u;
    let l = pv.m - 1u;
    return Xq8(x_unit(min(t, l) * ku + u), x_unit(min(t + 1u, l) * ku + u),
               x_unit(min(t + 2u, l) * ku + u), x_unit(min(t + 3u, l) * ku + u),
               x_unit(min(t + 4u, l) * ku + u), x_unit(min(t + 5u, l) * ku + u),
               x_unit(min(t + 6u, l) * ku + u), x_unit(min(t + 7u, l) * ku + u));
}

fn acc8(w: GroupW, x: Xq8, a: Acc8) -> Acc8 {
    return Acc8(a.t0 + q8_tok(w, x.t0), a.t1 + q8_tok(w, x.t1), a.t2 + q8_tok(w, x.t2),
                a.t3 + q8_tok(w, x.t3), a.t4 + q8_tok(w, x.t4), a.t5 + q8_tok(w, x.t5),
                a.t6 + q8_tok(w, x.t6), a.t7 + q8_tok(w, x.t7));
}

fn q8_store4(g: u32, t: u32, v: vec4<f32>) {
    if (t >= pv.m) {
        return;
    }
    for (var r = 0u; r < 4u; r++) {
        let row = 4u * g + r;
        if (row < pv.rows) {
            var y1 = v[r];
            if (HAS_BIAS) {
                y1 += bias[pv.y_row0 + row];
            }
            store_y(t, pv.y_row0 + row, y1);
        }
    }
}

fn q8_store8(g: u32, t: u32, a: Acc8) {
    q8_store4(g, t, a.t0);
    q8_store4(g, t + 1u, a.t1);
    q8_store4(g, t + 2u, a.t2);
    q8_store4(g, t + 3u, a.t3);
    q8_store4(g, t + 4u, a.t4);
    q8_store4(g, t + 5u, a.t5);
    q8_store4(g, t + 6u, a.t6);
    q8_store4(g, t + 7u, a.t7);
}

@compute @workgroup_size(WG)
fn matmul_q8(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
    let i = (wid.x + wid.y * nwg.x) * WG + li;
    let groups = (pv.rows + 3u) / 4u;
    let blocks = (groups + QG - 1u) / QG;
    let g = (i % blocks) * QG;
    let t = 8u * (i / blocks);
    if (t >= pv.m) {
        return;
    }
    let z = vec4<f32>(0.0);
    var a = Acc8(z, z, z, z, z, z, z, z);
    var b = a;
    var c = a;
    var d = a;
    for (var u = 0u; u < pv.k / 32u; u++) {
        let x = xq8(t, u);
        a = acc8(q8_group(g, u), x, a);
        if (QG >= 2u) {
            b = acc8(q8_group(min(g + 1u, groups - 1u), u), x, b);
        }
        if (QG == 4u) {
            c = acc8(q8_group(min(g + 2u, groups - 1u), u), x, c);
            d = acc8(q8_group(min(g + 3u, groups - 1u), u), x, d);
        }
    }
    q8_store8(g, t, a);
    if (QG >= 2u && g + 1u < groups) {
        q8_store8(g + 1u, t, b);
    }
    if (QG == 4u && g + 2u < groups) {
        q8_store8(g + 2u, t, c);
    }
    if (QG == 4u && g + 3u < groups) {
        q8_store8(g + 3u, t, d);
    }
}
