"""Loads a SavedModel the way TensorFlow Serving does and answers PredictRequests.

TF Serving's C++ SavedModelBundle loads a model into a TF1 session: it imports the
MetaGraph tagged "serve", restores the variables with the MetaGraph's saver, runs the
init op, then, for each request, feeds and fetches the tensors named by the
``signature_def``. It never rebuilds the Python objects that ``tf.saved_model.load``
revives, so a model can load and answer there and still fail under TF Serving.
``SessionModel`` does exactly that in Python (``tf.compat.v1.saved_model.loader.load``
and ``Session.run`` on the signature's tensor names).

Run as a script (``python -I tf_serving_probe.py ...``), it is the fresh process of
ServingCheck: it imports only TensorFlow, NumPy and tensorflow-serving-api, never this
project's code, replays the model's warm-up file first as TF Serving does at load
time, answers every request of a PredictionLog TFRecord file, and writes the responses
(PredictionLog records with the response filled) and a JSON report. Keep this file
free of project imports: that is what makes the check independent of the exporter.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from collections.abc import Mapping

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

SERVE_TAG = "serve"
DEFAULT_SIGNATURE = "serving_default"  # TF Serving's default when a request names none
WARMUP_RELATIVE_PATH = os.path.join("assets.extra", "tf_serving_warmup_requests")
PROJECT_PACKAGES = ("pipeline", "components", "kubeflow", "bench")


class SessionModel:
    """A SavedModel in a TF1 session, called by signature_def tensor names."""

    def __init__(self, export_dir: str, tags: tuple[str, ...] = (SERVE_TAG,)):
        self._graph = tf.Graph()
        self._session = tf.compat.v1.Session(graph=self._graph)
        with self._graph.as_default():
            meta_graph = tf.compat.v1.saved_model.loader.load(self._session, list(tags), export_dir)
        self.signatures = dict(meta_graph.signature_def)

    def run(self, signature_name: str, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Feeds the signature's input tensors and fetches all its outputs.

        Raises:
            ValueError: an unknown signature, or inputs that are not the signature's.
            tf.errors.OpError: what the model raised (e.g. InvalidArgumentError for an
                image that does not decode).
        """
        name = signature_name or DEFAULT_SIGNATURE
        if name not in self.signatures:
            raise ValueError(f"no signature {name!r}; the model has {sorted(self.signatures)}")
        signature = self.signatures[name]
        if set(inputs) != set(signature.inputs):
            raise ValueError(
                f"signature {name!r} takes inputs {sorted(signature.inputs)}, got {sorted(inputs)}"
            )
        feed = {signature.inputs[key].name: value for key, value in inputs.items()}
        fetch = {key: tensor.name for key, tensor in signature.outputs.items()}
        return self._session.run(fetch, feed)

    def predict(self, request: predict_pb2.PredictRequest) -> predict_pb2.PredictResponse:
        """Answers a PredictRequest as TF Serving's Predict does (tensors as TensorProtos)."""
        inputs = {key: tf.make_ndarray(proto) for key, proto in request.inputs.items()}
        outputs = self.run(request.model_spec.signature_name, inputs)
        response = predict_pb2.PredictResponse()
        response.model_spec.CopyFrom(request.model_spec)
        response.model_spec.signature_name = request.model_spec.signature_name or DEFAULT_SIGNATURE
        for key, value in outputs.items():
            response.outputs[key].CopyFrom(tf.make_tensor_proto(value))
        return response

    def close(self) -> None:
        self._session.close()


def _read_logs(path: str) -> list[prediction_log_pb2.PredictionLog]:
    return [
        prediction_log_pb2.PredictionLog.FromString(record)
        for record in tf.data.TFRecordDataset([path]).as_numpy_iterator()
    ]


def _error(error: BaseException) -> str:
    """'ErrorType: the first informative line of the message' (at most 500 characters)."""
    message = getattr(error, "message", None) or str(error)
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    lines = [line for line in lines if line != "Graph execution error:"] or [""]
    return f"{type(error).__name__}: {lines[0][:500]}"


def probe(model_dir: str, requests_path: str, responses_path: str) -> dict:
    """Loads the model, replays its warm-up file, answers every request.

    Returns:
        The report: ``loaded`` (bool), ``load_error``, ``signatures``, ``warmup``
        (records replayed, first error), ``errors`` (one entry per request, None when
        it answered) and ``project_modules`` (project packages found imported: must
        be empty).
    """
    report: dict = {"loaded": False, "load_error": None, "signatures": [], "errors": []}
    report["warmup"] = {"records": 0, "error": None}
    try:
        model = SessionModel(model_dir)
    except Exception as error:  # noqa: BLE001 - any load failure is the finding
        report["load_error"] = _error(error)
        return report
    report["loaded"] = True
    # "__saved_model_init_op" is the init op's entry, not a signature TF Serving serves.
    report["signatures"] = sorted(s for s in model.signatures if not s.startswith("__"))
    warmup = os.path.join(model_dir, WARMUP_RELATIVE_PATH)
    if tf.io.gfile.exists(warmup):
        try:
            for log in _read_logs(warmup):
                if log.WhichOneof("log_type") != "predict_log":
                    raise ValueError(f"warm-up record of type {log.WhichOneof('log_type')}")
                model.predict(log.predict_log.request)
                report["warmup"]["records"] += 1
        except Exception as error:  # noqa: BLE001 - TF Serving would refuse the load
            report["warmup"]["error"] = _error(error)
    with tf.io.TFRecordWriter(responses_path) as writer:
        for log in _read_logs(requests_path):
            request = log.predict_log.request
            try:
                response = model.predict(request)
                report["errors"].append(None)
            except Exception as error:  # noqa: BLE001 - recorded per request
                response = predict_pb2.PredictResponse()
                report["errors"].append(_error(error))
            answered = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request, response=response)
            )
            writer.write(answered.SerializeToString())
    model.close()
    report["project_modules"] = sorted(
        name for name in sys.modules if name.split(".")[0] in PROJECT_PACKAGES
    )
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="the SavedModel directory")
    parser.add_argument("--requests", required=True, help="TFRecord of PredictionLog requests")
    parser.add_argument("--responses", required=True, help="TFRecord to write the answers to")
    parser.add_argument("--report", required=True, help="JSON file to write the report to")
    args = parser.parse_args(argv)
    try:
        report = probe(args.model, args.requests, args.responses)
    except Exception:  # noqa: BLE001 - reported to the parent, which names it
        report = {"loaded": False, "load_error": traceback.format_exc(limit=3)}
    with open(args.report, "w") as f:
        json.dump(report, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
