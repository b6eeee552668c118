"""What one BottleneckCache run computes, and where its cache entries live.

``make_plan`` loads the base network and the transform graph once, in the executor's
process, to resolve the cut layer (``components.common.model_surgery``, as the Trainer does),
check that the base accepts the transform's images, read the bottleneck shape and
compute the two fingerprints. No example is read here: the vectors are computed by
the Beam workers (handler.py).

Loading is what costs (seconds for a MobileNetV2), so it is done at most once per
process: the plan records the sha256 of the model file's bytes and of the transform
graph's files, a plan already made in this process for the same digests and
arguments is reused as is, and the extractor built here is remembered
(extractor.py) for the RunInference worker of the same process. With a cache_dir
(the executor passes it), the plan is also stored beside the cache namespaces
(prepared.py), so a later process (every run on Kubeflow) with the same files and
arguments makes it without loading the model or the transform graph.

Cache namespace: sha256 of (format version, base fingerprint, resolved cut layer,
applied pooling, transform fingerprint), truncated to NAMESPACE_CHARS hex digits.
``<cache_dir>/<namespace>/`` holds ``namespace.json`` (what the namespace stands for,
human-readable) and the entry shards ``entries-<run id>-*.tfrecord.gz`` (store.py).
Any change of the base's weights or architecture, the cut point, the pooling or the
preprocessing gives a new namespace, so nothing stale is ever reused.

``cut_layer: auto`` (the Trainer chooses the cut): the plan has one ``Segment`` per
candidate layer, each with its own namespace, computed exactly as for a plan of that
one cut (so a fixed-cut run's vectors are reused by an auto run, and adding a candidate
later computes only that candidate's entries). One extractor
(``model_surgery.multi_extractor``) computes every candidate in the same forward pass
and returns their vectors concatenated; the job splits the vector by segment. A
one-cut plan has one segment; its output feature is ``examples.BOTTLENECK_KEY``, a
candidate's is ``examples.candidate_key(layer)``.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import threading
import uuid
from typing import Any

import numpy as np
import tensorflow as tf
from absl import logging

from components.bottleneck_cache import base_file, prepared, spec
from components.bottleneck_cache import extractor as extractor_lib
from components.common import model_surgery
from components.common import transform_graph as transform_lib
from components.common.artifact_io import join
from components.common.examples import BOTTLENECK_KEY, candidate_key

CACHE_FORMAT_VERSION = 1  # bump when the entry format or the vector semantics change
NAMESPACE_CHARS = 24
NAMESPACE_FILE = "namespace.json"
_PLAN_MEMO_SIZE = 8


@dataclasses.dataclass(frozen=True)
class Segment:
    """One cut's part of the vector the extractor returns, and where it is cached."""

    layer: str
    pooling: str  # applied ("none" for a non-spatial output)
    shape: tuple[int, ...]
    namespace: str
    feature: str  # the output records' float-list feature
    offset: int  # where this cut's values start in the extractor's vector
    base_fingerprint: str  # base_file.fingerprint of the base cut at this layer

    @property
    def dim(self) -> int:
        return int(np.prod(self.shape))

    def namespace_dir(self, cache_dir: str) -> str:
        return join(cache_dir, self.namespace)

    def to_dict(self) -> dict[str, Any]:
        return {
            "layer": self.layer,
            "pooling": self.pooling,
            "shape": list(self.shape),
            "dim": self.dim,
            "namespace": self.namespace,
            "feature": self.feature,
            "base_fingerprint": self.base_fingerprint,
        }


@dataclasses.dataclass(frozen=True)
class CachePlan:
    """Everything a Beam worker needs to compute and store vectors (picklable).

    Attributes:
        base_model_uri: the Model artifact's uri (directory with model.keras).
        transform_uri: the TransformGraph artifact's uri.
        cut_layer: the resolved cut layer name.
        pooling: the pooling applied ("none" when the cut output is not rank 4).
        base_fingerprint: base_file.fingerprint of the cut sub-model.
        transform_fingerprint: transform_graph.transform_fingerprint of the graph.
        shape: the bottleneck shape per image, before flattening.
        namespace: the cache namespace (see module docstring).
        base_digest: sha256 of the base's .keras file bytes the plan was made from.
        transform_digest: transform_graph.graph_digest of the transform graph.
        segments: the cut(s) the extractor computes, each with its own namespace
            (one for a fixed cut: cut_layer, pooling, shape and namespace above).
        prepared_dir: where this plan and its exported extractor are kept for later
            processes (prepared.py), or "" (make_plan without cache_dir).
        For cut_layer "auto", cut_layer is "auto", namespace lists the segments'
        namespaces and shape is the concatenated vector's.
    """

    base_model_uri: str
    transform_uri: str
    cut_layer: str
    pooling: str
    base_fingerprint: str
    transform_fingerprint: str
    shape: tuple[int, ...]
    namespace: str
    base_digest: str = ""
    transform_digest: str = ""
    segments: tuple[Segment, ...] = ()
    prepared_dir: str = ""

    @property
    def auto(self) -> bool:
        return self.cut_layer == model_surgery.CUT_AUTO

    @property
    def extractor_key(self) -> extractor_lib.ExtractorKey:
        """The key of this plan's extractor in the process memo (extractor.py)."""
        cut = ",".join(segment.layer for segment in self.segments) or self.cut_layer
        return extractor_lib.ExtractorKey(
            self.base_digest, self.transform_digest, cut, self.pooling
        )

    @property
    def dim(self) -> int:
        """Length of the flattened bottleneck vector."""
        return int(np.prod(self.shape))

    def namespace_dir(self, cache_dir: str) -> str:
        """``<cache_dir>/<namespace>`` of a fixed cut (cut auto: each segment has its own).

        Raises:
            ValueError: a cut auto plan.
        """
        if len(self.segments) > 1:
            raise ValueError("a cut auto plan has one namespace per segment: use segments")
        return join(cache_dir, self.namespace)


def frozen_extractor(base: Any, plan: CachePlan):
    """The frozen model the plan's vectors come from: the base cut at the plan's layer
    and pooled, or for cut_layer "auto" every candidate in one forward pass,
    concatenated (model_surgery.multi_extractor)."""
    if plan.auto:
        layers = [segment.layer for segment in plan.segments]
        return model_surgery.multi_extractor(base, layers, plan.pooling)
    return model_surgery.freeze_extractor(
        model_surgery.cut_base(base, plan.cut_layer), plan.pooling
    )


def plan_record(plan: CachePlan) -> dict[str, Any]:
    """The plan as JSON-able values, without what depends on where the files are."""
    record = dataclasses.asdict(plan)
    for name in ("base_model_uri", "transform_uri", "prepared_dir"):
        del record[name]
    return record


def plan_from_record(record: dict[str, Any], **where: str) -> CachePlan:
    """The CachePlan of plan_record(plan), at the uris given in `where`.

    Raises:
        KeyError, TypeError, ValueError: not a record of this format.
    """
    expected = {field.name for field in dataclasses.fields(CachePlan)} - set(where)
    if set(record) != expected:  # a field added or removed since it was written
        raise KeyError(f"plan record fields {sorted(set(record) ^ expected)} differ")
    segments = tuple(
        Segment(**{**segment, "shape": tuple(segment["shape"])}) for segment in record["segments"]
    )
    fields = {**record, "shape": tuple(record["shape"]), "segments": segments, **where}
    return CachePlan(**fields)


def validate_parameters(
    cut_layer: Any,
    drop_top_layers: Any,
    pooling: Any,
    batch_size: Any,
    cache_dir: Any,
    cut_candidates: Any = (),
) -> None:
    """Raises ValueError naming the argument and its allowed values."""
    if not isinstance(cache_dir, str) or not cache_dir.strip():
        raise ValueError(f"cache_dir must be a non-empty folder path or URI, got {cache_dir!r}")
    if not isinstance(cut_layer, str):
        raise ValueError(f"cut_layer must be a layer name (str, '' for none), got {cut_layer!r}")
    spec.BOUNDS[spec.DROP_TOP_LAYERS_KEY].check(spec.DROP_TOP_LAYERS_KEY, drop_top_layers)
    if cut_layer and drop_top_layers:
        raise ValueError(
            f"set cut_layer or drop_top_layers, not both (got cut_layer={cut_layer!r}, "
            f"drop_top_layers={drop_top_layers})"
        )
    model_surgery.check_pooling(pooling)
    spec.BOUNDS[spec.BATCH_SIZE_KEY].check(spec.BATCH_SIZE_KEY, batch_size)
    if not isinstance(cut_candidates, (list, tuple)) or not all(
        isinstance(name, str) and name for name in cut_candidates
    ):
        raise ValueError(f"cut_candidates must be a list of layer names, got {cut_candidates!r}")
    if cut_candidates and cut_layer != model_surgery.CUT_AUTO:
        raise ValueError(
            f"cut_candidates {list(cut_candidates)} are only used with cut_layer "
            f"{model_surgery.CUT_AUTO!r} (got cut_layer={cut_layer!r}): set cut_layer: auto "
            "or remove cut_candidates"
        )


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
    cut_candidates: tuple[str, ...] = (),
    cache_dir: str = "",
) -> CachePlan:
    """Fixes what the run computes, loading the base and the transform at most once per
    process, and not at all when an earlier process stored the plan for the same files
    and arguments under `cache_dir` (prepared.py).

    Args:
        base_model_uri: the Model artifact's uri (directory holding model.keras).
        transform_uri: the TransformGraph artifact's uri.
        cut_layer: name of the last kept layer, or "" to use drop_top_layers.
        drop_top_layers: layers dropped from the top when cut_layer is "".
        pooling: one of model_surgery.POOLINGS (applied only to a rank-4 cut output).
        cut_candidates: with cut_layer "auto", the candidate layers (empty: the base's
            block boundaries, model_surgery.default_cut_candidates).
        cache_dir: the persistent cache root; "" keeps nothing for later processes.

    Returns:
        The CachePlan, with the resolved cut layer, the applied pooling, the
        bottleneck shape and the namespace.

    Raises:
        FileNotFoundError: no model.keras at base_model_uri.
        ValueError: bad cut_layer / drop_top_layers / pooling (with the valid values),
            or a base whose input does not accept the transform's images.
    """
    data, base_digest = base_file.read_base(base_model_uri)
    transform_digest = transform_lib.graph_digest(transform_uri)
    memo_key = (
        base_digest,
        transform_digest,
        cut_layer,
        drop_top_layers,
        pooling,
        tuple(cut_candidates),
    )
    where = {"base_model_uri": base_model_uri, "transform_uri": transform_uri, "prepared_dir": ""}
    if cache_dir:
        key = prepared.prepared_key(CACHE_FORMAT_VERSION, memo_key)
        where["prepared_dir"] = prepared.prepared_dir(cache_dir, key)
    with _plans_lock:
        known = _plans.get(memo_key)
    if known is not None:
        return dataclasses.replace(known, **where)
    stored = _stored_plan(where["prepared_dir"], where)
    if stored is not None:
        _remember_plan(memo_key, stored)
        return stored
    base = base_file.load_bytes(data)
    del data
    image_transform = transform_lib.load_image_transform(transform_uri)
    transform_fp, probes = transform_lib.transform_fingerprint(image_transform)
    model_surgery.check_input_size(
        base,
        probes.shape[1],
        probes.shape[2],
        source=f"the transform graph's output ({transform_uri})",
        fix="set the image size in the config to the base network's input size",
    )
    if cut_layer == model_surgery.CUT_AUTO:
        layers = model_surgery.resolve_cut_candidates(base, cut_candidates)
    else:
        layers = [model_surgery.resolve_cut_layer(base, cut_layer, drop_top_layers)]
    segments, offset = [], 0
    for layer in layers:
        cut = model_surgery.cut_base(base, layer)
        applied = model_surgery.applied_pooling(cut, pooling)
        frozen = model_surgery.freeze_extractor(cut, applied)
        shape = tuple(frozen.outputs[0].shape[1:])
        if any(d is None for d in shape):  # measured on a probe image
            shape = tuple(frozen(probes[:1], training=False).shape[1:])
        shape = tuple(int(d) for d in shape)
        base_fp = base_file.fingerprint(cut)
        namespace = namespace_id(base_fp, layer, applied, transform_fp)
        feature = candidate_key(layer) if cut_layer == model_surgery.CUT_AUTO else BOTTLENECK_KEY
        segments.append(Segment(layer, applied, shape, namespace, feature, offset, base_fp))
        offset += int(np.prod(shape))
    if cut_layer == model_surgery.CUT_AUTO:
        plan = CachePlan(
            **where,
            cut_layer=model_surgery.CUT_AUTO,
            pooling=pooling,
            base_fingerprint=segments[-1].base_fingerprint,
            transform_fingerprint=transform_fp,
            shape=(offset,),
            namespace=",".join(segment.namespace for segment in segments),
            base_digest=base_digest,
            transform_digest=transform_digest,
            segments=tuple(segments),
        )
    else:
        (segment,) = segments
        plan = CachePlan(
            **where,
            cut_layer=segment.layer,
            pooling=segment.pooling,
            base_fingerprint=segment.base_fingerprint,
            transform_fingerprint=transform_fp,
            shape=segment.shape,
            namespace=segment.namespace,
            base_digest=base_digest,
            transform_digest=transform_digest,
            segments=(segment,),
        )
    extractor_lib.remember(
        plan.extractor_key,
        extractor_lib.Extractor(image_transform, frozen_extractor(base, plan), plan.dim),
    )
    if plan.prepared_dir:
        prepared.write_plan(plan.prepared_dir, plan_record(plan))
    _remember_plan(memo_key, plan)
    return plan


def _stored_plan(directory: str, where: dict[str, str]) -> CachePlan | None:
    """The plan an earlier process stored in `directory` (prepared.py), or None."""
    record = prepared.read_plan(directory) if directory else None
    if record is None:
        return None
    try:
        return plan_from_record(record, **where)
    except (KeyError, TypeError, ValueError) as error:
        logging.warning("BottleneckCache: ignoring the stored plan in %s: %s", directory, error)
        return None


def _remember_plan(memo_key: tuple, plan: CachePlan) -> None:
    with _plans_lock:
        _plans[memo_key] = plan
        while len(_plans) > _PLAN_MEMO_SIZE:
            del _plans[next(iter(_plans))]


def forget_plans() -> None:
    """Empties this process's plan memo (tests use it to act as a fresh process)."""
    with _plans_lock:
        _plans.clear()


_plans_lock = threading.Lock()
_plans: dict[tuple, CachePlan] = {}


def new_run_id() -> str:
    """A unique, sortable run id for entry shard names: UTC time + random suffix."""
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return f"{now}-{uuid.uuid4().hex[:12]}"


def write_namespace_file(cache_dir: str, plan: CachePlan, segment: Segment | None = None) -> str:
    """Creates ``<cache_dir>/<namespace>/namespace.json`` unless present; returns the dir.

    For `segment` (default: the plan's only one). Written to a unique temporary name and
    renamed, so readers never see half a file.
    """
    if segment is None:
        (segment,) = plan.segments
    directory = segment.namespace_dir(cache_dir)
    tf.io.gfile.makedirs(directory)
    path = join(directory, NAMESPACE_FILE)
    if tf.io.gfile.exists(path):
        return directory
    description = {
        "namespace": segment.namespace,
        "cache_format_version": CACHE_FORMAT_VERSION,
        "base_fingerprint": segment.base_fingerprint,
        "cut_layer": segment.layer,
        "pooling": segment.pooling,
        "transform_fingerprint": plan.transform_fingerprint,
        "bottleneck_shape": list(segment.shape),
        "bottleneck_dim": segment.dim,
        "first_base_model_uri": plan.base_model_uri,
        "first_transform_uri": plan.transform_uri,
    }
    partial = join(directory, f".{NAMESPACE_FILE}.{uuid.uuid4().hex}.tmp")
    with tf.io.gfile.GFile(partial, "w") as f:
        f.write(json.dumps(description, indent=2, sort_keys=True) + "\n")
    tf.io.gfile.rename(partial, path, overwrite=True)
    return directory
