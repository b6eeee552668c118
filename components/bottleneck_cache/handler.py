"""Beam RunInference's ModelHandler: encoded image bytes -> bottleneck vectors.

A custom ``apache_beam.ml.inference.base.ModelHandler`` (tfx_bsl's RunInference loads
through a TF1 session that cannot restore Keras 3 variables, and Beam's own
tensorflow_inference module does not import with this package set).

``load_model`` (once per worker, shared through ``shared.Shared``) returns a
``LazyExtractor``: the model is loaded on the first batch only, so a run in which
every vector comes from the cache never loads it. The load itself goes through the
process memo (extractor.py): with the in-memory DirectRunner it finds the extractor
``make_plan`` built in the same process. Elsewhere it checks that the model file's
sha256 is the one the plan was made from, so the plan's fingerprint holds without
fingerprinting again (base_file.base_digest: the file is not read again when this
process hashed it unchanged). Then it loads the extractor an earlier process exported
beside the cache (prepared.py: no Keras deserialisation, no tensorflow_transform, no
trace) or, when there is none or it is unusable, reads the model file, checks its
bytes' digest again, cuts, pools and freezes it exactly as the plan says
(``components.common.model_surgery``) and loads the transform graph. Decoding,
resizing and scaling are the transform graph's, i.e.
``components.common.preprocessing``: the same pixels Transform and serving use. An
extractor built from the Keras model is exported for later processes on its first
use when the plan has a prepared_dir.

Elements are ``(content_id, encoded image bytes, payload)`` (the payload, e.g. the
records waiting for the vector, travels through untouched); results are
``PredictionResult(example=element, inference=float32 vector | InferenceFailure)``.
A batch is run whole; if TensorFlow rejects it (InvalidArgumentError: an undecodable
image), it is run again one element at a time, so one bad image fails alone.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import apache_beam as beam
import numpy as np
import tensorflow as tf
from apache_beam.ml.inference.base import ModelHandler, PredictionResult

from components.bottleneck_cache import base_file, prepared
from components.bottleneck_cache import extractor as extractor_lib
from components.bottleneck_cache import plan as plan_lib
from components.bottleneck_cache.extractor import Extractor, SavedExtractor
from components.bottleneck_cache.plan import CachePlan
from components.common import transform_graph as transform_lib

METRICS_NAMESPACE = "BottleneckCache"
MODEL_LOADS = "model_loads"  # counter: extractors built by workers from the Keras model
SAVED_LOADS = "saved_extractor_loads"  # counter: extractors loaded from prepared.py's export
_MAX_ERROR_CHARS = 500

Element = tuple[str, bytes, Any]

__all__ = ["BottleneckModelHandler", "Extractor", "InferenceFailure", "LazyExtractor"]


class InferenceFailure(NamedTuple):
    """The inference of one element that TensorFlow rejected."""

    error: str


def load_extractor(plan: CachePlan) -> Extractor | SavedExtractor:
    """The Extractor that ``plan`` describes, from the process memo or built.

    Raises:
        RuntimeError: the base model file or the transform graph at the plan's uris
            no longer has the digest the plan was made from (vectors would not match
            the namespace).
    """
    return extractor_lib.get_or_build(plan.extractor_key, lambda: _build(plan))


def _build(plan: CachePlan) -> Extractor | SavedExtractor:
    _check_base(base_file.base_digest(plan.base_model_uri), plan)
    transform_digest = transform_lib.graph_digest(plan.transform_uri)
    if transform_digest != plan.transform_digest:
        raise RuntimeError(
            f"transform graph at {plan.transform_uri} has digest {transform_digest}, but the "
            f"run was planned with {plan.transform_digest}; was it modified?"
        )
    if plan.prepared_dir:
        saved = prepared.load_extractor(plan.prepared_dir, plan.dim)
        if saved is not None:
            beam.metrics.Metrics.counter(METRICS_NAMESPACE, SAVED_LOADS).inc()
            return saved
    beam.metrics.Metrics.counter(METRICS_NAMESPACE, MODEL_LOADS).inc()
    data, digest = base_file.read_base(plan.base_model_uri)
    _check_base(digest, plan)  # the bytes loaded are the ones planned with
    frozen = plan_lib.frozen_extractor(base_file.load_bytes(data), plan)
    image_transform = transform_lib.load_image_transform(plan.transform_uri)
    return Extractor(image_transform, frozen, plan.dim)


def _check_base(digest: str, plan: CachePlan) -> None:
    if digest != plan.base_digest:
        raise RuntimeError(
            f"base model at {plan.base_model_uri} has file sha256 {digest}, but the run was "
            f"planned with {plan.base_digest}; was it modified?"
        )


class LazyExtractor:
    """An Extractor loaded on its first call (load_extractor)."""

    def __init__(self, plan: CachePlan):
        self._plan = plan
        self._extractor: Extractor | SavedExtractor | None = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._extractor is not None

    def __call__(self, encoded_images: Sequence[bytes]) -> np.ndarray:
        if self._extractor is None:
            with self._lock:
                if self._extractor is None:
                    extractor = load_extractor(self._plan)
                    if self._plan.prepared_dir and isinstance(extractor, Extractor):
                        # Built from the Keras model: export it unless an export (or a
                        # failure) is published; a rejected one was withdrawn.
                        prepared.export_in_background(self._plan.prepared_dir, extractor)
                    self._extractor = extractor
        return self._extractor(encoded_images)


def error_text(error: Exception) -> str:
    """The line of a TensorFlow error that says what went wrong.

    TF's messages wrap it in "Graph execution error:", "Detected at node ..." and stack
    lines before, and "[[{{node ...}}]] [Op:...]" after: keep the line just before the
    first "[[" (or the last line), without "{{...}}" markers.
    """
    message = getattr(error, "message", None) or str(error)
    lines = [re.sub(r"\{\{[^}]*\}\}", "", line).strip() for line in message.splitlines()]
    end = next((i for i, line in enumerate(lines) if line.startswith("[[")), len(lines))
    useful = [line for line in lines[:end] if line]
    return (useful[-1] if useful else repr(error))[:_MAX_ERROR_CHARS]


class BottleneckModelHandler(ModelHandler[Element, PredictionResult, LazyExtractor]):
    """Runs batches of images through the frozen extractor, loaded on the first batch."""

    def __init__(self, plan: CachePlan, batch_size: int = 32):
        super().__init__()
        self._plan = plan
        self._batch_size = batch_size

    def load_model(self) -> LazyExtractor:
        return LazyExtractor(self._plan)

    def run_inference(
        self,
        batch: Sequence[Element],
        model: LazyExtractor,
        inference_args: dict[str, Any] | None = None,
    ) -> Iterable[PredictionResult]:
        del inference_args
        try:
            vectors = model([element[1] for element in batch])
        except tf.errors.InvalidArgumentError:
            beam.metrics.Metrics.counter(METRICS_NAMESPACE, "batches_split").inc()
            return [self._run_one(element, model) for element in batch]
        return [PredictionResult(e, vector) for e, vector in zip(batch, vectors, strict=True)]

    @staticmethod
    def _run_one(element: Element, model: LazyExtractor) -> PredictionResult:
        try:
            return PredictionResult(element, model([element[1]])[0])
        except tf.errors.InvalidArgumentError as error:
            return PredictionResult(element, InferenceFailure(error_text(error)))

    def get_num_bytes(self, batch: Sequence[Element]) -> int:
        return sum(len(element[1]) for element in batch)

    def get_metrics_namespace(self) -> str:
        return METRICS_NAMESPACE

    def batch_elements_kwargs(self) -> dict[str, int]:
        return {"min_batch_size": self._batch_size, "max_batch_size": self._batch_size}
