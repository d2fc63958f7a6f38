//! Tuned kernel shapes: per adapter, kernel family and matrix class, remembered for the life of
//! the process and, exported and imported as JSON, across loads. The CLI keeps them in
//! `~/.cache/attend/tuned.json`, the browser worker in its origin-private model cache, so a reload
//! compiles only the winning pipelines instead of every candidate (pipeline compilation is most of
//! the load time on software adapters and in browsers).
//!
//! A remembered shape is used only while it is still one of the current candidates, and keys
//! carry the crate version and a hash of the shader, so a new kernel is measured afresh.

use crate::gpu::{Gpu, Recorder};
use serde::{de::DeserializeOwned, Serialize};
use std::collections::BTreeMap;
use std::sync::Mutex;

static TUNED: Mutex<BTreeMap<String, serde_json::Value>> = Mutex::new(BTreeMap::new());

/// FNV-1a of a shader's text (which kernel version a measurement was made with).
fn text_hash(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A matrix class as the tunes measure it: kernel, format, layout, size, and `usage` (what else
/// changes the kernel: an epilogue, a token count). Also the tune's log label.
pub(crate) fn class(kernel: &str, w: &crate::weights::QMatrix, usage: &str) -> String {
    let layout = match w.layout {
        crate::weights::Layout::Packed => "packed",
        _ => "ggml",
    };
    format!(
        "{kernel} {} {layout} {}x{} {usage}",
        w.ty.name(),
        w.rows,
        w.cols
    )
}

/// The key of one measurement: adapter (name and driver), crate version, the text of the matrix
/// kernels' shaders, and the matrix `class`.
pub(crate) fn key(gpu: &Gpu, class: &str) -> String {
    let a = &gpu.adapter;
    let text = [&super::matvec::SHADER, &super::matvec_i8::SHADER].map(|s| s.source);
    format!(
        "{} | {} | {} | v{} {:016x} | {class}",
        a.name,
        a.backend,
        a.driver,
        env!("CARGO_PKG_VERSION"),
        text_hash(&text.concat())
    )
}

/// The remembered shape for `key`, if it is still one of `candidates`.
pub(crate) fn get<T: DeserializeOwned + PartialEq>(key: &str, candidates: &[T]) -> Option<T> {
    let v = TUNED.lock().unwrap().get(key)?.clone();
    let shape: T = serde_json::from_value(v).ok()?;
    candidates.contains(&shape).then_some(shape)
}

pub(crate) fn put<T: Serialize>(key: String, shape: &T) {
    if let Ok(v) = serde_json::to_value(shape) {
        TUNED.lock().unwrap().insert(key, v);
    }
}

/// The shape for matrix `class`: the remembered one if it is still among `candidates`, else (only
/// when `measure`) the `fastest` of them, remembered from now on; `None` when neither (the caller
/// keeps its built-in default). `run` records one dispatch of a candidate writing `y`.
pub(crate) async fn pick<S>(
    gpu: &Gpu,
    class: &str,
    candidates: Vec<S>,
    measure: bool,
    y: &wgpu::Buffer,
    run: impl Fn(&mut Recorder, S),
) -> crate::Result<Option<S>>
where
    S: Copy + std::fmt::Debug + PartialEq + Serialize + DeserializeOwned,
{
    let key = key(gpu, class);
    if let Some(s) = get(&key, &candidates) {
        return Ok(Some(s));
    }
    if !measure {
        return Ok(None);
    }
    let best = fastest(gpu, class, candidates, y, run).await?;
    put(key, &best);
    Ok(Some(best))
}

/// The candidate whose `run` (recorded three times per submit, best of two timed rounds after a
/// warm-up round) finishes fastest; `y` is an output `run` writes (read back to wait for it).
/// `ATTEND_TUNE_LOG=1` prints every timing.
async fn fastest<S: Copy + std::fmt::Debug>(
    gpu: &Gpu,
    label: &str,
    candidates: Vec<S>,
    y: &wgpu::Buffer,
    run: impl Fn(&mut Recorder, S),
) -> crate::Result<S> {
    let sink = gpu.storage("tune sink", 4)?;
    // Every candidate is a pipeline to compile: create them together, on all cores.
    let mut wanted = Recorder::collect(gpu, label);
    for &shape in &candidates {
        run(&mut wanted, shape);
    }
    gpu.pipelines
        .create_all(&gpu.device, &wanted.into_wanted())
        .await;
    let mut best: Option<(f64, S)> = None;
    let reps = 3;
    let log = std::env::var_os("ATTEND_TUNE_LOG").is_some();
    for shape in candidates {
        let mut t = f64::MAX;
        for round in 0..3 {
            let t0 = crate::engine::now_s();
            let mut rec = gpu.recorder("tune");
            for _ in 0..reps {
                run(&mut rec, shape);
            }
            rec.copy(y, 0, sink.raw(), 0, 4);
            rec.submit();
            gpu.read::<u32>(sink.raw(), 0, 1).await?;
            if round > 0 {
                t = t.min((crate::engine::now_s() - t0) / reps as f64);
            }
        }
        if log {
            crate::log_line(&format!("tune {label} {shape:?}: {:.3} ms", t * 1e3));
        }
        if best.is_none_or(|(bt, _)| t < bt) {
            best = Some((t, shape));
        }
    }
    best.map(|(_, s)| s)
        .ok_or_else(|| crate::Error::Invalid(format!("no kernel candidate for {label}")))
}

/// Every remembered shape, as one JSON object (key → shape).
pub fn export() -> String {
    serde_json::to_string(&*TUNED.lock().unwrap()).unwrap_or_else(|_| "{}".into())
}

/// Remember the shapes of an [`export`]; returns how many there were. Text that is not such an
/// object is an error and changes nothing (a stale or damaged file only costs a new tune).
pub fn import(json: &str) -> crate::Result<usize> {
    let map: BTreeMap<String, serde_json::Value> = serde_json::from_str(json)
        .map_err(|e| crate::Error::Invalid(format!("tuned shapes: {e}")))?;
    let n = map.len();
    TUNED.lock().unwrap().extend(map);
    Ok(n)
}

/// Forget every shape (tests, and `attend bench --retune`).
pub fn clear() {
    TUNED.lock().unwrap().clear();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shape_is_used_only_while_it_is_a_candidate() {
        put("test | a".into(), &(8u32, true));
        assert_eq!(get("test | a", &[(4u32, true), (8, true)]), Some((8, true)));
        // No longer among the candidates (a new kernel version): measured again.
        assert_eq!(get("test | a", &[(4u32, true)]), None);
        assert_eq!(get::<(u32, bool)>("test | missing", &[(8, true)]), None);
    }

    #[test]
    fn export_and_import_round_trip_and_bad_text_changes_nothing() {
        // (Other tests share the process-wide table: check this test's own key, not its size.)
        put("test | b".into(), &[1u32, 2]);
        let text = export();
        assert!(import("{\"test | b\": [3, 4").is_err());
        assert!(import("{\"test | b\": [3, 4], \"x\": ").is_err());
        assert!(import("[1, 2]").is_err());
        assert_eq!(get("test | b", &[[1u32, 2], [3, 4]]), Some([1, 2]));
        assert!(import(&text).unwrap() >= 1);
        assert_eq!(get("test | b", &[[1u32, 2]]), Some([1, 2]));
        import("{\"test | b\": [5, 6]}").unwrap();
        assert_eq!(get("test | b", &[[5u32, 6]]), Some([5, 6]));
    }
}
