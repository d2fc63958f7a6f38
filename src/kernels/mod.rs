//! One file per kernel family: each binds and dispatches the matching `shaders/*.wgsl`.
//! Kernels only record into a [`Recorder`](crate::gpu::Recorder); they never submit or wait.
//!
//! Conventions shared by every kernel: activations are f32, row-major, contiguous; a kernel's
//! uniform parameters sit at `@binding(0)` and its storage buffers at `@binding(1..)` in the order
//! the Rust function takes them; grids larger than 65535 workgroups fold into (x, y) via
//! [`grid`](crate::gpu::grid).

pub mod argmax;
pub mod attention;
pub mod elementwise;
pub mod embedding;
pub mod matmul;
pub mod matvec;
pub mod norm;
pub mod rope;
pub mod softmax;
