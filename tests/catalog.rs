//! The model catalog (`src/catalog.json`): every entry's shape, that its architecture and the
//! tensor types of its quantization are ones the engine reads (asked of the engine, not a copy
//! of its lists), that the header built from an entry types tensors as llama.cpp does (checked
//! on the two real files in the model cache) and that the fit check agrees with the engine's own
//! budget check. The URLs are not fetched (no network here).
#![cfg(not(target_arch = "wasm32"))]

use attend::catalog::{self, check_fit, Model, MIN_CONTEXT};
use attend::engine::LoadOptions;
use attend::gguf::{parse_split_name, read_header};
use attend::gpu::Caps;
use attend::model::{budget, Arch, Config};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

#[path = "support/cache.rs"]
mod cache;

/// A browser adapter's limits (SwiftShader's 1 GiB bindings) without a total budget.
fn generous() -> Caps {
    Caps::webgpu_defaults(1 << 30, 1 << 30)
}

fn with_binding(bytes: u64) -> Caps {
    Caps {
        max_binding: bytes,
        max_buffer: bytes,
        ..generous()
    }
}

/// Problems with one entry's fields (empty: none).
fn problems(m: &Model) -> Vec<String> {
    let mut p = Vec::new();
    let mut need = |ok: bool, what: &str| {
        if !ok {
            p.push(format!("{}: {what}", m.name));
        }
    };
    need(!m.name.trim().is_empty(), "empty name");
    need(!m.license.trim().is_empty(), "empty license");
    need(!m.quant.is_empty(), "empty quant");
    need(
        (50 << 20..4 << 30).contains(&m.file_bytes),
        "file_bytes outside 50 MiB..4 GiB",
    );
    need(
        (2048..=131072).contains(&m.context),
        "context outside 2048..=131072",
    );
    for n in [
        m.layers, m.d_model, m.heads, m.kv_heads, m.head_dim, m.ffn_dim, m.vocab,
    ] {
        need(n > 0, "a zero hyperparameter");
    }
    need(
        m.kv_heads > 0 && m.heads.is_multiple_of(m.kv_heads),
        "heads not grouped over kv_heads",
    );
    need(!m.urls.is_empty(), "no URL");
    for u in &m.urls {
        need(u.starts_with("https://"), "a URL that is not https");
        need(u.ends_with(".gguf"), "a URL that is not a .gguf file");
        // Hugging Face: the file itself, not its HTML page.
        need(
            !u.contains("huggingface.co") || u.contains("/resolve/"),
            "a Hugging Face URL without /resolve/",
        );
    }
    if m.urls.len() > 1 {
        let n = m.urls.len() as u32;
        for (i, u) in m.urls.iter().enumerate() {
            let file = u.rsplit('/').next().unwrap_or("");
            let parsed = parse_split_name(file);
            need(
                matches!(parsed, Some((_, no, count)) if no == i as u32 + 1 && count == n),
                "split URLs out of order or not named -0000i-of-0000n.gguf",
            );
        }
    }
    p
}

#[test]
fn every_entry_has_sane_fields_and_unique_names() {
    let models = catalog::models();
    assert!(
        models.len() >= 8,
        "the catalog lists {} models",
        models.len()
    );
    let all: Vec<String> = models.iter().flat_map(problems).collect();
    assert!(all.is_empty(), "{all:#?}");
    let names: HashSet<_> = models.iter().map(|m| &m.name).collect();
    assert_eq!(names.len(), models.len(), "names are not unique");
    let urls: HashSet<_> = models.iter().flat_map(|m| &m.urls).collect();
    assert_eq!(
        urls.len(),
        models.iter().map(|m| m.urls.len()).sum::<usize>()
    );
}

#[test]
fn the_field_check_catches_bad_entries() {
    let good = catalog::models()[0].clone();
    let bad = [
        Model {
            urls: vec!["http://example.com/a.gguf".into()],
            ..good.clone()
        },
        Model {
            urls: vec!["https://example.com/a.bin".into()],
            ..good.clone()
        },
        Model {
            urls: vec![
                "https://example.com/m-00002-of-00002.gguf".into(),
                "https://example.com/m-00001-of-00002.gguf".into(),
            ],
            ..good.clone()
        },
        Model {
            file_bytes: 1000,
            ..good.clone()
        },
        Model {
            kv_heads: 4,
            ..good.clone()
        },
        Model {
            license: " ".into(),
            ..good.clone()
        },
    ];
    for m in bad {
        assert!(!problems(&m).is_empty(), "accepted {m:?}");
    }
    let split = Model {
        urls: vec![
            "https://example.com/m-00001-of-00002.gguf".into(),
            "https://example.com/m-00002-of-00002.gguf".into(),
        ],
        ..good
    };
    assert!(problems(&split).is_empty(), "{:?}", problems(&split));
}

#[test]
fn every_entry_is_an_architecture_and_quant_the_engine_reads() {
    for m in catalog::models() {
        let arch = Arch::from_name(&m.architecture).unwrap_or_else(|e| panic!("{}: {e}", m.name));
        let g = m.header().unwrap_or_else(|e| panic!("{}: {e}", m.name));
        for t in &g.tensors {
            assert!(
                t.ty.gpu_supported(),
                "{}: {} would be {}, which the GPU kernels do not read",
                m.name,
                t.name,
                t.ty.name()
            );
        }
        let cfg = m.config().unwrap();
        assert_eq!(cfg.arch, arch);
        assert_eq!(
            (cfg.n_layers, cfg.d_model, cfg.vocab, cfg.train_ctx),
            (m.layers, m.d_model, m.vocab, m.context)
        );
        assert_eq!(
            (cfg.q_dim(), cfg.kv_dim()),
            (m.heads * m.head_dim, m.kv_heads * m.head_dim)
        );
    }
    // The quant check refuses quantizations whose tensor mix the catalog does not model.
    let mut m = catalog::models()[0].clone();
    for q in ["Q2_K", "Q3_K_M", "IQ4_NL", "IQ4_XS"] {
        m.quant = q.into();
        assert!(m.header().is_err(), "{q} accepted");
    }
    // Q5_K_M on 896-wide rows falls back to Q5_1, which the kernels do not read.
    let mut qwen = catalog::find("Qwen2.5-0.5B-Instruct").unwrap().clone();
    qwen.quant = "Q5_K_M".into();
    assert!(qwen
        .header()
        .unwrap()
        .tensors
        .iter()
        .any(|t| !t.ty.gpu_supported()));
}

/// The tensors an entry implies are the file minus its header (metadata and vocabulary: a few MB),
/// a check on the hand-written hyperparameters and sizes both.
#[test]
fn header_sizes_agree_with_the_listed_file_sizes() {
    for m in catalog::models() {
        let g = m.header().unwrap();
        let bytes: u64 = g.tensors.iter().map(|t| t.byte_size()).sum();
        let ratio = bytes as f64 / m.file_bytes as f64;
        assert!(
            (0.95..1.0).contains(&ratio),
            "{}: tensors {bytes} bytes vs file_bytes {} ({ratio:.3})",
            m.name,
            m.file_bytes
        );
    }
}

fn cache_model(file: &str) -> PathBuf {
    cache::cached_model(file)
}

/// The catalog's typing rules against two real llama.cpp files: an entry with their
/// hyperparameters must type (and size) every tensor the engine plans as the file does.
#[test]
fn tensor_types_match_real_llama_cpp_files() {
    let smol = Model {
        name: "SmolLM2-135M-Instruct Q4_1".into(),
        quant: "Q4_1".into(),
        ..catalog::find("SmolLM2-135M-Instruct").unwrap().clone()
    };
    let gemma = Model {
        name: "gemma-3-270m Q4_K_M".into(),
        quant: "Q4_K_M".into(),
        ..catalog::find("gemma-3-270m-it").unwrap().clone()
    };
    for (m, file) in [
        (smol, "SmolLM2-135M-Instruct.Q4_1.gguf"),
        (gemma, "gemma-3-270m-q4_k_m.gguf"),
    ] {
        let real = read_header(&cache_model(file)).unwrap();
        let real_cfg = Config::from_gguf(&real).unwrap();
        let ours = m.header().unwrap();
        let cfg = Config::from_gguf(&ours).unwrap();
        assert_eq!(
            (
                cfg.n_layers,
                cfg.d_model,
                cfg.n_heads,
                cfg.n_kv_heads,
                cfg.head_dim,
                cfg.ffn_dim,
                cfg.vocab,
                cfg.window
            ),
            (
                real_cfg.n_layers,
                real_cfg.d_model,
                real_cfg.n_heads,
                real_cfg.n_kv_heads,
                real_cfg.head_dim,
                real_cfg.ffn_dim,
                real_cfg.vocab,
                real_cfg.window
            ),
            "{}",
            m.name
        );
        let real_types: HashMap<_, _> = real
            .tensors
            .iter()
            .map(|t| (t.name.clone(), (t.ty, t.dims.clone())))
            .collect();
        let mut wrong = Vec::new();
        for t in &ours.tensors {
            match real_types.get(&t.name) {
                Some((ty, dims)) if *ty == t.ty && *dims == t.dims => {}
                other => wrong.push(format!(
                    "{}: ours {} {:?}, file {other:?}",
                    t.name,
                    t.ty.name(),
                    t.dims
                )),
            }
        }
        assert!(wrong.is_empty(), "{}:\n{}", m.name, wrong.join("\n"));
        let opts = LoadOptions::default();
        let a = budget::check(&cfg, &ours, 2048, &opts, &generous()).unwrap();
        let b = budget::check(&real_cfg, &real, 2048, &opts, &generous()).unwrap();
        assert_eq!(a, b, "{}", m.name);
    }
}

#[test]
fn a_small_model_fits_generous_limits_at_its_full_context() {
    let m = catalog::find("SmolLM2-135M-Instruct").unwrap();
    let f = check_fit(m, &LoadOptions::default(), &generous()).unwrap();
    assert!(f.fits, "{f:?}");
    assert_eq!(
        (f.context, f.requested_context, f.reason.as_deref()),
        (8192, 8192, None)
    );
    assert!(
        f.weights_bytes > 100 << 20 && f.gpu_bytes > f.weights_bytes,
        "{f:?}"
    );
    // A smaller context asked for is the one given.
    let opts = LoadOptions {
        context: Some(4096),
        ..Default::default()
    };
    let f = check_fit(m, &opts, &generous()).unwrap();
    assert_eq!((f.fits, f.context), (true, 4096));
}

#[test]
fn a_big_model_does_not_fit_a_small_memory_budget() {
    let m = catalog::find("TinyLlama-1.1B-Chat-v1.0").unwrap();
    let opts = LoadOptions {
        max_gpu_bytes: Some(256 << 20),
        ..Default::default()
    };
    let f = check_fit(m, &opts, &with_binding(128 << 20)).unwrap();
    assert!(!f.fits, "{f:?}");
    assert_eq!(f.context, 0);
    let why = f.reason.as_deref().unwrap();
    assert!(why.contains("over the limit of 268435456"), "{why}");
    // The sizes are still reported, and they are why: the weights alone are over.
    assert!(f.weights_bytes > 256 << 20, "{f:?}");
    assert!(budget::check(
        &m.config().unwrap(),
        &m.header().unwrap(),
        MIN_CONTEXT,
        &opts,
        &with_binding(128 << 20)
    )
    .is_err());
}

/// A binding limit that caps the KV cache: the largest context that passes is found, it passes
/// the engine's own check and one more token does not.
#[test]
fn the_context_found_is_the_largest_the_budget_check_passes() {
    let caps = with_binding(8 << 20);
    for (name, budget_bytes) in [
        ("Qwen2.5-1.5B-Instruct", None),
        ("gemma-3-1b-it", Some(1_100_000_000u64)),
    ] {
        let m = catalog::find(name).unwrap();
        let opts = LoadOptions {
            max_gpu_bytes: budget_bytes,
            ..Default::default()
        };
        let f = check_fit(m, &opts, &caps).unwrap();
        assert!(f.fits && f.context < f.requested_context, "{f:?}");
        assert!(f.reason.is_some(), "{f:?}");
        let (cfg, g) = (m.config().unwrap(), m.header().unwrap());
        let b = budget::check(&cfg, &g, f.context, &opts, &caps).unwrap();
        assert_eq!(b.total(), f.gpu_bytes);
        assert!(
            budget::check(&cfg, &g, f.context + 1, &opts, &caps).is_err(),
            "{name}: {} + 1 fits too",
            f.context
        );
    }
    // Qwen2.5-1.5B: K and V of 2 heads × 128 dims in f16 are 512 bytes a token per layer.
    let f = check_fit(
        catalog::find("Qwen2.5-1.5B-Instruct").unwrap(),
        &LoadOptions::default(),
        &caps,
    )
    .unwrap();
    assert_eq!(f.context, (8 << 20) / 512);
}

#[test]
fn unknown_names_are_refused_with_the_list() {
    let e = catalog::find("no-such-model").unwrap_err().to_string();
    assert!(e.contains("SmolLM2-135M-Instruct"), "{e}");
}
