// The weight loader of the quantized-matrix module on native devices with `shader-int64` (the
// subgroup module only; see `Gpu::wide_loads`): the packed weights seen as vec4<u64>, so a 32-byte
// run is one load of four 64-bit words. Why: llvmpipe turns every storage load into a loop over
// the SIMD lanes that fetches each component separately, so one vec4<u64> does the work of two
// vec4<u32> loads at about the cost of one. Weight buffers are sized in whole 32-byte runs
// (src/weights.rs), so the last run is in bounds. The words are those of `quant_load.wgsl`.
// (No 64-bit mask: `u32()` truncates, and `v & 0xffffffff` made llvmpipe's matvec 50x slower.)

@group(0) @binding(2) var<storage, read> wq8: array<vec4<u64>>;
// The same weights as 16-byte words: a vec4 of words that is not part of a run (Q4_1's and
// Q4_K's auxiliary words) costs llvmpipe two 64-bit loads here, four through `wq8`.
@group(0) @binding(8) var<storage, read> wq2: array<vec2<u64>>;

fn lo_hi(v: vec2<u64>) -> vec4<u32> {
    return vec4<u32>(u32(v.x), u32(v.x >> 32u), u32(v.y), u32(v.y >> 32u));
}

// The vec4 of words at vec4 offset i.
fn q4w(i: u32) -> vec4<u32> {
    return lo_hi(wq2[i]);
}

// The 32-byte run at vec4 offset j (even).
fn q8w(j: u32) -> Q8W {
    let v = wq8[j >> 1u];
    return Q8W(lo_hi(v.xy), lo_hi(v.zw));
}
