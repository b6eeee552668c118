"""End to end, the whole DAG: ingest -> ... -> BottleneckCache -> Trainer -> Evaluator
-> Pusher on a small copy of the demo data (LocalDagRunner, SQLite metadata).

Checks what a user relies on: a blessed model is pushed in TF Serving's layout and
answers a TF-Serving-shaped PredictRequest; a second run with nothing changed
recomputes and pushes nothing; a worse model is blocked by the no-regression gate.
"""

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2

from components.common import model_io, serving_requests
from components.serving_check.tf_serving_probe import SessionModel
from pipeline import predict
from pipeline.config import config_from_dict
from pipeline.local_runner import run_local
from pipeline.run_summary import latest_run

pytestmark = pytest.mark.e2e

TRAINED = {"BaseModelGen", "BottleneckCache", "Trainer", "Evaluator", "ServingCheck", "Pusher"}


def _config(root, training, min_accuracy=0.5):
    return config_from_dict(
        {
            "pipeline_name": "full-e2e",
            "pipeline_root": str(root / "runs"),
            "schema": str(root / "schema.pbtxt"),
            "data": {
                "root": str(root / "demo" / "target"),
                "train_ratio": 0.5,
                "min_train_per_class": 2,
            },
            "image": {"height": 16, "width": 16},
            "base_model": {
                "kind": "builtin",
                "name": "small_cnn",
                "cut_layer": "block2_pool",
                "pooling": "flatten",
            },
            "training": {"fine_tune": "off", "batch_size": 8, "seed": 1, **training},
            "evaluation": {"min_accuracy": min_accuracy},
            "serving": {"model_name": "digits", "root": str(root / "serving")},
        }
    )


GOOD = {"learning_rate": 0.01, "epochs": 25, "early_stopping_patience": 25}
WORSE = {"learning_rate": 1e-6, "epochs": 1}


@pytest.fixture(scope="module")
def first(tmp_path_factory, demo_with_schema):
    root = demo_with_schema(tmp_path_factory.mktemp("full"))
    config = _config(root, GOOD)
    run_local(config)
    return root, config, latest_run(config.metadata_file, config.pipeline_name)


def test_first_run_trains_blesses_and_pushes(first):
    _, config, summary = first
    assert TRAINED <= set(summary.ran()), summary.states
    assert "FAILED" not in summary.states.values(), summary.states  # resolvers included
    assert summary.cache_counts["vectors_computed"] == summary.ingest_counts["ingested"] == 50
    assert summary.evaluation_verdict() == "blessed"
    assert summary.serving_verdict().startswith("servable: 6 requests answered"), summary
    pushed = summary.pushed_destination
    assert pushed and os.path.dirname(pushed) == os.path.join(config.serving.root, "digits")
    assert os.path.basename(pushed).isdigit()  # <model_name>/<version>/ for TF Serving


def test_pushed_model_answers_a_tf_serving_predict_request(first):
    root, config, _ = first
    model_dir = predict.latest_version_dir(config.serving.root, "digits")
    folder = root / "demo" / "target" / "7"
    images = [(folder / name).read_bytes() for name in sorted(os.listdir(folder))[:3]]
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "digits"
    request.model_spec.signature_name = model_io.IMAGES_SIGNATURE
    request.inputs[model_io.IMAGES_INPUT].CopyFrom(tf.make_tensor_proto(images))
    # What TF Serving does with it: a TF1 session on the pushed SavedModel, the
    # request's tensors fed to the signature_def's tensor names.
    model = SessionModel(model_dir)
    response = model.predict(request)
    probabilities = tf.make_ndarray(response.outputs[model_io.PROBABILITIES_OUTPUT])
    assert probabilities.shape == (3, 5)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert tf.make_ndarray(response.outputs[model_io.CLASS_NAMES_OUTPUT])[0].tolist() == [
        str(c).encode() for c in range(5, 10)
    ]
    with pytest.raises(tf.errors.InvalidArgumentError):
        model.run(model_io.IMAGES_SIGNATURE, {model_io.IMAGES_INPUT: np.array([b"x"], object)})
    # Better than chance on every target image (chance: 0.2), through TF Serving's path.
    target = root / "demo" / "target"
    paths = sorted(p for p in target.glob("*/*.png"))
    answer = model.run(
        model_io.IMAGES_SIGNATURE,
        {model_io.IMAGES_INPUT: np.array([p.read_bytes() for p in paths], dtype=object)},
    )
    predicted = [c.decode() for c in answer[model_io.CLASSES_OUTPUT]]
    accuracy = np.mean([name == p.parent.name for name, p in zip(predicted, paths, strict=True)])
    assert accuracy > 0.4, accuracy
    model.close()


@pytest.mark.parametrize("signature", [model_io.IMAGES_SIGNATURE, model_io.SERVING_SIGNATURE])
def test_saved_model_cli_runs_the_pushed_model(first, tmp_path, signature):
    """TensorFlow's own tool, as a user would check a pushed version by hand."""
    root, config, _ = first
    model_dir = predict.latest_version_dir(config.serving.root, "digits")
    image = root / "demo" / "target" / "5" / sorted(os.listdir(root / "demo" / "target" / "5"))[0]
    value, key = image.read_bytes(), model_io.IMAGES_INPUT
    if signature == model_io.SERVING_SIGNATURE:
        value, key = serving_requests.image_example(value), model_io.EXAMPLES_INPUT
    np.save(tmp_path / "one.npy", np.array([value], dtype=object))
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    command = [cli, "run", "--dir", model_dir, "--tag_set", "serve", "--signature_def"]
    command += [signature, "--inputs", f"{key}={tmp_path / 'one.npy'}"]
    command += ["--outdir", str(tmp_path / "out")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    probabilities = np.load(tmp_path / "out" / f"{model_io.PROBABILITIES_OUTPUT}.npy")
    assert probabilities.shape == (1, 5)
    np.testing.assert_allclose(probabilities.sum(), 1.0, atol=1e-5)


def test_unchanged_runs_recompute_and_push_nothing(first):
    _, config, summary = first
    versions = os.listdir(os.path.join(config.serving.root, "digits"))
    run_local(config)
    second = latest_run(config.metadata_file, config.pipeline_name)
    # Nothing is recomputed: not ingestion, bottlenecks, training or evaluation (the
    # baseline excludes the candidate itself, so it is the same as in the first run),
    # and Pusher publishes nothing new.
    assert set(second.ran()) <= {"latest_blessed_model_resolver"}, second.states
    assert "FAILED" not in second.states.values(), second.states
    assert {"ImageExampleGen", "BottleneckCache", "Trainer", "Evaluator", "Pusher"} <= set(
        second.cached()
    )
    assert os.listdir(os.path.join(config.serving.root, "digits")) == versions
    assert second.pushed_destination == summary.pushed_destination


def test_a_worse_model_is_not_pushed(first):
    root, config, _ = first
    versions = os.listdir(os.path.join(config.serving.root, "digits"))
    worse = _config(root, WORSE, min_accuracy=0.99)  # a floor no model here reaches
    run_local(worse)
    summary = latest_run(worse.metadata_file, worse.pipeline_name)
    assert "Trainer" in summary.ran() and "BottleneckCache" in summary.cached()
    assert "FAILED" not in summary.states.values(), summary.states
    verdict = summary.evaluation_verdict()
    assert verdict.startswith("not blessed") and "against the served" in verdict, verdict
    assert "is below the required minimum 0.9900" in verdict, verdict
    assert summary.pushed_destination is None
    assert os.listdir(os.path.join(config.serving.root, "digits")) == versions


def test_the_transfer_benchmark_finds_the_runs_inputs(first):
    """What `make demo`'s closing table reads from a pipeline run (bench/transfer_vs_scratch)."""
    from bench import transfer_vs_scratch

    _, config, _ = first
    inputs = transfer_vs_scratch.find_inputs(config.metadata_file, config.pipeline_name)
    assert inputs.class_names == tuple(str(c) for c in range(5, 10))
    assert os.path.exists(os.path.join(inputs.base_model, "model.keras"))
    assert inputs.bottleneck_train and inputs.examples_eval
