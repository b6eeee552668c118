"""fine_tune auto (components.trainer.fine_tune_selection and train.measure_fine_tune): the
depth measured on a validation fold of the train split.

Two tiny bases whose answer is known, on red-vs-blue images:
- "helps": conv1 responds to red (channel 0) and blue (channel 1); conv2 (1x1, the top
  weighted layer) is all zeros, so the frozen features are constant and the head is at
  chance; unfreezing conv2 lets conv1's colour channels through.
- "no help": the same with conv2 the identity: the frozen features already separate the
  colours, so the head alone is right on every validation image and fine-tuning cannot
  win.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from components.common import model_io, model_surgery
from components.common.examples import BOTTLENECK_KEY
from components.common.preprocessing import ImageSpec
from components.common.testing import write_examples
from components.trainer import fine_tune_selection as selection_lib
from components.trainer import train as trainer
from components.trainer.config import TrainerConfig

SPEC = ImageSpec(height=8, width=8)
CLASSES = ["red", "blue"]
COLOURS = ((220, 30, 30), (30, 30, 220))
CONFIG = TrainerConfig(
    image=SPEC,
    cut_layer="conv2",
    pooling="avg",
    learning_rate=0.05,
    batch_size=4,
    epochs=6,
    early_stopping_patience=0,
    fine_tune="auto",
    fine_tune_epochs=8,
    fine_tune_lr_factor=1.0,
    seed=1,
)


def _base(conv2_identity: bool) -> keras.Model:
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3), name="image")
    x = keras.layers.Conv2D(4, 1, activation="relu", name="conv1")(inputs)
    x = keras.layers.Conv2D(4, 1, name="conv2")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    model = keras.Model(inputs, x, name="colour_base")
    kernel = np.zeros((1, 1, 3, 4), np.float32)
    kernel[0, 0, 0, 0], kernel[0, 0, 2, 1] = 1.0, 1.0  # channel 0 red, channel 1 blue
    model.get_layer("conv1").set_weights([kernel, np.zeros(4, np.float32)])
    conv2 = np.eye(4, dtype=np.float32) if conv2_identity else np.zeros((4, 4), np.float32)
    model.get_layer("conv2").set_weights([conv2.reshape(1, 1, 4, 4), np.zeros(4, np.float32)])
    return model


def _png(colour, rng) -> bytes:
    pixels = np.clip(np.array(colour) + rng.integers(-30, 31, (8, 8, 3)), 0, 255)
    out = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8)).save(out, format="PNG")
    return out.getvalue()


def _records(base: keras.Model, per_class: int, seed: int, make_record) -> list[bytes]:
    """ImageExampleGen's records with the cut's vector appended (as BottleneckCache does:
    a serialized message concatenated to the record is merged into it)."""
    rng = np.random.default_rng(seed)
    images = [(_png(COLOURS[label], rng), label) for label in (0, 1) for _ in range(per_class)]
    extractor = model_surgery.feature_extractor(base, "conv2", pooling="avg")
    vectors = extractor(SPEC.preprocess([image for image, _ in images]), training=False).numpy()
    records = []
    for (image, label), vector in zip(images, vectors, strict=True):
        feature = tf.train.Feature(float_list=tf.train.FloatList(value=vector.tolist()))
        extra = tf.train.Example(
            features=tf.train.Features(feature={BOTTLENECK_KEY: feature})
        ).SerializeToString()
        records.append(make_record(image, label) + extra)
    return records


@pytest.fixture(scope="module")
def world(tmp_path_factory, make_record):
    root = tmp_path_factory.mktemp("fine_tune_auto")
    out = {}
    for name, identity in (("helps", False), ("no_help", True)):
        base = _base(identity)
        base_dir = str(root / f"base_{name}")
        model_io.save_keras(base, base_dir)
        train = _records(base, 10, seed=1, make_record=make_record)
        splits = {}
        for variant, eval_seed in (("a", 2), ("b", 3)):  # the same train, another eval
            evaluation = _records(base, 4 + 2 * (variant == "b"), eval_seed, make_record)
            if variant == "b":
                evaluation = evaluation[::-1]
            examples = write_examples(
                root / f"{name}_{variant}", {"train": train, "eval": evaluation}
            )
            splits[variant] = (
                [os.path.join(examples, "Split-train", "*")],
                [os.path.join(examples, "Split-eval", "*")],
            )
        out[name] = {"base_dir": base_dir, "splits": splits}
    out["root"] = root
    return out


def _train(world, name, variant="a", config=CONFIG):
    train_files, eval_files = world[name]["splits"][variant]
    return trainer.train(config, CLASSES, world[name]["base_dir"], train_files, eval_files)


def _rows(selection):
    """The measured table without its timings (which differ between runs)."""
    return [
        {key: value for key, value in row.items() if key != "seconds"}
        for row in selection.to_dict()["rows"]
    ]


# --- the measured choice on the two bases ------------------------------------------------------
@pytest.fixture(scope="module")
def helps(world):
    return _train(world, "helps"), _train(world, "helps", "b")


def test_keeps_fine_tuning_when_it_clearly_helps(helps, world, tmp_path):
    result, _ = helps
    selection = result.fine_tune_selection
    assert selection is not None and selection.validation_examples == 4  # a fifth of 20
    assert selection.fit_examples == 16
    off, *trials = selection.rows()
    assert off["setting"] == "off" and off["val_accuracy"] == 0.5  # constant features
    assert [row["k"] for row in trials] == [1, 2]
    assert selection.chosen == 1  # the best, ties to fewer layers
    assert trials[0]["val_accuracy"] == 1.0 and trials[0]["layers"] == "conv2"
    assert trials[0]["gain_vs_off"] == 0.5 and trials[0]["gain_se"] < 0.5
    assert "fine-tuning the top 1" in selection.reason
    # The real training then fine-tunes that depth on the whole train split.
    assert result.fine_tune.layers == 1 and result.fine_tune.layer_names == ("conv2",)
    assert [phase.name for phase in result.phases] == ["head", "fine_tune"]
    assert result.phases[1].learning_rate == pytest.approx(0.05)
    # ... starting from the base's own weights (the trials' changes were undone).
    assert not np.any(result.extractor.get_layer("conv1").get_weights()[1])

    exported = trainer.export(
        result, CONFIG, CLASSES, str(tmp_path / "model" / "Format-Serving"),
        world["helps"]["splits"]["a"][1],
    )  # fmt: skip
    table = json.loads(open(exported.reports["fine_tune_selection"]).read())
    assert table["chosen"] == "k=1" and table["rows"][1]["val_accuracy"] == 1.0
    assert table["rule"] == selection_lib.RULE and table["seconds"] > 0
    assert open(exported.reports["fine_tune_selection_png"], "rb").read(4) == b"\x89PNG"
    metrics = json.loads(open(exported.reports["metrics"]).read())
    assert metrics["fine_tune"]["setting"] == "auto"
    assert metrics["fine_tune"]["unfrozen_layers"] == 1
    assert metrics["fine_tune"]["selection"]["rows"] == table["rows"]
    assert metrics["eval_accuracy"] == 1.0


def test_the_eval_split_is_never_read_and_the_choice_is_deterministic(helps):
    first, other_eval = helps  # the same train records and seed, another eval split
    assert _rows(other_eval.fine_tune_selection) == _rows(first.fine_tune_selection)
    assert other_eval.fine_tune_selection.chosen == first.fine_tune_selection.chosen


def test_declines_when_fine_tuning_cannot_win(world):
    result = _train(world, "no_help")
    selection = result.fine_tune_selection
    off, *trials = selection.rows()
    assert off["val_accuracy"] == 1.0
    assert [row["k"] for row in trials] == [1, 2]
    assert all(row["gain_vs_off"] <= 0 for row in trials)
    assert selection.chosen == 0 and result.fine_tune.layers == 0
    assert "no gain, fine-tuning off" in result.fine_tune.reason
    assert [phase.name for phase in result.phases] == ["head"]
    # "off" chosen: the model is the one fine_tune "off" trains, weight for weight.
    fixed = _train(world, "no_help", config=dataclasses.replace(CONFIG, fine_tune="off"))
    for a, b in zip(result.head.get_weights(), fixed.head.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_the_budget_stops_further_depths(world):
    config = dataclasses.replace(CONFIG, fine_tune_budget_seconds=1e-3)
    result = _train(world, "helps", config=config)
    selection = result.fine_tune_selection
    assert [trial.skipped != "" for trial in selection.trials] == [True, True]
    assert selection.chosen == 0 and "no depth measured (k=1: budget: " in selection.reason
    assert selection.seconds >= selection.head_seconds > 0
    assert [row.get("skipped", "")[:7] for row in selection.rows()[1:]] == ["budget:"] * 2
    assert "| k=2 | - | skipped: budget: " in selection_lib.table(selection)


def test_too_few_train_examples_mean_off_with_the_reason(world, tmp_path, make_record):
    base = _base(conv2_identity=False)
    records = _records(base, 2, seed=4, make_record=make_record)  # 4 labelled: < 5
    examples = write_examples(tmp_path / "few", {"train": records, "eval": records})
    result = trainer.train(
        CONFIG,
        CLASSES,
        world["helps"]["base_dir"],
        [os.path.join(examples, "Split-train", "*")],
        [os.path.join(examples, "Split-eval", "*")],
    )
    assert result.fine_tune.layers == 0 and "4 labelled train examples are too few" in (
        result.fine_tune.reason
    )
    assert [phase.name for phase in result.phases] == ["head"]
    (row,) = result.fine_tune_selection.rows()
    assert row["val_accuracy"] is None and "too few" in row["skipped"]
    assert "| off (chosen) | - | skipped: 4 labelled" in selection_lib.table(
        result.fine_tune_selection
    )


# --- the rule and the budget loop, on given numbers ------------------------------------------
def _trial(k, correct):
    return selection_lib.Trial(k, tuple(bool(c) for c in correct))


@pytest.mark.parametrize(
    ("off", "trials", "chosen", "words"),
    [
        # 2 of 10 improved, none worse: gain 0.2 > SE 0.133
        ([0] * 2 + [1] * 8, {1: [1] * 10}, 1, "fine-tuning the top 1"),
        # 2 improved, 1 worse: gain 0.1, SE 0.18
        ([0, 0, 1] + [1] * 7, {1: [1, 1, 0] + [1] * 7}, 0, "gain within one SE"),
        # a single improved example: gain 1/n equals its SE exactly: not enough
        ([0] + [1] * 9, {1: [1] * 10}, 0, "gain within one SE"),
        ([0] + [1] * 19, {1: [1] * 20}, 0, "gain within one SE"),
        ([1] * 10, {1: [1] * 10, 2: [1] * 9 + [0]}, 0, "no gain"),
        ([0] * 3 + [1] * 7, {1: [1] * 10, 2: [1] * 10}, 1, "best k=1"),  # tie: fewer
        ([0] * 3 + [1] * 7, {1: [0] * 2 + [1] * 8, 2: [1] * 10}, 2, "best k=2"),
    ],
)
def test_decide_keeps_a_depth_only_beyond_one_standard_error(off, trials, chosen, words):
    k, reason = selection_lib.decide(_trial(0, off), [_trial(k, c) for k, c in trials.items()])
    assert k == chosen and words in reason


def test_decide_names_why_no_depth_was_measured():
    off = selection_lib.Trial(0, (True, False, True))
    skipped = [
        selection_lib.Trial(1, skipped="the base has 0 weighted layer(s) to unfreeze"),
        selection_lib.Trial(2, skipped="the base has 0 weighted layer(s) to unfreeze"),
    ]
    chosen, reason = selection_lib.decide(off, skipped)
    assert chosen == 0
    assert "no depth measured (k=1: the base has 0 weighted layer(s) to unfreeze; k=2:" in reason


def test_paired_gain_is_the_standard_error_of_the_per_example_difference():
    gain, se = selection_lib.paired_gain(_trial(1, [1, 1, 0, 1]), _trial(0, [0, 1, 1, 0]))
    d = np.array([1, 0, -1, 1])
    assert gain == pytest.approx(d.mean()) and se == pytest.approx(d.std(ddof=1) / 2)


def test_run_trials_starts_a_depth_only_within_the_budget():
    now = [0.0]

    def trial(k):
        now[0] += 4.0  # each depth takes 4 s
        return _trial(k, [1])

    # 3 s spent before the first depth; budget 10: k=1 (3 + 0 <= 10), k=2 (7 + 4 > 10)
    done = selection_lib.run_trials([1, 2, 3], trial, 10.0, -3.0, clock=lambda: now[0])
    assert [t.skipped == "" for t in done] == [True, False, False]
    assert done[0].seconds == 4.0 and "budget" in done[1].skipped
    done = selection_lib.run_trials([1, 2], trial, 100.0, now[0], clock=lambda: now[0])
    assert [t.skipped for t in done] == ["", ""]


def test_validation_fold_is_stratified_seeded_and_needs_examples():
    labels = np.repeat(np.arange(10), 5)  # the photo demo: 5 per class
    fold = selection_lib.validation_fold(labels, seed=0)
    assert np.bincount(labels[fold]).tolist() == [1] * 10
    np.testing.assert_array_equal(fold, selection_lib.validation_fold(labels, seed=0))
    assert not np.array_equal(fold, selection_lib.validation_fold(labels, seed=1))
    with pytest.raises(ValueError, match="at least 5 labelled train examples"):
        selection_lib.validation_fold(np.array([0, 1, 0]), seed=0)


@pytest.mark.parametrize("value", [0, -5, "60", True, float("nan")])
def test_a_bad_budget_names_the_field_and_the_allowed_values(value):
    with pytest.raises(
        ValueError, match=r"trainer\.fine_tune_budget_seconds: must be a number > 0"
    ):
        TrainerConfig.from_dict({**CONFIG.to_dict(), "fine_tune_budget_seconds": value})
