"""The `scaling` and `run` sections: how many workers on what devices, and the run's name and storage.

Role in the flow: config -> **scaling, run** -> train (`train/launch.py` maps scaling onto Ray Train's
ScalingConfig, names the run directory, resumes, retries). No Ray import.
"""

from __future__ import annotations

from dataclasses import dataclass

from skillit_ray.config.loading import require


@dataclass
class ScalingConfig:
    """Ray Train data parallelism; maps 1:1 onto `ray.train.ScalingConfig`."""

    num_workers: int = 1
    """Data-parallel workers (one process each; one GPU each when use_gpu)."""
    use_gpu: bool = False
    """Place each worker on a GPU (NCCL) instead of CPU (gloo)."""
    cpus_per_worker: float = 1.0
    """CPUs reserved per worker."""
    gpus_per_worker: float = 1.0
    """GPUs per worker when use_gpu (fractions allowed for small trials)."""
    gpu_memory_gib: float = 0.0
    """GPU memory of each worker's GPU for the memory preflight (GiB); 0 takes it from the cluster file's
    instance type (`--cluster`) or, for a local run, this machine's GPU."""
    torch_backend: str = "auto"
    """torch.distributed backend; auto = "cpu:gloo,cuda:nccl" on GPU (gradients over NCCL, the loop's
    small CPU collectives over gloo) and "gloo" on CPU."""

    def validate(self) -> None:
        require(self.num_workers >= 1, f"scaling.num_workers={self.num_workers} must be >= 1")
        require(self.cpus_per_worker >= 0, "scaling.cpus_per_worker must be >= 0")
        require(self.gpu_memory_gib >= 0, f"scaling.gpu_memory_gib={self.gpu_memory_gib} must be >= 0 (0: detect)")
        if self.use_gpu:
            require(self.gpus_per_worker > 0, "scaling.use_gpu=true needs scaling.gpus_per_worker > 0")
        backends = [item.split(":")[-1] for item in self.resolved_torch_backend().split(",")]
        require(
            "gloo" in backends,
            f"scaling.torch_backend={self.torch_backend!r} has no gloo: the training loop's small collectives "
            'run on CPU tensors; use "auto", "gloo" or "cpu:gloo,cuda:nccl"',
        )

    def resolved_torch_backend(self) -> str:
        if self.torch_backend != "auto":
            return self.torch_backend
        return "cpu:gloo,cuda:nccl" if self.use_gpu else "gloo"


@dataclass
class RunConfig:
    """Naming, storage and resume of a run."""

    name: str = "run"
    """Run name; outputs go to <storage_path>/<name>/."""
    storage_path: str = "runs"
    """Local directory or cloud URI (s3://, gs://) for checkpoints and run outputs."""
    resume: bool = True
    """Resume from the latest checkpoint of this run name when one exists."""
    num_checkpoints_to_keep: int = 2
    """Most recent checkpoints kept on storage."""
    max_failures: int = 2
    """Times Ray Train restarts failed workers from the latest checkpoint before the run fails."""
    ray_address: str = ""
    """Ray cluster address; empty starts or joins a local Ray."""
    local_ray: str = "lean"
    """A local Ray started by a run: "lean" (no idle workers started ahead of use, no preemption-watcher
    actor) or "full" (Ray's defaults). Both keep the dashboard on 127.0.0.1: Ray Train's clean-up asks
    its State API."""

    def validate(self) -> None:
        require(
            bool(self.name) and self.name not in (".", "..") and not any(char in self.name for char in "/\\"),
            f"run.name={self.name!r} must be a plain name (not '.' or '..', no '/' or '\\'): it names the run's "
            "directory under run.storage_path",
        )
        require(bool(self.storage_path), "run.storage_path must name a directory or s3:// / gs:// URI")
        require(self.num_checkpoints_to_keep >= 1, "run.num_checkpoints_to_keep must be >= 1")
        require(self.max_failures >= 0, f"run.max_failures={self.max_failures} must be >= 0")
        require(self.local_ray in ("lean", "full"), f"run.local_ray={self.local_ray!r} must be 'lean' or 'full'")
