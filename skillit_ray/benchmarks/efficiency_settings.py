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

import dataclasses
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
    eta_grid: tuple[float, ...] = ()
    """Etas tried for Skill-it on the tuning seed (empty: the setting's eta as given)."""
    tuned: tuple[str, ...] = ("skillit", "static", "no_graph")
    """Strategies that run with the tuned eta."""


TEXT_SKILLS = ["c_headers", "configs", "licenses", "package_docs", "python"]
"""The corpus sources, in the order `prepare table` lists them (sorted)."""

# ----------------------------------------------------------------------------- shared pieces

PAPER_LEGO = (
    "data.source=lego", "data.lego.num_variables=5", "model.size=tiny", "train.batch_size=32",
    "train.learning_rate=1e-3", "mixture.num_rounds=6", "mixture.window=3", "mixture.eta=0.5",
    "mixture.graph=[[1,0,0,0,0],[1,1,1,1,0],[0,0,1,0,0],[0,0,0,1,0],[0,0,0,0,1]]",
    "mixture.graph_preprocessing=paper_binary",
)  # fmt: skip
"""LEGO as the paper runs it (`scripts/lego/pt/skillit.sh`): its graph, eta, T and window; from scratch here."""
PAPER_ADDITION = (
    "data.source=addition", "data.addition.num_digits=3", "model.size=tiny", "train.batch_size=32",
    "train.learning_rate=1e-3", "mixture.num_rounds=5", "mixture.window=3", "mixture.eta=0.1",
    "mixture.graph=[[1,0,0],[1,1,0],[0,0,1]]", "mixture.graph_preprocessing=paper_binary",
)  # fmt: skip
TEXT = (
    "model.size=tiny", "data.sequence_length=128", "data.pack_sequences=true", "train.batch_size=16",
    "train.learning_rate=1e-3", "train.precision=bf16", "mixture.window=3", "data.num_val_per_skill=50",
)  # fmt: skip
"""Real text: tiny GPT-2, 128-token packed rows, batch 16 (2,048 tokens a step), bf16 autocast on CPU, one
round per evaluation."""
STAIRCASE = (
    "data.source=staircase", "data.staircase.num_skills=4", "data.staircase.chain_length=12",
    "data.staircase.negation_probability=0.25", "model.size=tiny", "train.batch_size=32",
    "train.learning_rate=1e-3", "mixture.num_rounds=6", "mixture.window=3",
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


CURRICULUM_ROWS_NOTE = (
    "`curriculum` and `anticurriculum` score and order the same packed rows every other strategy trains on "
    "(`CurriculumPool.packed_reader` when `data.pack_sequences`), so their result measures the order, not the "
    "row format. Before the pool packed (whole documents, one per row from its start), curriculum scored "
    "5.285 +/- 0.020 here, 0.432 +/- 0.116 below stratified: most of that came from the row format."
)


def _text_settings(steps: int, eval_every: int, graph_steps: int, grid: tuple[float, ...]) -> dict[str, Setting]:
    run = (*TEXT, f"train.steps={steps}", f"train.eval_every_n_steps={eval_every}",
           f"mixture.num_rounds={max(1, steps // eval_every)}", f"train.warmup_steps={max(1, steps // 6)}")  # fmt: skip
    # Aioli's sub-rounds: 30 rounds of steps / 30, 10 per update (5 probes, 5 on the learned mixture)
    rounds = min(30, steps)
    aioli = ("mixture.strategy=aioli", "mixture.eta=0.2", f"mixture.num_rounds={rounds}",
             f"mixture.aioli.rounds_per_update={10 if rounds >= 20 else 6}")  # fmt: skip
    pretraining = {**every_strategy(None), "aioli": aioli}
    # one evaluation column: the drop shared by the training skills is the column mean, not a row minimum
    one_column = (f"graph.steps={graph_steps}", "graph.common_drop=column_mean")
    few = ("skillit", "static", "stratified", "random")
    finetuning = {label: every_strategy(None, pretraining=False)[label] for label in few}
    finetuning["target_only"] = ("mixture.strategy=target_only", "mixture.proportions=[0, 0, 0, 0, 1]")
    return {
        "text": Setting(
            "text", "(a) Real text, skills = sources (RedPajama style), continual pre-training from scratch",
            run, pretraining, data="text", graph_overrides=(f"graph.steps={graph_steps}",), eta_grid=grid,
            notes=CURRICULUM_ROWS_NOTE,
        ),
        "text_finetuning": Setting(
            "text_finetuning", "(c) Real text, fine-tuning: target skill `python`, every source may help",
            (*run, "mixture.setting=finetuning", "mixture.target_skills=[python]"), finetuning, data="text",
            graph_overrides=one_column, needs_graph=("skillit", "static", "stratified"), eta_grid=grid,
        ),
        "text_out_of_domain": Setting(
            "text_out_of_domain", "(c) Real text, out-of-domain: train on 4 sources, evaluate on `python`",
            (*run, "mixture.setting=out_of_domain", f"data.train_skills=[{', '.join(TEXT_SKILLS[:4])}]",
             "data.eval_skills=[python]"),
            {label: every_strategy(None, pretraining=False)[label] for label in few}, data="text",
            graph_overrides=one_column, needs_graph=("skillit", "static", "stratified"), eta_grid=grid,
        ),
    }  # fmt: skip


def _settings(steps: dict[str, int], eval_every: int, graph_steps: int, grids: dict[str, tuple]) -> dict[str, Setting]:
    return {
        **_text_settings(steps["text"], eval_every, graph_steps, grids["text"]),
        "staircase": Setting(
            "staircase", "(3) Staircase chain (each skill one step beyond its prerequisite), from scratch",
            (*STAIRCASE, f"train.steps={steps['staircase']}", f"train.eval_every_n_steps={eval_every}"),
            every_strategy("mixture.proportions=[1, 1, 3, 5]"), metric="mean_accuracy",
            graph_overrides=(f"graph.steps={steps['staircase_graph']}",), eta_grid=grids["staircase"],
        ),
        "lego": Setting(
            "lego", "(b) LEGO k = 5 as the paper runs it (its graph, T 6, w 3, 1:1:1:3:5; eta searched from its 0.5), "
            "from scratch",
            (*PAPER_LEGO, f"train.steps={steps['lego']}", f"train.eval_every_n_steps={eval_every}"),
            every_strategy("mixture.proportions=[1, 1, 1, 3, 5]"), metric="mean_accuracy", needs_graph=(),
            eta_grid=grids["lego"],
        ),
        "addition": Setting(
            "addition", "(b) Addition as the paper runs it (its graph, T 5, w 3, 13:14:18; eta searched from its 0.1), "
            "from scratch",
            (*PAPER_ADDITION, f"train.steps={steps['addition']}", f"train.eval_every_n_steps={eval_every}"),
            every_strategy("mixture.proportions=[13, 14, 18]"), metric="mean_accuracy", needs_graph=(),
            eta_grid=grids["addition"],
        ),
    }  # fmt: skip


SETTINGS: dict[str, dict[str, Setting]] = {
    "full": _settings(
        {"text": 200, "staircase": 800, "staircase_graph": 200, "lego": 300, "addition": 300},
        eval_every=40,
        graph_steps=120,
        grids={
            "text": (0.05, 0.2, 0.5),
            "staircase": (0.5, 1.5, 4.5),
            "lego": (0.5 / 3, 0.5, 1.5),
            "addition": (0.1 / 3, 0.1, 0.3),
        },
    ),
    "quick": {
        name: dataclasses.replace(setting, overrides=(*setting.overrides, "data.num_val_per_skill=10"))
        for name, setting in _settings(
            {"text": 12, "staircase": 6, "staircase_graph": 2, "lego": 6, "addition": 6},
            eval_every=3,
            graph_steps=2,
            grids={"text": (0.1, 0.5), "staircase": (0.5,), "lego": (0.5,), "addition": (0.1,)},
        ).items()
    },
}
"""Profile -> setting name -> setting."""

CORPUS_DOCUMENTS = {"full": 1650, "quick": 40}
"""Documents per source in the benchmark's corpus (validation takes `VALIDATION_DOCUMENTS`)."""
VALIDATION_DOCUMENTS = {"full": 150, "quick": 10}
TOKENIZER_SIZE = {"full": 4096, "quick": 320}


def text_directory(directory: Path, profile: str) -> Path:
    """The real-text corpus of a profile as a prepared directory (built once: corpus -> prepare table)."""
    from skillit_ray.data.prepare.corpus import build_corpus_table
    from skillit_ray.data.prepare.table import TableOptions, prepare_table

    prepared = directory / f"text_{profile}"
    if not (prepared / "manifest.json").is_file():
        table = directory / f"corpus_{profile}.parquet"
        build_corpus_table(str(table), CORPUS_DOCUMENTS[profile])
        prepare_table(TableOptions(
            input=str(table), out=str(prepared), skill_column="source", val_rows=VALIDATION_DOCUMENTS[profile],
            tokenizer_vocab_size=TOKENIZER_SIZE[profile], rows_per_part=500, overwrite=True,
        ))  # fmt: skip
    return prepared


def prepare_data(setting: Setting, directory: Path, profile: str) -> list[str]:
    """Overrides that point a setting at its data: the text corpus tokenized once into a token store
    (128-token packed rows, as the text settings train), built once per profile."""
    if setting.data != "text":
        return []
    from skillit_ray.data.prepare.tokens import TokenStoreOptions, prepare_in_process

    prepared = text_directory(directory, profile)
    store = directory / f"tokens_{profile}"
    prepare_in_process(TokenStoreOptions(str(prepared), str(store), sequence_length=128, pack=True))
    manifest = json.loads((prepared / "manifest.json").read_text())
    tokens = [manifest["rows"][skill]["train_tokens"] for skill in manifest["skills"]]
    names = [name for name in manifest["skills"]]
    wanted = names if "data.train_skills" not in " ".join(setting.overrides) else TEXT_SKILLS[:4]
    shares = [tokens[names.index(name)] / sum(tokens[names.index(other)] for other in wanted) for name in wanted]
    return [
        "data.source=tokens", f"data.tokens.path={store}",
        f"mixture.proportions=[{', '.join(f'{share:.4f}' for share in shares)}]",
    ]  # fmt: skip
