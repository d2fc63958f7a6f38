//! A resumable GGUF header parser: it consumes whole "items" (a scalar, a string, an array header,
//! a tensor info) from whatever bytes it is given and keeps its place between calls, so the file
//! reader, the streaming parser and `Gguf::parse` share one code path. Every length read from the
//! file is checked against the bytes that can still follow before anything is allocated from it.

use std::collections::HashSet;

use super::{layout, Gguf, TensorInfo, Value};
use crate::quant::GgmlType;
use crate::{Error, Result};

/// Largest header accepted (metadata + tensor infos). Real models need a few MiB (vocabularies).
pub const MAX_HEADER_BYTES: u64 = 256 << 20;
/// Largest single string (chat templates, embedded tokenizer JSON).
const MAX_STRING_BYTES: u64 = 64 << 20;
/// Most metadata values in all arrays together: bounds memory, as a `Value` is ~32 bytes.
const MAX_VALUES: u64 = 1 << 24;
/// Deepest array nesting (arrays of arrays); deeper is refused rather than recursed into.
const MAX_DEPTH: usize = 8;
/// ggml tensors have at most four dimensions.
const MAX_DIMS: u32 = 4;

// Metadata value type ids, as in the GGUF spec.
const T_U8: u32 = 0;
const T_I8: u32 = 1;
const T_U16: u32 = 2;
const T_I16: u32 = 3;
const T_U32: u32 = 4;
const T_I32: u32 = 5;
const T_F32: u32 = 6;
const T_BOOL: u32 = 7;
const T_STRING: u32 = 8;
const T_ARRAY: u32 = 9;
const T_U64: u32 = 10;
const T_I64: u32 = 11;
const T_F64: u32 = 12;

fn err<T>(msg: String) -> Result<T> {
    Err(Error::Gguf(msg))
}

/// Bytes of a scalar value type, None for strings, arrays and unknown ids.
fn scalar_size(ty: u32) -> Option<usize> {
    match ty {
        T_U8 | T_I8 | T_BOOL => Some(1),
        T_U16 | T_I16 => Some(2),
        T_U32 | T_I32 | T_F32 => Some(4),
        T_U64 | T_I64 | T_F64 => Some(8),
        _ => None,
    }
}

/// The fewest bytes one value of a type can take (for bounding counts).
fn min_size(ty: u32) -> u64 {
    match ty {
        T_STRING => 8,
        T_ARRAY => 12,
        _ => scalar_size(ty).unwrap_or(1) as u64,
    }
}

fn known_type(ty: u32) -> bool {
    ty <= T_F64
}

/// A read position in the bytes at hand; `None` from a read means "need more bytes".
struct Cur<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Cur<'a> {
    fn take(&mut self, n: u64) -> Option<&'a [u8]> {
        let n = usize::try_from(n).ok()?;
        let end = self.at.checked_add(n)?;
        let s = self.buf.get(self.at..end)?;
        self.at = end;
        Some(s)
    }
    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N as u64).map(|s| s.try_into().unwrap_or([0; N]))
    }
    fn u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_le_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.array().map(u64::from_le_bytes)
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Phase {
    Preamble,
    Key,
    Value,
    Tensor,
    Done,
}

/// An array being filled; arrays of arrays stack up.
struct Frame {
    elem: u32,
    remaining: u64,
    items: Vec<Value>,
}

pub struct HeaderParser {
    /// Absolute bytes consumed so far.
    pos: u64,
    /// Total size of the file when known: lengths are then checked against it.
    limit: Option<u64>,
    phase: Phase,
    version: u32,
    n_kv: u64,
    n_tensors: u64,
    metadata: Vec<(String, Value)>,
    keys: HashSet<String>,
    tensors: Vec<TensorInfo>,
    key: String,
    value_ty: u32,
    stack: Vec<Frame>,
    values: u64,
    result: Option<Gguf>,
}

impl HeaderParser {
    /// `file_size`: the whole file's length when known (native files, HTTP Content-Length).
    pub fn new(file_size: Option<u64>) -> Self {
        HeaderParser {
            pos: 0,
            limit: file_size,
            phase: Phase::Preamble,
            version: 0,
            n_kv: 0,
            n_tensors: 0,
            metadata: Vec::new(),
            keys: HashSet::new(),
            tensors: Vec::new(),
            key: String::new(),
            value_ty: 0,
            stack: Vec::new(),
            values: 0,
            result: None,
        }
    }

    pub fn is_done(&self) -> bool {
        self.phase == Phase::Done
    }

    /// The file size learned after parsing began (e.g. from response headers): later items are
    /// bounded by it.
    pub fn set_limit(&mut self, file_size: u64) {
        self.limit = Some(file_size);
    }

    /// Absolute bytes consumed (the header length once done).
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// The parsed header, once `is_done()`.
    pub fn take(&mut self) -> Option<Gguf> {
        self.result.take()
    }

    /// What the parser was reading, for "file ends here" errors.
    pub fn context(&self) -> String {
        match self.phase {
            Phase::Preamble => "the file preamble (magic, version, counts)".into(),
            Phase::Key => format!("metadata key {} of {}", self.metadata.len() + 1, self.n_kv),
            Phase::Value => format!("the value of metadata '{}'", self.key),
            Phase::Tensor => format!(
                "tensor info {} of {}",
                self.tensors.len() + 1,
                self.n_tensors
            ),
            Phase::Done => "nothing (header complete)".into(),
        }
    }

    /// Consumes as many complete items from `buf` as it can; returns the bytes consumed. The
    /// caller passes the unconsumed rest again, followed by more bytes.
    pub fn feed(&mut self, buf: &[u8]) -> Result<usize> {
        let mut used = 0usize;
        while self.phase != Phase::Done {
            let mut c = Cur {
                buf: &buf[used..],
                at: 0,
            };
            if !self.step(&mut c)? {
                break;
            }
            used += c.at;
            self.pos += c.at as u64;
            if self.pos > MAX_HEADER_BYTES {
                return err(format!(
                    "header larger than {MAX_HEADER_BYTES} bytes (while reading {})",
                    self.context()
                ));
            }
        }
        Ok(used)
    }

    /// Bytes that may still follow position `at` of the current item.
    fn room(&self, at: usize) -> u64 {
        let here = self.pos + at as u64;
        match self.limit {
            Some(l) => l.saturating_sub(here),
            None => MAX_HEADER_BYTES.saturating_sub(here),
        }
    }

    fn check_count(&self, at: usize, count: u64, each: u64, what: &str) -> Result<()> {
        if count.checked_mul(each).is_none_or(|b| b > self.room(at)) {
            let end = if self.limit.is_some() {
                "the end of the file"
            } else {
                "the header size limit"
            };
            return err(format!(
                "{what}: count {count} at offset {} cannot fit before {end}",
                self.pos + at as u64
            ));
        }
        Ok(())
    }

    /// Reads a GGUF string (u64 length + UTF-8 bytes). `Ok(None)`: need more bytes.
    fn string(&self, c: &mut Cur, what: &dyn Fn() -> String) -> Result<Option<String>> {
        let start = c.at;
        let Some(len) = c.u64() else { return Ok(None) };
        if len > MAX_STRING_BYTES || len > self.room(c.at) {
            return err(format!(
                "{}: string length {len} at offset {} is impossible here",
                what(),
                self.pos + start as u64
            ));
        }
        let Some(bytes) = c.take(len) else {
            return Ok(None);
        };
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(Some(s.to_owned())),
            Err(e) => err(format!("{}: string is not valid UTF-8 ({e})", what())),
        }
    }

    /// Parses one item; `Ok(false)` when `c` holds too few bytes for it (nothing is consumed).
    fn step(&mut self, c: &mut Cur) -> Result<bool> {
        match self.phase {
            Phase::Preamble => self.preamble(c),
            Phase::Key => {
                let n = self.metadata.len();
                let Some(key) = self.string(c, &|| format!("metadata key {}", n + 1))? else {
                    return Ok(false);
                };
                let Some(ty) = c.u32() else { return Ok(false) };
                if !known_type(ty) {
                    return err(format!("metadata '{key}' has unknown value type {ty}"));
                }
                if !self.keys.insert(key.clone()) {
                    return err(format!("metadata key '{key}' appears twice"));
                }
                self.key = key;
                self.value_ty = ty;
                self.phase = Phase::Value;
                Ok(true)
            }
            Phase::Value => self.value_step(c),
            Phase::Tensor => self.tensor_info(c),
            Phase::Done => Ok(false),
        }
    }

    fn preamble(&mut self, c: &mut Cur) -> Result<bool> {
        let Some(magic) = c.take(4) else {
            return Ok(false);
        };
        if magic != b"GGUF" {
            return err(format!(
                "not a GGUF file (magic {magic:02x?}, expected \"GGUF\")"
            ));
        }
        let Some(version) = c.u32() else {
            return Ok(false);
        };
        match version {
            2 | 3 => {}
            1 => {
                return err(
                    "GGUF version 1 is not supported (re-convert the model: v2 and v3 are)".into(),
                )
            }
            v if v.swap_bytes() <= 3 && v != 0 => {
                return err(format!(
                "big-endian GGUF (version {}) is not supported: its tensor data is byte-swapped",
                v.swap_bytes()
            ))
            }
            v => {
                return err(format!(
                    "unsupported GGUF version {v} (this reader knows 2 and 3)"
                ))
            }
        }
        let (Some(n_tensors), Some(n_kv)) = (c.u64(), c.u64()) else {
            return Ok(false);
        };
        // A key is at least 8 + 4 bytes plus a 1-byte value; a tensor info at least 24 bytes.
        self.check_count(c.at, n_kv, 13, "metadata")?;
        self.check_count(c.at, n_tensors, 24, "tensor infos")?;
        self.version = version;
        self.n_kv = n_kv;
        self.n_tensors = n_tensors;
        self.metadata = Vec::with_capacity(n_kv.min(256) as usize);
        self.tensors = Vec::with_capacity(n_tensors.min(4096) as usize);
        self.next_after_kv()?;
        Ok(true)
    }

    /// Moves on after a key/value pair (or the preamble); finishes when nothing is left.
    fn next_after_kv(&mut self) -> Result<()> {
        self.phase = if (self.metadata.len() as u64) < self.n_kv {
            Phase::Key
        } else if self.n_tensors > 0 {
            Phase::Tensor
        } else {
            Phase::Done
        };
        if self.phase == Phase::Done {
            self.finish()?;
        }
        Ok(())
    }

    fn value_step(&mut self, c: &mut Cur) -> Result<bool> {
        // Close finished arrays (needs no bytes).
        let ty = loop {
            match self.stack.last() {
                Some(f) if f.remaining == 0 => {
                    let f = self.stack.pop().map(|f| f.items).unwrap_or_default();
                    self.deliver(Value::Array(f))?;
                    if self.phase != Phase::Value {
                        return Ok(true);
                    }
                }
                Some(f) => break f.elem,
                None => break self.value_ty,
            }
        };
        let v = match ty {
            T_ARRAY => {
                let start = c.at;
                let (Some(elem), Some(count)) = (c.u32(), c.u64()) else {
                    return Ok(false);
                };
                let key = &self.key;
                if !known_type(elem) {
                    return err(format!(
                        "metadata '{key}': array of unknown value type {elem}"
                    ));
                }
                if self.stack.len() >= MAX_DEPTH {
                    return err(format!(
                        "metadata '{key}': arrays nested deeper than {MAX_DEPTH}"
                    ));
                }
                // The array counts as a value too (arrays of empty arrays cost memory).
                if count >= MAX_VALUES - self.values {
                    return err(format!(
                        "metadata '{key}': array of {count} items at offset {} is too large",
                        self.pos + start as u64
                    ));
                }
                self.check_count(
                    c.at,
                    count,
                    min_size(elem),
                    &format!("metadata '{key}' array"),
                )?;
                self.values += 1;
                self.stack.push(Frame {
                    elem,
                    remaining: count,
                    items: Vec::with_capacity(count.min(1 << 16) as usize),
                });
                return Ok(true);
            }
            T_STRING => {
                let key = self.key.clone();
                match self.string(c, &|| format!("metadata '{key}'"))? {
                    Some(s) => Value::String(s),
                    None => return Ok(false),
                }
            }
            _ => {
                let n = scalar_size(ty).unwrap_or(1);
                let Some(b) = c.take(n as u64) else {
                    return Ok(false);
                };
                self.scalar(ty, b)?
            }
        };
        self.values += 1;
        if self.values > MAX_VALUES {
            return err(format!("more than {MAX_VALUES} metadata values"));
        }
        self.deliver(v)?;
        Ok(true)
    }

    fn scalar(&self, ty: u32, b: &[u8]) -> Result<Value> {
        let a2 = || [b[0], b[1]];
        let a4 = || [b[0], b[1], b[2], b[3]];
        let a8 = || [b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]];
        Ok(match ty {
            T_U8 => Value::U8(b[0]),
            T_I8 => Value::I8(b[0] as i8),
            T_U16 => Value::U16(u16::from_le_bytes(a2())),
            T_I16 => Value::I16(i16::from_le_bytes(a2())),
            T_U32 => Value::U32(u32::from_le_bytes(a4())),
            T_I32 => Value::I32(i32::from_le_bytes(a4())),
            T_F32 => Value::F32(f32::from_le_bytes(a4())),
            T_U64 => Value::U64(u64::from_le_bytes(a8())),
            T_I64 => Value::I64(i64::from_le_bytes(a8())),
            T_F64 => Value::F64(f64::from_le_bytes(a8())),
            T_BOOL => match b[0] {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                x => {
                    return err(format!(
                        "metadata '{}': bool byte {x} is neither 0 nor 1",
                        self.key
                    ))
                }
            },
            t => {
                return err(format!(
                    "metadata '{}': value type {t} is not a scalar",
                    self.key
                ))
            }
        })
    }

    fn deliver(&mut self, v: Value) -> Result<()> {
        if let Some(f) = self.stack.last_mut() {
            f.items.push(v);
            f.remaining -= 1;
        } else {
            let key = std::mem::take(&mut self.key);
            self.metadata.push((key, v));
            self.next_after_kv()?;
        }
        Ok(())
    }

    fn tensor_info(&mut self, c: &mut Cur) -> Result<bool> {
        let i = self.tensors.len();
        let Some(name) = self.string(c, &|| format!("tensor info {}", i + 1))? else {
            return Ok(false);
        };
        let Some(n_dims) = c.u32() else {
            return Ok(false);
        };
        if n_dims > MAX_DIMS {
            return err(format!(
                "tensor '{name}' has {n_dims} dimensions (at most {MAX_DIMS})"
            ));
        }
        let mut dims = Vec::with_capacity(n_dims as usize);
        for _ in 0..n_dims {
            let Some(d) = c.u64() else { return Ok(false) };
            dims.push(d);
        }
        let (Some(ty_id), Some(offset)) = (c.u32(), c.u64()) else {
            return Ok(false);
        };
        let ty = GgmlType::from_u32(ty_id)
            .map_err(|_| Error::Gguf(format!("tensor '{name}' has unknown type id {ty_id}")))?;
        let elements = dims
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
            .filter(|&e| e <= i64::MAX as u64)
            .ok_or_else(|| Error::Gguf(format!("tensor '{name}': dims {dims:?} overflow")))?;
        let block = ty.block_len() as u64;
        let first = dims.first().copied().unwrap_or(1);
        if first % block != 0 {
            return err(format!(
                "tensor '{name}': first dimension {first} is not a multiple of the {} block length {block}",
                ty.name()
            ));
        }
        if (elements / block)
            .checked_mul(ty.block_bytes() as u64)
            .is_none()
        {
            return err(format!("tensor '{name}': byte size overflows"));
        }
        self.tensors.push(TensorInfo {
            name,
            dims,
            ty,
            offset,
            shard: 0,
        });
        if self.tensors.len() as u64 == self.n_tensors {
            self.phase = Phase::Done;
            self.finish()?;
        }
        Ok(true)
    }

    /// Header complete: resolve the alignment, check the tensors' relative byte ranges. (The
    /// data offset needs this item's length, which `feed` adds after: `layout::settle` does it.)
    fn finish(&mut self) -> Result<()> {
        let alignment = layout::alignment(&self.metadata)?;
        layout::check_tensors(&self.tensors, alignment)?;
        self.result = Some(Gguf {
            version: self.version,
            metadata: std::mem::take(&mut self.metadata),
            tensors: std::mem::take(&mut self.tensors),
            alignment,
            data_offsets: Vec::new(),
        });
        Ok(())
    }
}
