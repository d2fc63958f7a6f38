//! The GPU layer: one [`Gpu`] per device. It asks the adapter for its *real* limits (WebGPU's
//! defaults cap storage bindings at 128 MiB and workgroups at 256 invocations), records which
//! optional features the adapter offers (requesting only timestamp queries, for profiling), and
//! owns the pipeline cache and the buffer pool. Kernels never submit
//! on their own: they record into a [`Recorder`], one command encoder per forward pass.

pub mod layout;
mod pipeline;
mod plan;
mod pool;
#[cfg(target_arch = "wasm32")]
mod prewarm;
mod profile;
mod recorder;

pub use pipeline::{PipelineCache, Shader};
pub use plan::Plan;
pub use pool::{Buffer, BufferPool};
pub use profile::KernelTime;
use recorder::BindGroupCache;
pub use recorder::{Arg, Recorder};

use crate::{Error, Result};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// What the adapter can do, as far as attend cares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caps {
    /// The adapter offers `shader-f16`. Reported only: the kernels never enable it (they read f16
    /// weights and the f16 KV cache as packed u32s), so the device does not request it.
    pub shader_f16: bool,
    /// The adapter offers subgroups (with the sizes below). The device requests them natively
    /// where subgroups have 8 invocations or more, for the subgroup matvec and matmul
    /// ([`Gpu::subgroup_loads`]).
    pub subgroups: bool,
    /// The adapter offers `timestamp-query`; the device requests it natively, for profiling.
    pub timestamps: bool,
    pub subgroup_min_size: u32,
    pub subgroup_max_size: u32,
    /// Largest range one storage binding may cover (tensors above it are split).
    pub max_binding: u64,
    pub max_buffer: u64,
    pub max_invocations: u32,
    pub max_workgroup_storage: u32,
    pub max_workgroups_per_dim: u32,
    pub max_storage_buffers: u32,
    pub uniform_align: u32,
    pub storage_align: u32,
}

impl Caps {
    /// The limits every WebGPU adapter offers (the spec's defaults), no optional features, with
    /// the given storage-binding and buffer limits: what sizing code can be checked against
    /// without an adapter (tests, fuzzing).
    pub fn webgpu_defaults(max_binding: u64, max_buffer: u64) -> Caps {
        Caps {
            shader_f16: false,
            subgroups: false,
            timestamps: false,
            subgroup_min_size: 4,
            subgroup_max_size: 4,
            max_binding,
            max_buffer,
            max_invocations: 256,
            max_workgroup_storage: 16384,
            max_workgroups_per_dim: 65535,
            max_storage_buffers: 8,
            uniform_align: 256,
            storage_align: 256,
        }
    }
}

/// A printable summary of one adapter (for `attend adapters` and `attend info`).
#[derive(Clone, Debug)]
pub struct AdapterFacts {
    pub name: String,
    pub backend: String,
    pub device_type: String,
    pub driver: String,
    pub caps: Caps,
}

impl std::fmt::Display for AdapterFacts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = &self.caps;
        writeln!(
            f,
            "{} ({}, {}, {})",
            self.name, self.backend, self.device_type, self.driver
        )?;
        writeln!(
            f,
            "  features: shader-f16={} subgroups={} (size {}..{}) timestamp-query={}",
            c.shader_f16, c.subgroups, c.subgroup_min_size, c.subgroup_max_size, c.timestamps
        )?;
        write!(
            f,
            "  limits: max_storage_binding={} MiB max_buffer={} MiB invocations/workgroup={} \
             workgroup_storage={} KiB storage_buffers/stage={} workgroups/dim={}",
            c.max_binding >> 20,
            c.max_buffer >> 20,
            c.max_invocations,
            c.max_workgroup_storage >> 10,
            c.max_storage_buffers,
            c.max_workgroups_per_dim
        )
    }
}

/// Subgroups the subgroup entry points can use: native (naga takes the built-ins without an
/// `enable` directive, which browsers require), 8 invocations or more (lanes 0..7 each load a
/// part of the unit).
fn subgroups_usable(c: &Caps) -> bool {
    cfg!(not(target_arch = "wasm32")) && c.subgroups && c.subgroup_min_size >= 8
}

fn caps_of(adapter: &wgpu::Adapter) -> Caps {
    let f = adapter.features();
    let l = adapter.limits();
    let info = adapter.get_info();
    Caps {
        shader_f16: f.contains(wgpu::Features::SHADER_F16),
        subgroups: f.contains(wgpu::Features::SUBGROUP),
        timestamps: f.contains(wgpu::Features::TIMESTAMP_QUERY),
        subgroup_min_size: info.subgroup_min_size,
        subgroup_max_size: info.subgroup_max_size,
        max_binding: l.max_storage_buffer_binding_size,
        max_buffer: l.max_buffer_size,
        max_invocations: l.max_compute_invocations_per_workgroup,
        max_workgroup_storage: l.max_compute_workgroup_storage_size,
        max_workgroups_per_dim: l.max_compute_workgroups_per_dimension,
        max_storage_buffers: l.max_storage_buffers_per_shader_stage,
        uniform_align: l.min_uniform_buffer_offset_alignment,
        storage_align: l.min_storage_buffer_offset_alignment,
    }
}

fn facts_of(adapter: &wgpu::Adapter) -> AdapterFacts {
    let info = adapter.get_info();
    AdapterFacts {
        // Browsers may hide the adapter's name (an empty string): say what we know instead.
        name: if info.name.is_empty() {
            format!(
                "WebGPU adapter ({:?}, vendor {:#06x})",
                info.device_type, info.vendor
            )
        } else {
            info.name.clone()
        },
        backend: format!("{:?}", info.backend),
        device_type: format!("{:?}", info.device_type),
        driver: format!("{} {}", info.driver, info.driver_info)
            .trim()
            .to_string(),
        caps: caps_of(adapter),
    }
}

fn instance() -> wgpu::Instance {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
    // Vulkan/Metal/DX12 (or the browser's WebGPU) unless WGPU_BACKEND picks another explicitly:
    // probing GL on a headless Linux box only prints EGL noise.
    if std::env::var_os("WGPU_BACKEND").is_none() {
        desc.backends = wgpu::Backends::PRIMARY;
    }
    wgpu::Instance::new(desc)
}

/// Every adapter the platform offers (native only lists several; the browser offers one).
pub async fn list_adapters() -> Vec<AdapterFacts> {
    let inst = instance();
    inst.enumerate_adapters(wgpu::Backends::all())
        .await
        .iter()
        .map(facts_of)
        .collect()
}

async fn default_adapter() -> Result<wgpu::Adapter> {
    instance()
        .request_adapter(&wgpu::RequestAdapterOptions {
            power_preference: wgpu::PowerPreference::HighPerformance,
            ..Default::default()
        })
        .await
        .map_err(|e| Error::NoAdapter(e.to_string()))
}

/// The limits [`Gpu::new`] would get (it asks for all of the default adapter's), without opening
/// a device: what a fit check before a download needs.
pub async fn default_caps() -> Result<Caps> {
    Ok(caps_of(&default_adapter().await?))
}

pub struct Gpu {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub adapter: AdapterFacts,
    /// Shared by every `Gpu` on the same device (see [`Gpu::new`]).
    pub pipelines: Arc<PipelineCache>,
    /// Set once the device is lost (one watcher per device: wgpu keeps only the last callback).
    pub(crate) lost: crate::device_lost::DeviceLost,
    pub pool: BufferPool,
    pub(crate) bind_groups: BindGroupCache,
    /// Two small storage buffers for optional writable bindings a dispatch does not use: browsers
    /// reject one buffer bound to several writable bindings of a dispatch.
    pub(crate) spare: [wgpu::Buffer; 2],
    /// GPU buffers created through this `Gpu` and still alive (count and bytes).
    pub(crate) live_bytes: Arc<pool::Live>,
    /// Per-kernel timestamps, while [`Gpu::set_profiling`] has them on.
    pub(crate) profiler: std::sync::OnceLock<profile::Profiler>,
    pub(crate) profiling: std::sync::atomic::AtomicBool,
    /// Whether shaders may use `dot4I8Packed` (WGSL's packed_4x8_integer_dot_product: always
    /// natively, where naga lowers it; in a browser, as it says).
    pub packed_dot: bool,
    /// The int8 activations of the matvec in flight (`kernels::matvec_i8`), made at first use.
    xq: std::sync::OnceLock<wgpu::Buffer>,
    /// Whether the matvec and the register-tiled matmul share activation loads through
    /// subgroups (see [`Gpu::subgroup_loads`]).
    subgroup_loads: std::sync::atomic::AtomicBool,
    /// Whether the subgroup kernels read the weights as `vec4<u64>` (see [`Gpu::wide_loads`]).
    wide_loads: std::sync::atomic::AtomicBool,
}

/// A device on `adapter` with all of its limits and the optional features a code path uses:
/// timestamp queries for `--profile` (see `set_profiling`), subgroups for the subgroup loads and
/// 64-bit integers for the wide weight loads of the subgroup kernels (native only, see
/// `subgroup_loads` and `wide_loads`). No shader enables `f16`. With its (empty) pipeline cache
/// and its loss watcher: what the `Gpu`s on one device share.
#[derive(Clone)]
struct Device {
    adapter: AdapterFacts,
    device: wgpu::Device,
    queue: wgpu::Queue,
    features: wgpu::Features,
    pipelines: Arc<PipelineCache>,
    lost: crate::device_lost::DeviceLost,
}

impl Device {
    async fn open(adapter: &wgpu::Adapter) -> Result<Device> {
        let facts = facts_of(adapter);
        let wanted = if cfg!(target_arch = "wasm32") {
            wgpu::Features::TIMESTAMP_QUERY
        } else if subgroups_usable(&facts.caps) {
            wgpu::Features::TIMESTAMP_QUERY
                | wgpu::Features::SUBGROUP
                | wgpu::Features::SHADER_INT64
        } else {
            wgpu::Features::TIMESTAMP_QUERY
        };
        let features = adapter.features() & wanted;
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("attend"),
                required_features: features,
                required_limits: adapter.limits(),
                ..Default::default()
            })
            .await
            .map_err(|e| Error::Device(e.to_string()))?;
        Ok(Device {
            adapter: facts,
            lost: crate::device_lost::DeviceLost::watch(&device),
            device,
            queue,
            features,
            pipelines: Arc::default(),
        })
    }
}

// The device every `Gpu::new` of a process (natively) or of a worker (in a browser) shares.
#[cfg(not(target_arch = "wasm32"))]
static SHARED: std::sync::Mutex<Option<Device>> = std::sync::Mutex::new(None);
// wgpu's browser types are neither Send nor Sync: one per thread (a worker has one).
#[cfg(target_arch = "wasm32")]
thread_local!(static SHARED: std::cell::RefCell<Option<Device>> = const { std::cell::RefCell::new(None) });

fn shared_device() -> Option<Device> {
    #[cfg(not(target_arch = "wasm32"))]
    return SHARED.lock().unwrap_or_else(|e| e.into_inner()).clone();
    #[cfg(target_arch = "wasm32")]
    SHARED.with(|s| s.borrow().clone())
}

fn set_shared_device(d: Device) {
    #[cfg(not(target_arch = "wasm32"))]
    {
        *SHARED.lock().unwrap_or_else(|e| e.into_inner()) = Some(d);
    }
    #[cfg(target_arch = "wasm32")]
    SHARED.with(|s| *s.borrow_mut() = Some(d));
}

impl Gpu {
    /// Open the default adapter with all of its limits (and, natively, timestamp queries where it
    /// has them). Every `Gpu::new` of a process (in a browser: of a worker) shares one device and
    /// its pipeline cache, so a second model (or the same one again) compiles only pipelines not
    /// compiled yet: on a software adapter that is most of a load. Each `Gpu` keeps its own
    /// buffers, buffer pool, bind groups and memory count. A lost device is replaced at the next
    /// `Gpu::new`; [`Gpu::private`] opens a device of its own.
    pub async fn new() -> Result<Gpu> {
        let device = match shared_device() {
            Some(d) if d.lost.poll(&d.device).is_ok() => d,
            _ => {
                let d = Device::open(&default_adapter().await?).await?;
                set_shared_device(d.clone());
                d
            }
        };
        Ok(Self::on(device))
    }

    /// A device of its own on `adapter`, shared with no other `Gpu`.
    pub async fn from_adapter(adapter: wgpu::Adapter) -> Result<Gpu> {
        Ok(Self::on(Device::open(&adapter).await?))
    }

    /// A device of its own on the default adapter (natively [`Gpu::new`] shares one).
    pub async fn private() -> Result<Gpu> {
        Self::from_adapter(default_adapter().await?).await
    }

    fn on(d: Device) -> Gpu {
        let Device {
            adapter,
            device,
            queue,
            features,
            pipelines,
            lost,
        } = d;
        let sg = subgroups_usable(&adapter.caps);
        let live_bytes = Arc::new(pool::Live::default());
        Gpu {
            pool: BufferPool::new(live_bytes.clone()),
            bind_groups: BindGroupCache::default(),
            spare: [0, 1].map(|i| {
                device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some(["spare output 0", "spare output 1"][i]),
                    size: 16,
                    usage: wgpu::BufferUsages::STORAGE,
                    mapped_at_creation: false,
                })
            }),
            pipelines,
            lost,
            device,
            queue,
            adapter,
            live_bytes,
            profiler: std::sync::OnceLock::new(),
            profiling: std::sync::atomic::AtomicBool::new(false),
            packed_dot: cfg!(not(target_arch = "wasm32"))
                || instance()
                    .wgsl_language_features()
                    .contains(wgpu::WgslLanguageFeatures::Packed4x8IntegerDotProduct),
            xq: std::sync::OnceLock::new(),
            subgroup_loads: std::sync::atomic::AtomicBool::new(
                sg && crate::env_switch("ATTEND_SUBGROUPS") != Some(false),
            ),
            wide_loads: std::sync::atomic::AtomicBool::new(
                features.contains(wgpu::Features::SHADER_INT64)
                    && crate::env_switch("ATTEND_WIDE_LOADS") != Some(false),
            ),
        }
    }

    /// An error saying to load again once the device is lost (lets wgpu report a loss first:
    /// natively it does so only while polling). Does not block.
    pub fn check_lost(&self) -> Result<()> {
        self.lost.poll(&self.device)
    }

    /// A 64 KiB storage + uniform buffer for quantized activations: a dispatch writes it and the
    /// next reads it, so every matvec of a pass can share it (passes run one after another).
    pub(crate) fn xq_scratch(&self) -> &wgpu::Buffer {
        self.xq.get_or_init(|| {
            self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("int8 activations"),
                size: crate::kernels::matvec::X_UNIFORM_BYTES,
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::UNIFORM,
                mapped_at_creation: false,
            })
        })
    }

    pub fn caps(&self) -> &Caps {
        &self.adapter.caps
    }

    /// Whether kernels with uniform-view activations use their subgroup entry points
    /// (`shaders/matmul_sg.wgsl`): natively, on adapters whose subgroups have 8 or more
    /// invocations, unless `ATTEND_SUBGROUPS=0`. They give the same bits as the others and, on CPU
    /// adapters, load each activation word once per SIMD fibre instead of once per lane.
    /// Never in a browser: the constant lets the wasm build drop the subgroup module's text.
    #[inline]
    pub fn subgroup_loads(&self) -> bool {
        cfg!(not(target_arch = "wasm32")) && self.subgroup_loads.load(Ordering::Relaxed)
    }

    /// Whether the subgroup kernels read the weights as `vec4<u64>` (`shaders/quant_load64.wgsl`):
    /// natively, where the device has `shader-int64` (requested with the subgroups), unless
    /// `ATTEND_WIDE_LOADS=0`. The same words as `vec4<u32>` loads, so the same bits; on CPU adapters
    /// one such load costs about what a `vec4<u32>` does and reads twice the bytes.
    #[inline]
    pub fn wide_loads(&self) -> bool {
        self.subgroup_loads() && self.wide_loads.load(Ordering::Relaxed)
    }

    /// Turn the wide loads on (where the device has 64-bit integers) or off; returns whether the
    /// subgroup kernels use them now. For tests and comparisons, like `set_subgroup_loads`.
    pub fn set_wide_loads(&self, on: bool) -> bool {
        let int64 = self
            .device
            .features()
            .contains(wgpu::Features::SHADER_INT64);
        self.wide_loads.store(on && int64, Ordering::Relaxed);
        self.wide_loads()
    }

    /// Turn the subgroup entry points on (where the device has them) or off; returns whether they
    /// are on now. For tests and comparisons: plans already built keep the kernels they have.
    pub fn set_subgroup_loads(&self, on: bool) -> bool {
        let on = on && subgroups_usable(self.caps());
        self.subgroup_loads.store(on, Ordering::Relaxed);
        on
    }

    /// Time every dispatch with timestamp queries from now on (adapters with timestamp-query,
    /// natively and in browsers). Off by default.
    pub fn set_profiling(&self, on: bool) -> Result<()> {
        if on && !self.caps().timestamps {
            return Err(Error::Unsupported(
                "profiling needs timestamp queries, which this adapter lacks".into(),
            ));
        }
        if on {
            self.profiler
                .get_or_init(|| profile::Profiler::new(&self.device));
        }
        self.profiling.store(on, Ordering::Relaxed);
        Ok(())
    }

    /// GPU time per (pass, kernel) since the last call, largest first (once the profiled
    /// submits are done).
    pub async fn take_profile(&self) -> Result<Vec<KernelTime>> {
        match self.profiler.get() {
            Some(p) => p.take(self).await,
            None => Ok(Vec::new()),
        }
    }

    /// Bytes of GPU memory held by live buffers (weights, KV cache, pooled scratch).
    pub fn bytes_in_use(&self) -> u64 {
        self.live_bytes.bytes.load(Ordering::Relaxed)
    }

    /// GPU buffers alive: weights, KV cache and pooled scratch (free or in use). With
    /// [`Gpu::bytes_in_use`], what the soak and cancellation tests hold flat.
    pub fn buffers_in_use(&self) -> u64 {
        self.live_bytes.buffers.load(Ordering::Relaxed)
    }

    /// A new storage buffer (read/write by shaders, copyable both ways). Sizes round up to 4 bytes.
    pub fn storage(&self, label: &str, size: u64) -> Result<Buffer> {
        self.buffer(label, size, wgpu::BufferUsages::empty())
    }

    /// A storage buffer for activations that matvec may also read through a uniform binding
    /// (cheaper on CPU adapters): uniform-capable and at least 64 KiB, the uniform view's size.
    /// The uniform view may start at any token of a prefill chunk, so the buffer has a view's
    /// worth of slack past its end.
    pub fn activation(&self, label: &str, size: u64) -> Result<Buffer> {
        let size = size.div_ceil(256) * 256 + crate::kernels::matvec::X_UNIFORM_BYTES;
        self.buffer(label, size, wgpu::BufferUsages::UNIFORM)
    }

    fn buffer(&self, label: &str, size: u64, extra: wgpu::BufferUsages) -> Result<Buffer> {
        let size = size.max(4).div_ceil(4) * 4;
        if size > self.caps().max_buffer {
            return Err(Error::Unsupported(format!(
                "buffer '{label}' needs {size} bytes but the adapter allows at most {}",
                self.caps().max_buffer
            )));
        }
        let raw = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size,
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_DST
                | wgpu::BufferUsages::COPY_SRC
                | extra,
            mapped_at_creation: false,
        });
        Ok(Buffer::new(raw, self.live_bytes.clone()))
    }

    /// A storage buffer holding `data` (padded with zeros to a multiple of 4 bytes).
    pub fn upload<T: bytemuck::Pod>(&self, label: &str, data: &[T]) -> Result<Buffer> {
        let bytes: &[u8] = bytemuck::cast_slice(data);
        let buf = self.storage(label, bytes.len() as u64)?;
        self.write(&buf, 0, bytes);
        Ok(buf)
    }

    /// Write bytes at `offset`; a tail that is not a multiple of 4 bytes is zero-padded.
    pub fn write(&self, buf: &wgpu::Buffer, offset: u64, bytes: &[u8]) {
        let whole = bytes.len() / 4 * 4;
        if whole > 0 {
            self.queue.write_buffer(buf, offset, &bytes[..whole]);
        }
        if whole < bytes.len() {
            let mut tail = [0u8; 4];
            tail[..bytes.len() - whole].copy_from_slice(&bytes[whole..]);
            self.queue.write_buffer(buf, offset + whole as u64, &tail);
        }
    }

    /// Start recording a forward pass (or any batch of kernels): one encoder, one submit.
    pub fn recorder(&self, label: &str) -> Recorder<'_> {
        Recorder::new(self, label)
    }

    /// Start capturing a pass at position `pos` into a [`Plan`] (ends with `into_plan`).
    pub fn capture(&self, label: &str, pos: u32) -> Recorder<'_> {
        Recorder::capture(self, label, pos)
    }

    /// Copy `len` elements of `T` starting at byte `offset` back to the CPU. Submits pending work.
    pub async fn read<T: bytemuck::Pod>(
        &self,
        src: &wgpu::Buffer,
        offset: u64,
        len: usize,
    ) -> Result<Vec<T>> {
        let bytes = (len * std::mem::size_of::<T>()) as u64;
        let padded = bytes.div_ceil(4) * 4;
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size: padded.max(4),
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut enc = self.device.create_command_encoder(&Default::default());
        enc.copy_buffer_to_buffer(src, offset, &staging, 0, padded);
        let index = self.queue.submit([enc.finish()]);
        self.read_mapped(&staging, len, Some(index)).await
    }

    /// A buffer that passes copy results into for the CPU to read with
    /// [`read_mapped`](Self::read_mapped), kept and reused (no staging buffer per read).
    pub fn readback(&self, label: &str, size: u64) -> Buffer {
        let raw = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: size.max(4).div_ceil(4) * 4,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        Buffer::new(raw, self.live_bytes.clone())
    }

    /// The first `len` elements of `T` in `staging` (a [`readback`](Self::readback) buffer a
    /// submitted pass copied into), once submission `after` is done: later submissions may still
    /// be running, which is what lets the next token's pass overlap this read.
    pub async fn read_mapped<T: bytemuck::Pod>(
        &self,
        staging: &wgpu::Buffer,
        len: usize,
        after: Option<wgpu::SubmissionIndex>,
    ) -> Result<Vec<T>> {
        let bytes = (len * std::mem::size_of::<T>()) as u64;
        if bytes > staging.size() {
            return Err(Error::Invalid(format!(
                "reading {bytes} bytes from a {}-byte readback buffer",
                staging.size()
            )));
        }
        let slice = staging.slice(..bytes.div_ceil(4).max(1) * 4);
        let (tx, rx) = futures_channel::oneshot::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        #[cfg(not(target_arch = "wasm32"))]
        let _ = self.device.poll(wgpu::PollType::Wait {
            submission_index: after,
            timeout: None,
        });
        #[cfg(target_arch = "wasm32")]
        let _ = after;
        rx.await
            .map_err(|_| Error::Gpu("readback was cancelled".into()))?
            .map_err(|e| Error::Gpu(format!("readback failed: {e}")))?;
        let data = {
            let view = slice
                .get_mapped_range()
                .map_err(|e| Error::Gpu(format!("readback map: {e}")))?;
            bytemuck::cast_slice::<u8, T>(&view[..bytes as usize]).to_vec()
        };
        staging.unmap();
        Ok(data)
    }

    /// Block until the queue is idle (native). The browser drives its queue itself.
    pub fn wait(&self) {
        #[cfg(not(target_arch = "wasm32"))]
        let _ = self.device.poll(wgpu::PollType::wait_indefinitely());
    }

    /// Run `f` and turn any validation error it causes into an `Error` instead of a panic.
    pub async fn checked<R>(&self, f: impl FnOnce() -> R) -> Result<R> {
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let r = f();
        match scope.pop().await {
            Some(e) => Err(Error::Gpu(e.to_string())),
            None => Ok(r),
        }
    }
}

/// Split `n` workgroups into an (x, y, 1) grid within the per-dimension limit. Shaders recover the
/// linear index as `wid.x + wid.y * nwg.x` and must ignore indices ≥ n (the grid may overshoot).
pub fn grid(n: u32, max_per_dim: u32) -> [u32; 3] {
    if n <= max_per_dim {
        [n.max(1), 1, 1]
    } else {
        let y = n.div_ceil(max_per_dim);
        [n.div_ceil(y), y, 1]
    }
}
