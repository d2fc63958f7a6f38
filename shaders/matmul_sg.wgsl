// Subgroup entry points of the quantized-matrix family: `matvec_sg` (decode) and `matmul_rt_sg`
// (prefill, register tiles). This file is not a module by itself: `src/kernels/matvec.rs` builds
// the module from `quant.wgsl`, `matvec.wgsl` and `matmul.wgsl` followed by this file (WGSL has no
// includes), and only on devices that have subgroups of 8 invocations or more, natively (naga
// takes subgroup built-ins without an `enable` directive; browsers are not given this module).
//
// Why: on CPU adapters every lane of a SIMD fibre loads the same activation words, and llvmpipe
// turns each such load into one load per lane (a gather). Here lane l of the subgroup loads vec4 l
// of the 32-element unit and `subgroupBroadcast` hands the eight vec4s to every lane, so a fibre
// makes one load per lane where it made eight. The arithmetic and its order are those of
// `matvec_xu` and `matmul_rt_xu`, so the results are the same bits.
//
// Every invocation of a subgroup must reach the broadcasts with the same unit (and, in the
// matmul, the same tokens): `matvec_sg` runs with one invocation per row group (TPR 1) and lets
// row groups past the part decode group 0 without storing it; `matmul_rt_sg` takes its tokens from
// the workgroup id alone and its row block from the invocation.

// The eight vec4s of one unit, vec4 i from lane i.
fn x8_bcast(v: vec4<f32>) -> X8 {
    return X8(subgroupBroadcast(v, 0u), subgroupBroadcast(v, 1u), subgroupBroadcast(v, 2u),
              subgroupBroadcast(v, 3u), subgroupBroadcast(v, 4u), subgroupBroadcast(v, 5u),
              subgroupBroadcast(v, 6u), subgroupBroadcast(v, 7u));
}

// `matvec_xu` for one token, TPR 1.
@compute @workgroup_size(WG)
fn matvec_sg(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32, @builtin(subgroup_invocation_id) lane: u32) {
    let g0 = mv_group(wid, nwg, li) * MV_G;
    if (NORM_IN) {
        // Lane l sums stripe l; the broadcasts give every lane all eight, in the same order.
        let a = ssq_stripe_u(lane & 7u);
        norm_r = rms_scale(subgroupBroadcast(a, 0u), subgroupBroadcast(a, 1u),
                           subgroupBroadcast(a, 2u), subgroupBroadcast(a, 3u),
                           subgroupBroadcast(a, 4u), subgroupBroadcast(a, 5u),
                           subgroupBroadcast(a, 6u), subgroupBroadcast(a, 7u));
    }
    let live = mv_live(g0);
    let g = select(0u, g0, live);
    var acc: array<vec4<f32>, 4>;
    var up: array<vec4<f32>, 4>;
    for (var u = 0u; u < pv.k / 32u; u++) {
        let x = x8_bcast(xu[pv.tok0 * (pv.k / 4u) + u * 8u + (lane & 7u)]);
        mv_tok1(g, u, x.v0, x.v1, x.v2, x.v3, x.v4, x.v5, x.v6, x.v7, &acc, &up);
        if (MV_G == 2u) {
            mv_tok1_second(g, u, x.v0, x.v1, x.v2, x.v3, x.v4, x.v5, x.v6, x.v7, &acc, &up);
        }
    }
    if (live) {
        mv_store_all(g, li, acc, up);
    }
}

// `matmul_rt_xu` with the grid (row blocks / WG, token blocks): tokens RT_T * wid.y.. of the
// dispatch, row block wid.x * WG + li (blocks past the part decode its last rows, store nothing).
@compute @workgroup_size(WG)
fn matmul_rt_sg(@builtin(workgroup_id) wid: vec3<u32>,
        @builtin(local_invocation_index) li: u32, @builtin(subgroup_invocation_id) lane: u32) {
    let g = (wid.x * WG + li) * (RT_R / 4u);
    let t = RT_T * wid.y;
    let l = lane & 7u;
    var blk = Block(acc_zero(), acc_zero(), acc_zero(), acc_zero());
    for (var u = 0u; u < pr.k / 32u; u++) {
        let xs = X4(x8_bcast(xu[rt_x(t, u) + l]), x8_bcast(xu[rt_x(t + 1u, u) + l]),
                    x8_bcast(xu[rt_x(t + 2u, u) + l]), x8_bcast(xu[rt_x(t + 3u, u) + l]));
        var ys = xs;
        if (RT_T == 8u) {
            ys = X4(x8_bcast(xu[rt_x(t + 4u, u) + l]), x8_bcast(xu[rt_x(t + 5u, u) + l]),
                    x8_bcast(xu[rt_x(t + 6u, u) + l]), x8_bcast(xu[rt_x(t + 7u, u) + l]));
        }
        blk = rt_units(g, u, xs, ys, blk);
    }
    rt_store_block(g, t, blk);
}
