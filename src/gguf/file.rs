//! Native GGUF files: only the header is read on open; tensor bytes are read on demand
//! (seek + read), so a model never has to sit in memory as a whole. Split models are found by
//! name from any of their shards and presented as one `Gguf`.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::split::{merge_shards, parse_split_name, split_count, split_name};
use super::stream::{Event, GgufStream};
use super::{Gguf, TensorInfo};
use crate::{Error, Result};

/// How much of the file is read per step while parsing the header.
const HEADER_CHUNK: usize = 1 << 20;

struct Shard {
    path: PathBuf,
    size: u64,
    file: Mutex<File>,
}

pub struct GgufFile {
    pub gguf: Gguf,
    shards: Vec<Shard>,
}

fn io_err(path: &Path, e: std::io::Error) -> Error {
    Error::Io(format!("{}: {e}", path.display()))
}

/// Reads just the header of one file (no split handling).
pub fn read_header(path: &Path) -> Result<Gguf> {
    let mut f = File::open(path).map_err(|e| io_err(path, e))?;
    read_header_from(&mut f, path)
}

fn read_header_from(f: &mut File, path: &Path) -> Result<Gguf> {
    let size = f.metadata().map_err(|e| io_err(path, e))?.len();
    let mut stream = GgufStream::with_file_size(Some(size));
    let mut buf = vec![0u8; HEADER_CHUNK];
    loop {
        let n = f.read(&mut buf).map_err(|e| io_err(path, e))?;
        if n == 0 {
            stream.finish()?;
            return Err(Error::Gguf("header incomplete".into()));
        }
        for ev in stream.push(&buf[..n])? {
            if let Event::Header(g) = ev {
                return Ok(g);
            }
        }
    }
}

impl GgufFile {
    /// Opens a GGUF file, or any shard of a split model (the others are looked up next to it
    /// by name). Reads headers only.
    pub fn open(path: impl AsRef<Path>) -> Result<GgufFile> {
        let path = path.as_ref();
        let mut file = File::open(path).map_err(|e| io_err(path, e))?;
        let gguf = read_header_from(&mut file, path)?;
        let count = split_count(&gguf)?;
        if count <= 1 {
            let size = file.metadata().map_err(|e| io_err(path, e))?.len();
            let shard = Shard {
                path: path.to_owned(),
                size,
                file: Mutex::new(file),
            };
            return Ok(GgufFile {
                gguf,
                shards: vec![shard],
            });
        }
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let Some((prefix, _, named_count)) = parse_split_name(name) else {
            return Err(Error::Gguf(format!(
                "{} is shard of a {count}-file split model, but its name is not NAME-0000i-of-0000N.gguf",
                path.display()
            )));
        };
        if named_count as u64 != count {
            return Err(Error::Gguf(format!(
                "{}: the name says {named_count} shards, split.count says {count}",
                path.display()
            )));
        }
        let dir = path.parent().unwrap_or(Path::new(""));
        let mut headers = Vec::new();
        let mut shards = Vec::new();
        for no in 1..=named_count {
            let p = dir.join(split_name(prefix, no, named_count));
            let mut f = File::open(&p).map_err(|e| io_err(&p, e))?;
            let g = read_header_from(&mut f, &p)
                .map_err(|e| Error::Gguf(format!("{}: {e}", p.display())))?;
            let size = f.metadata().map_err(|e| io_err(&p, e))?.len();
            headers.push(g);
            shards.push(Shard {
                path: p,
                size,
                file: Mutex::new(f),
            });
        }
        let gguf = merge_shards(headers)?;
        Ok(GgufFile { gguf, shards })
    }

    /// The (merged) header: metadata from shard 0, tensors of every shard.
    pub fn header(&self) -> &Gguf {
        &self.gguf
    }
    pub fn gguf(&self) -> &Gguf {
        &self.gguf
    }

    /// The files read, in shard order (one for a single-file model).
    pub fn paths(&self) -> Vec<&Path> {
        self.shards.iter().map(|s| s.path.as_path()).collect()
    }

    /// All bytes of a tensor.
    pub fn read_tensor(&self, t: &TensorInfo) -> Result<Vec<u8>> {
        self.read_range(t, 0, t.byte_size())
    }

    /// Bytes `offset .. offset + len` of a tensor.
    pub fn read_range(&self, t: &TensorInfo, offset: u64, len: u64) -> Result<Vec<u8>> {
        let n = usize::try_from(len).map_err(|_| {
            Error::Gguf(format!(
                "tensor '{}': range of {len} bytes too large",
                t.name
            ))
        })?;
        self.check_range(t, offset, len)?;
        let mut out = vec![0u8; n];
        self.read_range_into(t, offset, &mut out)?;
        Ok(out)
    }

    /// Fills `out` with the tensor's bytes starting at `offset` (no allocation).
    pub fn read_range_into(&self, t: &TensorInfo, offset: u64, out: &mut [u8]) -> Result<()> {
        let abs = self.check_range(t, offset, out.len() as u64)?;
        let shard = &self.shards[t.shard];
        let mut f = shard
            .file
            .lock()
            .map_err(|_| Error::Io(format!("{}: file lock poisoned", shard.path.display())))?;
        f.seek(SeekFrom::Start(abs))
            .map_err(|e| io_err(&shard.path, e))?;
        f.read_exact(out).map_err(|e| io_err(&shard.path, e))
    }

    /// Checks that the range lies in the tensor and in its file; returns its absolute offset.
    fn check_range(&self, t: &TensorInfo, offset: u64, len: u64) -> Result<u64> {
        let bad = |why: &str| {
            Error::Gguf(format!(
                "tensor '{}': cannot read {len} bytes at offset {offset}: {why}",
                t.name
            ))
        };
        let shard = self
            .shards
            .get(t.shard)
            .ok_or_else(|| bad("no such shard"))?;
        let data = *self
            .gguf
            .data_offsets
            .get(t.shard)
            .ok_or_else(|| bad("no such shard"))?;
        let end = offset.checked_add(len).ok_or_else(|| bad("overflow"))?;
        if end > t.byte_size() {
            return Err(bad(&format!("the tensor has {} bytes", t.byte_size())));
        }
        let abs = data
            .checked_add(t.offset)
            .and_then(|a| a.checked_add(offset))
            .ok_or_else(|| bad("overflow"))?;
        if abs.checked_add(len).is_none_or(|e| e > shard.size) {
            return Err(bad("past the end of the file"));
        }
        Ok(abs)
    }
}
