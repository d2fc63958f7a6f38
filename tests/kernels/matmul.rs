// TODO: tests for the matmul kernels (being written).
