// Row softmax / log-softmax in place: one workgroup per row, looping over any row length.
// One pass keeps a per-invocation online (running max, rescaled sum) pair, the pairs are merged
// across the workgroup, and a second pass writes exp(x - max) / sum (or x - max - log(sum)).
// Max-subtraction keeps every exp() ≤ 1, so inputs of ±1000 neither overflow nor produce NaN.

struct Params {
    rows: u32,
    cols: u32,
    _pad0: u32,
    _pad1: u32,
}

override WG: u32 = 256u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;

var<workgroup> red_m: array<f32, 256>;
var<workgroup> red_s: array<f32, 256>;

const LOWEST: f32 = -3.402823e38;

// (max, sum of exp(v - max)) over the row, identical in every invocation.
fn row_stats(base: u32, t: u32) -> vec2<f32> {
    var m = LOWEST;
    var s = 0.0;
    for (var i = t; i < p.cols; i = i + WG) {
        let v = x[base + i];
        if (v > m) {
            s = s * exp(m - v) + 1.0;
            m = v;
        } else {
            s = s + exp(v - m);
        }
    }
    red_m[t] = m;
    red_s[t] = s;
    workgroupBarrier();
    for (var k = WG / 2u; k > 0u; k = k >> 1u) {
        if (t < k) {
            let m1 = red_m[t];
            let m2 = red_m[t + k];
            let mm = max(m1, m2);
            red_s[t] = red_s[t] * exp(m1 - mm) + red_s[t + k] * exp(m2 - mm);
            red_m[t] = mm;
        }
        workgroupBarrier();
    }
    return vec2<f32>(red_m[0], red_s[0]);
}

@compute @workgroup_size(WG)
fn softmax(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_id) lid: vec3<u32>) {
    let row = wid.x + wid.y * nwg.x;
    if (row >= p.rows) {
        return;
    }
    let base = row * p.cols;
    let st = row_stats(base, lid.x);
    let inv = 1.0 / st.y;
    for (var i = lid.x; i < p.cols; i = i + WG) {
        x[base + i] = exp(x[base + i] - st.x) * inv;
    }
}

@compute @workgroup_size(WG)
fn log_softmax(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_id) lid: vec3<u32>) {
    let row = wid.x + wid.y * nwg.x;
    if (row >= p.rows) {
        return;
    }
    let base = row * p.cols;
    let st = row_stats(base, lid.x);
    let shift = st.x + log(st.y);
    for (var i = lid.x; i < p.cols; i = i + WG) {
        x[base + i] = x[base + i] - shift;
    }
}
