// TODO: tests for the rope kernels (being written).
