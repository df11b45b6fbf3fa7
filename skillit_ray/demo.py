"""`make demo` / `skillit-ray demo`: LEGO continual pre-training on a local Ray, on a CPU.

Role in the flow: the end-to-end showcase. Four runs with the same step budget, each a real
`run_training` (sampler actor + Ray Train worker + per-skill streams):

* Skill-it, online, with the paper's LEGO skills graph (skill 2 -> skills 1, 3 and 4; binary graph
  preprocessed with the official off-diagonal 1 -> 0.5 rule) and the official eta = 0.5, window 3;
* Skill-it, same settings, with LEGO's chain graph: resolving variable i needs the value of
  variable i - 1, so skill i is a prerequisite of every later skill (A[i, j] = 1 for j >= i). The
  paper learned its graph from a pretrained model; from scratch, only this structure is visible;
* skill-stratified (uniform over skills);
* random: the paper's imbalanced LEGO mixture, scaled to the demo's skills.

Scale: the paper continues a pretrained GPT-Neo 125M for 6000 steps; on 2 CPU cores we train a
2-layer model from scratch for 1200 steps on the same k = 5 skills (`DEMO_SETTINGS`). It prints a
per-skill accuracy table and writes plots (mixture weights, validation loss per run, and a comparison).
"""

from __future__ import annotations

import time
from pathlib import Path

from skillit_ray.config import load_config

DEMO_SETTINGS = [
    "data.source=lego",
    "data.lego_num_variables=5",  # the paper's k = 5
    "data.sequence_length=36",  # the longest k = 5 sentence is 34 tokens
    "model.size=tiny",
    "train.steps=1200",
    "train.batch_size=32",  # the paper's batch
    "train.learning_rate=1e-3",  # from scratch (the paper continues a pretrained model at 5e-5)
    "train.eval_every_n_steps=50",  # the official 120 evaluations over 6000 steps: every 50
    "mixture.num_rounds=6",  # official T = 6
    "mixture.window=3",  # official window (counts evaluations)
    "mixture.eta=0.5",  # official LEGO eta
    "scaling.num_workers=1",
    "scaling.cpus_per_worker=2",
]
"""The demo's shared settings (overridable with --set)."""

DEMO_RUNS = {
    "skillit": [
        "mixture.strategy=skillit",
        # the paper's LEGO graph: skill 2 -> skills 1, 3, 4 (scripts/lego/pt/skillit.sh)
        "mixture.graph=[[1,0,0,0,0],[1,1,1,1,0],[0,0,1,0,0],[0,0,0,1,0],[0,0,0,0,1]]",
        "mixture.graph_preprocessing=paper_binary",
    ],
    "skillit_chain": [
        "mixture.strategy=skillit",
        # LEGO's construction: skill i is a prerequisite of every later skill
        "mixture.graph=[[1,1,1,1,1],[0,1,1,1,1],[0,0,1,1,1],[0,0,0,1,1],[0,0,0,0,1]]",
        "mixture.graph_preprocessing=paper_binary",
    ],
    "stratified": ["mixture.strategy=stratified"],
    # the official random baseline: the imbalanced mixture 1:1:1:3:5 (scripts/lego/pt/run_random.sh)
    "random": ["mixture.strategy=random", "mixture.proportions=[1, 1, 1, 3, 5]"],
}


def run_demo(out_dir: str = "runs/demo", overrides: list[str] | None = None) -> list[Path]:
    """Train the four runs one after another and print the comparison; returns the run directories."""
    import ray

    from skillit_ray import report
    from skillit_ray.train import connect_ray, run_training

    storage = Path(out_dir).resolve()
    configs = {
        name: load_config(
            None,
            DEMO_SETTINGS
            + extra
            + [f"run.name={name}", f"run.storage_path={storage}", "run.resume=false"]
            + list(overrides or []),
        )
        for name, extra in DEMO_RUNS.items()
    }  # every config is validated before Ray starts
    for name in configs:
        if (storage / name).exists():
            raise ValueError(f"{storage / name} exists from an earlier demo; remove {storage} or pass --out NEW_DIR")
    connect_ray(next(iter(configs.values())))
    run_directories = []
    started = time.perf_counter()
    for name, config in configs.items():
        print(f"=== {name}: {config.train.steps} steps of {config.train.batch_size} sequences", flush=True)
        run_training(config)
        run_directories.append(storage / name)
    print(f"\nLEGO ({configs['skillit'].data.lego_num_variables} variables), accuracy (%) per skill after "
          f"{configs['skillit'].train.steps} steps; total {time.perf_counter() - started:.0f} s\n")  # fmt: skip
    print(report.comparison_table(run_directories))
    comparison = report.plot_comparison(run_directories, storage / "comparison.png")
    print(f"\nplots: {comparison} and <run>/mixture_weights.png, <run>/val_loss.png under {storage}")
    ray.shutdown()
    return run_directories
