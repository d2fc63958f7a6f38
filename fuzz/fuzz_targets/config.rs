//! Hyperparameters from arbitrary metadata: a GGUF parsed from the input, its config and the GPU
//! size checks against small and large adapter limits. Errors are fine; panics, overflows and
//! a KV-cache layer larger than the adapter allows are not.
#![no_main]
use attend::engine::{KvPrecision, LoadOptions};
use attend::gguf::Gguf;
use attend::gpu::Caps;
use attend::model::{budget, Config};
use libfuzzer_sys::fuzz_target;

fn caps(limit: u64) -> Caps {
    Caps::webgpu_defaults(limit, limit)
}

fuzz_target!(|data: &[u8]| {
    let [c0, c1, rest @ ..] = data else { return };
    let Ok(g) = Gguf::parse(rest) else { return };
    let Ok(cfg) = Config::from_gguf(&g) else {
        return;
    };
    assert!(cfg.n_layers as usize <= g.tensors.len());
    let context = u32::from_le_bytes([*c0, *c1, 0, 0]);
    for kv in [KvPrecision::F16, KvPrecision::F32] {
        let opts = LoadOptions {
            batch: 64,
            logit_rows: 1,
            max_gpu_bytes: Some(u64::MAX / 2),
            kv,
            ..Default::default()
        };
        for limit in [1 << 20, 128 << 20, 1 << 31, u64::MAX / 4] {
            let c = caps(limit);
            if let Ok(b) = budget::check(&cfg, &g, context, &opts, &c) {
                let per_layer = b.kv_cache / (2 * cfg.n_layers as u64);
                assert!(per_layer <= limit);
            }
        }
    }
});
