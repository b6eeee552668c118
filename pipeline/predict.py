"""Predictions from the pushed model: locally, or from TensorFlow Serving (gRPC, REST).

Pusher writes `<serving_root>/<model_name>/<version>/` (TF Serving's layout). Locally
the newest version is loaded the way TF Serving loads it (TF1 session, signature_def
tensor names) and its `predict_images` signature is called on the raw file bytes: the
model decodes and resizes itself.
Remotely the same signature is called through TF Serving's gRPC PredictionService
(tensorflow-serving-api protos) or its REST API (`POST /v1/models/NAME:predict`, bytes
as `{"b64": ...}`).
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import urllib.error
import urllib.request
from collections.abc import Sequence

import numpy as np

from components.common import model_io
from pipeline.errors import ServerError


@dataclasses.dataclass(frozen=True)
class Prediction:
    """Top-k classes of one image."""

    source: str
    top: list[tuple[str, float]]

    def format(self) -> str:
        ranked = ", ".join(f"{name} {score:.3f}" for name, score in self.top)
        return f"{self.source}: {ranked}"


def latest_version_dir(serving_root: str, model_name: str) -> str:
    """The newest `<serving_root>/<model_name>/<version>` directory.

    Raises:
      FileNotFoundError: no version was pushed yet (the message says where it looked).
    """
    base = os.path.join(serving_root, model_name)
    versions = [v for v in (os.listdir(base) if os.path.isdir(base) else []) if v.isdigit()]
    if not versions:
        raise FileNotFoundError(
            f"no pushed version of model {model_name!r} under {base}; run the pipeline until "
            "Evaluator blesses a model and Pusher writes it"
        )
    return os.path.join(base, max(versions, key=int))


def top_k(
    probabilities: np.ndarray, class_names: np.ndarray, sources: Sequence[str], k: int
) -> list[Prediction]:
    """Rows of probabilities and class names -> top-k predictions with names."""
    predictions = []
    for source, probs, names in zip(sources, probabilities, class_names, strict=True):
        order = np.argsort(-probs, kind="stable")[:k]
        decoded = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
        predictions.append(Prediction(source, [(decoded[i], float(probs[i])) for i in order]))
    return predictions


def _read(paths: Sequence[str]) -> list[bytes]:
    """The files' bytes.

    Raises:
      FileNotFoundError: a path does not exist. ValueError: a path is a folder.
    """
    images = []
    for path in paths:
        if os.path.isdir(path):
            raise ValueError(f"{path} is a folder; pass image files (e.g. {path}/*.png)")
        if not os.path.exists(path):
            raise FileNotFoundError(f"{path} does not exist")
        with open(path, "rb") as f:
            images.append(f.read())
    return images


def predict_local(model_dir: str, paths: Sequence[str], k: int = 3) -> list[Prediction]:
    """Loads the SavedModel as TF Serving does and calls `predict_images` on the files.

    The loader is TF Serving's path (a TF1 session, signature_def tensor names), so a
    local answer is the answer the server would give.

    Raises:
      tf.errors.InvalidArgumentError: a file is not a decodable image (named in the
        message by the CLI).
    """
    from components.serving_check.tf_serving_probe import SessionModel

    images = np.array(_read(paths), dtype=object)  # bad paths are named before the load
    model = SessionModel(model_dir)
    try:
        outputs = model.run(model_io.IMAGES_SIGNATURE, {model_io.IMAGES_INPUT: images})
    finally:
        model.close()
    return top_k(
        outputs[model_io.PROBABILITIES_OUTPUT], outputs[model_io.CLASS_NAMES_OUTPUT], paths, k
    )


def predict_grpc(
    address: str, model_name: str, paths: Sequence[str], k: int = 3, timeout_s: float = 30.0
) -> list[Prediction]:
    """Calls TF Serving's gRPC Predict with a PredictRequest on `predict_images`."""
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = model_io.IMAGES_SIGNATURE
    request.inputs[model_io.IMAGES_INPUT].CopyFrom(
        tf.make_tensor_proto(_read(paths), dtype=tf.string)
    )
    with grpc.insecure_channel(address) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        try:
            response = stub.Predict(request, timeout=timeout_s)
        except grpc.RpcError as e:
            raise ServerError(
                f"TF Serving at {address} (gRPC) answered {e.code().name}: {e.details()}"
                + (
                    "; is the server running and the address right?"
                    if e.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
                    else ""
                )
            ) from e
    return top_k(
        tf.make_ndarray(response.outputs[model_io.PROBABILITIES_OUTPUT]),
        tf.make_ndarray(response.outputs[model_io.CLASS_NAMES_OUTPUT]),
        paths,
        k,
    )


def rest_request_body(images: Sequence[bytes]) -> dict:
    """TF Serving's REST row format for `predict_images`: bytes travel as {"b64": ...}."""
    return {
        "signature_name": model_io.IMAGES_SIGNATURE,
        "instances": [{"b64": base64.b64encode(image).decode("ascii")} for image in images],
    }


def predict_rest(
    base_url: str, model_name: str, paths: Sequence[str], k: int = 3, timeout_s: float = 30.0
) -> list[Prediction]:
    """POSTs to `<base_url>/v1/models/<model_name>:predict`.

    Raises:
      ServerError: the server is unreachable or answered an error (its message included).
    """
    body = json.dumps(rest_request_body(_read(paths))).encode()
    url = f"{base_url.rstrip('/')}/v1/models/{model_name}:predict"
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            rows = json.loads(response.read())["predictions"]
    except urllib.error.HTTPError as e:
        raise ServerError(f"TF Serving at {url} answered {e.code}: {e.read().decode()}") from e
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise ServerError(
            f"could not reach TF Serving at {url}: {reason}; is the server running and the "
            "URL right?"
        ) from e
    probabilities = np.array([row[model_io.PROBABILITIES_OUTPUT] for row in rows])
    names = np.array([row[model_io.CLASS_NAMES_OUTPUT] for row in rows])
    return top_k(probabilities, names, paths, k)
