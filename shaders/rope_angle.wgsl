// RoPE angles, shared by the RoPE module (`rope.wgsl`) and the quantized-matrix modules (whose
// Q/K/V matvec can rotate in its store, `matvec.wgsl` ROPE): one definition, so both rotate to
// the same bits. A pair's frequency comes in turns per position split as hi + lo (see the header
// of rope.wgsl for why the products stay exact).

const TAU: f32 = 6.283185307179586;

// (sin, cos) of `t` turns, |t| ≤ 0.5, to ~1e-7: reduced to an octant and evaluated with Taylor
// polynomials, because WGSL only promises 2^-11 absolute for sin/cos (SwiftShader is off by ~2e-4).
fn sin_cos_turns(t: f32) -> vec2<f32> {
    let q = round(4.0 * t);
    let a = (t - 0.25 * q) * TAU;  // |a| ≤ π/4
    let a2 = a * a;
    let sp = a * (1.0 + a2 * (-1.0 / 6.0 + a2 * (1.0 / 120.0 + a2 * (-1.0 / 5040.0 + a2 * (1.0 / 362880.0)))));
    let cp = 1.0 + a2 * (-0.5 + a2 * (1.0 / 24.0 + a2 * (-1.0 / 720.0 + a2 * (1.0 / 40320.0 + a2 * (-1.0 / 3628800.0)))));
    // Rotate by q quarter turns.
    switch (i32(q) & 3) {
        case 0: { return vec2<f32>(sp, cp); }
        case 1: { return vec2<f32>(cp, -sp); }
        case 2: { return vec2<f32>(-sp, -cp); }
        default: { return vec2<f32>(-cp, sp); }
    }
}

// (sin, cos) of the angle of a pair turning hi + lo turns per position, at position pos, times
// mscale.
fn rope_sin_cos(hi: f32, lo: f32, pos: u32, mscale: f32) -> vec2<f32> {
    let ph = f32(pos & 0xFFFFF000u);
    let pl = f32(pos & 0xFFFu);
    let turns = fract(ph * hi) + fract(pl * hi) + (ph * lo + pl * lo);
    return sin_cos_turns(turns - round(turns)) * mscale;
}

// (a, b) rotated by the angle whose (sin, cos) is sc.
fn rotate(a: f32, b: f32, sc: vec2<f32>) -> vec2<f32> {
    return vec2<f32>(a * sc.y - b * sc.x, a * sc.x + b * sc.y);
}
