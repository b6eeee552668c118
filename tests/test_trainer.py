"""The Trainer (components.trainer.train): config, head phase, fine-tuning, export, reports.

Fixtures are built by hand, without running the pipeline: a tiny base network saved as
model.keras, coloured PNGs of three classes (odd sizes too), bottleneck records in
BottleneckCache's output layout (vectors computed directly with the frozen extractor
on preprocess_images of the bytes), and the schema written by pipeline.schema.
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
from tfx.components.trainer.executor import GenericExecutor
from tfx.components.trainer.fn_args_utils import FnArgs
from tfx.proto import trainer_pb2
from tfx.types import artifact_utils, standard_artifacts
from tfx.types import standard_component_specs as keys
from tfx.utils import path_utils, proto_utils

from components.common import model_io, model_surgery, serving_requests
from components.common.examples import (
    BOTTLENECK_KEY,
    IMAGE_ID_KEY,
    IMAGE_KEY,
    LABEL_KEY,
    LABEL_NAME_KEY,
)
from components.common.preprocessing import ImageSpec
from components.common.schema import class_names_from_schema
from components.serving_check.tf_serving_probe import SessionModel
from components.trainer import data as trainer_data
from components.trainer import train as trainer
from components.trainer.config import TrainerConfig
from pipeline import schema

CLASSES = ["red", "green", "blue"]
COLOURS = {"red": (210, 40, 40), "green": (40, 200, 50), "blue": (40, 50, 210)}
SIZES = ((16, 16), (20, 13), (9, 17))  # (width, height): odd sizes and aspect ratios
SPEC = ImageSpec(height=16, width=16)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# --- fixtures ----------------------------------------------------------------------------
def _base_model() -> keras.Model:
    """16x16x3 -> two Conv+BN+ReLU blocks -> GAP -> an old top; BN stats made non-trivial."""
    keras.utils.set_random_seed(7)
    inputs = keras.Input((16, 16, 3), name="image")
    x = inputs
    for i, filters in ((1, 4), (2, 8)):
        x = keras.layers.Conv2D(filters, 3, padding="same", name=f"conv{i}")(x)
        x = keras.layers.BatchNormalization(name=f"bn{i}")(x)
        x = keras.layers.ReLU(name=f"relu{i}")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    model = keras.Model(inputs, keras.layers.Dense(5, name="old_top")(x), name="tiny_base")
    rng = np.random.default_rng(7)
    for name in ("bn1", "bn2"):
        gamma, beta, mean, variance = model.get_layer(name).get_weights()
        model.get_layer(name).set_weights(
            [
                rng.uniform(0.5, 1.5, gamma.shape),
                rng.normal(0, 0.1, beta.shape),
                rng.normal(0, 0.2, mean.shape),
                rng.uniform(0.5, 2.0, variance.shape),
            ]
        )
    return model


def _png(colour, size, rng) -> bytes:
    width, height = size
    pixels = np.clip(np.array(colour) + rng.integers(-40, 41, (height, width, 3)), 0, 255)
    buffer = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def _images(per_class: int, seed: int) -> list[tuple[bytes, int]]:
    rng = np.random.default_rng(seed)
    return [
        (_png(COLOURS[name], SIZES[i % len(SIZES)], rng), label)
        for label, name in enumerate(CLASSES)
        for i in range(per_class)
    ]


def _example(encoded: bytes, label: int, vector: np.ndarray) -> bytes:
    feature = tf.train.Feature
    features = {
        BOTTLENECK_KEY: feature(float_list=tf.train.FloatList(value=vector.ravel().tolist())),
        LABEL_KEY: feature(int64_list=tf.train.Int64List(value=[label])),
        LABEL_NAME_KEY: feature(
            bytes_list=tf.train.BytesList(value=[CLASSES[label].encode() if label >= 0 else b""])
        ),
        IMAGE_ID_KEY: feature(
            bytes_list=tf.train.BytesList(value=[hashlib.sha256(encoded).hexdigest().encode()])
        ),
        IMAGE_KEY: feature(bytes_list=tf.train.BytesList(value=[encoded])),
    }
    return tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString()


def _write_bottlenecks(root, base, splits, **cut) -> str:
    """BottleneckCache's layout: <root>/Split-<name>/data_tfrecord-00000-of-00001.gz."""
    extractor = model_surgery.feature_extractor(base, **cut)
    for split, images in splits.items():
        vectors = extractor(SPEC.preprocess([b for b, _ in images]), training=False).numpy()
        os.makedirs(os.path.join(root, f"Split-{split}"))
        path = os.path.join(root, f"Split-{split}", "data_tfrecord-00000-of-00001.gz")
        with tf.io.TFRecordWriter(path, options="GZIP") as writer:
            for (encoded, label), vector in zip(images, vectors, strict=True):
                writer.write(_example(encoded, label, vector))
    return root


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The base model dir, the schema file and the labelled images of both splits."""
    root = tmp_path_factory.mktemp("trainer")
    base = _base_model()
    model_io.save_keras(base, str(root / "base_model"))
    schema_path = str(root / "schema" / "schema.pbtxt")
    schema.write_schema(schema.build_schema(CLASSES), schema_path)
    unlabelled = [(_png((128, 128, 128), (16, 16), np.random.default_rng(0)), -1)]
    splits = {"train": _images(20, seed=1) + unlabelled, "eval": _images(8, seed=2)}
    return {"root": root, "base": base, "schema": schema_path, "splits": splits}


def _fn_args(world, name, config, examples) -> FnArgs:
    """FnArgs as TFX builds them: base_model and serving dir are <uri>/Format-Serving."""
    out = world["root"] / name
    return FnArgs(
        working_dir=str(out / "working"),
        train_files=[os.path.join(examples, "Split-train", "*")],
        eval_files=[os.path.join(examples, "Split-eval", "*")],
        schema_path=world["schema"],
        serving_model_dir=str(out / "model" / "Format-Serving"),
        model_run_dir=str(out / "model_run"),
        base_model=str(world["root"] / "base_model" / "Format-Serving"),
        custom_config=json.loads(json.dumps(config.to_dict())),  # as TFX passes it
    )


def _run_trainer_executor(world, name, config, examples) -> FnArgs:
    """The standard TFX Trainer executor with run_fn="components.trainer.train.run_fn".

    Returns the paths the executor passed to run_fn, as FnArgs fields.
    """

    def artifact(cls, uri):
        instance = cls()
        instance.uri = str(uri)
        return instance

    out = world["root"] / name
    bottlenecks = artifact(standard_artifacts.Examples, examples)
    bottlenecks.split_names = artifact_utils.encode_split_names(["train", "eval"])
    inputs = {
        keys.EXAMPLES_KEY: [bottlenecks],
        keys.SCHEMA_KEY: [artifact(standard_artifacts.Schema, os.path.dirname(world["schema"]))],
        keys.BASE_MODEL_KEY: [artifact(standard_artifacts.Model, world["root"] / "base_model")],
    }
    outputs = {
        keys.MODEL_KEY: [artifact(standard_artifacts.Model, out / "model")],
        keys.MODEL_RUN_KEY: [artifact(standard_artifacts.ModelRun, out / "model_run")],
    }
    exec_properties = {
        keys.TRAIN_ARGS_KEY: proto_utils.proto_to_json(trainer_pb2.TrainArgs()),
        keys.EVAL_ARGS_KEY: proto_utils.proto_to_json(trainer_pb2.EvalArgs()),
        keys.RUN_FN_KEY: "components.trainer.train.run_fn",
        keys.CUSTOM_CONFIG_KEY: json.dumps(config.to_dict()),
    }
    GenericExecutor().Do(inputs, outputs, exec_properties)
    return FnArgs(
        serving_model_dir=path_utils.serving_model_dir(str(out / "model")),
        model_run_dir=str(out / "model_run"),
        train_files=[os.path.join(examples, "Split-train", "*")],
        eval_files=[os.path.join(examples, "Split-eval", "*")],
        base_model=str(world["root"] / "base_model"),
    )


@pytest.fixture(scope="module")
def auto_run(world):
    """TFX's Trainer executor, fine_tune "auto" on 20 images per class (the colours are
    separated by the frozen features: fine-tuning cannot win on the validation fold)."""
    config = TrainerConfig(
        image=SPEC, drop_top_layers=1, learning_rate=0.05, batch_size=8, epochs=40,
        fine_tune="auto", seed=3,
    )  # fmt: skip
    examples = _write_bottlenecks(
        str(world["root"] / "bottlenecks_gap"), world["base"], world["splits"], drop_top_layers=1
    )
    fn_args = _run_trainer_executor(world, "auto", config, examples)
    model_dir = os.path.dirname(fn_args.serving_model_dir)
    with open(os.path.join(model_dir, "reports", "metrics.json")) as f:
        metrics = json.load(f)
    return {"fn_args": fn_args, "model_dir": model_dir, "metrics": metrics, "config": config}


@pytest.fixture(scope="module")
def fine_tune_run(world):
    """train + export with a spatial bottleneck (pooling none) and fine_tune K=1."""
    config = TrainerConfig(
        image=SPEC, cut_layer="relu2", pooling="none", learning_rate=0.01, batch_size=8,
        epochs=5, early_stopping_patience=2, fine_tune="1", fine_tune_epochs=3, seed=4,
    )  # fmt: skip
    examples = _write_bottlenecks(
        str(world["root"] / "bottlenecks_map"),
        world["base"],
        world["splits"],
        cut_layer="relu2",
        pooling="none",
    )
    fn_args = _fn_args(world, "fine_tune", config, examples)
    base_dir = trainer_data.resolve_base_model(fn_args.base_model)
    result = trainer.train(
        config, CLASSES, base_dir, fn_args.train_files, fn_args.eval_files, fn_args.model_run_dir
    )
    exported = trainer.export(
        result, config, CLASSES, fn_args.serving_model_dir, fn_args.eval_files
    )
    return {"result": result, "exported": exported, "config": config}


# --- helpers -------------------------------------------------------------------------------
def _eval_bytes(world) -> list[bytes]:
    return [encoded for encoded, _ in world["splits"]["eval"]]


def _serialized(encoded_images) -> list[bytes]:
    return [_example(encoded, 0, np.zeros(1, np.float32)) for encoded in encoded_images]


def _assert_export_matches(serving_dir: str, classifier: keras.Model, encoded) -> None:
    """Both signatures of the SavedModel equal the Keras classifier on the same bytes."""
    expected = classifier(SPEC.preprocess(encoded), training=False).numpy()
    loaded = tf.saved_model.load(serving_dir)
    by_images = loaded.signatures[model_io.IMAGES_SIGNATURE](images=tf.constant(encoded))
    by_examples = loaded.signatures[model_io.SERVING_SIGNATURE](
        examples=tf.constant(_serialized(encoded))
    )
    # ... and the same answers the way TF Serving loads the model (TF1 session).
    session = SessionModel(serving_dir)
    by_session = [
        session.run(model_io.IMAGES_SIGNATURE, {"images": np.array(encoded, dtype=object)}),
        session.run(
            model_io.SERVING_SIGNATURE,
            {"examples": np.array(_serialized(encoded), dtype=object)},
        ),
    ]
    session.close()
    answers = [{k: v.numpy() for k, v in o.items()} for o in (by_images, by_examples)]
    for outputs in answers + by_session:
        got = outputs[model_io.PROBABILITIES_OUTPUT]
        assert np.max(np.abs(got - expected)) < 1e-5
        names = [c.decode() for c in outputs[model_io.CLASSES_OUTPUT]]
        assert names == [CLASSES[i] for i in np.argmax(expected, axis=1)]


# --- config ----------------------------------------------------------------------------------
def test_config_defaults_and_round_trip():
    config = TrainerConfig(image=SPEC)
    assert (config.learning_rate, config.epochs, config.early_stopping_patience) == (1e-3, 50, 5)
    assert (config.fine_tune, config.fine_tune_epochs, config.fine_tune_lr_factor) == (
        "off",
        10,
        0.1,
    )
    raw = json.loads(json.dumps({**config.to_dict(), "hidden_units": [8, 4], "fine_tune": "3"}))
    parsed = TrainerConfig.from_dict(raw)
    assert parsed.hidden_units == (8, 4) and parsed.fine_tune == 3 and parsed.image == SPEC
    assert TrainerConfig.from_dict(parsed.to_dict()) == parsed
    assert TrainerConfig(image=SPEC, fine_tune=0).fine_tune == "off"
    assert TrainerConfig(image=SPEC, fine_tune="auto").fixed_unfreeze is None
    assert TrainerConfig(image=SPEC, fine_tune="off").fixed_unfreeze == 0


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"pooling": "mean"},
            r"trainer\.pooling: 'mean' .* choose one of: avg, max, flatten, none",
        ),
        ({"fine_tune": "some"}, r"trainer\.fine_tune: 'some' .* 'off', 'auto', or an integer K"),
        ({"fine_tune": -1}, r"trainer\.fine_tune: -1 is not allowed"),
        ({"fine_tune": True}, r"trainer\.fine_tune"),
        ({"dropout": 1.0}, r"trainer\.dropout: must be a number in \[0, 1\), got 1\.0"),
        ({"learning_rate": 0}, r"trainer\.learning_rate: must be a number > 0"),
        ({"fine_tune_lr_factor": 2}, r"trainer\.fine_tune_lr_factor: must be a number in \(0, 1\]"),
        ({"fine_tune_budget_seconds": 0}, r"trainer\.fine_tune_budget_seconds: .* > 0, got 0"),
        ({"batch_size": 0}, r"trainer\.batch_size: must be an integer >= 1, got 0"),
        ({"epochs": 2.5}, r"trainer\.epochs: must be an integer >= 1"),
        ({"early_stopping_patience": -1}, r"trainer\.early_stopping_patience: .* >= 0"),
        ({"hidden_units": [8, 0]}, r"trainer\.hidden_units: must be a list of integers >= 1"),
        ({"cut_layer": "relu2", "drop_top_layers": 1}, r"set one, not both"),
        ({"image": {"height": 16, "width": 16, "scaling": "x"}}, r"trainer\.image: .*scaling"),
        ({"learnig_rate": 0.1}, r"unknown key\(s\) learnig_rate; allowed keys: image, "),
    ],
)
def test_bad_config_fields_name_the_field_and_allowed_values(changes, message):
    with pytest.raises(ValueError, match=message):
        TrainerConfig.from_dict({**TrainerConfig(image=SPEC).to_dict(), **changes})


def test_config_needs_image():
    with pytest.raises(ValueError, match=r"trainer\.image: required but missing"):
        TrainerConfig.from_dict({"epochs": 3})
    with pytest.raises(ValueError, match=r"custom_config must be a dict"):
        TrainerConfig.from_dict(None)


# --- inputs --------------------------------------------------------------------------------
def test_class_names_come_from_the_schema(world, tmp_path):
    assert class_names_from_schema(world["schema"]) == CLASSES
    unlabelled = str(tmp_path / "unlabelled.pbtxt")
    schema.write_schema(schema.build_schema(None), unlabelled)
    with pytest.raises(ValueError, match="string domain of at least 2 class names"):
        class_names_from_schema(unlabelled)


def test_fixed_k_beyond_the_extractor_is_an_error(world):
    extractor = model_surgery.feature_extractor(world["base"], cut_layer="relu2")
    config = TrainerConfig(image=SPEC, cut_layer="relu2", fine_tune=3)
    with pytest.raises(ValueError, match=r"trainer\.fine_tune: 3 .* between 1 and 2"):
        trainer.choose_fine_tune(config, extractor)


def test_records_of_another_cut_are_rejected(world, auto_run):
    config = TrainerConfig(image=SPEC, cut_layer="relu2", pooling="none")
    fn_args = auto_run["fn_args"]  # its records hold 8-d GAP vectors
    base_dir = trainer_data.resolve_base_model(fn_args.base_model)
    with pytest.raises(ValueError, match=r"hold 8 values .* outputs \(16, 16, 8\)"):
        trainer.train(config, CLASSES, base_dir, fn_args.train_files, fn_args.eval_files)


# --- head phase, auto policy, export, reports ------------------------------------------------
def test_head_learns_the_easy_classes(auto_run):
    metrics = auto_run["metrics"]
    assert metrics["eval_accuracy"] >= 0.9  # chance is 1/3
    assert metrics["num_train_examples"] == 60  # the unlabelled record is skipped
    assert metrics["num_eval_examples"] == 24
    assert metrics["examples_per_class"]["train"] == {"red": 20, "green": 20, "blue": 20}
    head = metrics["phases"]["head"]
    assert head["history"]["val_accuracy"][head["best_epoch"] - 1] >= 0.9
    assert np.trace(metrics["confusion_matrix"]) == round(24 * metrics["eval_accuracy"])


def test_auto_measures_on_a_train_fold_and_keeps_the_base_frozen_when_off_wins(auto_run):
    fine_tune = auto_run["metrics"]["fine_tune"]
    assert fine_tune["setting"] == "auto" and fine_tune["unfrozen_layers"] == 0
    selection = fine_tune["selection"]
    assert selection["validation_examples"] == 12  # a fifth of the 60 labelled train
    assert selection["fit_examples"] == 48
    off, *depths = selection["rows"]
    assert off["setting"] == "off" and off["val_accuracy"] >= 0.9
    assert [row["k"] for row in depths] == [1, 2]
    assert "validation fold of 12 train examples" in fine_tune["reason"]
    assert "fine-tuning off" in fine_tune["reason"]
    assert list(auto_run["metrics"]["phases"]) == ["head"]  # no phase 2
    with open(os.path.join(auto_run["model_dir"], "reports", "fine_tune_selection.json")) as f:
        assert json.load(f)["rows"] == selection["rows"]


def test_run_fn_writes_model_keras_reports_and_logs(auto_run):
    model_dir = auto_run["model_dir"]
    assert os.path.isfile(os.path.join(model_dir, "model.keras"))
    assert os.path.isfile(os.path.join(auto_run["fn_args"].serving_model_dir, "saved_model.pb"))
    for name in ("training_curves.png", "confusion_matrix.png"):
        with open(os.path.join(model_dir, "reports", name), "rb") as f:
            assert f.read(8) == PNG_MAGIC
    assert os.listdir(os.path.join(auto_run["fn_args"].model_run_dir, "head"))  # TensorBoard


def test_exported_model_equals_the_keras_classifier(world, auto_run):
    classifier = model_io.load_keras(auto_run["model_dir"])
    encoded = _eval_bytes(world)
    _assert_export_matches(auto_run["fn_args"].serving_model_dir, classifier, encoded)
    # The comparison can fail: a slightly different head is caught.
    head = classifier.get_layer("head").get_layer("head_softmax")
    kernel, bias = head.get_weights()
    kernel[:, 0] += 0.05  # (the same shift for every class would cancel in the softmax)
    head.set_weights([kernel, bias])
    with pytest.raises(AssertionError):
        _assert_export_matches(auto_run["fn_args"].serving_model_dir, classifier, encoded)


def test_the_trained_model_can_be_the_next_base(auto_run):
    """The Trainer's Model artifact is a valid base_model (cut by layer name)."""
    base_dir = trainer_data.resolve_base_model(auto_run["fn_args"].serving_model_dir)
    assert base_dir == auto_run["model_dir"]
    extractor = model_surgery.feature_extractor(model_io.load_keras(base_dir), cut_layer="relu2")
    assert extractor.output_shape[1:] == (8,)


def test_training_is_deterministic_for_a_seed(auto_run):
    fn_args = auto_run["fn_args"]
    config = TrainerConfig(image=SPEC, drop_top_layers=1, hidden_units=[4], dropout=0.2,
                           batch_size=8, epochs=3, seed=5)  # fmt: skip
    base_dir = trainer_data.resolve_base_model(fn_args.base_model)
    heads = [
        trainer.train(config, CLASSES, base_dir, fn_args.train_files, fn_args.eval_files).head
        for _ in range(2)
    ]
    for first, second in zip(heads[0].get_weights(), heads[1].get_weights(), strict=True):
        np.testing.assert_array_equal(first, second)


# --- fine-tuning -------------------------------------------------------------------------
def test_fine_tune_changes_only_the_unfrozen_layers(world, fine_tune_run):
    result = fine_tune_run["result"]
    assert result.fine_tune.layers == 1 and result.fine_tune.layer_names == ("conv2",)
    assert [phase.name for phase in result.phases] == ["head", "fine_tune"]
    assert result.phases[1].learning_rate == pytest.approx(0.001)
    base = world["base"]
    for name in ("conv1", "bn1", "bn2"):  # frozen: identical, BN moving stats included
        for before, after in zip(
            base.get_layer(name).get_weights(),
            result.extractor.get_layer(name).get_weights(),
            strict=True,
        ):
            np.testing.assert_array_equal(before, after)
    conv2_before = base.get_layer("conv2").get_weights()[0]
    conv2_after = result.extractor.get_layer("conv2").get_weights()[0]
    assert np.max(np.abs(conv2_after - conv2_before)) > 1e-4


def test_fine_tuned_export_equals_the_keras_classifier(world, fine_tune_run):
    exported = fine_tune_run["exported"]
    classifier = fine_tune_run["result"].classifier
    _assert_export_matches(exported.serving_model_dir, classifier, _eval_bytes(world))
    # TF Serving's warm-up file: both signatures on the first eval images, answering.
    warmup = serving_requests.warmup_path(exported.serving_model_dir)
    logs = list(serving_requests.read_prediction_logs(warmup))
    assert [log.predict_log.request.model_spec.signature_name for log in logs] == [
        model_io.IMAGES_SIGNATURE,
        model_io.SERVING_SIGNATURE,
    ]
    session = SessionModel(exported.serving_model_dir)
    for log in logs:
        response = session.predict(log.predict_log.request)
        probabilities = tf.make_ndarray(response.outputs[model_io.PROBABILITIES_OUTPUT])
        assert probabilities.shape == (min(trainer.WARMUP_IMAGES, len(_eval_bytes(world))), 3)
    session.close()
    with open(exported.reports["metrics"]) as f:
        metrics = json.load(f)
    assert metrics["fine_tune"]["unfrozen_layers"] == 1
    assert metrics["fine_tune"]["layer_names"] == ["conv2"]
    assert metrics["bottleneck_shape"] == [16, 16, 8]
    assert metrics["eval_accuracy"] == pytest.approx(exported.eval_accuracy)
    assert set(metrics["phases"]) == {"head", "fine_tune"}
