//! Per-kernel GPU time from timestamp queries (`attend bench --profile`, `engine.bench({profile:
//! true})`). While profiling is on, every dispatch gets its own compute pass whose begin and end
//! write a timestamp; each submit resolves its timestamps into a readback buffer of its own, and
//! [`Profiler::take`] maps them (awaiting, so it works in a browser too) and sums them per pass
//! kind and kernel. Profiling changes what it measures a little (a pass per dispatch), so it is
//! never on in normal runs and the bench's speed figures come from runs without it.

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

/// One profiled submit whose timestamps are still on the GPU: its pass kind, the kernel of each
/// timed dispatch, and the buffer its timestamps were copied to.
struct Pending {
    pass: String,
    labels: Vec<String>,
    ticks: wgpu::Buffer,
}

pub(crate) struct Profiler {
    set: wgpu::QuerySet,
    resolve: wgpu::Buffer,
    pending: Mutex<Vec<Pending>>,
}

impl Profiler {
    pub(crate) fn new(device: &wgpu::Device) -> Profiler {
        Profiler {
            set: device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("profile timestamps"),
                ty: wgpu::QueryType::Timestamp,
                count: MAX_QUERIES,
            }),
            resolve: device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("profile resolve"),
                size: MAX_QUERIES as u64 * 8,
                usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            }),
            pending: Mutex::new(Vec::new()),
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

    /// Before the submit: copy the timestamps of the dispatches labelled `labels` into a readback
    /// buffer of this submit's own (the query set is reused by the next one), kept for
    /// [`take`](Self::take).
    pub(crate) fn resolve(
        &self,
        device: &wgpu::Device,
        enc: &mut wgpu::CommandEncoder,
        pass: &str,
        labels: &[String],
    ) {
        let n = labels.len() as u32;
        if n == 0 {
            return;
        }
        let ticks = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("profile readback"),
            size: 16 * n as u64,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        enc.resolve_query_set(&self.set, 0..2 * n, &self.resolve, 0);
        enc.copy_buffer_to_buffer(&self.resolve, 0, &ticks, 0, 16 * n as u64);
        self.pending.lock().unwrap().push(Pending {
            pass: pass.to_string(),
            labels: labels.to_vec(),
            ticks,
        });
    }

    /// The time of every dispatch profiled so far, summed per (pass kind, kernel), largest
    /// first; starts over.
    pub(crate) async fn take(&self, gpu: &super::Gpu) -> crate::Result<Vec<KernelTime>> {
        let pending = std::mem::take(&mut *self.pending.lock().unwrap());
        let period = gpu.queue.get_timestamp_period() as f64;
        let mut totals: BTreeMap<(String, String), (u64, f64)> = BTreeMap::new();
        for p in pending {
            let ticks = gpu
                .read_mapped::<u64>(&p.ticks, 2 * p.labels.len(), None)
                .await;
            p.ticks.destroy();
            let ticks = ticks?;
            for (i, label) in p.labels.into_iter().enumerate() {
                let ns = ticks[2 * i + 1].saturating_sub(ticks[2 * i]) as f64 * period;
                let e = totals.entry((p.pass.clone(), label)).or_default();
                e.0 += 1;
                e.1 += ns / 1e6;
            }
        }
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
        Ok(v)
    }
}
