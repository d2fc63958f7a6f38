// The gated activations of GLU feed-forwards on f32 vectors (SwiGLU, GeGLU), and soft-capping in
// place (Gemma 2's final logits): one invocation per
// vec4 (entry points ending in `4`, used when n is a multiple of 4) or per scalar (any n). 256 invocations per workgroup; the workgroup grid may be
// folded into (x, y), so the linear index is wid.x + wid.y * nwg.x and overshoot is skipped.
//
// Different entry points bind different variables at the same binding slot (WGSL allows that as long
// as no single entry point uses two of them): slot 1 is the first input (gate, or the [gate | up]
// rows), slot 2 the second input (up) or the output of the `_rows` entries, slot 3 the output of the
// others; `softcap` reads and writes slot 1.

struct Params {
    n: u32,     // elements (scalar entries) or vec4s (vec4 entries)
    cols: u32,  // *_rows4: f, the output row length in vec4s
    cap: f32,   // softcap: the cap c > 0
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

@group(0) @binding(1) var<storage, read> a1: array<f32>;
@group(0) @binding(1) var<storage, read> a1v: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> x1: array<f32>;
@group(0) @binding(1) var<storage, read_write> x1v: array<vec4<f32>>;

@group(0) @binding(2) var<storage, read> b2: array<f32>;
@group(0) @binding(2) var<storage, read> b2v: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> o2v: array<vec4<f32>>;

@group(0) @binding(3) var<storage, read_write> o3: array<f32>;
@group(0) @binding(3) var<storage, read_write> o3v: array<vec4<f32>>;

const WG: u32 = 256u;

fn lin_index(wid: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>) -> u32 {
    return (wid.x + wid.y * nwg.x) * WG + lid.x;
}

// silu_v(x) = x * sigmoid(x). For very negative x, exp(-x) overflows to inf and the quotient is -0.
fn silu_v(x: vec4<f32>) -> vec4<f32> {
    return x / (vec4<f32>(1.0) + exp(-x));
}

// GELU, tanh approximation (as llama.cpp and Gemma use). tanh is computed from a clamped exp so that
// no backend's tanh can overflow into NaN for large arguments.
fn gelu_v(x: vec4<f32>) -> vec4<f32> {
    let u = 0.7978845608028654 * x * (vec4<f32>(1.0) + 0.044715 * x * x);
    let e = exp(2.0 * clamp(u, vec4<f32>(-15.0), vec4<f32>(15.0)));
    let t = vec4<f32>(1.0) - 2.0 / (e + vec4<f32>(1.0));
    return 0.5 * x * (vec4<f32>(1.0) + t);
}

fn silu_s(x: f32) -> f32 { return silu_v(vec4<f32>(x)).x; }
fn gelu_s(x: f32) -> f32 { return gelu_v(vec4<f32>(x)).x; }

// ---- out = silu_v(gate) * up ----
@compute @workgroup_size(WG)
fn swiglu4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = lin_index(wid, nwg, lid);
    if (i < p.n) { o3v[i] = silu_v(a1v[i]) * b2v[i]; }
}
@compute @workgroup_size(WG)
fn swiglu(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = lin_index(wid, nwg, lid);
    if (i < p.n) { o3[i] = silu_s(a1[i]) * b2[i]; }
}

// ---- out = gelu_tanh(gate) * up ----
@compute @workgroup_size(WG)
fn geglu4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = lin_index(wid, nwg, lid);
    if (i < p.n) { o3v[i] = gelu_v(a1v[i]) * b2v[i]; }
}
@compute @workgroup_size(WG)
fn geglu(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = lin_index(wid, nwg, lid);
    if (i < p.n) { o3[i] = gelu_s(a1[i]) * b2[i]; }
}

// ---- GLU over rows [gate | up] of 2 * cols vec4s: out[t, j] = act(gate[t, j]) * up[t, j] ----
// (a prefill matmul over a fused [gate; up] weight writes such rows)
@compute @workgroup_size(WG)
fn swiglu_rows4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = lin_index(wid, nwg, lid);
    let g = (i / p.cols) * 2u * p.cols + i % p.cols;
    if (i < p.n) { o2v[i] = silu_v(a1v[g]) * a1v[g + p.cols]; }
}
@compute @workgroup_size(WG)
fn geglu_rows4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = lin_index(wid, nwg, lid);
    let g = (i / p.cols) * 2u * p.cols + i % p.cols;
    if (i < p.n) { o2v[i] = gelu_v(a1v[g]) * a1v[g + p.cols]; }
}

// ---- x = c * tanh(x / c), in place (final logit soft-capping, Gemma 2) ----
// tanh to ~1e-7 relative (builtin tanh precision varies between drivers): an odd Taylor series near
// 0, where 1 - e^(-2|x|) would cancel, else from exp; e^(-2|x|) underflows to 0 for large |x|, giving
// exactly +-1. (The same function as attention.wgsl's tanh_acc.)
fn tanh_acc(x: vec4<f32>) -> vec4<f32> {
    let a = abs(x);
    let x2 = x * x;
    // x - x^3/3 + 2x^5/15 - 17x^7/315 + 62x^9/2835 - 1382x^11/155925 (next term < 6e-11 at 0.25)
    let series = x * (1.0 + x2 * (-0.33333333333 + x2 * (0.13333333333 + x2 * (-0.053968253968
        + x2 * (0.021869488536 + x2 * -0.0088632355299)))));
    let e = exp(-2.0 * a);
    let big = sign(x) * (1.0 - e) / (1.0 + e);
    return select(big, series, a < vec4<f32>(0.25));
}

@compute @workgroup_size(WG)
fn softcap4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = lin_index(wid, nwg, lid);
    if (i < p.n) { x1v[i] = p.cap * tanh_acc(x1v[i] / p.cap); }
}
@compute @workgroup_size(WG)
fn softcap(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = lin_index(wid, nwg, lid);
    if (i < p.n) { x1[i] = p.cap * tanh_acc(vec4<f32>(x1[i] / p.cap)).x; }
}
