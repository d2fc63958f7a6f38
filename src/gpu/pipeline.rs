//! Compiled pipelines, cached by shader + entry point + override constants, so each variant is
//! compiled once per device (pipeline creation is slow on software adapters and in browsers).

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

/// The pipelines whose keys share one hash.
type Bucket = Vec<(Key, Arc<wgpu::ComputePipeline>)>;

#[derive(Default)]
pub struct PipelineCache {
    modules: Mutex<HashMap<&'static str, wgpu::ShaderModule>>,
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

    /// Create every pipeline of `wanted` that is missing; natively on as many threads as there
    /// are cores (compiling a pipeline is a slow, single-threaded LLVM job on software adapters).
    pub(crate) fn create_all(&self, device: &wgpu::Device, wanted: &super::recorder::Wanted) {
        type Missing<'a> = (Shader, &'a str, Vec<(&'a str, f64)>, u64);
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
        let t0 = crate::engine::now_s();
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
        for (shader, entry, constants, hash) in &missing {
            self.create(device, shader, entry, constants, *hash);
        }
        *self.create_s.lock().unwrap() += crate::engine::now_s() - t0;
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
        let pipeline = Arc::new(
            device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(&label),
                layout: None,
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
