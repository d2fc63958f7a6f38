//! TODO (being written): `dequantize(ty, bytes, n) -> Result<Vec<f32>>` for every supported type.
use super::GgmlType;
use crate::{Error, Result};

pub fn dequantize(ty: GgmlType, _bytes: &[u8], _n: usize) -> Result<Vec<f32>> {
    Err(Error::Invalid(format!(
        "dequantize {} not written yet",
        ty.name()
    )))
}
