//! Memory-bandwidth probes (`shaders/bandwidth.wgsl`) for `attend bench`: the read bandwidth a
//! shader gets on this adapter (the roofline a decode step is compared with) and the speed of
//! `copy_buffer_to_buffer`. Timed on the wall clock around a submit and a 4-byte readback, the
//! same way the engine's own tokens are timed, so the two are comparable.

use crate::engine::now_s;
use crate::gpu::{grid, Arg, Gpu, Shader};
use crate::Result;

pub(crate) static SHADER: Shader = crate::include_shader!("bandwidth");
/// With the 32-byte read (`shaders/bandwidth64.wgsl`), where [`Gpu::wide_loads`] holds.
pub(crate) static SHADER64: Shader =
    crate::include_shader!("bandwidth64": "bandwidth", "bandwidth64");

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    stride: u32,
    _pad: [u32; 2],
}

/// (workgroup size, vec4 reads per invocation) of the read kernels tried.
const VARIANTS: [(u32, u32); 5] = [(256, 1), (256, 4), (64, 4), (64, 16), (256, 16)];

/// Bandwidth figures in GB/s (1e9 bytes per second).
#[derive(Clone, Debug, serde::Serialize)]
pub struct Bandwidth {
    /// The fastest read kernel: bytes read per second.
    pub read_gb_s: f64,
    /// Which read kernel that was: "wg=W,per=P,load=B" (B: bytes per load, 16 or 32).
    pub read_kernel: String,
    /// `copy_buffer_to_buffer`: bytes read plus bytes written per second.
    pub buffer_copy_gb_s: f64,
    /// Bytes of the buffer read.
    pub bytes: u64,
}

/// Median seconds of `reps` timed runs of `record` (after one warm-up run).
async fn time(gpu: &Gpu, sink: &wgpu::Buffer, reps: usize, record: impl Fn()) -> Result<f64> {
    let mut t = Vec::new();
    for r in 0..=reps {
        let t0 = now_s();
        record();
        gpu.read::<u32>(sink, 0, 1).await?; // waits for the work before it
        if r > 0 {
            t.push(now_s() - t0);
        }
    }
    t.sort_by(|a, b| a.total_cmp(b));
    Ok(t[t.len() / 2])
}

/// Measure on a buffer of up to `bytes` (capped by the adapter's binding limit).
pub async fn measure(gpu: &Gpu, bytes: u64) -> Result<Bandwidth> {
    let bytes = bytes.min(gpu.caps().max_binding).min(gpu.caps().max_buffer) / 32 * 32;
    let src = gpu.storage("bandwidth src", bytes)?;
    let dst = gpu.storage("bandwidth dst", bytes)?;
    // One word per invocation: at most one per 16-byte vec4 (the narrow kernels with PER 1).
    let sink = gpu.storage("bandwidth sink", bytes / 16 * 4)?;
    let max_dim = gpu.caps().max_workgroups_per_dim;
    let mut best = (0.0, String::new());
    // 16-byte reads everywhere; 32-byte ones too where the matvecs use them.
    let widths: &[(u64, &Shader, &str)] = if gpu.wide_loads() {
        &[
            (16, &SHADER, "read_stream"),
            (32, &SHADER64, "read_stream64"),
        ]
    } else {
        &[(16, &SHADER, "read_stream")]
    };
    for &(width, shader, entry) in widths {
        let n = (bytes / width) as u32;
        for (wg, per) in VARIANTS {
            if wg > gpu.caps().max_invocations {
                continue;
            }
            let stride = n.div_ceil(per);
            let params = Params {
                n,
                stride,
                _pad: [0; 2],
            };
            let s = time(gpu, sink.raw(), 3, || {
                let mut rec = gpu.recorder("bandwidth");
                rec.dispatch(
                    shader,
                    entry,
                    &[("WG", wg as f64), ("PER", per as f64)],
                    &params,
                    &[Arg::from(&src), Arg::from(&sink)],
                    grid(stride.div_ceil(wg), max_dim),
                );
                rec.submit();
            })
            .await?;
            let gb_s = bytes as f64 / s / 1e9;
            if gb_s > best.0 {
                best = (gb_s, format!("wg={wg},per={per},load={width}B"));
            }
        }
    }
    let s = time(gpu, sink.raw(), 3, || {
        let mut rec = gpu.recorder("buffer copy");
        rec.copy(src.raw(), 0, dst.raw(), 0, bytes);
        rec.submit();
    })
    .await?;
    Ok(Bandwidth {
        read_gb_s: best.0,
        read_kernel: best.1,
        buffer_copy_gb_s: 2.0 * bytes as f64 / s / 1e9,
        bytes,
    })
}
