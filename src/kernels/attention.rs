//! TODO: attention kernel family (being written).
