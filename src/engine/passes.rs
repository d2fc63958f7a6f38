//! The forward passes of generation. Prefill chunks are recorded as they come; a decode step is
//! replayed from a [`Plan`] built once per attention shape (only its position words change); and
//! results come back through readback buffers kept for the engine's life. Greedy decoding keeps
//! the picked token on the GPU (the argmax is copied into the next pass's input), so the pass of
//! token t+1 is submitted before token t is read. Sampled decoding and logprobs read the GPU's
//! sampling candidates (a few hundred bytes) and fall back to the logits row only when those do
//! not decide.

use super::{now_s, Engine};
use crate::gpu::{Buffer, Gpu, Plan};
use crate::kernels::topk;
use crate::model::{Logits, Model, Tail};
use crate::sampler::Candidates;
use crate::{Error, Result};

/// Decode plans kept at once (one per attention shape; beyond 1024 keys the shape changes every
/// 64 positions, so a few recent ones suffice).
const MAX_PLANS: usize = 4;

/// A decode plan's identity: the model's attention shape at the position and what follows the
/// logits.
type PlanKey = ([u32; 2], Tail);

/// What a pass copies out for the CPU, in the same submission.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Fetch {
    Nothing,
    /// The greedy pick (`scratch.next`) into ring slot `n`.
    Next(usize),
    /// The first logits row.
    Logits,
    /// The sampling candidates (`scratch.cands`).
    Candidates,
}

/// The token a pass starts from.
#[derive(Clone, Copy, Debug)]
pub(super) enum Input<'a> {
    Ids(&'a [u32]),
    /// One token already in `scratch.ids`: the previous pass's greedy pick.
    OnGpu,
}

pub(super) struct Passes {
    plans: std::cell::RefCell<Vec<(PlanKey, Plan)>>,
    /// Decode from plans (off: record every pass anew, as prefill does).
    use_plans: std::cell::Cell<bool>,
    /// Two slots for the greedy pick: one read while the next pass writes the other.
    next: [Buffer; 2],
    logits: Buffer,
    cands: Buffer,
}

impl Passes {
    pub(super) fn new(gpu: &Gpu, model: &Model) -> Passes {
        Passes {
            plans: Default::default(),
            use_plans: std::cell::Cell::new(true),
            next: [0, 1].map(|_| gpu.readback("next token", 4)),
            logits: gpu.readback("logits", model.cfg.vocab as u64 * 4),
            cands: gpu.readback("candidates", topk::OUT_BYTES),
        }
    }

    /// Drop every plan (after the kernels' shapes were re-tuned).
    pub(super) fn clear(&self, gpu: &Gpu) {
        for (_, plan) in self.plans.borrow_mut().drain(..) {
            plan.release(gpu);
        }
    }
}

impl Engine {
    /// Decode from plans built once (the default) or record every decode pass anew (to compare
    /// the two, or to rule plans out).
    pub fn set_plans(&self, on: bool) {
        self.passes.use_plans.set(on);
        self.passes.clear(&self.gpu);
    }

    /// Decode plans built so far and alive.
    pub fn plans(&self) -> usize {
        self.passes.plans.borrow().len()
    }

    /// One forward pass at `pos0`, submitted as one command buffer with its readback copy.
    /// Decode steps replay a plan (unless profiling, which times dispatches one by one).
    pub(super) fn run(
        &self,
        input: Input,
        pos0: u32,
        logits: Logits,
        tail: Tail,
        fetch: Fetch,
    ) -> Result<wgpu::SubmissionIndex> {
        // The readback of every token polls the device, which reports a loss; checking is enough.
        self.gpu.lost.check()?;
        let t0 = now_s();
        let (gpu, s) = (&self.gpu, &self.model.scratch);
        let m = match input {
            Input::Ids(ids) => {
                gpu.write(&s.ids, 0, bytemuck::cast_slice(ids));
                ids.len() as u32
            }
            Input::OnGpu => 1,
        };
        let decode = m == 1 && logits == Logits::Last;
        let profiling = gpu.profiling.load(std::sync::atomic::Ordering::Relaxed);
        let (index, dispatches) = if decode && !profiling && self.passes.use_plans.get() {
            let key = (self.model.decode_shape(pos0), tail);
            let mut plans = self.passes.plans.borrow_mut();
            let at = match plans.iter().position(|(k, _)| *k == key) {
                Some(at) => at,
                None => {
                    if plans.len() >= MAX_PLANS {
                        plans.remove(0).1.release(gpu);
                    }
                    let plan = self.model.decode_plan(gpu, pos0, tail)?;
                    plans.push((key, plan));
                    plans.len() - 1
                }
            };
            let plan = &mut plans[at].1;
            let mut enc = plan.encode(gpu, pos0);
            if let Some((src, dst, size)) = self.fetch_copy(fetch) {
                enc.copy_buffer_to_buffer(src, 0, dst, 0, size);
            }
            (gpu.queue.submit([enc.finish()]), plan.dispatches)
        } else {
            let mut rec = gpu.recorder(if m == 1 { "decode" } else { "prefill" });
            self.model.forward(&mut rec, m, pos0, logits)?;
            self.model.tail(&mut rec, tail)?;
            if let Some((src, dst, size)) = self.fetch_copy(fetch) {
                rec.copy(src, 0, dst, 0, size);
            }
            let dispatches = rec.dispatches;
            (rec.submit_indexed(), dispatches)
        };
        let mut st = self.pass_stats.get();
        st.dispatches = dispatches;
        if m == 1 {
            st.decode_passes += 1;
            st.decode_cpu_s += now_s() - t0;
        }
        self.pass_stats.set(st);
        Ok(index)
    }

    /// The copy (source, readback buffer, bytes) that brings `fetch` back with a pass.
    fn fetch_copy(&self, fetch: Fetch) -> Option<(&wgpu::Buffer, &wgpu::Buffer, u64)> {
        let (s, p) = (&self.model.scratch, &self.passes);
        match fetch {
            Fetch::Nothing => None,
            Fetch::Next(slot) => Some((s.next.raw(), p.next[slot].raw(), 4)),
            Fetch::Logits => Some((s.logits.raw(), p.logits.raw(), p.logits.size())),
            Fetch::Candidates => Some((s.cands.raw(), p.cands.raw(), topk::OUT_BYTES)),
        }
    }

    /// The greedy pick a pass fetched into ring slot `slot`, once submission `after` is done.
    pub(super) async fn read_next(&self, slot: usize, after: wgpu::SubmissionIndex) -> Result<u32> {
        let buf = self.passes.next[slot].raw();
        let id = self.gpu.read_mapped::<u32>(buf, 1, Some(after)).await;
        let id = id.map_err(|e| self.lost_or(e))?[0];
        if id >= self.model.cfg.vocab {
            return Err(Error::Gpu(format!(
                "the GPU picked token {id}, outside the vocabulary"
            )));
        }
        Ok(id)
    }

    /// The first logits row a pass fetched, once submission `after` is done.
    pub(super) async fn read_logits(&self, after: wgpu::SubmissionIndex) -> Result<Vec<f32>> {
        let vocab = self.model.cfg.vocab as usize;
        let buf = self.passes.logits.raw();
        let logits = self.gpu.read_mapped::<f32>(buf, vocab, Some(after)).await;
        let logits = logits.map_err(|e| self.lost_or(e))?;
        if logits.iter().any(|x| !x.is_finite()) {
            return Err(Error::Gpu("the model produced non-finite logits".into()));
        }
        Ok(logits)
    }

    /// The sampling candidates a pass fetched, once submission `after` is done.
    pub(super) async fn read_candidates(&self, after: wgpu::SubmissionIndex) -> Result<Candidates> {
        let buf = self.passes.cands.raw();
        let words = topk::OUT_BYTES as usize / 4;
        let w = self.gpu.read_mapped::<u32>(buf, words, Some(after)).await;
        topk::parse(&w.map_err(|e| self.lost_or(e))?, self.model.cfg.vocab)
    }

    /// The first logits row of the last pass, still in `scratch.logits` (when the candidates did
    /// not decide): one more copy and read.
    pub(super) async fn logits_now(&self) -> Result<Vec<f32>> {
        let (src, dst, size) = self.fetch_copy(Fetch::Logits).expect("a logits copy");
        let mut enc = self.gpu.device.create_command_encoder(&Default::default());
        enc.copy_buffer_to_buffer(src, 0, dst, 0, size);
        let index = self.gpu.queue.submit([enc.finish()]);
        self.read_logits(index).await
    }
}
