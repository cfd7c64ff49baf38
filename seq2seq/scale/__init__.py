"""Training on several processes, GPUs or machines (torchrun, DistributedDataParallel)."""
