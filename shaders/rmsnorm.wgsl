// RMSNorm: one workgroup per row, out[r] = x[r] / sqrt(mean(x[r]^2) + eps) * w (the entries below
// also fuse it with residual adds). `w` has `dim` entries shared by all rows, so the same kernel
// normalizes per-head q/k with rows = tokens * heads.
// VW (a power of two ≤ 256) is picked per row length so short rows do not idle 256 invocations;
// WG (see below) per adapter.

struct Params {
    rows: u32,
    dim: u32,
    eps: f32,
    _pad: u32,
}

override WG: u32 = 256u;
// The width the sums are taken at: the results are those of a VW-invocation workgroup, whichever
// WG (≤ VW, VW / WG ≤ 32) runs them. Each invocation plays VW / WG virtual invocations and
// performs the levels of VW's reduction tree that fall within its own set in registers, so a CPU
// adapter (where every barrier switches between all the workgroup's SIMD fibres) can run a small
// workgroup and still produce the same bits as a GPU's 256-wide one.
override VW: u32 = 256u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
// rmsnorm: the output; rmsnorm_add_rmsnorm: the residual stream, updated in place.
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

// add_rmsnorm: residual (in place) at 1, delta at 2, weight at 3, output at 4.
@group(0) @binding(1) var<storage, read_write> res1: array<f32>;
@group(0) @binding(2) var<storage, read> delta2: array<f32>;
@group(0) @binding(3) var<storage, read> w3: array<f32>;
@group(0) @binding(4) var<storage, read_write> out4: array<f32>;

// rmsnorm_add_rmsnorm: x, w and the residual at 1..3, then the second weight and the output.
@group(0) @binding(4) var<storage, read> w4: array<f32>;
@group(0) @binding(5) var<storage, read_write> out5: array<f32>;

// The *_q8 entries: their output also quantized for the int8 matvecs (quant_x8.wgsl, the
// module's file before this one), at the binding after the output. Their quantizing loops are
// alike but read and write different bindings, which a WGSL function cannot take as arguments.
@group(0) @binding(4) var<storage, read_write> xq_at4: array<vec4<u32>>;
@group(0) @binding(5) var<storage, read_write> xq_at5: array<vec4<u32>>;
@group(0) @binding(6) var<storage, read_write> xq_at6: array<vec4<u32>>;

var<workgroup> red: array<f32, 256>;

// Partial sums of virtual invocations t + k * WG (k < VW / WG), each over its elements i ≡ vt
// (mod VW) in increasing order, as a VW-wide workgroup's invocation vt would sum them.
alias Parts = array<f32, 32>;

// Sum of the VW partials: the tree levels s ≥ WG in registers, the rest in workgroup memory,
// pairing the same values in the same order as one VW-wide tree.
fn workgroup_sum(parts: Parts, t: u32) -> f32 {
    var v = parts;
    for (var s = VW / 2u; s >= WG; s = s >> 1u) {
        for (var k = 0u; k < s / WG; k++) {
            v[k] = v[k] + v[k + s / WG];
        }
    }
    red[t] = v[0];
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

// 1 / rms of row `base..base+dim` (every invocation gets the same value).
fn inv_rms(base: u32, t: u32) -> f32 {
    var parts: Parts;
    for (var k = 0u; k < VW / WG; k++) {
        var ss = 0.0;
        for (var i = t + k * WG; i < p.dim; i = i + VW) {
            let v = x[base + i];
            ss = ss + v * v;
        }
        parts[k] = ss;
    }
    return inverseSqrt(workgroup_sum(parts, t) / f32(p.dim) + p.eps);
}

@compute @workgroup_size(WG)
fn rmsnorm(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_id) lid: vec3<u32>) {
    let row = wid.x + wid.y * nwg.x;
    if (row >= p.rows) {
        return;
    }
    rmsnorm_row(row, lid.x);
}

fn rmsnorm_row(row: u32, t: u32) {
    let base = row * p.dim;
    let r = inv_rms(base, t);
    for (var i = t; i < p.dim; i = i + WG) {
        y[base + i] = x[base + i] * r * w[i];
    }
}

// rmsnorm, and its output quantized into xq_at4 (rows of whole units).
@compute @workgroup_size(WG)
fn rmsnorm_q8(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_id) lid: vec3<u32>) {
    let row = wid.x + wid.y * nwg.x;
    if (row >= p.rows) {
        return;
    }
    rmsnorm_row(row, lid.x);
    // Each unit's values were written by other invocations.
    storageBarrier();
    for (var u = lid.x; u < p.dim / 32u; u = u + WG) {
        let e0 = row * p.dim + 32u * u;
        var v: array<vec4<f32>, 8>;
        for (var i = 0u; i < 8u; i++) {
            let e = e0 + 4u * i;
            v[i] = vec4<f32>(y[e], y[e + 1u], y[e + 2u], y[e + 3u]);
        }
        let q = x8_unit(v);
        let o = XQ_UNIT * (row * (p.dim / 32u) + u);
        for (var j = 0u; j < XQ_UNIT; j++) {
            xq_at4[o + j] = q[j];
        }
    }
}

// residual[r] += delta[r]; out[r] = rmsnorm(residual[r]) * w: the residual add fused with the next
// pre-norm. Each invocation reads back only the elements it wrote, so no barrier is needed between.
@compute @workgroup_size(WG)
fn add_rmsnorm(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_id) lid: vec3<u32>) {
    let row = wid.x + wid.y * nwg.x;
    if (row >= p.rows) {
        return;
    }
    add_rmsnorm_row(row, lid.x);
}

fn add_rmsnorm_row(row: u32, t: u32) {
    let base = row * p.dim;
    var parts: Parts;
    for (var k = 0u; k < VW / WG; k++) {
        var ss = 0.0;
        for (var i = t + k * WG; i < p.dim; i = i + VW) {
            let v = res1[base + i] + delta2[base + i];
            res1[base + i] = v;
            ss = ss + v * v;
        }
        parts[k] = ss;
    }
    let r = inverseSqrt(workgroup_sum(parts, t) / f32(p.dim) + p.eps);
    for (var i = t; i < p.dim; i = i + WG) {
        out4[base + i] = res1[base + i] * r * w3[i];
    }
}

// add_rmsnorm, and its output quantized into xq_at5.
@compute @workgroup_size(WG)
fn add_rmsnorm_q8(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_id) lid: vec3<u32>) {
    let row = wid.x + wid.y * nwg.x;
    if (row >= p.rows) {
        return;
    }
    add_rmsnorm_row(row, lid.x);
    // Each unit's values were written by other invocations.
    storageBarrier();
    for (var u = lid.x; u < p.dim / 32u; u = u + WG) {
        let e0 = row * p.dim + 32u * u;
        var v: array<vec4<f32>, 8>;
        for (var i = 0u; i < 8u; i++) {
            let e = e0 + 4u * i;
            v[i] = vec4<f32>(out4[e], out4[e + 1u], out4[e + 2u], out4[e + 3u]);
        }
        let q = x8_unit(v);
        let o = XQ_UNIT * (row * (p.dim / 32u) + u);
        for (var j = 0u; j < XQ_UNIT; j++) {
            xq_at5[o + j] = q[j];
        }
    }
}

// residual[r] += rmsnorm(x[r]) * w; out[r] = rmsnorm(residual[r]) * w2: Gemma's post-norm, residual
// add and the next pre-norm in one dispatch.
@compute @workgroup_size(WG)
fn rmsnorm_add_rmsnorm(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                       @builtin(local_invocation_id) lid: vec3<u32>) {
    let row = wid.x + wid.y * nwg.x;
    if (row >= p.rows) {
        return;
    }
    rmsnorm_add_rmsnorm_row(row, lid.x);
}

fn rmsnorm_add_rmsnorm_row(row: u32, t: u32) {
    let base = row * p.dim;
    let r = inv_rms(base, t);
    var parts: Parts;
    for (var k = 0u; k < VW / WG; k++) {
        var ss = 0.0;
        for (var i = t + k * WG; i < p.dim; i = i + VW) {
            let v = y[base + i] + x[base + i] * r * w[i];
            y[base + i] = v;
            ss = ss + v * v;
        }
        parts[k] = ss;
    }
    let r2 = inverseSqrt(workgroup_sum(parts, t) / f32(p.dim) + p.eps);
    for (var i = t; i < p.dim; i = i + WG) {
        out5[base + i] = y[base + i] * r2 * w4[i];
    }
}

// rmsnorm_add_rmsnorm, and its output quantized into xq_at6.
@compute @workgroup_size(WG)
fn rmsnorm_add_rmsnorm_q8(@builtin(workgroup_id) wid: vec3<u32>,
                          @builtin(num_workgroups) nwg: vec3<u32>,
                          @builtin(local_invocation_id) lid: vec3<u32>) {
    let row = wid.x + wid.y * nwg.x;
    if (row >= p.rows) {
        return;
    }
    rmsnorm_add_rmsnorm_row(row, lid.x);
    // Each unit's values were written by other invocations.
    storageBarrier();
    for (var u = lid.x; u < p.dim / 32u; u = u + WG) {
        let e0 = row * p.dim + 32u * u;
        var v: array<vec4<f32>, 8>;
        for (var i = 0u; i < 8u; i++) {
            let e = e0 + 4u * i;
            v[i] = vec4<f32>(out5[e], out5[e + 1u], out5[e + 2u], out5[e + 3u]);
        }
        let q = x8_unit(v);
        let o = XQ_UNIT * (row * (p.dim / 32u) + u);
        for (var j = 0u; j < XQ_UNIT; j++) {
            xq_at6[o + j] = q[j];
        }
    }
}

// rmsnorm_fold: the start of a norm folded into the next matvec (shaders/matvec.wgsl, NORM_IN):
// y = w ⊙ x and, from float NORM_SSQ of y, x's sum of squares per 4 values, for one row. An
// invocation per 4 values (WG of them a workgroup, any number of workgroups).
override NORM_SSQ: u32 = 12288u;

@compute @workgroup_size(WG)
fn rmsnorm_fold(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = 4u * gid.x;
    if (i >= p.dim) {
        return;
    }
    let v = vec4<f32>(x[i], x[i + 1u], x[i + 2u], x[i + 3u]);
    let z = v * vec4<f32>(w[i], w[i + 1u], w[i + 2u], w[i + 3u]);
    for (var r = 0u; r < 4u; r++) {
        y[i + r] = z[r];
    }
    let sq = v * v;
    y[NORM_SSQ + gid.x] = (sq.x + sq.y) + (sq.z + sq.w);
}
