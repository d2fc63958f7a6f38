// Packed layouts of the quantized-matrix module (follows `quant.wgsl`; the loader file after it,
// `quant_load.wgsl` or `quant_load64.wgsl`, supplies `q4w` / `q8w`, the wide view of the weights).
//
// Unit `u` of row `row` of a packed part of `rows` rows and `ku` units per row (src/quant/pack.rs):
// (row, unit) pair i = pair0(row / 4, u, ...) + row % 4 (packed_index.wgsl) of n = rows_padded * ku
// pairs; the quant region holds n runs of 4 (8 for Q8_0) words, then n auxiliary words (Q4_1,
// Q5_0, its 5th bits reordered: `q5_0_codes`), then n f16 scales (Q4_0, Q5_0, Q8_0). For Q4_K
// and Q6_K the pairs are (row, 256-element block) and unit u is sub-block u % 8 of block u / 8.
//
// The four rows of a row group hold consecutive pairs, so `decode_group` reads their quants as
// 32-byte runs and their auxiliary words as one vec4: on CPU adapters every load instruction is a
// loop over the SIMD lanes, and fewer, wider loads are what makes a matvec faster there. The
// arithmetic is `decode_packed`'s, in the same order (the same bits); only the loads differ.

// Two consecutive vec4 of weight words (a 32-byte run starting at an even vec4 offset).
struct Q8W {
    a: vec4<u32>,
    b: vec4<u32>,
}

// The weights of one packed Q4_0 / Q4_1 / Q5_0 / Q8_0 pair from its words: quants `q` (Q8_0: `q`
// and `q2`), `aux` (Q4_1: d | m << 16; Q5_0: the 5th bits), the f16 pair `sw` holding its scale
// (Q4_0, Q5_0, Q8_0) and which half of it (`odd`).
fn unit_packed(q: vec4<u32>, q2: vec4<u32>, aux: u32, sw: u32, odd: bool) -> Unit {
    var w: array<vec4<f32>, 8>;
    var a = 1.0;
    var b = 0.0;
    if (TYPE == 8u) { // Q8_0
        let s = unpack2x16float(sw);
        a = select(s.x, s.y, odd);
        for (var j = 0u; j < 4u; j++) {
            w[j] = i8x4(q[j]);
            w[j + 4u] = i8x4(q2[j]);
        }
    } else if (TYPE == 6u) { // Q5_0: nibble | 5th bit << 4 in each byte, exact as before
        let s = unpack2x16float(sw);
        a = select(s.x, s.y, odd);
        b = -16.0 * a;
        let c = q5_0_codes(q, aux);
        for (var j = 0u; j < 4u; j++) {
            w[j] = u8x4(c.lo[j]);
            w[j + 4u] = u8x4(c.hi[j]);
        }
    } else {
        for (var j = 0u; j < 4u; j++) {
            w[j] = nib4(q[j], 0u);
            w[j + 4u] = nib4(q[j], 4u);
        }
        if (TYPE == 3u) { // Q4_1
            let dm = unpack2x16float(aux);
            a = dm.x;
            b = dm.y;
        } else { // Q4_0
            let s = unpack2x16float(sw);
            a = select(s.x, s.y, odd);
            b = -8.0 * a;
        }
    }
    return Unit(w, a, b);
}

// Sub-block s of a packed Q4_K pair: `aux` = (d | dmin << 16, 12 scale bytes), `q` its 32 quant
// bytes (two sub-blocks, low and high nibbles).
fn unit_q4k(aux: vec4<u32>, q: Q8W, s: u32) -> Unit {
    var w: array<vec4<f32>, 8>;
    let dm = unpack2x16float(aux.x);
    let sm = scale_min_v(aux, s);
    let sh = 4u * (s & 1u);
    for (var j = 0u; j < 4u; j++) {
        w[j] = nib4(q.a[j], sh);
        w[j + 4u] = nib4(q.b[j], sh);
    }
    return Unit(w, dm.x * sm.x, -(dm.y * sm.y));
}

// Sub-block s of a packed Q6_K pair from its 32 low-bit bytes `l`, 32 high-bit bytes `h`, the
// word `scw` holding its int8 scale and the f16 pair `dw` holding d (`odd`: which half).
fn unit_q6k(l: Q8W, h: Q8W, scw: u32, dw: u32, odd: bool, s: u32) -> Unit {
    var w: array<vec4<f32>, 8>;
    let q = s & 3u;
    let nsh = 4u * (q >> 1u);
    let hsh = 2u * q;
    let sc = i8x4(scw >> (16u * (s & 1u)));
    let d = unpack2x16float(dw);
    // Each byte's 6-bit code (nibble | 2 high bits << 4) assembled in the words before converting:
    // on SwiftShader every per-byte extraction is four vector operations.
    let m4 = vec4<u32>(0x0f0f0f0fu);
    let m2 = vec4<u32>(0x03030303u);
    let qa = ((l.a >> vec4<u32>(nsh)) & m4) | (((h.a >> vec4<u32>(hsh)) & m2) * 16u);
    let qb = ((l.b >> vec4<u32>(nsh)) & m4) | (((h.b >> vec4<u32>(hsh)) & m2) * 16u);
    for (var j = 0u; j < 4u; j++) {
        // As in `decode_unit`: (q - 32) times the int8 sub-block scale, exact.
        w[j] = sc.x * (u8x4(qa[j]) - 32.0);
        w[j + 4u] = sc.y * (u8x4(qb[j]) - 32.0);
    }
    return Unit(w, select(d.x, d.y, odd), 0.0);
}

// Vec4 offsets of sub-block s of Q6_K pair i: its low-bit and high-bit 32-byte runs.
fn q6k_runs(i: u32, s: u32) -> vec2<u32> {
    let half = s >> 2u;
    return vec2<u32>(12u * i + 4u * half + 2u * (s & 1u), 12u * i + 8u + 2u * half);
}

// Unit `u` of one row of a packed part.
fn decode_packed(row: u32, u: u32, rows: u32, ku: u32) -> Unit {
    if (TYPE == 12u || TYPE == 14u) {
        let kb = ku >> 3u;
        let i = pair0(row >> 2u, u >> 3u, (rows + 3u) >> 2u, kb) + (row & 3u);
        let n = ((rows + 3u) & ~3u) * kb;
        let s = u & 7u;
        if (TYPE == 12u) { // Q4_K
            return unit_q4k(q4w(8u * n + i), q8w(8u * i + 2u * (s >> 1u)), s);
        }
        let o = q6k_runs(i, s); // Q6_K
        return unit_q6k(q8w(o.x), q8w(o.y), wq[48u * n + 4u * i + (s >> 1u)], wq[52u * n + (i >> 1u)],
                        (i & 1u) != 0u, s);
    }
    let i = pair0(row >> 2u, u, (rows + 3u) >> 2u, ku) + (row & 3u);
    let n = ((rows + 3u) & ~3u) * ku;
    let odd = (i & 1u) != 0u;
    if (TYPE == 8u) {
        let q = q8w(2u * i);
        return unit_packed(q.a, q.b, 0u, wq[8u * n + (i >> 1u)], odd);
    }
    var aux = 0u;
    if (TYPE != 2u) {
        aux = wq[4u * n + i];
    }
    var sw = 0u;
    if (TYPE != 3u) {
        sw = wq[select(4u * n, 5u * n, TYPE == 6u) + (i >> 1u)];
    }
    return unit_packed(q4w(i), vec4<u32>(0u), aux, sw, odd);
}

// Unit `u` of the four rows of row group g (rows past the part are the zero padding, decoded but
// never stored).
struct Units4 {
    w0: Unit, w1: Unit, w2: Unit, w3: Unit,
}

fn decode_group(g: u32, u: u32, rows: u32, ku: u32) -> Units4 {
    if (TYPE == 12u || TYPE == 14u) {
        let kb = ku >> 3u;
        let i = pair0(g, u >> 3u, (rows + 3u) >> 2u, kb);
        let n = ((rows + 3u) & ~3u) * kb;
        let s = u & 7u;
        if (TYPE == 12u) { // Q4_K: the four auxiliary vec4 as two runs
            let a01 = q8w(8u * n + i);
            let a23 = q8w(8u * n + i + 2u);
            let qo = 2u * (s >> 1u);
            return Units4(unit_q4k(a01.a, q8w(8u * i + qo), s), unit_q4k(a01.b, q8w(8u * i + 8u + qo), s),
                          unit_q4k(a23.a, q8w(8u * i + 16u + qo), s),
                          unit_q4k(a23.b, q8w(8u * i + 24u + qo), s));
        }
        let sc = 48u * n + 4u * i + (s >> 1u); // Q6_K
        let d01 = wq[52u * n + (i >> 1u)];
        let d23 = wq[52u * n + (i >> 1u) + 1u];
        let o0 = q6k_runs(i, s);
        let o1 = q6k_runs(i + 1u, s);
        let o2 = q6k_runs(i + 2u, s);
        let o3 = q6k_runs(i + 3u, s);
        return Units4(unit_q6k(q8w(o0.x), q8w(o0.y), wq[sc], d01, false, s),
                      unit_q6k(q8w(o1.x), q8w(o1.y), wq[sc + 4u], d01, true, s),
                      unit_q6k(q8w(o2.x), q8w(o2.y), wq[sc + 8u], d23, false, s),
                      unit_q6k(q8w(o3.x), q8w(o3.y), wq[sc + 12u], d23, true, s));
    }
    let i = pair0(g, u, (rows + 3u) >> 2u, ku);
    let n = ((rows + 3u) & ~3u) * ku;
    if (TYPE == 8u) { // Q8_0: two runs per row, the scales as two f16 pairs
        let s01 = wq[8u * n + (i >> 1u)];
        let s23 = wq[8u * n + (i >> 1u) + 1u];
        let q0 = q8w(2u * i);
        let q1 = q8w(2u * i + 2u);
        let q2 = q8w(2u * i + 4u);
        let q3 = q8w(2u * i + 6u);
        return Units4(unit_packed(q0.a, q0.b, 0u, s01, false), unit_packed(q1.a, q1.b, 0u, s01, true),
                      unit_packed(q2.a, q2.b, 0u, s23, false), unit_packed(q3.a, q3.b, 0u, s23, true));
    }
    // Q4_0 / Q4_1 / Q5_0: the four quant vec4 as two runs, the auxiliary words as one vec4.
    let q01 = q8w(i);
    let q23 = q8w(i + 2u);
    var aux = vec4<u32>(0u);
    if (TYPE != 2u) {
        aux = q4w(n + (i >> 2u));
    }
    var s01 = 0u;
    var s23 = 0u;
    if (TYPE != 3u) {
        let so = select(4u * n, 5u * n, TYPE == 6u) + (i >> 1u);
        s01 = wq[so];
        s23 = wq[so + 1u];
    }
    let z = vec4<u32>(0u);
    return Units4(unit_packed(q01.a, z, aux.x, s01, false), unit_packed(q01.b, z, aux.y, s01, true),
                  unit_packed(q23.a, z, aux.z, s23, false), unit_packed(q23.b, z, aux.w, s23, true));
}

// Unit `u` of rows 4g..4g+3 in whichever layout the pipeline reads: a packed row group at once
// (`decode_group`), GGUF rows one by one. Rows and groups past the part decode its last row or
// group again (in the packed layout, rows past it are its zero padding); callers never store them.
// The matvec and the register matmul both take their rows from here, so the two layouts reach the
// dot products through the same code (llvmpipe's compiler rounded them differently otherwise).
fn decode_rows4(g: u32, u: u32, rows: u32, ku: u32, row_bytes: u32) -> Units4 {
    let last = rows - 1u;
    if (PACKED) {
        return decode_group(min(g, last / 4u), u, rows, ku);
    }
    return Units4(decode_row(min(4u * g, last), u, rows, ku, row_bytes),
                  decode_row(min(4u * g + 1u, last), u, rows, ku, row_bytes),
                  decode_row(min(4u * g + 2u, last), u, rows, ku, row_bytes),
                  decode_row(min(4u * g + 3u, last), u, rows, ku, row_bytes));
}
