"""End to end with a base pretrained without labels: UnlabelledExampleGen ->
LayerwisePretrainer -> BottleneckCache -> Trainer -> Evaluator -> Pusher, on a small
copy of the demo data (LocalDagRunner, SQLite metadata)."""

import glob
import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from components.common import model_io
from components.layerwise_pretrainer import spec as layerwise_spec
from pipeline import predict
from pipeline.config import config_from_dict
from pipeline.local_runner import run_local
from pipeline.run_summary import latest_run

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def run(tmp_path_factory, demo_with_schema):
    root = demo_with_schema(tmp_path_factory.mktemp("layerwise_e2e"))
    unlabelled = root / "unlabelled"  # 120 of the 646 unlabelled images: a faster test
    unlabelled.mkdir()
    for name in sorted(os.listdir(root / "demo" / "unlabelled"))[:120]:
        shutil.copy(root / "demo" / "unlabelled" / name, unlabelled / name)
    config = config_from_dict(
        {
            "pipeline_name": "layerwise-e2e",
            "pipeline_root": str(root / "runs"),
            "schema": str(root / "schema.pbtxt"),
            "data": {
                "root": str(root / "demo" / "target"),
                "train_ratio": 0.5,
                "min_train_per_class": 2,
            },
            "image": {"height": 16, "width": 16},
            "base_model": {
                "kind": "layerwise_pretrain",
                "cut_layer": "block2_pool",
                "pooling": "flatten",
                "layerwise": {
                    "data_root": str(unlabelled),
                    "conv_blocks": [{"filters": 8}, {"filters": 16}],
                    "epochs_per_layer": 2,
                    "batch_size": 64,
                    "learning_rate": 0.005,
                },
            },
            "training": {
                "fine_tune": "off",
                "batch_size": 8,
                "learning_rate": 0.01,
                "epochs": 20,
                "early_stopping_patience": 20,
            },
            "evaluation": {"min_accuracy": 0.3},  # chance is 0.2
            "serving": {"model_name": "digits", "root": str(root / "serving")},
        }
    )
    run_local(config)
    return root, config, latest_run(config.metadata_file, config.pipeline_name)


def test_the_layerwise_base_replaces_base_model_gen_and_a_model_is_pushed(run):
    _, config, summary = run
    ran = set(summary.ran())
    assert {"UnlabelledExampleGen", "LayerwisePretrainer", "BottleneckCache", "Trainer"} <= ran
    assert "BaseModelGen" not in summary.states
    assert "FAILED" not in summary.states.values(), summary.states
    assert summary.evaluation_verdict() == "blessed"
    assert summary.pushed_destination
    assert os.path.dirname(summary.pushed_destination) == os.path.join(
        config.serving.root, "digits"
    )


def test_the_pretrainer_trained_on_unlabelled_images_and_wrote_its_reports(run):
    _, config, _ = run
    [model_dir] = glob.glob(os.path.join(config.pipeline_dir, "LayerwisePretrainer", "model", "*"))
    encoder = model_io.load_keras(model_dir)
    assert [layer.name for layer in encoder.layers] == [
        "image",
        "block1_conv",
        "block1_pool",
        "block2_conv",
        "block2_pool",
    ]
    reports = os.path.join(model_dir, layerwise_spec.REPORTS_DIR)
    with open(os.path.join(reports, layerwise_spec.HISTORY_FILE)) as f:
        layers = json.load(f)["layers"]
    assert [layer["name"] for layer in layers] == ["block1", "block2"]
    assert all(layer["loss"][-1] < layer["loss"][0] for layer in layers)
    for name in (layerwise_spec.LOSS_PLOT_FILE, layerwise_spec.GRID_FILE):
        assert os.path.getsize(os.path.join(reports, name)) > 1000


def test_the_pushed_model_classifies_raw_image_bytes(run, tf_serving):
    root, config, _ = run
    model_dir = predict.latest_version_dir(config.serving.root, "digits")
    folder = root / "demo" / "target" / "8"
    images = [(folder / name).read_bytes() for name in sorted(os.listdir(folder))[:2]]
    signature = tf.saved_model.load(model_dir).signatures[model_io.IMAGES_SIGNATURE]
    probabilities = signature(**{model_io.IMAGES_INPUT: tf.constant(images)})[
        model_io.PROBABILITIES_OUTPUT
    ].numpy()
    assert probabilities.shape == (2, 5)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    # The same answer the way TF Serving loads the model (TF1 session).
    served = tf_serving(model_dir, model_io.IMAGES_SIGNATURE, {model_io.IMAGES_INPUT: images})
    np.testing.assert_allclose(served[model_io.PROBABILITIES_OUTPUT], probabilities, atol=1e-5)
