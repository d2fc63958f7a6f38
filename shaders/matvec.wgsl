// matvec (decode) of the quantized-matrix module: this file follows `quant.wgsl` (the block
// decoders and weight bindings) in the module src/kernels/matvec.rs builds; the activation and
// output bindings and `store_y` declared here serve `matmul.wgsl` too.
//
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
    eps: f32,       // NORM_IN: the RMSNorm's epsilon
    // ROPE: the token's position, the cache's positions per kv head, the head size, the rotated
    // dims of each head and the rotation's scale.
    pos: u32,
    capacity: u32,
    head_dim: u32,
    rot_dims: u32,
    mscale: f32,
    _p0: u32,
    _p1: u32,
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
// The RMSNorm between two decode matvecs, folded into them (one token; src/kernels/matvec.rs
// `Fold`), so that it costs no dispatch of its own. A producer (NORM_OUT: the attention output
// and down projections) adds its rows to the residual stream v (bound as y2), stores g ⊙ v in y
// (g, the next norm's weight, bound as bias) and, at float NORM_SSQ of y, one partial sum of
// squares of v per 4 rows. A consumer (NORM_IN: the next Q/K/V, gate/up or output head matvec)
// reads that x = g ⊙ v and scales its dot products by 1 / rms(v), summing the partials in one
// fixed order on every path (see rms_scale), so W · norm(v) costs one pass over the partials
// instead of a dispatch. HAS_BIAS is false with NORM_OUT.
override NORM_IN: bool = false;
override NORM_OUT: bool = false;
// RoPE and the KV-cache write in the store of a stacked [q; k; v] matvec (one token, llama's
// adjacent-pair RoPE, so both dims of a pair are rows of one group of 4; no bias): q rows are
// rotated and stored in y, k rows rotated and v rows stored straight into the layer's cache
// (bound as y2 and y3, the layout of shaders/attention.wgsl; ROPE_KV32: a word per dim), each
// pair's frequency read from the table bound as `bias` (turns per position as hi, lo). The same
// rotation as rope.wgsl's rope_kv (rope_angle.wgsl), so the same bits.
override ROPE: bool = false;
override ROPE_KV32: bool = false;
// Float offset of the partial sums in the producer's output (64 KiB activation buffers: rows
// ≤ NORM_SSQ, and the partials, one per 4 rows, end within the uniform view).
const NORM_SSQ: u32 = 12288u;

@group(0) @binding(0) var<uniform> pv: MatvecParams;
@group(0) @binding(3) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(3) var<uniform> xu: array<vec4<f32>, 4096>; // 64 KiB: TOK * k <= 16384
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(5) var<storage, read> bias: array<f32>;
// Words, not floats: with ROPE they are the KV cache (f16 pairs), so f32 values go in as bits.
@group(0) @binding(6) var<storage, read_write> y2: array<u32>;
@group(0) @binding(7) var<storage, read_write> y3: array<u32>;

// Store output row `row` (of n) of token t. With a split (n1 > 0) a stacked [q; k; v] weight
// writes three outputs: rows [0, n1) to y, [n1, n1 + n2) to y2 and the rest to y3, each with its
// own row stride. Without one, y2 and y3 are bound to small spare buffers and never written.
fn store_y(t: u32, row: u32, n: u32, n1: u32, n2: u32, v: f32) {
    if (n1 == 0u) {
        y[t * n + row] = v;
    } else if (row < n1) {
        y[t * n1 + row] = v;
    } else if (row < n1 + n2) {
        y2[t * n2 + row - n1] = bitcast<u32>(v);
    } else {
        y3[t * (n - n1 - n2) + row - n1 - n2] = bitcast<u32>(v);
    }
}

var<workgroup> red: array<vec4<f32>, 256>; // [token][invocation], TOK * WG <= 256

// NORM_IN: 1 / rms(v), set by the entry point before the first store.
var<private> norm_r: f32 = 1.0;

// Stripe s of the partial sums (vec4s s, s + 8, ... of them, in that order), from the uniform
// view or from storage.
fn ssq_stripe_u(s: u32) -> vec4<f32> {
    var a = vec4<f32>(0.0);
    for (var i = s; i < pv.k / 16u; i += 8u) {
        a += xu[NORM_SSQ / 4u + i];
    }
    return a;
}

fn ssq_stripe(s: u32) -> vec4<f32> {
    var a = vec4<f32>(0.0);
    for (var i = s; i < pv.k / 16u; i += 8u) {
        a += x[NORM_SSQ / 4u + i];
    }
    return a;
}

// 1 / rms(v) from the eight stripe sums (the same bits whichever path summed the stripes).
fn rms_scale(a0: vec4<f32>, a1: vec4<f32>, a2: vec4<f32>, a3: vec4<f32>, a4: vec4<f32>,
        a5: vec4<f32>, a6: vec4<f32>, a7: vec4<f32>) -> f32 {
    let t = ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7));
    return inverseSqrt(((t.x + t.y) + (t.z + t.w)) / f32(pv.k) + pv.eps);
}

// NORM_OUT: rows 4g .. 4g + 3 of the producer (all present: its rows are a multiple of 4) are o;
// v += o, y = g ⊙ v, and their partial sum of squares.
fn norm_out_store(g: u32, o: vec4<f32>) {
    let i = pv.y_row0 + 4u * g;
    let v = bitcast<vec4<f32>>(vec4<u32>(y2[i], y2[i + 1u], y2[i + 2u], y2[i + 3u])) + o;
    let gw = vec4<f32>(bias[i], bias[i + 1u], bias[i + 2u], bias[i + 3u]);
    let z = v * gw;
    for (var r = 0u; r < 4u; r++) {
        y2[i + r] = bitcast<u32>(v[r]);
        y[i + r] = z[r];
    }
    let sq = v * v;
    y[NORM_SSQ + i / 4u] = (sq.x + sq.y) + (sq.z + sq.w);
}

// ROPE: (a, b), the pair at dim d of a head, rotated (dims past rot_dims are not).
fn rope_pair(a: f32, b: f32, d: u32) -> vec2<f32> {
    if (d >= pv.rot_dims) {
        return vec2<f32>(a, b);
    }
    let j = d / 2u;
    return rotate(a, b, rope_sin_cos(bias[2u * j], bias[2u * j + 1u], pv.pos, pv.mscale));
}

// ROPE: rows 4g .. 4g + 3 of the stacked [q; k; v] part are o (n1 q rows, n2 k rows, then v).
fn rope_store(g: u32, o: vec4<f32>) {
    let r0 = pv.y_row0 + 4u * g;
    let kv_end = pv.n1 + pv.n2;
    let is_q = r0 < pv.n1;
    let rr = select(select(r0 - kv_end, r0 - pv.n1, r0 < kv_end), r0, is_q);
    let d = rr % pv.head_dim;         // even: a group of 4 never straddles a head
    var v = o;
    if (r0 < kv_end) {
        let a = rope_pair(o.x, o.y, d);
        let b = rope_pair(o.z, o.w, d + 2u);
        v = vec4<f32>(a, b);
    }
    if (is_q) {
        for (var r = 0u; r < 4u; r++) {
            y[rr + r] = v[r];
        }
        return;
    }
    let kvh = rr / pv.head_dim;
    let dp = pv.head_dim / 2u;
    let cap = pv.capacity;
    if (r0 < kv_end) {
        if (ROPE_KV32) {
            let kd = (kvh * pv.head_dim + d) * cap + pv.pos;
            for (var r = 0u; r < 4u; r++) {
                y2[kd + r * cap] = bitcast<u32>(v[r]);
            }
        } else {
            y2[(kvh * dp + d / 2u) * cap + pv.pos] = pack2x16float(v.xy);
            y2[(kvh * dp + d / 2u + 1u) * cap + pv.pos] = pack2x16float(v.zw);
        }
    } else if (ROPE_KV32) {
        let vd = (kvh * cap + pv.pos) * pv.head_dim + d;
        for (var r = 0u; r < 4u; r++) {
            y3[vd + r] = bitcast<u32>(v[r]);
        }
    } else {
        let vd = (kvh * cap + pv.pos) * dp + d / 2u;
        y3[vd] = pack2x16float(v.xy);
        y3[vd + 1u] = pack2x16float(v.zw);
    }
}

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
    let w = decode_rows4(g, u, pv.rows, pv.k / 32u, pv.row_bytes);
    return vec4<f32>(mv_dot(w.w0, x0, x1, x2, x3, x4, x5, x6, x7, sx),
                     mv_dot(w.w1, x0, x1, x2, x3, x4, x5, x6, x7, sx),
                     mv_dot(w.w2, x0, x1, x2, x3, x4, x5, x6, x7, sx),
                     mv_dot(w.w3, x0, x1, x2, x3, x4, x5, x6, x7, sx));
}

// One decoded row unit dotted with x (sx: the sum of x over the unit).
fn mv_dot(w: Unit, x0: vec4<f32>, x1: vec4<f32>, x2: vec4<f32>, x3: vec4<f32>, x4: vec4<f32>,
        x5: vec4<f32>, x6: vec4<f32>, x7: vec4<f32>, sx: f32) -> f32 {
    var s = w.q[0] * x0;
    s = fma(w.q[1], x1, s);
    s = fma(w.q[2], x2, s);
    s = fma(w.q[3], x3, s);
    s = fma(w.q[4], x4, s);
    s = fma(w.q[5], x5, s);
    s = fma(w.q[6], x6, s);
    s = fma(w.q[7], x7, s);
    return fma(w.a, (s.x + s.y) + (s.z + s.w), w.b * sx);
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
        if (NORM_IN) {
            o *= norm_r;
            w[t] *= norm_r;
        }
        if (GLU != 0u) {
            o = glu_gate(o) * w[t];
        }
        if (NORM_OUT) {
            norm_out_store(g, o);
            continue;
        }
        if (ROPE) {
            rope_store(g, o);
            continue;
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
    if (NORM_IN) {
        norm_r = rms_scale(ssq_stripe(0u), ssq_stripe(1u), ssq_stripe(2u), ssq_stripe(3u),
                           ssq_stripe(4u), ssq_stripe(5u), ssq_stripe(6u), ssq_stripe(7u));
    }
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
    if (NORM_IN) {
        norm_r = rms_scale(ssq_stripe_u(0u), ssq_stripe_u(1u), ssq_stripe_u(2u),
                           ssq_stripe_u(3u), ssq_stripe_u(4u), ssq_stripe_u(5u),
                           ssq_stripe_u(6u), ssq_stripe_u(7u));
    }
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
