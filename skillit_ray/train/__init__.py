"""Stage 4, train: launching Ray Train (`launch.py`) or a run in process (`local.py`), the loop on one page
(`loop.py`) and its parts (plans, prefetch, step, evaluation, throughput), the sampler actor, checkpoints,
the metrics seam (`metrics.py`, written by rank 0) and the callback seam (`callbacks.py`), the model."""
