"""What one BottleneckCache run computes, and where its cache entries live.

``make_plan`` loads the base network and the transform graph once, in the executor's
process, to resolve the cut layer, check that the base accepts the transform's images,
measure the bottleneck shape and compute the two fingerprints. No example is read
here: the vectors are computed by the Beam workers (handler.py), which load the
models themselves.

Cache namespace: sha256 of (format version, base fingerprint, resolved cut layer,
applied pooling, transform fingerprint), truncated to NAMESPACE_CHARS hex digits.
``<cache_dir>/<namespace>/`` holds ``namespace.json`` (what the namespace stands for,
human-readable) and the entry shards ``entries-<run id>-*.tfrecord.gz`` (store.py).
Any change of the base's weights or architecture, the cut point, the pooling or the
preprocessing gives a new namespace, so nothing stale is ever reused.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import os
import posixpath
import uuid
from typing import Any

import numpy as np
import tensorflow as tf

from components.bottleneck_cache import bases, spec
from components.bottleneck_cache import transform as transform_lib

CACHE_FORMAT_VERSION = 1  # bump when the entry format or the vector semantics change
NAMESPACE_CHARS = 24
NAMESPACE_FILE = "namespace.json"


@dataclasses.dataclass(frozen=True)
class CachePlan:
    """Everything a Beam worker needs to compute and store vectors (picklable).

    Attributes:
        base_model_uri: the Model artifact's uri (directory with model.keras).
        transform_uri: the TransformGraph artifact's uri.
        cut_layer: the resolved cut layer name.
        pooling: the pooling applied ("none" when the cut output is not rank 4).
        base_fingerprint: bases.fingerprint of the cut sub-model.
        transform_fingerprint: transform.transform_fingerprint of the graph.
        shape: the bottleneck shape per image, before flattening.
        namespace: the cache namespace (see module docstring).
    """

    base_model_uri: str
    transform_uri: str
    cut_layer: str
    pooling: str
    base_fingerprint: str
    transform_fingerprint: str
    shape: tuple[int, ...]
    namespace: str

    @property
    def dim(self) -> int:
        """Length of the flattened bottleneck vector."""
        return int(np.prod(self.shape))

    def namespace_dir(self, cache_dir: str) -> str:
        """``<cache_dir>/<namespace>``."""
        return join(cache_dir, self.namespace)


def join(directory: str, name: str) -> str:
    """os.path.join for local paths, "/" for URLs such as gs://bucket/dir."""
    return posixpath.join(directory, name) if "://" in directory else os.path.join(directory, name)


def validate_parameters(
    cut_layer: Any, drop_top_layers: Any, pooling: Any, batch_size: Any, cache_dir: Any
) -> None:
    """Raises ValueError naming the argument and its allowed values."""
    if not isinstance(cache_dir, str) or not cache_dir.strip():
        raise ValueError(f"cache_dir must be a non-empty folder path or URI, got {cache_dir!r}")
    if not isinstance(cut_layer, str):
        raise ValueError(f"cut_layer must be a layer name (str, '' for none), got {cut_layer!r}")
    if isinstance(drop_top_layers, bool) or not isinstance(drop_top_layers, int):
        raise ValueError(f"drop_top_layers must be an integer >= 0, got {drop_top_layers!r}")
    if drop_top_layers < 0:
        raise ValueError(f"drop_top_layers must be an integer >= 0, got {drop_top_layers!r}")
    if cut_layer and drop_top_layers:
        raise ValueError(
            f"set cut_layer or drop_top_layers, not both (got cut_layer={cut_layer!r}, "
            f"drop_top_layers={drop_top_layers})"
        )
    if pooling not in spec.POOLINGS:
        raise ValueError(f"pooling must be one of {list(spec.POOLINGS)}, got {pooling!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")


def namespace_id(
    base_fingerprint: str, cut_layer: str, pooling: str, transform_fingerprint: str
) -> str:
    """The cache namespace: a truncated sha256 of what determines the vectors."""
    key = json.dumps(
        [CACHE_FORMAT_VERSION, base_fingerprint, cut_layer, pooling, transform_fingerprint]
    )
    return hashlib.sha256(key.encode()).hexdigest()[:NAMESPACE_CHARS]


def make_plan(
    base_model_uri: str,
    transform_uri: str,
    cut_layer: str = "",
    drop_top_layers: int = 0,
    pooling: str = "avg",
) -> CachePlan:
    """Loads the base and the transform once and fixes what the run computes.

    Args:
        base_model_uri: the Model artifact's uri (directory holding model.keras).
        transform_uri: the TransformGraph artifact's uri.
        cut_layer: name of the last kept layer, or "" to use drop_top_layers.
        drop_top_layers: layers dropped from the top when cut_layer is "".
        pooling: one of spec.POOLINGS (applied only to a rank-4 cut output).

    Returns:
        The CachePlan, with the resolved cut layer, the applied pooling, the
        bottleneck shape (measured on a probe image) and the namespace.

    Raises:
        FileNotFoundError: no model.keras at base_model_uri.
        ValueError: bad cut_layer / drop_top_layers / pooling (with the valid values),
            or a base whose input does not accept the transform's images.
    """
    base = bases.load_base(base_model_uri)
    resolved = bases.resolve_cut_layer(base, cut_layer, drop_top_layers)
    sub_model = bases.cut_model(base, resolved)
    extractor = bases.build_extractor(sub_model, pooling)
    image_transform = transform_lib.load_image_transform(transform_uri)
    transform_fp, probes = transform_lib.transform_fingerprint(image_transform)
    _check_input(base, probes.shape[1:], base_model_uri)
    shape = tuple(int(d) for d in extractor(probes[:1], training=False).shape[1:])
    applied = bases.effective_pooling(sub_model, pooling)
    base_fp = bases.fingerprint(sub_model)
    return CachePlan(
        base_model_uri=base_model_uri,
        transform_uri=transform_uri,
        cut_layer=resolved,
        pooling=applied,
        base_fingerprint=base_fp,
        transform_fingerprint=transform_fp,
        shape=shape,
        namespace=namespace_id(base_fp, resolved, applied, transform_fp),
    )


def _check_input(base, image_shape: tuple[int, ...], base_model_uri: str) -> None:
    expected = tuple(base.inputs[0].shape[1:]) if len(base.inputs) == 1 else None
    if expected is None or len(expected) != len(image_shape):
        raise ValueError(
            f"base model {base.name!r} ({base_model_uri}) must take one image input "
            f"[batch, height, width, 3]; its inputs are {[tuple(i.shape) for i in base.inputs]}"
        )
    if any(want not in (None, got) for want, got in zip(expected, image_shape, strict=True)):
        raise ValueError(
            f"base model {base.name!r} expects images of shape {expected}, but the transform "
            f"graph produces {tuple(image_shape)}: set the image size in the config to the "
            "base network's input size"
        )


def new_run_id() -> str:
    """A unique, sortable run id for entry shard names: UTC time + random suffix."""
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return f"{now}-{uuid.uuid4().hex[:12]}"


def write_namespace_file(cache_dir: str, plan: CachePlan) -> str:
    """Creates ``<cache_dir>/<namespace>/namespace.json`` unless present; returns the dir.

    Written to a unique temporary name and renamed, so readers never see half a file.
    """
    directory = plan.namespace_dir(cache_dir)
    tf.io.gfile.makedirs(directory)
    path = join(directory, NAMESPACE_FILE)
    if tf.io.gfile.exists(path):
        return directory
    description = {
        "namespace": plan.namespace,
        "cache_format_version": CACHE_FORMAT_VERSION,
        "base_fingerprint": plan.base_fingerprint,
        "cut_layer": plan.cut_layer,
        "pooling": plan.pooling,
        "transform_fingerprint": plan.transform_fingerprint,
        "bottleneck_shape": list(plan.shape),
        "bottleneck_dim": plan.dim,
        "first_base_model_uri": plan.base_model_uri,
        "first_transform_uri": plan.transform_uri,
    }
    partial = join(directory, f".{NAMESPACE_FILE}.{uuid.uuid4().hex}.tmp")
    with tf.io.gfile.GFile(partial, "w") as f:
        f.write(json.dumps(description, indent=2, sort_keys=True) + "\n")
    tf.io.gfile.rename(partial, path, overwrite=True)
    return directory
