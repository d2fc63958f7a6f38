// Read-bandwidth probes: how fast a shader can stream a large buffer on this adapter. `attend bench`
// reports the fastest of these as `copy_gb_s`, the memory roofline a decode step is measured
// against. Each invocation reads PER vec4 words with a stride of the whole grid between its
// reads (neighbouring invocations read neighbouring vec4s: coalesced on GPUs), sums them and
// writes one word per invocation, so the compiler cannot drop the loads and the write traffic is
// 1/(4 PER) of the read traffic.

struct Params {
    n: u32,        // vec4s to read
    stride: u32,   // invocations in the grid
    _pad0: u32,
    _pad1: u32,
}

override WG: u32 = 256u;
override PER: u32 = 4u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read_write> sink: array<u32>;

@compute @workgroup_size(WG)
fn read_stream(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
    let id = (wid.x + wid.y * nwg.x) * WG + li;
    if (id >= p.stride) {
        return;
    }
    var acc = vec4<u32>(0u);
    for (var i = 0u; i < PER; i++) {
        let j = id + i * p.stride;
        if (j < p.n) {
            acc ^= src[j];
        }
    }
    sink[id] = acc.x ^ acc.y ^ acc.z ^ acc.w;
}
