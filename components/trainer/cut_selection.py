"""``cut_layer: auto``: the cut point chosen by k-fold cross-validation on the train split.

BottleneckCache has stored every candidate's pooled output (one forward pass, one
cache namespace per candidate) as ``examples.candidate_key(layer)`` features. Here the
configured head (``model_surgery.build_head``: the config's hidden units, dropout,
Adam at its learning rate, batch size) is trained on each candidate's train vectors
in ``folds`` stratified folds and scored on the held-out fold. Only the train split is
read: the eval split stays for early stopping and for Evaluator, so the choice cannot
fit it. The best mean fold accuracy wins; ties (means within ``TIE``) go to the lower,
cheaper layer (fewer layers to run, smaller vectors for the serving model).

Each fold trains a fixed number of epochs (``epochs``: no early stopping, which would
need a third split inside the fold), from the same seeded initial weights. The folds,
the head's initialisation and the shuffling are seeded, so the same data and seed give
the same choice.

Why inside the Trainer and not a component of its own: the Trainer already reads these
records and owns the head's settings; the selection costs seconds on cached vectors,
while a separate step would add a container start on Kubeflow and an artifact type for
one table. The table is written with the Trainer's reports (``reports/cut_selection.json``
and ``.png``) and logged.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

import keras
import numpy as np

from components.common import model_surgery
from components.common.examples import candidate_key

TIE = 1e-9
DEFAULT_FOLDS = 5
DEFAULT_EPOCHS = 40


@dataclasses.dataclass(frozen=True)
class CandidateScore:
    """One candidate cut: its vector size and its fold accuracies."""

    layer: str
    dim: int
    fold_accuracies: tuple[float, ...]

    @property
    def mean(self) -> float:
        return float(np.mean(self.fold_accuracies))

    @property
    def std(self) -> float:
        values = self.fold_accuracies
        return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


@dataclasses.dataclass(frozen=True)
class CutSelection:
    """The measured candidates (bottom to top), the choice and why."""

    scores: tuple[CandidateScore, ...]
    chosen: str
    reason: str
    folds: int
    epochs: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "chosen": self.chosen,
            "reason": self.reason,
            "folds": self.folds,
            "epochs_per_fold": self.epochs,
            "seconds": self.seconds,
            "candidates": [
                {
                    "layer": s.layer,
                    "dim": s.dim,
                    "mean": s.mean,
                    "std": s.std,
                    "fold_accuracies": list(s.fold_accuracies),
                }
                for s in self.scores
            ],
        }

    def table(self) -> str:
        """Markdown: candidate, vector size, mean +- std of the fold accuracies."""
        lines = ["| candidate | vector size | fold accuracy (mean +- std) |", "|---|---:|---:|"]
        for s in self.scores:
            mark = " (chosen)" if s.layer == self.chosen else ""
            lines.append(f"| {s.layer}{mark} | {s.dim} | {s.mean:.4f} +- {s.std:.4f} |")
        return "\n".join(lines)


def stratified_folds(labels: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """A fold index per example: each class's examples dealt round-robin in a seeded
    random order, so every fold holds about the same share of every class.

    Raises:
        ValueError: fewer than 2 folds, or fewer labelled examples than folds.
    """
    if folds < 2:
        raise ValueError(f"cut selection needs at least 2 folds, got {folds}")
    if len(labels) < folds:
        raise ValueError(
            f"cut selection by {folds}-fold cross-validation needs at least {folds} labelled "
            f"train examples, got {len(labels)}: add labels or set base_model.cut_layer"
        )
    rng = np.random.default_rng(seed)
    assignment = np.empty(len(labels), dtype=np.int64)
    offset = 0
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        rng.shuffle(members)
        assignment[members] = (np.arange(len(members)) + offset) % folds
        offset += len(members)
    return assignment


class _Head:
    """The configured head for one candidate, compiled once and reset for every fold
    (weights to their seeded initial values, Adam's state to zero), so the folds share
    one traced training step instead of tracing k of them."""

    def __init__(self, dim: int, head: model_surgery.HeadSpec, learning_rate: float, seed: int):
        keras.utils.set_random_seed(seed)
        self.model = model_surgery.build_head((dim,), head)
        self.model.compile(
            optimizer=keras.optimizers.Adam(learning_rate), loss="sparse_categorical_crossentropy"
        )
        self._initial = self.model.get_weights()

    def fold_accuracy(
        self,
        train: tuple[np.ndarray, np.ndarray],
        held_out: tuple[np.ndarray, np.ndarray],
        batch_size: int,
        epochs: int,
    ) -> float:
        self.model.set_weights(self._initial)
        for variable in self.model.optimizer.variables:
            if not variable.path.endswith("learning_rate"):
                variable.assign(np.zeros(variable.shape, variable.dtype))
        self.model.fit(*train, batch_size=batch_size, epochs=epochs, shuffle=True, verbose=0)
        probabilities = keras.ops.convert_to_numpy(self.model(held_out[0], training=False))
        return float(np.mean(np.argmax(probabilities, axis=-1) == held_out[1]))


def select_cut(
    vectors: Mapping[str, np.ndarray],
    labels: np.ndarray,
    head: model_surgery.HeadSpec,
    *,
    learning_rate: float,
    batch_size: int,
    seed: int,
    folds: int = DEFAULT_FOLDS,
    epochs: int = DEFAULT_EPOCHS,
) -> CutSelection:
    """Scores every candidate by k-fold cross-validation; returns the choice.

    Args:
        vectors: candidate layer -> [examples, dim] train vectors, bottom to top.
        labels: the train labels (int, >= 0), aligned with every candidate's rows.
        head: the configured head (classes, hidden units, dropout).
        learning_rate, batch_size: the head phase's.
        seed: seeds the folds, the heads' initialisation and the shuffling.
        folds: k; lowered to the smallest class's size when that is smaller (every
            fold then still holds each class at most once less than the others).
        epochs: epochs per fold (fixed).
    """
    start = time.perf_counter()
    labels = np.asarray(labels, dtype=np.int64)
    smallest = int(np.min(np.bincount(labels)[np.unique(labels)]))
    k = max(2, min(folds, smallest))
    assignment = stratified_folds(labels, k, seed)
    scores = []
    for layer, matrix in vectors.items():
        matrix = np.asarray(matrix, dtype=np.float32)
        model = _Head(int(matrix.shape[1]), head, learning_rate, seed)
        accuracies = []
        for fold in range(k):
            held = assignment == fold
            accuracies.append(
                model.fold_accuracy(
                    (matrix[~held], labels[~held]), (matrix[held], labels[held]), batch_size, epochs
                )
            )
        scores.append(CandidateScore(layer, int(matrix.shape[1]), tuple(accuracies)))
    best = max(score.mean for score in scores)
    chosen = next(score for score in scores if score.mean >= best - TIE)  # lowest first
    runner_up = max((s for s in scores if s is not chosen), key=lambda s: s.mean)
    reason = (
        f"{chosen.layer}: mean {k}-fold accuracy {chosen.mean:.4f} +- {chosen.std:.4f} on the "
        f"train split, the best of {len(scores)} candidates (next: {runner_up.layer} "
        f"{runner_up.mean:.4f}"
        + ("; tie, the lower layer kept" if runner_up.mean >= best - TIE else "")
        + ")"
    )
    logging.info("trainer: cut selection: %s", reason)
    return CutSelection(tuple(scores), chosen.layer, reason, k, epochs, time.perf_counter() - start)


# --- in the Trainer ----------------------------------------------------------------------------
SELECTION_JSON = "cut_selection.json"
SELECTION_PNG = "cut_selection.png"


def choose_cut(
    base: keras.Model,
    candidates: Sequence[str],
    train_files: Sequence[str],
    head: model_surgery.HeadSpec,
    *,
    learning_rate: float,
    batch_size: int,
    seed: int,
) -> CutSelection:
    """Reads every candidate's train vectors (BottleneckCache's records) and selects.

    Raises:
        ValueError: a candidate is not a layer of the base, or the records lack its
            feature (BottleneckCache ran with other cut_candidates).
    """
    from components.trainer import data  # the records reader (TensorFlow)

    layers = model_surgery.resolve_cut_candidates(base, candidates)
    for layer in layers:
        data.bottleneck_dim(train_files, candidate_key(layer))  # names a missing feature
    vectors, labels = data.candidate_arrays(
        train_files, {layer: candidate_key(layer) for layer in layers}
    )
    return select_cut(
        vectors, labels, head, learning_rate=learning_rate, batch_size=batch_size, seed=seed
    )


def selection_png(selection: CutSelection) -> bytes:
    """Mean fold accuracy per candidate (bottom to top), spread as error bars."""
    from matplotlib.figure import Figure

    from components.common.plots import figure_png

    figure = Figure(figsize=(1.2 * len(selection.scores) + 2.5, 3.2))
    axes = figure.add_subplot()
    names = [score.layer for score in selection.scores]
    colours = ["tab:green" if name == selection.chosen else "tab:grey" for name in names]
    axes.bar(
        names,
        [score.mean for score in selection.scores],
        yerr=[score.std for score in selection.scores],
        color=colours,
        capsize=4,
    )
    axes.set_ylim(0, 1)
    axes.set_ylabel(f"{selection.folds}-fold accuracy (train split)")
    axes.set_title(f"cut selection: {selection.chosen}")
    axes.tick_params(axis="x", labelrotation=30)
    figure.tight_layout()
    return figure_png(figure)


def write_selection(selection: CutSelection, directory: str) -> dict[str, str]:
    """Writes cut_selection.json and cut_selection.png into `directory`; their paths."""
    from components.trainer.reports import write_table

    names = (SELECTION_JSON, SELECTION_PNG)
    return write_table(directory, names, selection.to_dict(), selection_png(selection))
