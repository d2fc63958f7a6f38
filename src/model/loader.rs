//! Streams tensor bytes from a GGUF (a file natively, download chunks in the browser) straight into
//! GPU buffers. Every destination is allocated up front from the header, so a bad or unsupported
//! tensor is reported before a single byte is uploaded, and no tensor ever sits whole in memory.

use super::config::Config;
use crate::gguf::{Gguf, TensorInfo};
use crate::gpu::{Buffer, Gpu};
use crate::quant::{dequantize, widen, GgmlType};
use crate::weights::QMatrix;
use crate::{Error, Result};
use std::collections::HashMap;

/// Where one tensor's bytes go.
enum Dest {
    /// A weight matrix, uploaded in its GGUF block layout.
    Matrix(QMatrix),
    /// Rows of a fused matrix (`Loader::fused[index]`), starting at byte `base` of its GGUF bytes;
    /// `widen`: the tensor's own type when its blocks are re-encoded into the matrix's Q8_0.
    Fused {
        index: usize,
        base: u64,
        widen: Option<GgmlType>,
    },
    /// A small f32 vector (norm weight, bias): gathered on the CPU, converted to f32 if needed.
    Vector {
        ty: GgmlType,
        len: usize,
        bytes: Vec<u8>,
    },
}

struct Slot {
    info: TensorInfo,
    dest: Dest,
    received: u64,
    /// Bytes held back so that GPU writes start at 4-byte-aligned offsets (whole blocks when
    /// the tensor is widened).
    carry: Vec<u8>,
}

pub struct Loader {
    slots: Vec<Option<Slot>>,
    /// Matrices made of several tensors stacked by rows: (name, members, matrix).
    fused: Vec<(String, Vec<String>, QMatrix)>,
    by_name: HashMap<String, usize>,
    pub bytes_total: u64,
    pub bytes_done: u64,
}

/// A loaded tensor handed to the model.
pub enum Loaded {
    Matrix(QMatrix),
    Vector(Buffer),
}

impl Loader {
    /// Plan the upload: check names, shapes and types against `cfg`, allocate every buffer.
    /// `fusions`: (name, member tensors) stacked into one matrix where the members share a type
    /// (or widen losslessly to one: [`fused_type`]) and row length, each has whole row groups, and
    /// the result fits one storage binding (otherwise they load as separate matrices).
    pub fn new(
        gpu: &Gpu,
        g: &Gguf,
        cfg: &Config,
        wanted: &[(String, Shape)],
        fusions: &[(String, Vec<String>)],
    ) -> Result<Loader> {
        let mut slots: Vec<Option<Slot>> = (0..g.tensors.len()).map(|_| None).collect();
        let mut by_name = HashMap::new();
        let mut bytes_total = 0;
        let mut fused = Vec::new();
        let mut fused_member: HashMap<String, Dest> = HashMap::new();
        for st in stacks(g, fusions, gpu.caps().max_binding) {
            let Ok(m) = QMatrix::new(gpu, &st.name, st.ty, st.rows as usize, st.cols as usize)
            else {
                continue;
            };
            let row_bytes = m.row_bytes() as u64;
            let mut base = 0;
            for t in &st.members {
                let widen = (t.ty != st.ty).then_some(t.ty);
                let index = fused.len();
                fused_member.insert(t.name.clone(), Dest::Fused { index, base, widen });
                base += t.dims[1] * row_bytes;
            }
            let names = st.members.iter().map(|t| t.name.clone()).collect();
            fused.push((st.name, names, m));
        }
        for (name, shape) in wanted {
            let Some(idx) = g.tensors.iter().position(|t| &t.name == name) else {
                if shape.optional {
                    continue;
                }
                return Err(Error::Model(format!(
                    "tensor '{name}' is missing (needed by {})",
                    cfg.arch.name()
                )));
            };
            let info = g.tensors[idx].clone();
            let dims: Vec<u64> = info.dims.clone();
            let want: Vec<u64> = shape.dims.iter().map(|&d| d as u64).collect();
            if dims != want {
                return Err(Error::Model(format!(
                    "tensor '{name}' has shape {dims:?}, expected {want:?} from the metadata"
                )));
            }
            let dest = if let Some(dest) = fused_member.remove(name) {
                dest
            } else if shape.dims.len() == 2 {
                let (cols, rows) = (shape.dims[0] as usize, shape.dims[1] as usize);
                let m = QMatrix::new(gpu, name, info.ty, rows, cols).map_err(|e| {
                    Error::Model(format!("tensor '{name}' ({}): {e}", info.ty.name()))
                })?;
                Dest::Matrix(m)
            } else {
                if !matches!(info.ty, GgmlType::F32 | GgmlType::F16 | GgmlType::BF16) {
                    return Err(Error::Model(format!(
                        "tensor '{name}' is {}; vectors must be F32, F16 or BF16",
                        info.ty.name()
                    )));
                }
                Dest::Vector {
                    ty: info.ty,
                    len: shape.dims[0] as usize,
                    bytes: Vec::new(),
                }
            };
            bytes_total += info.byte_size();
            by_name.insert(name.clone(), idx);
            slots[idx] = Some(Slot {
                info,
                dest,
                received: 0,
                carry: Vec::new(),
            });
        }
        Ok(Loader {
            slots,
            fused,
            by_name,
            bytes_total,
            bytes_done: 0,
        })
    }

    /// Bytes `[offset, offset + bytes.len())` of tensor `index` (pieces must arrive in order).
    /// Tensors the model does not use are skipped.
    pub fn feed(&mut self, gpu: &Gpu, index: usize, offset: u64, bytes: &[u8]) -> Result<()> {
        let Some(Some(slot)) = self.slots.get_mut(index) else {
            return Ok(());
        };
        if offset != slot.received {
            return Err(Error::Gguf(format!(
                "tensor '{}': got bytes at {offset}, expected {}",
                slot.info.name, slot.received
            )));
        }
        let size = slot.info.byte_size();
        if offset + bytes.len() as u64 > size {
            return Err(Error::Gguf(format!(
                "tensor '{}': more data than its {size} bytes",
                slot.info.name
            )));
        }
        slot.received += bytes.len() as u64;
        self.bytes_done += bytes.len() as u64;
        let done = slot.received == size;
        match &mut slot.dest {
            Dest::Vector { bytes: buf, .. } => buf.extend_from_slice(bytes),
            Dest::Fused {
                index,
                base,
                widen: Some(from),
            } => {
                // Re-encode whole blocks; keep a partial one for the next piece.
                let bb = from.block_bytes() as u64;
                let first = (offset - slot.carry.len() as u64) / bb;
                let mut data = std::mem::take(&mut slot.carry);
                data.extend_from_slice(bytes);
                let whole = data.len() / bb as usize * bb as usize;
                let q8 = crate::quant::widen::to_q8_0(*from, &data[..whole])?;
                let at = *base + first * GgmlType::Q8_0.block_bytes() as u64;
                self.fused[*index].2.write(gpu, at, &q8)?;
                slot.carry = data[whole..].to_vec();
            }
            Dest::Matrix(_) | Dest::Fused { .. } => {
                let (m, base) = match &slot.dest {
                    Dest::Matrix(m) => (m, 0),
                    Dest::Fused { index, base, .. } => (&self.fused[*index].2, *base),
                    Dest::Vector { .. } => unreachable!(),
                };
                // Write whole 4-byte words; keep the remainder for the next piece or the end.
                let start = base + offset - slot.carry.len() as u64;
                let mut data = std::mem::take(&mut slot.carry);
                data.extend_from_slice(bytes);
                let whole = if done { data.len() } else { data.len() / 4 * 4 };
                if whole > 0 {
                    m.write(gpu, start, &data[..whole])?;
                }
                slot.carry = data[whole..].to_vec();
            }
        }
        Ok(())
    }

    /// The finished slot of tensor `name` (None when it was optional and absent).
    fn finished(&mut self, name: &str) -> Result<Option<Slot>> {
        let Some(&idx) = self.by_name.get(name) else {
            return Ok(None);
        };
        let slot = self.slots[idx]
            .take()
            .ok_or_else(|| Error::Model(format!("tensor '{name}' taken twice")))?;
        if slot.received != slot.info.byte_size() {
            return Err(Error::Gguf(format!(
                "tensor '{name}' is incomplete: {} of {} bytes",
                slot.received,
                slot.info.byte_size()
            )));
        }
        Ok(Some(slot))
    }

    /// Take the finished tensor `name` (None when it was optional and absent).
    pub fn take(&mut self, gpu: &Gpu, name: &str) -> Result<Option<Loaded>> {
        let Some(slot) = self.finished(name)? else {
            return Ok(None);
        };
        Ok(Some(match slot.dest {
            Dest::Matrix(m) => Loaded::Matrix(m),
            Dest::Fused { .. } => {
                return Err(Error::Model(format!(
                    "tensor '{name}' was loaded into a fused matrix"
                )))
            }
            Dest::Vector { ty, len, bytes } => {
                let values = dequantize(ty, &bytes, len)?;
                Loaded::Vector(gpu.upload(name, &values)?)
            }
        }))
    }

    /// The fused matrix `name` once all its members are complete, or None when its members were
    /// loaded separately (take them with [`matrix`](Self::matrix)).
    pub fn fused(&mut self, name: &str) -> Result<Option<QMatrix>> {
        let Some(i) = self.fused.iter().position(|(n, _, _)| n == name) else {
            return Ok(None);
        };
        for member in &self.fused[i].1 {
            let idx = self.by_name[member];
            let slot = self.slots[idx]
                .take()
                .ok_or_else(|| Error::Model(format!("tensor '{member}' taken twice")))?;
            if slot.received != slot.info.byte_size() {
                return Err(Error::Gguf(format!(
                    "tensor '{member}' is incomplete: {} of {} bytes",
                    slot.received,
                    slot.info.byte_size()
                )));
            }
        }
        Ok(Some(self.fused.remove(i).2))
    }

    pub fn matrix(&mut self, gpu: &Gpu, name: &str) -> Result<QMatrix> {
        match self.take(gpu, name)? {
            Some(Loaded::Matrix(m)) => Ok(m),
            _ => Err(Error::Model(format!(
                "tensor '{name}' is missing or not a matrix"
            ))),
        }
    }

    pub fn opt_matrix(&mut self, gpu: &Gpu, name: &str) -> Result<Option<QMatrix>> {
        match self.take(gpu, name)? {
            Some(Loaded::Matrix(m)) => Ok(Some(m)),
            None => Ok(None),
            Some(_) => Err(Error::Model(format!("tensor '{name}' is not a matrix"))),
        }
    }

    pub fn vector(&mut self, gpu: &Gpu, name: &str) -> Result<Buffer> {
        self.opt_vector(gpu, name)?
            .ok_or_else(|| Error::Model(format!("tensor '{name}' is missing")))
    }

    /// The values of vector `name` as f32 on the CPU, not uploaded (parameters the host reads,
    /// such as RoPE frequency factors); None when it was optional and absent.
    pub fn opt_values(&mut self, name: &str) -> Result<Option<Vec<f32>>> {
        match self.finished(name)?.map(|s| s.dest) {
            None => Ok(None),
            Some(Dest::Vector { ty, len, bytes }) => Ok(Some(dequantize(ty, &bytes, len)?)),
            Some(_) => Err(Error::Model(format!("tensor '{name}' is not a vector"))),
        }
    }

    pub fn opt_vector(&mut self, gpu: &Gpu, name: &str) -> Result<Option<Buffer>> {
        match self.take(gpu, name)? {
            Some(Loaded::Vector(b)) => Ok(Some(b)),
            None => Ok(None),
            Some(_) => Err(Error::Model(format!("tensor '{name}' is not a vector"))),
        }
    }
}

/// Tensors stacked by rows into one matrix of type `ty`.
pub struct Stack {
    pub name: String,
    pub members: Vec<TensorInfo>,
    pub ty: GgmlType,
    pub rows: u64,
    pub cols: u64,
}

/// Which of `fusions` (name, members) the file allows: members present, 2-D, of one row length
/// and a type they share (or widen to, [`fused_type`]) that the kernels read, whole row groups,
/// and the stack within one `max_binding`. A tensor joins at most one stack (the first listed).
pub fn stacks(g: &Gguf, fusions: &[(String, Vec<String>)], max_binding: u64) -> Vec<Stack> {
    let mut out: Vec<Stack> = Vec::new();
    for (name, members) in fusions {
        let taken = |m: &String| out.iter().any(|s| s.members.iter().any(|t| &t.name == m));
        if members.iter().any(taken) {
            continue;
        }
        let infos: Vec<_> = members.iter().filter_map(|m| g.tensor(m)).collect();
        if infos.len() != members.len() || infos.iter().any(|t| t.dims.len() != 2) {
            continue;
        }
        let Some(ty) = fused_type(&infos) else {
            continue;
        };
        if infos.iter().any(|t| t.dims[1] % 4 != 0) || !ty.gpu_supported() {
            continue;
        }
        // Checked: the dims come from the file (the shape check against the config is later).
        let cols = infos[0].dims[0];
        let rows = infos.iter().try_fold(0u64, |a, t| a.checked_add(t.dims[1]));
        let (Some(rows), Some(row_bytes)) = (rows, ty.row_bytes_u64(cols)) else {
            continue;
        };
        if rows.checked_mul(row_bytes).is_none_or(|b| b > max_binding) {
            continue;
        }
        out.push(Stack {
            name: name.clone(),
            members: infos.into_iter().cloned().collect(),
            ty,
            rows,
            cols,
        });
    }
    out
}

/// The type a fusion of `members` is stored in (see [`widen::common_type`]), or None when their
/// types or row lengths differ beyond that.
pub fn fused_type(members: &[&TensorInfo]) -> Option<GgmlType> {
    let cols = members.first()?.dims[0];
    if members.iter().any(|t| t.dims[0] != cols) {
        return None;
    }
    widen::common_type(&members.iter().map(|t| t.ty).collect::<Vec<_>>())
}

/// Expected GGUF dims (innermost first) of a tensor, and whether the model can do without it.
#[derive(Clone, Debug)]
pub struct Shape {
    pub dims: Vec<u32>,
    pub optional: bool,
}

impl Shape {
    pub fn vec(n: u32) -> Shape {
        Shape {
            dims: vec![n],
            optional: false,
        }
    }
    /// A weight mapping `cols` inputs to `rows` outputs.
    pub fn mat(cols: u32, rows: u32) -> Shape {
        Shape {
            dims: vec![cols, rows],
            optional: false,
        }
    }
    pub fn optional(mut self) -> Shape {
        self.optional = true;
        self
    }
}
