//! Kernel suite: every WGSL kernel against a plain-Rust CPU reference on random data.
//! Runs natively (`cargo test`, lavapipe in CI) and in headless Chromium
//! (`cargo test --target wasm32-unknown-unknown`, WebGPU on SwiftShader) from the same source.

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

#[macro_use]
mod common;

mod argmax;
mod attention;
mod blocks;
mod elementwise;
mod embedding;
mod fold;
mod gpu_layer;
mod kv_layout;
mod matmul;
mod matvec;
mod matvec_i8;
mod norm;
mod packed_k;
mod rope;
mod subgroups;
mod topk;
