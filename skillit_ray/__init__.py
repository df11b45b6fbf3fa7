"""skillit-ray: Skill-it! online data mixing (Chen et al., NeurIPS 2023) on Ray Data, Train and Tune.

One folder per stage of the flow, in flow order: config -> skills, data -> graph, mixture -> train ->
tune, discovery -> cli, benchmarks (docs/architecture.md). Entry points: the `skillit-ray` command
(`cli.py`), `skillit_ray.config.job.load_config`, `skillit_ray.train.launch.run_training`,
`skillit_ray.tune.graph_runs.learn_graph`, `skillit_ray.tune.search.tune_hyperparameters`.
"""

__version__ = "0.1.0"
