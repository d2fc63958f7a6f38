//! Property tests (proptest; cargo-fuzz needs nightly): the GGUF push parser under random
//! mutations, chunkings and a file size learned early, late or never; the hyperparameters and
//! GPU size checks under arbitrary metadata and adapter limits (32-bit-sized ones included).
//! Every case ends in `Ok` or a clear `Err` — never a panic, an overflow or a hang.
#![cfg(not(target_arch = "wasm32"))]

use attend::engine::LoadOptions;
use attend::gguf::{Event, Gguf, GgufStream, GgufWriter, Value};
use attend::gpu::Caps;
use attend::model::{budget, Config};
use attend::quant::GgmlType;
use proptest::prelude::*;

fn tiny_qwen2() -> &'static [u8] {
    static BYTES: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    BYTES.get_or_init(|| {
        let p = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/reference/tiny-qwen2.gguf"
        );
        std::fs::read(p).unwrap()
    })
}

/// Limits as an adapter could report them, 32-bit-sized ones and zero included.
fn caps(binding: u64, buffer: u64) -> Caps {
    Caps::webgpu_defaults(binding, buffer)
}

/// Numbers near the edges that sizes are made of, and anything else.
fn edgy() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0u64),
        Just(1),
        Just(2),
        Just(u32::MAX as u64),
        Just(1 << 32),
        Just(u64::MAX),
        1u64..=4096,
        any::<u64>(),
    ]
}

/// Config and size checks on a header: a result, never a panic; an accepted budget fits.
fn check_model(g: &Gguf, context: u32, batch: u32, c: &Caps) {
    let Ok(cfg) = Config::from_gguf(g) else {
        return;
    };
    assert!(cfg.n_layers as usize <= g.tensors.len());
    if let Ok(b) = budget::check(
        &cfg,
        g,
        context,
        &LoadOptions {
            batch,
            max_gpu_bytes: Some(u64::MAX / 2),
            ..Default::default()
        },
        c,
    ) {
        let per_layer = b.kv_cache / (2 * cfg.n_layers as u64);
        assert!(per_layer <= c.max_binding.min(c.max_buffer));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn stream_survives_mutations_and_any_chunking(
        muts in prop::collection::vec((0usize..12_000, any::<u8>()), 0..6),
        cut in prop_oneof![Just(usize::MAX), 0usize..600_000],
        chunks in prop::collection::vec(0usize..70_000, 1..40),
        size_at in prop_oneof![Just(None), Just(Some(0usize)), (1usize..20_000).prop_map(Some)],
        size_delta in prop_oneof![Just(0i64), -100i64..100],
        context in any::<u32>(),
        binding in edgy(),
    ) {
        let mut bytes = tiny_qwen2().to_vec();
        for (at, v) in muts {
            bytes[at] = v;
        }
        bytes.truncate(cut);
        let announced = (bytes.len() as i64 + size_delta).max(0) as u64;
        let mut s = GgufStream::new();
        let mut got = vec![];
        let mut header = None;
        let (mut pos, mut i) = (0usize, 0usize);
        let result = (|| -> attend::Result<()> {
            while pos < bytes.len() {
                if size_at.is_some_and(|at| pos >= at) && s.file_size().is_none() {
                    s.set_file_size(announced)?;
                }
                let n = chunks[i % chunks.len()].min(bytes.len() - pos);
                i += 1;
                for ev in s.push(&bytes[pos..pos + n])? {
                    match ev {
                        Event::Header(g) => {
                            got = vec![0u64; g.tensors.len()];
                            header = Some(g);
                        }
                        Event::TensorData { tensor, offset, bytes } => {
                            let g = header.as_ref().expect("header first");
                            assert_eq!(offset, got[tensor], "pieces in order");
                            got[tensor] += bytes.len() as u64;
                            assert!(got[tensor] <= g.tensors[tensor].byte_size());
                        }
                        Event::Done => {}
                    }
                }
                pos += n;
            }
            s.finish()
        })();
        if let Some(g) = &header {
            check_model(g, context, 64, &caps(binding, binding));
        }
        if result.is_ok() {
            let g = header.expect("a complete stream has a header");
            for (t, n) in g.tensors.iter().zip(&got) {
                prop_assert_eq!(t.byte_size(), *n);
            }
        }
    }

    #[test]
    fn hyperparameters_and_sizes_never_panic(
        vals in prop::collection::vec(edgy(), 9),
        context in any::<u32>(),
        batch in any::<u32>(),
        binding in edgy(),
        buffer in edgy(),
    ) {
        let mut w = GgufWriter::new();
        w.add_metadata("general.architecture", Value::String("llama".into()));
        let keys = [
            "block_count", "embedding_length", "feed_forward_length", "attention.head_count",
            "attention.head_count_kv", "attention.key_length", "context_length", "vocab_size",
            "rope.dimension_count",
        ];
        for (k, v) in keys.iter().zip(&vals) {
            w.add_metadata(&format!("llama.{k}"), Value::U64(*v));
        }
        w.add_metadata("llama.attention.layer_norm_rms_epsilon", Value::F32(1e-5));
        for n in ["token_embd", "output_norm", "blk.0.attn_norm", "blk.0.attn_q", "blk.1.attn_q"] {
            w.add_tensor(&format!("{n}.weight"), &[32], GgmlType::F32, vec![0; 128]).unwrap();
        }
        let g = Gguf::parse(&w.to_bytes().unwrap()).unwrap();
        check_model(&g, context, batch, &caps(binding, buffer));
    }
}
