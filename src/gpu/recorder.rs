//! Records a whole forward pass into one command encoder and one compute pass, then submits once.
//! Per-dispatch parameters go into a few pooled uniform buffers written just before the submit:
//! no buffer is created per dispatch and nothing is polled between kernels.

use super::{Buffer, Gpu, Shader};
use std::collections::HashMap;
use std::num::NonZeroU64;
use std::sync::{Arc, Mutex};

/// What a bind group binds: the pipeline (its layout) and each binding's buffer, offset and size
/// (size 0: the whole buffer).
#[derive(PartialEq, Eq, Hash)]
pub(crate) struct BindKey {
    pipeline: usize,
    entries: Vec<(wgpu::Buffer, u64, u64)>,
}

/// Bind groups by what they bind. A forward pass binds the same buffers at the same uniform
/// offsets token after token (the uniform chunks come back from the pool in the same order), so
/// after the first token no bind group is created: only the parameter bytes change.
#[derive(Default)]
pub(crate) struct BindGroupCache {
    groups: Mutex<HashMap<BindKey, wgpu::BindGroup>>,
}

/// Entries kept at most; past it the cache starts over (it also holds its buffers alive).
const MAX_BIND_GROUPS: usize = 8192;

impl BindGroupCache {
    fn get(&self, key: &BindKey, make: impl FnOnce() -> wgpu::BindGroup) -> wgpu::BindGroup {
        let mut groups = self.groups.lock().unwrap();
        if let Some(g) = groups.get(key) {
            return g.clone();
        }
        if groups.len() >= MAX_BIND_GROUPS {
            groups.clear();
        }
        let g = make();
        groups.insert(
            BindKey {
                pipeline: key.pipeline,
                entries: key.entries.clone(),
            },
            g.clone(),
        );
        g
    }
}

/// One storage-buffer argument of a dispatch: a whole buffer or a byte range of it.
#[derive(Clone, Copy, Debug)]
pub enum Arg<'a> {
    Whole(&'a wgpu::Buffer),
    Range(&'a wgpu::Buffer, u64, u64),
}

impl<'a> From<&'a wgpu::Buffer> for Arg<'a> {
    fn from(b: &'a wgpu::Buffer) -> Self {
        Arg::Whole(b)
    }
}

impl<'a> From<&'a Buffer> for Arg<'a> {
    fn from(b: &'a Buffer) -> Self {
        Arg::Whole(b.raw())
    }
}

impl<'a> Arg<'a> {
    /// The buffer bound.
    pub fn buffer(&self) -> &'a wgpu::Buffer {
        match *self {
            Arg::Whole(b) | Arg::Range(b, ..) => b,
        }
    }

    fn resource(self) -> wgpu::BindingResource<'a> {
        match self {
            Arg::Whole(b) => b.as_entire_binding(),
            Arg::Range(b, offset, size) => wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                buffer: b,
                offset,
                size: NonZeroU64::new(size),
            }),
        }
    }
}

const UNIFORM_CHUNK: u64 = 64 * 1024;

/// One recorded command of a captured pass (see [`Plan`]).
pub(crate) enum Op {
    Dispatch {
        pipeline: Arc<wgpu::ComputePipeline>,
        group: wgpu::BindGroup,
        workgroups: [u32; 3],
    },
    Copy {
        src: wgpu::Buffer,
        src_offset: u64,
        dst: wgpu::Buffer,
        dst_offset: u64,
        size: u64,
    },
    Clear {
        buf: wgpu::Buffer,
        offset: u64,
        size: u64,
    },
}

/// A uniform word that holds a position: rewritten as `pos + delta` when a plan is replayed.
pub(crate) struct Patch {
    pub chunk: usize,
    pub at: usize,
    pub delta: u32,
}

/// The pipelines a collecting recorder was asked for: shader, entry point, override constants.
pub(crate) type Wanted = Vec<(Shader, String, Vec<(String, f64)>)>;

/// What a capturing recorder keeps instead of encoding.
struct Capture {
    pos: u32,
    ops: Vec<Op>,
    patches: Vec<Patch>,
}

pub struct Recorder<'g> {
    gpu: &'g Gpu,
    encoder: Option<wgpu::CommandEncoder>,
    pass: Option<wgpu::ComputePass<'static>>,
    /// Uniform chunks in use: (buffer, bytes staged for it).
    uniforms: Vec<(wgpu::Buffer, Vec<u8>)>,
    /// Dispatches recorded so far (for statistics and benchmarks).
    pub dispatches: u32,
    label: String,
    /// Kernel of each timed dispatch, while profiling.
    timed: Option<Vec<String>>,
    /// Pool buffers used by this pass only (split-K partials), given back after the submit.
    temps: Vec<wgpu::Buffer>,
    /// Where the last dispatch's parameters were staged (uniform chunk, byte offset).
    last_params: Option<(usize, usize)>,
    /// Set while capturing a [`Plan`]: commands are kept, not encoded.
    capture: Option<Capture>,
    /// Set by [`Recorder::collect`]: only the pipelines dispatches would use are noted.
    wanted: Option<Wanted>,
    /// (x, k, xq): `xq` holds the first `k` values of `x` quantized for the int8 matvecs, and
    /// nothing has been recorded since that could have changed either (see [`Recorder::quantized`]).
    quantized: Option<(wgpu::Buffer, u64, wgpu::Buffer)>,
}

impl<'g> Recorder<'g> {
    pub(crate) fn new(gpu: &'g Gpu, label: &str) -> Recorder<'g> {
        let encoder = gpu
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(label) });
        Recorder {
            gpu,
            encoder: Some(encoder),
            pass: None,
            uniforms: Vec::new(),
            dispatches: 0,
            label: label.to_string(),
            timed: gpu
                .profiling
                .load(std::sync::atomic::Ordering::Relaxed)
                .then(Vec::new),
            temps: Vec::new(),
            last_params: None,
            capture: None,
            wanted: None,
            quantized: None,
        }
    }

    /// A recorder that records nothing and only notes which pipelines its dispatches would use
    /// (see [`Recorder::into_wanted`]), so they can be created together, in parallel, up front.
    pub(crate) fn collect(gpu: &'g Gpu, label: &str) -> Recorder<'g> {
        let mut rec = Recorder::new(gpu, label);
        rec.encoder = None;
        rec.timed = None;
        rec.wanted = Some(Vec::new());
        rec
    }

    /// The pipelines a collecting recorder was asked for.
    pub(crate) fn into_wanted(mut self) -> Wanted {
        self.wanted.take().unwrap_or_default()
    }

    /// A recorder that captures a pass at position `pos` into a [`Plan`] (see
    /// [`Recorder::into_plan`]) instead of encoding it.
    pub(crate) fn capture(gpu: &'g Gpu, label: &str, pos: u32) -> Recorder<'g> {
        let mut rec = Recorder::new(gpu, label);
        rec.encoder = None;
        rec.timed = None;
        rec.capture = Some(Capture {
            pos,
            ops: Vec::new(),
            patches: Vec::new(),
        });
        rec
    }

    /// Say that the `u32` at byte `field` of the last dispatch's parameters is a position (the
    /// pass's position plus a constant): a replayed [`Plan`](super::Plan) rewrites it. Kernels whose
    /// parameters depend on the position call this after every dispatch.
    pub fn mark_position(&mut self, field: usize) {
        let (Some(cap), Some((chunk, offset))) = (&mut self.capture, self.last_params) else {
            return;
        };
        let at = offset + field;
        let staged = &self.uniforms[chunk].1;
        let value = u32::from_le_bytes(staged[at..at + 4].try_into().unwrap());
        cap.patches.push(Patch {
            chunk,
            at,
            delta: value.wrapping_sub(cap.pos),
        });
    }

    /// A pool buffer for this pass only; it goes back to the pool once the pass is submitted
    /// (or with the plan that captured it).
    pub fn temp(&mut self, size: u64, usage: wgpu::BufferUsages) -> wgpu::Buffer {
        let buf = self.gpu.pool.take(&self.gpu.device, size, usage);
        self.temps.push(buf.clone());
        buf
    }

    /// The captured pass (only for a recorder made by [`Recorder::capture`]).
    pub(crate) fn into_plan(mut self) -> super::Plan {
        let cap = self
            .capture
            .take()
            .expect("into_plan needs a capturing recorder");
        super::Plan::new(
            self.label.clone(),
            cap.ops,
            std::mem::take(&mut self.uniforms),
            cap.patches,
            std::mem::take(&mut self.temps),
            self.dispatches,
        )
    }

    pub fn gpu(&self) -> &'g Gpu {
        self.gpu
    }

    /// Whether `xq` already holds the first `k` values of `x` quantized for the int8 matvecs:
    /// the last thing recorded wrote them ([`Recorder::set_quantized`]), or only int8 matvecs
    /// reading `xq` came after it ([`Recorder::dispatch_reading_quantized`]). Any other
    /// dispatch, copy or clear forgets it, so a stale `xq` is never taken for a fresh one.
    pub fn quantized(&self, x: &wgpu::Buffer, k: u64, xq: &wgpu::Buffer) -> bool {
        self.quantized
            .as_ref()
            .is_some_and(|(x2, k2, xq2)| x2 == x && *k2 == k && xq2 == xq)
    }

    /// Forget what [`Recorder::quantized`] knows (a timing loop that wants each quantize recorded).
    pub fn forget_quantized(&mut self) {
        self.quantized = None;
    }

    /// Note that the dispatch just recorded wrote `x`'s first `k` values, quantized, into `xq`.
    pub fn set_quantized(&mut self, x: &wgpu::Buffer, k: u64, xq: &wgpu::Buffer) {
        self.quantized = Some((x.clone(), k, xq.clone()));
    }

    /// [`Recorder::dispatch`] for a kernel that writes neither a quantized `xq` nor its `x`
    /// (an int8 matvec): what [`Recorder::quantized`] knows stays true.
    pub fn dispatch_reading_quantized<P: bytemuck::Pod>(
        &mut self,
        shader: &Shader,
        entry: &str,
        constants: &[(&str, f64)],
        params: &P,
        buffers: &[Arg<'_>],
        workgroups: [u32; 3],
    ) {
        let kept = self.quantized.take();
        self.dispatch(shader, entry, constants, params, buffers, workgroups);
        self.quantized = kept;
    }

    /// Stage `params` and return (buffer index, offset, binding size).
    fn stage_params(&mut self, bytes: &[u8]) -> (usize, u64, u64) {
        let align = self.gpu.caps().uniform_align.max(16) as u64;
        let size = (bytes.len() as u64).div_ceil(16) * 16;
        let fits = |(_, staged): &(wgpu::Buffer, Vec<u8>)| {
            (staged.len() as u64).div_ceil(align) * align + size <= UNIFORM_CHUNK
        };
        if !self.uniforms.last().is_some_and(fits) {
            let usage = wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST;
            let buf = self.gpu.pool.take(&self.gpu.device, UNIFORM_CHUNK, usage);
            self.uniforms.push((buf, Vec::new()));
        }
        let idx = self.uniforms.len() - 1;
        let staged = &mut self.uniforms[idx].1;
        let offset = (staged.len() as u64).div_ceil(align) * align;
        staged.resize(offset as usize, 0);
        staged.extend_from_slice(bytes);
        staged.resize((offset + size) as usize, 0);
        (idx, offset, size)
    }

    /// Dispatch `entry` of `shader`. Binding 0 is the uniform `params` (omitted when `P` is
    /// zero-sized); `buffers` go to bindings 1, 2, … in order, and must be exactly the storage
    /// bindings the entry point uses.
    pub fn dispatch<P: bytemuck::Pod>(
        &mut self,
        shader: &Shader,
        entry: &str,
        constants: &[(&str, f64)],
        params: &P,
        buffers: &[Arg<'_>],
        workgroups: [u32; 3],
    ) {
        self.quantized = None;
        if let Some(wanted) = &mut self.wanted {
            let constants = constants.iter().map(|(k, v)| (k.to_string(), *v));
            wanted.push((*shader, entry.to_string(), constants.collect()));
            self.dispatches += 1;
            return;
        }
        let pipeline = self
            .gpu
            .pipelines
            .get(&self.gpu.device, shader, entry, constants);
        let bytes = bytemuck::bytes_of(params);
        let uniform = (!bytes.is_empty()).then(|| self.stage_params(bytes));
        self.last_params = uniform.map(|(idx, offset, _)| (idx, offset as usize));
        let mut key = BindKey {
            pipeline: Arc::as_ptr(&pipeline) as usize,
            entries: Vec::with_capacity(buffers.len() + 1),
        };
        if let Some((idx, offset, size)) = uniform {
            key.entries
                .push((self.uniforms[idx].0.clone(), offset, size));
        }
        for b in buffers {
            key.entries.push(match *b {
                Arg::Whole(buf) => (buf.clone(), 0, 0),
                Arg::Range(buf, offset, size) => (buf.clone(), offset, size),
            });
        }
        let bind_group = self.gpu.bind_groups.get(&key, || {
            let mut entries = Vec::with_capacity(buffers.len() + 1);
            if let Some((idx, offset, size)) = uniform {
                entries.push(wgpu::BindGroupEntry {
                    binding: 0,
                    resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                        buffer: &self.uniforms[idx].0,
                        offset,
                        size: NonZeroU64::new(size),
                    }),
                });
            }
            for (i, b) in buffers.iter().enumerate() {
                entries.push(wgpu::BindGroupEntry {
                    binding: i as u32 + 1,
                    resource: b.resource(),
                });
            }
            self.gpu
                .device
                .create_bind_group(&wgpu::BindGroupDescriptor {
                    label: Some(entry),
                    layout: &pipeline.get_bind_group_layout(0),
                    entries: &entries,
                })
        });
        if let Some(cap) = &mut self.capture {
            cap.ops.push(Op::Dispatch {
                pipeline,
                group: bind_group,
                workgroups,
            });
            self.dispatches += 1;
            return;
        }
        let writes = match &mut self.timed {
            Some(timed) => {
                // A pass per dispatch, timestamps at its begin and end.
                let writes = self
                    .gpu
                    .profiler
                    .get()
                    .and_then(|p| p.writes(timed.len() as u32));
                if writes.is_some() {
                    self.pass = None;
                    timed.push(kernel_label(entry, constants));
                }
                writes
            }
            None => None,
        };
        let pass = self.pass.get_or_insert_with(|| {
            self.encoder
                .as_mut()
                .expect("recorder already submitted")
                .begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: None,
                    timestamp_writes: writes,
                })
                .forget_lifetime()
        });
        pass.set_pipeline(&pipeline);
        pass.set_bind_group(0, &bind_group, &[]);
        pass.dispatch_workgroups(workgroups[0], workgroups[1], workgroups[2]);
        self.dispatches += 1;
    }

    fn encoder(&mut self) -> &mut wgpu::CommandEncoder {
        self.pass = None; // a copy cannot happen inside a compute pass
        self.encoder.as_mut().expect("recorder already submitted")
    }

    /// Copy `size` bytes (a multiple of 4) between buffers, ordered with the dispatches around it.
    pub fn copy(
        &mut self,
        src: &wgpu::Buffer,
        src_offset: u64,
        dst: &wgpu::Buffer,
        dst_offset: u64,
        size: u64,
    ) {
        self.quantized = None;
        if self.wanted.is_some() {
            return;
        }
        if let Some(cap) = &mut self.capture {
            cap.ops.push(Op::Copy {
                src: src.clone(),
                src_offset,
                dst: dst.clone(),
                dst_offset,
                size,
            });
            return;
        }
        self.encoder()
            .copy_buffer_to_buffer(src, src_offset, dst, dst_offset, size);
    }

    /// Zero `size` bytes (a multiple of 4) of `buf` from `offset`.
    pub fn clear(&mut self, buf: &wgpu::Buffer, offset: u64, size: u64) {
        self.quantized = None;
        if self.wanted.is_some() {
            return;
        }
        if let Some(cap) = &mut self.capture {
            cap.ops.push(Op::Clear {
                buf: buf.clone(),
                offset,
                size,
            });
            return;
        }
        self.encoder().clear_buffer(buf, offset, Some(size));
    }

    /// Write the staged parameters and submit everything as one command buffer.
    pub fn submit(self) {
        self.submit_indexed();
    }

    /// [`submit`](Self::submit), returning the submission (to wait for it alone).
    pub fn submit_indexed(mut self) -> wgpu::SubmissionIndex {
        self.pass = None;
        let mut encoder = self.encoder.take().expect("recorder already submitted");
        let profiler = self.gpu.profiler.get().filter(|_| self.timed.is_some());
        if let (Some(p), Some(timed)) = (profiler, &self.timed) {
            p.resolve(&self.gpu.device, &mut encoder, &self.label, timed);
        }
        for (buf, staged) in &self.uniforms {
            self.gpu.queue.write_buffer(buf, 0, staged);
        }
        let index = self.gpu.queue.submit([encoder.finish()]);
        for (buf, _) in self.uniforms.drain(..) {
            self.gpu.pool.give(buf);
        }
        for buf in self.temps.drain(..) {
            self.gpu.pool.give(buf);
        }
        index
    }
}

/// A profile row's kernel name: the entry point, the weight format it reads, if any, and the
/// epilogues it runs (a GLU, a folded norm read or written).
fn kernel_label(entry: &str, constants: &[(&str, f64)]) -> String {
    let mut label = entry.to_string();
    let on = |name: &str| constants.iter().any(|&(k, v)| k == name && v != 0.0);
    if let Some(&(_, t)) = constants.iter().find(|(k, _)| *k == "TYPE") {
        if let Ok(t) = crate::quant::GgmlType::from_u32(t as u32) {
            label = format!("{label} {}", t.name());
        }
    }
    for (name, tag) in [
        ("GLU", "glu"),
        ("NORM_IN", "norm-in"),
        ("NORM_OUT", "norm-out"),
    ] {
        if on(name) {
            label = format!("{label} {tag}");
        }
    }
    label
}

impl Drop for Recorder<'_> {
    fn drop(&mut self) {
        // Dropped without submit (e.g. an error mid-pass): give the uniform chunks back.
        self.pass = None;
        for (buf, _) in self.uniforms.drain(..) {
            self.gpu.pool.give(buf);
        }
        for buf in self.temps.drain(..) {
            self.gpu.pool.give(buf);
        }
    }
}
