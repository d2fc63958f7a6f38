//! Split models (`name-00001-of-00003.gguf`, as llama.cpp's gguf-split writes them): each shard is
//! a complete GGUF with `split.no`, `split.count`, `split.tensors.count`; shard 0 carries the
//! model's metadata. Works on parsed headers only, so the browser can use it too.

use std::collections::HashSet;

use super::Gguf;
use crate::{Error, Result};

pub const KEY_SPLIT_NO: &str = "split.no";
pub const KEY_SPLIT_COUNT: &str = "split.count";
pub const KEY_SPLIT_TENSORS: &str = "split.tensors.count";

/// Parses a shard file name: `("name", 1, 3)` for `name-00001-of-00003.gguf` (1-based number).
pub fn parse_split_name(file_name: &str) -> Option<(&str, u32, u32)> {
    let stem = file_name.strip_suffix(".gguf")?;
    let (rest, count) = stem.rsplit_once("-of-")?;
    let (prefix, no) = rest.rsplit_once('-')?;
    let digits = |s: &str| s.len() >= 5 && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(no) || !digits(count) {
        return None;
    }
    let (no, count) = (no.parse().ok()?, count.parse().ok()?);
    (no >= 1 && no <= count).then_some((prefix, no, count))
}

/// The file name of shard `no` (1-based) of `count`, as llama.cpp names them.
pub fn split_name(prefix: &str, no: u32, count: u32) -> String {
    format!("{prefix}-{no:05}-of-{count:05}.gguf")
}

/// `split.count` of a header (1 when absent).
pub fn split_count(g: &Gguf) -> Result<u64> {
    match g.opt_u64(KEY_SPLIT_COUNT)? {
        None | Some(0) => Ok(1),
        Some(n) => Ok(n),
    }
}

/// Joins the headers of all shards, in order, into one: metadata and version from shard 0,
/// tensors from every shard (each tagged with its shard index), one data offset per shard.
pub fn merge_shards(shards: Vec<Gguf>) -> Result<Gguf> {
    let n = shards.len();
    if n == 0 {
        return Err(Error::Gguf("a split model needs at least one shard".into()));
    }
    let mut merged: Option<Gguf> = None;
    let mut names = HashSet::new();
    for (i, g) in shards.into_iter().enumerate() {
        let count = split_count(&g)?;
        let no = g.opt_u64(KEY_SPLIT_NO)?.unwrap_or(0);
        if count != n as u64 || no != i as u64 {
            return Err(Error::Gguf(format!(
                "shard {} of {n} says it is split.no {no} of split.count {count}",
                i + 1
            )));
        }
        let [offset] = g.data_offsets[..] else {
            return Err(Error::Gguf(format!(
                "shard {} is not a single parsed file",
                i + 1
            )));
        };
        for t in &g.tensors {
            if !names.insert(t.name.clone()) {
                return Err(Error::Gguf(format!(
                    "tensor '{}' appears in two shards",
                    t.name
                )));
            }
        }
        match merged.as_mut() {
            None => {
                let mut first = g;
                first.tensors.iter_mut().for_each(|t| t.shard = 0);
                merged = Some(first);
            }
            Some(m) => {
                m.data_offsets.push(offset);
                m.tensors.extend(g.tensors.into_iter().map(|mut t| {
                    t.shard = i;
                    t
                }));
            }
        }
    }
    let m = merged.ok_or_else(|| Error::Gguf("no shards".into()))?;
    if let Some(total) = m.opt_u64(KEY_SPLIT_TENSORS)? {
        if total != m.tensors.len() as u64 {
            return Err(Error::Gguf(format!(
                "split.tensors.count says {total} tensors, the {n} shards hold {}",
                m.tensors.len()
            )));
        }
    }
    Ok(m)
}
