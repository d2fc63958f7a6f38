//! TODO: elementwise kernel family (being written).
