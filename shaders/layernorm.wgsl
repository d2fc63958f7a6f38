// LayerNorm: one workgroup per row. out[r] = (x[r] - mean) / sqrt(var + eps) * w (+ b).
// Mean and variance are two separate reductions (not E[x^2] - mean^2) so rows with a large mean keep
// their precision.

struct Params {
    rows: u32,
    dim: u32,
    eps: f32,
    _pad: u32,
}

override WG: u32 = 256u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
// layernorm: output at 3. layernorm_bias: bias at 3, output at 4.
@group(0) @binding(3) var<storage, read_write> y3: array<f32>;
@group(0) @binding(3) var<storage, read> b3: array<f32>;
@group(0) @binding(4) var<storage, read_write> y4: array<f32>;

var<workgroup> red: array<f32, 256>;

fn workgroup_sum(v: f32, t: u32) -> f32 {
    red[t] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s >> 1u) {
        if (t < s) {
            red[t] = red[t] + red[t + s];
        }
        workgroupBarrier();
    }
    let total = red[0];
    workgroupBarrier();
    return total;
}

// (mean, 1/std) of the row starting at `base`.
fn moments(base: u32, t: u32) -> vec2<f32> {
    var s = 0.0;
    for (var i = t; i < p.dim; i = i + WG) {
        s = s + x[base + i];
    }
    let mean = workgroup_sum(s, t) / f32(p.dim);
    var ss = 0.0;
    for (var i = t; i < p.dim; i = i + WG) {
        let d = x[base + i] - mean;
        ss = ss + d * d;
    }
    return vec2<f32>(mean, inverseSqrt(workgroup_sum(ss, t) / f32(p.dim) + p.eps));
}

@compute @workgroup_size(WG)
fn layernorm(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_id) lid: vec3<u32>) {
    let row = wid.x + wid.y * nwg.x;
    if (row >= p.rows) {
        return;
    }
    let base = row * p.dim;
    let m = moments(base, lid.x);
    for (var i = lid.x; i < p.dim; i = i + WG) {
        y3[base + i] = (x[base + i] - m.x) * m.y * w[i];
    }
}

@compute @workgroup_size(WG)
fn layernorm_bias(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_id) lid: vec3<u32>) {
    let row = wid.x + wid.y * nwg.x;
    if (row >= p.rows) {
        return;
    }
    let base = row * p.dim;
    let m = moments(base, lid.x);
    for (var i = lid.x; i < p.dim; i = i + WG) {
        y4[base + i] = (x[base + i] - m.x) * m.y * w[i] + b3[i];
    }
}
