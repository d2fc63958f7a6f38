//! Quantized weight matrices on the GPU, kept in GGUF's own block layout: the kernels
//! (`matvec`, `matmul`, `embedding`) dequantize inside the shader, so no dequantized copy of a
//! weight ever exists on the GPU.
//!
//! A matrix larger than one storage binding may cover (`caps().max_binding`, 128 MiB on many
//! adapters) is split on row boundaries into several buffers ("parts"); each kernel dispatches
//! once per part. Part boundaries are chosen so that every part starts at a 4-byte-aligned offset
//! of the tensor's bytes (rows of Q4_0/Q5_0/Q8_0/Q3_K/Q6_K/IQ4_NL are only 2-byte multiples).
//!
//! The 32-element block formats Q4_0, Q4_1, Q5_0 and Q8_0 and the K-quants Q4_K and Q6_K are
//! repacked as they arrive into an aligned layout of the same size ([`Layout::Packed`], see
//! [`crate::quant::pack`]): the shaders then read every weight word once, quants as `vec4<u32>`.
//! The other K-quants, IQ4 and plain floats keep their GGUF layout.

use crate::gpu::{Buffer, Gpu};
use crate::quant::pack::{self, BLOCK_ROWS, GROUP};
use crate::quant::GgmlType;
use crate::{Error, Result};
use std::collections::HashMap;
use std::sync::Mutex;

/// The kernels work on 32-element units (a block, a K-quant sub-block, or 32 floats).
pub const UNIT: usize = 32;

/// One buffer of a split matrix: rows `row0 .. row0 + rows`.
#[derive(Debug)]
pub struct QPart {
    pub buf: Buffer,
    pub row0: usize,
    pub rows: usize,
}

/// How a matrix's bytes sit in its GPU buffers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// GGUF's own block layout, rows `row_bytes` apart.
    Gguf,
    /// Row groups split into aligned quant, auxiliary and scale regions ([`crate::quant::pack`]).
    Packed,
}

impl Layout {
    /// The layout attend uses for `ty`: packed wherever the format has a packed form.
    pub fn preferred(ty: GgmlType) -> Layout {
        if pack::regions(ty).is_some() {
            Layout::Packed
        } else {
            Layout::Gguf
        }
    }
}

/// A quantized `[rows, cols]` matrix (rows = output features n, cols = contiguous k) on the GPU,
/// in GGUF layout. `cols` must be a multiple of the block length and of 32 (the kernels' unit;
/// this also applies to F32/F16/BF16, which every real model satisfies).
#[derive(Debug)]
pub struct QMatrix {
    pub ty: GgmlType,
    pub layout: Layout,
    pub rows: usize,
    pub cols: usize,
    parts: Vec<QPart>,
    /// Rows per part (all parts but the last hold exactly this many).
    part_rows: usize,
    /// The matvec shape measured fastest for this matrix at load (None: the adapter default).
    matvec_shape: Mutex<Option<crate::kernels::matvec::MatvecShape>>,
    /// The prefill kernel measured fastest for this matrix at load (None: the adapter default).
    matmul_shape: Mutex<Option<crate::kernels::matmul::MatmulShape>>,
    /// Whether decoding may round this matrix's activations to int8 (`kernels::matvec_i8`).
    int8_x: std::sync::atomic::AtomicBool,
    /// Whether prefill may too, when int8 prefill is on (`matvec_i8::prefill`).
    int8_prefill: std::sync::atomic::AtomicBool,
    /// Packed layout: blocks received in part (block -> GGUF bytes, bytes received).
    pending: Mutex<HashMap<usize, (Vec<u8>, usize)>>,
    /// Partially written 4-byte words (global word index -> bytes, mask of bytes known), so that
    /// `write` accepts chunks with unaligned ends in any order.
    edges: Mutex<HashMap<u64, ([u8; 4], u8)>>,
}

impl QMatrix {
    /// Allocate (contents undefined until written) with parts no larger than the adapter allows.
    pub fn new(gpu: &Gpu, label: &str, ty: GgmlType, rows: usize, cols: usize) -> Result<QMatrix> {
        let c = gpu.caps();
        // Offsets inside a part are computed in u32 by the shaders: stay below 2 GiB.
        let limit = c.max_binding.min(c.max_buffer).min(1 << 31);
        Self::with_layout(gpu, label, ty, rows, cols, limit, Layout::preferred(ty))
    }

    /// Like [`new`](Self::new) but with parts of at most `limit` bytes (tests force splitting
    /// with this on small matrices).
    pub fn with_part_limit(
        gpu: &Gpu,
        label: &str,
        ty: GgmlType,
        rows: usize,
        cols: usize,
        limit: u64,
    ) -> Result<QMatrix> {
        Self::with_layout(gpu, label, ty, rows, cols, limit, Layout::preferred(ty))
    }

    /// Like [`with_part_limit`](Self::with_part_limit) with an explicit layout (tests cover the
    /// GGUF layout of packable formats with it). `Packed` falls back to `Gguf` for formats that
    /// have no packed form.
    pub fn with_layout(
        gpu: &Gpu,
        label: &str,
        ty: GgmlType,
        rows: usize,
        cols: usize,
        limit: u64,
        layout: Layout,
    ) -> Result<QMatrix> {
        let layout = if pack::regions(ty).is_some() {
            layout
        } else {
            Layout::Gguf
        };
        if !ty.gpu_supported() {
            return Err(Error::Unsupported(format!(
                "weight '{label}': tensor type {} has no GPU kernel",
                ty.name()
            )));
        }
        let granule = ty.block_len().max(UNIT);
        if rows == 0 || cols == 0 || !cols.is_multiple_of(granule) {
            return Err(Error::Invalid(format!(
                "weight '{label}': {} matrix of {rows}x{cols}: columns must be a positive \
                 multiple of {granule}",
                ty.name()
            )));
        }
        // Sizes in u64, checked: on wasm32 `usize` wraps at 4 GiB (a row of 0 bytes divided
        // the limit by zero). Every size this matrix computes later fits once these hold.
        let too_big = || {
            Error::Unsupported(format!(
                "weight '{label}': a {} matrix of {rows}x{cols} is too large to address",
                ty.name()
            ))
        };
        let row_bytes = ty.row_bytes_u64(cols as u64).ok_or_else(too_big)?;
        let padded_rows = (rows as u64)
            .div_ceil(GROUP as u64)
            .checked_mul(GROUP as u64)
            .ok_or_else(too_big)?;
        let total = padded_rows.checked_mul(row_bytes).ok_or_else(too_big)?;
        if row_bytes == 0 || usize::try_from(total).is_err() {
            return Err(too_big());
        }
        let fit = limit / row_bytes;
        let mut part_rows = fit.min(rows as u64);
        if layout == Layout::Packed {
            // Parts hold whole row groups (the last one padded with zero rows) and leave room to
            // round the buffer up to whole 32-byte runs.
            let fit = limit.saturating_sub(32) / row_bytes;
            part_rows = (fit / GROUP as u64 * GROUP as u64).min(padded_rows);
        } else if part_rows < rows as u64 {
            // Every part but the last must end on a 4-byte boundary of the tensor.
            while part_rows > 0 && !(part_rows * row_bytes).is_multiple_of(4) {
                part_rows -= 1;
            }
        }
        if part_rows == 0 {
            return Err(Error::Unsupported(format!(
                "weight '{label}': one row of {row_bytes} bytes exceeds the {limit}-byte binding limit"
            )));
        }
        let part_rows = part_rows as usize;
        let mut parts = Vec::new();
        let mut row0 = 0;
        while row0 < rows {
            let n = part_rows.min(rows - row0);
            let name = format!("{label}[{}]", parts.len());
            let stored = match layout {
                Layout::Gguf => n,
                Layout::Packed => n.div_ceil(GROUP) * GROUP,
            };
            // Packed parts in whole 32-byte runs: the wide loads read whole runs (and 16-byte
            // slots) around the words they need (shaders/quant_load*.wgsl). At most 31 bytes
            // more, within the binding limit (room was left above).
            let mut bytes = stored as u64 * row_bytes;
            if layout == Layout::Packed {
                bytes = bytes.next_multiple_of(32);
            }
            let buf = gpu.storage(&name, bytes)?;
            parts.push(QPart { buf, row0, rows: n });
            row0 += n;
        }
        Ok(QMatrix {
            ty,
            layout,
            rows,
            cols,
            parts,
            part_rows,
            matvec_shape: Mutex::new(None),
            matmul_shape: Mutex::new(None),
            int8_x: std::sync::atomic::AtomicBool::new(true),
            int8_prefill: std::sync::atomic::AtomicBool::new(true),
            pending: Mutex::new(HashMap::new()),
            edges: Mutex::new(HashMap::new()),
        })
    }

    /// Allocate and fill from the tensor's complete bytes.
    pub fn upload(
        gpu: &Gpu,
        label: &str,
        ty: GgmlType,
        rows: usize,
        cols: usize,
        bytes: &[u8],
    ) -> Result<QMatrix> {
        let m = Self::new(gpu, label, ty, rows, cols)?;
        if bytes.len() as u64 != m.bytes() {
            return Err(Error::Invalid(format!(
                "weight '{label}': {} bytes given, a {} {rows}x{cols} matrix has {}",
                bytes.len(),
                ty.name(),
                m.bytes()
            )));
        }
        m.write(gpu, 0, bytes)?;
        Ok(m)
    }

    /// Total bytes of the tensor (GGUF layout, no padding).
    pub fn bytes(&self) -> u64 {
        self.ty.row_bytes(self.cols) as u64 * self.rows as u64
    }

    pub fn row_bytes(&self) -> usize {
        self.ty.row_bytes(self.cols)
    }

    pub fn matvec_shape(&self) -> Option<crate::kernels::matvec::MatvecShape> {
        *self.matvec_shape.lock().unwrap()
    }

    pub fn set_matvec_shape(&self, s: crate::kernels::matvec::MatvecShape) {
        *self.matvec_shape.lock().unwrap() = Some(s);
    }

    /// Whether decoding may read this matrix's activations as int8 (`kernels::matvec_i8`).
    pub fn int8_activations(&self) -> bool {
        self.int8_x.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn set_int8_activations(&self, on: bool) {
        self.int8_x.store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether prefill may read this matrix's activations as int8 where decode does, when int8
    /// prefill is on (`kernels::matvec_i8::prefill`).
    pub fn int8_prefill(&self) -> bool {
        self.int8_prefill.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn set_int8_prefill(&self, on: bool) {
        self.int8_prefill
            .store(on, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn matmul_shape(&self) -> Option<crate::kernels::matmul::MatmulShape> {
        *self.matmul_shape.lock().unwrap()
    }

    pub fn set_matmul_shape(&self, s: crate::kernels::matmul::MatmulShape) {
        *self.matmul_shape.lock().unwrap() = Some(s);
    }

    pub fn parts(&self) -> &[QPart] {
        &self.parts
    }

    /// Stream a chunk of the tensor's bytes into place: any offset, any length, chunks in any
    /// order, crossing part boundaries, unaligned at either end (the bytes of a partly covered
    /// 4-byte word are remembered until the rest of that word arrives).
    pub fn write(&self, gpu: &Gpu, byte_offset: u64, bytes: &[u8]) -> Result<()> {
        let end = byte_offset + bytes.len() as u64;
        if end > self.bytes() {
            return Err(Error::Invalid(format!(
                "weight write of {} bytes at {byte_offset} runs past the tensor's {} bytes",
                bytes.len(),
                self.bytes()
            )));
        }
        if bytes.is_empty() {
            return Ok(());
        }
        if self.layout == Layout::Packed {
            self.write_packed(gpu, byte_offset, bytes);
            return Ok(());
        }
        let head_end = byte_offset.div_ceil(4) * 4;
        let tail_start = (end / 4 * 4).max(head_end);
        if head_end >= end {
            // Entirely inside one word.
            self.write_partial(gpu, byte_offset, bytes);
            return Ok(());
        }
        if head_end > byte_offset {
            self.write_partial(
                gpu,
                byte_offset,
                &bytes[..(head_end - byte_offset) as usize],
            );
        }
        let body = &bytes[(head_end - byte_offset) as usize..(tail_start - byte_offset) as usize];
        self.write_aligned(gpu, head_end, body);
        if tail_start < end {
            self.write_partial(
                gpu,
                tail_start,
                &bytes[(tail_start - byte_offset) as usize..],
            );
        }
        Ok(())
    }

    /// Bytes within one 4-byte word: merge with what is known of it and write the whole word.
    fn write_partial(&self, gpu: &Gpu, offset: u64, bytes: &[u8]) {
        let word = offset / 4;
        let mut edges = self.edges.lock().unwrap();
        let e = edges.entry(word).or_insert(([0; 4], 0));
        for (i, b) in bytes.iter().enumerate() {
            let at = (offset % 4) as usize + i;
            e.0[at] = *b;
            e.1 |= 1 << at;
        }
        // Bytes past the end of the tensor never arrive: count them as known.
        for at in 0..4u64 {
            if word * 4 + at >= self.bytes() {
                e.1 |= 1 << at;
            }
        }
        let data = e.0;
        if e.1 == 0xF {
            edges.remove(&word);
        }
        drop(edges);
        self.write_aligned(gpu, word * 4, &data);
    }

    /// A 4-aligned run of bytes (length a multiple of 4 unless it ends the tensor).
    fn write_aligned(&self, gpu: &Gpu, mut offset: u64, mut bytes: &[u8]) {
        let row_bytes = self.row_bytes() as u64;
        let part_bytes = self.part_rows as u64 * row_bytes;
        // The last word of a tensor whose size is not a multiple of 4 carries padding: drop it.
        bytes = &bytes[..bytes.len().min((self.bytes() - offset) as usize)];
        while !bytes.is_empty() {
            let p = (offset / part_bytes) as usize;
            let local = offset - p as u64 * part_bytes;
            let room = self.parts[p].rows as u64 * row_bytes - local;
            let n = room.min(bytes.len() as u64) as usize;
            gpu.write(&self.parts[p].buf, local, &bytes[..n]);
            bytes = &bytes[n..];
            offset += n as u64;
        }
    }

    /// Packed layout: collect each block's GGUF bytes (whole blocks straight from the chunk,
    /// partly covered ones until their last byte arrives) and write the packed regions.
    fn write_packed(&self, gpu: &Gpu, offset: u64, bytes: &[u8]) {
        let rb = self.row_bytes();
        let total = self.bytes() as usize;
        let range = |b: usize| {
            let (s, e) = self.block_rows(b);
            (s * rb, (e * rb).min(total))
        };
        let (start, end) = (offset as usize, offset as usize + bytes.len());
        let mut a = start;
        while a < end {
            let b = self.block_of_row(a / rb);
            let (b_start, b_end) = range(b);
            if a == b_start && b_end <= end {
                // A run of whole blocks goes out in one piece.
                let mut e = b_end;
                let mut next = b + 1;
                while e < end && range(next).1 <= end {
                    e = range(next).1;
                    next += 1;
                }
                self.put_blocks(gpu, b, &bytes[a - start..e - start]);
                a = e;
                continue;
            }
            let stop = end.min(b_end);
            let mut pending = self.pending.lock().unwrap();
            let e = pending
                .entry(b)
                .or_insert_with(|| (vec![0; b_end - b_start], 0));
            e.0[a - b_start..stop - b_start].copy_from_slice(&bytes[a - start..stop - start]);
            e.1 += stop - a;
            if e.1 >= e.0.len() {
                let (data, _) = pending.remove(&b).unwrap();
                drop(pending);
                self.put_blocks(gpu, b, &data);
            }
            a = stop;
        }
    }

    /// Blocks of the packed layout per part (each part's rows in blocks of [`BLOCK_ROWS`], its
    /// last one possibly shorter).
    fn blocks_per_part(&self) -> usize {
        self.part_rows.div_ceil(BLOCK_ROWS)
    }

    /// The rows `[start, end)` of packed block `b`, counted over all parts.
    fn block_rows(&self, b: usize) -> (usize, usize) {
        let (p, j) = (b / self.blocks_per_part(), b % self.blocks_per_part());
        let part_start = p * self.part_rows;
        let start = part_start + j * BLOCK_ROWS;
        let end = (start + BLOCK_ROWS)
            .min(part_start + self.part_rows)
            .min(self.rows);
        (start, end)
    }

    /// The packed block holding `row`.
    fn block_of_row(&self, row: usize) -> usize {
        let p = row / self.part_rows;
        p * self.blocks_per_part() + (row - p * self.part_rows) / BLOCK_ROWS
    }

    /// Pack complete blocks starting at block `b0` (GGUF bytes) and write their regions.
    fn put_blocks(&self, gpu: &Gpu, b0: usize, src: &[u8]) {
        // Blocks per row: the packed layout's units (256 elements for the K-quants).
        let units = self.cols / self.ty.block_len();
        let row_bytes = self.row_bytes();
        let sizes = pack::regions(self.ty).unwrap();
        let mut b = b0;
        let mut src = src;
        while !src.is_empty() {
            // Stay within one part.
            let part = &self.parts[b / self.blocks_per_part()];
            let row = self.block_rows(b).0;
            let n = (part.row0 + part.rows - row) * row_bytes;
            let (now, rest) = src.split_at(n.min(src.len()));
            let stored_rows = part.rows.div_ceil(GROUP) * GROUP;
            let offsets = pack::region_offsets(self.ty, stored_rows, units);
            let local = (row - part.row0) / GROUP;
            for (r, data) in pack::pack_groups(self.ty, now, row_bytes, units)
                .iter()
                .enumerate()
            {
                if !data.is_empty() {
                    let at = offsets[r] + local * GROUP * units * sizes[r];
                    gpu.write(&part.buf, at as u64, data);
                }
            }
            b += now.len().div_ceil(BLOCK_ROWS * row_bytes);
            src = rest;
        }
    }
}
