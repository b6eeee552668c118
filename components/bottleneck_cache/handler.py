"""Beam RunInference's ModelHandler: encoded image bytes -> bottleneck vectors.

A custom ``apache_beam.ml.inference.base.ModelHandler`` (tfx_bsl's RunInference loads
through a TF1 session that cannot restore Keras 3 variables, and Beam's own
tensorflow_inference module does not import with this package set). ``load_model``
runs once per worker (RunInference shares it through ``shared.Shared``): it loads
the base network from the Model artifact, cuts, pools and freezes it exactly as the
plan says, checks the base fingerprint against the plan, and loads the transform
graph. Decoding, resizing and scaling are the transform graph's, i.e.
``pipeline.preprocessing``: the same pixels Transform and serving use.

Elements are ``(content_id, encoded image bytes)``; results are
``PredictionResult(example=content_id, inference=float32 vector | InferenceFailure)``.
A batch is run whole; if TensorFlow rejects it (InvalidArgumentError: an undecodable
image), it is run again one element at a time, so one bad image fails alone.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import apache_beam as beam
import numpy as np
import tensorflow as tf
from apache_beam.ml.inference.base import ModelHandler, PredictionResult

from components.bottleneck_cache import bases
from components.bottleneck_cache import transform as transform_lib
from components.bottleneck_cache.plan import CachePlan

METRICS_NAMESPACE = "BottleneckCache"
_MAX_ERROR_CHARS = 500

Element = tuple[str, bytes]


class InferenceFailure(NamedTuple):
    """The inference of one element that TensorFlow rejected."""

    error: str


class Extractor:
    """The transform graph and the frozen extractor in one traced function.

    Call it with a sequence of encoded images; it returns float32 [n, plan.dim].
    """

    def __init__(self, image_transform: transform_lib.ImageTransform, extractor, dim: int):
        self._transform = image_transform
        self._extractor = extractor
        self._dim = dim
        self._function = tf.function(
            self._compute, input_signature=[tf.TensorSpec([None], tf.string)]
        )

    def _compute(self, encoded: tf.Tensor) -> tf.Tensor:
        images = self._transform(encoded)
        outputs = tf.cast(self._extractor(images, training=False), tf.float32)
        return tf.reshape(outputs, [-1, self._dim])

    def __call__(self, encoded_images: Sequence[bytes]) -> np.ndarray:
        return self._function(tf.constant(list(encoded_images), tf.string)).numpy()


def load_extractor(plan: CachePlan) -> Extractor:
    """Builds the Extractor that ``plan`` describes.

    Raises:
        RuntimeError: the base network at plan.base_model_uri no longer has the
            fingerprint the plan was made with (vectors would not match the namespace).
    """
    sub_model = bases.cut_model(bases.load_base(plan.base_model_uri), plan.cut_layer)
    found = bases.fingerprint(sub_model)
    if found != plan.base_fingerprint:
        raise RuntimeError(
            f"base model at {plan.base_model_uri} cut at {plan.cut_layer!r} has fingerprint "
            f"{found}, but the run was planned with {plan.base_fingerprint}; was it modified?"
        )
    extractor = bases.build_extractor(sub_model, plan.pooling)
    image_transform = transform_lib.load_image_transform(plan.transform_uri)
    return Extractor(image_transform, extractor, plan.dim)


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


class BottleneckModelHandler(ModelHandler[Element, PredictionResult, Extractor]):
    """Loads the frozen extractor once per worker and runs batches of images through it."""

    def __init__(self, plan: CachePlan, batch_size: int = 32):
        super().__init__()
        self._plan = plan
        self._batch_size = batch_size

    def load_model(self) -> Extractor:
        return load_extractor(self._plan)

    def run_inference(
        self,
        batch: Sequence[Element],
        model: Extractor,
        inference_args: dict[str, Any] | None = None,
    ) -> Iterable[PredictionResult]:
        del inference_args
        try:
            vectors = model([image for _, image in batch])
        except tf.errors.InvalidArgumentError:
            beam.metrics.Metrics.counter(METRICS_NAMESPACE, "batches_split").inc()
            return [self._run_one(element, model) for element in batch]
        ids = [content_id for content_id, _ in batch]
        return [PredictionResult(i, vector) for i, vector in zip(ids, vectors, strict=True)]

    @staticmethod
    def _run_one(element: Element, model: Extractor) -> PredictionResult:
        content_id, image = element
        try:
            return PredictionResult(content_id, model([image])[0])
        except tf.errors.InvalidArgumentError as error:
            return PredictionResult(content_id, InferenceFailure(error_text(error)))

    def get_num_bytes(self, batch: Sequence[Element]) -> int:
        return sum(len(image) for _, image in batch)

    def get_metrics_namespace(self) -> str:
        return METRICS_NAMESPACE

    def batch_elements_kwargs(self) -> dict[str, int]:
        return {"min_batch_size": self._batch_size, "max_batch_size": self._batch_size}
