//! TODO: matmul kernel family (being written).
