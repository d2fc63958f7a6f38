// Rotary position embedding of q [rows (tokens), heads, head_dim] in place and of k, fused with the
// KV cache write (rope_kv; rmsnorm_rope_kv normalizes each q/k head first). Token i sits at position
// pos0 + i. Pairs of dims are rotated: (2j, 2j+1) in llama.cpp's "normal" mode, or
// (j, j + rot_dims/2) in NeoX mode; dims ≥ rot_dims are untouched.
//
// Angles stay accurate for large positions: the host passes each pair's frequency in *turns* per
// position (freq * freq_scale / 2π, computed in f64) split as hi + lo, hi holding 12 significant bits.
// With the position split as ph + pl (multiples of 4096, and the rest), ph*hi and pl*hi are exact in
// f32, so their fractional parts are exact too; the small ph*lo + pl*lo terms carry the remaining
// bits. sin/cos are evaluated in rope_angle.wgsl (sin_cos_turns), not with the builtins. Error is
// ~1e-6 rad for positions up to 2^24, versus ~1e-2 rad for a plain f32 pos*freq at position
// 131072.

struct Params {
    total: u32,      // rope_kv: pairs in q (rows * heads * rot_dims / 2); rmsnorm_rope_kv: q head rows
    heads: u32,
    head_dim: u32,
    rot_dims: u32,
    pos0: u32,
    neox: u32,
    total2: u32,     // rope_kv: dim pairs of K (and of V), rows * heads2 * head_dim / 2; rmsnorm_rope_kv: k head rows
    heads2: u32,     // kv heads
    eps: f32,        // rmsnorm_rope_kv
    capacity: u32,   // rope_kv: positions per kv head in the cache
    // Multiplies cos and sin (so the rotated dims): LongRoPE's attention factor, else 1.
    mscale: f32,
    _pad: u32,
    // Pair j's (hi, lo) turns per position at freq[j / 2].xy (j even) or .zw (j odd).
    freq: array<vec4<f32>, 128>,
}

override WG: u32 = 256u;
// rmsnorm_rope_kv: the width its sums are taken at, whatever WG (≤ VW, VW / WG ≤ 32) runs them
// (as in shaders/rmsnorm.wgsl: CPU adapters run small workgroups with a GPU's bits).
override VW: u32 = 256u;
// The KV cache holds f32 words, one per dim, instead of f16 pairs (layout: shaders/attention.wgsl).
override KV32: bool = false;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
// rmsnorm_rope_kv: k, normalized and rotated in place in the same dispatch.
@group(0) @binding(2) var<storage, read_write> x2: array<f32>;
// rmsnorm_rope_kv: the per-head norm weights of q and k (head_dim entries each).
@group(0) @binding(3) var<storage, read> wq: array<f32>;
@group(0) @binding(4) var<storage, read> wk: array<f32>;

var<workgroup> red: array<f32, 256>;

// Where pair `i` of a [rows, heads, head_dim] tensor sits, and its (sin, cos).
struct Pair {
    i0: u32,
    i1: u32,
    sc: vec2<f32>,
}

fn pair(i: u32, heads: u32) -> Pair {
    let half = p.rot_dims / 2u;
    let j = i % half;
    let head_row = i / half;            // token * heads + head
    let pos = p.pos0 + head_row / heads;
    let base = head_row * p.head_dim;
    var i0 = base + 2u * j;
    var i1 = i0 + 1u;
    if (p.neox != 0u) {
        i0 = base + j;
        i1 = i0 + half;
    }
    return Pair(i0, i1, angle(j, pos));
}

// (sin, cos) of pair j's angle at position pos, times mscale.
fn angle(j: u32, pos: u32) -> vec2<f32> {
    let f = p.freq[j / 2u];
    if ((j & 1u) != 0u) {
        return rope_sin_cos(f.z, f.w, pos, p.mscale);
    }
    return rope_sin_cos(f.x, f.y, pos, p.mscale);
}

// Partial sums of virtual invocations t + k * WG (k < VW / WG), each over its elements i ≡ vt
// (mod VW) in order; summed with the levels s ≥ WG of VW's tree in registers, the rest in
// workgroup memory: the same pairs in the same order as one VW-wide tree.
alias Parts = array<f32, 32>;

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

// Head row hr (q rows first, then k rows; total and total2 count head rows here, not pairs):
// normalized with its weight and rotated, in place.
fn norm_rope_row(hr: u32, t: u32) {
    let q_rows = p.total;
    let is_q = hr < q_rows;
    let head_row = select(hr - q_rows, hr, is_q);
    let heads = select(p.heads2, p.heads, is_q);
    let base = head_row * p.head_dim;

    var parts: Parts;
    for (var k = 0u; k < VW / WG; k++) {
        var ss = 0.0;
        for (var i = t + k * WG; i < p.head_dim; i = i + VW) {
            var v: f32;
            if (is_q) { v = x[base + i]; } else { v = x2[base + i]; }
            ss = ss + v * v;
        }
        parts[k] = ss;
    }
    let r = inverseSqrt(workgroup_sum(parts, t) / f32(p.head_dim) + p.eps);

    let half = p.rot_dims / 2u;
    for (var j = t; j < half; j = j + WG) {
        // pair() indexes pairs as head_row * half + j.
        let pr = pair(head_row * half + j, heads);
        let o0 = pr.i0 - base;
        let o1 = pr.i1 - base;
        if (is_q) {
            let v = rotate(x[pr.i0] * r * wq[o0], x[pr.i1] * r * wq[o1], pr.sc);
            x[pr.i0] = v.x;
            x[pr.i1] = v.y;
        } else {
            let v = rotate(x2[pr.i0] * r * wk[o0], x2[pr.i1] * r * wk[o1], pr.sc);
            x2[pr.i0] = v.x;
            x2[pr.i1] = v.y;
        }
    }
    for (var i = p.rot_dims + t; i < p.head_dim; i = i + WG) {
        if (is_q) {
            x[base + i] = x[base + i] * r * wq[i];
        } else {
            x2[base + i] = x2[base + i] * r * wk[i];
        }
    }
}

// rmsnorm_rope_kv: per-head RMSNorm of q and k (Gemma 3, Qwen 3) followed by RoPE, in place, then
// each k row (its workgroup waits for every write) and its v row go into the layer's KV cache
// (layout as in rope_kv). One workgroup per (token, head) row, the q rows first (rows * heads of
// them), then the k rows. A row's sum of squares is reduced before any invocation writes, so
// normalizing in place is safe.
@group(0) @binding(5) var<storage, read> v_rows: array<f32>;
@group(0) @binding(6) var<storage, read_write> kc_rows: array<u32>;
@group(0) @binding(7) var<storage, read_write> vc_rows: array<u32>;

@compute @workgroup_size(WG)
fn rmsnorm_rope_kv(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_id) lid: vec3<u32>) {
    let hr = wid.x + wid.y * nwg.x;
    if (hr >= p.total + p.total2) {
        return;
    }
    norm_rope_row(hr, lid.x);
    if (hr < p.total) {
        return;
    }
    storageBarrier();
    workgroupBarrier();
    let row = hr - p.total;            // token * kv heads + kv head
    let kvh = row % p.heads2;
    let pos = p.pos0 + row / p.heads2;
    let dp = p.head_dim / 2u;
    let base = row * p.head_dim;
    for (var w = lid.x; w < dp; w = w + WG) {
        let kp = vec2<f32>(x2[base + 2u * w], x2[base + 2u * w + 1u]);
        let vp = vec2<f32>(v_rows[base + 2u * w], v_rows[base + 2u * w + 1u]);
        if (KV32) {
            let kd = (kvh * p.head_dim + 2u * w) * p.capacity + pos;
            kc_rows[kd] = bitcast<u32>(kp.x);
            kc_rows[kd + p.capacity] = bitcast<u32>(kp.y);
            let vd = (kvh * p.capacity + pos) * p.head_dim + 2u * w;
            vc_rows[vd] = bitcast<u32>(vp.x);
            vc_rows[vd + 1u] = bitcast<u32>(vp.y);
        } else {
            kc_rows[(kvh * dp + w) * p.capacity + pos] = pack2x16float(kp);
            vc_rows[(kvh * p.capacity + pos) * dp + w] = pack2x16float(vp);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// rope_kv: RoPE of q in place plus K and V written straight into the layer's f16 KV cache (the
// layout of shaders/attention.wgsl: K [kv heads][head_dim / 2][capacity], V [kv heads][capacity]
// [head_dim / 2], two dims per word; with KV32 a word per dim), in one dispatch. Invocations:
// `total` q pairs, then `total2` K words, then `total2` V words. A K word holds dims 2w and 2w+1,
// which in NeoX mode belong to two different pairs, so each dim is rotated on its own from the
// unrotated k (read-only here).

@group(0) @binding(2) var<storage, read> k_in: array<f32>;
@group(0) @binding(3) var<storage, read> v_in: array<f32>;
@group(0) @binding(4) var<storage, read_write> kc: array<u32>;
@group(0) @binding(5) var<storage, read_write> vc: array<u32>;

// Dim d of k head row `row` (token * kv heads + head) at position pos, rotated.
fn k_dim(row: u32, d: u32, pos: u32) -> f32 {
    let base = row * p.head_dim;
    if (d >= p.rot_dims) {
        return k_in[base + d];
    }
    let half = p.rot_dims / 2u;
    var j = d / 2u;
    var first = (d & 1u) == 0u;
    var partner = d ^ 1u;
    if (p.neox != 0u) {
        first = d < half;
        j = select(d - half, d, first);
        partner = select(d - half, d + half, first);
    }
    let a = select(k_in[base + partner], k_in[base + d], first);
    let b = select(k_in[base + d], k_in[base + partner], first);
    let r = rotate(a, b, angle(j, pos));
    return select(r.y, r.x, first);
}

@compute @workgroup_size(WG)
fn rope_kv(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = (wid.x + wid.y * nwg.x) * WG + lid.x;
    if (i < p.total) {
        let q = pair(i, p.heads);
        let r = rotate(x[q.i0], x[q.i1], q.sc);
        x[q.i0] = r.x;
        x[q.i1] = r.y;
        return;
    }
    let dp = p.head_dim / 2u;
    let w = (i - p.total) % p.total2;   // word of k / v: (token, kv head, dim pair)
    if (i >= p.total + 2u * p.total2) {
        return;
    }
    let pw = w % dp;
    let row = w / dp;                    // token * kv heads + kv head
    let kvh = row % p.heads2;
    let pos = p.pos0 + row / p.heads2;
    if (i < p.total + p.total2) {
        let pk = vec2<f32>(k_dim(row, 2u * pw, pos), k_dim(row, 2u * pw + 1u, pos));
        if (KV32) {
            let kd = (kvh * p.head_dim + 2u * pw) * p.capacity + pos;
            kc[kd] = bitcast<u32>(pk.x);
            kc[kd + p.capacity] = bitcast<u32>(pk.y);
        } else {
            kc[(kvh * dp + pw) * p.capacity + pos] = pack2x16float(pk);
        }
    } else {
        let v = vec2<f32>(v_in[row * p.head_dim + 2u * pw], v_in[row * p.head_dim + 2u * pw + 1u]);
        if (KV32) {
            let vd = (kvh * p.capacity + pos) * p.head_dim + 2u * pw;
            vc[vd] = bitcast<u32>(v.x);
            vc[vd + 1u] = bitcast<u32>(v.y);
        } else {
            vc[(kvh * p.capacity + pos) * dp + pw] = pack2x16float(v);
        }
    }
}
