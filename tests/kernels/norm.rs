// TODO: tests for the norm kernels (being written).
