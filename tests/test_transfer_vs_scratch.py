"""bench.transfer_vs_scratch on a tiny hand-built fixture (no pipeline run).

A small_cnn at 16x16 with perturbed weights stands for the source-pretrained base
(saved with model_io.save_keras); coloured PNGs of three classes are written twice, as
BottleneckCache records (vectors from the frozen extractor) and as ImageExampleGen
examples, in the ``Split-<name>/`` layout. Both arms train a few epochs over two seeds.
"""

from __future__ import annotations

import hashlib
import io
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from bench import transfer_vs_scratch as bench
from components.base_model_gen import bases
from components.common import model_io, model_surgery
from components.common.examples import BOTTLENECK_KEY, IMAGE_ID_KEY, IMAGE_KEY, LABEL_KEY
from components.common.preprocessing import ImageSpec
from components.trainer.config import TrainerConfig

CLASSES = ("red", "green", "blue")
COLOURS = ((210, 40, 40), (40, 200, 50), (40, 50, 210))
SPEC = ImageSpec(height=16, width=16)
CUT = {"cut_layer": "block2_pool", "pooling": "avg"}
SEEDS = (0, 1)
CONFIG = TrainerConfig(
    image=SPEC,
    **CUT,
    learning_rate=0.01,
    batch_size=8,
    epochs=2,
    early_stopping_patience=2,
    fine_tune="off",
)
SCRATCH_RATE = 0.02


def _pretrained_base() -> keras.Model:
    """small_cnn (seed 0) with every weight moved: stands for the source-trained base."""
    base = bases.build_builtin("small_cnn", 16, 16, seed=0)
    rng = np.random.default_rng(42)
    base.set_weights([w + rng.normal(0, 0.05, w.shape).astype(w.dtype) for w in base.get_weights()])
    return base


def _images(per_class: int, seed: int) -> list[tuple[bytes, int]]:
    rng = np.random.default_rng(seed)
    images = []
    for label, colour in enumerate(COLOURS):
        for _ in range(per_class):
            pixels = np.clip(np.array(colour) + rng.integers(-40, 41, (16, 16, 3)), 0, 255)
            buffer = io.BytesIO()
            Image.fromarray(pixels.astype(np.uint8)).save(buffer, format="PNG")
            images.append((buffer.getvalue(), label))
    return images


def _record(encoded: bytes, label: int, vector: np.ndarray | None) -> bytes:
    feature = tf.train.Feature
    features = {
        IMAGE_KEY: feature(bytes_list=tf.train.BytesList(value=[encoded])),
        IMAGE_ID_KEY: feature(
            bytes_list=tf.train.BytesList(value=[hashlib.sha256(encoded).hexdigest().encode()])
        ),
        LABEL_KEY: feature(int64_list=tf.train.Int64List(value=[label])),
    }
    if vector is not None:
        features[BOTTLENECK_KEY] = feature(float_list=tf.train.FloatList(value=vector.tolist()))
    return tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString()


def _write(root: str, splits, extractor: keras.Model | None) -> str:
    """<root>/Split-<name>/data_tfrecord-00000-of-00001.gz; with bottlenecks if extractor."""
    for split, images in splits.items():
        vectors = [None] * len(images)
        if extractor is not None:
            batch = SPEC.preprocess(tf.constant([encoded for encoded, _ in images]))
            vectors = list(extractor(batch, training=False).numpy().reshape(len(images), -1))
        os.makedirs(os.path.join(root, f"Split-{split}"))
        path = os.path.join(root, f"Split-{split}", "data_tfrecord-00000-of-00001.gz")
        with tf.io.TFRecordWriter(path, options="GZIP") as writer:
            for (encoded, label), vector in zip(images, vectors, strict=True):
                writer.write(_record(encoded, label, vector))
    return root


def _patterns(root: str, split: str) -> tuple[str, ...]:
    return (os.path.join(root, f"Split-{split}", "*"),)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The inputs of both arms, the pretrained base, and one comparison over two seeds."""
    root = tmp_path_factory.mktemp("transfer_vs_scratch")
    base = _pretrained_base()
    model_io.save_keras(base, str(root / "base"))
    splits = {"train": _images(6, seed=1), "eval": _images(4, seed=2)}
    extractor = model_surgery.feature_extractor(base, **CUT)
    bottlenecks = _write(str(root / "bottlenecks"), splits, extractor)
    examples = _write(str(root / "examples"), splits, None)
    inputs = bench.Inputs(
        base_model=str(root / "base"),
        bottleneck_train=_patterns(bottlenecks, "train"),
        bottleneck_eval=_patterns(bottlenecks, "eval"),
        examples_train=_patterns(examples, "train"),
        examples_eval=_patterns(examples, "eval"),
        class_names=CLASSES,
    )
    workdir = str(root / "work")
    build = bench.scratch_builder("builtin", "small_cnn", 16, 16)
    comparison = bench.compare(CONFIG, inputs, SEEDS, build, workdir, SCRATCH_RATE)
    return {"root": root, "base": base, "inputs": inputs, "workdir": workdir, "cmp": comparison}


def test_both_arms_report_an_accuracy_per_seed(world):
    comparison = world["cmp"]
    assert comparison.seeds == list(SEEDS)
    for arm, phase in ((comparison.transfer, "head"), (comparison.scratch, "full")):
        assert [run.seed for run in arm.runs] == list(SEEDS)
        assert all(0.0 <= run.accuracy <= 1.0 for run in arm.runs)
        assert all(run.phases == (phase,) for run in arm.runs)
        assert arm.mean == pytest.approx(np.mean(arm.accuracies))
        assert arm.std == pytest.approx(np.std(arm.accuracies, ddof=1))
        assert arm.min <= arm.mean <= arm.max
    assert comparison.train_counts == (6, 6, 6)
    assert comparison.eval_counts == (4, 4, 4)
    assert {run.learning_rate for run in comparison.transfer.runs} == {CONFIG.learning_rate}
    assert {run.learning_rate for run in comparison.scratch.runs} == {SCRATCH_RATE}
    # Same network: identical weight shapes (compare checks it too).
    assert comparison.transfer.runs[0].weight_shapes == comparison.scratch.runs[0].weight_shapes


def test_scratch_base_is_freshly_initialized_per_seed(world):
    pretrained = model_surgery.feature_extractor(world["base"], **CUT)
    fresh = [model_io.load_keras(bench.scratch_base_dir(world["workdir"], seed)) for seed in SEEDS]
    for layer in model_surgery.weighted_layers(pretrained):
        reference = layer.get_weights()[0]
        kernels = [model.get_layer(layer.name).get_weights()[0] for model in fresh]
        assert all(kernel.shape == reference.shape for kernel in kernels)
        assert all(not np.allclose(kernel, reference) for kernel in kernels), layer.name
        assert not np.allclose(kernels[0], kernels[1]), f"{layer.name}: init ignores the seed"


def test_table_and_outputs(world, tmp_path):
    comparison = world["cmp"]
    table = bench.format_table(comparison)
    lines = table.splitlines()
    assert lines[0] == "| arm | seed 0 | seed 1 | mean | std | min | max |"
    transfer_row = next(line for line in lines if line.startswith("| transfer |"))
    assert f"{comparison.transfer.mean:.4f}" in transfer_row
    assert any(line.startswith("| scratch |") for line in lines)
    assert "train labels per class: red: 6, green: 6, blue: 6 (18 in all)" in table
    paths = [str(tmp_path / "out" / "result.json"), str(tmp_path / "out" / "result.md")]
    bench.write_outputs(comparison, paths, wall_seconds=1.0)
    facts = json.loads(open(paths[0], encoding="utf-8").read())
    assert facts["arms"]["scratch"]["accuracies"] == comparison.scratch.accuracies.tolist()
    assert facts["train_labels_per_class"] == {"red": 6, "green": 6, "blue": 6}
    assert facts["settings"]["scratch_learning_rate"] == SCRATCH_RATE
    assert table in open(paths[1], encoding="utf-8").read()


def test_check_same_split(world):
    inputs = world["inputs"]
    assert bench.check_same_split(inputs.bottleneck_train, inputs.examples_train, "train") == 18
    with pytest.raises(ValueError, match="12 only in the examples"):
        bench.check_same_split(inputs.bottleneck_train, inputs.examples_eval, "train")


def test_evaluate_accuracy_scores_the_classifier_on_the_images(world):
    inputs = keras.Input((16, 16, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(inputs)
    always_blue = keras.layers.Dense(
        3,
        activation="softmax",
        kernel_initializer="zeros",
        bias_initializer=keras.initializers.Constant([0.0, 0.0, 5.0]),
    )(pooled)
    model = keras.Model(inputs, always_blue)
    accuracy = bench.evaluate_accuracy(model, SPEC, world["inputs"].examples_eval, batch_size=5)
    assert accuracy == pytest.approx(4 / 12)


def test_missing_demo_run_says_to_run_the_demo(tmp_path):
    with pytest.raises(bench.MissingArtifactsError, match="make demo"):
        bench.find_inputs(str(tmp_path / "metadata.sqlite"), "digits-transfer")


def test_scratch_builder_rejects_a_model_file():
    with pytest.raises(ValueError, match="builtin"):
        bench.scratch_builder("file", "", 16, 16)
