//! TODO: embedding kernel family (being written).
