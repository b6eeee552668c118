"""Pure core of ServingCheck: does the candidate answer the way TF Serving loads it?

``check_servable`` writes TF Serving PredictRequests built from real images (both
signatures; the batch, one image, and an empty batch), runs ``tf_serving_probe.py`` in
a fresh Python process (isolated mode, none of this project's code imported) that
loads the model with TF Serving's loader path and replays the model's warm-up file,
then compares every answer with the same request answered in this process by the
model loaded with ``tf.saved_model.load`` (what TFMA's Evaluator uses). Any load
failure, failing warm-up record, failing request or difference above the tolerance
makes the model not servable, with the reason in words.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from collections.abc import Sequence

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2

from components.common import artifact_io, serving_requests
from components.common.examples import IMAGE_KEY

PROBE_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tf_serving_probe.py")
TOLERANCE = 1e-5  # max abs difference allowed between the two loaders' float outputs
REQUESTS_FILE = "requests.tfrecord"
RESPONSES_FILE = "responses.tfrecord"
REPORT_FILE = "probe_report.json"
LOG_FILE = "probe.log"


@dataclasses.dataclass(frozen=True)
class ServingCheckResult:
    """The verdict: ``servable`` and, either way, why."""

    servable: bool
    reason: str
    requests: int = 0
    warmup_records: int = 0
    max_abs_diff: float = float("nan")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def eval_images(split_uri: str, limit: int) -> list[bytes]:
    """The encoded images of the first ``limit`` records of a split (gzipped TFRecords)."""
    images = []
    for record in artifact_io.read_records(artifact_io.split_files(split_uri)).take(limit):
        example = tf.train.Example.FromString(record.numpy())
        images.append(example.features.feature[IMAGE_KEY].bytes_list.value[0])
    return images


def check_requests(encoded_images: Sequence[bytes]) -> list[predict_pb2.PredictRequest]:
    """Both signatures on the whole batch, on one image, and on an empty batch."""
    return [
        *serving_requests.requests_for_images(encoded_images),
        *serving_requests.requests_for_images(encoded_images[:1]),
        *serving_requests.requests_for_images([]),
    ]


def _describe(request: predict_pb2.PredictRequest) -> str:
    inputs = ", ".join(
        f"{key}[{proto.tensor_shape.dim[0].size if proto.tensor_shape.dim else 1}]"
        for key, proto in request.inputs.items()
    )
    return f"{request.model_spec.signature_name}({inputs})"


def _run_probe(model_dir: str, work_dir: str, timeout_s: float) -> dict:
    """The probe's report; a crash or time-out becomes a report with load_error."""
    paths = {name: os.path.join(work_dir, name) for name in (RESPONSES_FILE, REPORT_FILE)}
    command = [
        sys.executable,
        "-I",  # isolated: no PYTHONPATH, no script directory on sys.path
        PROBE_SCRIPT,
        f"--model={model_dir}",
        f"--requests={os.path.join(work_dir, REQUESTS_FILE)}",
        f"--responses={paths[RESPONSES_FILE]}",
        f"--report={paths[REPORT_FILE]}",
    ]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}
    log_path = os.path.join(work_dir, LOG_FILE)
    with open(log_path, "wb") as log:
        try:
            code = subprocess.run(
                command, stdout=log, stderr=subprocess.STDOUT, env=env, timeout=timeout_s
            ).returncode
        except subprocess.TimeoutExpired:
            return {"loaded": False, "load_error": f"no answer within {timeout_s:.0f} s"}
    if code != 0 or not os.path.exists(paths[REPORT_FILE]):
        with open(log_path, errors="replace") as f:
            tail = "".join(f.readlines()[-5:]).strip()
        return {"loaded": False, "load_error": f"the loader process exited with {code}: {tail}"}
    with open(paths[REPORT_FILE]) as f:
        return json.load(f)


def _in_process(loaded, request: predict_pb2.PredictRequest) -> dict[str, np.ndarray]:
    """The request answered by the model loaded with tf.saved_model.load (as TFMA does)."""
    signature = loaded.signatures[request.model_spec.signature_name]
    inputs = {k: tf.constant(tf.make_ndarray(v)) for k, v in request.inputs.items()}
    return {k: v.numpy() for k, v in signature(**inputs).items()}


def _difference(expected: dict[str, np.ndarray], got: dict[str, np.ndarray]) -> float | str:
    """Max abs difference of the float outputs, or a sentence saying what differs."""
    if set(expected) != set(got):
        return f"outputs {sorted(got)} instead of {sorted(expected)}"
    worst = 0.0
    for key, want in expected.items():
        have = got[key]
        if want.shape != have.shape:
            return f"output {key!r} has shape {have.shape} instead of {want.shape}"
        if want.dtype.kind in "fc":
            if not np.all(np.isfinite(have)):
                return f"output {key!r} is not finite"
            if want.size:
                worst = max(worst, float(np.max(np.abs(want - have))))
        elif not np.array_equal(want, have):
            return f"output {key!r} differs"
    return worst


def check_servable(
    model_dir: str, encoded_images: Sequence[bytes], work_dir: str, timeout_s: float = 600.0
) -> ServingCheckResult:
    """Loads the model as TF Serving does, in a fresh process, and checks its answers.

    Args:
        model_dir: the candidate SavedModel directory.
        encoded_images: a few real images (e.g. from the eval split).
        work_dir: where the requests, responses, probe report and probe log go.
        timeout_s: the probe process's time limit.
    """
    if not encoded_images:
        return ServingCheckResult(False, "no images to build requests from (empty eval split)")
    requests = check_requests(encoded_images)
    tf.io.gfile.makedirs(work_dir)
    serving_requests.write_prediction_logs(os.path.join(work_dir, REQUESTS_FILE), requests)
    report = _run_probe(model_dir, work_dir, timeout_s)
    if report.get("project_modules"):
        raise RuntimeError(f"the probe imported project code: {report['project_modules']}")
    if not report.get("loaded"):
        return ServingCheckResult(
            False, f"TF Serving's loader cannot load the model: {report.get('load_error')}"
        )
    warmup = report["warmup"]
    if warmup["error"]:
        return ServingCheckResult(
            False,
            f"TF Serving would refuse to load this version: a warm-up record fails after "
            f"{warmup['records']} answered: {warmup['error']}",
            warmup_records=warmup["records"],
        )
    for request, error in zip(requests, report["errors"], strict=True):
        if error:
            return ServingCheckResult(
                False,
                f"{_describe(request)} fails under TF Serving's loader: {error}",
                len(requests),
                warmup["records"],
            )
    answers = list(serving_requests.read_prediction_logs(os.path.join(work_dir, RESPONSES_FILE)))
    loaded = tf.saved_model.load(model_dir)
    worst = 0.0
    for request, answer in zip(requests, answers, strict=True):
        got = {k: tf.make_ndarray(v) for k, v in answer.predict_log.response.outputs.items()}
        difference = _difference(_in_process(loaded, request), got)
        if isinstance(difference, str) or difference > TOLERANCE:
            what = difference if isinstance(difference, str) else f"differ by {difference:.2e}"
            return ServingCheckResult(
                False,
                f"{_describe(request)}: TF Serving's loader and tf.saved_model.load disagree "
                f"({what}; tolerance {TOLERANCE})",
                len(requests),
                warmup["records"],
            )
        worst = max(worst, difference)
    return ServingCheckResult(
        True,
        f"{len(requests)} requests answered through {', '.join(report['signatures'])} under "
        f"TF Serving's loader (TF1 session, signature_def names) in a fresh process, equal "
        f"to tf.saved_model.load within {worst:.1e}; {warmup['records']} warm-up records "
        "replayed",
        len(requests),
        warmup["records"],
        worst,
    )
