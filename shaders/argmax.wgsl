// Row argmax: out[r] = the index of the largest x[r, i], the lowest such index on ties (a row with
// NaNs gives an unspecified index).
//
// `argmax` / `argmax4` (vec4 loads): one workgroup per row loops over the row, any length; on lavapipe
// this beat a two-stage (chunks, then merge) variant even for one 262144-wide row. Each invocation
// walks its elements in increasing index order and keeps only strictly larger values, and the merge
// breaks ties toward the lower index, so ties resolve to the lowest index.

struct Params {
    rows: u32,
    cols: u32,
    _pad0: u32,
    _pad1: u32,
}

override WG: u32 = 256u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> x4: array<vec4<f32>>;
// The result: one u32 per row.
@group(0) @binding(2) var<storage, read_write> out: array<u32>;

var<workgroup> red_v: array<f32, 256>;
var<workgroup> red_i: array<u32, 256>;

const NONE: u32 = 0xFFFFFFFFu;
const LOWEST: f32 = -3.402823e38;

struct Best {
    v: f32,
    i: u32,
}

// Candidate (v, i) replaces b: b is empty, v is larger, or equal with a lower index.
fn better(v: f32, i: u32, b: Best) -> bool {
    return i != NONE && (b.i == NONE || v > b.v || (v == b.v && i < b.i));
}

fn scan(b0: Best, base: u32, lo: u32, hi: u32, t: u32) -> Best {
    var b = b0;
    for (var c = lo + t; c < hi; c = c + WG) {
        let v = x[base + c];
        if (v > b.v || b.i == NONE) {
            b = Best(v, c);
        }
    }
    return b;
}

// lo, hi and base are multiples of 4.
fn scan4(b0: Best, base: u32, lo: u32, hi: u32, t: u32) -> Best {
    var b = b0;
    for (var c = lo + 4u * t; c < hi; c = c + 4u * WG) {
        let v = x4[(base + c) / 4u];
        if (v.x > b.v || b.i == NONE) { b = Best(v.x, c); }
        if (v.y > b.v) { b = Best(v.y, c + 1u); }
        if (v.z > b.v) { b = Best(v.z, c + 2u); }
        if (v.w > b.v) { b = Best(v.w, c + 3u); }
    }
    return b;
}

// Merge every invocation's candidate; the result is returned to all of them.
fn reduce(b: Best, t: u32) -> Best {
    red_v[t] = b.v;
    red_i[t] = b.i;
    workgroupBarrier();
    for (var k = WG / 2u; k > 0u; k = k >> 1u) {
        if (t < k) {
            let v = red_v[t + k];
            let i = red_i[t + k];
            if (better(v, i, Best(red_v[t], red_i[t]))) {
                red_v[t] = v;
                red_i[t] = i;
            }
        }
        workgroupBarrier();
    }
    return Best(red_v[0], red_i[0]);
}

fn linear(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.x + wid.y * nwg.x;
}

@compute @workgroup_size(WG)
fn argmax(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_id) lid: vec3<u32>) {
    let row = linear(wid, nwg);
    if (row >= p.rows) {
        return;
    }
    let b = reduce(scan(Best(LOWEST, NONE), row * p.cols, 0u, p.cols, lid.x), lid.x);
    if (lid.x == 0u) {
        out[row] = select(b.i, 0u, b.i == NONE);
    }
}

@compute @workgroup_size(WG)
fn argmax4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_id) lid: vec3<u32>) {
    let row = linear(wid, nwg);
    if (row >= p.rows) {
        return;
    }
    let b = reduce(scan4(Best(LOWEST, NONE), row * p.cols, 0u, p.cols, lid.x), lid.x);
    if (lid.x == 0u) {
        out[row] = select(b.i, 0u, b.i == NONE);
    }
}
