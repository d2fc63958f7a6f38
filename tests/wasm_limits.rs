//! Limits and faults where `usize` is 32 bits (headless Chromium, WebGPU on SwiftShader): a
//! truncated model loaded from an ArrayBuffer is refused from its header (the loader knows the
//! size), a matrix whose row is 4 GiB is an error instead of a wrapped size and a trap, and a lost
//! device is reported as such, and the model catalog's fit check runs against the adapter's
//! limits. Browser-only.
#![cfg(target_arch = "wasm32")]

use attend::engine::{EngineBuilder, GenParams, LoadOptions};
use attend::gguf::{Event, GgufStream};
use attend::gpu::Gpu;
use attend::quant::GgmlType;
use attend::wasm::{CancelToken, WasmEngine};
use attend::weights::QMatrix;
use js_sys::{Function, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

const GGUF: &[u8] = include_bytes!("reference/tiny-qwen2.gguf");

/// Before: the stream did not know the size, so every GPU buffer was allocated from the header
/// and the load failed only at the end of the data ("file ends after …").
#[wasm_bindgen_test]
async fn truncated_buffer_is_refused_from_the_header() {
    let bytes = Uint8Array::from(&GGUF[..GGUF.len() / 2]);
    let noop = Closure::<dyn FnMut(JsValue)>::new(|_| {});
    let err = match WasmEngine::load(
        bytes.into(),
        js_sys::Object::new().into(),
        noop.as_ref().unchecked_ref::<Function>().clone(),
        &CancelToken::new(),
    )
    .await
    {
        Ok(_) => panic!("a truncated model loaded"),
        Err(e) => String::from(e.unchecked_into::<js_sys::Error>().message()),
    };
    assert!(err.contains("past the end of the file"), "{err}");
}

/// Before: `row_bytes` of 2^30 F32 columns wrapped to 0 in a 32-bit usize and
/// `limit / row_bytes` trapped (a division by zero).
#[wasm_bindgen_test]
async fn four_gib_rows_are_an_error_not_a_trap() {
    let gpu = Gpu::new().await.expect("the browser offers WebGPU");
    let e = QMatrix::with_part_limit(&gpu, "w", GgmlType::F32, 1, 1 << 30, 1 << 31)
        .unwrap_err()
        .to_string();
    assert!(e.contains("too large"), "{e}");
}

/// `GPUDevice.destroy()` stands in for a lost device: the next generation fails saying to load
/// the model again (the browser reports the loss between tasks), and a new engine works on a new
/// device (loads before the loss shared one).
#[wasm_bindgen_test]
async fn device_loss_is_reported() {
    async fn load() -> attend::engine::Engine {
        let gpu = Gpu::new().await.expect("the browser offers WebGPU");
        let mut stream = GgufStream::with_file_size(Some(GGUF.len() as u64));
        let mut builder = None;
        let mut gpu = Some(gpu);
        let opts = LoadOptions {
            context: Some(64),
            ..Default::default()
        };
        for ev in stream.push(GGUF).unwrap() {
            match ev {
                Event::Header(h) => {
                    builder =
                        Some(EngineBuilder::new(gpu.take().unwrap(), h, opts.clone()).unwrap())
                }
                Event::TensorData {
                    tensor,
                    offset,
                    bytes,
                } => builder
                    .as_mut()
                    .unwrap()
                    .feed(tensor, offset, bytes)
                    .unwrap(),
                Event::Done => {}
            }
        }
        builder.unwrap().finish().unwrap()
    }
    let mut p = GenParams {
        max_tokens: 2,
        ..Default::default()
    };
    p.sampler.temperature = 0.0;
    let mut e = load().await;
    e.generate(&[5, 6, 7], &p, |_| true).await.unwrap();
    // Loads in one worker share the device and its pipelines: nothing compiled twice.
    let beside = load().await;
    assert!(std::sync::Arc::ptr_eq(
        &e.gpu.pipelines,
        &beside.gpu.pipelines
    ));
    drop(beside);
    e.gpu.device.destroy();
    // Let the browser deliver `device.lost`.
    let tick = js_sys::Promise::new(&mut |resolve, _| {
        let global = js_sys::global();
        let set_timeout: js_sys::Function = js_sys::Reflect::get(&global, &"setTimeout".into())
            .unwrap()
            .unchecked_into();
        let _ = set_timeout.call2(&global, &resolve, &50.into());
    });
    let _ = wasm_bindgen_futures::JsFuture::from(tick).await;
    let err = e
        .generate(&[5, 6, 7, 8], &p, |_| true)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("device was lost"), "{err}");
    // The next load opens a new device.
    let mut again = load().await;
    assert!(!std::sync::Arc::ptr_eq(
        &e.gpu.pipelines,
        &again.gpu.pipelines
    ));
    again.generate(&[5, 6, 7], &p, |_| true).await.unwrap();
}

async fn load_with(options: &js_sys::Object) -> Result<WasmEngine, String> {
    let noop = Closure::<dyn FnMut(JsValue)>::new(|_| {});
    WasmEngine::load(
        Uint8Array::from(GGUF).into(),
        JsValue::from(options.clone()),
        noop.as_ref().unchecked_ref::<Function>().clone(),
        &CancelToken::new(),
    )
    .await
    .map_err(|e| String::from(e.unchecked_into::<js_sys::Error>().message()))
}

/// `maxGpuBytes` (the npm package's load option) reaches the header-time GPU budget check.
#[wasm_bindgen_test]
async fn max_gpu_bytes_option_is_enforced() {
    let opts = |v: JsValue| {
        let o = js_sys::Object::new();
        js_sys::Reflect::set(&o, &"contextLength".into(), &64.into()).unwrap();
        js_sys::Reflect::set(&o, &"maxGpuBytes".into(), &v).unwrap();
        o
    };
    let err = match load_with(&opts(1024.into())).await {
        Ok(_) => panic!("a model over maxGpuBytes loaded"),
        Err(e) => e,
    };
    assert!(
        err.contains("over the limit of 1024") && err.contains("smaller context"),
        "{err}"
    );
    for bad in [
        JsValue::from("lots"),
        (-1).into(),
        1.5.into(),
        f64::NAN.into(),
    ] {
        let err = match load_with(&opts(bad.clone())).await {
            Ok(_) => panic!("maxGpuBytes {bad:?} was accepted"),
            Err(e) => e,
        };
        assert!(err.contains("maxGpuBytes must be a whole number"), "{err}");
    }
    assert!(load_with(&opts(1e9.into())).await.is_ok());
    assert!(load_with(&opts(JsValue::UNDEFINED)).await.is_ok());
}

/// 200 short generations in the browser: GPU buffer count and bytes and the wasm memory are the
/// same at the end as after the warm-up (numbers in the README).
#[wasm_bindgen_test]
async fn two_hundred_generations_hold_memory_flat() {
    let gpu = Gpu::new().await.expect("the browser offers WebGPU");
    let mut stream = GgufStream::with_file_size(Some(GGUF.len() as u64));
    let mut builder = None;
    let mut gpu = Some(gpu);
    let opts = LoadOptions {
        context: Some(128),
        batch: 8,
        ..Default::default()
    };
    for ev in stream.push(GGUF).unwrap() {
        match ev {
            Event::Header(h) => {
                builder = Some(EngineBuilder::new(gpu.take().unwrap(), h, opts.clone()).unwrap())
            }
            Event::TensorData {
                tensor,
                offset,
                bytes,
            } => builder
                .as_mut()
                .unwrap()
                .feed(tensor, offset, bytes)
                .unwrap(),
            Event::Done => {}
        }
    }
    let mut e = builder.unwrap().finish().unwrap();
    let wasm_bytes = || {
        wasm_bindgen::memory()
            .unchecked_into::<js_sys::WebAssembly::Memory>()
            .buffer()
            .unchecked_into::<js_sys::ArrayBuffer>()
            .byte_length() as u64
    };
    let run = |i: u64| {
        let len = 1 + (i % 7) as u32;
        let prompt: Vec<u32> = (0..len)
            .map(|j| 5 + ((i * 31 + j as u64 * 7) % 400) as u32)
            .collect();
        let mut p = GenParams {
            max_tokens: 1 + (i % 4) as u32,
            ignore_eog: true,
            ..Default::default()
        };
        p.sampler.temperature = if i.is_multiple_of(3) { 0.0 } else { 0.8 };
        p.sampler.seed = Some(i);
        (prompt, p)
    };
    for i in 0..20 {
        let (prompt, p) = run(i);
        e.generate(&prompt, &p, |_| true).await.unwrap();
    }
    let start = (e.gpu.buffers_in_use(), e.gpu.bytes_in_use(), wasm_bytes());
    for i in 0..200 {
        let (prompt, p) = run(1000 + i);
        e.generate(&prompt, &p, |_| true).await.unwrap();
        if i.is_multiple_of(5) {
            e.reset();
        }
    }
    let end = (e.gpu.buffers_in_use(), e.gpu.bytes_in_use(), wasm_bytes());
    web_sys::console::log_1(
        &format!(
            "browser soak: 200 generations; GPU buffers {} -> {}, bytes {} -> {}, wasm memory {} -> {}",
            start.0, end.0, start.1, end.1, start.2, end.2
        )
        .into(),
    );
    assert_eq!(start, end, "GPU buffers, GPU bytes, wasm memory");
}

#[path = "support/dts.rs"]
mod dts;

/// The model catalog through the wasm API: `models()` lists every entry as index.d.ts declares
/// it, `checkFit` checks one against SwiftShader's adapter (1 GiB bindings: SmolLM2-135M fits at
/// the browser's default context, and at the context asked for), a memory budget below its
/// weights makes it not fit with the reason, and an unknown name is refused.
#[wasm_bindgen_test]
async fn wasm_catalog_lists_models_and_checks_the_fit() {
    let d = dts::Dts::parse(include_str!("../www/attend-llm/index.d.ts"));
    let models: serde_json::Value =
        serde_wasm_bindgen::from_value(attend::wasm::models().unwrap()).unwrap();
    let list = models.as_array().unwrap();
    assert_eq!(list.len(), attend::catalog::models().len());
    for m in list {
        let errs = d.check("CatalogModel", m);
        assert!(errs.is_empty(), "{}\n{m:#}", errs.join("\n"));
    }
    // A plain JS object, as a page would pass it.
    let js = |v: serde_json::Value| js_sys::JSON::parse(&v.to_string()).unwrap();
    let fit = |name: &str, options: serde_json::Value| {
        attend::wasm::check_fit(name.to_string(), js(options))
    };
    let f: serde_json::Value = serde_wasm_bindgen::from_value(
        fit("SmolLM2-135M-Instruct", serde_json::json!({}))
            .await
            .unwrap(),
    )
    .unwrap();
    assert!(d.check("ModelFit", &f).is_empty(), "{f:#}");
    assert_eq!(
        (f["fits"].as_bool(), f["context"].as_u64()),
        (Some(true), Some(4096)),
        "{f:#}"
    );
    let f: serde_json::Value = serde_wasm_bindgen::from_value(
        fit(
            "SmolLM2-135M-Instruct",
            serde_json::json!({"contextLength": 1024, "maxGpuBytes": 50_000_000}),
        )
        .await
        .unwrap(),
    )
    .unwrap();
    assert!(d.check("ModelFit", &f).is_empty(), "{f:#}");
    assert_eq!(
        (f["fits"].as_bool(), f["requested_context"].as_u64()),
        (Some(false), Some(1024)),
        "{f:#}"
    );
    assert!(
        f["reason"]
            .as_str()
            .unwrap()
            .contains("over the limit of 50000000"),
        "{f:#}"
    );
    let e = fit("no-such-model", serde_json::json!({}))
        .await
        .unwrap_err();
    assert!(
        format!("{e:?}").contains("not in the model catalog"),
        "{e:?}"
    );
}
