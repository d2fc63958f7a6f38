//! TODO: argmax kernel family (being written).
