//! Natively every `Gpu::new` of a process shares one device and its compiled pipelines: a second
//! load compiles nothing it compiled before and gives the same tokens, each engine keeps its own
//! memory count, `Gpu::private` opens a device of its own, and a lost shared device is replaced
//! at the next load. One test in its own binary: it destroys the shared device.

#![cfg(not(target_arch = "wasm32"))]

use attend::engine::{Engine, GenParams, LoadOptions};
use attend::gpu::Gpu;
use std::path::PathBuf;
use std::sync::Arc;

fn greedy(e: &mut Engine) -> attend::Result<Vec<u32>> {
    let mut p = GenParams {
        max_tokens: 6,
        ignore_eog: true,
        ..Default::default()
    };
    p.sampler.temperature = 0.0;
    let mut out = Vec::new();
    e.reset();
    pollster::block_on(e.generate(&[5, 6, 7], &p, |t| {
        out.push(t.id);
        true
    }))?;
    Ok(out)
}

#[test]
fn loads_share_the_device_and_its_pipelines_and_a_lost_one_is_replaced() {
    let tiny = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/reference/tiny-qwen2.gguf");
    let opts = LoadOptions {
        context: Some(64),
        ..Default::default()
    };
    let load = || pollster::block_on(Engine::load_file(&tiny, &opts)).unwrap();

    let mut first = load();
    let want = greedy(&mut first).unwrap();
    let compiled = first.gpu.pipelines.len();
    assert!(compiled > 0);
    let bytes = first.gpu.bytes_in_use();
    assert!(bytes > 0);

    // A second engine beside the first: the same device and cache, nothing compiled again, its
    // own buffers counted apart.
    let mut second = load();
    assert!(Arc::ptr_eq(&first.gpu.pipelines, &second.gpu.pipelines));
    assert_eq!(greedy(&mut second).unwrap(), want);
    assert_eq!(
        second.gpu.pipelines.len(),
        compiled,
        "a second load compiled pipelines again"
    );
    assert_eq!(second.gpu.bytes_in_use(), bytes);
    drop(first);
    assert_eq!(second.gpu.bytes_in_use(), bytes);

    // A private device has a cache of its own; losing it leaves the shared one working. The
    // first call after a loss reports it: generate here, score on the shared device below.
    let gpu = pollster::block_on(Gpu::private()).unwrap();
    let mut private = Engine::load_file_on(gpu, &tiny, &opts).unwrap();
    assert!(!Arc::ptr_eq(&private.gpu.pipelines, &second.gpu.pipelines));
    private.gpu.device.destroy();
    let err = greedy(&mut private).unwrap_err().to_string();
    assert!(err.contains("device was lost"), "{err}");
    assert_eq!(greedy(&mut second).unwrap(), want);

    // Losing the shared device fails the engines on it; the next load opens a new one.
    second.gpu.device.destroy();
    let err = pollster::block_on(second.score(&[5, 6, 7]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("device was lost"), "{err}");
    let err = greedy(&mut second).unwrap_err().to_string();
    assert!(err.contains("device was lost"), "{err}");
    let mut third = load();
    assert!(!Arc::ptr_eq(&third.gpu.pipelines, &second.gpu.pipelines));
    assert_eq!(greedy(&mut third).unwrap(), want);
}
