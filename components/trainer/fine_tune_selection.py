"""``fine_tune: auto``: whether to fine-tune, and how deep, measured on a fold of the train split.

The Trainer (``train.measure_fine_tune``) carves a validation fold from the TRAIN split
only (``validation_fold``: stratified, seeded by the config's seed; the eval split is
never read here, so the choice cannot fit the split that early stopping and Evaluator
use), trains the head on the rest exactly as the real head phase does (cached vectors,
early stopping on the fold), and scores on the fold's images:

- ``off``: the classifier with that head and the frozen base;
- each k of ``CANDIDATE_DEPTHS`` (capped at the base's unfreezable layers): the same
  head and base, then the top k weighted layers + head trained on the rest's images
  (the real fine-tuning phase: ``unfreeze_top``, learning_rate * fine_tune_lr_factor,
  BatchNormalization in inference mode, early stopping on the fold).

Every k starts from the same head and the base's own weights.

The rule (``decide``): for each k the gain is the mean over the fold's examples of the
paired difference d_i = correct_k(i) - correct_off(i) (each in {0, 1}), and its spread
is the standard error of that mean, std(d, ddof=1) / sqrt(n). The k with the highest
validation accuracy (ties: fewer layers) is kept only when its gain is positive and
larger than its standard error; otherwise (ties, insignificant or negative gains) the
base stays frozen. One improved example out of n and no worse one gives gain = SE = 1/n
exactly: not a win; two improved and none worse is (2/n against about 1.4/n for n = 10).
The real training then runs on the whole train split with the chosen setting, as a
fixed ``fine_tune`` would.

Budget (``run_trials``): each k trains through the base, so the measurement stops
trying further k once ``fine_tune_budget_seconds`` is spent: a k starts only if the
seconds spent so far (head included) plus the previous k's seconds are within the
budget. At most one trial can run past it; the seconds spent are reported. Skipped k
are listed in the table as skipped.

The table goes to ``reports/fine_tune_selection.json`` and ``.png`` beside the cut
selection's, into the Trainer's metrics.json, the run summary and the HTML report.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

# The depths compared with "off": the top one and the top two weighted layers. More
# layers train through more of the base per step and, with few labels, overfit more;
# one and two already tell whether the base's top needs to move at all.
CANDIDATE_DEPTHS = (1, 2)
TIE = 1e-9  # a gain equal to its SE (one improved example: both are 1/n) does not win
VALIDATION_FOLDS = 5  # the validation fold is one of 5 stratified folds: a fifth
SELECTION_JSON = "fine_tune_selection.json"
SELECTION_PNG = "fine_tune_selection.png"
RULE = (
    "keep the best k only when its validation gain over 'off' (mean paired difference "
    "of per-example correctness) is positive and larger than its standard error"
)


@dataclasses.dataclass(frozen=True)
class Trial:
    """One setting scored on the validation fold (k = 0: off)."""

    k: int
    correct: tuple[bool, ...] = ()  # per validation example, fold order
    seconds: float = 0.0
    layer_names: tuple[str, ...] = ()
    skipped: str = ""  # why it was not measured ("" = measured)

    @property
    def accuracy(self) -> float | None:
        return float(np.mean(self.correct)) if self.correct and not self.skipped else None


def paired_gain(trial: Trial, off: Trial) -> tuple[float, float]:
    """(mean of correct_k - correct_off over the fold, its standard error)."""
    d = np.asarray(trial.correct, float) - np.asarray(off.correct, float)
    if len(d) < 2:
        return float(np.mean(d)) if len(d) else 0.0, math.inf
    return float(np.mean(d)), float(np.std(d, ddof=1) / math.sqrt(len(d)))


@dataclasses.dataclass(frozen=True)
class FineTuneSelection:
    """The measured settings, the choice and why."""

    off: Trial
    trials: tuple[Trial, ...]  # the candidate depths, measured or skipped
    chosen: int  # 0: off
    reason: str
    validation_examples: int
    fit_examples: int
    budget_seconds: float
    seconds: float  # the whole measurement, head included
    head_seconds: float

    def rows(self) -> list[dict[str, Any]]:
        rows = [_row(self.off, None)]
        rows += [_row(trial, self.off) for trial in self.trials]
        return rows

    def to_dict(self) -> dict[str, Any]:
        return {
            "chosen": "off" if not self.chosen else f"k={self.chosen}",
            "chosen_layers": self.chosen,
            "reason": self.reason,
            "rule": RULE,
            "validation_examples": self.validation_examples,
            "fit_examples": self.fit_examples,
            "budget_seconds": self.budget_seconds,
            "seconds": self.seconds,
            "head_seconds": self.head_seconds,
            "rows": self.rows(),
        }


def not_measured(
    reason: str, examples: int, budget_seconds: float, seconds: float
) -> FineTuneSelection:
    """Off, unmeasured (e.g. too few labelled train examples for a fold), and why."""
    off = Trial(0, skipped=reason)
    return FineTuneSelection(off, (), 0, reason, 0, examples, budget_seconds, seconds, 0.0)


def _row(trial: Trial, off: Trial | None) -> dict[str, Any]:
    row: dict[str, Any] = {
        "setting": "off" if not trial.k else f"k={trial.k}",
        "k": trial.k,
        "val_accuracy": trial.accuracy,
    }
    if off is not None:
        gain, se = paired_gain(trial, off) if trial.accuracy is not None else (None, None)
        row["gain_vs_off"] = gain
        row["gain_se"] = None if se is None or math.isinf(se) else se
    else:
        row["gain_vs_off"], row["gain_se"] = None, None
    row["seconds"] = trial.seconds
    row["layers"] = ", ".join(trial.layer_names)
    if trial.skipped:
        row["skipped"] = trial.skipped
    return row


def validation_fold(labels: np.ndarray, seed: int) -> np.ndarray:
    """A boolean mask: True for the validation fold (one of VALIDATION_FOLDS stratified
    folds of the train labels, cut_selection's deal, seeded).

    Raises:
        ValueError: fewer labelled train examples than VALIDATION_FOLDS.
    """
    from components.trainer.cut_selection import stratified_folds

    labels = np.asarray(labels, dtype=np.int64)
    if len(labels) < VALIDATION_FOLDS:
        raise ValueError(
            f"fine_tune auto needs at least {VALIDATION_FOLDS} labelled train examples to "
            f"carve a validation fold, got {len(labels)}: set trainer fine_tune to 'off' or K"
        )
    return stratified_folds(labels, VALIDATION_FOLDS, seed) == 0


def run_trials(
    depths: Sequence[int],
    trial: Callable[[int], Trial],
    budget_seconds: float,
    started: float,
    clock: Callable[[], float] = time.perf_counter,
) -> list[Trial]:
    """Runs `trial(k)` for each depth while the budget allows (module docstring).

    Args:
        depths: the k to try, in order.
        trial: measures one k (its seconds are measured here).
        budget_seconds: the measurement's budget, counted from `started`.
        started: clock() when the measurement began (the head's training counts).
        clock: seconds (perf_counter; injectable for tests).
    """
    results: list[Trial] = []
    previous = 0.0
    for k in depths:
        spent = clock() - started
        if spent + previous > budget_seconds:
            results.append(
                Trial(
                    k,
                    skipped=f"budget: {spent:.0f} s spent + {previous:.0f} s for the previous "
                    f"k > {budget_seconds:g} s",
                )
            )
            continue
        begin = clock()
        measured = trial(k)
        previous = clock() - begin
        results.append(dataclasses.replace(measured, seconds=previous))
    return results


def decide(off: Trial, trials: Sequence[Trial]) -> tuple[int, str]:
    """(k to use, 0 = off; the reason) by the rule of the module docstring."""
    n = len(off.correct)
    measured = [t for t in trials if t.accuracy is not None]
    head = f"validation fold of {n} train examples: off {off.accuracy:.3f}"
    if not measured:
        why = "; ".join(sorted({f"k={t.k}: {t.skipped}" for t in trials if t.skipped}))
        return 0, f"{head}; no depth measured ({why or 'none to try'}): fine-tuning off"
    # highest accuracy, ties to fewer layers
    best = max(measured, key=lambda t: (t.accuracy, -t.k))
    gain, se = paired_gain(best, off)
    scores = ", ".join(f"k={t.k} {t.accuracy:.3f}" for t in measured)
    verdict = f"best k={best.k}: gain {gain:+.3f} +- {se:.3f} (SE of the paired difference)"
    if gain > 0 and gain > se + TIE:
        return best.k, f"{head}, {scores}; {verdict} > SE: fine-tuning the top {best.k}"
    why = "no gain" if gain <= 0 else "gain within one SE"
    return 0, f"{head}, {scores}; {verdict}: {why}, fine-tuning off"


def table(selection: FineTuneSelection) -> str:
    """Markdown: setting, val accuracy, gain vs off +- SE, seconds."""
    lines = ["| setting | val accuracy | gain vs off (+- SE) | seconds |", "|---|---:|---:|---:|"]
    for row in selection.rows():
        mark = " (chosen)" if row["k"] == selection.chosen else ""
        accuracy = "-" if row["val_accuracy"] is None else f"{row['val_accuracy']:.3f}"
        gain = "-"
        if row["gain_vs_off"] is not None:
            gain = f"{row['gain_vs_off']:+.3f}"
            gain += f" +- {row['gain_se']:.3f}" if row["gain_se"] is not None else ""
        if row.get("skipped"):
            gain = f"skipped: {row['skipped']}"
        lines.append(f"| {row['setting']}{mark} | {accuracy} | {gain} | {row['seconds']:.1f} |")
    return "\n".join(lines)


def selection_png(selection: FineTuneSelection) -> bytes:
    """Validation accuracy per setting, the chosen one green, SE of the gain as bars."""
    from matplotlib.figure import Figure

    from components.common.plots import figure_png

    rows = selection.rows()
    figure = Figure(figsize=(1.0 * len(rows) + 2.5, 3.0))
    axes = figure.add_subplot()
    names = [row["setting"] for row in rows]
    values = [row["val_accuracy"] or 0.0 for row in rows]
    errors = [row["gain_se"] or 0.0 for row in rows]
    colours = ["tab:green" if row["k"] == selection.chosen else "tab:grey" for row in rows]
    axes.bar(names, values, yerr=errors, color=colours, capsize=4)
    axes.set_ylim(0, 1)
    axes.set_ylabel(f"accuracy ({selection.validation_examples} val)")
    chosen = "off" if not selection.chosen else f"k={selection.chosen}"
    axes.set_title(f"fine_tune auto: {chosen}")
    figure.tight_layout()
    return figure_png(figure)


def write_selection(selection: FineTuneSelection, directory: str) -> dict[str, str]:
    """Writes fine_tune_selection.json and .png into `directory`; their paths."""
    from components.trainer.reports import write_table

    names = (SELECTION_JSON, SELECTION_PNG)
    return write_table(directory, names, selection.to_dict(), selection_png(selection))
