//! Compiled pipelines, cached by shader + entry point + override constants, so each variant is
//! compiled once per device (pipeline creation is slow on software adapters and in browsers).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// One `.wgsl` file from `shaders/`, embedded at compile time.
#[derive(Clone, Copy, Debug)]
pub struct Shader {
    pub name: &'static str,
    pub source: &'static str,
}

/// `include_shader!("softmax")` embeds `shaders/softmax.wgsl` as a [`Shader`].
#[macro_export]
macro_rules! include_shader {
    ($name:literal) => {
        $crate::gpu::Shader {
            name: $name,
            source: include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/shaders/",
                $name,
                ".wgsl"
            )),
        }
    };
}

type Key = (&'static str, String, Vec<(String, u64)>);

#[derive(Default)]
pub struct PipelineCache {
    modules: Mutex<HashMap<&'static str, wgpu::ShaderModule>>,
    pipelines: Mutex<HashMap<Key, Arc<wgpu::ComputePipeline>>>,
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
        let key: Key = (
            shader.name,
            entry.to_string(),
            constants
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_bits()))
                .collect(),
        );
        if let Some(p) = self.pipelines.lock().unwrap().get(&key) {
            return p.clone();
        }
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
        self.pipelines.lock().unwrap().insert(key, pipeline.clone());
        pipeline
    }

    pub fn len(&self) -> usize {
        self.pipelines.lock().unwrap().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
