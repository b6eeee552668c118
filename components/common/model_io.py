"""Model formats: native ``.keras`` files for surgery, a TF SavedModel for serving.

- ``save_keras`` / ``load_keras`` / ``keras_model_path``: ``<directory>/model.keras``
  (KERAS_MODEL_FILE), the form of every base and of the Trainer's Model artifact;
  written atomically, local or a tf.io.gfile URL; loaded uncompiled by default. The
  file keeps layer names and the graph of layers, so ``cut`` can take the sub-model up
  to a named layer (layers and weights shared with the original).
- ``export_serving_model``: the served and evaluated model, a TF SavedModel written by
  Keras 3's ``keras.export.ExportArchive``, with two signatures: SERVING_SIGNATURE
  (``serving_default``: serialized tf.Examples, input "examples"; what TFMA's Evaluator
  and TF Serving's default use) and IMAGES_SIGNATURE (``predict_images``: raw encoded
  image bytes of any accepted format and size, input "images"). Both return
  ``{"probabilities": float32 [batch, classes], "classes": string [batch] (top-1 class
  name), "class_names": string [batch, classes]}``; an empty batch gets empty outputs.
  Decoding, resizing and scaling inside it are ``ImageSpec.preprocess``
  (``components.common.preprocessing``): the same code Transform ran. A request of
  more than MAX_IMAGES_PER_REQUEST images, or with an image whose header declares more
  than MAX_PIXELS_PER_IMAGE pixels, fails with InvalidArgument. Optionally TF Serving's
  warm-up file (``components.common.serving_requests``). It loads the TF Serving way
  (TF1 session, the MetaGraph's saver, signature_def tensor names) as well as with
  ``tf.saved_model.load``, and needs no Python code to load.

Project code imports ``keras`` (Keras 3) and never ``tf.keras``. Why Keras 3, ``.keras``
files and the export archive: docs/ARCHITECTURE.md, "Decision: Keras 3, `.keras` for
models to operate on, SavedModel for serving".
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Sequence

import keras
import tensorflow as tf

from components.common import preprocessing
from components.common.artifact_io import join
from components.common.examples import IMAGE_KEY
from components.common.preprocessing import ImageSpec

KERAS_MODEL_FILE = "model.keras"

SERVING_SIGNATURE = "serving_default"
IMAGES_SIGNATURE = "predict_images"
EXAMPLES_INPUT = "examples"
IMAGES_INPUT = "images"
PROBABILITIES_OUTPUT = "probabilities"
CLASSES_OUTPUT = "classes"
# Every class name, per row ([batch, classes], aligned with probabilities): TF Serving's
# row format needs every output batched, and clients need the names for a top-k.
CLASS_NAMES_OUTPUT = "class_names"


# --- .keras files --------------------------------------------------------------------
def save_keras(model: keras.Model, directory: str) -> str:
    """Writes ``<directory>/model.keras`` atomically; works for gs:// directories.

    The model is saved to a local temporary file, copied next to the destination under
    a unique temporary name, then renamed over ``model.keras``, so readers never see a
    half-written file.

    Args:
        model: a Keras 3 model.
        directory: the destination folder (created if missing); local or a URL that
            tf.io.gfile understands.

    Returns:
        The path of the written file.
    """
    tf.io.gfile.makedirs(directory)
    final_path = join(directory, KERAS_MODEL_FILE)
    partial_path = join(directory, f".{KERAS_MODEL_FILE}.{uuid.uuid4().hex}.tmp")
    with tempfile.TemporaryDirectory() as local_dir:
        local_path = os.path.join(local_dir, KERAS_MODEL_FILE)
        model.save(local_path)
        tf.io.gfile.copy(local_path, partial_path, overwrite=True)
    try:
        tf.io.gfile.rename(partial_path, final_path, overwrite=True)
    finally:
        if tf.io.gfile.exists(partial_path):
            tf.io.gfile.remove(partial_path)
    return final_path


def keras_model_path(path_or_dir: str) -> str:
    """The .keras file: path_or_dir itself, or model.keras inside it when a directory.

    Raises:
        FileNotFoundError: neither exists; the message names what was looked for.
    """
    if tf.io.gfile.isdir(path_or_dir):
        path = join(path_or_dir, KERAS_MODEL_FILE)
        if not tf.io.gfile.exists(path):
            raise FileNotFoundError(
                f"no {KERAS_MODEL_FILE} in directory {path_or_dir} (looked for {path})"
            )
        return path
    if not tf.io.gfile.exists(path_or_dir):
        raise FileNotFoundError(
            f"no Keras model at {path_or_dir}: expected a {KERAS_MODEL_FILE} file or a "
            f"directory containing {KERAS_MODEL_FILE}"
        )
    return path_or_dir


def load_keras(
    path_or_dir: str, *, custom_objects: dict | None = None, compile: bool = False
) -> keras.Model:
    """Loads a native ``.keras`` model (a file, or a directory holding model.keras).

    Args:
        path_or_dir: the file or its directory; local or a tf.io.gfile URL (copied to a
            local temporary file first).
        custom_objects: custom layers and functions the model refers to.
        compile: restore the training configuration too. Off by default: loaded models
            are cut, frozen and recompiled by the caller.

    Returns:
        The Keras 3 model.

    Raises:
        FileNotFoundError: naming the path looked for.
    """
    path = keras_model_path(path_or_dir)
    with tempfile.TemporaryDirectory() as local_dir:
        local_path = os.path.join(local_dir, KERAS_MODEL_FILE)
        tf.io.gfile.copy(path, local_path, overwrite=True)
        return keras.models.load_model(local_path, custom_objects=custom_objects, compile=compile)


# --- surgery ------------------------------------------------------------------------
def cut(model: keras.Model, layer_name: str) -> keras.Model:
    """The sub-model from the model's inputs up to (and including) a named layer.

    The returned model shares its layers (and weights) with ``model``: freezing or
    training one changes the other.

    Args:
        model: a functional (or built Sequential) Keras model.
        layer_name: name of a top-level layer of ``model``.

    Returns:
        keras.Model with ``model.inputs`` as inputs and the layer's output as output,
        named "<model name>_to_<layer name>".

    Raises:
        ValueError: unknown layer name (the message lists the valid names), or a model
            without defined inputs.
    """
    names = [layer.name for layer in model.layers]
    if layer_name not in names:
        raise ValueError(f"no layer named {layer_name!r} in model {model.name!r}; layers: {names}")
    try:
        inputs = model.input  # keeps the structure: one tensor, a list or a dict
    except (AttributeError, ValueError) as error:  # e.g. a Sequential never built
        raise ValueError(f"model {model.name!r} has no defined inputs; build it first") from error
    outputs = model.get_layer(layer_name).output
    return keras.Model(inputs=inputs, outputs=outputs, name=f"{model.name}_to_{layer_name}")


# --- the serving SavedModel ------------------------------------------------------------
# Bounds of one request to the served model, so one request cannot exhaust the
# server's memory: images are decoded one at a time (only a GIF's first frame), so the
# peak is about one image of MAX_PIXELS_PER_IMAGE as float32 RGB (600 MB) plus the
# batch of resized images. Larger requests are an InvalidArgument error.
MAX_IMAGES_PER_REQUEST = 1024
MAX_PIXELS_PER_IMAGE = 50_000_000  # as the ingest default (data.max_pixels)


def _check_request(encoded_images: tf.Tensor) -> list:
    """Assertions (InvalidArgument when violated) on the request's size and pixels."""
    batch = tf.size(encoded_images, out_type=tf.int64)
    pixels = tf.map_fn(
        preprocessing.header_pixels,
        encoded_images,
        fn_output_signature=tf.TensorSpec([], tf.int64),
    )
    largest = tf.reduce_max(tf.concat([pixels, tf.zeros([1], tf.int64)], 0))
    return [
        tf.debugging.assert_less_equal(
            batch,
            tf.constant(MAX_IMAGES_PER_REQUEST, tf.int64),
            message=f"too many images in one request; send at most {MAX_IMAGES_PER_REQUEST}",
        ),
        tf.debugging.assert_less_equal(
            largest,
            tf.constant(MAX_PIXELS_PER_IMAGE, tf.int64),
            message=f"an image declares more than {MAX_PIXELS_PER_IMAGE} pixels; downscale it",
        ),
    ]


def _serving_endpoints(classifier: keras.Model, image_spec: ImageSpec, class_names: Sequence[str]):
    """(predict_images, serve_examples): plain functions over the classifier.

    Decoding, resizing and scaling are ``image_spec.preprocess`` (the code Transform
    ran). An empty batch answers with empty outputs of the right shapes instead of
    running the network on zero images (some kernels reject a zero-sized batch).
    """
    names = tf.constant(list(class_names), dtype=tf.string)
    num_classes = len(class_names)

    def predict(encoded_images: tf.Tensor) -> dict[str, tf.Tensor]:
        batch = tf.shape(encoded_images)[0]

        def classify():
            with tf.control_dependencies(_check_request(encoded_images)):
                images = image_spec.preprocess(encoded_images)
            return tf.cast(classifier(images, training=False), tf.float32)

        probabilities = tf.cond(batch > 0, classify, lambda: tf.zeros([0, num_classes], tf.float32))
        probabilities = tf.ensure_shape(probabilities, [None, num_classes])
        top = tf.argmax(probabilities, axis=-1, output_type=tf.int32)
        return {
            PROBABILITIES_OUTPUT: probabilities,
            CLASSES_OUTPUT: tf.gather(names, top),
            CLASS_NAMES_OUTPUT: tf.tile(names[tf.newaxis, :], [batch, 1]),
        }

    def predict_images(images: tf.Tensor) -> dict[str, tf.Tensor]:
        """Encoded image bytes (JPEG, PNG, GIF, BMP; any size) -> predictions."""
        return predict(images)

    def serve_examples(examples: tf.Tensor) -> dict[str, tf.Tensor]:
        """Serialized tf.Examples with the encoded image under IMAGE_KEY -> predictions."""
        features = tf.io.parse_example(examples, {IMAGE_KEY: tf.io.FixedLenFeature([], tf.string)})
        return predict(features[IMAGE_KEY])

    return predict_images, serve_examples


def _check_classifier(classifier: keras.Model, image_spec: ImageSpec, class_names) -> None:
    """Rejects a classifier whose static input/output shapes contradict the spec."""
    if not class_names or len(set(class_names)) != len(class_names):
        raise ValueError(f"class_names must be non-empty and unique, got {list(class_names)}")
    expected_input = (image_spec.height, image_spec.width, 3)
    input_shape = tuple(classifier.input_shape[1:])
    if len(input_shape) != 3 or any(
        got not in (None, want) for got, want in zip(input_shape, expected_input, strict=True)
    ):
        raise ValueError(
            f"classifier input shape {input_shape} does not match the ImageSpec's {expected_input}"
        )
    classes = classifier.output_shape[-1]
    if classes is not None and classes != len(class_names):
        raise ValueError(
            f"classifier outputs {classes} classes but {len(class_names)} class names were given"
        )


def export_serving_model(
    classifier: keras.Model,
    image_spec: ImageSpec,
    class_names: Sequence[str],
    export_dir: str,
    warmup_images: Sequence[bytes] = (),
) -> str:
    """Exports the served model: a SavedModel taking tf.Examples or raw image bytes.

    Written with Keras 3's ``keras.export.ExportArchive``: the archive tracks the
    ``tf.Variable`` behind every Keras variable the endpoints use, so the MetaGraph's
    saver restores them in a TF1 session, the way TF Serving loads a model. (A Keras 3
    model held as an attribute of a ``tf.Module`` and saved with ``tf.saved_model.save``
    loads there but every request fails with "Could not find variable ...".)

    Args:
        classifier: Keras 3 model mapping preprocessed images [batch, height, width, 3]
            (as ``image_spec.preprocess`` makes them) to class probabilities
            [batch, len(class_names)] (softmax already applied).
        image_spec: the preprocessing the classifier was trained with.
        class_names: class names in label-index order.
        export_dir: the SavedModel directory (local or a tf.io.gfile URL).
        warmup_images: a few encoded images; when given, TF Serving's warm-up file
            ``assets.extra/tf_serving_warmup_requests`` holds a request per signature
            with them, so the first request after a load is not slow.

    Returns:
        export_dir.

    Raises:
        ValueError: the classifier's static shapes contradict image_spec or class_names.
    """
    _check_classifier(classifier, image_spec, list(class_names))
    predict_images, serve_examples = _serving_endpoints(classifier, image_spec, class_names)
    archive = keras.export.ExportArchive()
    archive.track(classifier)
    archive.add_endpoint(
        SERVING_SIGNATURE,
        serve_examples,
        input_signature=[tf.TensorSpec([None], tf.string, name=EXAMPLES_INPUT)],
    )
    archive.add_endpoint(
        IMAGES_SIGNATURE,
        predict_images,
        input_signature=[tf.TensorSpec([None], tf.string, name=IMAGES_INPUT)],
    )
    archive.write_out(export_dir, verbose=False)
    if warmup_images:
        from components.common import serving_requests

        serving_requests.write_warmup(export_dir, warmup_images)
    return export_dir
