//! Compiled pipelines, cached by shader + entry point + override constants, so each variant is
//! compiled once per device (pipeline creation is slow on software adapters and in browsers).

use super::layout;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// One `.wgsl` file from `shaders/` (or several, one after another), embedded at compile time.
#[derive(Clone, Copy, Debug)]
pub struct Shader {
    pub name: &'static str,
    pub source: &'static str,
}

/// `include_shader!("argmax")` embeds `shaders/argmax.wgsl` as a [`Shader`];
/// `include_shader!("matmul": "quant", "matvec", "matmul")` makes the module `matmul` from those
/// files in that order (WGSL has no includes: a family too long for one file, or a file that
/// extends another, is its files one after the other).
#[macro_export]
macro_rules! include_shader {
    ($name:literal) => {
        $crate::include_shader!($name: $name)
    };
    ($name:literal: $($file:literal),+) => {
        $crate::gpu::Shader {
            name: $name,
            source: concat!($(include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/shaders/",
                $file,
                ".wgsl"
            ))),+),
        }
    };
}

/// A pipeline's identity: shader, entry point and override constants. Lookups hash these in place
/// (no allocation per dispatch); the owned copy is made only when a pipeline is created.
type Key = (&'static str, String, Vec<(String, u64)>);

fn key_hash(shader: &'static str, entry: &str, constants: &[(&str, f64)]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    shader.hash(&mut h);
    entry.hash(&mut h);
    for (k, v) in constants {
        k.hash(&mut h);
        v.to_bits().hash(&mut h);
    }
    h.finish()
}

fn key_matches(key: &Key, shader: &'static str, entry: &str, constants: &[(&str, f64)]) -> bool {
    key.0 == shader
        && key.1 == entry
        && key.2.len() == constants.len()
        && key
            .2
            .iter()
            .zip(constants)
            .all(|((k, v), (k2, v2))| k == k2 && *v == v2.to_bits())
}

/// A pipeline to create: shader, entry point, constants, key hash.
type Missing<'a> = (Shader, &'a str, Vec<(&'a str, f64)>, u64);

/// The pipelines whose keys share one hash.
type Bucket = Vec<(Key, Arc<wgpu::ComputePipeline>)>;

/// A (shader, entry point)'s bindings as its WGSL declares them, or why they could not be read.
type Bindings = Result<Vec<(u32, layout::Kind)>, String>;

#[derive(Default)]
pub struct PipelineCache {
    modules: Mutex<HashMap<&'static str, wgpu::ShaderModule>>,
    /// Each module's top level, read once.
    parsed: Mutex<HashMap<&'static str, Arc<Result<layout::Module, String>>>>,
    /// Explicit layouts by shader and entry point (None: the WGSL could not be read, so the
    /// pipeline takes an automatic layout).
    layouts: Mutex<HashMap<(&'static str, String), Option<wgpu::PipelineLayout>>>,
    pipelines: Mutex<HashMap<u64, Bucket>>,
    /// Seconds spent creating modules and pipelines (what `compile_s` is made of, beside tuning).
    create_s: Mutex<f64>,
}

impl PipelineCache {
    /// The pipeline for `entry` in `shader` with the given override constants (by name).
    pub fn get(
        &self,
        device: &wgpu::Device,
        shader: &Shader,
        entry: &str,
        constants: &[(&str, f64)],
    ) -> Arc<wgpu::ComputePipeline> {
        let hash = key_hash(shader.name, entry, constants);
        if let Some(p) = self.lookup(hash, shader, entry, constants) {
            return p;
        }
        let t0 = crate::engine::now_s();
        let pipeline = self.create(device, shader, entry, constants, hash);
        *self.create_s.lock().unwrap() += crate::engine::now_s() - t0;
        pipeline
    }

    fn lookup(
        &self,
        hash: u64,
        shader: &Shader,
        entry: &str,
        constants: &[(&str, f64)],
    ) -> Option<Arc<wgpu::ComputePipeline>> {
        let pipelines = self.pipelines.lock().unwrap();
        let list = pipelines.get(&hash)?;
        list.iter()
            .find(|(k, _)| key_matches(k, shader.name, entry, constants))
            .map(|(_, p)| p.clone())
    }

    /// Create every pipeline of `wanted` that is missing, and wait until they are compiled
    /// where creation does not: natively on as many threads as there are cores (compiling a
    /// pipeline is a slow, single-threaded LLVM job on software adapters), in a browser all
    /// at once with `createComputePipelineAsync` (`prewarm.rs`) before wgpu creates them.
    pub(crate) async fn create_all(&self, device: &wgpu::Device, wanted: &super::recorder::Wanted) {
        let t0 = crate::engine::now_s();
        let missing = self.missing(wanted);
        #[cfg(target_arch = "wasm32")]
        let compiled = {
            let ahead: Vec<super::prewarm::Ahead> = missing
                .iter()
                .filter_map(|(shader, entry, constants, _)| {
                    let bindings = self.bindings(shader, entry).ok()?;
                    Some((shader, *entry, constants.as_slice(), bindings))
                })
                .collect();
            super::prewarm::compile(device, &ahead).await
        };
        self.create_missing(device, &missing);
        #[cfg(target_arch = "wasm32")]
        drop(compiled);
        *self.create_s.lock().unwrap() += crate::engine::now_s() - t0;
    }

    /// [`PipelineCache::create_all`] without waiting: in a browser the GPU process compiles them
    /// one after another after this returns, and only a pass that uses one waits for it.
    pub(crate) fn create_all_unwaited(
        &self,
        device: &wgpu::Device,
        wanted: &super::recorder::Wanted,
    ) {
        let t0 = crate::engine::now_s();
        self.create_missing(device, &self.missing(wanted));
        *self.create_s.lock().unwrap() += crate::engine::now_s() - t0;
    }

    /// The pipelines of `wanted` not created yet, each once.
    fn missing<'w>(&self, wanted: &'w super::recorder::Wanted) -> Vec<Missing<'w>> {
        let mut missing: Vec<Missing> = Vec::new();
        for (shader, entry, constants) in wanted {
            let constants: Vec<(&str, f64)> =
                constants.iter().map(|(k, v)| (k.as_str(), *v)).collect();
            let hash = key_hash(shader.name, entry, &constants);
            let seen = missing.iter().any(|m| {
                m.3 == hash && m.0.name == shader.name && m.1 == entry && m.2 == constants
            });
            if !seen && self.lookup(hash, shader, entry, &constants).is_none() {
                missing.push((*shader, entry, constants, hash));
            }
        }
        missing
    }

    fn create_missing(&self, device: &wgpu::Device, missing: &[Missing]) {
        #[cfg(not(target_arch = "wasm32"))]
        {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            let next = std::sync::atomic::AtomicUsize::new(0);
            let work = || loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some((shader, entry, constants, hash)) = missing.get(i) else {
                    break;
                };
                self.create(device, shader, entry, constants, *hash);
            };
            std::thread::scope(|s| {
                for _ in 1..cores.min(missing.len()) {
                    s.spawn(work);
                }
                work();
            });
        }
        #[cfg(target_arch = "wasm32")]
        for (shader, entry, constants, hash) in missing {
            self.create(device, shader, entry, constants, *hash);
        }
    }

    /// The bindings `entry` of `shader` uses, read from its WGSL.
    pub(crate) fn bindings(&self, shader: &Shader, entry: &str) -> Bindings {
        let parsed = self
            .parsed
            .lock()
            .unwrap()
            .entry(shader.name)
            .or_insert_with(|| Arc::new(layout::Module::parse(shader.source)))
            .clone();
        match &*parsed {
            Ok(module) => module.bindings(entry),
            Err(e) => Err(e.clone()),
        }
    }

    /// The explicit layout of `entry` (None, with a warning, where its WGSL could not be read).
    fn layout(
        &self,
        device: &wgpu::Device,
        shader: &Shader,
        entry: &str,
    ) -> Option<wgpu::PipelineLayout> {
        let key = (shader.name, entry.to_string());
        if let Some(l) = self.layouts.lock().unwrap().get(&key) {
            return l.clone();
        }
        let made = match self.bindings(shader, entry) {
            Ok(bindings) => {
                let group = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                    label: Some(entry),
                    entries: &layout::entries(&bindings),
                });
                Some(
                    device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                        label: Some(entry),
                        bind_group_layouts: &[Some(&group)],
                        immediate_size: 0,
                    }),
                )
            }
            Err(e) => {
                log::warn!("{}::{entry}: automatic layout ({e})", shader.name);
                None
            }
        };
        self.layouts.lock().unwrap().insert(key, made.clone());
        made
    }

    fn create(
        &self,
        device: &wgpu::Device,
        shader: &Shader,
        entry: &str,
        constants: &[(&str, f64)],
        hash: u64,
    ) -> Arc<wgpu::ComputePipeline> {
        let key: Key = (
            shader.name,
            entry.to_string(),
            constants
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_bits()))
                .collect(),
        );
        let module = {
            let mut modules = self.modules.lock().unwrap();
            modules
                .entry(shader.name)
                .or_insert_with(|| {
                    device.create_shader_module(wgpu::ShaderModuleDescriptor {
                        label: Some(shader.name),
                        source: wgpu::ShaderSource::Wgsl(shader.source.into()),
                    })
                })
                .clone()
        };
        let label = format!("{}::{}", shader.name, entry);
        let layout = self.layout(device, shader, entry);
        let pipeline = Arc::new(
            device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(&label),
                layout: layout.as_ref(),
                module: &module,
                entry_point: Some(entry),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants,
                    // Kernels initialise the workgroup memory they read; skipping the zero fill saves
                    // a pass over shared memory per workgroup.
                    zero_initialize_workgroup_memory: false,
                },
                cache: None,
            }),
        );
        self.pipelines
            .lock()
            .unwrap()
            .entry(hash)
            .or_default()
            .push((key, pipeline.clone()));
        pipeline
    }

    pub fn len(&self) -> usize {
        self.pipelines.lock().unwrap().values().map(Vec::len).sum()
    }

    /// Seconds spent creating shader modules and pipelines so far.
    pub fn create_seconds(&self) -> f64 {
        *self.create_s.lock().unwrap()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
