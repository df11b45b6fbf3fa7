"""The edges of skill discovery that run on Ray: the seeded short runs (Ray Tune) and the scoring (Ray Data).

Role in the flow: discover (`discover.py` stages the rows and the config) -> **runs** -> clustering.
`run_short_runs` trains `runs` short runs from seeds seed, seed + 1, ... as parallel Tune trials (the
ordinary in-process loop on the unlabeled rows) and keeps each run's model weights at its checkpoints;
`score_rows` scores every row's loss at every kept checkpoint, and its embedding, with Ray Data batch
inference (`map_batches` over an actor pool of `TrajectoryScorer`), so scoring scales with the cluster.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from skillit_ray.config.job import JobConfig, config_from_dict
from skillit_ray.train.callbacks import LoopCallback

SCORING_BATCH_ROWS = 128


def _discovery_run(trial_config: dict[str, Any]) -> None:
    """Ray Tune function trainable: one seeded short run; keeps the model weights at every checkpoint."""
    import ray.tune

    from skillit_ray.train.local import run_local_training

    config = config_from_dict(trial_config["config"])
    config.train.seed = trial_config["seed"] + trial_config["run"]  # run i: seed + i
    directory = Path(trial_config["out"]) / f"run_{trial_config['run']:02d}"
    directory.mkdir(parents=True, exist_ok=True)
    keeper = KeepModelWeights(directory)
    run_local_training(config, [keeper], write_checkpoints=True)
    ray.tune.report({"checkpoints": keeper.kept})


class KeepModelWeights(LoopCallback):
    """A loop callback that copies the model weights of every checkpoint of a short run to `directory`."""

    def __init__(self, directory: Path) -> None:
        self.directory, self.kept = directory, []

    def on_report(self, step: int, metrics: dict[str, Any], checkpoint_directory: str | None) -> None:
        if checkpoint_directory is not None:
            target = self.directory / f"step_{step:06d}.pt"
            shutil.copyfile(Path(checkpoint_directory) / "model.pt", target)
            self.kept.append(str(target))


def run_short_runs(config: JobConfig, runs: int, seed: int, out: Path) -> list[list[str]]:
    """Every run's checkpoint files, in run and step order."""
    from ray import tune

    from skillit_ray.data.storage import RunStorage

    resources = {"cpu": config.graph.cpus_per_trial, "gpu": config.graph.gpus_per_trial}
    storage = RunStorage(str(out / "tune"), "discover")
    tuner = tune.Tuner(
        tune.with_resources(_discovery_run, resources),
        param_space={"config": config.to_dict(), "out": str(out / "runs"), "seed": seed,
                     "run": tune.grid_search(list(range(runs)))},  # fmt: skip
        run_config=tune.RunConfig(name="discover", storage_path=storage.train_storage_path(), verbose=0,
                                  failure_config=tune.FailureConfig(max_failures=config.graph.max_failures)),
    )  # fmt: skip
    results = tuner.fit()
    failed = [result for result in results if result.error is not None]
    if failed:
        raise RuntimeError(f"discovery runs failed: {len(failed)} of {runs}; first error: {failed[0].error}")
    by_run = {result.config["run"]: result.metrics["checkpoints"] for result in results}
    return [by_run[run] for run in range(runs)]


# ----------------------------------------------------------------------------- 3. scoring (Ray Data)


class TrajectoryScorer:
    """Ray Data callable class: every row's mean token loss at every checkpoint, and its embedding
    (mean last hidden state over the row's tokens) under `embedding_checkpoint`."""

    def __init__(self, config: dict[str, Any], checkpoints: list[str], embedding_checkpoint: str) -> None:
        import torch

        from skillit_ray.data.hub import model_directory
        from skillit_ray.data.tokenizer import load_checked_tokenizer
        from skillit_ray.train.model import build_model

        torch.set_num_threads(1)  # one CPU per scoring actor, as Ray Data reserves it
        self.config = config_from_dict(config)
        self.tokenizer = load_checked_tokenizer(self.config.data.tokenizer_path)
        data, model = self.config.data, self.config.model
        self.model = build_model(model.size, len(self.tokenizer), data.sequence_length, model_directory(model),
                                 model.overrides).eval()  # fmt: skip
        self.states = [torch.load(path, map_location="cpu", weights_only=True) for path in checkpoints]
        self.embedding_state = torch.load(embedding_checkpoint, map_location="cpu", weights_only=True)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        from skillit_ray.data.tokens import encode_prompt_answer, encode_texts
        from skillit_ray.train.model import sequence_losses

        pad_id, length = self.tokenizer.pad_token_id, self.config.data.sequence_length
        answer_mask = None  # prompt/answer rows: the loss of the answer tokens, as training and validation score it
        if "prompt" in batch:
            rows, answer_mask = encode_prompt_answer(
                self.tokenizer, list(batch["prompt"]), list(batch["answer"]), length
            )
        else:
            rows = encode_texts(self.tokenizer, list(batch["text"]), length)
        losses = []
        for state in self.states:
            self.model.load_state_dict(state)
            losses.append(sequence_losses(self.model, rows, pad_id, torch.device("cpu"), loss_mask=answer_mask))
        self.model.load_state_dict(self.embedding_state)
        with torch.no_grad():
            input_ids = torch.as_tensor(rows, dtype=torch.long)
            hidden = self.model(input_ids=input_ids, output_hidden_states=True).hidden_states[-1]
            real = (input_ids != pad_id).unsqueeze(-1).float()
            embedding = (hidden * real).sum(dim=1) / real.sum(dim=1).clamp(min=1.0)
        return {"row": batch["row"], "losses": np.stack(losses, axis=1).astype(np.float32),
                "embedding": embedding.numpy().astype(np.float32)}  # fmt: skip


def score_rows(staged: Path, config: JobConfig, checkpoints: list[list[str]], workers: int) -> tuple:
    """(losses of shape (rows, runs, checkpoints), embeddings of shape (rows, width)), in row order."""
    import ray
    import ray.data

    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    flat = [path for run in checkpoints for path in run]
    # one CPU is left to the read tasks: scoring actors holding every CPU would wait forever for their input
    slots = workers or max(1, int(ray.cluster_resources().get("CPU", 1)) - 1)
    columns = [name for name in pq.read_schema(staged).names if name != "skill"]
    # blocks for every actor: the staged file has few row groups, and one block keeps one actor busy
    blocks = max(1, min(4 * slots, pq.ParquetFile(staged).metadata.num_rows // SCORING_BATCH_ROWS))
    dataset = ray.data.read_parquet(str(staged), columns=columns).repartition(blocks).map_batches(
        TrajectoryScorer,
        fn_constructor_kwargs={"config": config.to_dict(), "checkpoints": flat,
                               "embedding_checkpoint": checkpoints[0][-1]},  # fmt: skip
        batch_size=SCORING_BATCH_ROWS, batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=slots), num_cpus=1,
    )  # fmt: skip
    rows, losses, embeddings = [], [], []
    for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
        rows.append(batch["row"])
        losses.append(batch["losses"])
        embeddings.append(batch["embedding"])
    order = np.argsort(np.concatenate(rows), kind="stable")
    shape = (len(order), len(checkpoints), len(checkpoints[0]))
    return np.concatenate(losses)[order].reshape(shape), np.concatenate(embeddings)[order]
