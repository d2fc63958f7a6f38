// TODO: tests for the argmax kernels (being written).
