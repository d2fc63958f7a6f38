//! TODO: rope kernel family (being written).
