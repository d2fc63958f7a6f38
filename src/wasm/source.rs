//! Byte sources for model loading in the browser: a URL (streamed `fetch`, stored in the OPFS
//! cache as it arrives, resumed with a Range request), a `Blob`/`File`, or an `ArrayBuffer`. Each
//! hands its bytes to a synchronous sink chunk by chunk, so the file never sits in wasm memory.

use super::store::{CachedFile, Store};
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

/// What the sink says after each chunk.
#[derive(PartialEq, Eq)]
pub enum Flow {
    More,
    Enough,
}

/// Shared cancellation flag (set from JS while a load or generation is awaiting).
#[derive(Clone, Default)]
pub struct Cancel(pub Rc<Cell<bool>>);

impl Cancel {
    pub fn check(&self, what: &str) -> Result<(), JsValue> {
        if self.0.get() {
            Err(JsError::new(&format!("{what} was cancelled")).into())
        } else {
            Ok(())
        }
    }
}

/// Calls `sink(bytes, from_cache)` with the source's bytes in order until it returns
/// `Flow::Enough` or the data ends. `total(size)` is told the full size as soon as it is known.
pub async fn read_all(
    src: &Source,
    store: Option<&Store>,
    cancel: &Cancel,
    total: &mut dyn FnMut(u64),
    sink: &mut dyn FnMut(&[u8], bool) -> Result<Flow, JsValue>,
) -> Result<(), JsValue> {
    match src {
        Source::Buffer(b) => {
            let len = b.length() as usize;
            total(len as u64);
            let mut off = 0;
            while off < len {
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
                cancel.check("loading")?;
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
    sink: &mut dyn FnMut(&[u8], bool) -> Result<Flow, JsValue>,
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

/// Replay the cached bytes of `url`, then fetch (and cache) the rest.
async fn download(
    url: &str,
    store: Option<&Store>,
    cached: &mut Option<CachedFile>,
    cancel: &Cancel,
    total: &mut dyn FnMut(u64),
    sink: &mut dyn FnMut(&[u8], bool) -> Result<Flow, JsValue>,
) -> Result<(), JsValue> {
    // 1. Replay what the cache holds.
    let mut off = 0u64;
    if let Some(c) = cached.as_ref() {
        if let Some(t) = c.entry.total {
            total(t);
        }
        let mut buf = vec![0u8; READ];
        while off < c.len() {
            cancel.check("loading")?;
            let n = c.read_at(off, &mut buf)?;
            if n == 0 {
                break;
            }
            off += n as u64;
            if sink(&buf[..n], true)? == Flow::Enough {
                return Ok(());
            }
        }
        if c.entry.complete {
            return Ok(());
        }
    }
    // 2. Download the rest, asking only for the missing bytes.
    let init = RequestInit::new();
    let req = Request::new_with_str_and_init(url, &init)?;
    if off > 0 {
        req.headers().set("Range", &format!("bytes={off}-"))?;
    }
    let scope: WorkerGlobalScope = js_sys::global().unchecked_into();
    let resp: Response = JsFuture::from(scope.fetch_with_request(&req))
        .await
        .map_err(|e| {
            JsError::new(&format!(
                "downloading {url} failed (offline, or the server refused): {e:?}"
            ))
        })?
        .unchecked_into();
    let mut skip = 0u64;
    match resp.status() {
        206 => {}
        200 if off > 0 => {
            // The server ignored the Range header: drop the bytes we already have.
            skip = off;
        }
        200 => {}
        416 if off > 0 => {
            // Nothing left to fetch: the cache already holds everything.
            if let Some(c) = cached.as_mut() {
                c.entry.complete = true;
                c.entry.total = Some(off);
            }
            return Ok(());
        }
        s => {
            return Err(JsError::new(&format!(
                "downloading {url}: HTTP {s} {}",
                resp.status_text()
            ))
            .into())
        }
    }
    let h = resp.headers();
    let length = h.get("Content-Length")?.and_then(|v| v.parse::<u64>().ok());
    let full = match h
        .get("Content-Range")?
        .and_then(|r| r.rsplit('/').next().and_then(|t| t.parse::<u64>().ok()))
    {
        Some(t) => Some(t),
        None => length.map(|l| if resp.status() == 206 { l + off } else { l }),
    };
    if let Some(t) = full {
        total(t);
        if let Some(c) = cached.as_mut() {
            c.entry.total = Some(t);
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
            return cancel.check("loading");
        }
        let r = JsFuture::from(reader.read()).await.map_err(|e| {
            JsError::new(&format!(
                "the download of {url} was interrupted ({e:?}); loading again resumes it"
            ))
        })?;
        if Reflect::get(&r, &"done".into())?.as_bool().unwrap_or(true) {
            break;
        }
        let chunk = Uint8Array::new(&Reflect::get(&r, &"value".into())?).to_vec();
        let mut data: &[u8] = &chunk;
        if skip > 0 {
            let k = (skip as usize).min(data.len());
            data = &data[k..];
            skip -= k as u64;
        }
        if data.is_empty() {
            continue;
        }
        if let Some(c) = cached.as_mut() {
            c.append(data)?;
            since_save += data.len() as u64;
            if since_save > 32 << 20 {
                since_save = 0;
                if let Some(s) = store {
                    s.save(c).await?;
                }
            }
        }
        if sink(data, false)? == Flow::Enough {
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

async fn finish(store: Option<&Store>, cached: Option<CachedFile>) -> Result<(), JsValue> {
    if let (Some(s), Some(c)) = (store, cached) {
        s.save(&c).await?;
        c.close();
    }
    Ok(())
}
