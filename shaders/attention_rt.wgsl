// Attention for CPU adapters (`attend_prefill_rt`, `attend_decode_rt`) of the attention module:
// this file follows `attention.wgsl` and `attention_decode.wgsl` in the module
// src/kernels/attention.rs builds.
//
// ---------------------------------------------------------------------------------------------
// attend_prefill_rt, attend_decode_rt: the same attention for CPU adapters, with no workgroup
// memory in the key loop and no barriers (on lavapipe every barrier switches between all of a
// workgroup's SIMD fibres, and workgroup memory is read lane by lane like storage). An invocation
// owns two rows (a row is (query i, head g of its kv head's group), ordered as in attend_prefill)
// and keeps their scaled q and outputs in private arrays; every K/V word it loads serves both.
// Prefill: the 2 RT_WG rows of a workgroup walk the keys any of them may see 8 at a time. Decode:
// the invocations split the keys and merge once at the end. Loads are what costs on CPU adapters,
// so K and V are read as vec4<u32>: 4 keys of a dim row of K, 8 (f16) or 4 (f32) dims of a V row.
// That needs D % 8 == 0 (f16) or D % 4 == 0 (f32) and a capacity that is a multiple of 4
// (src/kernels/attention.rs checks). Keys a row may not see get probability 0; V is read at keys
// clamped to the visible range, so no unwritten cache word reaches a sum.

override RT_WG: u32 = 8u;

// The cache seen as vec4<u32> (bindings 2 and 3 as kc and vc, which this entry point does not use).
@group(0) @binding(2) var<storage, read> kc4: array<vec4<u32>>;
@group(0) @binding(3) var<storage, read> vc4: array<vec4<u32>>;

// Keys k4 .. k4 + 3 (k4 % 4 == 0) of K dim row `row` (dims 2 row, 2 row + 1 for f16; dim `row`
// for f32, whose second vec4 is unused): [0] holds the even dim of each key, [1] the odd one.
fn k_quad(base: u32, row: u32, k4: u32) -> array<vec4<f32>, 2> {
    let w = kc4[(base + row * P.capacity + k4) / 4u];
    if (KV32) {
        return array<vec4<f32>, 2>(bitcast<vec4<f32>>(w), vec4<f32>(0.0));
    }
    let a = unpack2x16float(w.x);
    let b = unpack2x16float(w.y);
    let c = unpack2x16float(w.z);
    let d = unpack2x16float(w.w);
    return array<vec4<f32>, 2>(vec4<f32>(a.x, b.x, c.x, d.x), vec4<f32>(a.y, b.y, c.y, d.y));
}

alias Dims = array<vec4<f32>, 64>;

// Dims 4c .. 4c + 3 of the scores of keys k4 .. k4 + 3, for both rows (each K word loaded once).
fn rt_dims(s: array<vec4<f32>, 2>, a: vec4<f32>, b: vec4<f32>, base: u32, c: u32, k4: u32)
        -> array<vec4<f32>, 2> {
    var k: array<vec4<f32>, 4>;
    if (KV32) {
        k = array<vec4<f32>, 4>(k_quad(base, 4u * c, k4)[0], k_quad(base, 4u * c + 1u, k4)[0],
                                k_quad(base, 4u * c + 2u, k4)[0], k_quad(base, 4u * c + 3u, k4)[0]);
    } else {
        let lo = k_quad(base, 2u * c, k4);
        let hi = k_quad(base, 2u * c + 1u, k4);
        k = array<vec4<f32>, 4>(lo[0], lo[1], hi[0], hi[1]);
    }
    var sa = s[0];
    var sb = s[1];
    sa = fma(vec4<f32>(a.x), k[0], sa);
    sa = fma(vec4<f32>(a.y), k[1], sa);
    sa = fma(vec4<f32>(a.z), k[2], sa);
    sa = fma(vec4<f32>(a.w), k[3], sa);
    sb = fma(vec4<f32>(b.x), k[0], sb);
    sb = fma(vec4<f32>(b.y), k[1], sb);
    sb = fma(vec4<f32>(b.z), k[2], sb);
    sb = fma(vec4<f32>(b.w), k[3], sb);
    return array<vec4<f32>, 2>(sa, sb);
}

// Scores of keys k4 .. k4 + 3 against the q of both rows (dims in vec4s), summed as four
// interleaved partial dot products (chains a quarter as long: head_dim 256 would otherwise be one
// chain of 256 products).
fn rt_scores(qa: ptr<function, Dims>, qb: ptr<function, Dims>, base: u32, k4: u32)
        -> array<vec4<f32>, 2> {
    let z = array<vec4<f32>, 2>(vec4<f32>(0.0), vec4<f32>(0.0));
    var s0 = z;
    var s1 = z;
    var s2 = z;
    var s3 = z;
    let n = D / 16u;
    for (var c = 0u; c < n; c++) {
        s0 = rt_dims(s0, (*qa)[4u * c], (*qb)[4u * c], base, 4u * c, k4);
        s1 = rt_dims(s1, (*qa)[4u * c + 1u], (*qb)[4u * c + 1u], base, 4u * c + 1u, k4);
        s2 = rt_dims(s2, (*qa)[4u * c + 2u], (*qb)[4u * c + 2u], base, 4u * c + 2u, k4);
        s3 = rt_dims(s3, (*qa)[4u * c + 3u], (*qb)[4u * c + 3u], base, 4u * c + 3u, k4);
    }
    for (var c = 4u * n; c < D / 4u; c++) {
        s0 = rt_dims(s0, (*qa)[c], (*qb)[c], base, c, k4);
    }
    return array<vec4<f32>, 2>((s0[0] + s1[0]) + (s2[0] + s3[0]), (s0[1] + s1[1]) + (s2[1] + s3[1]));
}

// Both rows' acc += e * V row j (its first word at `off`), each V word loaded once.
fn rt_pv(acc_a: ptr<function, Dims>, acc_b: ptr<function, Dims>, off: u32, ea: f32, eb: f32) {
    if (KV32) {
        for (var c = 0u; c < D / 4u; c++) {
            let v = bitcast<vec4<f32>>(vc4[off / 4u + c]);
            (*acc_a)[c] = fma(vec4<f32>(ea), v, (*acc_a)[c]);
            (*acc_b)[c] = fma(vec4<f32>(eb), v, (*acc_b)[c]);
        }
    } else {
        for (var c = 0u; c < D / 8u; c++) {
            let w = vc4[off / 4u + c];
            let lo = vec4<f32>(unpack2x16float(w.x), unpack2x16float(w.y));
            let hi = vec4<f32>(unpack2x16float(w.z), unpack2x16float(w.w));
            (*acc_a)[2u * c] = fma(vec4<f32>(ea), lo, (*acc_a)[2u * c]);
            (*acc_a)[2u * c + 1u] = fma(vec4<f32>(ea), hi, (*acc_a)[2u * c + 1u]);
            (*acc_b)[2u * c] = fma(vec4<f32>(eb), lo, (*acc_b)[2u * c]);
            (*acc_b)[2u * c + 1u] = fma(vec4<f32>(eb), hi, (*acc_b)[2u * c + 1u]);
        }
    }
}

// One row of an invocation: where its q and output live, the keys it sees, its running softmax.
struct RtRow {
    at: u32,     // first element of its q / out row
    qp: u32,     // query position
    first: u32,  // first visible key
    mx: f32,
    sum: f32,
}

fn rt_row(rr: u32, g_size: u32, kvh: u32) -> RtRow {
    let qp = P.pos0 + rr / g_size;
    let at = ((rr / g_size) * P.n_heads + kvh * g_size + rr % g_size) * D;
    return RtRow(at, qp, key_lo(qp), NEG, 0.0);
}

// Masked, soft-capped scores of keys k0 .. k0 + 7 (two quads) -> their e^(s - max), with the
// row's running max and sum moved on; the third vec4 is the factor earlier outputs are rescaled
// by, in every component.
fn rt_softmax(row: ptr<function, RtRow>, s0: vec4<f32>, s1: vec4<f32>, ka: vec4<u32>)
        -> array<vec4<f32>, 3> {
    let kb = ka + vec4<u32>(4u);
    let qp = vec4<u32>((*row).qp);
    let first = vec4<u32>((*row).first);
    let sa = select(vec4<f32>(NEG), soft_cap(s0), (ka <= qp) & (ka >= first));
    let sb = select(vec4<f32>(NEG), soft_cap(s1), (kb <= qp) & (kb >= first));
    let m4 = max(sa, sb);
    let m_new = max((*row).mx, max(max(m4.x, m4.y), max(m4.z, m4.w)));
    let alpha = exp((*row).mx - m_new);
    let ea = select(exp(sa - m_new), vec4<f32>(0.0), sa <= vec4<f32>(NEG));
    let eb = select(exp(sb - m_new), vec4<f32>(0.0), sb <= vec4<f32>(NEG));
    let e4 = ea + eb;
    (*row).sum = (*row).sum * alpha + ((e4.x + e4.y) + (e4.z + e4.w));
    (*row).mx = m_new;
    return array<vec4<f32>, 3>(ea, eb, vec4<f32>(alpha));
}

// Output dims 4c .. 4c + 3 of the row whose first element is `at`.
fn rt_write(at: u32, c: u32, o: vec4<f32>) {
    out[at + 4u * c] = o.x;
    out[at + 4u * c + 1u] = o.y;
    out[at + 4u * c + 2u] = o.z;
    out[at + 4u * c + 3u] = o.w;
}

fn rt_store(row: RtRow, acc: ptr<function, Dims>) {
    let inv = 1.0 / row.sum;
    for (var c = 0u; c < D / 4u; c++) {
        rt_write(row.at, c, (*acc)[c] * inv);
    }
}

// Row rr's softmax state, with its scaled q loaded into qv and its output acc zeroed.
fn rt_init(rr: u32, g_size: u32, kvh: u32, qv: ptr<function, Dims>, acc: ptr<function, Dims>)
        -> RtRow {
    let row = rt_row(rr, g_size, kvh);
    for (var c = 0u; c < D / 4u; c++) {
        let i = row.at + 4u * c;
        (*qv)[c] = vec4<f32>(q[i], q[i + 1u], q[i + 2u], q[i + 3u]) * P.scale;
        (*acc)[c] = vec4<f32>(0.0);
    }
    return row;
}

// Keys k0 .. k0 + 7 (k0 % 4 == 0, k0 <= hi, the last key any row of the call sees) for the two
// rows a and b of kv head `kvh` an invocation owns.
fn rt_keys(ra: ptr<function, RtRow>, rb: ptr<function, RtRow>, qa: ptr<function, Dims>,
           qb: ptr<function, Dims>, acc_a: ptr<function, Dims>, acc_b: ptr<function, Dims>,
           kvh: u32, k0: u32, hi: u32) {
    let kw = kv_words();
    let base = kvh * (D / 2u) * kw * P.capacity;
    let ka = vec4<u32>(k0) + vec4<u32>(0u, 1u, 2u, 3u);
    let s0 = rt_scores(qa, qb, base, k0);
    // The second quad starts past the capacity only when all of it is masked.
    let s1 = rt_scores(qa, qb, base, min(k0 + 4u, P.capacity - 4u));
    let pa = rt_softmax(ra, s0[0], s1[0], ka);
    let pb = rt_softmax(rb, s0[1], s1[1], ka);
    for (var c = 0u; c < D / 4u; c++) {
        (*acc_a)[c] *= pa[2];
        (*acc_b)[c] *= pb[2];
    }
    let v_row = vec4<u32>(kvh * P.capacity);
    let ja = (v_row + min(ka, vec4<u32>(hi))) * D * kw / 2u;
    let jb = (v_row + min(ka + vec4<u32>(4u), vec4<u32>(hi))) * D * kw / 2u;
    rt_pv(acc_a, acc_b, ja.x, pa[0].x, pb[0].x);
    rt_pv(acc_a, acc_b, ja.y, pa[0].y, pb[0].y);
    rt_pv(acc_a, acc_b, ja.z, pa[0].z, pb[0].z);
    rt_pv(acc_a, acc_b, ja.w, pa[0].w, pb[0].w);
    rt_pv(acc_a, acc_b, jb.x, pa[1].x, pb[1].x);
    rt_pv(acc_a, acc_b, jb.y, pa[1].y, pb[1].y);
    rt_pv(acc_a, acc_b, jb.z, pa[1].z, pb[1].z);
    rt_pv(acc_a, acc_b, jb.w, pa[1].w, pb[1].w);
}

// A workgroup owns 2 RT_WG consecutive rows of one kv head: invocation li rows r0 + li and
// r0 + RT_WG + li, so every K/V load serves two rows.
@compute @workgroup_size(RT_WG)
fn attend_prefill_rt(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) li: u32) {
    let g_size = group_size();
    let rows = P.m * g_size;
    let tile_rows = 2u * RT_WG;
    let n_tiles = (rows + tile_rows - 1u) / tile_rows;
    let lin = wid.x + wid.y * nwg.x;
    if (lin >= n_tiles * P.n_kv_heads) {
        return;
    }
    let kvh = lin % P.n_kv_heads;
    // Last tiles (most keys) first, so the longest workgroups start early.
    let r0 = (n_tiles - 1u - lin / P.n_kv_heads) * tile_rows;
    let r_end = min(r0 + tile_rows, rows);
    let lo = key_lo(P.pos0 + r0 / g_size) & ~3u;
    let hi = P.pos0 + (r_end - 1u) / g_size;
    var qa: Dims;
    var qb: Dims;
    var acc_a: Dims;
    var acc_b: Dims;
    // Rows past the end compute row rows - 1 again and store nothing.
    var ra = rt_init(min(r0 + li, rows - 1u), g_size, kvh, &qa, &acc_a);
    var rb = rt_init(min(r0 + RT_WG + li, rows - 1u), g_size, kvh, &qb, &acc_b);
    for (var k0 = lo; k0 <= hi; k0 += 8u) {
        rt_keys(&ra, &rb, &qa, &qb, &acc_a, &acc_b, kvh, k0, hi);
    }
    if (r0 + li < rows) {
        rt_store(ra, &acc_a);
    }
    if (r0 + RT_WG + li < rows) {
        rt_store(rb, &acc_b);
    }
}

// attend_decode_rt: one query (m = 1) on CPU adapters. A workgroup owns two heads of one kv
// head's group and its RT_WG invocations split the visible keys (invocation li takes the blocks
// of 8 keys li, li + RT_WG, ...), each keeping both heads' softmax state and output; the partial
// results are merged once, through workgroup memory, at the end.
var<workgroup> rt_part: array<vec4<f32>, 512>;  // one head's outputs [invocation][D / 4]
var<workgroup> rt_stat: array<vec2<f32>, 8>;    // its (max, sum) per invocation

// Merge the invocations' partial results for one head and store it (when `store`, uniform).
fn rt_merge(li: u32, row: RtRow, acc: ptr<function, Dims>, store: bool) {
    workgroupBarrier(); // the previous merge's reads are done
    for (var c = 0u; c < D / 4u; c++) {
        rt_part[li * (D / 4u) + c] = (*acc)[c];
    }
    rt_stat[li] = vec2<f32>(row.mx, row.sum);
    workgroupBarrier();
    var m = NEG;
    for (var l = 0u; l < RT_WG; l++) {
        m = max(m, rt_stat[l].x);
    }
    var total = 0.0;
    for (var l = 0u; l < RT_WG; l++) {
        total += exp(rt_stat[l].x - m) * rt_stat[l].y;
    }
    if (!store) {
        return;
    }
    for (var c = li; c < D / 4u; c += RT_WG) {
        var o = vec4<f32>(0.0);
        for (var l = 0u; l < RT_WG; l++) {
            o = fma(vec4<f32>(exp(rt_stat[l].x - m)), rt_part[l * (D / 4u) + c], o);
        }
        rt_write(row.at, c, o / total);
    }
}

// The two rows of decode workgroup `lin` (heads h, h + 1 of kv head kvh's group; the second
// repeats the first when the group has no h + 1) with their q loaded, after invocation li walked
// its share of the keys. Returns the rows' softmax states; the outputs are in acc_a / acc_b.
fn rt_decode_walk(lin: u32, li: u32, qa: ptr<function, Dims>, qb: ptr<function, Dims>,
                  acc_a: ptr<function, Dims>, acc_b: ptr<function, Dims>) -> array<RtRow, 2> {
    let g_size = group_size();
    let kvh = lin % P.n_kv_heads;
    let h = 2u * (lin / P.n_kv_heads);
    let lo = key_lo(P.pos0) & ~3u;
    let hi = P.pos0;
    var ra = rt_init(h, g_size, kvh, qa, acc_a);
    var rb = rt_init(min(h + 1u, g_size - 1u), g_size, kvh, qb, acc_b);
    for (var k0 = lo + 8u * li; k0 <= hi; k0 += 8u * RT_WG) {
        rt_keys(&ra, &rb, qa, qb, acc_a, acc_b, kvh, k0, hi);
    }
    return array<RtRow, 2>(ra, rb);
}

@compute @workgroup_size(RT_WG)
fn attend_decode_rt(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) li: u32) {
    let g_size = group_size();
    let lin = wid.x + wid.y * nwg.x;
    if (lin >= (g_size + 1u) / 2u * P.n_kv_heads) {
        return;
    }
    var qa: Dims;
    var qb: Dims;
    var acc_a: Dims;
    var acc_b: Dims;
    let rows = rt_decode_walk(lin, li, &qa, &qb, &acc_a, &acc_b);
    rt_merge(li, rows[0], &acc_a, true);
    rt_merge(li, rows[1], &acc_b, 2u * (lin / P.n_kv_heads) + 1u < g_size);
}

// attend_decode_rt_split + attend_reduce_rt: the same decode with the merge in a second dispatch,
// for SwiftShader, which runs every SIMD fibre of a workgroup that has a barrier as a coroutine
// (~0.35 ms a dispatch of SmolLM2's 6 workgroups, against ~0.1 ms for the whole kernel without
// one). The partials are per (head, invocation) D / 4 vec4s of output and (max, sum, 0, 0); the
// reduce repeats `rt_merge`'s arithmetic in its order, so both paths give the same bits.
@group(0) @binding(4) var<storage, read_write> part_rt: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> part_rt_in: array<vec4<f32>>;

fn rt_part_store(li: u32, head: u32, row: RtRow, acc: ptr<function, Dims>) {
    let at = (head * RT_WG + li) * (D / 4u + 1u);
    for (var c = 0u; c < D / 4u; c++) {
        part_rt[at + c] = (*acc)[c];
    }
    part_rt[at + D / 4u] = vec4<f32>(row.mx, row.sum, 0.0, 0.0);
}

// Its own entry point rather than a flag of attend_decode_rt: the barriers must be absent from
// its code, not skipped (a barrier behind a uniform branch still cost SwiftShader the same).
@compute @workgroup_size(RT_WG)
fn attend_decode_rt_split(@builtin(workgroup_id) wid: vec3<u32>,
                          @builtin(num_workgroups) nwg: vec3<u32>,
                          @builtin(local_invocation_index) li: u32) {
    let g_size = group_size();
    let lin = wid.x + wid.y * nwg.x;
    if (lin >= (g_size + 1u) / 2u * P.n_kv_heads) {
        return;
    }
    var qa: Dims;
    var qb: Dims;
    var acc_a: Dims;
    var acc_b: Dims;
    let rows = rt_decode_walk(lin, li, &qa, &qb, &acc_a, &acc_b);
    let h = 2u * (lin / P.n_kv_heads);
    let head = (lin % P.n_kv_heads) * g_size + h;
    rt_part_store(li, head, rows[0], &acc_a);
    if (h + 1u < g_size) {
        rt_part_store(li, head + 1u, rows[1], &acc_b);
    }
}

// One invocation per (head, 4 output dims): `rt_merge` over the RT_WG partials of the head.
@compute @workgroup_size(64)
fn attend_reduce_rt(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) li: u32) {
    reduce_rt((wid.x + wid.y * nwg.x) * 64u + li);
}

// Outputs 4i..4i+3 (head i / (D / 4)), if that head exists.
fn reduce_rt(i: u32) {
    let h = i / (D / 4u);
    let c = i % (D / 4u);
    if (h >= P.n_heads) {
        return;
    }
    let n = D / 4u + 1u;
    let at = h * RT_WG * n;
    var m = NEG;
    for (var l = 0u; l < RT_WG; l++) {
        m = max(m, part_rt_in[at + l * n + D / 4u].x);
    }
    var total = 0.0;
    for (var l = 0u; l < RT_WG; l++) {
        let st = part_rt_in[at + l * n + D / 4u];
        total += exp(st.x - m) * st.y;
    }
    var o = vec4<f32>(0.0);
    for (var l = 0u; l < RT_WG; l++) {
        o = fma(vec4<f32>(exp(part_rt_in[at + l * n + D / 4u].x - m)), part_rt_in[at + l * n + c], o);
    }
    let r = o / total;
    let y = h * D + 4u * c;
    out_heads[y] = r.x;
    out_heads[y + 1u] = r.y;
    out_heads[y + 2u] = r.z;
    out_heads[y + 3u] = r.w;
}

// The int8 form of the heads' output for the int8 matvec after it (quant_x8.wgsl).
@group(0) @binding(3) var<storage, read_write> xq_heads: array<vec4<u32>>;

// attend_reduce_rt, and its output quantized into xq_heads: a workgroup's 64 invocations wrote
// outputs 256g..256g+255, 8 whole units of the heads' row, so after a barrier its first 8
// quantize one each; no quantize dispatch follows (the caller checks that the row is whole units).
@compute @workgroup_size(64)
fn attend_reduce_rt_q8(@builtin(workgroup_id) wid: vec3<u32>,
                       @builtin(num_workgroups) nwg: vec3<u32>,
                       @builtin(local_invocation_index) li: u32) {
    let g = wid.x + wid.y * nwg.x;
    reduce_rt(g * 64u + li);
    storageBarrier();
    let u = 8u * g + li;
    if (li < 8u && 32u * u < P.n_heads * D) {
        var v: array<vec4<f32>, 8>;
        for (var i = 0u; i < 8u; i++) {
            let e = 32u * u + 4u * i;
            v[i] = vec4<f32>(out_heads[e], out_heads[e + 1u], out_heads[e + 2u], out_heads[e + 3u]);
        }
        let q = x8_unit(v);
        for (var j = 0u; j < XQ_UNIT; j++) {
            xq_heads[XQ_UNIT * u + j] = q[j];
        }
    }
}
