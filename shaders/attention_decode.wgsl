// Decode attention for GPUs (`attend_decode`, split-K, and `attend_reduce`) of the attention
// module: this file follows `attention.wgsl` (the cache layout, parameters, bindings and shared
// helpers) in the module src/kernels/attention.rs builds.
//
// ---------------------------------------------------------------------------------------------
// attend_decode: one query (m = 1), the key range split into chunks of CHUNK keys ("flash
// decoding") so long contexts fill many workgroups. Workgroup = (kv head, group of up to 8 query
// heads, chunk). Each invocation scores one key for all heads of the group at once (heads packed
// in vec4s: no dynamically indexed private arrays, which CPU adapters spill); then each invocation
// owns a dim pair and sums p·V over the chunk. Partials go to `part`: unnormalised outputs
// [n_heads][n_split][D], then (max, sum) pairs [n_heads][n_split][2]; attend_reduce merges them.

@group(0) @binding(4) var<storage, read_write> part: array<f32>;

var<workgroup> q_heads: array<vec4<f32>, 512>;  // [dim][heads 0-3 | heads 4-7], pre-scaled
var<workgroup> s_chunk: array<vec4<f32>, 128>;  // [key][heads 0-3 | heads 4-7]: scores, then e^(s-max)
var<workgroup> chunk_sum: array<vec4<f32>, 2>;   // direct mode: softmax denominators

fn decode_q(h0: u32, nh: u32, g: u32, d: u32) -> f32 {
    if (g >= nh) {
        return 0.0;
    }
    return q[(P.q_row * P.n_heads + h0 + g) * D + d] * P.scale;
}

fn component(a: vec4<f32>, b: vec4<f32>, g: u32) -> f32 {
    if (g < 4u) {
        return a[g];
    }
    return b[g - 4u];
}

// Direct mode: running softmax max and sum per head over the chunks seen so far, and the factor
// e^(old max - new max) the current chunk rescales earlier sums and outputs by.
var<workgroup> run_max: array<vec4<f32>, 2>;
var<workgroup> run_sum: array<vec4<f32>, 2>;
var<workgroup> run_alpha: array<vec4<f32>, 2>;

// p·V of one dim pair over a chunk, rescaling the running outputs (x, y for heads 0-3 in lo, 4-7
// in hi) by alpha first.
struct PairAcc {
    x_lo: vec4<f32>, y_lo: vec4<f32>, x_hi: vec4<f32>, y_hi: vec4<f32>,
}

// V pair p of key c of a chunk whose first key's row starts at word `off`
// ((kv head * capacity + k0) * head_dim/2 * kv_words()).
fn v_pair(off: u32, c: u32, p: u32) -> vec2<f32> {
    if (KV32) {
        let i = off + c * D + 2u * p;
        return vec2<f32>(bitcast<f32>(vc[i]), bitcast<f32>(vc[i + 1u]));
    }
    return unpack2x16float(vc[off + c * (D / 2u) + p]);
}

fn pv_chunk(acc: PairAcc, v_off: u32, p: u32, nk: u32, wide: bool) -> PairAcc {
    var o = acc;
    o.x_lo *= run_alpha[0];
    o.y_lo *= run_alpha[0];
    o.x_hi *= run_alpha[1];
    o.y_hi *= run_alpha[1];
    for (var c = 0u; c < nk; c++) {
        let v = v_pair(v_off, c, p);
        let w = s_chunk[2u * c];
        o.x_lo += w * v.x;
        o.y_lo += w * v.y;
        if (wide) {
            let w2 = s_chunk[2u * c + 1u];
            o.x_hi += w2 * v.x;
            o.y_hi += w2 * v.y;
        }
    }
    return o;
}

fn store_pair(acc: PairAcc, p: u32, h0: u32, nh: u32, split: u32, wide: bool) {
    if (P.direct != 0u) {
        // The workgroup saw every key: `part` is the output [heads][D] of row q_row.
        let inv_lo = 1.0 / run_sum[0];
        let inv_hi = 1.0 / select(vec4<f32>(1.0), run_sum[1], wide);
        for (var g = 0u; g < nh; g++) {
            let at = (P.q_row * P.n_heads + h0 + g) * D + 2u * p;
            part[at] = component(acc.x_lo * inv_lo, acc.x_hi * inv_hi, g);
            part[at + 1u] = component(acc.y_lo * inv_lo, acc.y_hi * inv_hi, g);
        }
    } else {
        for (var g = 0u; g < nh; g++) {
            let at = ((h0 + g) * P.n_split + split) * D + 2u * p;
            part[at] = component(acc.x_lo, acc.x_hi, g);
            part[at + 1u] = component(acc.y_lo, acc.y_hi, g);
        }
    }
}

@compute @workgroup_size(64)
fn attend_decode(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) li: u32) {
    let g_size = group_size();
    let n_hg = (g_size + HG - 1u) / HG;
    let lin = wid.x + wid.y * nwg.x;
    if (lin >= P.n_split * n_hg * P.n_kv_heads) {
        return;
    }
    let dp = D / 2u;
    let split = lin % P.n_split;
    let hg = (lin / P.n_split) % n_hg;
    let kvh = lin / (P.n_split * n_hg);
    let h0 = kvh * g_size + hg * HG;
    let nh = min(HG, g_size - hg * HG);
    let qp = P.pos0;
    let wide = HG > 4u;
    // Split mode: this workgroup's chunk. Direct mode (n_split == 1): every chunk in turn, with
    // an online softmax across them, so no reduce pass is needed.
    let n_chunks = select(1u, (qp + CHUNK - key_lo(qp)) / CHUNK, P.direct != 0u);

    for (var idx = li; idx < 2u * D; idx += DECODE_WG) {
        let d = idx / 2u;
        let g = (idx % 2u) * 4u;
        q_heads[idx] = vec4<f32>(decode_q(h0, nh, g, d), decode_q(h0, nh, g + 1u, d),
                                 decode_q(h0, nh, g + 2u, d), decode_q(h0, nh, g + 3u, d));
    }
    if (li < 2u) {
        run_max[li] = vec4<f32>(NEG);
        run_sum[li] = vec4<f32>(0.0);
    }
    // Each invocation owns dim pairs li and li + 64 (head_dim 256).
    let z = vec4<f32>(0.0);
    var acc0 = PairAcc(z, z, z, z);
    var acc1 = PairAcc(z, z, z, z);
    let ml0 = P.n_heads * P.n_split * D;
    for (var ci = 0u; ci < n_chunks; ci++) {
        let k0 = key_lo(qp) + (split + ci) * CHUNK;
        let nk = min(CHUNK, qp + 1u - k0);
        workgroupBarrier(); // q_heads ready; the previous chunk's s_chunk fully used

        {
            let c = li;
            var lo4 = vec4<f32>(NEG);
            var hi4 = vec4<f32>(NEG);
            if (c < nk) {
                lo4 = vec4<f32>(0.0);
                hi4 = vec4<f32>(0.0);
                let k_col = kvh * dp * kv_words() * P.capacity + k0 + c;
                for (var p = 0u; p < dp; p++) {
                    let kk = k_pair(k_col, p);
                    lo4 += q_heads[4u * p] * kk.x + q_heads[4u * p + 2u] * kk.y;
                    if (wide) {
                        hi4 += q_heads[4u * p + 1u] * kk.x + q_heads[4u * p + 3u] * kk.y;
                    }
                }
            }
            if (c < nk) {
                lo4 = soft_cap(lo4);
                hi4 = soft_cap(hi4);
            }
            s_chunk[2u * c] = lo4;
            s_chunk[2u * c + 1u] = hi4;
        }
        workgroupBarrier();

        // Max and sum for 4 heads at once (invocation 0: heads 0-3, invocation 1: heads 4-7),
        // merged into the running ones. Keys past the chunk end hold NEG: e^(NEG - max) = 0.
        if (li < select(1u, 2u, wide)) {
            var mx = run_max[li];
            for (var c = 0u; c < nk; c++) {
                mx = max(mx, s_chunk[2u * c + li]);
            }
            var sum = vec4<f32>(0.0);
            for (var c = 0u; c < CHUNK; c++) {
                let e = exp(s_chunk[2u * c + li] - mx);
                s_chunk[2u * c + li] = e;
                sum += e;
            }
            let alpha = exp(run_max[li] - mx);
            run_alpha[li] = alpha;
            run_sum[li] = run_sum[li] * alpha + sum;
            run_max[li] = mx;
            for (var g = 0u; g < 4u; g++) {
                let head = li * 4u + g;
                if (head < nh && P.direct == 0u) {
                    let at = ml0 + ((h0 + head) * P.n_split + split) * 2u;
                    part[at] = mx[g];
                    part[at + 1u] = sum[g];
                }
            }
        }
        workgroupBarrier();

        let v_off = (kvh * P.capacity + k0) * dp * kv_words();
        if (li < dp) {
            acc0 = pv_chunk(acc0, v_off, li, nk, wide);
        }
        if (li + DECODE_WG < dp) {
            acc1 = pv_chunk(acc1, v_off, li + DECODE_WG, nk, wide);
        }
    }
    if (li < dp) {
        store_pair(acc0, li, h0, nh, split, wide);
    }
    if (li + DECODE_WG < dp) {
        store_pair(acc1, li + DECODE_WG, h0, nh, split, wide);
    }
}

// attend_reduce: one workgroup per head merges the chunk partials: with M the largest chunk max,
// out = sum_s e^(m_s - M) o_s / sum_s e^(m_s - M) l_s.

@group(0) @binding(1) var<storage, read> part_in: array<f32>;
@group(0) @binding(2) var<storage, read_write> out_heads: array<f32>;

@compute @workgroup_size(64)
fn attend_reduce(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) li: u32) {
    let h = wid.x + wid.y * nwg.x;
    if (h >= P.n_heads) {
        return;
    }
    let ns = P.n_split;
    let ml = P.n_heads * ns * D + h * ns * 2u;
    var mx = NEG;
    for (var s = 0u; s < ns; s++) {
        mx = max(mx, part_in[ml + 2u * s]);
    }
    var total = 0.0;
    for (var s = 0u; s < ns; s++) {
        total += exp(part_in[ml + 2u * s] - mx) * part_in[ml + 2u * s + 1u];
    }
    let inv = 1.0 / total;
    for (var d = li; d < D; d += DECODE_WG) {
        var o = 0.0;
        for (var s = 0u; s < ns; s++) {
            o += exp(part_in[ml + 2u * s] - mx) * part_in[(h * ns + s) * D + d];
        }
        out_heads[(P.q_row * P.n_heads + h) * D + d] = o * inv;
    }
}
