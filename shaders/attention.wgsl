// Causal self-attention over an f16 (or f32) KV cache (flash-attention style: tiles + online
// softmax, so memory never grows with N²), with grouped-query heads and an optional sliding window.
//
// KV cache layout (one K and one V buffer per layer), each u32 holding two consecutive dims as f16
// (low half = even dim, i.e. pack2x16float):
//   K: [n_kv_heads][head_dim / 2][capacity]  (dims-major: invocations that each score one key read
//      consecutive words, a vector load on CPU adapters and coalesced on GPUs)
//   V: [n_kv_heads][capacity][head_dim / 2]  (position-major: invocations that each own a dim pair
//      read consecutive words)
// With KV32 every dim is its own f32 word (bitcast), same orders: K [n_kv_heads][head_dim]
// [capacity], V [n_kv_heads][capacity][head_dim]. Twice the memory; for reading attention weights
// at fp32 precision (the lens), not for speed.
//
// Soft-capping (Gemma 2): with P.softcap = c > 0 every scaled score s becomes c * tanh(s / c)
// before the mask and softmax (llama.cpp attn_soft_cap, HF attn_logit_softcapping); c = 0 leaves
// scores untouched.
//
// Masking (llama.cpp LLAMA_SWA_TYPE_STANDARD / HF sliding_window_overlay): query at position qp
// sees key j iff j <= qp and, with window W > 0, qp - j < W (i.e. j > qp - W).
//
// The cache is written by shaders/rope.wgsl (rope_kv, rmsnorm_rope_kv). Entry points here:
// attend_prefill (m > 1), attend_decode + attend_reduce (m = 1, split-K), attend_probs (the
// "attention lens": softmax weights of one query, for display).

override D: u32 = 64u;   // head_dim, even, <= 256
override BR: u32 = 32u;  // prefill: query rows per workgroup (rows = (query, head-in-group) pairs)
override BC: u32 = 16u;  // prefill: keys per tile
override HG: u32 = 8u;   // decode: query heads per workgroup (<= 8), all sharing one kv head
override KV32: bool = false;  // the cache holds f32 words, not f16 pairs (see the layout above)

const NEG: f32 = -3.0e38;    // score of a masked key (finite: no inf arithmetic anywhere)
const PREFILL_WG: u32 = 128u;
const DECODE_WG: u32 = 64u;
const CHUNK: u32 = 64u;      // decode: keys per workgroup (one per invocation)
const PROBS_WG: u32 = 256u;

struct Params {
    m: u32,          // queries in this call
    pos0: u32,       // position of query 0
    n_heads: u32,
    n_kv_heads: u32,
    capacity: u32,   // positions per kv head in the cache
    window: u32,     // 0 = unlimited
    scale: f32,
    n_split: u32,    // decode: key chunks per head
    q_row: u32,      // decode, lens: which row of q holds the query
    direct: u32,     // decode with n_split == 1: loop over every chunk, write normalised output
    softcap: f32,    // attention logit soft-cap, 0 = none
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> P: Params;

// First key visible to the query at position qp (the last one is qp itself).
fn key_lo(qp: u32) -> u32 {
    if (P.window == 0u || qp < P.window) {
        return 0u;
    }
    return qp + 1u - P.window;
}

// tanh to ~1e-7 relative (builtin tanh precision varies between drivers): an odd Taylor series
// near 0, where 1 - e^(-2|x|) would cancel, else from exp; e^(-2|x|) underflows to 0 for large |x|,
// giving exactly +-1 (no inf / inf).
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

// Soft-capped scores (see the header); the cap is uniform, so the branch is too.
fn soft_cap(s: vec4<f32>) -> vec4<f32> {
    if (P.softcap == 0.0) {
        return s;
    }
    return P.softcap * tanh_acc(s / P.softcap);
}

fn group_size() -> u32 {
    return P.n_heads / P.n_kv_heads;
}

// Cache words per dim pair: 1 (two f16) or 2 (two f32).
fn kv_words() -> u32 {
    return select(1u, 2u, KV32);
}

// ---------------------------------------------------------------------------------------------
// Shared by prefill, decode and the lens.

@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> kc: array<u32>;

// Dims 2p and 2p + 1 of a key, given `col` = the key's word in dim row 0 of its kv head
// (kvh * head_dim/2 * kv_words() * capacity + j).
fn k_pair(col: u32, p: u32) -> vec2<f32> {
    if (KV32) {
        let i = col + 2u * p * P.capacity;
        return vec2<f32>(bitcast<f32>(kc[i]), bitcast<f32>(kc[i + P.capacity]));
    }
    return unpack2x16float(kc[col + p * P.capacity]);
}

// ---------------------------------------------------------------------------------------------
// attend_prefill: one workgroup per (kv head, tile of BR rows). A row is a (query i, head g of the
// kv head's group) pair, row = i * G + g, so the G heads that share a kv head share every K/V tile
// load. K/V tiles of BC keys stream through workgroup memory; each row keeps a running max and sum
// (online softmax). Rows are handled four at a time as vec4s:
//   scores:  invocations (key c, row quad, dim slice) -> 4 partial dot products, summed in shared
//            memory when the tile has fewer than 128 (key, quad) items
//   softmax: invocation (row quad) -> running max/sum of 4 rows
//   P·V:     invocation (dim pair p, 8 consecutive rows) -> 8 output pairs in registers, each V
//            word loaded once and used for 8 rows
// Workgroup memory: Q 8 KiB + K/V tile 4 KiB + P tile 2 KiB + row stats, under WebGPU's 16 KiB.
// BR is a multiple of 8 with BR * D <= 2048, BC * D / 2 * kv_words() <= 1024 and BR * BC <= 512.

@group(0) @binding(3) var<storage, read> vc: array<u32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

var<workgroup> q_tile: array<vec4<f32>, 512>;  // [dim][row quad], pre-scaled
var<workgroup> kv_tile: array<u32, 1024>;      // K tile as [word row][key], then V as [key][word]
var<workgroup> p_tile: array<vec4<f32>, 128>;  // [key][row quad]: scores, then probabilities
var<workgroup> row_max: array<vec4<f32>, 8>;   // per row quad
var<workgroup> row_sum: array<vec4<f32>, 8>;
var<workgroup> row_alpha: array<vec4<f32>, 8>;

// Query position of tile row r0 + r, or 0xffffffff past the last row (sees no key).
fn row_pos(r0: u32, r: u32, rows: u32, g_size: u32) -> u32 {
    let rr = r0 + r;
    return select(0xffffffffu, P.pos0 + rr / g_size, rr < rows);
}

fn prefill_q(r0: u32, r: u32, rows: u32, g_size: u32, kvh: u32, d: u32) -> f32 {
    let rr = r0 + r;
    if (rr >= rows) {
        return 0.0;
    }
    let h = kvh * g_size + rr % g_size;
    return q[((rr / g_size) * P.n_heads + h) * D + d] * P.scale;
}

// Scores of key k0 + c for the row quad rq (item = c * quads + rq); masked ones become NEG.
fn masked_scores(dot: vec4<f32>, item: u32, r0: u32, rows: u32, g_size: u32, k0: u32,
                 nk: u32) -> vec4<f32> {
    let quads = BR / 4u;
    let c = item / quads;
    let r = (item % quads) * 4u;
    let j = vec4<u32>(k0 + c);
    let qp = vec4<u32>(row_pos(r0, r, rows, g_size), row_pos(r0, r + 1u, rows, g_size),
                       row_pos(r0, r + 2u, rows, g_size), row_pos(r0, r + 3u, rows, g_size));
    let first = vec4<u32>(key_lo(qp.x), key_lo(qp.y), key_lo(qp.z), key_lo(qp.w));
    let seen = (j <= qp) & (j >= first) & (qp != vec4<u32>(0xffffffffu)) & vec4<bool>(c < nk);
    return select(vec4<f32>(NEG), soft_cap(dot), seen);
}

@compute @workgroup_size(128)
fn attend_prefill(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) li: u32) {
    let g_size = group_size();
    let rows = P.m * g_size;
    let n_tiles = (rows + BR - 1u) / BR;
    let lin = wid.x + wid.y * nwg.x;
    if (lin >= n_tiles * P.n_kv_heads) {
        return;
    }
    let dp = D / 2u;
    let quads = BR / 4u;
    let items = BC * quads;           // score quads per tile: a power of two <= 128
    let sub = PREFILL_WG / items;
    let kvh = lin % P.n_kv_heads;
    // Last tiles (most keys) first, so the longest workgroups start early.
    let tile = n_tiles - 1u - lin / P.n_kv_heads;
    let r0 = tile * BR;
    let r_end = min(r0 + BR, rows);
    // Keys any row of this tile may see: from the first query's window start to the last query.
    let lo = key_lo(P.pos0 + r0 / g_size);
    let hi = P.pos0 + (r_end - 1u) / g_size;

    for (var idx = li; idx < D * quads; idx += PREFILL_WG) {
        let d = idx / quads;
        let r = (idx % quads) * 4u;
        q_tile[idx] = vec4<f32>(prefill_q(r0, r, rows, g_size, kvh, d),
                                prefill_q(r0, r + 1u, rows, g_size, kvh, d),
                                prefill_q(r0, r + 2u, rows, g_size, kvh, d),
                                prefill_q(r0, r + 3u, rows, g_size, kvh, d));
    }
    if (li < quads) {
        row_max[li] = vec4<f32>(NEG);
        row_sum[li] = vec4<f32>(0.0);
    }

    // P·V role: dim pair pv_p of the 8 rows starting at pv_r (inactive past BR rows).
    let pv_p = li % dp;
    let pv_r = (li / dp) * 8u;
    let pv_on = pv_r < BR;
    var x_lo = vec4<f32>(0.0);
    var y_lo = vec4<f32>(0.0);
    var x_hi = vec4<f32>(0.0);
    var y_hi = vec4<f32>(0.0);

    let kw = kv_words();
    for (var k0 = lo; k0 <= hi; k0 += BC) {
        let nk = min(BC, hi + 1u - k0);
        for (var idx = li; idx < BC * dp * kw; idx += PREFILL_WG) {
            let c = idx % BC;
            var w = 0u;
            if (c < nk) {
                w = kc[(kvh * dp * kw + idx / BC) * P.capacity + k0 + c];
            }
            kv_tile[idx] = w;
        }
        workgroupBarrier();

        // Scores: `sub` invocations per (key, row quad), each summing every sub-th dim pair, so
        // all 128 invocations work even when the tile is small (head_dim 256: 16 quads x 8).
        {
            let item = li % items;
            var dot = vec4<f32>(0.0);
            let c = item / quads;
            let rq = item % quads;
            for (var p = li / items; p < dp; p += sub) {
                var kk: vec2<f32>;
                if (KV32) {
                    kk = vec2<f32>(bitcast<f32>(kv_tile[2u * p * BC + c]),
                                   bitcast<f32>(kv_tile[(2u * p + 1u) * BC + c]));
                } else {
                    kk = unpack2x16float(kv_tile[p * BC + c]);
                }
                dot += q_tile[2u * p * quads + rq] * kk.x + q_tile[(2u * p + 1u) * quads + rq] * kk.y;
            }
            if (sub == 1u) {
                p_tile[item] = masked_scores(dot, item, r0, rows, g_size, k0, nk);
            } else {
                p_tile[li] = dot;
            }
        }
        if (sub > 1u) {
            workgroupBarrier();
            if (li < items) {
                var dot = p_tile[li];
                for (var part = 1u; part < sub; part++) {
                    dot += p_tile[part * items + li];
                }
                p_tile[li] = masked_scores(dot, li, r0, rows, g_size, k0, nk);
            }
        }
        workgroupBarrier();

        // Online softmax update, one invocation per row quad; meanwhile everyone loads the V tile.
        if (li < quads) {
            let m_old = row_max[li];
            var m_new = m_old;
            for (var c = 0u; c < nk; c++) {
                m_new = max(m_new, p_tile[c * quads + li]);
            }
            var sum = vec4<f32>(0.0);
            for (var c = 0u; c < nk; c++) {
                let s = p_tile[c * quads + li];
                let e = select(exp(s - m_new), vec4<f32>(0.0), s <= vec4<f32>(NEG));
                p_tile[c * quads + li] = e;
                sum += e;
            }
            let alpha = exp(m_old - m_new);
            row_alpha[li] = alpha;
            row_sum[li] = row_sum[li] * alpha + sum;
            row_max[li] = m_new;
        }
        let v_off = (kvh * P.capacity + k0) * dp * kw;
        for (var idx = li; idx < BC * dp * kw; idx += PREFILL_WG) {
            var w = 0u;
            if (idx < nk * dp * kw) {
                w = vc[v_off + idx];
            }
            kv_tile[idx] = w;
        }
        workgroupBarrier();

        if (pv_on) {
            let q_lo = pv_r / 4u;
            let a_lo = row_alpha[q_lo];
            let a_hi = row_alpha[q_lo + 1u];
            x_lo *= a_lo;
            y_lo *= a_lo;
            x_hi *= a_hi;
            y_hi *= a_hi;
            for (var c = 0u; c < nk; c++) {
                var v: vec2<f32>;
                if (KV32) {
                    v = vec2<f32>(bitcast<f32>(kv_tile[c * D + 2u * pv_p]),
                                  bitcast<f32>(kv_tile[c * D + 2u * pv_p + 1u]));
                } else {
                    v = unpack2x16float(kv_tile[c * dp + pv_p]);
                }
                let w_lo = p_tile[c * quads + q_lo];
                let w_hi = p_tile[c * quads + q_lo + 1u];
                x_lo += w_lo * v.x;
                y_lo += w_lo * v.y;
                x_hi += w_hi * v.x;
                y_hi += w_hi * v.y;
            }
        }
        workgroupBarrier();
    }

    if (pv_on) {
        let inv_lo = 1.0 / row_sum[pv_r / 4u];
        let inv_hi = 1.0 / row_sum[pv_r / 4u + 1u];
        for (var e = 0u; e < 8u; e++) {
            let rr = r0 + pv_r + e;
            if (rr < rows) {
                let h = kvh * g_size + rr % g_size;
                let o = ((rr / g_size) * P.n_heads + h) * D + 2u * pv_p;
                if (e < 4u) {
                    out[o] = x_lo[e] * inv_lo[e];
                    out[o + 1u] = y_lo[e] * inv_lo[e];
                } else {
                    out[o] = x_hi[e - 4u] * inv_hi[e - 4u];
                    out[o + 1u] = y_hi[e - 4u] * inv_hi[e - 4u];
                }
            }
        }
    }
}

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

@compute @workgroup_size(RT_WG)
fn attend_decode_rt(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) li: u32) {
    let g_size = group_size();
    let pairs = (g_size + 1u) / 2u;
    let lin = wid.x + wid.y * nwg.x;
    if (lin >= pairs * P.n_kv_heads) {
        return;
    }
    let kvh = lin % P.n_kv_heads;
    let h = 2u * (lin / P.n_kv_heads);
    let lo = key_lo(P.pos0) & ~3u;
    let hi = P.pos0;
    var qa: Dims;
    var qb: Dims;
    var acc_a: Dims;
    var acc_b: Dims;
    var ra = rt_init(h, g_size, kvh, &qa, &acc_a);
    var rb = rt_init(min(h + 1u, g_size - 1u), g_size, kvh, &qb, &acc_b);
    for (var k0 = lo + 8u * li; k0 <= hi; k0 += 8u * RT_WG) {
        rt_keys(&ra, &rb, &qa, &qb, &acc_a, &acc_b, kvh, k0, hi);
    }
    rt_merge(li, ra, &acc_a, true);
    rt_merge(li, rb, &acc_b, h + 1u < g_size);
}

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

// ---------------------------------------------------------------------------------------------
// attend_probs (the lens): softmax weights of the query at position P.pos0 (row P.q_row of q) over
// keys 0 ..= pos0 for every head, masked keys 0. One workgroup per head; `probs` is
// [n_heads][pos0 + 1] and doubles as scratch (each invocation rereads only what it wrote).

@group(0) @binding(3) var<storage, read_write> probs: array<f32>;

var<workgroup> q_one: array<f32, 256>;
var<workgroup> red: array<f32, 256>;

fn reduce_max(li: u32, x: f32) -> f32 {
    red[li] = x;
    workgroupBarrier();
    for (var w = PROBS_WG / 2u; w > 0u; w /= 2u) {
        if (li < w) {
            red[li] = max(red[li], red[li + w]);
        }
        workgroupBarrier();
    }
    let r = red[0];
    workgroupBarrier();
    return r;
}

fn reduce_sum(li: u32, x: f32) -> f32 {
    red[li] = x;
    workgroupBarrier();
    for (var w = PROBS_WG / 2u; w > 0u; w /= 2u) {
        if (li < w) {
            red[li] = red[li] + red[li + w];
        }
        workgroupBarrier();
    }
    let r = red[0];
    workgroupBarrier();
    return r;
}

@compute @workgroup_size(256)
fn attend_probs(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) li: u32) {
    let h = wid.x + wid.y * nwg.x;
    if (h >= P.n_heads) {
        return;
    }
    let dp = D / 2u;
    let n = P.pos0 + 1u;
    let lo = key_lo(P.pos0);
    let kvh = h / group_size();
    for (var d = li; d < D; d += PROBS_WG) {
        q_one[d] = q[(P.q_row * P.n_heads + h) * D + d] * P.scale;
    }
    workgroupBarrier();

    var mx = NEG;
    for (var j = li; j < n; j += PROBS_WG) {
        var s = NEG;
        if (j >= lo) {
            var dot = 0.0;
            for (var p = 0u; p < dp; p++) {
                let kk = k_pair(kvh * dp * kv_words() * P.capacity + j, p);
                dot += q_one[2u * p] * kk.x + q_one[2u * p + 1u] * kk.y;
            }
            s = soft_cap(vec4<f32>(dot)).x;
        }
        probs[h * n + j] = s;
        mx = max(mx, s);
    }
    mx = reduce_max(li, mx);

    var sum = 0.0;
    for (var j = li; j < n; j += PROBS_WG) {
        let s = probs[h * n + j];
        let e = select(exp(s - mx), 0.0, s <= NEG);
        probs[h * n + j] = e;
        sum += e;
    }
    let inv = 1.0 / reduce_sum(li, sum);
    for (var j = li; j < n; j += PROBS_WG) {
        probs[h * n + j] *= inv;
    }
}
