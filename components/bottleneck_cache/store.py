"""The persistent entry store of one cache namespace: shard files of (content id, vector).

Layout under ``<cache_dir>/<namespace>/`` (see plan.py for the namespace):

* ``entries-<run id>-SSSSS-of-NNNNN.tfrecord.gz``: gzipped TFRecords, one small
  tf.Example per vector: ENTRY_ID_KEY (sha256 hex of the encoded image bytes) and
  spec.BOTTLENECK_KEY (the flattened float32 vector). Every run writes new shards
  under its own run id and never touches other files.
* Atomicity comes from Beam's file sink: WriteToTFRecord writes into a temporary
  ``beam-temp-entries-<run id>-<uuid>/`` sub-directory and renames complete files to
  their final names when the write is finalized. SHARD_GLOB matches file names in
  the namespace directory only, so temporary files never match; a run killed part
  way leaves either complete shards or nothing.
* Readers still distrust every shard: a shard that cannot be read to its end (a
  truncated or corrupt file, a record that is not a valid entry) is skipped whole,
  with a warning and a count, and its vectors are simply recomputed. Entries for the
  same id in several shards (a crash after a shard was finalized, concurrent runs)
  are allowed; the join keeps one.
* An empty shard (a run that computed nothing) is deleted right after it is written.
"""

from __future__ import annotations

from collections.abc import Iterator

import apache_beam as beam
import numpy as np
import tensorflow as tf
from absl import logging
from apache_beam.io import fileio
from apache_beam.io.filesystem import CompressionTypes
from google.protobuf.message import DecodeError

from components.bottleneck_cache import spec
from components.bottleneck_cache.handler import METRICS_NAMESPACE
from components.bottleneck_cache.plan import join

ENTRY_ID_KEY = "content_id"  # bytes: sha256 hex of the encoded image bytes
SHARD_PREFIX = "entries"
SHARD_SUFFIX = ".tfrecord.gz"
SHARD_GLOB = f"{SHARD_PREFIX}-*{SHARD_SUFFIX}"
SKIPPED_OUTPUT = "skipped_shards"  # {"shard", "error"} per unreadable shard


def shard_pattern(namespace_dir: str) -> str:
    """The glob that matches exactly the complete entry shards of a namespace."""
    return join(namespace_dir, SHARD_GLOB)


def shard_prefix(namespace_dir: str, run_id: str) -> str:
    """The file_path_prefix of one run's shards."""
    return join(namespace_dir, f"{SHARD_PREFIX}-{run_id}")


def encode_entry(content_id: str, vector: np.ndarray) -> bytes:
    """A serialized entry tf.Example."""
    train = tf.train
    features = {
        ENTRY_ID_KEY: train.Feature(bytes_list=train.BytesList(value=[content_id.encode()])),
        spec.BOTTLENECK_KEY: train.Feature(
            float_list=train.FloatList(value=np.asarray(vector, np.float32).ravel())
        ),
    }
    return train.Example(features=train.Features(feature=features)).SerializeToString()


def decode_entry(record: bytes, dim: int) -> tuple[str, np.ndarray]:
    """(content id, float32 vector) of a serialized entry.

    Raises:
        ValueError: not an entry of a dim-long vector.
    """
    try:
        features = tf.train.Example.FromString(record).features.feature
    except DecodeError as error:
        raise ValueError(f"not a tf.Example: {error}") from error
    ids = features[ENTRY_ID_KEY].bytes_list.value
    values = features[spec.BOTTLENECK_KEY].float_list.value
    if len(ids) != 1 or len(values) != dim:
        raise ValueError(
            f"entry must have one {ENTRY_ID_KEY!r} and {dim} floats in "
            f"{spec.BOTTLENECK_KEY!r}; got {len(ids)} ids and {len(values)} floats"
        )
    return ids[0].decode(), np.asarray(values, np.float32)


def read_shard(path: str, dim: int) -> list[tuple[str, np.ndarray]]:
    """Every entry of one shard; raises when any part of it cannot be read.

    Raises:
        tf.errors.OpError: the file is missing, truncated or fails a checksum.
        ValueError: a record is not a valid entry.
    """
    dataset = tf.data.TFRecordDataset(path, compression_type="GZIP")
    return [decode_entry(record.numpy(), dim) for record in dataset]


class _ReadShardDoFn(beam.DoFn):
    """Shard path -> its (content id, vector) entries, or a SKIPPED_OUTPUT record."""

    def __init__(self, dim: int):
        self._dim = dim

    def setup(self):
        self._skipped = beam.metrics.Metrics.counter(METRICS_NAMESPACE, spec.PROP_SHARDS_SKIPPED)
        self._read = beam.metrics.Metrics.counter(METRICS_NAMESPACE, "cache_entries_read")

    def process(self, path: str) -> Iterator:
        try:
            entries = read_shard(path, self._dim)
        except (tf.errors.OpError, ValueError) as error:
            message = getattr(error, "message", None) or str(error)
            logging.warning("Skipping unreadable cache shard %s: %s", path, message)
            self._skipped.inc()
            yield beam.pvalue.TaggedOutput(SKIPPED_OUTPUT, {"shard": path, "error": message})
            return
        self._read.inc(len(entries))
        yield from entries


class ReadCacheEntries(beam.PTransform):
    """PBegin -> (content id, vector) of every readable shard, plus skipped shards.

    Returns a DoOutputsTuple: ``.entries`` and ``[SKIPPED_OUTPUT]`` ({"shard",
    "error"} per unreadable shard). Files are listed inside the pipeline (MatchFiles),
    each shard read by one DoFn call.
    """

    def __init__(self, namespace_dir: str, dim: int):
        super().__init__()
        self._pattern = shard_pattern(namespace_dir)
        self._dim = dim

    def expand(self, pbegin):
        return (
            pbegin
            | "MatchShards" >> fileio.MatchFiles(self._pattern, fileio.EmptyMatchTreatment.ALLOW)
            | "ShardPath" >> beam.Map(lambda metadata: metadata.path)
            | "ReshuffleShards" >> beam.Reshuffle()
            | "ReadShard"
            >> beam.ParDo(_ReadShardDoFn(self._dim)).with_outputs(SKIPPED_OUTPUT, main="entries")
        )


def _drop_if_empty(path: str) -> Iterator[str]:
    """Deletes a just-written shard without records; yields the paths that remain."""
    if any(True for _ in tf.data.TFRecordDataset(path, compression_type="GZIP").take(1)):
        yield path
    else:
        tf.io.gfile.remove(path)


class WriteCacheEntries(beam.PTransform):
    """(content id, vector) -> a new shard set of this run; returns the kept shard paths."""

    def __init__(self, namespace_dir: str, run_id: str):
        super().__init__()
        self._prefix = shard_prefix(namespace_dir, run_id)

    def expand(self, vectors):
        return (
            vectors
            | "EncodeEntries" >> beam.MapTuple(encode_entry)
            | "WriteShards"
            >> beam.io.WriteToTFRecord(
                self._prefix,
                file_name_suffix=SHARD_SUFFIX,
                compression_type=CompressionTypes.GZIP,
            )
            | "DropEmptyShard" >> beam.FlatMap(_drop_if_empty)
        )
