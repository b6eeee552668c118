"""TF Serving requests for the served model: PredictRequests, warm-up records.

The served model has two signatures (``components.common.model_io``): ``predict_images`` on raw
encoded image bytes and ``serving_default`` on serialized tf.Examples. This module
builds TF Serving's own request protos (tensorflow-serving-api) for both from encoded
images, and reads and writes TF Serving's warm-up file
``<version>/assets.extra/tf_serving_warmup_requests``: a TFRecord file of
``PredictionLog`` records that the server replays when it loads a version (a record
that fails makes the load fail).
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator, Sequence

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

from components.common import model_io
from components.common.examples import IMAGE_KEY

WARMUP_DIR = "assets.extra"
WARMUP_FILE = "tf_serving_warmup_requests"


def warmup_path(export_dir: str) -> str:
    """``<export_dir>/assets.extra/tf_serving_warmup_requests`` (TF Serving's name)."""
    return posixpath.join(export_dir, WARMUP_DIR, WARMUP_FILE)


def image_example(encoded_image: bytes) -> bytes:
    """A serialized tf.Example holding the encoded image under the image feature."""
    feature = tf.train.Feature(bytes_list=tf.train.BytesList(value=[encoded_image]))
    return tf.train.Example(
        features=tf.train.Features(feature={IMAGE_KEY: feature})
    ).SerializeToString()


def predict_request(
    signature_name: str, values: Sequence[bytes], model_name: str = ""
) -> predict_pb2.PredictRequest:
    """A PredictRequest for one signature; ``values`` are images or serialized Examples.

    Raises:
        ValueError: an unknown signature name (the message lists the known ones).
    """
    inputs = {
        model_io.IMAGES_SIGNATURE: model_io.IMAGES_INPUT,
        model_io.SERVING_SIGNATURE: model_io.EXAMPLES_INPUT,
    }
    if signature_name not in inputs:
        raise ValueError(
            f"unknown signature {signature_name!r}; the served model has {sorted(inputs)}"
        )
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature_name
    tensor = tf.make_tensor_proto(np.array(list(values), dtype=object), dtype=tf.string)
    request.inputs[inputs[signature_name]].CopyFrom(tensor)
    return request


def requests_for_images(
    encoded_images: Sequence[bytes], model_name: str = ""
) -> list[predict_pb2.PredictRequest]:
    """The same images through both signatures: raw bytes, then as tf.Examples."""
    return [
        predict_request(model_io.IMAGES_SIGNATURE, encoded_images, model_name),
        predict_request(
            model_io.SERVING_SIGNATURE, [image_example(i) for i in encoded_images], model_name
        ),
    ]


def write_prediction_logs(path: str, requests: Sequence[predict_pb2.PredictRequest]) -> None:
    """A TFRecord file of PredictionLog records (TF Serving's warm-up format)."""
    tf.io.gfile.makedirs(posixpath.dirname(path))
    with tf.io.TFRecordWriter(path) as writer:
        for request in requests:
            log = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request)
            )
            writer.write(log.SerializeToString())


def read_prediction_logs(path: str) -> Iterator[prediction_log_pb2.PredictionLog]:
    """The PredictionLog records of a TFRecord file, as TF Serving reads warm-up files."""
    for record in tf.data.TFRecordDataset([path]).as_numpy_iterator():
        yield prediction_log_pb2.PredictionLog.FromString(record)


def write_warmup(export_dir: str, encoded_images: Sequence[bytes]) -> str:
    """Writes TF Serving's warm-up file: one request per signature with the images."""
    path = warmup_path(export_dir)
    write_prediction_logs(path, requests_for_images(encoded_images))
    return path
