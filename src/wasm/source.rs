//! Byte sources for model loading in the browser: a URL (streamed `fetch`, stored in the OPFS
//! cache as it arrives, resumed with a Range request), a `Blob`/`File`, or an `ArrayBuffer`. Each
//! hands its bytes to a synchronous sink chunk by chunk, so the file never sits in wasm memory.

use super::store::{CachedFile, Store};
use crate::download::{self, on_response, request_headers, Resume};
use js_sys::{Reflect, Uint8Array};
use std::cell::Cell;
use std::rc::Rc;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    Blob, ReadableStreamDefaultReader, Request, RequestInit, Response, WorkerGlobalScope,
};

/// Pieces read from the cache or a Blob at a time.
const READ: usize = 4 << 20;

pub enum Source {
    Url(String),
    Blob(Blob),
    Buffer(Uint8Array),
}

impl Source {
    /// A JS value (string, Blob/File, ArrayBuffer, Uint8Array) as a source.
    pub fn from_js(v: &JsValue) -> Result<Source, JsValue> {
        if let Some(s) = v.as_string() {
            return Ok(Source::Url(s));
        }
        if let Some(b) = v.dyn_ref::<Blob>() {
            return Ok(Source::Blob(b.clone()));
        }
        if let Some(b) = v.dyn_ref::<js_sys::ArrayBuffer>() {
            return Ok(Source::Buffer(Uint8Array::new(b)));
        }
        if let Some(b) = v.dyn_ref::<Uint8Array>() {
            return Ok(Source::Buffer(b.clone()));
        }
        Err(
            JsError::new("a model source must be a URL string, a File/Blob or an ArrayBuffer")
                .into(),
        )
    }

    pub fn name(&self) -> String {
        match self {
            Source::Url(u) => u
                .rsplit('/')
                .next()
                .unwrap_or(u)
                .split('?')
                .next()
                .unwrap_or("")
                .to_string(),
            Source::Blob(b) => Reflect::get(b, &"name".into())
                .ok()
                .and_then(|n| n.as_string())
                .unwrap_or_else(|| "blob".into()),
            Source::Buffer(_) => "buffer".into(),
        }
    }
}

/// Takes the source's bytes in order: `(bytes, from_cache)`.
pub type Sink<'a> = dyn FnMut(&[u8], bool) -> Result<Flow, JsValue> + 'a;

/// What the sink says after each chunk.
#[derive(PartialEq, Eq)]
pub enum Flow {
    More,
    Enough,
}

#[wasm_bindgen]
extern "C" {
    /// The DOM's `AbortController` (web-sys has it only behind a feature this crate does not
    /// enable): aborting it rejects a `fetch` and a pending body read at once.
    type AbortController;
    #[wasm_bindgen(constructor, catch)]
    fn new() -> Result<AbortController, JsValue>;
    #[wasm_bindgen(method, getter)]
    fn signal(this: &AbortController) -> JsValue;
    #[wasm_bindgen(method)]
    fn abort(this: &AbortController);
}

/// Shared cancellation flag (set from JS while a load or generation is awaiting). A download
/// waiting on a stalled server is woken too: its `fetch` carries [`Cancel::signal`], which
/// [`Cancel::cancel`] aborts.
#[derive(Clone, Default)]
pub struct Cancel(
    pub Rc<Cell<bool>>,
    Rc<std::cell::OnceCell<Option<AbortController>>>,
);

impl Cancel {
    pub fn cancel(&self) {
        self.0.set(true);
        if let Some(Some(c)) = self.1.get() {
            c.abort();
        }
    }

    /// The `AbortSignal` for a `fetch` (`undefined` where `AbortController` is missing).
    fn signal(&self) -> JsValue {
        match self.1.get_or_init(|| AbortController::new().ok()) {
            Some(c) => c.signal(),
            None => JsValue::UNDEFINED,
        }
    }

    /// `Err` once cancelled: an `Error` named `AbortError` (as a DOM abort is) saying what stopped.
    pub fn check(&self, what: &str) -> Result<(), JsValue> {
        if self.0.get() {
            Err(cancelled(what))
        } else {
            Ok(())
        }
    }
}

/// `AbortError: {what} was cancelled`.
pub fn cancelled(what: &str) -> JsValue {
    let e: JsValue = JsError::new(&format!("{what} was cancelled")).into();
    let _ = Reflect::set(&e, &"name".into(), &"AbortError".into());
    e
}

/// Lets the worker's event loop run (a `setTimeout(0)`), so that a cancel message sent while a
/// long synchronous stretch runs (cached bytes or an ArrayBuffer going to the GPU) is seen.
pub async fn yield_to_events() {
    // Through the global object, so that it works on a page (the wasm tests) as in a worker.
    let global = js_sys::global();
    let Ok(set_timeout) =
        Reflect::get(&global, &"setTimeout".into()).and_then(|f| f.dyn_into::<js_sys::Function>())
    else {
        return;
    };
    let p = js_sys::Promise::new(&mut |resolve, _| {
        let _ = set_timeout.call2(&global, &resolve, &0.into());
    });
    let _ = JsFuture::from(p).await;
}

/// Calls `sink(bytes, from_cache)` with the source's bytes in order until it returns
/// `Flow::Enough` or the data ends. `total(size)` is told the full size as soon as it is known.
pub async fn read_all(
    src: &Source,
    store: Option<&Store>,
    cancel: &Cancel,
    total: &mut dyn FnMut(u64),
    sink: &mut Sink<'_>,
) -> Result<(), JsValue> {
    match src {
        Source::Buffer(b) => {
            let len = b.length() as usize;
            total(len as u64);
            let mut off = 0;
            while off < len {
                yield_to_events().await;
                cancel.check(&format!("loading {}", src.name()))?;
                let end = (off + READ).min(len);
                if sink(&b.subarray(off as u32, end as u32).to_vec(), false)? == Flow::Enough {
                    break;
                }
                off = end;
            }
            Ok(())
        }
        Source::Blob(b) => {
            let len = b.size() as u64;
            total(len);
            let mut off = 0u64;
            while off < len {
                cancel.check(&format!("loading {}", src.name()))?;
                let end = (off + READ as u64).min(len);
                let part = b.slice_with_f64_and_f64(off as f64, end as f64)?;
                let buf = JsFuture::from(part.array_buffer()).await?;
                if sink(&Uint8Array::new(&buf).to_vec(), false)? == Flow::Enough {
                    break;
                }
                off = end;
            }
            Ok(())
        }
        Source::Url(url) => read_url(url, store, cancel, total, sink).await,
    }
}

async fn read_url(
    url: &str,
    store: Option<&Store>,
    cancel: &Cancel,
    total: &mut dyn FnMut(u64),
    sink: &mut Sink<'_>,
) -> Result<(), JsValue> {
    let mut cached: Option<CachedFile> = match store {
        Some(s) => Some(s.file(url).await?),
        None => None,
    };
    let result = download(url, store, &mut cached, cancel, total, sink).await;
    // Record what was stored even when the download failed: the next load resumes from there.
    let saved = finish(store, cached).await;
    result.and(saved)
}

/// Replay the cached bytes of `url`, then fetch (and cache) the rest. An incomplete cache is
/// revalidated first (`If-Range`, see [`crate::download`]): its bytes are replayed only when the
/// server continues them, so a file that changed is downloaded again, never spliced.
async fn download(
    url: &str,
    store: Option<&Store>,
    cached: &mut Option<CachedFile>,
    cancel: &Cancel,
    total: &mut dyn FnMut(u64),
    sink: &mut Sink<'_>,
) -> Result<(), JsValue> {
    if cached.as_ref().is_some_and(|c| c.entry.complete) {
        let c = cached.as_ref().expect("checked");
        if let Some(t) = c.entry.total {
            total(t);
        }
        replay(url, c, cancel, sink).await?;
        return Ok(());
    }
    let mut have = cached.as_ref().map_or(0, |c| c.len());
    let validators = cached
        .as_ref()
        .map(|c| c.entry.validators.clone())
        .unwrap_or_default();
    let headers = request_headers(have, &validators);
    let mut resp = fetch(url, &headers, cancel).await?;
    let stored_total = cached.as_ref().and_then(|c| c.entry.total);
    let mut plan = decide(&resp, have, !headers.is_empty(), stored_total)?;
    if plan == Resume::Refetch {
        // The response does not continue the cache: start over with a plain request.
        if let Some(b) = resp.body() {
            let _ = b.cancel();
        }
        if let Some(c) = cached.as_mut() {
            c.reset()?;
        }
        have = 0;
        resp = fetch(url, &[], cancel).await?;
        plan = decide(&resp, 0, false, None)?;
    }
    let full = match plan {
        Resume::Append { total } => total,
        Resume::Restart { total, validators } => {
            if let Some(c) = cached.as_mut() {
                if have > 0 {
                    c.reset()?;
                }
                c.entry.validators = validators;
            }
            have = 0;
            total
        }
        Resume::Complete => {
            if let Some(c) = cached.as_mut() {
                c.entry.complete = true;
                c.entry.total = Some(have);
            }
            total(have);
            if let Some(c) = cached.as_ref() {
                replay(url, c, cancel, sink).await?;
            }
            return Ok(());
        }
        Resume::Refetch => {
            return Err(JsError::new(&format!(
                "downloading {url}: the server answered a plain request with a partial response"
            ))
            .into())
        }
        Resume::Fail(why) => {
            return Err(
                JsError::new(&format!("downloading {url}: {why} {}", resp.status_text())).into(),
            )
        }
    };
    let full = full.or(if have == 0 { None } else { stored_total });
    if let Some(t) = full {
        total(t);
        if let Some(c) = cached.as_mut() {
            c.entry.total = Some(t);
        }
    }
    // The cached part, now known to belong to this file, goes first.
    if have > 0 {
        if let Some(c) = cached.as_ref() {
            if replay(url, c, cancel, sink).await? == Flow::Enough {
                return Ok(());
            }
        }
    }
    let body = resp
        .body()
        .ok_or_else(|| JsError::new(&format!("{url}: the response has no body")))?;
    let reader: ReadableStreamDefaultReader = body.get_reader().unchecked_into();
    let mut since_save = 0u64;
    loop {
        if cancel.0.get() {
            let _ = reader.cancel();
            return cancel.check(&format!("loading {url}"));
        }
        // A cancel aborts the fetch's signal, which rejects this read even when the server stalls.
        let r = JsFuture::from(reader.read()).await.map_err(|e| {
            if cancel.0.get() {
                return cancelled(&format!("loading {url}"));
            }
            JsError::new(&format!(
                "the download of {url} was interrupted ({e:?}); loading again resumes it"
            ))
            .into()
        })?;
        if Reflect::get(&r, &"done".into())?.as_bool().unwrap_or(true) {
            break;
        }
        let chunk = Uint8Array::new(&Reflect::get(&r, &"value".into())?).to_vec();
        if chunk.is_empty() {
            continue;
        }
        if let Some(c) = cached.as_mut() {
            c.append(&chunk)?;
            since_save += chunk.len() as u64;
            if since_save > 32 << 20 {
                since_save = 0;
                if let Some(s) = store {
                    s.save(c).await?;
                }
            }
        }
        if sink(&chunk, false)? == Flow::Enough {
            let _ = reader.cancel();
            return Ok(());
        }
    }
    if let Some(c) = cached.as_mut() {
        c.entry.complete = c.entry.total.is_none_or(|t| t == c.len());
        if c.entry.total.is_none() {
            c.entry.total = Some(c.len());
        }
    }
    Ok(())
}

/// Hands the cached bytes to the sink, in order, letting the worker see a cancel between pieces.
async fn replay(
    url: &str,
    c: &CachedFile,
    cancel: &Cancel,
    sink: &mut Sink<'_>,
) -> Result<Flow, JsValue> {
    let mut buf = vec![0u8; READ];
    let mut off = 0u64;
    while off < c.len() {
        yield_to_events().await;
        cancel.check(&format!("loading {url}"))?;
        let n = c.read_at(off, &mut buf)?;
        if n == 0 {
            break;
        }
        off += n as u64;
        if sink(&buf[..n], true)? == Flow::Enough {
            return Ok(Flow::Enough);
        }
    }
    Ok(Flow::More)
}

async fn fetch(
    url: &str,
    headers: &[(&str, String)],
    cancel: &Cancel,
) -> Result<Response, JsValue> {
    cancel.check(&format!("loading {url}"))?;
    let init = RequestInit::new();
    Reflect::set(&init, &"signal".into(), &cancel.signal())?;
    let req = Request::new_with_str_and_init(url, &init)?;
    for (k, v) in headers {
        req.headers().set(k, v)?;
    }
    let scope: WorkerGlobalScope = js_sys::global().unchecked_into();
    match JsFuture::from(scope.fetch_with_request(&req)).await {
        Ok(resp) => Ok(resp.unchecked_into()),
        Err(_) if cancel.0.get() => Err(cancelled(&format!("loading {url}"))),
        Err(e) => Err(JsError::new(&fetch_failure(&scope, url, &e).await).into()),
    }
}

/// `fetch` rejects with the same `TypeError` when the network fails and when a cross-origin
/// server does not allow the request (CORS). An opaque `no-cors` request tells them apart: it
/// succeeds when the server answered at all.
async fn fetch_failure(scope: &WorkerGlobalScope, url: &str, e: &JsValue) -> String {
    let init = RequestInit::new();
    init.set_mode(web_sys::RequestMode::NoCors);
    if JsFuture::from(scope.fetch_with_str_and_init(url, &init))
        .await
        .is_ok()
    {
        format!(
            "downloading {url} was blocked by the browser (CORS): the server answered but does \
             not allow this page to read the file; it must send Access-Control-Allow-Origin (and \
             expose Content-Length, Content-Range and ETag to resume), or download the file and \
             load it from disk"
        )
    } else {
        let why = e
            .dyn_ref::<js_sys::Error>()
            .map_or_else(|| format!("{e:?}"), |e| String::from(e.message()));
        format!(
            "downloading {url} failed with a network error ({why}): offline, the server \
             unreachable, or blocked by the page's Content-Security-Policy; loading again resumes"
        )
    }
}

/// [`on_response`] on a fetch response's status and headers.
fn decide(
    resp: &Response,
    have: u64,
    ranged: bool,
    stored_total: Option<u64>,
) -> Result<Resume, JsValue> {
    let h = resp.headers();
    let [len, range, enc, etag, modified] = [
        "Content-Length",
        "Content-Range",
        "Content-Encoding",
        "ETag",
        "Last-Modified",
    ]
    .map(|k| h.get(k).ok().flatten());
    let r = download::Response {
        status: resp.status(),
        content_length: len.as_deref(),
        content_range: range.as_deref(),
        content_encoding: enc.as_deref(),
        etag: etag.as_deref(),
        last_modified: modified.as_deref(),
    };
    Ok(on_response(have, ranged, stored_total, &r))
}

async fn finish(store: Option<&Store>, cached: Option<CachedFile>) -> Result<(), JsValue> {
    if let (Some(s), Some(c)) = (store, cached) {
        let saved = s.save(&c).await;
        // Closed even when saving failed (a full disk), or the next load could not open it.
        c.close();
        saved?;
    }
    Ok(())
}
