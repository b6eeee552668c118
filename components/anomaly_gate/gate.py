"""Pure core of AnomalyGate: read ExampleValidator's anomalies and the class counts.

- `read_anomalies` / `check`: TFX's ExampleValidator records anomalies (and a `blessed`
  flag per split) but lets the run go on; `check` raises DataAnomalyError naming,
  per split and feature, what is wrong, with FIX_HINT.
- `check_classes`: raises DataAnomalyError unless ImageExampleGen's class folders are
  exactly the schema's classes, in label order, each with at least the minimum of
  labelled train and eval examples; the message names the classes and their counts.
"""

from __future__ import annotations

import os

import tensorflow as tf
from tensorflow_metadata.proto.v0 import anomalies_pb2

ANOMALIES_FILE = "SchemaDiff.pb"  # what ExampleValidator writes under Split-<name>/

FIX_HINT = (
    "Fix the data (see the ingest report for quarantined files), or, if the change is "
    "intended (a new class, a new format), regenerate the schema with `tfx-transfer "
    "schema`, review it and commit it."
)


class DataAnomalyError(RuntimeError):
    """The examples do not match the checked-in schema."""


def read_anomalies(split_dir: str) -> anomalies_pb2.Anomalies:
    """Reads the binary Anomalies proto ExampleValidator wrote for one split."""
    path = os.path.join(split_dir, ANOMALIES_FILE)
    with tf.io.gfile.GFile(path, "rb") as f:
        return anomalies_pb2.Anomalies.FromString(f.read())


def describe(split: str, anomalies: anomalies_pb2.Anomalies) -> list[str]:
    """One line per anomaly: split, feature, short and long description."""
    lines = []
    for feature, info in sorted(anomalies.anomaly_info.items()):
        detail = "; ".join(r.description for r in info.reason) or info.description
        lines.append(f"[{split}] feature '{feature}': {info.short_description}: {detail}")
    if anomalies.HasField("dataset_anomaly_info"):
        info = anomalies.dataset_anomaly_info
        detail = "; ".join(r.description for r in info.reason) or info.description
        lines.append(f"[{split}] dataset: {info.short_description}: {detail}")
    return lines


def check(anomalies_by_split: dict[str, anomalies_pb2.Anomalies]) -> None:
    """Raises DataAnomalyError listing every anomaly; returns when there are none."""
    lines = [line for split, a in sorted(anomalies_by_split.items()) for line in describe(split, a)]
    if lines:
        raise DataAnomalyError(
            "ExampleValidator found anomalies against the checked-in schema; the run is "
            "stopped before any model is trained:\n  " + "\n  ".join(lines) + "\n" + FIX_HINT
        )


def check_classes(
    schema_classes: list[str],
    vocabulary: list[str],
    counts: dict[str, dict[str, int]],
    min_train: int,
    min_eval: int,
) -> None:
    """Raises DataAnomalyError unless the data has every schema class, in schema order,
    with at least min_train labelled train and min_eval labelled eval examples each.

    Args:
        schema_classes: the schema's class names (label_name domain), label order.
        vocabulary: ImageExampleGen's class folders (labels.txt), label order.
        counts: ImageExampleGen's class_counts.json: {class: {"train": n, "eval": n}}.
        min_train, min_eval: the minimum labelled examples per class in each split.
    """
    if vocabulary != schema_classes:
        extra = sorted(set(vocabulary) - set(schema_classes))
        absent = sorted(set(schema_classes) - set(vocabulary))
        detail = []
        if absent:
            detail.append(f"classes of the schema with no folder: {absent}")
        if extra:
            detail.append(f"class folders the schema does not list: {extra}")
        if not detail:
            detail.append(f"folders {vocabulary} vs schema {schema_classes} (label order)")
        raise DataAnomalyError(
            "the class folders do not match the schema's classes, so labels would not mean "
            "what the schema says; the run is stopped before any model is trained:\n  "
            + "\n  ".join(detail)
            + "\n"
            + FIX_HINT
        )
    short = []
    for name in schema_classes:
        got = counts.get(name, {})
        train, eval_ = int(got.get("train", 0)), int(got.get("eval", 0))
        if train < min_train or eval_ < min_eval:
            short.append(f"class {name!r}: {train} train, {eval_} eval")
    if short:
        raise DataAnomalyError(
            f"too few labelled images: every class needs at least {min_train} in the train "
            f"split and {min_eval} in the eval split (after quarantine and duplicates); the "
            "run is stopped before any model is trained:\n  "
            + "\n  ".join(short)
            + "\nAdd labelled images to those class folders, or lower "
            "data.min_train_per_class / data.min_eval_per_class in the config."
        )
