"""skillit-ray: Skill-it! online data mixing (Chen et al., NeurIPS 2023) on Ray Data, Train and Tune.

Flow: config -> skills -> data -> mixture/quotas -> sampler -> plans -> loop (-> evaluate, checkpoint)
-> train (launch) -> graph/tune -> report.
Entry points: `skillit_ray.config.load_config`, `skillit_ray.train.run_training`,
`skillit_ray.tune.learn_graph`, `skillit_ray.tune.tune_hyperparameters`, and the `skillit-ray` CLI.
"""

__version__ = "0.1.0"
