//! GGUF (v2, v3): metadata, tensor infos and lazily read tensor data.
//!
//! This file fixes the types everything else uses. `reader.rs` parses headers (one resumable
//! parser behind every entry point), `stream.rs` is the push parser for downloads, `file.rs`
//! reads native files (and split models) lazily, `split.rs` joins shards, `writer.rs` writes v3.
//!
//! Entry points: `GgufFile::open(path)` (native; any shard of a split model), `Gguf::parse(bytes)`
//! (a whole file in memory), `GgufStream::push(chunk)` (downloads; emits `Event::Header`, then
//! `Event::TensorData` slices in file order, then `Event::Done`), `merge_shards(headers)`.
//! Every malformed input is an `Error::Gguf` naming the problem; lengths read from the file are
//! bounded by the bytes that can follow (or `MAX_HEADER_BYTES`) before anything is allocated.

use crate::quant::GgmlType;
use crate::{Error, Result};

#[cfg(not(target_arch = "wasm32"))]
pub mod file;
mod layout;
mod reader;
pub mod split;
pub mod stream;
pub mod writer;

#[cfg(not(target_arch = "wasm32"))]
pub use file::{read_header, GgufFile};
pub use layout::{parse_header, DEFAULT_ALIGNMENT};
pub use reader::MAX_HEADER_BYTES;
pub use split::{
    merge_shards, parse_split_name, split_count, split_name, KEY_SPLIT_COUNT, KEY_SPLIT_NO,
    KEY_SPLIT_TENSORS,
};
pub use stream::{Event, GgufStream};
pub use writer::GgufWriter;

/// A metadata value, typed as in the file.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    U64(u64),
    I64(i64),
    F32(f32),
    F64(f64),
    Bool(bool),
    String(String),
    Array(Vec<Value>),
}

impl Value {
    /// Any integer type as u64 (negative values are refused).
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::U8(v) => Some(v as u64),
            Value::U16(v) => Some(v as u64),
            Value::U32(v) => Some(v as u64),
            Value::U64(v) => Some(v),
            Value::I8(v) => u64::try_from(v).ok(),
            Value::I16(v) => u64::try_from(v).ok(),
            Value::I32(v) => u64::try_from(v).ok(),
            Value::I64(v) => u64::try_from(v).ok(),
            Value::Bool(v) => Some(v as u64),
            _ => None,
        }
    }
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Value::I8(v) => Some(v as i64),
            Value::I16(v) => Some(v as i64),
            Value::I32(v) => Some(v as i64),
            Value::I64(v) => Some(v),
            _ => self.as_u64().and_then(|v| i64::try_from(v).ok()),
        }
    }
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::F32(v) => Some(v as f64),
            Value::F64(v) => Some(v),
            _ => self.as_i64().map(|v| v as f64),
        }
    }
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Value::Bool(b) => Some(b),
            _ => self.as_u64().map(|v| v != 0),
        }
    }
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }
}

/// One tensor's description. `offset` is relative to the start of its file's tensor data.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    /// Dimensions as GGUF stores them: `dims[0]` is the contiguous (innermost) one.
    pub dims: Vec<u64>,
    pub ty: GgmlType,
    pub offset: u64,
    /// Which file of a split model holds it (0 for single-file models).
    pub shard: usize,
}

impl TensorInfo {
    /// Saturates instead of overflowing (the parser refuses dims whose product overflows).
    pub fn elements(&self) -> u64 {
        self.dims.iter().fold(1u64, |a, &d| a.saturating_mul(d))
    }
    pub fn byte_size(&self) -> u64 {
        (self.elements() / self.ty.block_len() as u64).saturating_mul(self.ty.block_bytes() as u64)
    }
}

/// Everything before the tensor data: version, metadata (in file order) and tensor infos.
#[derive(Clone, Debug, Default)]
pub struct Gguf {
    pub version: u32,
    pub metadata: Vec<(String, Value)>,
    pub tensors: Vec<TensorInfo>,
    pub alignment: u64,
    /// Absolute offset of the tensor data in each shard's file.
    pub data_offsets: Vec<u64>,
}

impl Gguf {
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
    fn need(&self, key: &str) -> Result<&Value> {
        self.get(key)
            .ok_or_else(|| Error::Gguf(format!("missing metadata key '{key}'")))
    }
    fn wrong(key: &str, what: &str, v: &Value) -> Error {
        Error::Gguf(format!("metadata '{key}' should be {what}, found {v:?}"))
    }
    pub fn u64(&self, key: &str) -> Result<u64> {
        let v = self.need(key)?;
        v.as_u64()
            .ok_or_else(|| Self::wrong(key, "an unsigned integer", v))
    }
    pub fn f32(&self, key: &str) -> Result<f32> {
        let v = self.need(key)?;
        v.as_f64()
            .map(|x| x as f32)
            .ok_or_else(|| Self::wrong(key, "a number", v))
    }
    pub fn str(&self, key: &str) -> Result<&str> {
        let v = self.need(key)?;
        v.as_str().ok_or_else(|| Self::wrong(key, "a string", v))
    }
    pub fn bool(&self, key: &str) -> Result<bool> {
        let v = self.need(key)?;
        v.as_bool().ok_or_else(|| Self::wrong(key, "a bool", v))
    }
    pub fn array(&self, key: &str) -> Result<&[Value]> {
        let v = self.need(key)?;
        v.as_array().ok_or_else(|| Self::wrong(key, "an array", v))
    }
    pub fn opt_u64(&self, key: &str) -> Result<Option<u64>> {
        self.get(key).map(|_| self.u64(key)).transpose()
    }
    pub fn opt_f32(&self, key: &str) -> Result<Option<f32>> {
        self.get(key).map(|_| self.f32(key)).transpose()
    }
    pub fn opt_bool(&self, key: &str) -> Result<Option<bool>> {
        self.get(key).map(|_| self.bool(key)).transpose()
    }
    /// `general.architecture`, e.g. "llama", "qwen2", "gemma3".
    pub fn architecture(&self) -> Result<&str> {
        self.str("general.architecture")
    }
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }
    /// Parses the header of a whole file held in memory (single file; `data_offsets` has one
    /// entry). Tensors are checked to lie within `bytes`.
    pub fn parse(bytes: &[u8]) -> Result<Gguf> {
        parse_header(bytes, None)
    }
    /// Index of a tensor in `tensors`.
    pub fn tensor_index(&self, name: &str) -> Option<usize> {
        self.tensors.iter().position(|t| t.name == name)
    }
    /// Where a tensor's bytes are: (shard, absolute byte offset in that shard's file, length).
    pub fn tensor_location(&self, t: &TensorInfo) -> Result<(usize, u64, u64)> {
        let data = self.data_offsets.get(t.shard).ok_or_else(|| {
            Error::Gguf(format!(
                "tensor '{}' is in shard {}, which is unknown",
                t.name, t.shard
            ))
        })?;
        Ok((t.shard, data.saturating_add(t.offset), t.byte_size()))
    }
}
