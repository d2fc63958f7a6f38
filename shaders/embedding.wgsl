// embedding: out[i, :] = scale * dequant(table[ids[i], :]), for the rows held by one part of the
// table (a dispatch per part).
// Work distribution: one invocation per (token, 32-element unit), 64 per workgroup; each decodes
// its unit and writes 8 vec4. Tokens whose id lies in another part are skipped; ids past the end
// of the whole table write zeros (in the dispatch of part 0) and never read out of bounds.

struct Params {
    row0: u32,       // first row of this part
    rows: u32,       // rows in this part
    total_rows: u32,
    cols: u32,
    row_bytes: u32,
    m: u32,
    first: u32,      // 1 for the dispatch of part 0
    scale: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(2) var<storage, read> ids: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<vec4<f32>>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
    let ku = p.cols / 32u;
    let idx = (wid.x + wid.y * nwg.x) * 64u + li;
    let tok = idx / ku;
    let u = idx % ku;
    if (tok >= p.m) {
        return;
    }
    let id = ids[tok];
    let ob = tok * (p.cols / 4u) + u * 8u;
    if (id >= p.total_rows) {
        if (p.first == 1u) {
            for (var i = 0u; i < 8u; i++) {
                out[ob + i] = vec4<f32>(0.0);
            }
        }
        return;
    }
    if (id < p.row0 || id - p.row0 >= p.rows) {
        return;
    }
    let w = decode((id - p.row0) * p.row_bytes, u);
    for (var i = 0u; i < 8u; i++) {
        out[ob + i] = w[i] * p.scale;
    }
}
