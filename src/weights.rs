//! TODO: QMatrix, quantized weights on the GPU split across bindings (being written).
