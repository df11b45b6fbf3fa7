"""Every run config, job entry point and cluster shape parses, validates and stays locked down.

Fast and offline: YAML parsing, Ray's own launcher JSON schema, AST checks of jobs/*.py (nothing
under jobs/ is imported) and the pre-flight checks on toy files. No Ray cluster is started.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from skillit_ray.config.job import load_config
from skillit_ray.train.preflight import check_job, read_cluster_nodes

ROOT = Path(__file__).resolve().parents[1]
JOBS = ROOT / "jobs"
CLUSTERS = ROOT / "clusters"
SUBCOMMANDS = ("prepare", "train", "graph", "tune", "pipeline", "demo")
PROTECTED_PORTS = (8265, 6379, 10001)

ALL_YAML = sorted([*JOBS.rglob("*.yaml"), *CLUSTERS.rglob("*.yaml")])
RUN_CONFIGS = sorted((JOBS / "configs").glob("*.yaml"))
ENTRY_POINTS = sorted(JOBS.glob("*.py"))
KUBERAY = sorted((CLUSTERS / "kuberay").glob("*.yaml"))
LAUNCHER = sorted(path for path in CLUSTERS.glob("*.yaml"))


def _documents(path: Path) -> list[Any]:
    return [document for document in yaml.safe_load_all(path.read_text()) if document is not None]


def _name(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else path.name


def test_expected_files_exist():
    assert {p.stem for p in ENTRY_POINTS} >= {"prepare", "graph", "tune", "train", "pipeline"}
    assert {p.stem for p in RUN_CONFIGS} >= {
        "smoke",
        "lego_paper",
        "addition_paper",
        "ni_style_8gpu",
        "redpajama_style_16gpu",
    }
    assert LAUNCHER and len(KUBERAY) == 2


@pytest.mark.parametrize("path", ALL_YAML, ids=_name)
def test_yaml_parses(path):
    assert _documents(path), f"{_name(path)} is empty"


@pytest.mark.parametrize("path", RUN_CONFIGS, ids=_name)
def test_run_config_loads(path):
    load_config(path)


def test_smoke_config_is_small_and_cpu_only():
    config = load_config(JOBS / "configs" / "smoke.yaml")
    assert not config.scaling.use_gpu and config.scaling.num_workers == 1
    assert config.train.steps <= 50 and config.model.size == "tiny" and config.graph.steps <= 20


@pytest.mark.parametrize("path", ENTRY_POINTS, ids=_name)
def test_entry_point_is_thin(path):
    tree = ast.parse(path.read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module or "")
    assert imported <= {"sys", "skillit_ray.cli"}, f"{_name(path)} imports {sorted(imported)}"
    assert "skillit_ray.cli" in imported
    subcommands = [
        element.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "main"
        for argument in node.args
        if isinstance(argument, ast.List)
        for element in argument.elts[:1]
        if isinstance(element, ast.Constant)
    ]
    assert subcommands and subcommands[0] in SUBCOMMANDS, f"{_name(path)} calls main with {subcommands}"
    docstring = ast.get_docstring(tree) or ""
    assert "ray job submit --working-dir . --runtime-env jobs/runtime_env.yaml" in docstring
    assert f"python jobs/{path.name}" in docstring


def test_runtime_env_ships_code_and_dependencies():
    runtime_env = yaml.safe_load((JOBS / "runtime_env.yaml").read_text())
    assert runtime_env["working_dir"] == "."
    assert {"/.venv", "/runs", "/data", "/.gpu", "/.git"} <= set(runtime_env["excludes"])
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = sorted(dep for dep in project["dependencies"] if not re.match(r"ray\b", dep))
    assert sorted(runtime_env["pip"]["packages"]) == wanted, "keep runtime_env pip == pyproject deps minus ray"


@pytest.fixture(scope="module")
def launcher_schema():
    import ray.autoscaler

    return json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())


@pytest.mark.parametrize("path", LAUNCHER, ids=_name)
def test_launcher_config_matches_ray_schema(path, launcher_schema):
    config = yaml.safe_load(path.read_text())
    jsonschema.validate(config, launcher_schema)
    assert config["head_node_type"] in config["available_node_types"]
    workers = [t for name, t in config["available_node_types"].items() if name != config["head_node_type"]]
    assert any(t["min_workers"] == 0 and t["max_workers"] == 8 and t["resources"].get("GPU") for t in workers)
    assert config["docker"]["image"].startswith("rayproject/ray")
    assert any("pip install" in command for command in config["setup_commands"])


@pytest.mark.parametrize("path", KUBERAY, ids=_name)
def test_kuberay_manifest_shape(path):
    for document in _documents(path):
        assert document["apiVersion"] == "ray.io/v1"
        assert document["metadata"]["name"]
        if document["kind"] == "RayJob":
            assert document["spec"]["entrypoint"].startswith("python jobs/pipeline.py --config jobs/configs/")
            assert document["spec"]["shutdownAfterJobFinishes"] is True
            spec = document["spec"]["rayClusterSpec"]
        else:
            assert document["kind"] == "RayCluster"
            spec = document["spec"]
            assert spec["enableInTreeAutoscaling"] is True
        assert isinstance(spec["headGroupSpec"]["rayStartParams"], dict)
        for group in [spec["headGroupSpec"], *spec["workerGroupSpecs"]]:
            containers = group["template"]["spec"]["containers"]
            assert containers and all(container["image"] for container in containers)
        for group in spec["workerGroupSpecs"]:
            assert group["groupName"] and group["minReplicas"] == 0 and group["maxReplicas"] == 8
            assert group["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] >= 1


# ----------------------------------------------------------------------------- security


def _walk(node: Any, trail: tuple = ()):
    yield trail, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _walk(value, (*trail, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _walk(value, (*trail, index))


def _open_to_world(rule: dict[str, Any]) -> bool:
    """An AWS IpPermission or GCP firewall rule that admits 0.0.0.0/0 (or ::/0) to a protected port."""
    cidrs = [r.get("CidrIp") or r.get("CidrIpv6") for r in rule.get("IpRanges", []) + rule.get("Ipv6Ranges", [])]
    cidrs += rule.get("sourceRanges", [])
    if not any(cidr in ("0.0.0.0/0", "::/0") for cidr in cidrs):
        return False
    if rule.get("IpProtocol") == "-1":
        return True
    if "FromPort" in rule:
        return any(rule["FromPort"] <= port <= rule.get("ToPort", rule["FromPort"]) for port in PROTECTED_PORTS)
    ports = [str(p) for allowed in rule.get("allowed", []) for p in allowed.get("ports", [])] or ["0-65535"]
    for spec in ports:
        low, _, high = spec.partition("-")
        if any(int(low) <= port <= int(high or low) for port in PROTECTED_PORTS):
            return True
    return False


def security_problems(path: Path) -> list[str]:
    """Ways in which a cluster or job file exposes the dashboard, GCS or Ray Client to the internet."""
    problems = []
    text = path.read_text()
    for document in _documents(path):
        for trail, node in _walk(document):
            where = f"{_name(path)}:{'.'.join(map(str, trail))}"
            if isinstance(node, dict) and _open_to_world(node):
                problems.append(f"{where} opens a Ray port to 0.0.0.0/0")
            if isinstance(node, dict) and node.get("type") in ("LoadBalancer", "NodePort") and "ports" in node:
                problems.append(f"{where} is a {node['type']} Service")
            if trail and trail[-1] == "serviceType" and node in ("LoadBalancer", "NodePort"):
                problems.append(f"{where} exposes the head as {node}")
            if trail and trail[-1] == "enableIngress" and node is True:
                problems.append(f"{where} enables an Ingress to the dashboard")
            if trail and trail[-1] == "rayStartParams" and isinstance(node, dict):
                if str(node.get("dashboard-host", "")) == "0.0.0.0" and _head_exposed(document):
                    problems.append(f"{where} binds the dashboard to 0.0.0.0 on an exposed head")
            if (
                isinstance(node, dict)
                and node.get("kind") == "Service"
                and node.get("spec", {}).get("type")
                in (
                    "LoadBalancer",
                    "NodePort",
                )
            ):
                problems.append(f"{where} is an externally reachable Service")
    if "available_node_types" in text and re.search(r"--dashboard-host[= ]0\.0\.0\.0", text):
        problems.append(f"{_name(path)}: `ray start --dashboard-host=0.0.0.0` on a launcher head with a public IP")
    return problems


def _head_exposed(document: dict[str, Any]) -> bool:
    spec = document.get("spec") or {}
    spec = spec.get("rayClusterSpec", spec)
    head = spec.get("headGroupSpec") or {}
    return head.get("serviceType") in ("LoadBalancer", "NodePort") or bool(head.get("enableIngress"))


def _auth_mode_token_everywhere(path: Path) -> bool:
    documents = _documents(path)
    if path.parent.name == "kuberay":
        for document in documents:
            spec = document["spec"].get("rayClusterSpec", document["spec"])
            containers = [
                container
                for group in [spec["headGroupSpec"], *spec["workerGroupSpecs"]]
                for container in group["template"]["spec"]["containers"]
            ]
            operator_managed = (spec.get("authOptions") or {}).get("mode") == "token"
            explicit = all(
                {"name": "RAY_AUTH_MODE", "value": "token"} in (container.get("env") or []) for container in containers
            )
            if not (operator_managed and explicit):
                return False
        return True
    config = documents[0]
    starts = config["head_start_ray_commands"] + config["worker_start_ray_commands"]
    in_commands = all("RAY_AUTH_MODE=token" in command for command in starts if "ray start" in command)
    in_docker = "--env RAY_AUTH_MODE=token" in config.get("docker", {}).get("run_options", [])
    token_file = config.get("file_mounts", {}).get("~/.ray/auth_token") == "~/.ray/auth_token"
    return in_commands and in_docker and token_file


@pytest.mark.parametrize("path", ALL_YAML, ids=_name)
def test_no_ray_port_open_to_the_internet(path):
    assert security_problems(path) == []


@pytest.mark.parametrize("path", [*LAUNCHER, *KUBERAY], ids=_name)
def test_token_auth_on_every_node(path):
    assert _auth_mode_token_everywhere(path), f"{_name(path)} must run every Ray process with RAY_AUTH_MODE=token"


def test_security_scan_catches_open_configs(tmp_path):
    aws = tmp_path / "aws.yaml"
    aws.write_text(
        yaml.safe_dump(
            {
                "provider": {
                    "type": "aws",
                    "security_group": {
                        "IpPermissions": [
                            {
                                "IpProtocol": "tcp",
                                "FromPort": 8265,
                                "ToPort": 8265,
                                "IpRanges": [{"CidrIp": "0.0.0.0/0"}],
                            }
                        ]
                    },
                },
                "available_node_types": {},
            }
        )
    )
    gcp = tmp_path / "gcp.yaml"
    gcp.write_text(yaml.safe_dump({"firewall": {"sourceRanges": ["0.0.0.0/0"], "allowed": [{"ports": ["6379"]}]}}))
    service = tmp_path / "svc.yaml"
    service.write_text("kind: Service\napiVersion: v1\nspec:\n  type: LoadBalancer\n  ports: [{port: 8265}]\n")
    exposed_head = tmp_path / "rc.yaml"
    exposed_head.write_text(
        yaml.safe_dump(
            {
                "spec": {
                    "headGroupSpec": {"serviceType": "LoadBalancer", "rayStartParams": {"dashboard-host": "0.0.0.0"}}
                }
            }
        )
    )
    ssh_only = tmp_path / "ssh.yaml"
    ssh_only.write_text(
        yaml.safe_dump(
            {"IpPermissions": [{"IpProtocol": "tcp", "FromPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]}
        )
    )
    for path in (aws, gcp, service, exposed_head):
        assert security_problems(path), path.name
    assert security_problems(ssh_only) == []


# ----------------------------------------------------------------------------- preflight


def test_preflight_passes_for_shipped_shapes():
    lego = load_config(JOBS / "configs" / "lego_paper.yaml")
    for path in [*LAUNCHER, *KUBERAY]:
        warnings = check_job(lego, str(path), working_dir=str(ROOT))
        assert all(isinstance(warning, str) for warning in warnings)
        assert any("run.storage_path" in warning for warning in warnings)  # lego_paper stores under runs/
        assert max(node["gpus"] for node in read_cluster_nodes(str(path))) >= 1


def test_preflight_names_the_missing_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # relative paths resolve against the directory the config is loaded in
    config = load_config(None, ["mixture.graph_path=graphs/nope.npy"])
    with pytest.raises(ValueError, match=r"mixture\.graph_path.*graphs/nope\.npy"):
        check_job(config)
    config = load_config(None, ["data.source=parquet", f"data.parquet.path={tmp_path / 'missing'}"])
    with pytest.raises(ValueError, match=r"data\.parquet\.path.*missing"):
        check_job(config)
    uri = load_config(None, ["data.source=parquet", "data.parquet.path=s3://bucket/skills"])
    assert check_job(uri) == []
    (tmp_path / "graph.npy").write_bytes(b"")
    present = load_config(None, ["mixture.graph_path=graph.npy"])
    assert present.mixture.graph_path == str(tmp_path / "graph.npy") and check_job(present) == []


def test_preflight_rejects_gpu_job_on_cpu_only_shapes(tmp_path):
    gpu_job = load_config(None, ["scaling.use_gpu=true"])
    launcher = tmp_path / "cpu.yaml"
    launcher.write_text(
        yaml.safe_dump(
            {
                "cluster_name": "cpu",
                "provider": {"type": "aws", "region": "us-west-2"},
                "head_node_type": "head",
                "available_node_types": {
                    "head": {"resources": {"CPU": 4}, "node_config": {"InstanceType": "m6i.xlarge"}},
                    "cpu": {"resources": {}, "max_workers": 4, "node_config": {"InstanceType": "c6i.4xlarge"}},
                },
            }
        )
    )
    with pytest.raises(ValueError, match=r"scaling\.use_gpu=true.*no node type.*GPU"):
        check_job(gpu_job, str(launcher))
    kuberay = tmp_path / "rc.yaml"
    kuberay.write_text(
        "apiVersion: ray.io/v1\nkind: RayCluster\nmetadata: {name: cpu}\nspec:\n"
        "  headGroupSpec: {rayStartParams: {}, template: {spec: {containers: [{name: h, image: i}]}}}\n"
        "  workerGroupSpecs:\n  - groupName: cpu\n    maxReplicas: 2\n    rayStartParams: {}\n"
        "    template: {spec: {containers: [{name: w, image: i, resources: {limits: {cpu: 4}}}]}}\n"
    )
    with pytest.raises(ValueError, match=r"scaling\.use_gpu=true"):
        check_job(gpu_job, str(kuberay))
    # Instance types without `resources` are inferred like the launcher does (g5 has a GPU).
    inferred = yaml.safe_load(launcher.read_text())
    inferred["available_node_types"]["cpu"]["node_config"]["InstanceType"] = "g5.2xlarge"
    launcher.write_text(yaml.safe_dump(inferred))
    check_job(gpu_job, str(launcher))
