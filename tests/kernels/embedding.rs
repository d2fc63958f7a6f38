// TODO: tests for the embedding kernels (being written).
