"""The pure Beam core of BottleneckCache: examples in, examples with bottlenecks out.

``ComputeBottlenecks`` (applied to a Pipeline) reads the examples of every split and
the entry shards of the cache namespace, keys both by content id (the sha256 of the
encoded image bytes), joins them in one GroupByKey, computes the missing vectors with
RunInference and writes everything. The content id equals ImageExampleGen's image_id
unless it transcoded or downscaled the file; keying by the bytes the transform
actually decodes keeps the cache right even then (e.g. after max_side changes). Steps:

    ListFiles (the input and shard file patterns, globbed in the pipeline)
      -> ReshuffleFiles -> ReadFiles: records (content id, record) and cached
         entries (content id, vector); unusable records and unreadable shards are
         counted
      -> JoinWithCache (GroupByKey) -> ResolveHits
           hits: the record with the cached vector appended
           misses: one (content id, image, its records) per id
             -> ComputeVectors (RunInference, handler.BottleneckModelHandler)
             -> AttachVectors: the records with the new vector; the new cache entry
      -> WriteStaged: each bundle writes its own files into a staging folder
      -> ReshuffleStaged -> Finalize: renames every complete file to its final name
         (after the bundle that wrote it was committed: a retried bundle's files are
         never published)
    tallies and failures of every step -> Summarize -> WriteSummary

ResolveHits and AttachVectors log progress records (components.common.progress, task
PROGRESS_TASK): records given a vector or failed, of the records read (CountRecords,
a side input of both), counted per worker process.

Output records are the input tf.Examples (image bytes, label, label_name, image_id...
unchanged) plus examples.BOTTLENECK_KEY, the flattened float32 vector. The feature is
added without parsing and re-serializing the record: the bytes of a one-feature
tf.Example are appended, and protobuf merges concatenated messages (a later map
entry replaces an earlier one with the same key). Records that cannot be used (not a
tf.Example, no image, an image TensorFlow cannot decode) are written to
spec.FAILED_FILE as {"image_id", "split", "error"} and counted, never fatal here.

Files written (``output_uri``): ``Split-<split>/data_tfrecord-*.gz`` for every split
(an empty file for a split without records), spec.FAILED_FILE (JSON lines sorted by
split, image_id, error) and spec.COUNTS_FILE: COUNT_NAMES plus
split_count_name(split) for every split, i.e. vectors computed (distinct content ids
run through the model), vectors reused (distinct content ids served from the cache),
records failed, cache shards skipped (unreadable; moved to the namespace's quarantine
folder when their content is bad) and the records written per split.
New cache shards go to the namespace directory (store.py). Nothing is pulled through
the driver; ``read_counts`` reads the counts back after the run.
"""

from __future__ import annotations

import collections
import hashlib
import json
import re
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

import apache_beam as beam
import numpy as np
import tensorflow as tf
from absl import logging
from apache_beam.ml.inference.base import PredictionResult, RunInference
from apache_beam.transforms.window import GlobalWindows
from google.protobuf.message import DecodeError

from components.bottleneck_cache import prepared, spec, store
from components.bottleneck_cache.handler import (
    METRICS_NAMESPACE,
    BottleneckModelHandler,
    InferenceFailure,
)
from components.bottleneck_cache.plan import (
    CachePlan,
    Segment,
    join,
    new_run_id,
    write_namespace_file,
)
from components.common import examples, progress
from components.common.artifact_io import content_id, write_text_atomically
from components.common.examples import IMAGE_ID_KEY, IMAGE_KEY

COUNT_NAMES = (spec.PROP_COMPUTED, spec.PROP_REUSED, spec.PROP_FAILED, spec.PROP_SHARDS_SKIPPED)
TFRECORD_PREFIX = "data_tfrecord"  # what TFX's own ExampleGen writes
OUTPUT_STAGING_PREFIX = "beam-temp-output-"  # <output_uri>/<prefix><run id>/ while writing
CACHE_DESTINATION = ""  # the destination of new cache entries (splits are never "")
_SEGMENT_MARK = "#"  # cut auto: "#<i>" is the destination of segment i > 0's entries
PROGRESS_TASK = "bottlenecks"  # progress records: records given a vector (reused or
# computed) or failed at inference, of the records read

# gzip levels (still .gz files every TFRecord reader takes): output records are mostly
# encoded images, which deflate cannot shrink (level 6: 4% smaller for 12x the time of
# level 0, measured on the benchmark's JPEGs); cache entries are float vectors.
_OUTPUT_LEVEL, _ENTRY_LEVEL = 0, 1
_RECORDS, _CACHE = "records", "cache"  # kinds of input files
_RECORD, _VECTOR = "r", "v"  # kinds of joined values
_MISSES, _STAGED, _SUMMARY = "misses", "staged", "summary"
_COUNTS, _FAILURE = "counts", "failure"  # kinds of summary elements


def split_count_name(split: str) -> str:
    """Name of the count of records written to `split` (as in ImageExampleGen)."""
    return f"{split}_examples"


def split_uri(output_uri: str, split: str) -> str:
    """The standard Examples layout: ``<uri>/Split-<split>``."""
    return join(output_uri, f"Split-{split}")


def output_staging_dir(output_uri: str, run_id: str) -> str:
    """Where a run stages its output files before renaming them into Split-<split>/."""
    return join(output_uri, f"{OUTPUT_STAGING_PREFIX}{run_id}")


def failure(image_id: str, split: str, error: str) -> dict:
    """A failure record (one line of spec.FAILED_FILE)."""
    return {"image_id": image_id, "split": split, "error": error}


def cache_destination(segment: int) -> str:
    """The destination of a segment's new cache entries (segment 0: CACHE_DESTINATION)."""
    return CACHE_DESTINATION if segment == 0 else f"{_SEGMENT_MARK}{segment}"


def is_cache_destination(destination: str) -> bool:
    return destination == CACHE_DESTINATION or destination.startswith(_SEGMENT_MARK)


def segment_count_name(segment: Segment) -> str:
    """Cut auto: the count of a candidate's new cache entries ("vectors_computed@layer")."""
    return f"{spec.PROP_COMPUTED}@{segment.layer}"


def bottleneck_suffix(vector: np.ndarray, segments: Sequence[Segment] = ()) -> bytes:
    """A serialized tf.Example holding only the bottleneck feature(s).

    Without segments (or with a fixed cut's one): examples.BOTTLENECK_KEY, the flattened
    vector. With cut auto's segments: each candidate's slice of the vector under its
    own feature (examples.candidate_key).
    """
    example = tf.train.Example()
    values = np.asarray(vector, np.float32).ravel()
    if len(segments) <= 1:
        example.features.feature[examples.BOTTLENECK_KEY].float_list.value.extend(values)
    else:
        for segment in segments:
            part = values[segment.offset : segment.offset + segment.dim]
            example.features.feature[segment.feature].float_list.value.extend(part)
    return example.SerializeToString()


def with_bottleneck(example: bytes, vector: np.ndarray) -> bytes:
    """The serialized example with examples.BOTTLENECK_KEY set to the flattened vector
    (appended: parsing the result gives the input features plus the vector)."""
    return example + bottleneck_suffix(vector)


def _label(split: str) -> str:
    """CamelCase step label part for a split name ("train" -> "Train")."""
    return "".join(part.capitalize() for part in re.split(r"[^0-9A-Za-z]+", split)) or "Split"


def _counter(name: str):
    return beam.metrics.Metrics.counter(METRICS_NAMESPACE, name)


def _compression(path: str) -> str:
    return "GZIP" if path.endswith(".gz") else ""


class _TallyDoFn(beam.DoFn):
    """A DoFn that counts into self.tally and emits one _SUMMARY tally per bundle."""

    def start_bundle(self):
        self.tally = collections.Counter()

    def finish_bundle(self):
        if self.tally:
            value = (_COUNTS, dict(self.tally))
            yield beam.pvalue.TaggedOutput(_SUMMARY, GlobalWindows.windowed_value(value))


def _failed(dofn: _TallyDoFn, image_id: str, split: str, error: str):
    dofn.tally[spec.PROP_FAILED] += 1
    return beam.pvalue.TaggedOutput(_SUMMARY, (_FAILURE, failure(image_id, split, error)))


def _list_files(source: tuple[str, str, str]) -> Iterator:
    """(kind, split, pattern) -> (kind, split, path) for every file that matches; and
    an empty tally, so that the summary has an input even when nothing else does."""
    kind, split, pattern = source
    yield beam.pvalue.TaggedOutput(_SUMMARY, (_COUNTS, {}))
    for path in sorted(tf.io.gfile.glob(pattern)):
        if not tf.io.gfile.isdir(path):
            yield kind, split, path


class _ReadFileDoFn(_TallyDoFn):
    """An input file -> (content id, record value); a cache shard -> (content id, vector).

    Unusable records go to _SUMMARY as failures; an unreadable shard is skipped whole
    (its vectors are recomputed) and counted, and one whose content is bad is moved
    into the namespace's quarantine folder (store.quarantine_shard).
    """

    def __init__(self, dims: Sequence[int]):
        self._dims = tuple(dims)  # per segment (one for a fixed cut)

    def process(self, source: tuple[str, str, str]) -> Iterator:
        kind, split, path = source
        if kind == _CACHE:  # "split" holds the segment index
            yield from self._read_shard(path, int(split or 0))
            return
        for record in tf.data.TFRecordDataset(path, compression_type=_compression(path)):
            yield from self._key(split, record.numpy())

    def _key(self, split: str, serialized: bytes) -> Iterator:
        try:
            features = tf.train.Example.FromString(serialized).features.feature
        except DecodeError as error:
            digest = hashlib.sha256(serialized).hexdigest()
            message = f"record is not a tf.Example ({error}); record sha256 {digest}"
            yield _failed(self, "", split, message)
            return
        ids = features[IMAGE_ID_KEY].bytes_list.value if IMAGE_ID_KEY in features else []
        image_id = ids[0].decode("utf-8", "replace") if len(ids) == 1 else ""
        images = features[IMAGE_KEY].bytes_list.value if IMAGE_KEY in features else []
        if len(images) != 1 or not images[0]:
            message = f"record has no single non-empty {IMAGE_KEY!r} bytes feature"
            yield _failed(self, image_id, split, message)
            return
        yield content_id(images[0]), (_RECORD, split, image_id, serialized)

    def _read_shard(self, path: str, segment: int) -> Iterator:
        dim = self._dims[segment]
        try:
            entries = store.read_shard(path, dim)
        except ValueError as error:  # bad content: moved aside (it logs what it did)
            self.tally[spec.PROP_SHARDS_SKIPPED] += 1
            store.quarantine_shard(path, dim, str(error))
            return
        except tf.errors.NotFoundError:  # listed, then moved aside by a concurrent run
            self.tally[spec.PROP_SHARDS_SKIPPED] += 1
            logging.info("Cache shard %s is gone (moved aside by another run): skipped", path)
            return
        except tf.errors.OpError as error:  # cannot be opened now: kept for later runs
            self.tally[spec.PROP_SHARDS_SKIPPED] += 1
            logging.warning("Skipping unreadable cache shard %s: %s", path, error.message)
            return
        _counter("cache_entries_read").inc(len(entries))
        for key, vector in entries:
            yield key, (_VECTOR, segment, vector)


def _image_of(example: bytes) -> bytes:
    return tf.train.Example.FromString(example).features.feature[IMAGE_KEY].bytes_list.value[0]


class _ProgressDoFn(_TallyDoFn):
    """A _TallyDoFn that advances the job's progress (progress.shared under `job`)."""

    def __init__(self, job: str):
        super().__init__()
        self._job = job
        self._progress = None

    def _advance(self, records: int, total: int) -> None:
        if self._progress is None:
            key = f"bottlenecks-{self._job}"
            self._progress = progress.shared(key, PROGRESS_TASK, progress.IMAGES, total)
        self._progress.advance(records)


class _ResolveHitsDoFn(_ProgressDoFn):
    """Per content id: append the cached vector(s) to its records, or send one image
    (with the records waiting for it and the segments it lacks) to the model."""

    def __init__(self, job: str, segments: Sequence[Segment]):
        super().__init__(job)
        self._segments = tuple(segments)

    def process(self, keyed: tuple[str, Iterable], total: int) -> Iterator:
        key, values = keyed
        records, vectors = [], {}
        for value in values:
            if value[0] == _RECORD:
                records.append(value[1:])
            else:  # duplicates across shards: keep one
                vectors.setdefault(value[1], value[2])
        if not records:  # a cache entry of an image not in this run
            return
        missing = tuple(i for i in range(len(self._segments)) if i not in vectors)
        if missing:
            payload = (records, missing)
            yield beam.pvalue.TaggedOutput(_MISSES, (key, _image_of(records[0][2]), payload))
            return
        self.tally[spec.PROP_REUSED] += 1
        vector = np.concatenate([vectors[i] for i in range(len(self._segments))])
        suffix = bottleneck_suffix(vector, self._segments)
        for split, _, example in records:
            yield split, example + suffix
        self._advance(len(records), total)


class _AttachVectorsDoFn(_ProgressDoFn):
    """PredictionResult -> the waiting records with the vector, and a new cache entry
    per segment the cache lacked; or a failure per record when TensorFlow rejected the
    image."""

    def __init__(self, job: str, segments: Sequence[Segment]):
        super().__init__(job)
        self._segments = tuple(segments)

    def process(self, result: PredictionResult, total: int) -> Iterator:
        key, _, (records, missing) = result.example
        if isinstance(result.inference, InferenceFailure):
            for split, image_id, _ in records:
                yield _failed(self, image_id, split, result.inference.error)
        else:
            self.tally[spec.PROP_COMPUTED] += 1
            vector = np.asarray(result.inference, np.float32)
            for i in missing:
                segment = self._segments[i]
                part = vector[segment.offset : segment.offset + segment.dim]
                if len(self._segments) > 1:
                    self.tally[segment_count_name(segment)] += 1
                yield cache_destination(i), store.encode_entry(key, part)
            suffix = bottleneck_suffix(vector, self._segments)
            for split, _, example in records:
                yield split, example + suffix
        self._advance(len(records), total)


class _WriteStagedDoFn(beam.DoFn):
    """(destination, record) -> one gzipped TFRecord file per destination and bundle, in
    the staging folders; emits (destination, staged path, records) per file at the
    end of the bundle. Files are opened on their first record: no empty files."""

    def __init__(self, staging: Mapping[str, str]):
        self._staging = dict(staging)  # destination -> staging folder

    def start_bundle(self):
        self._files = {}  # destination -> [writer, path, count]

    def process(self, element: tuple[str, bytes]) -> Iterable:
        destination, record = element
        entry = self._files.get(destination)
        if entry is None:
            directory = self._staging[destination]
            tf.io.gfile.makedirs(directory)
            path = join(directory, f"{uuid.uuid4().hex}.tfrecord.gz")
            level = _ENTRY_LEVEL if is_cache_destination(destination) else _OUTPUT_LEVEL
            options = tf.io.TFRecordOptions(compression_type="GZIP", compression_level=level)
            entry = self._files[destination] = [tf.io.TFRecordWriter(path, options), path, 0]
        entry[0].write(record)
        entry[2] += 1
        return ()  # emits at finish_bundle; an explicit empty result (Beam warns on None)

    def finish_bundle(self):
        for destination, (writer, path, count) in self._files.items():
            writer.close()
            yield GlobalWindows.windowed_value((destination, path, count))
        self._files = {}


class _FinalizeDoFn(_TallyDoFn):
    """Renames a committed staged file to its final name (idempotent on a retry)."""

    def __init__(self, output_uri: str, namespace_dirs: Mapping[str, str], run_id: str):
        self._output_uri = output_uri
        self._namespace_dirs = dict(namespace_dirs)  # cache destination -> namespace dir
        self._run_id = run_id

    def final_path(self, destination: str, staged: str) -> str:
        unique = staged.rsplit("/", 1)[-1].split(".", 1)[0]
        if is_cache_destination(destination):
            namespace_dir = self._namespace_dirs[destination]
            return store.final_shard_path(namespace_dir, self._run_id, unique)
        return join(split_uri(self._output_uri, destination), f"{TFRECORD_PREFIX}-{unique}.gz")

    def process(self, element: tuple[str, str, int]) -> Iterator:
        destination, staged, count = element
        final = self.final_path(destination, staged)
        if tf.io.gfile.exists(staged):
            tf.io.gfile.makedirs(final.rsplit("/", 1)[0])
            tf.io.gfile.rename(staged, final, overwrite=True)
        elif not tf.io.gfile.exists(final):
            raise FileNotFoundError(f"staged file {staged} is gone and {final} does not exist")
        if is_cache_destination(destination):
            _counter("cache_shards_written").inc()
        else:
            self.tally[split_count_name(destination)] += count
        return ()  # only counts (emitted at finish_bundle); Beam warns on None


class _SummaryFn(beam.CombineFn):
    """(_COUNTS, dict) and (_FAILURE, record) -> {"counts": every name, "failures": [...]}."""

    def __init__(self, names: Sequence[str]):
        self._names = tuple(names)

    def create_accumulator(self):
        return collections.Counter(), []

    def add_input(self, accumulator, element):
        kind, value = element
        if kind == _COUNTS:
            accumulator[0].update(value)
        else:
            accumulator[1].append(value)
        return accumulator

    def merge_accumulators(self, accumulators):
        counts, failures = collections.Counter(), []
        for more_counts, more_failures in accumulators:
            counts.update(more_counts)
            failures.extend(more_failures)
        return counts, failures

    def extract_output(self, accumulator):
        counts, failures = accumulator
        return {
            "counts": {name: int(counts.get(name, 0)) for name in self._names},
            "failures": sorted(failures, key=lambda r: (r["split"], r["image_id"], r["error"])),
        }


def _write_summary(summary: dict, output_uri: str, splits: Sequence[str]) -> None:
    """Writes COUNTS_FILE and FAILED_FILE, and an empty file for a split without records."""
    for split in splits:
        if summary["counts"][split_count_name(split)] == 0:
            directory = split_uri(output_uri, split)
            tf.io.gfile.makedirs(directory)
            empty = join(directory, f"{TFRECORD_PREFIX}-empty.gz")
            tf.io.TFRecordWriter(empty, tf.io.TFRecordOptions(compression_type="GZIP")).close()
    lines = [json.dumps(r, sort_keys=True, ensure_ascii=False) + "\n" for r in summary["failures"]]
    write_text_atomically(join(output_uri, spec.FAILED_FILE), "".join(lines))
    write_text_atomically(join(output_uri, spec.COUNTS_FILE), json.dumps(summary["counts"]) + "\n")


class ComputeBottlenecks(beam.PTransform):
    """Examples of every split -> the same examples with their bottleneck vectors, written.

    Apply to a Pipeline; see the module docstring for what is written where. Returns
    the summary PCollection (one {"counts", "failures"} dict).
    """

    def __init__(
        self,
        example_patterns: Mapping[str, str],
        plan: CachePlan,
        cache_dir: str,
        run_id: str,
        output_uri: str,
        batch_size: int = 32,
    ):
        """Configures the job.

        Args:
          example_patterns: split name -> file pattern of its (gzipped) TFRecords.
          plan: what to compute (plan.make_plan), fixing the namespace of each segment.
          cache_dir: the cache root; entries live in each segment's namespace_dir.
          run_id: unique id of this run, part of the new shards' and staging names.
          output_uri: the output Examples artifact's uri.
          batch_size: images per model call (RunInference's batch size, min = max).
        """
        super().__init__()
        if any(not split for split in example_patterns):
            raise ValueError("split names must not be empty")
        self._patterns = dict(example_patterns)
        self._plan = plan
        self._namespace_dirs = {
            cache_destination(i): segment.namespace_dir(cache_dir)
            for i, segment in enumerate(plan.segments)
        }
        self._run_id = run_id
        self._output_uri = output_uri
        self._batch_size = batch_size
        self._job = uuid.uuid4().hex  # this job's progress counter (progress.shared)

    def expand(self, pbegin: beam.pvalue.PBegin) -> beam.PCollection:
        splits = list(self._patterns)
        sources = [(_RECORDS, split, pattern) for split, pattern in self._patterns.items()]
        for i in range(len(self._plan.segments)):
            pattern = store.shard_pattern(self._namespace_dirs[cache_destination(i)])
            sources.append((_CACHE, str(i), pattern))
        dims = [segment.dim for segment in self._plan.segments]
        listed = (
            pbegin
            | "ListPatterns" >> beam.Create(sources, reshuffle=False)  # ReshuffleFiles does
            | "ListFiles" >> beam.FlatMap(_list_files).with_outputs(_SUMMARY, main="files")
        )
        read = (
            listed.files
            | "ReshuffleFiles" >> beam.Reshuffle()
            | "ReadFiles" >> beam.ParDo(_ReadFileDoFn(dims)).with_outputs(_SUMMARY, main="keyed")
        )
        # The progress total: records read (a cheap count, a side input of both steps).
        total = beam.pvalue.AsSingleton(
            read.keyed
            | "IsRecord" >> beam.Map(lambda keyed: int(keyed[1][0] == _RECORD))
            | "CountRecords" >> beam.CombineGlobally(sum)
        )
        resolved = (
            read.keyed
            | "JoinWithCache" >> beam.GroupByKey()
            | "ResolveHits"
            >> beam.ParDo(_ResolveHitsDoFn(self._job, self._plan.segments), total).with_outputs(
                _MISSES, _SUMMARY, main="hits"
            )
        )
        computed = (
            resolved[_MISSES]
            | "ComputeVectors" >> RunInference(BottleneckModelHandler(self._plan, self._batch_size))
            | "AttachVectors"
            >> beam.ParDo(_AttachVectorsDoFn(self._job, self._plan.segments), total).with_outputs(
                _SUMMARY, main="records"
            )
        )
        output_staging = output_staging_dir(self._output_uri, self._run_id)
        staging = {split: join(output_staging, f"Split-{split}") for split in splits}
        for destination, namespace_dir in self._namespace_dirs.items():
            staging[destination] = store.staging_dir(namespace_dir, self._run_id)
        finalized = (
            (resolved.hits, computed.records)
            | "FlattenRecords" >> beam.Flatten()
            | "WriteStaged" >> beam.ParDo(_WriteStagedDoFn(staging))
            | "ReshuffleStaged" >> beam.Reshuffle()
            | "Finalize"
            >> beam.ParDo(
                _FinalizeDoFn(self._output_uri, self._namespace_dirs, self._run_id)
            ).with_outputs(_SUMMARY, main="done")
        )
        names = COUNT_NAMES + tuple(split_count_name(s) for s in splits)
        if len(self._plan.segments) > 1:
            names += tuple(segment_count_name(segment) for segment in self._plan.segments)
        summary = (
            (listed[_SUMMARY], read[_SUMMARY], resolved[_SUMMARY])
            + (computed[_SUMMARY], finalized[_SUMMARY])
            | "FlattenSummary" >> beam.Flatten()
            | "Summarize" >> beam.CombineGlobally(_SummaryFn(names)).without_defaults()
        )
        _ = summary | "WriteSummary" >> beam.Map(_write_summary, self._output_uri, splits)
        return summary


def run_bottlenecks(
    make_pipeline: Callable[[], beam.Pipeline],
    example_patterns: Mapping[str, str],
    plan: CachePlan,
    cache_dir: str,
    output_uri: str,
    batch_size: int = 32,
    run_id: str = "",
) -> dict:
    """One whole run: namespace file, stale staging folders removed, the job, the counts.

    Args:
      make_pipeline: returns the Beam pipeline to run the job in (with its options).
      example_patterns, plan, cache_dir, output_uri, batch_size: see ComputeBottlenecks.
      run_id: this run's id; a new one (plan.new_run_id) when empty.

    Returns:
      The counts the job wrote (read_counts).
    """
    run_id = run_id or new_run_id()
    stagings = []
    for segment in plan.segments:
        namespace_dir = write_namespace_file(cache_dir, plan, segment)
        store.clean_stale_staging(namespace_dir)
        stagings.append(store.staging_dir(namespace_dir, run_id))
        store.claim_staging(stagings[-1])
    job = ComputeBottlenecks(example_patterns, plan, cache_dir, run_id, output_uri, batch_size)
    try:
        with make_pipeline() as pipeline:
            _ = pipeline | "ComputeBottlenecks" >> job
    finally:  # a failed job's staged files were never finalized: nothing to keep
        for staging in stagings:
            store.release_staging(staging)
        store.release_staging(output_staging_dir(output_uri, run_id))
        prepared.wait_for_exports()  # the in-memory runner's worker exports here
    return read_counts(output_uri)


def read_counts(output_uri: str) -> dict:
    """The counts written by the job."""
    with tf.io.gfile.GFile(join(output_uri, spec.COUNTS_FILE)) as f:
        return json.load(f)


def read_failures(output_uri: str) -> list[dict]:
    """The failure records written by the job."""
    with tf.io.gfile.GFile(join(output_uri, spec.FAILED_FILE)) as f:
        return [json.loads(line) for line in f.read().splitlines() if line]
