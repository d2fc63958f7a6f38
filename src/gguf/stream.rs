//! Push parser for GGUF files arriving in chunks (browser downloads): the header may span many
//! chunks, tensor bytes are handed out as slices of the chunk just pushed, in file order, so memory
//! stays at the header plus one chunk. Padding and gaps between tensors are skipped.

use super::layout::settle;
use super::reader::HeaderParser;
use super::Gguf;
use crate::{Error, Result};

/// What one `push` produced, in file order.
#[derive(Debug)]
pub enum Event<'a> {
    /// The header is complete (emitted once, before any tensor data). For a single file,
    /// `data_offsets` has one entry and every tensor has `shard == 0`.
    Header(Gguf),
    /// A piece of tensor `tensor` (index into `Gguf::tensors`): `bytes` are that tensor's bytes
    /// `offset .. offset + bytes.len()`. A tensor's pieces come in order and without gaps; its
    /// last piece ends at `TensorInfo::byte_size()`.
    TensorData {
        tensor: usize,
        offset: u64,
        bytes: &'a [u8],
    },
    /// Every tensor's bytes have been delivered (bytes after this are ignored).
    Done,
}

/// A tensor's absolute byte range in the stream.
struct Span {
    start: u64,
    end: u64,
    tensor: usize,
}

pub struct GgufStream {
    parser: Option<HeaderParser>,
    file_size: Option<u64>,
    /// Header bytes not yet consumed (less than one item) plus what came after them.
    carry: Vec<u8>,
    /// Absolute bytes received.
    received: u64,
    /// Tensors with bytes, sorted by position; `next` is the first not yet complete.
    spans: Vec<Span>,
    next: usize,
    done: bool,
}

impl Default for GgufStream {
    fn default() -> Self {
        Self::new()
    }
}

impl GgufStream {
    pub fn new() -> Self {
        Self::with_file_size(None)
    }

    /// With the total size known (e.g. from Content-Length), absurd lengths and tensors past the
    /// end are refused as soon as the header is read.
    pub fn with_file_size(file_size: Option<u64>) -> Self {
        GgufStream {
            parser: Some(HeaderParser::new(file_size)),
            file_size,
            carry: Vec::new(),
            received: 0,
            spans: Vec::new(),
            next: 0,
            done: false,
        }
    }

    /// The total size, once it is known (e.g. from Content-Length after a cached prefix was
    /// replayed). Before the header is complete it bounds the rest of the header and the
    /// tensors; after, tensors not yet complete are checked against it. A size smaller than
    /// what was received, or different from one announced before, is an error.
    pub fn set_file_size(&mut self, size: u64) -> Result<()> {
        match self.file_size {
            Some(s) if s == size => return Ok(()),
            Some(s) => {
                return Err(Error::Gguf(format!(
                    "the file size changed from {s} to {size} bytes while reading"
                )))
            }
            None => {}
        }
        if self.received > size {
            return Err(Error::Gguf(format!(
                "{} bytes received, more than the announced {size}",
                self.received
            )));
        }
        self.file_size = Some(size);
        match self.parser.as_mut() {
            Some(p) => p.set_limit(size),
            None => {
                if let Some(s) = self.spans[self.next.min(self.spans.len())..]
                    .iter()
                    .find(|s| s.end > size)
                {
                    return Err(Error::Gguf(format!(
                        "tensor #{} (bytes {}..{}) runs past the end of the file ({size} bytes)",
                        s.tensor, s.start, s.end
                    )));
                }
            }
        }
        Ok(())
    }

    pub fn file_size(&self) -> Option<u64> {
        self.file_size
    }

    /// Bytes pushed so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Bytes held between pushes: at most an unfinished header item plus the chunk it came
    /// with; zero once the header is parsed (tensor bytes are never copied).
    pub fn buffered(&self) -> usize {
        self.carry.len()
    }

    /// Feeds the next chunk (any size, including empty). After an error the stream is unusable.
    pub fn push<'a>(&mut self, chunk: &'a [u8]) -> Result<Vec<Event<'a>>> {
        let chunk_start = self.received;
        self.received += chunk.len() as u64;
        if let Some(size) = self.file_size {
            if self.received > size && !self.done {
                return Err(Error::Gguf(format!(
                    "stream longer than the announced {size} bytes"
                )));
            }
        }
        let mut events = Vec::new();
        if let Some(parser) = self.parser.as_mut() {
            if self.carry.is_empty() {
                let used = parser.feed(chunk)?;
                if !parser.is_done() {
                    self.carry.extend_from_slice(&chunk[used..]);
                }
            } else {
                self.carry.extend_from_slice(chunk);
                let used = parser.feed(&self.carry)?;
                self.carry.drain(..used);
            }
            if !parser.is_done() {
                return Ok(events);
            }
            let header_len = parser.position();
            let mut gguf = parser
                .take()
                .ok_or_else(|| Error::Gguf("header parse left no result".into()))?;
            self.parser = None;
            self.carry = Vec::new();
            settle(&mut gguf, header_len, self.file_size)?;
            let data = gguf.data_offsets[0];
            // Without a known size nothing bounds the offsets: check the arithmetic.
            let mut spans = Vec::with_capacity(gguf.tensors.len());
            for (i, t) in gguf.tensors.iter().enumerate() {
                if t.byte_size() == 0 {
                    continue;
                }
                let start = data.checked_add(t.offset);
                let end = start.and_then(|s| s.checked_add(t.byte_size()));
                let (Some(start), Some(end)) = (start, end) else {
                    return Err(Error::Gguf(format!(
                        "tensor '{}': data offset {} + offset {} + {} bytes overflows",
                        t.name,
                        data,
                        t.offset,
                        t.byte_size()
                    )));
                };
                spans.push(Span {
                    start,
                    end,
                    tensor: i,
                });
            }
            self.spans = spans;
            self.spans.sort_by_key(|s| s.start);
            events.push(Event::Header(gguf));
            // The header never ends before this chunk (an item is left unfinished only when
            // bytes are missing), so every byte after it lies in `chunk`.
        }
        self.data_events(chunk, chunk_start, &mut events);
        Ok(events)
    }

    fn data_events<'a>(&mut self, chunk: &'a [u8], chunk_start: u64, events: &mut Vec<Event<'a>>) {
        if self.done {
            return;
        }
        let chunk_end = chunk_start + chunk.len() as u64;
        while let Some(s) = self.spans.get(self.next) {
            let lo = s.start.max(chunk_start);
            let hi = s.end.min(chunk_end);
            if lo < hi {
                let (a, b) = ((lo - chunk_start) as usize, (hi - chunk_start) as usize);
                events.push(Event::TensorData {
                    tensor: s.tensor,
                    offset: lo - s.start,
                    bytes: &chunk[a..b],
                });
            }
            if s.end <= chunk_end {
                self.next += 1;
            } else {
                break;
            }
        }
        if self.next == self.spans.len() {
            self.done = true;
            self.spans = Vec::new();
            events.push(Event::Done);
        }
    }

    /// Call at the end of the input: an error if the header or some tensor is incomplete.
    pub fn finish(&self) -> Result<()> {
        if self.done {
            return Ok(());
        }
        let at = self.received;
        match &self.parser {
            Some(p) => Err(Error::Gguf(format!(
                "file ends inside the header after {at} bytes, while reading {}",
                p.context()
            ))),
            None => {
                let (tensor, end) = self
                    .spans
                    .get(self.next)
                    .map_or((0, 0), |s| (s.tensor, s.end));
                Err(Error::Gguf(format!(
                    "file ends after {at} bytes, inside the data of tensor #{tensor} (needs bytes up to {end})"
                )))
            }
        }
    }
}
