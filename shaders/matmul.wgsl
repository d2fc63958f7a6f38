// matmul (prefill): y[t, r] = sum_j W[r, j] * x[t, j] (+ bias[r]) for all m tokens, over the rows
// of one part of W (a dispatch per part; rows land at y_row0 + r).
// Work distribution: a 64-invocation workgroup computes a 32-token x 32-row output tile, each
// invocation a 4x4 block (tokens 4*ty.., rows 4*tx..). The k loop advances one 32-element unit per
// step: invocations 0..31 each decode one weight row's unit (so every weight unit is dequantized
// once per tile and reused by all 32 tokens) while invocations 32..63 each load one token's 32
// activations; both tiles are stored k-major in workgroup memory (8 KiB) so the inner loop reads
// one vec4 of tokens and one vec4 of rows per k and does 16 FMAs. Edges (m, n not multiples of 32)
// are zero-filled on load and masked on store.

struct Params {
    rows: u32,      // rows in this part
    k: u32,
    row_bytes: u32,
    n: u32,         // total rows = row stride of y
    y_row0: u32,
    m: u32,
    tiles_n: u32,   // row tiles in this part
    tiles: u32,     // row tiles x token tiles
}

override HAS_BIAS: bool = false;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(2) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;

var<workgroup> ws: array<vec4<f32>, 256>; // [kk][row / 4]
var<workgroup> xs: array<vec4<f32>, 256>; // [kk][token / 4]

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
    let g = wid.x + wid.y * nwg.x;
    if (g >= p.tiles) {
        return; // grid overshoot: the whole workgroup leaves together
    }
    let r0 = (g % p.tiles_n) * 32u;
    let t0 = (g / p.tiles_n) * 32u;
    let tx = li % 8u;
    let ty = li / 8u;
    let ku = p.k / 32u;
    let kv = p.k / 4u;
    var acc: array<vec4<f32>, 4>;
    for (var i = 0u; i < 4u; i++) {
        acc[i] = vec4<f32>(0.0);
    }
    for (var u = 0u; u < ku; u++) {
        if (li < 32u) {
            let r = r0 + li;
            var w: array<vec4<f32>, 8>;
            if (r < p.rows) {
                w = decode(r * p.row_bytes, u);
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
                if (t < p.m) {
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
        if (t < p.m) {
            for (var c = 0u; c < 4u; c++) {
                let r = r0 + 4u * tx + c;
                if (r < p.rows) {
                    var v = acc[i][c];
                    if (HAS_BIAS) {
                        v += bias[p.y_row0 + r];
                    }
                    y[t * p.n + p.y_row0 + r] = v;
                }
            }
        }
    }
}
