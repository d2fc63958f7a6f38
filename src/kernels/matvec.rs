//! TODO: matvec kernel family (being written).
