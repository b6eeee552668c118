"""The Trainer's reports, written beside model.keras in ``<model dir>/reports/``.

- ``training_curves.png``: loss and accuracy per epoch, train and eval, both phases
  on one epoch axis (a dashed line marks where fine-tuning starts).
- ``confusion_matrix.png``: the exported model on the eval split, class names on the
  axes (rows: true class, columns: predicted class), counts in the cells.
- ``metrics.json``: whatever the Trainer passes (eval accuracy, per-phase history,
  the fine-tuning choice and its reason, example counts).

Figures are drawn with matplotlib's object API on the Agg canvas (no pyplot, no global
backend switch), so this works in headless workers.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import tensorflow as tf
from matplotlib.figure import Figure

from components.common.artifact_io import join, write_bytes
from components.common.plots import figure_png

REPORTS_DIR = "reports"
CURVES_FILE = "training_curves.png"
CONFUSION_FILE = "confusion_matrix.png"
METRICS_FILE = "metrics.json"

# (history key, label) pairs drawn in each panel.
_PANELS = (
    ("loss", (("loss", "train"), ("val_loss", "eval"))),
    ("accuracy", (("accuracy", "train"), ("val_accuracy", "eval"))),
)


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts [true class, predicted class], int64 [num_classes, num_classes]."""
    matrix = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(matrix, (np.asarray(labels, np.int64), np.asarray(predicted, np.int64)), 1)
    return matrix


def training_curves_png(phases: Sequence[tuple[str, Mapping[str, Sequence[float]]]]) -> bytes:
    """Loss and accuracy per epoch for each (phase name, Keras history dict), in order."""
    figure = Figure(figsize=(10, 4), layout="constrained")
    axes = figure.subplots(1, 2)
    for ax, (title, series) in zip(axes, _PANELS, strict=True):
        start = 1
        for phase_index, (phase, history) in enumerate(phases):
            epochs = len(history.get("loss", ()))
            x = np.arange(start, start + epochs)
            for key, label in series:
                if history.get(key):
                    style = "-" if label == "train" else "--"
                    ax.plot(x, history[key], style, marker=".", label=f"{phase} {label}")
            if phase_index and epochs:
                ax.axvline(start - 0.5, color="grey", linestyle=":", linewidth=1)
            start += epochs
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    return figure_png(figure)


def confusion_matrix_png(matrix: np.ndarray, class_names: Sequence[str]) -> bytes:
    """The confusion matrix as an annotated heat map."""
    size = max(4.0, 0.6 * len(class_names) + 2.0)
    figure = Figure(figsize=(size, size), layout="constrained")
    ax = figure.subplots()
    ax.imshow(matrix, cmap="Blues")
    ticks = np.arange(len(class_names))
    ax.set_xticks(ticks, labels=list(class_names), rotation=45, ha="right")
    ax.set_yticks(ticks, labels=list(class_names))
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(f"eval split: {int(np.trace(matrix))} of {int(matrix.sum())} correct")
    threshold = matrix.max() / 2 if matrix.size else 0
    for (row, col), count in np.ndenumerate(matrix):
        color = "white" if count > threshold else "black"
        ax.text(col, row, str(count), ha="center", va="center", color=color)
    return figure_png(figure)


def write_reports(
    directory: str,
    phases: Sequence[tuple[str, Mapping[str, Sequence[float]]]],
    matrix: np.ndarray,
    class_names: Sequence[str],
    metrics: Mapping[str, Any],
) -> dict[str, str]:
    """Writes the three report files into `directory` (created); returns their paths."""
    tf.io.gfile.makedirs(directory)
    paths = {
        "training_curves": join(directory, CURVES_FILE),
        "confusion_matrix": join(directory, CONFUSION_FILE),
        "metrics": join(directory, METRICS_FILE),
    }
    write_bytes(paths["training_curves"], training_curves_png(phases))
    write_bytes(paths["confusion_matrix"], confusion_matrix_png(matrix, class_names))
    text = json.dumps(metrics, indent=2, sort_keys=True, default=_jsonable) + "\n"
    write_bytes(paths["metrics"], text.encode("utf-8"))
    return paths


def write_table(
    directory: str, names: tuple[str, str], content: Mapping[str, Any], png: bytes
) -> dict[str, str]:
    """Writes a measured table (a selection's JSON and its picture) into `directory`.

    Args:
        names: the (JSON, PNG) file names.
    Returns:
        {"json": path, "png": path}.
    """
    tf.io.gfile.makedirs(directory)
    paths = {"json": join(directory, names[0]), "png": join(directory, names[1])}
    text = json.dumps(content, indent=2, default=_jsonable) + "\n"
    write_bytes(paths["json"], text.encode("utf-8"))
    write_bytes(paths["png"], png)
    return paths


def _jsonable(value: Any) -> Any:
    """numpy scalars and arrays -> Python numbers and lists (json.dumps default)."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
