//! Where tensor data lies: alignment, the data offset after the header, and checks that tensor
//! byte ranges are aligned, disjoint and inside the file.

use std::collections::HashSet;

use super::reader::HeaderParser;
use super::{Gguf, TensorInfo, Value};
use crate::{Error, Result};

pub const DEFAULT_ALIGNMENT: u64 = 32;

fn err<T>(msg: String) -> Result<T> {
    Err(Error::Gguf(msg))
}

/// `general.alignment` (any unsigned integer type; a power of two), 32 when absent.
pub fn alignment(metadata: &[(String, Value)]) -> Result<u64> {
    match metadata.iter().find(|(k, _)| k == "general.alignment") {
        None => Ok(DEFAULT_ALIGNMENT),
        Some((_, v)) => match v.as_u64() {
            Some(a) if a.is_power_of_two() && a <= 1 << 30 => Ok(a),
            _ => err(format!(
                "general.alignment must be a power of two, found {v:?}"
            )),
        },
    }
}

/// Names unique, offsets aligned, ranges without overflow and disjoint (relative to the data).
pub fn check_tensors(tensors: &[TensorInfo], alignment: u64) -> Result<()> {
    let mut names = HashSet::with_capacity(tensors.len());
    for t in tensors {
        if !names.insert(t.name.as_str()) {
            return err(format!("tensor '{}' appears twice", t.name));
        }
        if t.offset % alignment != 0 {
            return err(format!(
                "tensor '{}': offset {} is not a multiple of the alignment {alignment}",
                t.name, t.offset
            ));
        }
        if t.offset.checked_add(t.byte_size()).is_none() {
            return err(format!(
                "tensor '{}': offset {} + size overflows",
                t.name, t.offset
            ));
        }
    }
    // Empty tensors occupy nothing and may share an offset with anything.
    let mut order: Vec<&TensorInfo> = tensors.iter().filter(|t| t.byte_size() > 0).collect();
    order.sort_by_key(|t| t.offset);
    for w in order.windows(2) {
        let (a, b) = (w[0], w[1]);
        if a.offset + a.byte_size() > b.offset {
            return err(format!(
                "tensors '{}' (bytes {}..{}) and '{}' (from {}) overlap",
                a.name,
                a.offset,
                a.offset + a.byte_size(),
                b.name,
                b.offset
            ));
        }
    }
    Ok(())
}

/// Completes a parsed header once its length is known: sets the data offset and checks that
/// every tensor lies inside a file of `file_size` bytes (when known).
pub fn settle(gguf: &mut Gguf, header_len: u64, file_size: Option<u64>) -> Result<()> {
    let a = gguf.alignment;
    let data = header_len
        .checked_add(a - 1)
        .map(|x| x / a * a)
        .ok_or_else(|| Error::Gguf("data offset overflows".into()))?;
    if let Some(size) = file_size {
        for t in &gguf.tensors {
            let end = data
                .checked_add(t.offset)
                .and_then(|s| s.checked_add(t.byte_size()));
            if end.is_none_or(|e| e > size) {
                return err(format!(
                    "tensor '{}' ({} bytes at data offset {}) runs past the end of the file ({size} bytes, data starts at {data})",
                    t.name,
                    t.byte_size(),
                    t.offset
                ));
            }
        }
    }
    gguf.data_offsets = vec![data];
    Ok(())
}

/// Parses a GGUF header from bytes that hold at least the whole header. `file_size` is the full
/// file's length if `bytes` is only a prefix of it (`None`: `bytes` is the whole file).
pub fn parse_header(bytes: &[u8], file_size: Option<u64>) -> Result<Gguf> {
    let size = file_size.unwrap_or(bytes.len() as u64);
    let mut p = HeaderParser::new(Some(size));
    p.feed(bytes)?;
    if !p.is_done() {
        return err(format!(
            "file ends inside the header after {} bytes, while reading {}",
            bytes.len(),
            p.context()
        ));
    }
    let header_len = p.position();
    let mut g = p
        .take()
        .ok_or_else(|| Error::Gguf("header parse left no result".into()))?;
    settle(&mut g, header_len, Some(size))?;
    Ok(g)
}
