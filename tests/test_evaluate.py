"""`skillit-ray evaluate`: a run's exported model scored with the real lm-evaluation-harness (HFLM) on a tiny
GPT-2, offline. The scores are checked against the model's own log-likelihoods computed with torch; the
run's skills become tasks (`--skill-tasks`); the results reach the run directory, `skillit-ray compare`
and (slow test) the run's MLflow, TensorBoard and W&B runs.

Run: `.venv/bin/python -m pytest tests/test_evaluate.py` (add `-m slow` for the trackers).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
import torch
import yaml
from conftest import small_config
from test_report import write_run

from skillit_ray.cli import main
from skillit_ray.config.job import load_config
from skillit_ray.skills.base import Sample
from skillit_ray.train import lm_evaluation


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """No network: the hub and datasets are offline, as on a cluster without internet."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")


def save_run_model(run_directory: Path, tokenizer_directory: Path, seed: int = 0):
    """A tiny GPT-2 saved as `train.export_model` writes it: `<run>/model/` with tokenizer and export.json."""
    from transformers import AutoTokenizer

    from skillit_ray.train.model import build_model

    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_directory))
    torch.manual_seed(seed)
    model = build_model("tiny", len(tokenizer), 64).eval()
    directory = run_directory / "model"
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    files = sorted(path.name for path in directory.iterdir())
    record = {"step": 12, "architecture": "GPT2LMHeadModel", "files": files}
    (directory / "export.json").write_text(json.dumps(record))
    return model, tokenizer


def answer_scores(model, tokenizer, prompt: str, answer: str) -> tuple[float, bool]:
    """log p(answer | prompt) and whether every answer token is the greedy one, computed with torch."""
    prompt_ids, answer_ids = tokenizer(prompt).input_ids, tokenizer(answer).input_ids
    with torch.no_grad():
        logits = model(torch.tensor([prompt_ids + answer_ids])).logits[0, len(prompt_ids) - 1 : -1]
    log_probabilities = torch.log_softmax(logits.double(), dim=-1)
    targets = torch.tensor(answer_ids)
    greedy = bool((logits.argmax(dim=-1) == targets).all())
    return float(log_probabilities[torch.arange(len(answer_ids)), targets].sum()), greedy


def text_log_likelihood(model, tokenizer, text: str) -> float:
    """log p(text), each token given the ones before it, the first given EOS (lm-eval's prefix token)."""
    ids = tokenizer(text).input_ids
    with torch.no_grad():
        logits = model(torch.tensor([[tokenizer.eos_token_id, *ids[:-1]]])).logits[0]
    log_probabilities = torch.log_softmax(logits.double(), dim=-1)
    return float(log_probabilities[torch.arange(len(ids)), torch.tensor(ids)].sum())


def lego_rows(lego_dataset: Path, count: int) -> list[dict]:
    import pyarrow.parquet as pq

    return pq.read_table(str(lego_dataset / "val" / "lego_2")).slice(0, count).to_pylist()


def write_local_tasks(directory: Path, answers: list[dict], texts: list[str]) -> None:
    """Two task YAMLs over local JSONL files, as a user writes them: an answer task and a perplexity task."""
    directory.mkdir()
    (directory / "answers.jsonl").write_text("".join(json.dumps(row) + "\n" for row in answers))
    (directory / "texts.jsonl").write_text("".join(json.dumps({"text": text}) + "\n" for text in texts))

    def data(name: str) -> dict:  # datasets' cache beside the files, not in ~/.cache
        kwargs = {"data_files": {"test": str(directory / name)}, "cache_dir": str(directory / "cache")}
        return {"dataset_path": "json", "dataset_kwargs": kwargs, "test_split": "test"}

    answer_task = {
        "task": "tiny_answers", **data("answers.jsonl"), "output_type": "loglikelihood", "doc_to_text": "prompt",
        "doc_to_target": "answer", "target_delimiter": "", "metric_list": [{"metric": "acc"}, {"metric": "perplexity"}],
    }  # fmt: skip
    text_task = {
        "task": "tiny_texts", **data("texts.jsonl"), "output_type": "loglikelihood_rolling", "doc_to_text": "",
        "doc_to_target": "text", "metric_list": [{"metric": "word_perplexity"}, {"metric": "bits_per_byte"}],
    }  # fmt: skip
    (directory / "answers.yaml").write_text(yaml.safe_dump(answer_task))
    (directory / "texts.yaml").write_text(yaml.safe_dump(text_task))


def parquet(dataset: Path) -> list[str]:
    return ["data.source=parquet", f"data.parquet.path={dataset}", "data.num_val_per_skill=8"]


def test_evaluate_scores_local_tasks_as_the_model_computes_them(tmp_path, lego_dataset, capsys):
    run = tmp_path / "runs" / "r"
    model, tokenizer = save_run_model(run, lego_dataset / "tokenizer")
    rows = lego_rows(lego_dataset, 6)
    answers = [{"prompt": row["prompt"], "answer": row["answer"]} for row in rows]
    for row in answers[:3]:  # the model's own greedy word as the answer: acc is then not trivially 0
        with torch.no_grad():
            logits = model(torch.tensor([tokenizer(row["prompt"]).input_ids])).logits[0, -1]
        row["answer"] = tokenizer.decode([int(logits.argmax())])
    texts = [row["text"].strip() for row in rows]
    write_local_tasks(tmp_path / "tasks", answers, texts)

    arguments = ["evaluate", str(run), "--tasks", "tiny_answers,tiny_texts", "--include-path", str(tmp_path / "tasks")]
    assert main([*arguments, "--device", "cpu", "--batch-size", "4"]) == 0
    assert "wrote" in capsys.readouterr().out

    summary = json.loads((run / "evaluation" / "summary.json").read_text())
    scores = [answer_scores(model, tokenizer, row["prompt"], row["answer"]) for row in answers]
    accuracy = sum(greedy for _, greedy in scores) / len(scores)
    assert accuracy >= 0.5
    assert summary["tiny_answers"]["acc"] == pytest.approx(accuracy)
    perplexity = math.exp(-sum(score for score, _ in scores) / len(scores))
    assert summary["tiny_answers"]["perplexity"] == pytest.approx(perplexity, rel=1e-5)
    log_likelihood = sum(text_log_likelihood(model, tokenizer, text) for text in texts)
    words, num_bytes = sum(len(text.split()) for text in texts), sum(len(text.encode()) for text in texts)
    assert summary["tiny_texts"]["word_perplexity"] == pytest.approx(math.exp(-log_likelihood / words), rel=1e-5)
    assert summary["tiny_texts"]["bits_per_byte"] == pytest.approx(-log_likelihood / num_bytes / math.log(2), rel=1e-5)

    results = json.loads((run / "evaluation" / "lm_eval_results.json").read_text())
    assert "samples" not in results and results["results"]["tiny_answers"]["acc,none"] == pytest.approx(accuracy)
    assert results["n-samples"]["tiny_texts"]["effective"] == 6


def test_the_skill_tasks_of_a_trained_run_give_its_own_last_validation_loss_and_accuracy(tmp_path, lego_dataset):
    """A run trained in process on the prepared LEGO directory, its model exported as a launched run exports
    it: lm-eval's perplexity on each skill task is exp(the run's last validation loss), acc its accuracy."""
    from skillit_ray.data.sources.parquet import with_reader
    from skillit_ray.data.storage import RunStorage
    from skillit_ray.mixture.registry import strategy_from_config
    from skillit_ray.train import distributed
    from skillit_ray.train.callbacks import LoopCallbacks
    from skillit_ray.train.loop import training_loop
    from skillit_ray.train.metrics import MemorySink
    from skillit_ray.train.resolve import resolve_run
    from skillit_ray.train.sampler import MixtureSamplerState

    config, setup = resolve_run(
        with_reader(small_config(tmp_path, "run.name=trained", *parquet(lego_dataset)), "arrow")
    )
    state = MixtureSamplerState(strategy_from_config(config, setup.train_skills, setup.eval_skills), config.train.seed)
    storage, sink = RunStorage(config.run.storage_path, config.run.name), MemorySink()
    context = distributed.WorkerContext(0, 1, torch.device("cpu"))
    training_loop(config, setup, context, state, sink, LoopCallbacks([]), write_checkpoints=False, export_to=storage)
    storage.write_text("config.json", json.dumps(config.to_dict()))  # as the driver writes it after the run

    assert main(["evaluate", storage.uri(""), "--skill-tasks", "--device", "cpu", "--bootstrap-iters", "0"]) == 0

    summary = json.loads(storage.read_text("evaluation/summary.json"))
    assert sorted(summary) == ["skillit_lego_1", "skillit_lego_2", "skillit_lego_3"]
    last = sink.records()["evaluations"][-1]
    for skill, loss, accuracy in zip(setup.eval_skills, last["val_loss"], last["accuracy"]):
        expected = {"perplexity": pytest.approx(math.exp(loss), rel=1e-5), "acc": pytest.approx(accuracy)}
        assert summary[f"skillit_{skill}"] == expected


def test_a_run_without_a_model_or_without_lm_eval_is_refused(tmp_path, lego_dataset, capsys, monkeypatch):
    run = tmp_path / "runs" / "r"
    run.mkdir(parents=True)
    assert main(["evaluate", str(run), "--tasks", "anything"]) == 2
    assert "holds no exported model" in capsys.readouterr().err
    assert main(["evaluate", str(run)]) == 2
    assert "needs --tasks" in capsys.readouterr().err

    save_run_model(run, lego_dataset / "tokenizer")
    monkeypatch.setitem(sys.modules, "lm_eval", None)  # as if not installed
    assert main(["evaluate", str(run), "--tasks", "anything"]) == 2
    assert "pip install 'skillit-ray[eval]'" in capsys.readouterr().err
    monkeypatch.delitem(sys.modules, "lm_eval")
    assert main(["evaluate", str(run), "--skill-tasks"]) == 2  # no config.json: not a finished run
    assert "config.json" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert main(["evaluate", str(run), "--tasks", "anything", "--device", "cuda"]) == 2
        assert "torch sees no CUDA device" in capsys.readouterr().err
    assert not (run / "evaluation").exists()


def test_skill_task_files_and_flat_results(tmp_path):
    samples = [Sample("s", "x = 1 . x ? ", "1", ", "), Sample("s", "y = 0 . y ? ", "0", ", ")]
    names = lm_evaluation.write_skill_tasks(tmp_path, {"add/1": samples, "prose": ["one text", "two"]})
    assert names == ["skillit_add_1", "skillit_prose"]
    answer_task = yaml.safe_load((tmp_path / "skillit_add_1.yaml").read_text())
    assert answer_task["output_type"] == "loglikelihood" and answer_task["target_delimiter"] == ""
    assert [json.loads(line) for line in (tmp_path / "skillit_add_1.jsonl").read_text().splitlines()] == [
        {"prompt": "x = 1 . x ? ", "answer": "1"}, {"prompt": "y = 0 . y ? ", "answer": "0"}]  # fmt: skip
    text_task = yaml.safe_load((tmp_path / "skillit_prose.yaml").read_text())
    assert text_task["output_type"] == "loglikelihood_rolling" and text_task["doc_to_target"] == "text"
    with pytest.raises(ValueError, match="mixes prompt/answer samples and documents"):
        lm_evaluation.skill_task_documents("s", [samples[0], "text"])

    results = {"t": {"alias": "t", "acc,none": 0.5, "acc_stderr,none": 0.1, "exact_match,strict": 1,
                     "perplexity,none": float("nan"), "f1,none": "N/A"}}  # fmt: skip
    flat = lm_evaluation.flatten_results(results)
    assert flat == {"t": {"acc": 0.5, "exact_match/strict": 1.0, "perplexity": None, "f1": None}}
    assert lm_evaluation.tracker_metrics(flat) == {"lm_eval/t/acc": 0.5, "lm_eval/t/exact_match/strict": 1.0}


def test_compare_shows_the_evaluation_columns(tmp_path, capsys):
    first = write_run(tmp_path / "skillit", "skillit", [0.5, 0.7], [1.0, 0.8])
    second = write_run(tmp_path / "stratified", "stratified", [0.4, 0.6], [1.1, 0.9])
    (first / "evaluation").mkdir()
    summary = {"skillit_first": {"acc": 0.625, "perplexity": 3.25}, "hellaswag": {"acc_norm": 0.3}}
    (first / "evaluation" / "summary.json").write_text(json.dumps(summary))
    assert main(["compare", str(first), str(second), "--plot", str(tmp_path / "comparison.png")]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = next(line for line in lines if "skillit_first acc" in line)
    columns = ["skillit_first", "acc", "skillit_first", "perplexity", "hellaswag", "acc_norm"]
    assert header.split() == ["strategy", *columns]
    rows = lines[lines.index(header) + 2 : lines.index(header) + 4]
    assert rows[0].split() == ["skillit", "0.625", "3.25", "0.3"] and rows[1].split() == ["stratified", "-", "-", "-"]


@pytest.mark.slow
def test_the_evaluation_reaches_the_runs_mlflow_tensorboard_and_wandb_runs(tmp_path, lego_dataset):
    from mlflow.tracking import MlflowClient
    from test_tracking import tensorboard_scalars, wandb_records

    from skillit_ray.data.storage import RunStorage
    from skillit_ray.train.tracking import open_tracker_runs

    storage_path = tmp_path / "runs"
    config = load_config(None, [*parquet(lego_dataset), f"run.storage_path={storage_path}", "run.name=lego",
                                "tracking.sinks=[jsonl, mlflow, tensorboard, wandb]"])  # fmt: skip
    storage = RunStorage(str(storage_path), "lego")
    runs = open_tracker_runs(config, storage)  # as the driver does when the run starts
    save_run_model(storage.local_path(), lego_dataset / "tokenizer")
    (storage.local_path() / "config.json").write_text(json.dumps(config.to_dict()))

    assert main(["evaluate", storage.uri(""), "--skill-tasks", "--device", "cpu", "--limit", "4"]) == 0

    summary = json.loads(storage.read_text("evaluation/summary.json"))
    client = MlflowClient(runs["mlflow"]["tracking_uri"])
    history = client.get_metric_history(runs["mlflow"]["run_id"], "lm_eval/skillit_lego_3/acc")
    assert [(point.step, point.value) for point in history] == [(12, summary["skillit_lego_3"]["acc"])]
    artifacts = [item.path for item in client.list_artifacts(runs["mlflow"]["run_id"], "evaluation")]
    assert artifacts == ["evaluation/lm_eval_results.json", "evaluation/summary.json"]
    events = tensorboard_scalars(Path(runs["tensorboard"]["log_dir"])).Scalars("lm_eval/skillit_lego_1/perplexity")
    assert [(event.step, event.value) for event in events] == [
        (12, pytest.approx(summary["skillit_lego_1"]["perplexity"], rel=1e-6))]  # fmt: skip
    summaries = {}  # the W&B run's summary updates, from its offline run file
    for path in storage.local_path().glob("wandb/offline-run-*/run-*.wandb"):
        for record in wandb_records(path):
            if record.WhichOneof("record_type") == "summary":
                summaries.update({item.key: json.loads(item.value_json) for item in record.summary.update})
    assert summaries["lm_eval/skillit_lego_2/acc"] == pytest.approx(summary["skillit_lego_2"]["acc"])


@pytest.mark.slow
def test_a_run_on_object_storage_is_evaluated_from_a_copy_of_its_model(tmp_path, lego_dataset, monkeypatch):
    """The run directory on S3 (moto's server on 127.0.0.1): the model is copied down, the results written up."""
    import subprocess

    from test_token_store import free_port, wait_for_bucket

    from skillit_ray.data.storage import RunStorage

    local_run = tmp_path / "runs" / "r"
    model, tokenizer = save_run_model(local_run, lego_dataset / "tokenizer")
    rows = lego_rows(lego_dataset, 5)
    write_local_tasks(tmp_path / "tasks", [{"prompt": row["prompt"], "answer": row["answer"]} for row in rows], ["a"])
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        environment = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1",
                       "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"}  # fmt: skip
        for key, value in environment.items():
            monkeypatch.setenv(key, value)
        wait_for_bucket(f"s3://bucket/runs?endpoint_override=127.0.0.1:{port}&scheme=http")
        remote = RunStorage("s3://bucket/runs", "r")
        for path in (local_run / "model").iterdir():
            remote.write_bytes(f"model/{path.name}", path.read_bytes())
        arguments = ["--tasks", "tiny_answers", "--include-path", str(tmp_path / "tasks"), "--device", "cpu"]
        assert main(["evaluate", "s3://bucket/runs/r", *arguments]) == 0
        summary = json.loads(remote.read_text("evaluation/summary.json"))
        assert "samples" not in json.loads(remote.read_text("evaluation/lm_eval_results.json"))
    finally:
        server.terminate()
        server.wait(timeout=30)
    scores = [answer_scores(model, tokenizer, row["prompt"], row["answer"]) for row in rows]
    perplexity = math.exp(-sum(score for score, _ in scores) / len(scores))
    assert summary["tiny_answers"]["perplexity"] == pytest.approx(perplexity, rel=1e-5)
    assert not (local_run / "evaluation").exists()
