"""The pure Beam core of BottleneckCache: examples in, examples with bottlenecks out.

``ComputeBottlenecks`` (applied to a Pipeline) reads the examples of every split,
keys each record by the sha256 of its encoded image bytes (its content id), and joins
them with the entries of the cache namespace (store.py). The content id equals
ImageExampleGen's image_id unless it transcoded or downscaled the file; keying by
the bytes the transform actually decodes keeps the cache right even then (e.g. after
max_side changes). Job steps:

    Read<Split> -> Key<Split> --records--+
    ReadCache (one DoFn call per shard) -+-> JoinWithCache -> ResolveHits
        hits:   the cached vector is attached to every record of that content id
        misses: one (content id, image) per id -> ComputeVectors (RunInference with
                handler.BottleneckModelHandler) -> SplitFailures
                    vectors -> WriteCache (a new shard of this run)
                    vectors + failures + pending records -> JoinNewVectors
    hits + computed -> PartitionSplits -> per split: serialized tf.Examples

Output records are the input tf.Examples (image bytes, label, label_name, image_id...
unchanged) plus spec.BOTTLENECK_KEY, the flattened float32 vector. Records that
cannot be used (not a tf.Example, no image, an image TensorFlow cannot decode) go to
FAILED_OUTPUT as {"image_id", "split", "error"} and are counted, never fatal here.

Counts (COUNTS_OUTPUT, one dict with COUNT_NAMES plus split_count_name(split) for
every split): vectors computed (distinct content ids run through the model), vectors
reused (distinct content ids served from the cache), records failed, cache shards
skipped (unreadable), and the records written per split. Nothing is pulled through
the driver; ``write_outputs`` adds the file writes and ``read_counts`` reads the
counts back after the run.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import NamedTuple

import apache_beam as beam
import numpy as np
import tensorflow as tf
from apache_beam.ml.inference.base import PredictionResult, RunInference
from google.protobuf.message import DecodeError

from components.bottleneck_cache import spec, store
from components.bottleneck_cache.handler import (
    METRICS_NAMESPACE,
    BottleneckModelHandler,
    InferenceFailure,
)
from components.bottleneck_cache.plan import CachePlan, join
from components.image_example_gen.spec import IMAGE_ID_KEY, IMAGE_KEY
from components.tally import TallyFn

FAILED_OUTPUT = "failed"
COUNTS_OUTPUT = "counts"
SKIPPED_SHARDS_OUTPUT = store.SKIPPED_OUTPUT
NEW_SHARDS_OUTPUT = "new_shards"
COUNT_NAMES = (spec.PROP_COMPUTED, spec.PROP_REUSED, spec.PROP_FAILED, spec.PROP_SHARDS_SKIPPED)
TFRECORD_PREFIX = "data_tfrecord"  # what TFX's own ExampleGen writes

_RECORDS, _CACHED, _PENDING, _VECTORS, _ERRORS, _MISSES, _TALLY = (
    "records",
    "cached",
    "pending",
    "vectors",
    "errors",
    "misses",
    "tally",
)


class Record(NamedTuple):
    """One input example on its way through the job."""

    split: str
    image_id: str
    example: bytes  # the serialized input tf.Example


def content_id(image: bytes) -> str:
    """The cache key of an image: sha256 hex of its encoded bytes."""
    return hashlib.sha256(image).hexdigest()


def split_count_name(split: str) -> str:
    """Name of the count of records written to `split` (as in ImageExampleGen)."""
    return f"{split}_examples"


def split_uri(output_uri: str, split: str) -> str:
    """The standard Examples layout: ``<uri>/Split-<split>``."""
    return join(output_uri, f"Split-{split}")


def failure(image_id: str, split: str, error: str) -> dict:
    """A FAILED_OUTPUT record."""
    return {"image_id": image_id, "split": split, "error": error}


def with_bottleneck(example: bytes, vector: np.ndarray) -> bytes:
    """The serialized example with spec.BOTTLENECK_KEY set to the flattened vector."""
    parsed = tf.train.Example.FromString(example)
    feature = parsed.features.feature[spec.BOTTLENECK_KEY]
    feature.Clear()
    feature.float_list.value.extend(np.asarray(vector, np.float32).ravel())
    return parsed.SerializeToString()


def _label(split: str) -> str:
    """CamelCase step label part for a split name ("train" -> "Train")."""
    return "".join(part.capitalize() for part in re.split(r"[^0-9A-Za-z]+", split)) or "Split"


def _counter(name: str):
    return beam.metrics.Metrics.counter(METRICS_NAMESPACE, name)


class _KeyRecordDoFn(beam.DoFn):
    """Serialized record -> (content id, Record); unusable records go to FAILED_OUTPUT."""

    def __init__(self, split: str):
        self._split = split

    def setup(self):
        self._read = _counter("records_read")
        self._failed = _counter(spec.PROP_FAILED)

    def process(self, serialized: bytes) -> Iterator:
        self._read.inc()
        try:
            features = tf.train.Example.FromString(serialized).features.feature
        except DecodeError as error:
            self._failed.inc()
            digest = hashlib.sha256(serialized).hexdigest()
            message = f"record is not a tf.Example ({error}); record sha256 {digest}"
            yield beam.pvalue.TaggedOutput(FAILED_OUTPUT, failure("", self._split, message))
            return
        ids = features[IMAGE_ID_KEY].bytes_list.value if IMAGE_ID_KEY in features else []
        image_id = ids[0].decode("utf-8", "replace") if len(ids) == 1 else ""
        images = features[IMAGE_KEY].bytes_list.value if IMAGE_KEY in features else []
        if len(images) != 1 or not images[0]:
            self._failed.inc()
            message = f"record has no single non-empty {IMAGE_KEY!r} bytes feature"
            yield beam.pvalue.TaggedOutput(FAILED_OUTPUT, failure(image_id, self._split, message))
            return
        yield content_id(images[0]), Record(self._split, image_id, serialized)


def _image_of(record: Record) -> bytes:
    return (
        tf.train.Example.FromString(record.example).features.feature[IMAGE_KEY].bytes_list.value[0]
    )


class _ResolveHitsDoFn(beam.DoFn):
    """Per content id: attach a cached vector, or send one image to the model."""

    def setup(self):
        self._reused = _counter(spec.PROP_REUSED)

    def process(self, keyed: tuple[str, Mapping[str, Iterable]]) -> Iterator:
        key, grouped = keyed
        records = list(grouped[_RECORDS])
        if not records:  # a cache entry of an image not in this run
            return
        cached = next(iter(grouped[_CACHED]), None)  # duplicates across shards: keep one
        if cached is not None:
            self._reused.inc()
            yield beam.pvalue.TaggedOutput(_TALLY, {spec.PROP_REUSED: 1})
            for record in records:
                yield record.split, with_bottleneck(record.example, cached)
            return
        yield beam.pvalue.TaggedOutput(_MISSES, (key, _image_of(records[0])))
        for record in records:
            yield beam.pvalue.TaggedOutput(_PENDING, (key, record))


def _split_results(result: PredictionResult) -> Iterator:
    """PredictionResult -> (content id, vector), or (content id, error) on _ERRORS."""
    if isinstance(result.inference, InferenceFailure):
        yield beam.pvalue.TaggedOutput(_ERRORS, (result.example, result.inference.error))
    else:
        _counter(spec.PROP_COMPUTED).inc()
        yield result.example, np.asarray(result.inference, np.float32)


class _AttachNewDoFn(beam.DoFn):
    """Per content id: attach the new vector to the pending records, or fail them."""

    def setup(self):
        self._failed = _counter(spec.PROP_FAILED)

    def process(self, keyed: tuple[str, Mapping[str, Iterable]]) -> Iterator:
        _, grouped = keyed
        vector = next(iter(grouped[_VECTORS]), None)
        error = next(iter(grouped[_ERRORS]), "no vector was computed")
        for record in grouped[_PENDING]:
            if vector is not None:
                yield record.split, with_bottleneck(record.example, vector)
            else:
                self._failed.inc()
                yield beam.pvalue.TaggedOutput(
                    FAILED_OUTPUT, failure(record.image_id, record.split, error)
                )


class ComputeBottlenecks(beam.PTransform):
    """Examples of every split -> the same examples with their bottleneck vectors.

    Apply to a Pipeline. Returns a dict of PCollections:
      each split name: serialized tf.Examples with spec.BOTTLENECK_KEY added.
      FAILED_OUTPUT: {"image_id", "split", "error"} per unusable record.
      SKIPPED_SHARDS_OUTPUT: {"shard", "error"} per unreadable cache shard.
      NEW_SHARDS_OUTPUT: the paths of the cache shards this run wrote (none when no
        vector was computed).
      COUNTS_OUTPUT: one dict, see the module docstring.
    """

    def __init__(
        self,
        example_patterns: Mapping[str, str],
        plan: CachePlan,
        cache_dir: str,
        run_id: str,
        batch_size: int = 32,
    ):
        """Configures the job.

        Args:
          example_patterns: split name -> file pattern of its (gzipped) TFRecords.
          plan: what to compute (plan.make_plan), fixing the namespace.
          cache_dir: the cache root; entries live in plan.namespace_dir(cache_dir).
          run_id: unique id of this run, part of the new shards' names.
          batch_size: images per model call.
        """
        super().__init__()
        self._patterns = dict(example_patterns)
        self._plan = plan
        self._namespace_dir = plan.namespace_dir(cache_dir)
        self._run_id = run_id
        self._batch_size = batch_size

    def expand(self, pbegin: beam.pvalue.PBegin) -> dict:
        records, parse_failures = self._read_examples(pbegin)
        cached = pbegin | "ReadCache" >> store.ReadCacheEntries(self._namespace_dir, self._plan.dim)
        resolved = (
            {_RECORDS: records, _CACHED: cached.entries}
            | "JoinWithCache" >> beam.CoGroupByKey()
            | "ResolveHits"
            >> beam.ParDo(_ResolveHitsDoFn()).with_outputs(_MISSES, _PENDING, _TALLY, main="hits")
        )
        handler = BottleneckModelHandler(self._plan, self._batch_size)
        inferred = (
            resolved[_MISSES]
            | "ComputeVectors" >> RunInference(handler)
            | "SplitFailures" >> beam.FlatMap(_split_results).with_outputs(_ERRORS, main="vectors")
        )
        new_shards = inferred.vectors | "WriteCache" >> store.WriteCacheEntries(
            self._namespace_dir, self._run_id
        )
        attached = (
            {_PENDING: resolved[_PENDING], _VECTORS: inferred.vectors, _ERRORS: inferred[_ERRORS]}
            | "JoinNewVectors" >> beam.CoGroupByKey()
            | "AttachNewVectors"
            >> beam.ParDo(_AttachNewDoFn()).with_outputs(FAILED_OUTPUT, main="computed")
        )
        finished = (resolved.hits, attached.computed) | "FlattenFinished" >> beam.Flatten()
        failed = (*parse_failures, attached[FAILED_OUTPUT]) | "FlattenFailed" >> beam.Flatten()
        outputs = self._partition(finished)
        outputs[FAILED_OUTPUT] = failed
        outputs[SKIPPED_SHARDS_OUTPUT] = cached[store.SKIPPED_OUTPUT]
        outputs[NEW_SHARDS_OUTPUT] = new_shards
        outputs[COUNTS_OUTPUT] = _count(
            computed=inferred.vectors,
            reused=resolved[_TALLY],
            failed=failed,
            skipped=outputs[SKIPPED_SHARDS_OUTPUT],
            finished=finished,
            splits=list(self._patterns),
        )
        return outputs

    def _read_examples(self, pbegin) -> tuple[beam.PCollection, list]:
        keyed, failures = [], []
        for split, pattern in self._patterns.items():
            label = _label(split)
            result = (
                pbegin
                | f"Pattern{label}" >> beam.Create([pattern])
                | f"Read{label}" >> beam.io.ReadAllFromTFRecord()
                | f"Key{label}"
                >> beam.ParDo(_KeyRecordDoFn(split)).with_outputs(FAILED_OUTPUT, main="records")
            )
            keyed.append(result.records)
            failures.append(result[FAILED_OUTPUT])
        return keyed | "FlattenRecords" >> beam.Flatten(), failures

    def _partition(self, finished: beam.PCollection) -> dict:
        splits = list(self._patterns)
        index = {split: i for i, split in enumerate(splits)}
        parts = finished | "PartitionSplits" >> beam.Partition(
            lambda kv, _: index[kv[0]], len(splits)
        )
        return {
            split: parts[i] | f"Values{_label(split)}" >> beam.Values()
            for i, split in enumerate(splits)
        }


def _count(computed, reused, failed, skipped, finished, splits) -> beam.PCollection:
    """One dict of counts (COUNT_NAMES and records per split), each from its PCollection."""
    tallies = (
        computed | "TallyComputed" >> beam.Map(lambda _: {spec.PROP_COMPUTED: 1}),
        reused,
        failed | "TallyFailed" >> beam.Map(lambda _: {spec.PROP_FAILED: 1}),
        skipped | "TallySkipped" >> beam.Map(lambda _: {spec.PROP_SHARDS_SKIPPED: 1}),
        finished | "TallyWritten" >> beam.Map(lambda kv: {split_count_name(kv[0]): 1}),
    )
    names = COUNT_NAMES + tuple(split_count_name(s) for s in splits)
    return (
        tallies
        | "FlattenTallies" >> beam.Flatten()
        | "SumTallies" >> beam.CombineGlobally(TallyFn(names))
    )


# --- files -------------------------------------------------------------------------------


def write_outputs(outputs: dict, output_uri: str, splits: Sequence[str]) -> None:
    """Adds the writes: per split ``Split-<split>/data_tfrecord-*.gz``, FAILED_FILE
    (JSON lines sorted by split, image_id, error) and COUNTS_FILE (one JSON object)."""
    for split in splits:
        prefix = join(split_uri(output_uri, split), TFRECORD_PREFIX)
        _ = outputs[split] | f"Write{_label(split)}" >> beam.io.WriteToTFRecord(
            prefix, file_name_suffix=".gz"
        )
    for output, name, formatter in (
        (FAILED_OUTPUT, spec.FAILED_FILE, _failed_lines),
        (COUNTS_OUTPUT, spec.COUNTS_FILE, _counts_json),
    ):
        label = _label(output)
        _ = (
            outputs[output]
            | f"Collect{label}" >> beam.combiners.ToList()
            | f"Format{label}" >> beam.Map(formatter)
            | f"Write{label}File"
            >> beam.io.WriteToText(
                join(output_uri, name),
                shard_name_template="",
                num_shards=1,
                append_trailing_newlines=False,
            )
        )


def _failed_lines(records: list) -> str:
    records = sorted(records, key=lambda r: (r["split"], r["image_id"], r["error"]))
    return "".join(json.dumps(r, sort_keys=True, ensure_ascii=False) + "\n" for r in records)


def _counts_json(counts: list) -> str:
    return json.dumps(counts[0], sort_keys=True) + "\n"


def read_counts(output_uri: str) -> dict:
    """The counts written by write_outputs."""
    with tf.io.gfile.GFile(join(output_uri, spec.COUNTS_FILE)) as f:
        return json.load(f)


def read_failures(output_uri: str) -> list[dict]:
    """The failure records written by write_outputs."""
    with tf.io.gfile.GFile(join(output_uri, spec.FAILED_FILE)) as f:
        return [json.loads(line) for line in f.read().splitlines() if line]
