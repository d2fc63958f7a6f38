//! TODO: softmax kernel family (being written).
