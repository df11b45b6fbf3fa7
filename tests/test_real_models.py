"""Real models: a hub id loaded offline from a cache in the hub's layout, FSDP2 against DDP on CPU/gloo,
sharded checkpoints resumed on another worker count and across parallelisms, the exported model.

The two-rank runs start two processes with a gloo process group (torch.multiprocessing, no Ray: each is
the training loop as a Ray Train worker runs it, with a stratified mixture so that each rank's own
sampler state gives the same rounds); `test_fsdp_in_ray_train` runs the same through Ray Train (slow).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import small_config

from skillit_ray.data.hub import find_model_files, is_hub_id

COMMIT = "0123456789abcdef0123456789abcdef01234567"
HUB_ID = "test-org/tiny-lego-gpt2"


def save_to_hub_cache(cache: Path, hub_id: str, model, tokenizer, commit: str = COMMIT) -> Path:
    """A model and tokenizer saved where the Hugging Face hub's cache keeps a download of `hub_id` at `commit`."""
    repository = cache / f"models--{hub_id.replace('/', '--')}"
    snapshot = repository / "snapshots" / commit
    model.save_pretrained(snapshot)
    tokenizer.save_pretrained(snapshot)
    (repository / "refs").mkdir(parents=True, exist_ok=True)
    (repository / "refs" / "main").write_text(commit)
    return snapshot


@pytest.fixture
def hub_cache(tmp_path, lego_dataset, monkeypatch):
    """A tiny GPT-2 with the LEGO dataset's tokenizer, cached as `HUB_ID`; the hub unreachable (offline)."""
    from transformers import AutoTokenizer

    from skillit_ray.train.model import build_model

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tokenizer = AutoTokenizer.from_pretrained(str(lego_dataset / "tokenizer"))
    torch.manual_seed(0)
    model = build_model("tiny", len(tokenizer), 64)
    cache = tmp_path / "hf-cache"
    save_to_hub_cache(cache, HUB_ID, model, tokenizer)
    return cache


def test_hub_id_found_offline_and_uncached_id_refused(hub_cache):
    files = find_model_files(HUB_ID, "main", str(hub_cache))
    assert files.commit == COMMIT and files.has_tokenizer
    assert Path(files.directory) == hub_cache / "models--test-org--tiny-lego-gpt2" / "snapshots" / COMMIT
    assert find_model_files(HUB_ID, COMMIT, str(hub_cache)).directory == files.directory  # pinned commit
    assert is_hub_id(HUB_ID) and not is_hub_id(str(hub_cache))
    with pytest.raises(ValueError, match=r"test-org/missing.*HF_HUB_OFFLINE.*hf download test-org/missing"):
        find_model_files("test-org/missing", "main", str(hub_cache))
    with pytest.raises(ValueError, match="neither a local directory nor a hub id"):
        find_model_files("no/such/dir", "main", str(hub_cache))


def test_run_resolves_hub_model_with_its_tokenizer(hub_cache, lego_dataset, tmp_path):
    """The driver pins the revision to the cached commit and reads the data with the model's tokenizer; the
    model loads by hub id with HF_HUB_OFFLINE=1; a missing model fails before Ray names the fetch command."""
    from skillit_ray.train.local import run_local_training
    from skillit_ray.train.resolve import resolve_run

    overrides = ["data.source=parquet", f"data.parquet.path={lego_dataset}", f"model.name_or_path={HUB_ID}",
                 f"model.cache_dir={hub_cache}", "train.steps=4", "mixture.strategy=stratified"]  # fmt: skip
    config = small_config(tmp_path, *overrides)
    resolved, setup = resolve_run(config)
    assert resolved.model.revision == COMMIT
    assert setup.tokenizer_path == find_model_files(HUB_ID, "main", str(hub_cache)).directory
    records = run_local_training(config)
    assert len(records["evaluations"]) >= 2 and np.isfinite(records["evaluations"][-1]["val_loss"]).all()
    missing = small_config(tmp_path, *overrides[:2], "model.name_or_path=test-org/not-cached",
                           f"model.cache_dir={hub_cache}")  # fmt: skip
    with pytest.raises(ValueError, match="hf download test-org/not-cached"):
        resolve_run(missing)


def test_token_store_of_another_tokenizer_refused_for_hub_model(hub_cache, lego_dataset, tmp_path):
    """A store tokenized by the dataset's own tokenizer equals the model's here, so it is read; a model
    whose tokenizer differs (one token more) refuses it before any training."""
    from transformers import AutoTokenizer

    from skillit_ray.data.prepare.tokens import TokenStoreOptions, prepare_in_process
    from skillit_ray.train.model import build_model
    from skillit_ray.train.resolve import resolve_run

    store = tmp_path / "store"
    prepare_in_process(TokenStoreOptions(str(lego_dataset), str(store), sequence_length=28))
    overrides = ["data.source=tokens", f"data.tokens.path={store}", f"model.cache_dir={hub_cache}"]
    resolve_run(small_config(tmp_path, *overrides, f"model.name_or_path={HUB_ID}"))
    tokenizer = AutoTokenizer.from_pretrained(str(lego_dataset / "tokenizer"))
    tokenizer.add_tokens(["<extra>"])
    save_to_hub_cache(hub_cache, "test-org/other-tokenizer", build_model("tiny", len(tokenizer), 64), tokenizer)
    with pytest.raises(ValueError, match="another tokenizer"):
        resolve_run(small_config(tmp_path, *overrides, "model.name_or_path=test-org/other-tokenizer"))


# ------------------------------------------------------------------ two ranks on gloo, in two processes


def two_rank_worker(rank: int, world_size: int, init_file: str, job: dict) -> None:
    """One rank of a training run: the loop as a Ray Train worker runs it, a sampler state of its own."""
    import torch.distributed as torch_distributed

    from skillit_ray.config.job import config_from_dict
    from skillit_ray.mixture.registry import strategy_from_config
    from skillit_ray.train import distributed
    from skillit_ray.train.callbacks import LoopCallback, LoopCallbacks
    from skillit_ray.train.loop import training_loop
    from skillit_ray.train.metrics import MemorySink
    from skillit_ray.train.resolve import resolve_run
    from skillit_ray.train.sampler import MixtureSamplerState

    torch.set_num_threads(1)
    torch_distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    try:
        config, setup = resolve_run(config_from_dict(job["config"]))
        state = MixtureSamplerState(strategy_from_config(config, setup.train_skills, setup.eval_skills), 0)
        context = distributed.WorkerContext(rank, world_size, torch.device("cpu"))
        if rank != 0 and job.get("resume"):  # rank 0 restores the shared sampler; here each rank has its own
            state.load_state_dict(json.loads((Path(job["resume"]) / "sampler.json").read_text()))

        class KeepCheckpoints(LoopCallback):  # what Ray Train does: every rank's files merged into one directory
            def on_report(self, step, metrics, directory):
                if rank != 0 and "val_loss" in metrics:  # rank 0 reports to the shared sampler; here each has its own
                    state.report_evaluation(step, metrics["val_loss"])
                if directory is not None:
                    shutil.copytree(directory, Path(job["checkpoints"]) / f"step-{step}", dirs_exist_ok=True)

        def ddp(model):
            return torch.nn.parallel.DistributedDataParallel(model)

        sink = MemorySink()
        export = None
        if job.get("export"):
            from skillit_ray.data.storage import RunStorage

            export = RunStorage(job["export"], "run")
        training_loop(config, setup, context, state, sink, LoopCallbacks([KeepCheckpoints()]), job.get("resume"),
                      ddp if world_size > 1 else None, export_to=export)  # fmt: skip
        if rank == 0:
            Path(job["out"]).write_text(json.dumps(sink.records()))
    finally:
        torch_distributed.destroy_process_group()


def run_ranks(tmp_path: Path, name: str, config, world_size: int, resume: str | None = None, export: bool = False):
    """Train on `world_size` processes; returns (rank 0's records, the checkpoints directory)."""
    import torch.multiprocessing as multiprocessing

    checkpoints = tmp_path / f"{name}-checkpoints"
    job = {"config": config.to_dict(), "checkpoints": str(checkpoints), "out": str(tmp_path / f"{name}.json"),
           "resume": resume, "export": str(tmp_path / f"{name}-export") if export else None}  # fmt: skip
    multiprocessing.spawn(two_rank_worker, (world_size, str(tmp_path / f"{name}.init"), job), nprocs=world_size)
    return json.loads(Path(job["out"]).read_text()), checkpoints


def train_losses(records: dict) -> np.ndarray:
    return np.array([record["train_loss"] for record in records["train"]])


def sharding_config(tmp_path, parallelism: str, *overrides: str):
    return small_config(tmp_path, "mixture.strategy=stratified", "train.steps=20", "train.log_every_n_steps=1",
                        "train.checkpoint_every_n_steps=10", "train.precision=fp32", f"train.parallelism={parallelism}",
                        "train.batch_size=8", *overrides)  # fmt: skip


@pytest.fixture(scope="module")
def two_rank_runs(tmp_path_factory):
    """The same 20 steps on 2 ranks under ddp and under fsdp (checkpoints at step 10; fsdp exports)."""
    tmp_path = tmp_path_factory.mktemp("two-ranks")
    ddp, ddp_checkpoints = run_ranks(tmp_path, "ddp", sharding_config(tmp_path, "ddp"), 2)
    fsdp, fsdp_checkpoints = run_ranks(tmp_path, "fsdp", sharding_config(tmp_path, "fsdp"), 2, export=True)
    return {"ddp": (ddp, ddp_checkpoints), "fsdp": (fsdp, fsdp_checkpoints), "export": tmp_path / "fsdp-export"}


def test_fsdp_matches_ddp_and_its_sharded_checkpoint_resumes_on_one_rank(two_rank_runs, tmp_path):
    """2 ranks, fp32, 20 steps: FSDP2 and DDP give the same losses (1e-5 relative); the fsdp checkpoint of
    step 10 (every rank's shards, one manifest) resumes on 1 rank and continues the same trajectory; the
    ddp checkpoint resumes under fsdp; the exported model reloads with from_pretrained and scores as the
    trained one did."""
    (ddp, ddp_checkpoints), (fsdp, fsdp_checkpoints) = two_rank_runs["ddp"], two_rank_runs["fsdp"]
    assert len(train_losses(ddp)) == 20
    np.testing.assert_allclose(train_losses(fsdp), train_losses(ddp), rtol=1e-5)
    sharded = fsdp_checkpoints / "step-10" / "sharded"
    assert (sharded / ".metadata").is_file() and not (fsdp_checkpoints / "step-10" / "model.pt").exists()
    assert sorted(path.name for path in sharded.glob("*.distcp")) == ["__0_0.distcp", "__1_0.distcp"]
    manifest = json.loads((fsdp_checkpoints / "step-10" / "checkpoint_manifest.json").read_text())["files"]
    assert {"sharded/__0_0.distcp", "sharded/__1_0.distcp", "sharded/.metadata"} <= set(manifest)
    for name, world_size, checkpoints in (("fsdp-on-1", 1, fsdp_checkpoints), ("ddp-to-fsdp", 2, ddp_checkpoints)):
        config = sharding_config(tmp_path, "fsdp")
        resumed, _ = run_ranks(tmp_path, name, config, world_size, resume=str(checkpoints / "step-10"))
        np.testing.assert_allclose(train_losses(resumed), train_losses(fsdp)[10:], rtol=1e-5, err_msg=name)
    check_export(two_rank_runs["export"] / "run" / "model", fsdp)


@pytest.mark.slow
def test_sharded_checkpoint_resumes_on_two_ranks_and_under_ddp(two_rank_runs, tmp_path):
    """The fsdp checkpoint of step 10 resumes on 2 ranks under fsdp and under ddp; a 1-rank fsdp run's resumes on
    2 ranks: the same continuation every time."""
    fsdp, fsdp_checkpoints = two_rank_runs["fsdp"]
    for name, parallelism in (("fsdp-on-2", "fsdp"), ("fsdp-to-ddp", "ddp")):
        config = sharding_config(tmp_path, parallelism)
        resumed, _ = run_ranks(tmp_path, name, config, 2, resume=str(fsdp_checkpoints / "step-10"))
        np.testing.assert_allclose(train_losses(resumed), train_losses(fsdp)[10:], rtol=1e-5, err_msg=name)
    one_rank, one_rank_checkpoints = run_ranks(tmp_path, "fsdp-1", sharding_config(tmp_path, "fsdp"), 1)
    np.testing.assert_allclose(train_losses(one_rank), train_losses(fsdp), rtol=1e-5)
    config = sharding_config(tmp_path, "fsdp")
    resumed, _ = run_ranks(tmp_path, "fsdp-1-to-2", config, 2, resume=str(one_rank_checkpoints / "step-10"))
    np.testing.assert_allclose(train_losses(resumed), train_losses(fsdp)[10:], rtol=1e-5)


@pytest.mark.slow
def test_activation_checkpointing_and_the_curriculum_under_fsdp(two_rank_runs, tmp_path):
    """Activation checkpointing recomputes the same losses; the sample-level curriculum (its pool scored on
    every rank under fsdp) trains as under ddp; bf16 mixed precision runs on gloo."""
    fsdp, _ = two_rank_runs["fsdp"]
    checkpointed, _ = run_ranks(
        tmp_path, "ac", sharding_config(tmp_path, "fsdp", "train.activation_checkpointing=true"), 2
    )
    np.testing.assert_allclose(train_losses(checkpointed), train_losses(fsdp), rtol=1e-5)
    curricula = [train_losses(run_ranks(tmp_path, f"curriculum-{parallelism}",
                                        sharding_config(tmp_path, parallelism, "mixture.strategy=curriculum"), 2)[0])
                 for parallelism in ("ddp", "fsdp")]  # fmt: skip
    np.testing.assert_allclose(curricula[1], curricula[0], rtol=1e-5)
    bf16, _ = run_ranks(tmp_path, "bf16", sharding_config(tmp_path, "fsdp", "train.precision=bf16"), 2)
    np.testing.assert_allclose(train_losses(bf16), train_losses(fsdp), rtol=2e-2)


def build_parts_worker(rank: int, world_size: int, init_file: str, job: dict) -> None:
    """One rank of `build_training_parts` under fsdp; a rank other than 0 fails if it reads the weights."""
    import torch.distributed as torch_distributed
    from transformers import AutoModelForCausalLM

    from skillit_ray.config.job import config_from_dict
    from skillit_ray.train.distributed import all_gather_objects
    from skillit_ray.train.parallel import full_model_state
    from skillit_ray.train.step import build_training_parts

    def refuse(*_, **__):
        raise AssertionError(f"rank {rank} read the pretrained weights")

    if rank != 0:
        AutoModelForCausalLM.from_pretrained = refuse
    torch.set_num_threads(1)
    torch_distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    try:
        torch.manual_seed(7)  # the loop seeds every rank alike before it builds the model
        model, _, _ = build_training_parts(config_from_dict(job["config"]), job["vocab_size"], torch.device("cpu"))
        state = full_model_state(model)  # every rank's shards gathered (a collective)
        buffers = all_gather_objects({name: buffer.clone() for name, buffer in model.named_buffers()})
        after = all_gather_objects(torch.rand(3))  # the random generators continue in step
        if rank == 0:
            torch.save({"state": state, "buffers": buffers, "after": after}, job["out"])
    finally:
        torch_distributed.destroy_process_group()


def test_fsdp_ranks_other_than_0_build_on_meta_and_receive_rank_0s_weights(tmp_path):
    """A pretrained model whose vocabulary the tokenizer grows by 2 rows, on 2 fsdp ranks: rank 1 never reads the
    weights (from_pretrained raises there) yet every shard holds the saved weights, the grown rows are the same
    on every rank, the head stays tied, every buffer is rank 0's, and the random generators agree."""
    import torch.multiprocessing as multiprocessing

    from skillit_ray.train.model import build_model

    torch.manual_seed(0)
    saved = build_model("tiny", 40, 28)
    saved.save_pretrained(tmp_path / "base")
    config = small_config(tmp_path, "train.parallelism=fsdp", f"model.pretrained_path={tmp_path / 'base'}")
    job = {"config": config.to_dict(), "vocab_size": 42, "out": str(tmp_path / "parts.pt")}
    multiprocessing.spawn(build_parts_worker, (2, str(tmp_path / "parts.init"), job), nprocs=2)
    built = torch.load(job["out"], weights_only=True)
    torch.manual_seed(7)  # as each rank did: rank 0's model, grown rows included, built here in one process
    with pytest.warns(UserWarning, match="growing token embeddings"):
        expected = build_model("tiny", 42, 28, pretrained_path=str(tmp_path / "base")).state_dict()
    state = built["state"]
    assert set(state) == set(expected) and state["transformer.wte.weight"].shape[0] == 42
    for name, tensor in expected.items():
        torch.testing.assert_close(state[name], tensor, rtol=0, atol=0, msg=name)
    torch.testing.assert_close(state["transformer.wte.weight"][:40], saved.state_dict()["transformer.wte.weight"])
    torch.testing.assert_close(state["lm_head.weight"], state["transformer.wte.weight"], rtol=0, atol=0)
    rank0_buffers, rank1_buffers = built["buffers"]
    assert rank0_buffers.keys() == rank1_buffers.keys()
    for name, buffer in rank0_buffers.items():
        torch.testing.assert_close(rank1_buffers[name], buffer, rtol=0, atol=0, msg=name)
    torch.testing.assert_close(built["after"][1], built["after"][0], rtol=0, atol=0)


def check_export(directory: Path, records: dict) -> None:
    """The exported directory loads with from_pretrained and gives the run's last validation losses."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from skillit_ray.data.sources.registry import load_validation_sets, resolve_skills
    from skillit_ray.train import distributed
    from skillit_ray.train.evaluation import evaluate_skills

    assert json.loads((directory / "export.json").read_text())["architecture"] == "GPT2LMHeadModel"
    model = AutoModelForCausalLM.from_pretrained(str(directory), local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(str(directory))
    config = small_config(directory, "mixture.strategy=stratified")
    setup = resolve_skills(config)
    context = distributed.WorkerContext(0, 1, torch.device("cpu"))
    val_loss, _ = evaluate_skills(model, tokenizer, load_validation_sets(config, setup, tokenizer), context)
    np.testing.assert_allclose(val_loss, records["evaluations"][-1]["val_loss"], rtol=1e-4)


@pytest.mark.slow
def test_fsdp_in_ray_train(ray_local, tmp_path, monkeypatch):
    """Through Ray Train: 2 workers under fsdp fail at step 13 (no retry); the checkpoint of step 10 holds both
    ranks' shards (Ray Train merged their directories) and verifies; the same run on 1 worker resumes it,
    continues the losses of an uninterrupted 2-worker run, and exports the final model."""
    import ray.train

    from skillit_ray.data.storage import RunStorage
    from skillit_ray.train.checkpoint import verify_checkpoint
    from skillit_ray.train.launch import run_training
    from skillit_ray.train.metrics import METRICS_FILE, read_jsonl

    def losses(name: str) -> np.ndarray:
        records = read_jsonl(RunStorage(str(tmp_path), name), METRICS_FILE)
        return np.array([record["train_loss"] for record in records if record["kind"] == "train"])

    run_training(sharding_config(tmp_path, "fsdp", "scaling.num_workers=2", "run.name=whole"))
    monkeypatch.setenv("SKILLIT_RAY_FAIL_AT_STEP", "13")
    with pytest.raises(ray.train.TrainingFailedError):  # the injected failure (or the health check it trips)
        run_training(sharding_config(tmp_path, "fsdp", "scaling.num_workers=2", "run.name=cut", "run.max_failures=0"))
    monkeypatch.delenv("SKILLIT_RAY_FAIL_AT_STEP")
    storage = RunStorage(str(tmp_path), "cut")
    (checkpoint,) = [path for path in (tmp_path / "cut" / "fit-0").glob("checkpoint_*") if path.is_dir()]
    assert {path.name for path in (checkpoint / "sharded").glob("*.distcp")} == {"__0_0.distcp", "__1_0.distcp"}
    assert verify_checkpoint(storage, f"fit-0/{checkpoint.name}") is None
    run_training(sharding_config(tmp_path, "fsdp", "scaling.num_workers=1", "run.name=cut"))
    np.testing.assert_allclose(losses("cut")[-10:], losses("whole")[-10:], rtol=1e-5)
    assert (tmp_path / "cut" / "model" / "model.safetensors").is_file()


# ------------------------------------------------------------------ the memory preflight


def test_memory_estimate_terms_and_the_settings_that_fit():
    """1B parameters on 8 GPUs: fsdp holds 1/8 of the 16 bytes per parameter that ddp holds whole, activation
    checkpointing keeps a fraction of the activations; a job that does not fit 24 GiB under ddp is told
    which settings would fit, and those do."""
    from skillit_ray.train.memory import GIB, MemoryJob, ModelShape, check_fits, fitting_settings, memory_per_gpu

    shape = ModelShape(parameters=10**9, layers=24, width=2048, vocabulary=50_000, root_parameters=10**8)
    job = MemoryJob("ddp", 8, 4, 2048, bf16=True, activation_checkpointing=False)
    ddp = memory_per_gpu(shape, job)
    fsdp = memory_per_gpu(shape, MemoryJob("fsdp", 8, 4, 2048, True, False))
    assert ddp["weights"] + ddp["gradients"] + ddp["optimizer"] == 16 * 10**9
    assert fsdp["weights"] + fsdp["gradients"] + fsdp["optimizer"] == 2 * 10**9
    checkpointed = memory_per_gpu(shape, MemoryJob("ddp", 8, 4, 2048, True, True))
    assert checkpointed["activations"] < ddp["activations"] / 5
    assert ddp["total"] > 24 * GIB
    with pytest.raises(ValueError, match=r"memory preflight: the job needs about \d+\.\d GiB per GPU.*--set train"):
        check_fits(shape, job, 24 * GIB, 32, "g5.2xlarge")
    settings = fitting_settings(shape, job, 24 * GIB, 32)
    assert settings and settings[0] == "train.parallelism=fsdp"
    assert memory_per_gpu(shape, MemoryJob("fsdp", 8, 4, 2048, True, False))["total"] <= 24 * GIB


def test_gpu_job_that_cannot_fit_is_refused_before_ray(tmp_path, lego_dataset):
    """GPT-Neo 1.3B with 32 rows of 2048 tokens on one 24 GiB GPU under ddp: refused by resolve_run with the
    estimate and the settings that would fit; the cluster file's instance type supplies the GPU memory."""
    from skillit_ray.train.preflight import check_job
    from skillit_ray.train.resolve import resolve_run

    overrides = ["data.source=parquet", f"data.parquet.path={lego_dataset}", "model.size=gpt-neo-1.3b",
                 "data.sequence_length=2048", "train.batch_size=32", "scaling.use_gpu=true"]  # fmt: skip
    config = small_config(tmp_path, *overrides)
    check_job(config, "clusters/aws_cpu-head_gpu-workers-0-8.yaml")
    assert config.scaling.gpu_memory_gib == 24  # g5.2xlarge: one A10G
    with pytest.raises(ValueError, match=r"memory preflight.*24 GiB per GPU; it would fit with --set train\."):
        resolve_run(config)
    resolve_run(small_config(tmp_path, *overrides, "scaling.gpu_memory_gib=24", "scaling.num_workers=8",
                             "train.parallelism=fsdp", "train.activation_checkpointing=true"))  # fmt: skip


PUBLISHED_SHAPES = {
    "togethercomputer/RedPajama-INCITE-Base-3B-v1": ("gpt_neox", {
        "hidden_size": 2560, "intermediate_size": 10240, "num_hidden_layers": 32, "num_attention_heads": 32,
        "vocab_size": 50432, "max_position_embeddings": 2048, "tie_word_embeddings": False}),
    "meta-llama/Llama-3.1-8B": ("llama", {
        "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32,
        "num_key_value_heads": 8, "vocab_size": 128256, "tie_word_embeddings": False}),
    "Qwen/Qwen2.5-1.5B": ("qwen2", {
        "hidden_size": 1536, "intermediate_size": 8960, "num_hidden_layers": 28, "num_attention_heads": 12,
        "num_key_value_heads": 2, "vocab_size": 151936, "tie_word_embeddings": True}),
}  # fmt: skip
"""The models' config.json shapes as published on the hub (no network here to read them)."""


@pytest.mark.parametrize("name", ["redpajama_3b_fsdp", "llama31_8b_finetune_fsdp", "qwen25_1p5b_finetune_fsdp"])
def test_real_scale_config_fits_its_gpus_as_its_header_says(name):
    """Each real-scale config loads, names a hub model under fsdp with activation checkpointing, fits the GPUs it
    is sized for by the preflight's estimate, and its header quotes that estimate."""
    from transformers import AutoConfig, AutoModelForCausalLM

    from skillit_ray.config.job import load_config
    from skillit_ray.train.memory import GIB, memory_per_gpu, model_shape
    from skillit_ray.train.resolve import memory_job

    path = Path("jobs/configs") / f"{name}.yaml"
    config = load_config(str(path))
    assert config.train.parallelism == "fsdp" and config.train.activation_checkpointing and config.scaling.use_gpu
    kind, options = PUBLISHED_SHAPES[config.model.name_or_path]
    with torch.device("meta"):
        shape = model_shape(AutoModelForCausalLM.from_config(AutoConfig.for_model(kind, **options)))
    total = memory_per_gpu(shape, memory_job(config))["total"] / GIB
    assert total <= config.scaling.gpu_memory_gib
    ddp = memory_per_gpu(shape, memory_job(config, parallelism="ddp", activation_checkpointing=False))["total"] / GIB
    assert (
        f"ddp {ddp:.1f} GiB" in path.read_text() and f"{total:.1f} on {config.scaling.num_workers}" in path.read_text()
    )
