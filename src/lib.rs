//! attend: run pretrained LLMs (GGUF) on WebGPU — natively through wgpu and in the browser.
//!
//! Layers, bottom up: [`gpu`] (device, pipeline cache, buffer pool, one command encoder per forward
//! pass), [`kernels`] (one file per WGSL kernel family in `shaders/`), [`quant`] and [`weights`]
//! (GGUF block formats on the CPU and on the GPU), [`gguf`] (the file format), [`tokenizer`],
//! [`model`] (architectures over the kernels), [`chat`] / [`sampler`] / [`stop`] / [`openai`]
//! (templates, sampling, stopping, the OpenAI-shaped API), [`engine`] (the generation loop) and
//! [`push`] (streamed loading of one GGUF or its shards). The browser API lives in `wasm` (wasm32
//! only).

pub mod bench;
pub mod catalog;
pub mod chat;
pub mod constrain;
pub mod device_lost;
pub mod download;
pub mod engine;
pub mod error;
pub mod gguf;
pub mod gpu;
pub mod kernels;
pub mod model;
pub mod openai;
pub mod push;
pub mod quant;
pub mod sampler;
pub mod stop;
pub mod tokenizer;
#[cfg(target_arch = "wasm32")]
pub mod wasm;
pub mod weights;

pub use error::{Error, Result};
pub use gpu::Gpu;

/// One diagnostic line: standard error natively, the console in the browser.
pub fn log_line(msg: &str) {
    #[cfg(target_arch = "wasm32")]
    web_sys::console::log_1(&msg.into());
    #[cfg(not(target_arch = "wasm32"))]
    eprintln!("{msg}");
}

/// A native process's `ATTEND_*` switch: `Some(true)` for "1", `Some(false)` for "0", else
/// `None` (always `None` in a browser, which has no environment).
pub(crate) fn env_switch(name: &str) -> Option<bool> {
    #[cfg(not(target_arch = "wasm32"))]
    match std::env::var(name).as_deref() {
        Ok("1") => return Some(true),
        Ok("0") => return Some(false),
        _ => {}
    }
    let _ = name;
    None
}
