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
// The cache is written by shaders/rope.wgsl (rope_kv, rmsnorm_rope_kv). Entry points:
// attend_prefill (m > 1) and attend_probs (the "attention lens": softmax weights of one query,
// for display) here, attend_decode + attend_reduce (m = 1, split-K) in attention_decode.wgsl,
// attend_prefill_rt and attend_decode_rt (CPU adapters) in attention_rt.wgsl. The module is this
// file followed by those two (`include_shader!("attention": "attention", "attention_decode",
// "attention_rt")` in src/kernels/attention.rs; WGSL has no includes): they share the layout,
// parameters, bindings and helpers declared here, and neither compiles alone.

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
