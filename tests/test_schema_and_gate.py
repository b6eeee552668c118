"""The checked-in schema and the anomaly gate that stops a run on bad data."""

import os

import pandas as pd
import pytest
import tensorflow_data_validation as tfdv

from components.anomaly_gate import gate
from components.common.schema import read_schema
from pipeline import schema as schema_lib
from pipeline.demo_data import TARGET_CLASSES

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO_CLASSES = [str(c) for c in TARGET_CLASSES]


def test_checked_in_demo_schema_matches_the_builder():
    checked_in = read_schema(os.path.join(REPO, "schemas/digits_target.pbtxt"))
    assert checked_in == schema_lib.build_schema(DEMO_CLASSES)


def test_schema_label_domain_follows_the_vocabulary():
    built = schema_lib.build_schema(["cat", "dog", "eel"])
    label = tfdv.get_feature(built, "label")
    assert (label.int_domain.min, label.int_domain.max) == (0, 2)
    assert list(tfdv.get_feature(built, "label_name").string_domain.value) == ["cat", "dog", "eel"]
    unlabelled = tfdv.get_feature(schema_lib.build_schema(None), "label")
    assert (unlabelled.int_domain.min, unlabelled.int_domain.max) == (-1, -1)


def _stats(labels, names, images):
    frame = pd.DataFrame(
        {
            "image": images,
            "label": labels,
            "label_name": names,
            "image_id": [f"id{i}" for i in range(len(labels))],
            "source_path": [f"p{i}.png" for i in range(len(labels))],
            "height": [8] * len(labels),
            "width": [8] * len(labels),
            "format": ["png"] * len(labels),
        }
    )
    return tfdv.generate_statistics_from_dataframe(frame)


def test_gate_passes_clean_data_and_names_a_label_outside_the_vocabulary():
    schema = schema_lib.build_schema(DEMO_CLASSES)
    clean = tfdv.validate_statistics(_stats([0, 4], ["5", "9"], [b"a", b"b"]), schema)
    gate.check({"train": clean})  # no anomaly: returns

    bad = tfdv.validate_statistics(_stats([0, 7], ["5", "12"], [b"a", b"b"]), schema)
    with pytest.raises(gate.DataAnomalyError) as err:
        gate.check({"train": clean, "eval": bad})
    message = str(err.value)
    assert "[eval] feature 'label'" in message
    assert "[eval] feature 'label_name'" in message
    assert "[train]" not in message
    assert "tfx-transfer schema" in message  # says how to fix it


def test_cli_schema_writes_a_reviewable_file(tmp_path):
    from pipeline.cli import main

    for name in ("b", "a"):
        (tmp_path / "data" / name).mkdir(parents=True)
    out = tmp_path / "s.pbtxt"
    assert main(["schema", "--data-root", str(tmp_path / "data"), "--out", str(out)]) == 0
    assert read_schema(str(out)) == schema_lib.build_schema(["a", "b"])
    assert main(["schema", "--data-root", str(tmp_path / "none"), "--out", str(out)]) == 2


# --- classes and counts per class (the gate before anything is trained) ---------------------
def _counts(**per_class):
    return {name: {"train": train, "eval": eval_} for name, (train, eval_) in per_class.items()}


def test_class_gate_passes_enough_examples_of_every_schema_class():
    gate.check_classes(["a", "b"], ["a", "b"], _counts(a=(3, 2), b=(9, 4)), 3, 2)


def test_class_gate_names_the_short_classes_with_their_counts():
    with pytest.raises(gate.DataAnomalyError) as error:
        gate.check_classes(["a", "b", "c"], ["a", "b", "c"], _counts(a=(3, 2), b=(1, 0)), 3, 2)
    message = str(error.value)
    assert "class 'b': 1 train, 0 eval" in message and "class 'c': 0 train, 0 eval" in message
    assert "class 'a'" not in message
    assert "data.min_train_per_class" in message  # the fix is named


def test_class_gate_refuses_folders_that_are_not_the_schema_classes():
    # One class folder of a five-class schema: the labels would not mean the schema's.
    with pytest.raises(gate.DataAnomalyError, match=r"with no folder: \['b', 'c'\]"):
        gate.check_classes(["a", "b", "c"], ["a"], _counts(a=(50, 20)), 3, 2)
    with pytest.raises(gate.DataAnomalyError, match=r"the schema does not list: \['d'\]"):
        gate.check_classes(["a", "b"], ["a", "b", "d"], _counts(a=(5, 5), b=(5, 5)), 3, 2)
