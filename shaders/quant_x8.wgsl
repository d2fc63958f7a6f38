// One token's activations quantized for the int8 matvecs (matvec_q8.wgsl), a unit of 32 values
// at a time, as llama.cpp's Q8_1 activations: d = max|x| / 127, q = round(x / d). A unit is seven
// vec4<u32> (XQ_UNIT): the 32 int8 packed 4 to a word in element order, (d, d * Σq, 0, 0) as f32
// bits, and the int8 again as the crossed 16-bit pairs of matvec_q8's `swar_dot`. Shared by
// `quantize_x8` and the norms that write their output in this form too (rmsnorm.wgsl's *_q8
// entries), so both give the same words for the same values. Plain integer ops pack the bytes
// (pack4xI8 would need a language feature the norm module must not depend on).

const XQ_UNIT: u32 = 7u;

fn q8_round(v: vec4<f32>, id: f32) -> vec4<i32> {
    return vec4<i32>(round(v * id));
}

// pack4xI8: the low byte of each component, component e at bits 8e..8e+7.
fn pack_i8(q: vec4<i32>) -> u32 {
    let b = bitcast<vec4<u32>>(q) & vec4<u32>(0xffu);
    return (b.x | (b.y << 8u)) | ((b.z << 16u) | (b.w << 24u));
}

alias XUnitWords = array<vec4<u32>, 7>;

fn x8_unit(v: array<vec4<f32>, 8>) -> XUnitWords {
    var m = vec4<f32>(0.0);
    for (var i = 0u; i < 8u; i++) {
        m = max(m, abs(v[i]));
    }
    let d = max(max(m.x, m.y), max(m.z, m.w)) / 127.0;
    let id = select(0.0, 1.0 / d, d > 0.0);
    var w: array<u32, 8>;
    var s = vec4<i32>(0);
    for (var i = 0u; i < 8u; i++) {
        let q = q8_round(v[i], id);
        s += q;
        w[i] = pack_i8(q);
    }
    var out: XUnitWords;
    out[0] = vec4<u32>(w[0], w[1], w[2], w[3]);
    out[1] = vec4<u32>(w[4], w[5], w[6], w[7]);
    let sum = f32((s.x + s.y) + (s.z + s.w));
    out[2] = vec4<u32>(bitcast<u32>(d), bitcast<u32>(d * sum), 0u, 0u);
    // The pairs for `swar_dot`: word j of a 4-bit unit holds elements 4j..4j+3 in its low nibbles
    // and 16 + 4j.. in its high ones; pair (a, b) is b + a * 65536, wrapping.
    for (var j = 0u; j < 4u; j++) {
        let lo = bitcast<vec4<u32>>(q8_round(v[j], id));
        let hi = bitcast<vec4<u32>>(q8_round(v[4u + j], id));
        out[3][j] = lo.z + (lo.x << 16u);
        out[4][j] = lo.w + (lo.y << 16u);
        out[5][j] = hi.z + (hi.x << 16u);
        out[6][j] = hi.w + (hi.y << 16u);
    }
    return out;
}
