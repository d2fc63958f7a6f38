//! Push (streamed) loading: a model's bytes are pushed in chunks as they arrive, one GGUF or the
//! shards of a split one in order, and go to the GPU chunk by chunk. The browser's loader
//! (`src/wasm/mod.rs`) drives it from downloads, Blobs and its cache; it lives here, outside the
//! wasm module, so that native tests (`tests/push_load.rs`) run the same shard merging and tensor
//! remapping on a real GPU.

use crate::engine::{Engine, EngineBuilder, LoadOptions};
use crate::gguf::split::{merge_shards, split_count};
use crate::gguf::stream::{Event, GgufStream};
use crate::gguf::Gguf;
use crate::gpu::Gpu;
use crate::{Error, Result};
use std::collections::HashMap;

/// Reads a GGUF header from the first chunks of a file (a split model's shards are all read this
/// far before loading, so every GPU buffer can be planned from the merged header).
#[derive(Default)]
pub struct HeaderReader {
    stream: GgufStream,
}

impl HeaderReader {
    pub fn new() -> Self {
        Self::default()
    }

    /// The file's total size, once known: absurd lengths in the header are then refused.
    pub fn set_file_size(&mut self, size: u64) -> Result<()> {
        self.stream.set_file_size(size)
    }

    /// The header, once the bytes pushed so far hold all of it (later bytes are not needed).
    pub fn push(&mut self, bytes: &[u8]) -> Result<Option<Gguf>> {
        for ev in self.stream.push(bytes)? {
            if let Event::Header(h) = ev {
                return Ok(Some(h));
            }
        }
        Ok(None)
    }
}

/// Loads an engine from pushed bytes: [`PushLoader::push`] every chunk of a file, then
/// [`PushLoader::end_file`]; for a split model, each shard in turn; then [`PushLoader::finish`].
pub struct PushLoader {
    /// Until the first header arrives and the builder takes it.
    gpu: Option<Gpu>,
    opts: LoadOptions,
    /// A split model's merged header, known before its first tensor byte.
    full: Option<Gguf>,
    builder: Option<EngineBuilder>,
    stream: GgufStream,
    /// For each tensor of the file being pushed, its index in the full header.
    index: Vec<usize>,
    /// Bytes of the files already ended.
    done_before: u64,
    files: usize,
}

impl PushLoader {
    /// `shards`: the headers of a split model's shards in order (read with [`HeaderReader`]),
    /// merged here; empty for a single file, whose header then comes from its own bytes.
    pub fn new(gpu: Gpu, opts: LoadOptions, shards: Vec<Gguf>) -> Result<PushLoader> {
        let full = if shards.is_empty() {
            None
        } else {
            Some(merge_shards(shards)?)
        };
        Ok(PushLoader {
            gpu: Some(gpu),
            opts,
            full,
            builder: None,
            stream: GgufStream::new(),
            index: Vec::new(),
            done_before: 0,
            files: 0,
        })
    }

    /// The size of the file being pushed, once known (bounds every tensor before the header
    /// plans any GPU buffer).
    pub fn set_file_size(&mut self, size: u64) -> Result<()> {
        self.stream.set_file_size(size)
    }

    /// Bytes pushed so far, over all files.
    pub fn received(&self) -> u64 {
        self.done_before + self.stream.received()
    }

    /// The next chunk of the file being pushed.
    pub fn push(&mut self, bytes: &[u8]) -> Result<()> {
        for ev in self.stream.push(bytes)? {
            match ev {
                Event::Header(h) => self.header(h)?,
                Event::TensorData {
                    tensor,
                    offset,
                    bytes,
                } => {
                    let b = self.builder.as_mut().expect("the header comes first");
                    b.feed(self.index[tensor], offset, bytes)?;
                }
                Event::Done => {}
            }
        }
        Ok(())
    }

    /// One file's header: the builder plans every buffer from the full header at the first one.
    fn header(&mut self, h: Gguf) -> Result<()> {
        let full = match &self.full {
            Some(f) => f,
            None if split_count(&h)? > 1 => {
                return Err(Error::Gguf(format!(
                    "this file is one shard of a model split in {}: load all its shards together",
                    split_count(&h)?
                )))
            }
            None => &h,
        };
        let files = full.data_offsets.len();
        if self.files == files {
            return Err(Error::Gguf(format!(
                "more files pushed than the {files} of the model"
            )));
        }
        self.index = tensor_index(&h, full)?;
        if self.builder.is_none() {
            let gpu = self.gpu.take().expect("the GPU until the builder exists");
            self.builder = Some(EngineBuilder::new(gpu, full.clone(), self.opts.clone())?);
        }
        Ok(())
    }

    /// The end of one file: it must have been whole. For a split model the next shard follows.
    pub fn end_file(&mut self) -> Result<()> {
        self.stream.finish()?;
        self.files += 1;
        self.done_before += self.stream.received();
        self.stream = GgufStream::new();
        Ok(())
    }

    /// The engine, once every file has ended (a tensor that never arrived is an error).
    pub fn finish(self) -> Result<Engine> {
        if self.stream.received() > 0 {
            return Err(Error::Gguf("the last file was not ended".into()));
        }
        let b = self
            .builder
            .ok_or_else(|| Error::Gguf("the model source was empty".into()))?;
        let files = b.header().data_offsets.len();
        if self.files < files {
            return Err(Error::Gguf(format!(
                "{} of the model's {files} files were pushed",
                self.files
            )));
        }
        b.finish()
    }
}

/// For each tensor of one file's header, its index in the (possibly merged) full header. The
/// shards' headers were read before their data, so a tensor missing there or of another shape
/// means a file changed in between (or came from another model).
fn tensor_index(shard: &Gguf, full: &Gguf) -> Result<Vec<usize>> {
    let by_name: HashMap<&str, usize> = full
        .tensors
        .iter()
        .enumerate()
        .map(|(i, t)| (t.name.as_str(), i))
        .collect();
    shard
        .tensors
        .iter()
        .map(|t| match by_name.get(t.name.as_str()) {
            Some(&i) if full.tensors[i].ty == t.ty && full.tensors[i].dims == t.dims => Ok(i),
            Some(_) => Err(Error::Gguf(format!(
                "tensor '{}' has another type or shape than when its header was read",
                t.name
            ))),
            None => Err(Error::Gguf(format!(
                "tensor '{}' is in no header read before loading",
                t.name
            ))),
        })
        .collect()
}
