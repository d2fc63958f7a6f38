//! Per-kernel GPU time from timestamp queries (`attend bench --profile`). While profiling is on,
//! every dispatch gets its own compute pass whose begin and end write a timestamp; after each
//! submit the timestamps are read back (blocking, native only) and summed per pass kind and
//! kernel. Profiling changes what it measures a little (a pass per dispatch), so it is never on
//! in normal runs and the bench's speed figures come from runs without it.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// Timestamps one submit may write (two per dispatch); later dispatches go unprofiled.
const MAX_QUERIES: u32 = 4096;

/// Time spent in one kernel (entry point and weight format) within one kind of pass.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct KernelTime {
    pub pass: String,
    pub kernel: String,
    pub calls: u64,
    pub ms: f64,
}

pub(crate) struct Profiler {
    set: wgpu::QuerySet,
    resolve: wgpu::Buffer,
    readback: wgpu::Buffer,
    totals: Mutex<BTreeMap<(String, String), (u64, f64)>>,
}

impl Profiler {
    pub(crate) fn new(device: &wgpu::Device) -> Profiler {
        let bytes = MAX_QUERIES as u64 * 8;
        Profiler {
            set: device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("profile timestamps"),
                ty: wgpu::QueryType::Timestamp,
                count: MAX_QUERIES,
            }),
            resolve: device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("profile resolve"),
                size: bytes,
                usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            }),
            readback: device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("profile readback"),
                size: bytes,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }),
            totals: Mutex::new(BTreeMap::new()),
        }
    }

    /// The timestamp writes for dispatch number `i` of a submit, if there is room for it.
    pub(crate) fn writes(&self, i: u32) -> Option<wgpu::ComputePassTimestampWrites<'_>> {
        (2 * i + 1 < MAX_QUERIES).then_some(wgpu::ComputePassTimestampWrites {
            query_set: &self.set,
            beginning_of_pass_write_index: Some(2 * i),
            end_of_pass_write_index: Some(2 * i + 1),
        })
    }

    /// Copy the timestamps of `n` profiled dispatches to the readback buffer.
    pub(crate) fn resolve(&self, enc: &mut wgpu::CommandEncoder, n: u32) {
        if n > 0 {
            enc.resolve_query_set(&self.set, 0..2 * n, &self.resolve, 0);
            enc.copy_buffer_to_buffer(&self.resolve, 0, &self.readback, 0, 16 * n as u64);
        }
    }

    /// After the submit: wait for it, read the timestamps and add each dispatch's time to its
    /// kernel's total.
    pub(crate) fn collect(&self, gpu: &super::Gpu, pass: &str, labels: &[String]) {
        if labels.is_empty() {
            return;
        }
        let bytes = 16 * labels.len() as u64;
        let slice = self.readback.slice(..bytes);
        slice.map_async(wgpu::MapMode::Read, |_| {});
        gpu.wait();
        let period = gpu.queue.get_timestamp_period() as f64;
        {
            let Ok(view) = slice.get_mapped_range() else {
                return;
            };
            let ticks: &[u64] = bytemuck::cast_slice(&view);
            let mut totals = self.totals.lock().unwrap();
            for (i, label) in labels.iter().enumerate() {
                let ns = ticks[2 * i + 1].saturating_sub(ticks[2 * i]) as f64 * period;
                let e = totals.entry((pass.to_string(), label.clone())).or_default();
                e.0 += 1;
                e.1 += ns / 1e6;
            }
        }
        self.readback.unmap();
    }

    /// Totals so far, largest first, and start over.
    pub(crate) fn take(&self) -> Vec<KernelTime> {
        let totals = std::mem::take(&mut *self.totals.lock().unwrap());
        let mut v: Vec<KernelTime> = totals
            .into_iter()
            .map(|((pass, kernel), (calls, ms))| KernelTime {
                pass,
                kernel,
                calls,
                ms,
            })
            .collect();
        v.sort_by(|a, b| b.ms.total_cmp(&a.ms));
        v
    }
}
