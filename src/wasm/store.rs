//! The offline model cache in the Origin Private File System (OPFS), used from the worker through
//! synchronous access handles: a download is written as it arrives, so a cut download resumes
//! from the bytes already stored (HTTP Range), and a complete one loads with the network off.
//!
//! Each model is `<hash>.gguf` plus `<hash>.json` ({url, total, complete}) in `attend-models/`.

use js_sys::{Object, Promise, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    FileSystemDirectoryHandle, FileSystemFileHandle, FileSystemGetFileOptions,
    FileSystemReadWriteOptions, FileSystemSyncAccessHandle, WorkerGlobalScope,
};

const DIR: &str = "attend-models";

fn js_err(context: &str, e: JsValue) -> JsValue {
    let name = Reflect::get(&e, &"name".into())
        .ok()
        .and_then(|v| v.as_string())
        .unwrap_or_default();
    if name == "QuotaExceededError" {
        // Named as the DOM names it, so an app can offer the two ways out.
        let e: JsValue = JsError::new(&format!(
            "{context}: the browser's storage quota is full; free some space (delete cached \
             models: deleteCachedModel) and try again, or load without caching ({{ cache: false }})"
        ))
        .into();
        let _ = Reflect::set(&e, &"name".into(), &"QuotaExceededError".into());
        return e;
    }
    let msg = Reflect::get(&e, &"message".into())
        .ok()
        .and_then(|v| v.as_string())
        .unwrap_or_else(|| format!("{e:?}"));
    JsError::new(&format!("{context}: {msg}")).into()
}

async fn wait(p: Promise, context: &str) -> Result<JsValue, JsValue> {
    JsFuture::from(p).await.map_err(|e| js_err(context, e))
}

/// FNV-1a, enough to turn a URL into a file name.
fn key(url: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in url.bytes() {
        h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

#[derive(Clone)]
pub struct Store {
    dir: FileSystemDirectoryHandle,
}

#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, Default)]
pub struct Entry {
    pub url: String,
    pub bytes: u64,
    pub total: Option<u64>,
    pub complete: bool,
    /// ETag / Last-Modified of the response the cached bytes came from (sent as `If-Range`).
    #[serde(default)]
    pub validators: crate::download::Validators,
}

impl Store {
    pub async fn open() -> Result<Store, JsValue> {
        let scope: WorkerGlobalScope = js_sys::global()
            .dyn_into()
            .map_err(|_| JsError::new("the model cache works only inside a Web Worker"))?;
        let root: FileSystemDirectoryHandle = wait(
            scope.navigator().storage().get_directory(),
            "opening the origin private file system",
        )
        .await?
        .unchecked_into();
        let opts = web_sys::FileSystemGetDirectoryOptions::new();
        opts.set_create(true);
        let dir = wait(
            root.get_directory_handle_with_options(DIR, &opts),
            "opening the model cache",
        )
        .await?
        .unchecked_into();
        Ok(Store { dir })
    }

    async fn handle(
        &self,
        name: &str,
        create: bool,
    ) -> Result<Option<FileSystemSyncAccessHandle>, JsValue> {
        let opts = FileSystemGetFileOptions::new();
        opts.set_create(create);
        let file = match JsFuture::from(self.dir.get_file_handle_with_options(name, &opts)).await {
            Ok(f) => f.unchecked_into::<FileSystemFileHandle>(),
            Err(_) if !create => return Ok(None),
            Err(e) => return Err(js_err("creating a cache file", e)),
        };
        let h = wait(file.create_sync_access_handle(), "opening a cache file").await?;
        Ok(Some(h.unchecked_into()))
    }

    /// The whole of the small file `name` (metadata, tuned shapes), or None if there is none.
    async fn read_small(&self, name: &str, what: &str) -> Result<Option<Vec<u8>>, JsValue> {
        let Some(h) = self.handle(name, false).await? else {
            return Ok(None);
        };
        let size = h.get_size().map_err(|e| js_err(what, e))? as usize;
        let mut buf = vec![0u8; size];
        let read = h.read_with_u8_array(&mut buf);
        h.close();
        read.map_err(|e| js_err(what, e))?;
        Ok(Some(buf))
    }

    /// Replace the small file `name` with `bytes`.
    async fn write_small(&self, name: &str, bytes: &[u8], what: &str) -> Result<(), JsValue> {
        let h = self.handle(name, true).await?.expect("created");
        let written = (|| {
            h.truncate_with_u32(0)?;
            h.write_with_u8_array(bytes)?;
            h.flush()
        })();
        // Closed also when writing failed (a full disk): an open handle locks the file.
        h.close();
        written.map_err(|e| js_err(what, e))
    }

    async fn read_entry(&self, k: &str) -> Result<Option<Entry>, JsValue> {
        let bytes = self
            .read_small(&format!("{k}.json"), "reading cache metadata")
            .await?;
        Ok(bytes.and_then(|b| serde_json::from_slice(&b).ok()))
    }

    async fn write_entry(&self, k: &str, e: &Entry) -> Result<(), JsValue> {
        let bytes = serde_json::to_vec(e).expect("entry serializes");
        self.write_small(&format!("{k}.json"), &bytes, "writing cache metadata")
            .await
    }

    /// A small text file of the cache (not a model), or None if there is none.
    pub async fn read_text(&self, name: &str) -> Result<Option<String>, JsValue> {
        let bytes = self.read_small(name, "reading a cache file").await?;
        Ok(bytes.and_then(|b| String::from_utf8(b).ok()))
    }

    /// Replace the small text file `name` of the cache.
    pub async fn write_text(&self, name: &str, text: &str) -> Result<(), JsValue> {
        self.write_small(name, text.as_bytes(), "writing a cache file")
            .await
    }

    /// The cached bytes of `url` (possibly partial), opened for reading and appending.
    pub async fn file(&self, url: &str) -> Result<CachedFile, JsValue> {
        let k = key(url);
        let mut entry = self.read_entry(&k).await?.unwrap_or_default();
        let handle = self
            .handle(&format!("{k}.gguf"), true)
            .await?
            .expect("created");
        let on_disk = handle
            .get_size()
            .map_err(|e| js_err("reading the model cache", e))? as u64;
        if entry.url == url {
            entry.bytes = on_disk; // the data file is the truth; metadata may lag behind it
            entry.complete &= entry.total == Some(on_disk);
        } else {
            // No metadata (or a hash collision): start over.
            handle
                .truncate_with_u32(0)
                .map_err(|e| js_err("resetting the model cache", e))?;
            entry = Entry {
                url: url.to_string(),
                ..Default::default()
            };
        }
        Ok(CachedFile {
            key: k,
            handle,
            entry,
        })
    }

    pub async fn save(&self, f: &CachedFile) -> Result<(), JsValue> {
        f.handle
            .flush()
            .map_err(|e| js_err("writing the model cache", e))?;
        self.write_entry(&f.key, &f.entry).await
    }

    pub async fn list(&self) -> Result<Vec<Entry>, JsValue> {
        let mut out = Vec::new();
        let iter = self.dir.keys();
        loop {
            let next = wait(iter.next()?, "listing the model cache").await?;
            if Reflect::get(&next, &"done".into())?
                .as_bool()
                .unwrap_or(true)
            {
                break;
            }
            let name = Reflect::get(&next, &"value".into())?
                .as_string()
                .unwrap_or_default();
            if let Some(k) = name.strip_suffix(".json") {
                if let Some(e) = self.read_entry(k).await? {
                    out.push(e);
                }
            }
        }
        Ok(out)
    }

    pub async fn delete(&self, url: &str) -> Result<bool, JsValue> {
        let k = key(url);
        let mut found = false;
        for name in [format!("{k}.gguf"), format!("{k}.json")] {
            found |= JsFuture::from(self.dir.remove_entry(&name)).await.is_ok();
        }
        Ok(found)
    }
}

pub struct CachedFile {
    key: String,
    handle: FileSystemSyncAccessHandle,
    pub entry: Entry,
}

impl CachedFile {
    pub fn len(&self) -> u64 {
        self.entry.bytes
    }

    /// Read up to `buf.len()` bytes at `offset`; returns how many were read.
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize, JsValue> {
        let opts = FileSystemReadWriteOptions::new();
        opts.set_at(offset as f64);
        let n = self
            .handle
            .read_with_u8_array_and_options(buf, &opts)
            .map_err(|e| js_err("reading the model cache", e))?;
        Ok(n as usize)
    }

    /// Append downloaded bytes.
    pub fn append(&mut self, bytes: &[u8]) -> Result<(), JsValue> {
        let opts = FileSystemReadWriteOptions::new();
        opts.set_at(self.entry.bytes as f64);
        self.handle
            .write_with_u8_array_and_options(bytes, &opts)
            .map_err(|e| js_err("storing the download", e))?;
        self.entry.bytes += bytes.len() as u64;
        Ok(())
    }

    /// Drop the cached bytes (the file changed on the server): the download starts over.
    pub fn reset(&mut self) -> Result<(), JsValue> {
        self.handle
            .truncate_with_u32(0)
            .map_err(|e| js_err("resetting the model cache", e))?;
        self.entry = Entry {
            url: std::mem::take(&mut self.entry.url),
            ..Default::default()
        };
        Ok(())
    }

    pub fn close(self) {
        self.handle.close();
    }
}

/// `{ url, bytes, complete }` objects for JS.
pub fn entries_to_js(entries: &[Entry]) -> JsValue {
    let arr = js_sys::Array::new();
    for e in entries {
        let o = Object::new();
        let _ = Reflect::set(&o, &"url".into(), &e.url.clone().into());
        let _ = Reflect::set(&o, &"bytes".into(), &(e.bytes as f64).into());
        let _ = Reflect::set(&o, &"complete".into(), &e.complete.into());
        arr.push(&o);
    }
    arr.into()
}
