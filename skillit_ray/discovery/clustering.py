"""Pure skill discovery: per-sample loss trajectories (or embeddings) -> clusters -> skills, and how well they match.

Role in the flow: unlabeled table -> `discover.py` (short runs on Ray Tune, scoring with Ray Data)
-> **discovery** -> a table with a `skill` column -> `prepare table` / `train`. The paper's third
mechanism (Skill-it section 2.3): train a few runs from different seeds, score every sample's loss at
several checkpoints of each, and cluster the samples by those loss trajectories; samples of one skill
are learned together, so their trajectories move together. The paper recovers its synthetic skills
with 61% accuracy this way (10 runs), against 24-38% from clustering pre-trained embeddings.

Here, with no Ray and no torch (tested with toy arrays):

* `trajectory_features`: losses of shape (samples, runs, checkpoints) -> one feature row per sample,
  after a normalization (`TRAJECTORY_NORMALIZATIONS`); every feature column is then standardized
  across samples so no checkpoint dominates by scale.
* `fit_clusters`: scikit-learn k-means fitted on a seeded subset of rows (`fit_rows`), every row then
  assigned to its nearest centre; clusters numbered by size (largest first), so labels do not depend
  on k-means' arbitrary numbering. Deterministic given the seed.
* `matching_accuracy` (best one-to-one matching of clusters to true skills, Hungarian algorithm:
  the paper's "accuracy") and `adjusted_rand_index` (chance-corrected agreement, 0 for random labels).
"""

from __future__ import annotations

from typing import Any

import numpy as np

TRAJECTORY_NORMALIZATIONS = ("raw", "relative", "centered")
"""How a sample's losses become features before the per-column standardization:
raw: the losses as they are (level and shape: a skill that stays hard stays apart);
relative: each loss divided by the same run's loss at the first checkpoint (shape: how fast it drops);
centered: each loss minus the sample's mean loss over every run and checkpoint (shape, no level).
`skillit-ray discover` uses centered: at least as accurate as the others in every setting of
docs/benchmarks/discovery.md."""
KMEANS_RESTARTS = 10
"""k-means restarts (`n_init`); the best of them by inertia is kept."""


def check_discovery_request(num_rows: int, num_skills: int, source: str) -> None:
    """K >= 2 and at least K rows to cluster; the message names the input and the fix."""
    if num_skills < 2:
        raise ValueError(f"--num-skills {num_skills}: discovery needs at least 2 skills (a single skill needs none)")
    if num_rows < num_skills:
        raise ValueError(
            f"{source} has {num_rows} rows, fewer than --num-skills {num_skills}: every skill needs a row; "
            "give more rows or fewer skills"
        )


def trajectory_features(losses: np.ndarray, normalization: str = "raw") -> np.ndarray:
    """Per-sample features from loss trajectories.

    Args:
        losses: shape (samples, runs, checkpoints): the loss of every sample at every checkpoint of every run.
        normalization: one of `TRAJECTORY_NORMALIZATIONS`.

    Returns:
        shape (samples, runs * checkpoints), every column standardized across samples (a constant column is 0).

    Raises:
        ValueError: A wrong shape, a non-finite loss, or an unknown normalization.
    """
    values = np.asarray(losses, dtype=np.float64)
    if values.ndim != 3 or min(values.shape) < 1:
        raise ValueError(f"losses has shape {values.shape}; expected (samples, runs, checkpoints), none empty")
    if not np.all(np.isfinite(values)):
        bad = np.argwhere(~np.isfinite(values))[0].tolist()
        raise ValueError(f"loss at (sample, run, checkpoint) {bad} is not finite; a short run diverged")
    if normalization == "relative":
        values = values / np.maximum(values[:, :, :1], 1e-12)
    elif normalization == "centered":
        values = values - values.mean(axis=(1, 2), keepdims=True)
    elif normalization != "raw":
        raise ValueError(f"normalization {normalization!r} is not one of {TRAJECTORY_NORMALIZATIONS}")
    return standardize_columns(values.reshape(len(values), -1))


def standardize_columns(features: np.ndarray) -> np.ndarray:
    """Each column minus its mean, divided by its standard deviation (a constant column becomes 0)."""
    values = np.asarray(features, dtype=np.float64)
    spread = values.std(axis=0)
    return (values - values.mean(axis=0)) / np.where(spread > 0, spread, 1.0)


def fit_clusters(features: np.ndarray, num_skills: int, seed: int, fit_rows: int = 0) -> tuple[np.ndarray, dict]:
    """k-means labels (0 = largest cluster) for every row, fitted on `fit_rows` seeded rows (0: all).

    Returns:
        (labels of shape (rows,), a summary: cluster sizes, rows fitted, inertia per fitted row).
    """
    from sklearn.cluster import KMeans

    values = np.asarray(features, dtype=np.float64)
    check_discovery_request(len(values), num_skills, "the features")
    fitted = np.arange(len(values))
    if 0 < fit_rows < len(values):
        fitted = np.sort(np.random.default_rng([seed, 0xD15C]).choice(len(values), size=fit_rows, replace=False))
    if len(fitted) < num_skills:
        raise ValueError(f"fit_rows {fit_rows} is below --num-skills {num_skills}; fit on at least one row per skill")
    model = KMeans(n_clusters=num_skills, n_init=KMEANS_RESTARTS, random_state=seed).fit(values[fitted])
    labels = model.predict(values)
    sizes = np.bincount(labels, minlength=num_skills)
    order = np.argsort(-sizes, kind="stable")  # renumber: largest cluster first, ties by k-means' number
    renumber = np.empty(num_skills, dtype=np.int64)
    renumber[order] = np.arange(num_skills)
    labels = renumber[labels]
    summary = {
        "cluster_sizes": np.bincount(labels, minlength=num_skills).tolist(),
        "fit_rows": int(len(fitted)),
        "inertia_per_row": float(model.inertia_ / len(fitted)),
    }
    return labels, summary


def _codes(labels: Any) -> np.ndarray:
    return np.unique(np.asarray(labels).astype(str), return_inverse=True)[1]


def matching_accuracy(true_labels: Any, predicted: Any) -> float:
    """Share of rows whose cluster maps to their true skill under the best one-to-one matching of
    clusters to skills (Hungarian algorithm); clusters or skills left unmatched count as wrong."""
    from scipy.optimize import linear_sum_assignment

    truth, guess = _codes(true_labels), _codes(predicted)
    if len(truth) != len(guess):
        raise ValueError(f"{len(truth)} true labels but {len(guess)} predicted; one of each per row")
    if len(truth) == 0:
        raise ValueError("no rows to score")
    counts = np.zeros((truth.max() + 1, guess.max() + 1), dtype=np.int64)
    np.add.at(counts, (truth, guess), 1)
    rows, columns = linear_sum_assignment(-counts)
    return float(counts[rows, columns].sum() / len(truth))


def adjusted_rand_index(true_labels: Any, predicted: Any) -> float:
    """scikit-learn's adjusted Rand index: 1 for identical partitions, about 0 for random labels."""
    from sklearn.metrics import adjusted_rand_score

    return float(adjusted_rand_score(_codes(true_labels), _codes(predicted)))


def skill_names(labels: np.ndarray) -> list[str]:
    """Label i -> the skill name `skill_<i>` (zero-padded to the widest label), as written to the table."""
    values = np.asarray(labels, dtype=np.int64)
    width = max(2, len(str(int(values.max())))) if len(values) else 2
    return [f"skill_{int(label):0{width}d}" for label in values]
