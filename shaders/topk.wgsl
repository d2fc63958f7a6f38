// Sampling candidates from one row of logits, so that sampled decoding and logprobs read back a
// few hundred bytes instead of the whole vocabulary:
//   - up to K = 64 of the largest logits, sorted (value descending, lowest id first on ties),
//     forming an exact prefix of the sorted row;
//   - `bound`: every token not listed has a logit ≤ bound (-3.4e38: the list is the whole row);
//   - the max and Σ exp(x - max) (log-softmax at temperature 1, for logprobs);
//   - Σ exp((x - max) / T) (the mass top-p compares against);
//   - when asked (`flags`), a draw from softmax(x / T) over the whole row (Gumbel-max: argmax of
//     x/T + G_i with G_i = -ln(-ln U_i), U_i hashed from the seed and the token id);
//   - how many logits were not finite.
//
// Few workgroup barriers on purpose: CPU adapters (llvmpipe, SwiftShader) run a barrier by
// switching between every invocation of the workgroup, so a sorting network costs far more there
// than the row itself. `topk_partial[4]`: one workgroup per chunk of the row; each invocation
// keeps its 4 best in registers and writes them out unsorted, with the chunk's sums. `topk_final`:
// one workgroup; each invocation keeps the 4 best of its share of those, a radix select over the
// 1024 survivors finds the K-th largest key, and the ≤ K entries above it are placed by rank.
// An invocation that had to drop an entry raises `bound` to it: the list is exact only above.
//
// Output: 8 header words, then K (value bits, id) pairs (id 0xFFFFFFFF past the list's end).
//   0 max  1 Σexp(x-max)  2 Σexp((x-max)/T)  3 bound  4 Gumbel score  5 Gumbel id
//   6 Gumbel token's logit  7 non-finite count
// Stage-1 chunks: the same 8 header words (word 3: what the chunk dropped), then 1024 pairs.

struct Params {
    vocab: u32,
    chunk: u32,   // elements per stage-1 workgroup (a multiple of 4)
    chunks: u32,  // stage-1 workgroups (≤ 32)
    _pad: u32,
}

// Written by the CPU before each pass: changes per token without rebuilding the pass.
struct Sampling {
    inv_t: f32,
    seed_lo: u32,
    seed_hi: u32,
    flags: u32,   // 1: the Gumbel draw, 2: the mass at T, 4: the log-softmax sum
}

const WG: u32 = 256u;
const K: u32 = 64u;
const HEAD: u32 = 8u;
const SLOTS: u32 = 1024u;          // 4 per invocation
const PART: u32 = 2056u;           // HEAD + 2 * SLOTS words per chunk
const NONE: u32 = 0xFFFFFFFFu;
const LOWEST: f32 = -3.402823e38;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> x4: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> part: array<u32>;
@group(0) @binding(2) var<storage, read> s: Sampling;
@group(0) @binding(3) var<storage, read_write> out: array<u32>;

var<workgroup> rm: array<f32, WG>;
var<workgroup> r1: array<f32, WG>;
var<workgroup> rt: array<f32, WG>;
var<workgroup> rd: array<f32, WG>;
var<workgroup> rg: array<f32, WG>;
var<workgroup> rgi: array<u32, WG>;
var<workgroup> rgl: array<f32, WG>;
var<workgroup> rbad: array<u32, WG>;
var<workgroup> hist: array<atomic<u32>, 256>;
var<workgroup> sel: array<u32, 4>;    // key prefix, entries still needed, ties listed, count
var<workgroup> lv: array<f32, K>;
var<workgroup> li: array<u32, K>;

// One invocation's state: its 4 best in `before` order, running max and sums, Gumbel best, and
// the largest value it dropped.
var<private> cv: array<f32, 4>;
var<private> ci: array<u32, 4>;
var<private> m: f32;
var<private> s1: f32;
var<private> st: f32;
var<private> dropped: f32;
var<private> gs: f32;
var<private> gi: u32;
var<private> gl: f32;
var<private> bad: u32;

fn init_state() {
    for (var k = 0u; k < 4u; k++) {
        cv[k] = LOWEST;
        ci[k] = NONE;
    }
    m = LOWEST;
    s1 = 0.0;
    st = 0.0;
    dropped = LOWEST;
    gs = LOWEST;
    gi = NONE;
    gl = LOWEST;
    bad = 0u;
}

// PCG hash (O'Neill), mixed with the seed: independent uniform noise per (seed, id).
fn pcg(v: u32) -> u32 {
    let state = v * 747796405u + 2891336453u;
    let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
    return (word >> 22u) ^ word;
}

fn gumbel(id: u32) -> f32 {
    let h = pcg(pcg(id ^ pcg(s.seed_lo)) ^ s.seed_hi);
    let u = (f32(h >> 8u) + 0.5) * (1.0 / 16777216.0);
    return -log(-log(u));
}

// a comes before b: larger value, or equal with a lower id (empty slots, id NONE, come last).
fn before(av: f32, ai: u32, bv: f32, bi: u32) -> bool {
    return av > bv || (av == bv && ai < bi);
}

// Keep (v, id) among the invocation's 4 best, or note it as dropped. Constant indices only:
// a dynamically indexed private array becomes per-lane scratch memory on CPU adapters (25×
// slower on lavapipe).
fn keep(v: f32, id: u32) {
    if (!before(v, id, cv[3], ci[3])) {
        dropped = max(dropped, v);
        return;
    }
    if (ci[3] != NONE) {
        dropped = max(dropped, cv[3]);
    }
    if (!before(v, id, cv[2], ci[2])) {
        cv[3] = v;
        ci[3] = id;
        return;
    }
    cv[3] = cv[2];
    ci[3] = ci[2];
    if (!before(v, id, cv[1], ci[1])) {
        cv[2] = v;
        ci[2] = id;
        return;
    }
    cv[2] = cv[1];
    ci[2] = ci[1];
    if (!before(v, id, cv[0], ci[0])) {
        cv[1] = v;
        ci[1] = id;
        return;
    }
    cv[1] = cv[0];
    ci[1] = ci[0];
    cv[0] = v;
    ci[0] = id;
}

fn consider(v: f32, id: u32) {
    if ((bitcast<u32>(v) & 0x7f800000u) == 0x7f800000u) {
        bad += 1u;
        return;
    }
    // Only the sums a step needs: each costs an exp per logit.
    // A new max rescales the sums by exp(m - v); otherwise they add exp(v - m).
    if (v > m) {
        if ((s.flags & 4u) != 0u) {
            s1 = s1 * exp(m - v) + 1.0;
        }
        if ((s.flags & 2u) != 0u) {
            st = st * exp((m - v) * s.inv_t) + 1.0;
        }
        m = v;
    } else {
        if ((s.flags & 4u) != 0u) {
            s1 += exp(v - m);
        }
        if ((s.flags & 2u) != 0u) {
            st += exp((v - m) * s.inv_t);
        }
    }
    if ((s.flags & 1u) != 0u) {
        let g = v * s.inv_t + gumbel(id);
        if (g > gs) {
            gs = g;
            gi = id;
            gl = v;
        }
    }
    keep(v, id);
}

// Merge every invocation's sums, Gumbel best and dropped value into slot 0.
fn reduce(t: u32) {
    rm[t] = m;
    r1[t] = s1;
    rt[t] = st;
    rd[t] = dropped;
    rg[t] = gs;
    rgi[t] = gi;
    rgl[t] = gl;
    rbad[t] = bad;
    workgroupBarrier();
    for (var k = WG / 2u; k > 0u; k = k >> 1u) {
        if (t < k) {
            let ma = rm[t];
            let mb = rm[t + k];
            let mx = max(ma, mb);
            r1[t] = r1[t] * exp(ma - mx) + r1[t + k] * exp(mb - mx);
            rt[t] = rt[t] * exp((ma - mx) * s.inv_t) + rt[t + k] * exp((mb - mx) * s.inv_t);
            rm[t] = mx;
            rd[t] = max(rd[t], rd[t + k]);
            if (before(rg[t + k], rgi[t + k], rg[t], rgi[t])) {
                rg[t] = rg[t + k];
                rgi[t] = rgi[t + k];
                rgl[t] = rgl[t + k];
            }
            rbad[t] += rbad[t + k];
        }
        workgroupBarrier();
    }
}

fn header(base: u32, t: u32, bound: f32) {
    if (t == 0u) {
        out[base] = bitcast<u32>(rm[0]);
        out[base + 1u] = bitcast<u32>(r1[0]);
        out[base + 2u] = bitcast<u32>(rt[0]);
        out[base + 3u] = bitcast<u32>(bound);
        out[base + 4u] = bitcast<u32>(rg[0]);
        out[base + 5u] = rgi[0];
        out[base + 6u] = bitcast<u32>(rgl[0]);
        out[base + 7u] = rbad[0];
    }
}

fn finish_partial(g: u32, t: u32) {
    let base = g * PART;
    for (var k = 0u; k < 4u; k++) {
        out[base + HEAD + 2u * (4u * t + k)] = bitcast<u32>(cv[k]);
        out[base + HEAD + 2u * (4u * t + k) + 1u] = ci[k];
    }
    reduce(t);
    header(base, t, rd[0]);
}

@compute @workgroup_size(WG)
fn topk_partial(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
    init_state();
    let lo = wid.x * p.chunk;
    let hi = min(lo + p.chunk, p.vocab);
    for (var c = lo + t; c < hi; c += WG) {
        consider(x[c], c);
    }
    finish_partial(wid.x, t);
}

// Same with vec4 loads (vocab a multiple of 4).
@compute @workgroup_size(WG)
fn topk_partial4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
    init_state();
    let lo = wid.x * p.chunk;
    let hi = min(lo + p.chunk, p.vocab);
    for (var c = lo + 4u * t; c < hi; c += 4u * WG) {
        let v = x4[c / 4u];
        consider(v.x, c);
        consider(v.y, c + 1u);
        consider(v.z, c + 2u);
        consider(v.w, c + 3u);
    }
    finish_partial(wid.x, t);
}

// Order-preserving key of a value (larger value, larger key; never 0 for a real value); empty
// slots get 0.
fn key_of(v: f32, id: u32) -> u32 {
    if (id == NONE) {
        return 0u;
    }
    let b = bitcast<u32>(v);
    return select(b | 0x80000000u, ~b, (b & 0x80000000u) != 0u);
}

fn value_of(key: u32) -> f32 {
    return bitcast<f32>(select(~key, key & 0x7FFFFFFFu, (key & 0x80000000u) != 0u));
}


@compute @workgroup_size(WG)
fn topk_final(@builtin(local_invocation_index) t: u32) {
    init_state();
    // Chunk t's sums (invocations past the chunks stay empty).
    if (t < p.chunks) {
        let b = t * PART;
        m = bitcast<f32>(part[b]);
        s1 = bitcast<f32>(part[b + 1u]);
        st = bitcast<f32>(part[b + 2u]);
        dropped = bitcast<f32>(part[b + 3u]);
        gs = bitcast<f32>(part[b + 4u]);
        gi = part[b + 5u];
        gl = bitcast<f32>(part[b + 6u]);
        bad = part[b + 7u];
    }
    // The 4 best of this invocation's share of every chunk's entries (strided, so the best of
    // one chunk spread over many invocations).
    let n = p.chunks * SLOTS;
    for (var e = t; e < n; e += WG) {
        let w = (e / SLOTS) * PART + HEAD + 2u * (e % SLOTS);
        let id = part[w + 1u];
        if (id != NONE) {
            keep(bitcast<f32>(part[w]), id);
        }
    }
    reduce(t);
    let floor = rd[0];   // everything dropped, at either stage, is ≤ floor

    // Radix select, 8 bits at a time from the top: the key of the K-th largest survivor.
    var keys: array<u32, 4>;
    for (var k = 0u; k < 4u; k++) {
        keys[k] = key_of(cv[k], ci[k]);
    }
    if (t == 0u) {
        sel[0] = 0u;
        sel[1] = K;
    }
    for (var shift = 24u; shift < 32u; shift -= 8u) {
        atomicStore(&hist[t], 0u);
        workgroupBarrier();
        let prefix = sel[0];
        let high = select(0xFFFFFFFFu << ((shift + 8u) & 31u), 0u, shift == 24u);
        for (var k = 0u; k < 4u; k++) {
            if (ci[k] != NONE && (keys[k] & high) == prefix) {
                atomicAdd(&hist[(keys[k] >> shift) & 255u], 1u);
            }
        }
        workgroupBarrier();
        if (t == 0u) {
            if (shift == 24u) {
                var total = 0u;
                for (var b = 0u; b < 256u; b++) {
                    total += atomicLoad(&hist[b]);
                }
                sel[2] = total;
            }
            var need = sel[1];
            var b = 255u;
            loop {
                let c = atomicLoad(&hist[b]);
                if (c >= need || b == 0u) {
                    break;
                }
                need -= c;
                b -= 1u;
            }
            sel[0] = prefix | (b << shift);
            sel[1] = need;
        }
        workgroupBarrier();
        if (shift == 0u) {
            break;
        }
    }
    // kth: the K-th largest key; sel[1]: how many entries of exactly that key the top K takes.
    // Fewer than K survivors: all of them. Otherwise ties at kth are listed all or none.
    let kth = sel[0];
    let everyone = sel[2] <= K;
    atomicStore(&hist[t], 0u);
    workgroupBarrier();
    for (var k = 0u; k < 4u; k++) {
        if (ci[k] != NONE && keys[k] == kth) {
            atomicAdd(&hist[0], 1u);
        }
    }
    workgroupBarrier();
    let all_ties = everyone || atomicLoad(&hist[0]) <= sel[1];
    workgroupBarrier();
    atomicStore(&hist[t], 0u);
    workgroupBarrier();
    // List what is above kth (and above everything dropped); hist[1] keeps the largest key left.
    for (var k = 0u; k < 4u; k++) {
        if (ci[k] == NONE) {
            continue;
        }
        let above = everyone || keys[k] > kth || (keys[k] == kth && all_ties);
        if (above && cv[k] > floor) {
            let at = atomicAdd(&hist[0], 1u);
            if (at < K) {
                lv[at] = cv[k];
                li[at] = ci[k];
            }
        } else {
            atomicMax(&hist[1], keys[k]);
        }
    }
    workgroupBarrier();
    let count = min(atomicLoad(&hist[0]), K);
    let left = atomicLoad(&hist[1]);
    // Every unlisted token is ≤ floor (dropped somewhere) or ≤ the largest survivor left out.
    var bound = floor;
    if (left != 0u) {
        bound = max(bound, value_of(left));
    }
    header(0u, t, bound);
    // Rank placement of the listed entries.
    if (t < count) {
        var rank = 0u;
        for (var j = 0u; j < count; j++) {
            if (before(lv[j], li[j], lv[t], li[t])) {
                rank += 1u;
            }
        }
        out[HEAD + 2u * rank] = bitcast<u32>(lv[t]);
        out[HEAD + 2u * rank + 1u] = li[t];
    } else if (t < K) {
        out[HEAD + 2u * t] = bitcast<u32>(LOWEST);
        out[HEAD + 2u * t + 1u] = NONE;
    }
}
