// matvec (decode): y[t, r] = sum_j W[r, j] * x[t, j] (+ bias[r]) for TOK (1..4) tokens at once,
// over the rows of one part of W (a dispatch per part; rows land at y_row0 + r).
// Work distribution: 64-invocation workgroups; TPR consecutive invocations share one row (TPR, an
// override from 4 to 64, is chosen from k so that each invocation streams about 4 units), so a
// workgroup covers 64/TPR rows. Each invocation walks its row's 32-element units with stride TPR
// (neighbouring invocations read neighbouring blocks), decodes each unit once with u32 loads and
// dots it with all TOK token vectors (vec4 loads); the TPR partial sums of a row are then reduced
// in workgroup memory.

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

var<workgroup> red: array<f32, 256>; // [token][invocation], 4 x WG

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
    let g = wid.x + wid.y * nwg.x;
    let row = g * (WG / TPR) + li / TPR;
    let lane = li % TPR;
    let ku = p.k / 32u;
    var acc = array<f32, 4>(0.0, 0.0, 0.0, 0.0);
    if (row < p.rows) {
        let rb = row * p.row_bytes;
        for (var u = lane; u < ku; u += TPR) {
            let w = decode(rb, u);
            for (var t = 0u; t < TOK; t++) {
                let xb = (p.tok0 + t) * (p.k / 4u) + u * 8u;
                var s = w[0] * x[xb];
                for (var i = 1u; i < 8u; i++) {
                    s = fma(w[i], x[xb + i], s);
                }
                acc[t] += (s.x + s.y) + (s.z + s.w);
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
                v += bias[p.y_row0 + row];
            }
            y[(p.tok0 + t) * p.n + p.y_row0 + row] = v;
        }
    }
}
