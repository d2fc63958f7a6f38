//! A small GGUF v3 writer (little-endian): metadata plus tensors given as raw bytes of any type.
//! Used by tests and to make split models; it holds the tensor bytes in memory.

use std::io::Write;

use super::split::{KEY_SPLIT_COUNT, KEY_SPLIT_NO, KEY_SPLIT_TENSORS};
use super::{Gguf, TensorInfo, Value};
use crate::quant::GgmlType;
use crate::{Error, Result};

#[derive(Clone, Debug)]
struct Tensor {
    name: String,
    dims: Vec<u64>,
    ty: GgmlType,
    bytes: Vec<u8>,
}

#[derive(Clone, Debug)]
pub struct GgufWriter {
    alignment: u64,
    metadata: Vec<(String, Value)>,
    tensors: Vec<Tensor>,
}

impl Default for GgufWriter {
    fn default() -> Self {
        Self::new()
    }
}

fn type_id(v: &Value) -> u32 {
    match v {
        Value::U8(_) => 0,
        Value::I8(_) => 1,
        Value::U16(_) => 2,
        Value::I16(_) => 3,
        Value::U32(_) => 4,
        Value::I32(_) => 5,
        Value::F32(_) => 6,
        Value::Bool(_) => 7,
        Value::String(_) => 8,
        Value::Array(_) => 9,
        Value::U64(_) => 10,
        Value::I64(_) => 11,
        Value::F64(_) => 12,
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_value(out: &mut Vec<u8>, key: &str, v: &Value) -> Result<()> {
    match v {
        Value::U8(x) => out.push(*x),
        Value::I8(x) => out.push(*x as u8),
        Value::U16(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I16(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::U32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::F32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::U64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::F64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::Bool(x) => out.push(*x as u8),
        Value::String(s) => put_str(out, s),
        Value::Array(items) => {
            // Arrays are homogeneous in GGUF; an empty one is written as an array of u8.
            let elem = items.first().map_or(0, type_id);
            if items.iter().any(|x| type_id(x) != elem) {
                return Err(Error::Gguf(format!(
                    "metadata '{key}': array mixes value types"
                )));
            }
            out.extend_from_slice(&elem.to_le_bytes());
            out.extend_from_slice(&(items.len() as u64).to_le_bytes());
            for x in items {
                put_value(out, key, x)?;
            }
        }
    }
    Ok(())
}

impl GgufWriter {
    pub fn new() -> Self {
        GgufWriter {
            alignment: 32,
            metadata: Vec::new(),
            tensors: Vec::new(),
        }
    }

    /// A copy of a model (its metadata but the split keys, every tensor read through `read`),
    /// ready to be split again: what `attend split` writes, and what the split-loading tests
    /// push, natively and in the browser.
    pub fn copy_of(
        g: &Gguf,
        mut read: impl FnMut(&TensorInfo) -> Result<Vec<u8>>,
    ) -> Result<GgufWriter> {
        let mut w = GgufWriter::with_metadata_of(g)?;
        for t in &g.tensors {
            w.add_tensor(&t.name, &t.dims, t.ty, read(t)?)?;
        }
        Ok(w)
    }

    /// A writer with `g`'s alignment and metadata (but the split keys) and no tensors yet: for
    /// copies whose tensors are changed, added or reordered.
    pub fn with_metadata_of(g: &Gguf) -> Result<GgufWriter> {
        let mut w = GgufWriter::new();
        w.set_alignment(g.alignment as u32)?;
        for (k, v) in &g.metadata {
            if !k.starts_with("split.") && k != "general.alignment" {
                w.add_metadata(k, v.clone());
            }
        }
        Ok(w)
    }

    /// Sets the data alignment (a power of two) and records it as `general.alignment`.
    pub fn set_alignment(&mut self, alignment: u32) -> Result<()> {
        if !alignment.is_power_of_two() {
            return Err(Error::Gguf(format!(
                "alignment {alignment} is not a power of two"
            )));
        }
        self.alignment = alignment as u64;
        self.add_metadata("general.alignment", Value::U32(alignment));
        Ok(())
    }

    /// Adds a key, or replaces its value (keeping its position).
    pub fn add_metadata(&mut self, key: &str, value: Value) {
        match self.metadata.iter_mut().find(|(k, _)| k == key) {
            Some(kv) => kv.1 = value,
            None => self.metadata.push((key.to_owned(), value)),
        }
    }

    /// Adds a tensor; `bytes` must hold exactly the tensor's encoded size.
    pub fn add_tensor(
        &mut self,
        name: &str,
        dims: &[u64],
        ty: GgmlType,
        bytes: Vec<u8>,
    ) -> Result<()> {
        let info = TensorInfo {
            name: name.to_owned(),
            dims: dims.to_vec(),
            ty,
            offset: 0,
            shard: 0,
        };
        let elements = dims.iter().try_fold(1u64, |a, &d| a.checked_mul(d));
        if elements.is_none() || dims.first().copied().unwrap_or(1) % ty.block_len() as u64 != 0 {
            return Err(Error::Gguf(format!(
                "tensor '{name}': bad dims {dims:?} for {}",
                ty.name()
            )));
        }
        if info.byte_size() != bytes.len() as u64 {
            return Err(Error::Gguf(format!(
                "tensor '{name}': {} bytes given, {} {dims:?} needs {}",
                bytes.len(),
                ty.name(),
                info.byte_size()
            )));
        }
        if self.tensors.iter().any(|t| t.name == name) {
            return Err(Error::Gguf(format!("tensor '{name}' added twice")));
        }
        self.tensors.push(Tensor {
            name: name.to_owned(),
            dims: dims.to_vec(),
            ty,
            bytes,
        });
        Ok(())
    }

    /// The whole file.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let a = self.alignment as usize;
        let pad = |out: &mut Vec<u8>| out.resize(out.len().div_ceil(a) * a, 0);
        let mut out = self.header()?;
        for t in &self.tensors {
            out.extend_from_slice(&t.bytes);
            pad(&mut out);
        }
        Ok(out)
    }

    /// Writes the file at `path` as [`to_bytes`](Self::to_bytes) would make it, but tensors of
    /// zeros are left as holes (never written, so a file system with sparse files stores no
    /// blocks for them): the multi-GiB test files cost no disk, and no copy of the data is made.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn write_file(&self, path: &std::path::Path) -> Result<()> {
        use std::io::{Seek, SeekFrom};
        let io = |e: std::io::Error| Error::Io(format!("{}: {e}", path.display()));
        let mut f = std::fs::File::create(path).map_err(io)?;
        let header = self.header()?;
        f.write_all(&header).map_err(io)?;
        let mut at = header.len() as u64;
        for t in &self.tensors {
            if t.bytes.iter().any(|&b| b != 0) {
                f.seek(SeekFrom::Start(at)).map_err(io)?;
                f.write_all(&t.bytes).map_err(io)?;
            }
            at = (at + t.bytes.len() as u64).div_ceil(self.alignment) * self.alignment;
        }
        f.set_len(at).map_err(io)
    }

    /// The header: magic, counts, metadata and tensor infos, padded to the alignment.
    fn header(&self) -> Result<Vec<u8>> {
        let a = self.alignment as usize;
        let mut out = Vec::new();
        out.extend_from_slice(b"GGUF");
        out.extend_from_slice(&3u32.to_le_bytes());
        out.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        out.extend_from_slice(&(self.metadata.len() as u64).to_le_bytes());
        for (k, v) in &self.metadata {
            put_str(&mut out, k);
            out.extend_from_slice(&type_id(v).to_le_bytes());
            put_value(&mut out, k, v)?;
        }
        let mut offset = 0u64;
        for t in &self.tensors {
            put_str(&mut out, &t.name);
            out.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
            for d in &t.dims {
                out.extend_from_slice(&d.to_le_bytes());
            }
            out.extend_from_slice(&t.ty.id().to_le_bytes());
            out.extend_from_slice(&offset.to_le_bytes());
            offset = (offset + t.bytes.len() as u64).div_ceil(self.alignment) * self.alignment;
        }
        out.resize(out.len().div_ceil(a) * a, 0);
        Ok(out)
    }

    pub fn write_to(&self, mut w: impl Write) -> Result<()> {
        w.write_all(&self.to_bytes()?)?;
        Ok(())
    }

    /// Splits into shards of at most `max_tensors` tensors each, as llama.cpp's gguf-split does:
    /// shard 0 gets all metadata, every shard gets `split.no`, `split.count`, `split.tensors.count`.
    pub fn split(&self, max_tensors: usize) -> Result<Vec<GgufWriter>> {
        if max_tensors == 0 {
            return Err(Error::Gguf("split: max_tensors must be at least 1".into()));
        }
        let groups: Vec<&[Tensor]> = if self.tensors.is_empty() {
            vec![&[]]
        } else {
            self.tensors.chunks(max_tensors).collect()
        };
        let count = u16::try_from(groups.len())
            .map_err(|_| Error::Gguf(format!("split: {} shards is too many", groups.len())))?;
        let total = i32::try_from(self.tensors.len())
            .map_err(|_| Error::Gguf("split: too many tensors".into()))?;
        Ok(groups
            .into_iter()
            .enumerate()
            .map(|(i, ts)| {
                let mut w = GgufWriter::new();
                w.alignment = self.alignment;
                if i == 0 {
                    w.metadata = self.metadata.clone();
                } else if self.alignment != 32 {
                    w.add_metadata("general.alignment", Value::U32(self.alignment as u32));
                }
                w.add_metadata(KEY_SPLIT_NO, Value::U16(i as u16));
                w.add_metadata(KEY_SPLIT_COUNT, Value::U16(count));
                w.add_metadata(KEY_SPLIT_TENSORS, Value::I32(total));
                w.tensors = ts.to_vec();
                w
            })
            .collect())
    }

    /// Writes `dir/prefix-0000i-of-0000N.gguf` shards; returns their paths in order.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn write_split(
        &self,
        dir: &std::path::Path,
        prefix: &str,
        max_tensors: usize,
    ) -> Result<Vec<std::path::PathBuf>> {
        let shards = self.split(max_tensors)?;
        let n = shards.len() as u32;
        let mut paths = Vec::new();
        for (i, w) in shards.iter().enumerate() {
            let p = dir.join(super::split::split_name(prefix, i as u32 + 1, n));
            w.write_file(&p)?;
            paths.push(p);
        }
        Ok(paths)
    }
}
