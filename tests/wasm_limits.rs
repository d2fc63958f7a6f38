//! Limits and faults where `usize` is 32 bits (headless Chromium, WebGPU on SwiftShader): a
//! truncated model loaded from an ArrayBuffer is refused from its header (the loader knows the
//! size), a matrix whose row is 4 GiB is an error instead of a wrapped size and a trap, and a lost
//! device is reported as such. Browser-only.
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
/// the model again (the browser reports the loss between tasks), and a new engine works.
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
    load()
        .await
        .generate(&[5, 6, 7], &p, |_| true)
        .await
        .unwrap();
}
