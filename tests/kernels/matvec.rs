// TODO: tests for the matvec kernels (being written).
