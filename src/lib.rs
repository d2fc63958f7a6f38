//! attend: run pretrained LLMs (GGUF) on WebGPU — natively through wgpu and in the browser.
//!
//! Layers, bottom up: [`gpu`] (device, pipeline cache, buffer pool, one command encoder per forward
//! pass), [`kernels`] (one file per WGSL kernel family in `shaders/`), [`quant`] (GGUF block formats
//! on the CPU: reference quantizers and dequantizers).

pub mod chat;
pub mod error;
pub mod gguf;
pub mod gpu;
pub mod kernels;
pub mod quant;
pub mod sampler;
pub mod stop;
pub mod weights;

pub use error::{Error, Result};
pub use gpu::Gpu;
