//! TODO: norm kernel family (being written).
