// The read probe with 32-byte loads (vec4<u64>), for devices with 64-bit integers: the width the
// subgroup matvecs read their weights with there (`quant_load64.wgsl`), so the roofline a decode
// step is compared with is the faster of the two widths. Follows `bandwidth.wgsl` in its module
// (`src/kernels/bandwidth.rs`); `p.n` counts vec4<u64>s here.

@group(0) @binding(1) var<storage, read> src64: array<vec4<u64>>;

@compute @workgroup_size(WG)
fn read_stream64(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
    let id = (wid.x + wid.y * nwg.x) * WG + li;
    if (id >= p.stride) {
        return;
    }
    var acc = vec4<u64>(0lu);
    for (var i = 0u; i < PER; i++) {
        let j = id + i * p.stride;
        if (j < p.n) {
            acc ^= src64[j];
        }
    }
    let a = acc.x ^ acc.y ^ acc.z ^ acc.w;
    sink[id] = u32(a) ^ u32(a >> 32u);
}
