"""A run's lifecycle: the runner and its rooms (build, training, evaluation, reporting), fast
paths, checkpoints, the best-on-validation checkpoint, the run log, sweeps, and inference with a
finished run."""
