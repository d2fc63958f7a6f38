//! TODO (being written): `quantize(ty, values) -> Result<Vec<u8>>`, bit-exact with ggml's reference quantizers.
use super::GgmlType;
use crate::{Error, Result};

pub fn quantize(ty: GgmlType, _values: &[f32]) -> Result<Vec<u8>> {
    Err(Error::Invalid(format!(
        "quantize {} not written yet",
        ty.name()
    )))
}
