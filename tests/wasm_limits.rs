//! Size checks where `usize` is 32 bits (headless Chromium, WebGPU on SwiftShader): a truncated
//! model loaded from an ArrayBuffer is refused from its header (the loader knows the size), and a
//! matrix whose row is 4 GiB is an error instead of a wrapped size and a trap. Browser-only.
#![cfg(target_arch = "wasm32")]

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
