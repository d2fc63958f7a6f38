// TODO: tests for the attention kernels (being written).
