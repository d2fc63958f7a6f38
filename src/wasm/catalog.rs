//! The model catalog in the browser: `models()` lists it, `checkFit(name, options)` says whether
//! an entry fits this browser's adapter, and with what context, before anything is downloaded.
//! The logic is `crate::catalog`'s; this only reads the options as `WasmEngine.load` does.

use super::{chat::to_js, context_length, err, kv_precision, max_gpu_bytes};
use crate::engine::LoadOptions;
use wasm_bindgen::prelude::*;

/// The catalog: `[{ name, architecture, quant, file_bytes, context, license, urls, ... }]`.
#[wasm_bindgen]
pub fn models() -> Result<JsValue, JsValue> {
    to_js(&crate::catalog::models())
}

/// Whether catalog model `name` fits this browser's adapter with `options` (`{ contextLength?,
/// maxGpuBytes?, kvPrecision? }`, read as `load` reads them: the context defaults to the
/// browser's default load context): `{ fits, context, requested_context, gpu_bytes, ..., reason }`.
#[wasm_bindgen(js_name = checkFit)]
pub async fn check_fit(name: String, options: JsValue) -> Result<JsValue, JsValue> {
    let model = crate::catalog::find(&name).map_err(err)?;
    let options = if options.is_undefined() || options.is_null() {
        js_sys::Object::new().into()
    } else {
        options
    };
    let opts = LoadOptions {
        context: Some(context_length(&options)),
        max_gpu_bytes: max_gpu_bytes(&options)?,
        kv: kv_precision(&options)?,
        ..Default::default()
    };
    // The limits a load would get (it requests all of the adapter's), without opening a device.
    let caps = crate::gpu::default_caps().await.map_err(err)?;
    let fit = crate::catalog::check_fit(model, &opts, &caps).map_err(err)?;
    to_js(&fit)
}
