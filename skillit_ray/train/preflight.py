"""Pre-flight checks of a job against the machine and cluster it is about to run on.

Role in the flow: after `load_config` (which checks the keys config owns) and before `ray job submit`
or `ray.init`: `check_config` checks the keys the data source and the strategy own (`data.<source>.*`,
`mixture.<family>.*`, their names), and `check_job` what the config *refers to*, so that a typo, a
missing file or a GPU job aimed at a CPU-only cluster fails in a second on the laptop, not after a
cluster has started. `describe_every_key` is `skillit-ray keys`: the config's keys and every source's
and strategy's options.

    warnings = check_job(load_config("jobs/configs/lego_paper.yaml"),
                         cluster_config_path="clusters/aws_cpu-head_gpu-workers-0-8.yaml")

Two kinds of cluster file are understood: Ray cluster-launcher YAML (`available_node_types`) and
KubeRay manifests (`kind: RayCluster` / `RayJob`, several documents allowed). No Ray import: this
reads files only.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from skillit_ray.config.job import JobConfig, describe_config_keys, input_paths
from skillit_ray.data.sources.registry import check_data, sources
from skillit_ray.mixture.registry import check_mixture, strategies
from skillit_ray.train.memory import instance_gpu_memory_gib

# Instance-type families with NVIDIA GPUs, for launcher node types that leave `resources` empty
# (AWS fills them in from the instance type). Prefix match on the family before the dot.
_AWS_GPU_FAMILIES = ("p2", "p3", "p3dn", "p4d", "p4de", "p5", "p5e", "p5en", "p6", "g3", "g4dn", "g5", "g6", "g6e")
_GCP_GPU_MACHINE_PREFIXES = ("a2-", "a3-", "a4-", "g2-")


def check_config(config: JobConfig) -> JobConfig:
    """The data source's and the strategy's names and options (what `load_config` leaves to them)."""
    check_data(config)
    check_mixture(config)
    return config


def describe_every_key() -> str:
    """Every key with its type, default and meaning: the sections, then each source's and strategy's options."""
    parts = [describe_config_keys()]
    for name, cls in sources().items():
        options = describe_config_keys(cls.options_class(name), f"data.{name}.")
        parts.append(
            f"# data.source={name}: data.{name}.*\n{options}" if options else f"# data.source={name}: no options"
        )
    for name, cls in strategies().items():
        section = cls.options_section
        options = describe_config_keys(cls.Options, f"mixture.{section}.") if section else ""
        parts.append(
            f"# mixture.strategy={name}" + (f": mixture.{section}.*\n{options}" if options else ": no options")
        )
    return "\n".join(parts)


def check_job(config: JobConfig, cluster_config_path: str | None = None, working_dir: str = ".") -> list[str]:
    """Check the files a job names and, when given, that the cluster can place its workers.

    Args:
        config: A loaded (and therefore already value-validated) job config.
        cluster_config_path: A Ray cluster-launcher YAML or a KubeRay RayCluster/RayJob manifest,
            or None to skip the cluster checks.
        working_dir: Directory that relative paths in the config are resolved against (the
            directory you run `ray job submit --working-dir` from).

    Returns:
        Human-readable warnings: things that may be intended but usually are not.

    Raises:
        ValueError: A local file or directory named by the config does not exist, the cluster file
            is missing or unreadable, or `scaling.use_gpu` is true but no node type of the cluster
            offers a GPU. The message names the key, the path and the fix.
    """
    check_config(config)
    warnings: list[str] = []
    base = Path(working_dir)
    for key, value in input_paths(config):
        path = Path(value) if Path(value).is_absolute() else base / value
        if not path.exists():
            raise ValueError(
                f"{key}={value!r}: {path} does not exist. Create it (e.g. `skillit-ray prepare` for "
                f"data.parquet.path), fix the path (relative paths are resolved against {base.resolve()}), "
                f"or use an s3:// / gs:// URI."
            )
        if cluster_config_path is not None:
            warnings.append(
                f"{key}={value!r} is a local path: every node of the cluster must see it. The job's "
                "working_dir ships it only if it lies inside the repo and outside the runtime_env "
                "excludes (data/, runs/); prefer an s3:// or gs:// URI."
            )
    if cluster_config_path is None:
        return warnings

    nodes = read_cluster_nodes(cluster_config_path)
    max_gpus = sum(node["gpus"] * node["max_count"] for node in nodes)
    has_gpu_node = any(node["gpus"] > 0 for node in nodes)
    if config.scaling.use_gpu and not has_gpu_node:
        names = ", ".join(node["name"] for node in nodes) or "none found"
        raise ValueError(
            f"scaling.use_gpu=true but no node type in {cluster_config_path} offers a GPU (node types: "
            f"{names}). Use a GPU cluster shape such as clusters/aws_cpu-head_gpu-workers-0-8.yaml, or "
            "run on CPUs with --set scaling.use_gpu=false."
        )
    if not config.scaling.use_gpu and has_gpu_node:
        warnings.append(
            f"scaling.use_gpu=false on {cluster_config_path}, which has GPU nodes: training will run on "
            "their CPUs. Set scaling.use_gpu=true to use the GPUs."
        )
    memories = [node["gpu_memory_gib"] for node in nodes if node["gpus"] and node.get("gpu_memory_gib")]
    if config.scaling.use_gpu and memories and not config.scaling.gpu_memory_gib:
        config.scaling.gpu_memory_gib = min(memories)  # the memory preflight (`resolve.check_memory`) reads it
    needed_gpus = config.scaling.num_workers * config.scaling.gpus_per_worker
    if config.scaling.use_gpu and max_gpus and needed_gpus > max_gpus:
        warnings.append(
            f"scaling.num_workers={config.scaling.num_workers} x scaling.gpus_per_worker="
            f"{config.scaling.gpus_per_worker} needs {needed_gpus:g} GPUs but {cluster_config_path} scales to "
            f"at most {max_gpus:g}; Ray Train would wait forever. Lower scaling.num_workers or raise max_workers."
        )
    if "://" not in config.run.storage_path and sum(node["max_count"] for node in nodes) > 1:
        warnings.append(
            f"run.storage_path={config.run.storage_path!r} is local but the cluster has several nodes: "
            "checkpoints and results would be scattered over node disks and lost with them. "
            "Use s3://BUCKET/PREFIX or gs://BUCKET/PREFIX."
        )
    return warnings


def read_cluster_nodes(cluster_config_path: str) -> list[dict[str, Any]]:
    """Node types of a launcher YAML or KubeRay manifest: name, GPUs per node, maximum node count.

    Raises:
        ValueError: The file is missing, is not YAML, or is neither kind of cluster file.
    """
    path = Path(cluster_config_path)
    if not path.is_file():
        raise ValueError(f"cluster config {cluster_config_path} does not exist; pass a file under clusters/")
    try:
        documents = [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    except yaml.YAMLError as error:
        raise ValueError(f"cluster config {cluster_config_path} is not valid YAML: {error}") from None
    nodes: list[dict[str, Any]] = []
    recognized = False
    for document in documents:
        if not isinstance(document, dict):
            continue
        if "available_node_types" in document:
            recognized = True
            nodes.extend(_launcher_nodes(document))
        elif document.get("kind") in ("RayCluster", "RayJob", "RayService"):
            recognized = True
            spec = document.get("spec") or {}
            if document["kind"] == "RayJob":
                spec = spec.get("rayClusterSpec") or {}
            elif document["kind"] == "RayService":
                spec = spec.get("rayClusterConfig") or {}
            nodes.extend(_kuberay_nodes(spec))
    if not recognized:
        raise ValueError(
            f"cluster config {cluster_config_path} is neither a Ray cluster-launcher YAML (available_node_types) "
            "nor a KubeRay RayCluster/RayJob manifest"
        )
    return nodes


def _launcher_nodes(document: dict[str, Any]) -> list[dict[str, Any]]:
    head_type = document.get("head_node_type")
    nodes = []
    for name, node_type in (document.get("available_node_types") or {}).items():
        resources = node_type.get("resources") or {}
        gpus = resources.get("GPU")
        if gpus is None:  # launcher fills resources from the instance type: infer it the same way
            gpus = 1 if _is_gpu_node_config(node_type.get("node_config") or {}) else 0
        max_count = 1 if name == head_type else int(node_type.get("max_workers", document.get("max_workers", 0)))
        node_config = node_type.get("node_config") or {}
        instance = str(node_config.get("InstanceType") or node_config.get("machineType") or "")
        nodes.append({"name": name, "gpus": float(gpus), "max_count": max_count,
                      "gpu_memory_gib": instance_gpu_memory_gib(instance) if gpus else None})  # fmt: skip
    return nodes


def _is_gpu_node_config(node_config: dict[str, Any]) -> bool:
    instance_type = str(node_config.get("InstanceType", ""))
    if instance_type and instance_type.split(".")[0] in _AWS_GPU_FAMILIES:
        return True
    if node_config.get("guestAccelerators"):
        return True
    machine_type = str(node_config.get("machineType", ""))
    return machine_type.startswith(_GCP_GPU_MACHINE_PREFIXES)


def _kuberay_nodes(spec: dict[str, Any]) -> list[dict[str, Any]]:
    groups = [("head", spec.get("headGroupSpec") or {}, 1)]
    for group in spec.get("workerGroupSpecs") or []:
        count = int(group.get("maxReplicas", group.get("replicas", 0)) or 0) * int(group.get("numOfHosts", 1) or 1)
        groups.append((str(group.get("groupName", "workers")), group, count))
    nodes = []
    for name, group, count in groups:
        containers = ((group.get("template") or {}).get("spec") or {}).get("containers") or []
        gpus = 0.0
        for container in containers:
            resources = container.get("resources") or {}
            for section in ("limits", "requests"):
                value = (resources.get(section) or {}).get("nvidia.com/gpu")
                if value is not None:
                    gpus = max(gpus, _quantity(value))
        nodes.append({"name": name, "gpus": gpus, "max_count": count})
    return nodes


def _quantity(value: Any) -> float:
    """A Kubernetes quantity of whole devices ("1", 2) as a number."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*", str(value))
    return float(match.group(1)) if match else 0.0
