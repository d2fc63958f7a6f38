// TODO: tests for the softmax kernels (being written).
