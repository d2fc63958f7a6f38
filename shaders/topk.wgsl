// Sampling candidates from one row of logits, so that sampled decoding and logprobs read back a
// few hundred bytes instead of the whole vocabulary:
//   - the K = 64 largest logits, sorted (value descending, lowest id first on ties);
//   - the max and Σ exp(x - max) (log-softmax at temperature 1, for logprobs);
//   - Σ exp((x - max) / T) (the mass top-p compares against);
//   - a draw from softmax(x / T) over the whole vocabulary (Gumbel-max: argmax of x/T + G_i with
//     G_i = -ln(-ln U_i), U_i hashed from the seed and the token id);
//   - `dropped`: the largest logit some invocation had to drop from its own short list; entries
//     above it form an exact prefix of the sorted vocabulary (the CPU trusts only that prefix);
//   - how many logits were not finite.
//
// `topk_partial[4]`: one workgroup per chunk of the row; each invocation keeps its 4 best in
// registers, the workgroup bitonic-sorts those 1024 and writes its 64 best with its sums.
// `topk_final`: one workgroup merges the chunks (at most 32) the same way.
//
// Output (both stages, per chunk / once): 8 header words, then K (value bits, id) pairs.
//   0 max  1 Σexp(x-max)  2 Σexp((x-max)/T)  3 dropped  4 Gumbel score  5 Gumbel id
//   6 Gumbel token's logit  7 non-finite count

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
    _pad: u32,
}

const WG: u32 = 256u;
const K: u32 = 64u;
const HEAD: u32 = 8u;
const STRIDE: u32 = 136u;   // HEAD + 2 * K words per chunk
const NONE: u32 = 0xFFFFFFFFu;
const LOWEST: f32 = -3.402823e38;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> x4: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> part: array<u32>;
@group(0) @binding(2) var<storage, read> s: Sampling;
@group(0) @binding(3) var<storage, read_write> out: array<u32>;

var<workgroup> sv: array<f32, 2048>;
var<workgroup> si: array<u32, 2048>;
var<workgroup> rm: array<f32, WG>;
var<workgroup> r1: array<f32, WG>;
var<workgroup> rt: array<f32, WG>;
var<workgroup> rd: array<f32, WG>;
var<workgroup> rg: array<f32, WG>;
var<workgroup> rgi: array<u32, WG>;
var<workgroup> rgl: array<f32, WG>;
var<workgroup> rbad: array<u32, WG>;

// One invocation's state: its 4 best (c0 ≥ c1 ≥ c2 ≥ c3), running max and sums, Gumbel best.
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

// PCG hash (O'Neill), mixed twice with the seed: independent uniform noise per (seed, id).
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

// Elements arrive in increasing id order per invocation, so on ties the kept one has the lower id.
fn consider(v: f32, id: u32) {
    if ((bitcast<u32>(v) & 0x7f800000u) == 0x7f800000u) {
        bad += 1u;
        return;
    }
    if (v > m) {
        s1 = s1 * exp(m - v) + 1.0;
        st = st * exp((m - v) * s.inv_t) + 1.0;
        m = v;
    } else {
        s1 += exp(v - m);
        st += exp((v - m) * s.inv_t);
    }
    let g = v * s.inv_t + gumbel(id);
    if (g > gs) {
        gs = g;
        gi = id;
        gl = v;
    }
    if (v > cv[3]) {
        if (ci[3] != NONE) {
            dropped = max(dropped, cv[3]);
        }
        var k = 3u;
        while (k > 0u && v > cv[k - 1u]) {
            cv[k] = cv[k - 1u];
            ci[k] = ci[k - 1u];
            k -= 1u;
        }
        cv[k] = v;
        ci[k] = id;
    } else {
        dropped = max(dropped, v);
    }
}

// a comes before b: larger value, or equal with a lower id (empty slots, id NONE, come last).
fn before(av: f32, ai: u32, bv: f32, bi: u32) -> bool {
    return av > bv || (av == bv && ai < bi);
}

// Sort sv/si[0..n] (n a power of two ≤ 2048) into `before` order.
fn bitonic(n: u32, t: u32) {
    for (var k = 2u; k <= n; k = k << 1u) {
        for (var j = k >> 1u; j > 0u; j = j >> 1u) {
            for (var q = t; q < n / 2u; q += WG) {
                let a = ((q & ~(j - 1u)) << 1u) | (q & (j - 1u));
                let b = a + j;
                let first = (a & k) == 0u;
                let swap = before(sv[b], si[b], sv[a], si[a]) == first;
                if (swap) {
                    let v = sv[a];
                    let i = si[a];
                    sv[a] = sv[b];
                    si[a] = si[b];
                    sv[b] = v;
                    si[b] = i;
                }
            }
            workgroupBarrier();
        }
    }
}

// Merge every invocation's sums and Gumbel best into slot 0 of the reduction arrays.
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

// Write the header and the first K sorted entries at out[base..].
fn emit(base: u32, t: u32) {
    if (t < K) {
        out[base + HEAD + 2u * t] = bitcast<u32>(sv[t]);
        out[base + HEAD + 2u * t + 1u] = si[t];
    }
    if (t == 0u) {
        out[base] = bitcast<u32>(rm[0]);
        out[base + 1u] = bitcast<u32>(r1[0]);
        out[base + 2u] = bitcast<u32>(rt[0]);
        out[base + 3u] = bitcast<u32>(rd[0]);
        out[base + 4u] = bitcast<u32>(rg[0]);
        out[base + 5u] = rgi[0];
        out[base + 6u] = bitcast<u32>(rgl[0]);
        out[base + 7u] = rbad[0];
    }
}

fn finish_partial(g: u32, t: u32) {
    for (var k = 0u; k < 4u; k++) {
        sv[4u * t + k] = cv[k];
        si[4u * t + k] = ci[k];
    }
    workgroupBarrier();
    bitonic(4u * WG, t);
    // Entries past K sort after the chunk's K-th, so after the row's K-th too: only what an
    // invocation dropped from its own 4 can break the prefix (`dropped`).
    reduce(t);
    emit(g * STRIDE, t);
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

@compute @workgroup_size(WG)
fn topk_final(@builtin(local_invocation_index) t: u32) {
    init_state();
    // Headers: invocation t < chunks takes chunk t's sums; the others stay empty.
    if (t < p.chunks) {
        let b = t * STRIDE;
        m = bitcast<f32>(part[b]);
        s1 = bitcast<f32>(part[b + 1u]);
        st = bitcast<f32>(part[b + 2u]);
        dropped = bitcast<f32>(part[b + 3u]);
        gs = bitcast<f32>(part[b + 4u]);
        gi = part[b + 5u];
        gl = bitcast<f32>(part[b + 6u]);
        bad = part[b + 7u];
    }
    // Every chunk's K entries (chunks ≤ 32, so at most 2048), empty slots after them.
    var n = 64u;
    while (n < p.chunks * K) {
        n = n << 1u;
    }
    for (var e = t; e < n; e += WG) {
        let c = e / K;
        if (c < p.chunks) {
            let b = c * STRIDE + HEAD + 2u * (e % K);
            sv[e] = bitcast<f32>(part[b]);
            si[e] = part[b + 1u];
        } else {
            sv[e] = LOWEST;
            si[e] = NONE;
        }
    }
    workgroupBarrier();
    bitonic(n, t);
    reduce(t);
    emit(0u, t);
}
