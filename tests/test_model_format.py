"""Tests of components.common.model_io: .keras round trips, cutting, and the serving SavedModel.

They prove the Keras decision (Keras 3, native .keras files for surgery, a SavedModel
with tf.function signatures for serving) on a tiny conv model with BatchNormalization.
"""

import io
import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from components.common import model_io
from components.common.examples import IMAGE_KEY
from components.common.model_io import (
    CLASS_NAMES_OUTPUT,
    CLASSES_OUTPUT,
    EXAMPLES_INPUT,
    IMAGES_INPUT,
    IMAGES_SIGNATURE,
    KERAS_MODEL_FILE,
    PROBABILITIES_OUTPUT,
    SERVING_SIGNATURE,
)
from components.common.preprocessing import ImageSpec

SPEC = ImageSpec(height=8, width=8, resize_method="area", scaling="symmetric")
CLASS_NAMES = ["cat", "dog", "fish"]
LAYER_NAMES = ["pixels", "conv1", "bn1", "relu1", "pool", "head"]


def _tiny_model() -> keras.Model:
    """8x8 RGB -> conv -> BatchNorm (non-trivial statistics) -> relu -> pool -> softmax."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3), name="pixels")
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv1")(inputs)
    x = keras.layers.BatchNormalization(name="bn1")(x)
    x = keras.layers.ReLU(name="relu1")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = keras.layers.Dense(len(CLASS_NAMES), activation="softmax", name="head")(x)
    model = keras.Model(inputs, outputs, name="tiny")
    gamma, beta = np.array([1.5, 0.5, 2.0, 1.0]), np.array([0.3, -0.2, 0.1, 0.0])
    mean, variance = np.array([0.1, -0.1, 0.2, 0.05]), np.array([2.0, 0.5, 1.5, 3.0])
    model.get_layer("bn1").set_weights([gamma, beta, mean, variance])
    return model


def _encode(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


def _images() -> list[bytes]:
    rng = np.random.default_rng(3)
    return [
        _encode(Image.fromarray(rng.integers(0, 256, (13, 9, 3), dtype=np.uint8)), "PNG"),
        _encode(Image.fromarray(rng.integers(0, 256, (20, 31, 3), dtype=np.uint8)), "JPEG"),
        _encode(Image.new("RGBA", (5, 5), (250, 10, 10, 128)), "PNG"),
    ]


def _example(image: bytes) -> bytes:
    feature = tf.train.Feature(bytes_list=tf.train.BytesList(value=[image]))
    features = tf.train.Features(feature={IMAGE_KEY: feature})
    return tf.train.Example(features=features).SerializeToString()


def _batch(rng_seed: int = 4) -> np.ndarray:
    return np.random.default_rng(rng_seed).normal(size=(5, 8, 8, 3)).astype(np.float32)


@pytest.fixture(scope="module")
def model() -> keras.Model:
    return _tiny_model()


@pytest.fixture(scope="module")
def exported(model, tmp_path_factory) -> str:
    export_dir = str(tmp_path_factory.mktemp("serving") / "1")
    assert model_io.export_serving_model(model, SPEC, CLASS_NAMES, export_dir) == export_dir
    return export_dir


def _expected(model: keras.Model, images: list[bytes]) -> np.ndarray:
    return model(SPEC.preprocess(tf.constant(images)), training=False).numpy()


# --- .keras files --------------------------------------------------------------------
def test_save_and_load_keras_round_trip(model, tmp_path):
    path = model_io.save_keras(model, str(tmp_path / "base"))
    assert path == str(tmp_path / "base" / KERAS_MODEL_FILE)
    assert os.listdir(tmp_path / "base") == [KERAS_MODEL_FILE]  # no temporary left over
    batch = _batch()
    for source in (path, str(tmp_path / "base")):
        loaded = model_io.load_keras(source)
        assert [layer.name for layer in loaded.layers] == LAYER_NAMES
        np.testing.assert_array_equal(loaded(batch).numpy(), model(batch).numpy())
    bn_weights = model_io.load_keras(path).get_layer("bn1").get_weights()
    np.testing.assert_array_equal(bn_weights[3], [2.0, 0.5, 1.5, 3.0])


def test_save_keras_overwrites_and_works_on_a_url_filesystem(model):
    directory = "ram://test_model_format/base"  # stands in for gs://: goes through gfile
    model_io.save_keras(keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]), directory)
    path = model_io.save_keras(model, directory)
    assert path == f"{directory}/{KERAS_MODEL_FILE}"
    assert tf.io.gfile.listdir(directory) == [KERAS_MODEL_FILE]
    batch = _batch(5)
    np.testing.assert_array_equal(model_io.load_keras(directory)(batch), model(batch))


def test_load_keras_names_what_it_looked_for(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"looked for {tmp_path / KERAS_MODEL_FILE}"):
        model_io.load_keras(str(tmp_path))
    missing = str(tmp_path / "nowhere.keras")
    with pytest.raises(FileNotFoundError, match=f"no Keras model at {missing}"):
        model_io.load_keras(missing)


# --- cut -------------------------------------------------------------------------------
def test_cut_gives_the_intermediate_output(model, tmp_path):
    batch = _batch(6)
    x = model.get_layer("conv1")(batch)
    x = model.get_layer("bn1")(x, training=False)
    expected = model.get_layer("relu1")(x).numpy()
    assert expected.min() == 0.0 and expected.max() > 0.0  # the relu really cut something
    loaded = model_io.load_keras(model_io.save_keras(model, str(tmp_path)))
    for source in (model, loaded):
        base = model_io.cut(source, "relu1")
        assert [layer.name for layer in base.layers] == LAYER_NAMES[:4]
        assert base.output_shape == (None, 8, 8, 4)
        np.testing.assert_allclose(base(batch).numpy(), expected, atol=1e-6)


def test_cut_shares_layers_with_the_original(model):
    base = model_io.cut(model, "pool")
    assert base.get_layer("conv1") is model.get_layer("conv1")


def test_cut_unknown_layer_lists_valid_names(model):
    with pytest.raises(ValueError, match=r"no layer named 'block9'.*layers: \['pixels', 'conv1'"):
        model_io.cut(model, "block9")


# --- serving SavedModel ---------------------------------------------------------------
def test_signatures_have_the_serving_names_and_shapes(exported, tf_serving):
    loaded = tf.saved_model.load(exported)
    assert set(loaded.signatures) == {SERVING_SIGNATURE, IMAGES_SIGNATURE}
    # The names TF Serving sees: the MetaGraph's signature_defs under the session loader.
    from components.serving_check.tf_serving_probe import SessionModel

    session = SessionModel(exported)
    assert {SERVING_SIGNATURE, IMAGES_SIGNATURE} <= set(session.signatures)
    assert set(session.signatures[IMAGES_SIGNATURE].inputs) == {IMAGES_INPUT}
    assert set(session.signatures[SERVING_SIGNATURE].inputs) == {EXAMPLES_INPUT}
    for name in (SERVING_SIGNATURE, IMAGES_SIGNATURE):
        outputs = set(session.signatures[name].outputs)
        assert outputs == {PROBABILITIES_OUTPUT, CLASSES_OUTPUT, CLASS_NAMES_OUTPUT}
    session.close()
    for name, input_name in ((SERVING_SIGNATURE, EXAMPLES_INPUT), (IMAGES_SIGNATURE, IMAGES_INPUT)):
        signature = loaded.signatures[name]
        _, inputs = signature.structured_input_signature
        assert inputs == {input_name: tf.TensorSpec([None], tf.string, name=input_name)}
        outputs = signature.structured_outputs
        assert outputs[PROBABILITIES_OUTPUT].shape.as_list() == [None, len(CLASS_NAMES)]
        assert outputs[CLASSES_OUTPUT].dtype == tf.string
        assert outputs[CLASS_NAMES_OUTPUT].shape.as_list() == [None, len(CLASS_NAMES)]


def test_both_signatures_equal_the_keras_model(model, exported, tf_serving):
    images = _images()
    expected = _expected(model, images)
    assert np.abs(expected - expected[0]).max() > 1e-4  # inputs really differ
    loaded = tf.saved_model.load(exported)
    by_bytes = loaded.signatures[IMAGES_SIGNATURE](**{IMAGES_INPUT: tf.constant(images)})
    examples = [_example(image) for image in images]
    by_example = loaded.signatures[SERVING_SIGNATURE](**{EXAMPLES_INPUT: tf.constant(examples)})
    results = [{k: v.numpy() for k, v in r.items()} for r in (by_bytes, by_example)]
    # The same through TF Serving's loader path (TF1 session, signature_def names).
    results.append(tf_serving(exported, IMAGES_SIGNATURE, {IMAGES_INPUT: images}))
    results.append(tf_serving(exported, SERVING_SIGNATURE, {EXAMPLES_INPUT: examples}))
    for result in results:
        assert np.abs(result[PROBABILITIES_OUTPUT] - expected).max() < 1e-5
        top = [CLASS_NAMES[i].encode() for i in expected.argmax(axis=1)]
        assert list(result[CLASSES_OUTPUT]) == top
        names = [[n.encode() for n in CLASS_NAMES]] * len(images)
        assert result[CLASS_NAMES_OUTPUT].tolist() == names


def test_bad_bytes_raise_invalid_argument(exported, tf_serving):
    loaded = tf.saved_model.load(exported)
    images = [_images()[0], b"not an image"]
    with pytest.raises(tf.errors.InvalidArgumentError, match="Unknown image file format"):
        loaded.signatures[IMAGES_SIGNATURE](**{IMAGES_INPUT: tf.constant(images)})
    with pytest.raises(tf.errors.InvalidArgumentError):
        loaded.signatures[SERVING_SIGNATURE](**{EXAMPLES_INPUT: tf.constant([b"\x01junk"])})
    with pytest.raises(tf.errors.InvalidArgumentError, match="Unknown image file format"):
        tf_serving(exported, IMAGES_SIGNATURE, {IMAGES_INPUT: images})
    with pytest.raises(tf.errors.InvalidArgumentError):
        tf_serving(exported, SERVING_SIGNATURE, {EXAMPLES_INPUT: [b"\x01junk"]})


def test_export_rejects_a_classifier_that_contradicts_the_spec(model, tmp_path):
    with pytest.raises(ValueError, match="outputs 3 classes but 2 class names"):
        model_io.export_serving_model(model, SPEC, ["a", "b"], str(tmp_path / "a"))
    with pytest.raises(ValueError, match=r"input shape \(8, 8, 3\) does not match .* \(9, 8, 3\)"):
        model_io.export_serving_model(model, ImageSpec(9, 8), CLASS_NAMES, str(tmp_path / "b"))
    with pytest.raises(ValueError, match="non-empty and unique"):
        model_io.export_serving_model(model, SPEC, ["a", "a", "b"], str(tmp_path / "c"))


_FRESH_PROCESS = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import tensorflow as tf

    export_dir, images_json, out_path = sys.argv[1:]
    images = [bytes.fromhex(h) for h in json.load(open(images_json))]
    example = lambda b: tf.train.Example(features=tf.train.Features(feature={
        "image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b]))}))
    examples = [example(b).SerializeToString() for b in images]
    # TF Serving's path: a TF1 session, the saver restore, signature_def tensor names.
    graph = tf.Graph()
    with graph.as_default(), tf.compat.v1.Session(graph=graph) as sess:
        meta = tf.compat.v1.saved_model.loader.load(sess, ["serve"], export_dir)
        def run(name, key, values):
            sig = meta.signature_def[name]
            fetch = {k: t.name for k, t in sig.outputs.items()}
            return sess.run(fetch, {sig.inputs[key].name: np.array(values, dtype=object)})
        by_bytes = run("predict_images", "images", images)
        by_example = run("serving_default", "examples", examples)
    loaded = tf.saved_model.load(export_dir)
    revived = loaded.signatures["predict_images"](images=tf.constant(images))
    project_modules = {"pipeline", "components"} & set(sys.modules)
    assert not project_modules, f"project code was imported: {project_modules}"
    np.savez(out_path, by_bytes=by_bytes["probabilities"],
             by_example=by_example["probabilities"],
             revived=revived["probabilities"].numpy(),
             classes=by_bytes["classes"].astype(str))
    """
)


def test_export_loads_in_a_fresh_process_without_project_code(model, exported, tmp_path):
    images = _images()
    images_json = tmp_path / "images.json"
    images_json.write_text(json.dumps([image.hex() for image in images]))
    out_path = tmp_path / "out.npz"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    command = [sys.executable, "-c", _FRESH_PROCESS, exported, str(images_json), str(out_path)]
    result = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = np.load(out_path)
    expected = _expected(model, images)
    assert np.abs(out["by_bytes"] - expected).max() < 1e-5
    assert np.abs(out["by_example"] - expected).max() < 1e-5
    assert np.abs(out["revived"] - expected).max() < 1e-5
    assert list(out["classes"]) == [CLASS_NAMES[i] for i in expected.argmax(axis=1)]
