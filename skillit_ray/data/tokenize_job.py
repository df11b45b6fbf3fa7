"""The Ray Data job of `skillit-ray prepare tokens`: every part file tokenized and written on an actor pool.

Role in the flow: the CLI -> **tokenize job** -> the store (`store.py`). The driver plans the store
(`prepare/tokens.py`: shape, tokenizer, one work item per input part file), then
`ray.data.from_items(work) -> map_batches(ShardWriter, actor pool sized to the cluster's CPUs)`: each
actor holds the tokenizer once and reads, tokenizes, packs or pads and writes whole shards (one part ->
one shard, so the positional order and a resume are defined by part files, not by Ray Data's blocks).
The driver writes the manifest after the last shard. On a cluster the input must be on a filesystem
every node sees and the store on shared disk or object storage.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import numpy as np

from skillit_ray.data.prepare.tokens import (
    ShardWork,
    TokenStoreOptions,
    begin_store,
    finish_store,
    plan_store,
    prepare_shard,
    read_json,
    work_as_dict,
)
from skillit_ray.data.store import MANIFEST_FILE, ShardRecord, storage_filesystem

logger = logging.getLogger(__name__)


class ShardWriter:
    """A Ray Data actor: tokenizes and writes the shards of the work items it is handed."""

    def __init__(self, tokenizer, header: dict[str, Any], out: str) -> None:
        os.environ["TOKENIZERS_PARALLELISM"] = "false"  # one actor per CPU: one thread each, not a pool each
        self.tokenizer, self.header, self.out = tokenizer, header, out

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        records = []
        for split, skill, index, part in zip(batch["split"], batch["skill"], batch["index"], batch["part"]):
            work = ShardWork(str(split), str(skill), int(index), str(part))
            records.append(prepare_shard(work, self.tokenizer, self.header, self.out).to_dict())
        return {key: np.asarray([record[key] for record in records]) for key in records[0]}


def run_prepare_tokens(options: TokenStoreOptions) -> dict[str, Any]:
    """Plan, tokenize every shard on a Ray Data actor pool, write the manifest; returns the manifest and timing."""
    import ray
    import ray.data

    plan, tokenizer = plan_store(options)  # every input and option error before Ray starts
    started = time.perf_counter()
    if not begin_store(plan, tokenizer, options.overwrite):
        filesystem, root = storage_filesystem(plan.out)
        return {"manifest": read_json(filesystem, f"{root}/{MANIFEST_FILE}"), "seconds": 0.0, "workers": 0}
    if not ray.is_initialized():
        ray.init(dashboard_host="127.0.0.1", include_dashboard=False)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    workers = options.workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
    per_call = parts_per_call(len(plan.work), workers)
    items = [work_as_dict(work) for work in plan.work]
    dataset = ray.data.from_items(items, override_num_blocks=-(-len(items) // per_call))
    dataset = dataset.map_batches(
        ShardWriter,
        fn_constructor_kwargs={"tokenizer": tokenizer, "header": plan.header, "out": plan.out},
        batch_size=per_call, compute=ray.data.ActorPoolStrategy(size=min(workers, len(plan.work))), num_cpus=1,
        batch_format="numpy",
    )  # fmt: skip
    records = [ShardRecord(**{key: to_python(value) for key, value in row.items()}) for row in dataset.take_all()]
    manifest = finish_store(plan, records)
    seconds = time.perf_counter() - started
    logger.info("wrote token store %s with %d actors in %.1f s", plan.out, workers, seconds)
    return {"manifest": manifest, "seconds": seconds, "workers": workers}


CALLS_PER_ACTOR = 8
"""Each actor gets about this many calls: enough to balance shards of unequal size, few enough that Ray
Data's cost per call (tens of ms) stays small next to tokenizing (one part file per call made 2,000
small parts of 1,000 skills 9x slower than one process: docs/benchmarks/data_path.md)."""


def parts_per_call(num_parts: int, workers: int) -> int:
    """Part files (shards) handed to an actor per call."""
    return max(1, num_parts // (workers * CALLS_PER_ACTOR))


def to_python(value: Any) -> Any:
    """A numpy scalar from a Ray Data row as the plain value the manifest holds."""
    return value.item() if isinstance(value, np.generic) else value
