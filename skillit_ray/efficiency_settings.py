"""The efficiency benchmark's settings and their data: what runs, at what size, against what.

Role in the flow: efficiency (the runner) -> **efficiency_settings** -> corpus/prepare_table (the text
data). Each setting is a base config (overrides), the strategies it compares with their own
overrides, and the headline metric. Sizes are chosen so that the whole `full` profile (every setting,
3 seeds) takes under an hour on 2 cores; `quick` runs every code path in seconds, for the tests.

Every Skill-it run uses the default pipeline's choices, so the benchmark measures what a user gets:
the graph the system learns (`skillit-ray graph` defaults), the eta rule and the guard that
`mixture` defaults to. The paper's exact behaviour is measured too (`skillit_paper`: its eta and no
guard) where it differs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Setting:
    """One benchmark setting: base config, strategies (label -> extra overrides), headline metric."""

    name: str
    title: str
    overrides: tuple[str, ...]
    strategies: dict[str, tuple[str, ...]]
    metric: str = "mean_val_loss"
    data: str = "generator"
    graph_overrides: tuple[str, ...] = ()
    notes: str = ""
    needs_graph: tuple[str, ...] = field(default=("skillit", "static"))


TEXT_SKILLS = ["c_headers", "configs", "licenses", "package_docs", "python"]
"""The corpus sources, in the order `prepare table` lists them (sorted)."""

# ----------------------------------------------------------------------------- shared pieces

PAPER_LEGO = (
    "data.source=lego", "data.lego_num_variables=5", "model.size=tiny", "train.batch_size=32",
    "train.learning_rate=1e-3", "mixture.num_rounds=6", "mixture.window=3", "mixture.eta=0.5",
    "mixture.graph_preprocessing=none",
)  # fmt: skip
PAPER_ADDITION = (
    "data.source=addition", "data.addition_num_digits=3", "model.size=tiny", "train.batch_size=32",
    "train.learning_rate=1e-3", "mixture.num_rounds=5", "mixture.window=3", "mixture.eta=0.1",
)  # fmt: skip
TEXT = (
    "model.size=tiny", "data.sequence_length=128", "data.pack_sequences=true", "train.batch_size=16",
    "train.learning_rate=1e-3", "mixture.num_rounds=6", "mixture.window=3", "data.num_val_per_skill=100",
)  # fmt: skip


def every_strategy(random_proportions: str | None, pretraining: bool = True) -> dict[str, tuple[str, ...]]:
    """Every strategy of the paper (label -> its overrides); skill curricula need the pretraining setting.
    `random_proportions` is the imbalanced "random" mixture (None: the data's own shares, set by `prepare_data`)."""
    proportions = (random_proportions,) if random_proportions else ()
    strategies = {
        "skillit": ("mixture.strategy=skillit",),
        "static": ("mixture.strategy=static",),
        "no_graph": ("mixture.strategy=no_graph",),
        "stratified": ("mixture.strategy=stratified",),
        "random": ("mixture.strategy=random", *proportions),
        "curriculum": ("mixture.strategy=curriculum", *proportions),
        "anticurriculum": ("mixture.strategy=anticurriculum", *proportions),
        "skill_curriculum": ("mixture.strategy=skill_curriculum",),
        "skill_anticurriculum": ("mixture.strategy=skill_anticurriculum",),
    }
    if not pretraining:
        for label in ("no_graph", "skill_curriculum", "skill_anticurriculum"):
            strategies.pop(label)
    return strategies


def _settings(steps: dict[str, int], eval_every: int, graph_steps: int) -> dict[str, Setting]:
    shares = None  # the corpus' token shares, set by prepare_data
    text_run = (*TEXT, f"train.steps={steps['text']}", f"train.eval_every_n_steps={eval_every}",
                f"train.warmup_steps={max(1, steps['text'] // 10)}")  # fmt: skip
    text_graph = (f"graph.steps={graph_steps}",)
    finetuning = every_strategy(shares, pretraining=False)
    finetuning["target_only"] = ("mixture.strategy=target_only", "mixture.proportions=[0, 0, 0, 0, 1]")
    return {
        "text": Setting(
            "text", "Real text, skills = sources (RedPajama style), continual pre-training from scratch",
            text_run, every_strategy(shares), data="text", graph_overrides=text_graph,
        ),
        "text_finetuning": Setting(
            "text_finetuning", "Real text, fine-tuning: target skill `python`, every source may help",
            (*text_run, "mixture.setting=finetuning", "mixture.target_skills=[python]"), finetuning, data="text",
            graph_overrides=text_graph, needs_graph=("skillit", "static", "stratified"),
        ),
        "text_out_of_domain": Setting(
            "text_out_of_domain", "Real text, out-of-domain: train on 4 sources, evaluate on `python`",
            (*text_run, "mixture.setting=out_of_domain", f"data.train_skills=[{', '.join(TEXT_SKILLS[:4])}]",
             "data.eval_skills=[python]"),
            every_strategy(None, pretraining=False), data="text",
            graph_overrides=text_graph, needs_graph=("skillit", "static", "stratified"),
        ),
        "staircase": Setting(
            "staircase", "Staircase chain (each skill one step beyond its prerequisite), from scratch",
            ("data.source=staircase", "data.staircase_num_skills=4", "model.size=tiny", "train.batch_size=32",
             f"train.steps={steps['staircase']}", f"train.eval_every_n_steps={eval_every}", "mixture.num_rounds=6"),
            every_strategy("mixture.proportions=[1, 1, 3, 5]"), metric="mean_accuracy",
            graph_overrides=(f"graph.steps={graph_steps}",),
        ),
        "lego": Setting(
            "lego", "LEGO k = 5 as the paper runs it (eta 0.5, T 6, w 3, 1:1:1:3:5), from scratch",
            (*PAPER_LEGO, f"train.steps={steps['lego']}", f"train.eval_every_n_steps={eval_every}"),
            every_strategy("mixture.proportions=[1, 1, 1, 3, 5]"), metric="mean_accuracy",
            graph_overrides=(f"graph.steps={graph_steps}",),
        ),
        "addition": Setting(
            "addition", "Addition, 3 digits, as the paper runs it (eta 0.1, T 5, w 3, 13:14:18), from scratch",
            (*PAPER_ADDITION, f"train.steps={steps['addition']}", f"train.eval_every_n_steps={eval_every}"),
            every_strategy("mixture.proportions=[13, 14, 18]"), metric="mean_accuracy",
            graph_overrides=(f"graph.steps={graph_steps}",),
        ),
    }  # fmt: skip


SETTINGS: dict[str, dict[str, Setting]] = {
    "full": _settings({"text": 300, "staircase": 1200, "lego": 600, "addition": 600}, eval_every=50, graph_steps=150),
    "quick": _settings({"text": 6, "staircase": 6, "lego": 6, "addition": 6}, eval_every=3, graph_steps=2),
}
"""Profile -> setting name -> setting."""

CORPUS_DOCUMENTS = {"full": 1650, "quick": 40}
"""Documents per source in the benchmark's corpus (validation takes `VALIDATION_DOCUMENTS`)."""
VALIDATION_DOCUMENTS = {"full": 150, "quick": 10}
TOKENIZER_SIZE = {"full": 4096, "quick": 320}


def prepare_data(setting: Setting, directory: Path, profile: str) -> list[str]:
    """Overrides that point a setting at its data, building the text corpus once per profile."""
    if setting.data != "text":
        return []
    from skillit_ray.corpus import build_corpus_table
    from skillit_ray.prepare_table import TableOptions, prepare_table

    prepared = directory / f"text_{profile}"
    if not (prepared / "manifest.json").is_file():
        table = directory / f"corpus_{profile}.parquet"
        build_corpus_table(str(table), CORPUS_DOCUMENTS[profile])
        prepare_table(TableOptions(
            input=str(table), out=str(prepared), skill_column="source", val_rows=VALIDATION_DOCUMENTS[profile],
            tokenizer_vocab_size=TOKENIZER_SIZE[profile], rows_per_part=500, overwrite=True,
        ))  # fmt: skip
    manifest = json.loads((prepared / "manifest.json").read_text())
    tokens = [manifest["rows"][skill]["train_tokens"] for skill in manifest["skills"]]
    names = [name for name in manifest["skills"]]
    wanted = names if "data.train_skills" not in " ".join(setting.overrides) else TEXT_SKILLS[:4]
    shares = [tokens[names.index(name)] / sum(tokens[names.index(other)] for other in wanted) for name in wanted]
    return [
        "data.source=parquet", f"data.path={prepared}",
        f"mixture.proportions=[{', '.join(f'{share:.4f}' for share in shares)}]",
    ]  # fmt: skip
