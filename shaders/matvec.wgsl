// matvec (decode): y[t, r] = sum_j W[r, j] * x[t, j] (+ bias[r]) for TOK (1..4) tokens at once,
// over the rows of one part of W (a dispatch per part; rows land at y_row0 + r).
// Work distribution: 64-invocation workgroups; TPR consecutive invocations share one pair of rows,
// so a workgroup covers 2 * 64 / TPR rows. TPR is an override from 1 to 64: on GPUs it is chosen
// from k so that each invocation streams about 4 units of each row; on CPU adapters it is 2, since
// their per-lane loads are gathers. Each invocation walks the 32-element units of its two rows with
// stride TPR (neighbouring invocations read neighbouring blocks), decodes each unit once with u32
// loads (as integer codes q plus a scale a and offset b: w = a q + b) and dots both rows with all
// TOK token vectors, so every activation vec4 it loads serves two rows and the scale and offset are
// applied once per unit. The TPR partial sums of a row pair are reduced in workgroup memory.

struct Params {
    rows: u32,      // rows in this part
    k: u32,         // columns (elements), a multiple of 32
    row_bytes: u32,
    n: u32,         // total rows = row stride of y
    y_row0: u32,    // first row of this part
    tok0: u32,      // first token of this dispatch
    _pad0: u32,
    _pad1: u32,
}

override TOK: u32 = 1u;
override TPR: u32 = 16u;
override HAS_BIAS: bool = false;
const WG: u32 = 64u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(2) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;

var<workgroup> red: array<vec2<f32>, 256>; // [token][invocation], 4 x WG (8 KiB)

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
    let g = wid.x + wid.y * nwg.x;
    // Each invocation serves rows `row` and `row + 1`: every activation vec4 it loads feeds both.
    let row = (g * (WG / TPR) + li / TPR) * 2u;
    let lane = li % TPR;
    let ku = p.k / 32u;
    var acc = array<vec2<f32>, 4>(vec2<f32>(0.0), vec2<f32>(0.0), vec2<f32>(0.0), vec2<f32>(0.0));
    if (row < p.rows) {
        let rb0 = row * p.row_bytes;
        // A missing second row (odd row count) decodes row `row` again and is not stored.
        let rb1 = select(rb0, rb0 + p.row_bytes, row + 1u < p.rows);
        for (var u = lane; u < ku; u += TPR) {
            let w0 = decode_unit(rb0, u);
            let w1 = decode_unit(rb1, u);
            for (var t = 0u; t < TOK; t++) {
                let xb = (p.tok0 + t) * (p.k / 4u) + u * 8u;
                var xv = x[xb];
                var xs = xv;
                var s0 = w0.q[0] * xv;
                var s1 = w1.q[0] * xv;
                for (var i = 1u; i < 8u; i++) {
                    xv = x[xb + i];
                    xs += xv;
                    s0 = fma(w0.q[i], xv, s0);
                    s1 = fma(w1.q[i], xv, s1);
                }
                // Scale and offset once per unit: w = a q + b, so w·x = a (q·x) + b Σx
                // (b is a literal 0 for formats without offset and Σx folds away).
                let sx = (xs.x + xs.y) + (xs.z + xs.w);
                acc[t] += vec2<f32>(fma(w0.a, (s0.x + s0.y) + (s0.z + s0.w), w0.b * sx),
                                    fma(w1.a, (s1.x + s1.y) + (s1.z + s1.w), w1.b * sx));
            }
        }
    }
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
    if (lane == 0u && row < p.rows) {
        for (var t = 0u; t < TOK; t++) {
            var v = red[t * WG + li];
            if (HAS_BIAS) {
                v += vec2<f32>(bias[p.y_row0 + row], bias[p.y_row0 + min(row + 1u, p.rows - 1u)]);
            }
            let yo = (p.tok0 + t) * p.n + p.y_row0 + row;
            y[yo] = v.x;
            if (row + 1u < p.rows) {
                y[yo + 1u] = v.y;
            }
        }
    }
}
