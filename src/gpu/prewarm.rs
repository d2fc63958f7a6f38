//! Asynchronous, parallel pipeline creation in a browser. wgpu's WebGPU backend only calls
//! `createComputePipeline`, which the GPU process compiles one pipeline after another, blocking
//! the device's other work. Here the same pipelines are first created with
//! `createComputePipelineAsync` on wgpu's own `GPUDevice` (Dawn compiles them on its worker
//! threads) and awaited together; wgpu's creation right after then finds each one in Dawn's
//! cache of live pipelines, which matches descriptors by content: the same WGSL, entry point,
//! constants and an equal explicit layout (`layout.rs`; an automatic layout never matches). If a
//! browser did not reuse them, wgpu's creation would compile them again: slower, never wrong.

use super::layout::Kind;
use super::Shader;
use js_sys::{Array, Function, Object, Promise, Reflect};
use std::collections::HashMap;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

/// One pipeline to compile ahead: shader, entry point, override constants, bindings.
pub(crate) type Ahead<'a> = (&'a Shader, &'a str, &'a [(&'a str, f64)], Vec<(u32, Kind)>);

/// Compiled pipelines, held until wgpu has created its own (Dawn's cache holds them only while
/// they live).
pub(crate) struct Compiled(#[allow(dead_code)] JsValue);

/// Create `pipelines` with `createComputePipelineAsync` on `device`'s `GPUDevice`, all at once,
/// and wait for every one (a rejected one is left to wgpu's creation to report). `None` where the
/// device is not a browser's or the calls fail.
pub(crate) async fn compile(device: &wgpu::Device, pipelines: &[Ahead<'_>]) -> Option<Compiled> {
    let device: &JsValue = device.as_webgpu()?.as_ref();
    let promises = start(device, pipelines)
        .inspect_err(|e| log::warn!("compiling ahead: {e:?}"))
        .ok()?;
    let settled = JsFuture::from(Promise::all_settled(&promises)).await.ok()?;
    Some(Compiled(settled))
}

fn set(o: &Object, key: &str, v: impl Into<JsValue>) -> Result<(), JsValue> {
    Reflect::set(o, &key.into(), &v.into()).map(|_| ())
}

fn call(device: &JsValue, method: &str, arg: &JsValue) -> Result<JsValue, JsValue> {
    Reflect::get(device, &method.into())?
        .dyn_into::<Function>()?
        .call1(device, arg)
}

/// The descriptors, as wgpu's WebGPU backend writes them, and the pipelines' promises.
fn start(device: &JsValue, pipelines: &[Ahead<'_>]) -> Result<Array, JsValue> {
    let mut modules: HashMap<&str, JsValue> = HashMap::new();
    let promises = Array::new();
    for &(shader, entry, constants, ref bindings) in pipelines {
        let module = match modules.get(shader.name) {
            Some(m) => m.clone(),
            None => {
                let d = Object::new();
                set(&d, "code", shader.source)?;
                set(&d, "label", shader.name)?;
                let m = call(device, "createShaderModule", &d)?;
                modules.insert(shader.name, m.clone());
                m
            }
        };
        let entries = Array::new();
        for &(binding, kind) in bindings {
            let buffer = Object::new();
            set(&buffer, "hasDynamicOffset", false)?;
            set(&buffer, "type", kind.webgpu_name())?;
            let e = Object::new();
            set(&e, "binding", binding)?;
            set(&e, "visibility", wgpu::ShaderStages::COMPUTE.bits())?;
            set(&e, "buffer", buffer)?;
            entries.push(&e);
        }
        let d = Object::new();
        set(&d, "entries", entries)?;
        let group = call(device, "createBindGroupLayout", &d)?;
        let d = Object::new();
        set(&d, "bindGroupLayouts", Array::of1(&group))?;
        let layout = call(device, "createPipelineLayout", &d)?;
        let stage = Object::new();
        set(&stage, "module", module)?;
        set(&stage, "entryPoint", entry)?;
        if !constants.is_empty() {
            let c = Object::new();
            for &(k, v) in constants {
                set(&c, k, v)?;
            }
            set(&stage, "constants", c)?;
        }
        let d = Object::new();
        set(&d, "layout", layout)?;
        set(&d, "compute", stage)?;
        promises.push(&call(device, "createComputePipelineAsync", &d)?);
    }
    Ok(promises)
}
