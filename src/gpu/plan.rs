//! A forward pass built once and replayed: the model records its decode pass through a capturing
//! [`Recorder`], which keeps every dispatch's pipeline, bind group, workgroup count and uniform
//! parameters. Replaying it for the next token only rewrites the words that hold the position
//! (marked by the kernels with [`Recorder::mark_position`]) and encodes the kept commands: no model
//! code, pipeline lookup, parameter building or bind-group lookup runs per token.

use super::recorder::{Op, Patch};
use super::Gpu;
use std::sync::Arc;

pub struct Plan {
    label: String,
    ops: Vec<Op>,
    /// Uniform chunks with their bytes; `written` once the unpatched bytes are on the GPU.
    uniforms: Vec<(wgpu::Buffer, Vec<u8>)>,
    written: bool,
    patches: Vec<Patch>,
    /// Pool buffers the pass uses (split-K partials), held while the plan lives.
    temps: Vec<wgpu::Buffer>,
    /// Dispatches per replay.
    pub dispatches: u32,
}

impl Plan {
    pub(crate) fn new(
        label: String,
        ops: Vec<Op>,
        uniforms: Vec<(wgpu::Buffer, Vec<u8>)>,
        patches: Vec<Patch>,
        temps: Vec<wgpu::Buffer>,
        dispatches: u32,
    ) -> Plan {
        Plan {
            label,
            ops,
            uniforms,
            written: false,
            patches,
            temps,
            dispatches,
        }
    }

    /// Position words rewritten per replay.
    pub fn patches(&self) -> usize {
        self.patches.len()
    }

    /// Write the parameters for position `pos` and encode the pass into a new encoder (the caller
    /// may add copies, then submits it).
    pub fn encode(&mut self, gpu: &Gpu, pos: u32) -> wgpu::CommandEncoder {
        let mut dirty = vec![!self.written; self.uniforms.len()];
        for p in &self.patches {
            let staged = &mut self.uniforms[p.chunk].1;
            staged[p.at..p.at + 4].copy_from_slice(&pos.wrapping_add(p.delta).to_le_bytes());
            dirty[p.chunk] = true;
        }
        for ((buf, staged), dirty) in self.uniforms.iter().zip(dirty) {
            if dirty {
                gpu.queue.write_buffer(buf, 0, staged);
            }
        }
        self.written = true;

        let mut encoder = gpu
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some(&self.label),
            });
        let mut ops = self.ops.iter().peekable();
        while let Some(op) = ops.next() {
            match op {
                Op::Dispatch { .. } => {
                    // A run of dispatches shares one compute pass; a pipeline set stays set.
                    let mut pass =
                        encoder.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
                    let mut current: Option<&Arc<wgpu::ComputePipeline>> = None;
                    let mut next = Some(op);
                    while let Some(Op::Dispatch {
                        pipeline,
                        group,
                        workgroups,
                    }) = next
                    {
                        if !current.is_some_and(|c| Arc::ptr_eq(c, pipeline)) {
                            pass.set_pipeline(pipeline);
                            current = Some(pipeline);
                        }
                        pass.set_bind_group(0, group, &[]);
                        pass.dispatch_workgroups(workgroups[0], workgroups[1], workgroups[2]);
                        next = ops.next_if(|o| matches!(o, Op::Dispatch { .. }));
                    }
                }
                Op::Copy {
                    src,
                    src_offset,
                    dst,
                    dst_offset,
                    size,
                } => encoder.copy_buffer_to_buffer(src, *src_offset, dst, *dst_offset, *size),
                Op::Clear { buf, offset, size } => encoder.clear_buffer(buf, *offset, Some(*size)),
            }
        }
        encoder
    }

    /// Give the plan's pool buffers back (call before dropping a plan whose `Gpu` lives on).
    pub fn release(mut self, gpu: &Gpu) {
        for (buf, _) in self.uniforms.drain(..) {
            gpu.pool.give(buf);
        }
        for buf in self.temps.drain(..) {
            gpu.pool.give(buf);
        }
    }
}
