// Row argmax: out[r] = the index of the largest x[r, i], the lowest such index on ties (NaNs are
// never picked unless the row has nothing else). One workgroup per row loops over the row; each
// invocation walks its strided elements in increasing order, so keeping only strictly larger values
// keeps the lowest index, and the tree merge breaks ties toward the lower index.

struct Params {
    rows: u32,
    cols: u32,
    _pad0: u32,
    _pad1: u32,
}

override WG: u32 = 256u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<u32>;

var<workgroup> red_v: array<f32, 256>;
var<workgroup> red_i: array<u32, 256>;

const NONE: u32 = 0xFFFFFFFFu;

@compute @workgroup_size(WG)
fn argmax(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_id) lid: vec3<u32>) {
    let row = wid.x + wid.y * nwg.x;
    if (row >= p.rows) {
        return;
    }
    let t = lid.x;
    let base = row * p.cols;
    var best = -3.402823e38;
    var best_i = NONE;
    for (var i = t; i < p.cols; i = i + WG) {
        let v = x[base + i];
        if (v > best || (best_i == NONE && v == best)) {
            best = v;
            best_i = i;
        }
    }
    red_v[t] = best;
    red_i[t] = best_i;
    workgroupBarrier();
    for (var k = WG / 2u; k > 0u; k = k >> 1u) {
        if (t < k) {
            let v = red_v[t + k];
            let j = red_i[t + k];
            if (j != NONE && (red_i[t] == NONE || v > red_v[t] || (v == red_v[t] && j < red_i[t]))) {
                red_v[t] = v;
                red_i[t] = j;
            }
        }
        workgroupBarrier();
    }
    if (t == 0u) {
        out[row] = select(red_i[0], 0u, red_i[0] == NONE);
    }
}
