//! The GPU layer itself: limits, buffer accounting, readback, recorder copies and clears.

use crate::common::*;

gpu_test! {
    async fn adapter_limits_are_the_adapters_own() {
        let gpu = gpu().await;
        let c = gpu.caps();
        // WebGPU's default is 128 MiB / 256 invocations; we must never get less than that.
        assert!(c.max_binding >= 128 << 20, "max_binding {}", c.max_binding);
        assert!(c.max_invocations >= 256);
        assert!(c.max_workgroup_storage >= 16 << 10);
    }
}

gpu_test! {
    async fn upload_read_copy_clear_in_one_submit() {
        let gpu = gpu().await;
        let before = gpu.bytes_in_use();
        let data: Vec<u32> = (0..1000).collect();
        let a = gpu.upload("a", &data).unwrap();
        let b = gpu.storage("b", 4000).unwrap();
        assert_eq!(gpu.bytes_in_use() - before, 8000);
        let mut rec = gpu.recorder("copy");
        rec.copy(&a, 0, &b, 0, 4000);
        rec.clear(&b, 400, 400);
        rec.submit();
        let got: Vec<u32> = gpu.read(&b, 0, 1000).await.unwrap();
        for (i, v) in got.iter().enumerate() {
            let want = if (100..200).contains(&i) { 0 } else { i as u32 };
            assert_eq!(*v, want, "element {i}");
        }
        // Odd byte lengths are padded, and reads at an offset work.
        let tail: Vec<u8> = gpu.read(&a, 4 * 998, 5).await.unwrap();
        assert_eq!(tail, vec![230, 3, 0, 0, 231]);
        drop((a, b));
        assert_eq!(gpu.bytes_in_use(), before);
    }
}

gpu_test! {
    async fn oversized_buffer_is_an_error_not_a_panic() {
        let gpu = gpu().await;
        let too_big = gpu.caps().max_buffer + 4;
        let err = gpu.storage("huge", too_big).unwrap_err();
        assert!(err.to_string().contains("huge"), "{err}");
    }
}

#[test]
fn grid_folds_into_two_dimensions() {
    assert_eq!(attend::gpu::grid(10, 65535), [10, 1, 1]);
    let g = attend::gpu::grid(200_000, 65535);
    assert!(g[0] <= 65535 && g[0] * g[1] >= 200_000, "{g:?}");
}

// The device requests timestamp queries where the adapter has them, natively and in the browser
// (`--profile`, `engine.bench({profile: true})` time every dispatch with them); without them
// profiling is refused, not a validation panic.
gpu_test! {
    async fn profiling_times_dispatches_where_the_adapter_has_timestamps() {
        let gpu = gpu().await;
        if !gpu.caps().timestamps {
            assert!(gpu.set_profiling(true).is_err());
            return;
        }
        gpu.set_profiling(true).unwrap();
        let x = gpu.upload("x", &[1f32, 5.0, 2.0, 0.0]).unwrap();
        let out = gpu.storage("out", 4).unwrap();
        // Two submits: each resolves its timestamps into its own buffer, read when taken.
        for _ in 0..2 {
            let mut rec = gpu.recorder("profiled");
            attend::kernels::argmax::argmax(&mut rec, &x, 1, 4, &out).unwrap();
            rec.submit();
        }
        gpu.set_profiling(false).unwrap();
        let got: Vec<u32> = gpu.read(&out, 0, 1).await.unwrap();
        assert_eq!(got, [1]);
        let times = gpu.take_profile().await.unwrap();
        assert!(
            times.iter().any(|t| t.pass == "profiled"
                && t.kernel.contains("argmax")
                && t.calls == 2
                && t.ms.is_finite()
                && t.ms >= 0.0),
            "{times:?}"
        );
        // Taken means gone: the next take starts over.
        assert!(gpu.take_profile().await.unwrap().is_empty());
    }
}

// Pipelines take explicit layouts read from their WGSL (`attend::gpu::layout`), so that a browser
// can compile them ahead of time (`src/gpu/prewarm.rs`). Each must be what the automatic layout
// would hold: for every entry point of every module, the bindings and kinds naga (wgpu's shader
// compiler, natively) finds the entry point using. No GPU needed; every kernel test, natively and
// in Chromium, then creates its pipelines with these layouts and binds exactly what they say.
#[cfg(not(target_arch = "wasm32"))]
#[test]
fn explicit_layouts_are_what_naga_finds_used() {
    use attend::gpu::layout::{Kind, Module};
    use wgpu::naga;
    let mut checked = 0;
    for shader in attend::kernels::shaders() {
        let module = Module::parse(shader.source).unwrap();
        let ir = naga::front::wgsl::parse_str(shader.source)
            .unwrap_or_else(|e| panic!("{}: {}", shader.name, e.emit_to_string(shader.source)));
        let info = naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::all(),
        )
        .validate(&ir)
        .unwrap_or_else(|e| panic!("{}: {e:?}", shader.name));
        let names: Vec<&str> = ir.entry_points.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(module.entries, names, "{}: entry points", shader.name);
        for (i, ep) in ir.entry_points.iter().enumerate() {
            let uses = info.get_entry_point(i);
            let mut want: Vec<(u32, Kind)> = ir
                .global_variables
                .iter()
                .filter(|&(h, _)| !uses[h].is_empty())
                .filter_map(|(_, g)| {
                    let b = g.binding.as_ref()?;
                    assert_eq!(b.group, 0, "{}: group {}", shader.name, b.group);
                    let kind = match g.space {
                        naga::AddressSpace::Uniform => Kind::Uniform,
                        naga::AddressSpace::Storage { access } => {
                            if access.contains(naga::StorageAccess::STORE) {
                                Kind::ReadWrite
                            } else {
                                Kind::ReadOnly
                            }
                        }
                        s => panic!("{}: binding in {s:?}", shader.name),
                    };
                    Some((b.binding, kind))
                })
                .collect();
            want.sort_by_key(|&(b, _)| b);
            let got = module.bindings(&ep.name).unwrap();
            assert_eq!(got, want, "{}::{}", shader.name, ep.name);
            assert!(!got.is_empty(), "{}::{}: no bindings", shader.name, ep.name);
            checked += 1;
        }
    }
    assert!(checked >= 50, "{checked} entry points");
}
