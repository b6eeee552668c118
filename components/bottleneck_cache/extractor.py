"""The transform graph and the frozen extractor in one traced function, loaded once per
process.

``Extractor`` is what RunInference runs: encoded image bytes -> float32 vectors. Loading
one (the base network's .keras file, the cut, the transform graph) and tracing it costs
seconds, so every process keeps the ones it built in a small memo keyed by
``ExtractorKey``: the sha256 of the model file's bytes, the sha256 of the transform
graph's files, the cut layer and the pooling. ``plan.make_plan`` puts the extractor it
builds there, so with the in-memory DirectRunner the RunInference worker, which runs in
the executor's process, reuses it instead of loading the model a second time, and a
rerun in the same process loads nothing. Keys are content digests, so a memo entry can
never stand for another model or graph. At most MEMO_SIZE extractors are kept.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
import tensorflow as tf

from components.common import transform_graph as transform_lib

MEMO_SIZE = 2


class ExtractorKey(NamedTuple):
    """What determines an extractor: the exact files, the cut and the pooling."""

    base_digest: str
    transform_digest: str
    cut_layer: str
    pooling: str


class Extractor:
    """The transform graph and the frozen extractor in one traced function.

    Call it with a sequence of encoded images; it returns float32 [n, dim].
    """

    def __init__(self, image_transform: transform_lib.ImageTransform, extractor, dim: int):
        self._transform = image_transform
        self._extractor = extractor
        self._dim = dim
        # No AutoGraph: nothing here branches on tensors, and converting the transform
        # layer's Python code cost about 13 s on the first trace in a fresh process.
        self._function = tf.function(
            self._compute, input_signature=[tf.TensorSpec([None], tf.string)], autograph=False
        )

    def _compute(self, encoded: tf.Tensor) -> tf.Tensor:
        images = self._transform(encoded)
        outputs = tf.cast(self._extractor(images, training=False), tf.float32)
        return tf.reshape(outputs, [-1, self._dim])

    def __call__(self, encoded_images: Sequence[bytes]) -> np.ndarray:
        return self._function(tf.constant(list(encoded_images), tf.string)).numpy()

    @property
    def dim(self) -> int:
        return self._dim

    def save(self, directory: str) -> None:
        """Exports the traced function (with the base's variables and the transform
        graph) as a TensorFlow SavedModel at `directory`, for SavedExtractor.load."""
        module = tf.Module()
        # Only the variables the function reads are tracked, not the Keras model or
        # tft's (tf_keras) transform layer: walking their object graphs cost 2.6 s for
        # MobileNetV2 against 1.2 s (and tracking the transform layer traced every
        # tf_keras call function again, 9 s for VGG16). The transform graph is inlined
        # in the traced function; one holding resources (tables, which preprocessing_fn
        # does not create) fails to export, and the cache then builds the extractor from
        # the Keras model as without an export.
        module.weights = [getattr(weight, "value", weight) for weight in self._extractor.weights]
        module.compute = self._function
        tf.saved_model.save(module, directory)


class SavedExtractor:
    """An Extractor exported with Extractor.save and loaded back: the same traced
    function, loaded without Keras deserialisation, tensorflow_transform or a trace."""

    def __init__(self, module, dim: int):
        self._module = module  # holds the variables the function reads
        self._function = module.compute
        self._dim = dim

    @classmethod
    def load(cls, directory: str, dim: int) -> SavedExtractor:
        return cls(tf.saved_model.load(directory), dim)

    @property
    def dim(self) -> int:
        return self._dim

    def __call__(self, encoded_images: Sequence[bytes]) -> np.ndarray:
        vectors = self._function(tf.constant(list(encoded_images), tf.string)).numpy()
        return vectors.reshape(-1, self._dim)


_lock = threading.Lock()
_memo: collections.OrderedDict[ExtractorKey, Extractor | SavedExtractor] = collections.OrderedDict()


def remember(key: ExtractorKey, extractor: Extractor | SavedExtractor) -> None:
    """Keeps `extractor` for `key` (the least recently used beyond MEMO_SIZE is dropped)."""
    with _lock:
        _memo[key] = extractor
        _memo.move_to_end(key)
        while len(_memo) > MEMO_SIZE:
            _memo.popitem(last=False)


def recall(key: ExtractorKey) -> Extractor | SavedExtractor | None:
    """The extractor remembered for `key`, or None."""
    with _lock:
        found = _memo.get(key)
        if found is not None:
            _memo.move_to_end(key)
        return found


def get_or_build(
    key: ExtractorKey, build: Callable[[], Extractor | SavedExtractor]
) -> Extractor | SavedExtractor:
    """The remembered extractor for `key`, or build() remembered (built once even when
    several threads of one process ask at the same time)."""
    found = recall(key)
    if found is not None:
        return found
    with _build_lock:
        found = recall(key)
        if found is None:
            found = build()
            remember(key, found)
        return found


def forget_all() -> None:
    """Empties this process's memo (tests use it to force a load)."""
    with _lock:
        _memo.clear()


_build_lock = threading.Lock()
