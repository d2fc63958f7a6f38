// matmul (prefill) and embedding of the quantized-matrix module: this file follows `quant.wgsl`
// (the block decoders) and `matvec.wgsl` (the x / y / bias bindings and `store_y`) in the module
// src/kernels/matvec.rs builds.
//
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
    var o = acc;
    let w = decode_rows4(g, u, pr.rows, pr.k / 32u, pr.row_bytes);
    o.r0 += x4_dots(w.w0, xs, sx);
    if (RT_T == 8u) { o.s0 += x4_dots(w.w0, ys, sy); }
    o.r1 += x4_dots(w.w1, xs, sx);
    if (RT_T == 8u) { o.s1 += x4_dots(w.w1, ys, sy); }
    o.r2 += x4_dots(w.w2, xs, sx);
    if (RT_T == 8u) { o.s2 += x4_dots(w.w2, ys, sy); }
    o.r3 += x4_dots(w.w3, xs, sx);
    if (RT_T == 8u) { o.s3 += x4_dots(w.w3, ys, sy); }
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
