// TODO: tests for the elementwise kernels (being written).
