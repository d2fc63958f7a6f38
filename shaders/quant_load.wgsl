// The weight loader of the quantized-matrix module wherever 64-bit integers are not used (every
// browser, and devices without `shader-int64`): the packed weights seen as vec4<u32>. The
// alternative is `quant_load64.wgsl`; both give the same words.

@group(0) @binding(2) var<storage, read> wq4: array<vec4<u32>>;

// The vec4 of words at vec4 offset i.
fn q4w(i: u32) -> vec4<u32> {
    return wq4[i];
}

// The 32-byte run at vec4 offset j (even).
fn q8w(j: u32) -> Q8W {
    return Q8W(wq4[j], wq4[j + 1u]);
}
