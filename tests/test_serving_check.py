"""ServingCheck and the TF Serving loader path, on a tiny exported model.

The served model must answer when loaded the way TF Serving loads it (TF1 session,
the MetaGraph's saver, signature_def tensor names), not only through
tf.saved_model.load. These tests export with the project's one export function and
load with that path; they also export a model the old way (a Keras 3 model held by a
tf.Module, saved with tf.saved_model.save), which loads but cannot answer under TF
Serving, and show that ServingCheck refuses it and that Pusher then pushes nothing.
"""

import io
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from tfx.proto import pusher_pb2
from tfx.types import standard_artifacts
from tfx.utils import proto_utils

from components.common import model_io, serving_requests
from components.common.examples import IMAGE_KEY
from components.common.preprocessing import ImageSpec
from components.idempotent_pusher.executor import Executor as PusherExecutor
from components.serving_check import check
from components.serving_check.component import ServingCheck

SPEC = ImageSpec(height=8, width=8, scaling="unit")
CLASSES = ["a", "b", "c"]


def _classifier() -> keras.Model:
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="head")(x))


def _images(n=3) -> list[bytes]:
    out = []
    for i in range(n):
        buffer = io.BytesIO()
        Image.new("RGB", (5 + i, 7), (40 * i, 200 - 30 * i, 90)).save(buffer, "PNG")
        out.append(buffer.getvalue())
    return out


class _OldServingModule(tf.Module):
    """How the project exported before: the Keras 3 model as a tf.Module attribute."""

    def __init__(self, classifier):
        super().__init__()
        self.classifier = classifier

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="images")])
    def predict_images(self, images):
        return {"probabilities": self.classifier(SPEC.preprocess(images), training=False)}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    classifier = _classifier()
    good = model_io.export_serving_model(
        classifier, SPEC, CLASSES, str(root / "good"), warmup_images=_images(2)
    )
    old = str(root / "old")
    module = _OldServingModule(classifier)
    tf.saved_model.save(
        module, old, signatures={"predict_images": module.predict_images.get_concrete_function()}
    )
    return good, old


def test_both_signatures_answer_under_tf_serving_loader_as_under_tf2_load(exported, tf_serving):
    good, _ = exported
    images = _images()
    loaded = tf.saved_model.load(good)
    by_bytes = tf_serving(good, model_io.IMAGES_SIGNATURE, {model_io.IMAGES_INPUT: images})
    examples = [serving_requests.image_example(i) for i in images]
    by_examples = tf_serving(good, model_io.SERVING_SIGNATURE, {model_io.EXAMPLES_INPUT: examples})
    expected = loaded.signatures[model_io.IMAGES_SIGNATURE](images=tf.constant(images))
    for answer in (by_bytes, by_examples):
        probabilities = answer[model_io.PROBABILITIES_OUTPUT]
        assert probabilities.shape == (3, 3)
        np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-6)
        np.testing.assert_allclose(probabilities, expected["probabilities"].numpy(), atol=1e-6)
        assert answer[model_io.CLASS_NAMES_OUTPUT].tolist() == [[b"a", b"b", b"c"]] * 3
    with pytest.raises(tf.errors.InvalidArgumentError):
        tf_serving(good, model_io.IMAGES_SIGNATURE, {model_io.IMAGES_INPUT: [b"not an image"]})


def test_an_empty_batch_answers_empty_outputs_for_both_signatures(exported, tf_serving):
    good, _ = exported
    for signature, key in (
        (model_io.IMAGES_SIGNATURE, model_io.IMAGES_INPUT),
        (model_io.SERVING_SIGNATURE, model_io.EXAMPLES_INPUT),
    ):
        answer = tf_serving(good, signature, {key: np.array([], dtype=object)})
        assert answer[model_io.PROBABILITIES_OUTPUT].shape == (0, 3)
        assert answer[model_io.CLASSES_OUTPUT].shape == (0,)
        assert answer[model_io.CLASS_NAMES_OUTPUT].shape == (0, 3)


def test_the_old_export_loads_but_cannot_answer_under_tf_serving_loader(exported, tf_serving):
    _, old = exported
    # tf.saved_model.load revives the Python objects and hides the bug ...
    revived = tf.saved_model.load(old).signatures["predict_images"](images=tf.constant(_images()))
    assert revived["probabilities"].shape == (3, 3)
    # ... TF Serving's loader does not.
    with pytest.raises(tf.errors.FailedPreconditionError, match="Could not find variable"):
        tf_serving(old, "predict_images", {"images": _images()})


def test_warmup_file_parses_as_tf_serving_reads_it_and_each_record_answers(exported, tf_serving):
    good, _ = exported
    path = os.path.join(good, "assets.extra", "tf_serving_warmup_requests")
    logs = [
        # TF Serving reads the file as TFRecords of PredictionLog protos.
        serving_requests.prediction_log_pb2.PredictionLog.FromString(r)
        for r in tf.data.TFRecordDataset([path]).as_numpy_iterator()
    ]
    assert [log.predict_log.request.model_spec.signature_name for log in logs] == [
        model_io.IMAGES_SIGNATURE,
        model_io.SERVING_SIGNATURE,
    ]
    for log in logs:
        request = log.predict_log.request
        inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
        answer = tf_serving(good, request.model_spec.signature_name, inputs)
        assert answer[model_io.PROBABILITIES_OUTPUT].shape == (2, 3)
        np.testing.assert_allclose(answer[model_io.PROBABILITIES_OUTPUT].sum(axis=1), 1, atol=1e-6)


def test_check_passes_a_servable_model(exported, tmp_path):
    good, _ = exported
    result = check.check_servable(good, _images(), str(tmp_path))
    assert result.servable, result.reason
    assert result.requests == 6 and result.warmup_records == 2
    assert result.max_abs_diff <= check.TOLERANCE
    report = json.loads((tmp_path / check.REPORT_FILE).read_text())
    assert report["project_modules"] == []  # the probe ran none of the project's code
    assert report["signatures"] == [model_io.IMAGES_SIGNATURE, model_io.SERVING_SIGNATURE]


def test_check_refuses_the_old_export(exported, tmp_path):
    _, old = exported
    result = check.check_servable(old, _images(), str(tmp_path))
    assert not result.servable
    assert "fails under TF Serving's loader" in result.reason
    assert "Could not find variable" in result.reason


def test_check_refuses_a_failing_warmup_record(exported, tmp_path):
    good, _ = exported
    broken = tmp_path / "broken"
    _copy_tree(good, str(broken))
    request = serving_requests.predict_request(model_io.IMAGES_SIGNATURE, [b"not an image"])
    serving_requests.write_prediction_logs(serving_requests.warmup_path(str(broken)), [request])
    result = check.check_servable(str(broken), _images(), str(tmp_path / "work"))
    assert not result.servable
    assert "TF Serving would refuse to load this version" in result.reason


def test_check_refuses_a_directory_that_is_no_model(tmp_path):
    result = check.check_servable(str(tmp_path), _images(), str(tmp_path / "work"))
    assert not result.servable
    assert result.reason.startswith("TF Serving's loader cannot load the model")


def _copy_tree(source: str, target: str) -> None:
    for root, _, names in os.walk(source):
        relative = os.path.relpath(root, source)
        os.makedirs(os.path.join(target, relative), exist_ok=True)
        for name in names:
            tf.io.gfile.copy(os.path.join(root, name), os.path.join(target, relative, name))


def _eval_examples(tmp_path) -> standard_artifacts.Examples:
    examples = standard_artifacts.Examples()
    examples.uri = str(tmp_path / "examples")
    examples.split_names = '["train", "eval"]'
    os.makedirs(tmp_path / "examples" / "Split-eval")
    path = str(tmp_path / "examples" / "Split-eval" / "data.gz")
    with tf.io.TFRecordWriter(path, options="GZIP") as writer:
        for image in _images():
            feature = tf.train.Feature(bytes_list=tf.train.BytesList(value=[image]))
            example = tf.train.Example(features=tf.train.Features(feature={IMAGE_KEY: feature}))
            writer.write(example.SerializeToString())
    return examples


def _model_artifact(tmp_path, saved_model_dir) -> standard_artifacts.Model:
    model = standard_artifacts.Model()
    model.uri = str(tmp_path / "model")
    _copy_tree(saved_model_dir, str(tmp_path / "model" / "Format-Serving"))
    return model


@pytest.mark.parametrize("which", ["good", "old"])
def test_component_blessing_decides_what_pusher_pushes(exported, tmp_path, which):
    good, old = exported
    model = _model_artifact(tmp_path, good if which == "good" else old)
    blessing = standard_artifacts.InfraBlessing()
    blessing.uri = str(tmp_path / "blessing")
    executor = ServingCheck.EXECUTOR_SPEC.executor_class()
    executor.Do(
        {"model": [model], "examples": [_eval_examples(tmp_path)]},
        {"blessing": [blessing]},
        {"num_examples": 8, "timeout_seconds": 600},
    )
    servable = which == "good"
    assert blessing.get_int_custom_property("blessed") == int(servable)
    marker = "INFRA_BLESSED" if servable else "INFRA_NOT_BLESSED"
    assert (tmp_path / "blessing" / marker).exists()
    assert json.loads((tmp_path / "blessing" / "serving_check.json").read_text())["servable"] is (
        servable
    )
    # The standard Pusher (our idempotent one) reads the InfraBlessing.
    model_blessing = standard_artifacts.ModelBlessing()
    model_blessing.uri = str(tmp_path / "model_blessing")
    model_blessing.set_int_custom_property("blessed", 1)
    pushed = standard_artifacts.PushedModel()
    pushed.uri = str(tmp_path / "pushed")
    destination = pusher_pb2.PushDestination(
        filesystem=pusher_pb2.PushDestination.Filesystem(
            base_directory=str(tmp_path / "serving" / "m")
        )
    )
    PusherExecutor().Do(
        {"model": [model], "model_blessing": [model_blessing], "infra_blessing": [blessing]},
        {"pushed_model": [pushed]},
        {"push_destination": proto_utils.proto_to_json(destination), "custom_config": None},
    )
    assert pushed.get_int_custom_property("pushed") == int(servable)
    versions = (
        os.listdir(tmp_path / "serving" / "m") if (tmp_path / "serving" / "m").exists() else []
    )
    assert len(versions) == int(servable)


def test_a_request_over_the_limits_is_an_invalid_argument(exported, tf_serving):
    good, _ = exported
    # A PNG whose header declares 10000 x 10000 pixels is refused before any decoding.
    bomb = _images(1)[0][:16] + (10000).to_bytes(4, "big") * 2 + _images(1)[0][24:]
    with pytest.raises(tf.errors.InvalidArgumentError, match="declares more than 50000000"):
        tf_serving(good, model_io.IMAGES_SIGNATURE, {model_io.IMAGES_INPUT: [bomb]})
    too_many = _images(1) * (model_io.MAX_IMAGES_PER_REQUEST + 1)
    with pytest.raises(tf.errors.InvalidArgumentError, match="too many images in one request"):
        tf_serving(good, model_io.IMAGES_SIGNATURE, {model_io.IMAGES_INPUT: too_many})
    answer = tf_serving(good, model_io.IMAGES_SIGNATURE, {model_io.IMAGES_INPUT: too_many[:-1]})
    assert answer[model_io.PROBABILITIES_OUTPUT].shape == (model_io.MAX_IMAGES_PER_REQUEST, 3)
