"""Pure core of AnomalyGate: read ExampleValidator's anomalies and explain them.

TFX's ExampleValidator records anomalies (and a `blessed` flag per split) but lets
the run go on. This gate turns any anomaly into a failed run with a message that
says, per split and feature, what is wrong and how to fix it.
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
