"""Pure core of ImageExampleGen: files -> deduplicated, split, serialized tf.Examples.

Nothing here uses TFX APIs (feature and split names come from components.common.examples,
count names from spec.py), so every function and the IngestImages PTransform can be
tested on plain arguments. The steps live in:

- listing.py: list_classes / list_files walk the input root (local or remote) and say
  which files are candidates, which are quarantined before reading (symlinks that
  leave the root, files outside a class folder, non-regular files, names that are not
  UTF-8 or hold line breaks) and which are ignored (is_ignored: .DS_Store, ._*,
  Thumbs.db, desktop.ini, hidden folders); fingerprint.
- images.py: read_image validates one file's bytes (format, size before decoding,
  full decode, TensorFlow decode, transcode or downscale when needed).
- here: content ids (components.common.artifact_io.content_id), split assignment,
  tf.Example serialization, duplicate and conflict resolution, and the IngestImages
  Beam job, whose counts reconcile: files_seen = ingested + quarantined + duplicates
  + ignored.

Bad input never raises: it becomes a quarantine record {"path", "reason"}. The read
step logs progress records (components.common.progress): files read of those listed.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import NamedTuple

import apache_beam as beam

from components.common import examples, progress
from components.common.artifact_io import content_id
from components.common.tally import TallyFn
from components.image_example_gen import spec
from components.image_example_gen.images import ImageResult, allow_pixels, read_image
from components.image_example_gen.listing import FileEntry, quarantine_record, read_file

# Keys of the dict of PCollections that IngestImages returns (besides the split names).
QUARANTINE_OUTPUT = "quarantine"
DUPLICATES_OUTPUT = "duplicates"
COUNTS_OUTPUT = "counts"
CLASS_COUNTS_OUTPUT = "class_counts"

COUNT_NAMES = (
    spec.COUNT_FILES_SEEN,
    spec.COUNT_INGESTED,
    spec.COUNT_QUARANTINED,
    spec.COUNT_DUPLICATES,
    spec.COUNT_IGNORED,
    spec.COUNT_TRANSCODED,
    spec.COUNT_DOWNSCALED,
)
METRICS_NAMESPACE = "ImageExampleGen"
PROGRESS_TASK = "ingest"  # the task of the progress records (files read of those listed)


def split_count_name(split: str) -> str:
    """Name of the count of examples in `split` (in counts.json and custom properties)."""
    return f"{split}_examples"


class ValidImage(NamedTuple):
    """A file that passed validation, with its content id (sha256 of original bytes)."""

    entry: FileEntry
    image_id: str
    result: ImageResult


def assign_split(image_id: str, train_ratio: float) -> str:
    """Deterministic split from the content hash (same bytes -> same split, always)."""
    if int(image_id[:8], 16) % 10000 < round(train_ratio * 10000):
        return examples.TRAIN_SPLIT
    return examples.EVAL_SPLIT


def make_example(
    data: bytes,
    label: int,
    label_name: str,
    image_id: str,
    source_path: str,
    height: int,
    width: int,
    image_format: str,
) -> bytes:
    """A serialized tf.train.Example with the features of components.common.examples."""
    import tensorflow as tf  # heavy: imported on first use

    train = tf.train

    def _bytes(value: bytes) -> object:
        return train.Feature(bytes_list=train.BytesList(value=[value]))

    def _int(value: int) -> object:
        return train.Feature(int64_list=train.Int64List(value=[value]))

    features = {
        examples.IMAGE_KEY: _bytes(data),
        examples.LABEL_KEY: _int(label),
        examples.LABEL_NAME_KEY: _bytes(label_name.encode("utf-8")),
        examples.IMAGE_ID_KEY: _bytes(image_id.encode("ascii")),
        examples.SOURCE_PATH_KEY: _bytes(source_path.encode("utf-8")),
        examples.HEIGHT_KEY: _int(height),
        examples.WIDTH_KEY: _int(width),
        examples.FORMAT_KEY: _bytes(image_format.encode("ascii")),
    }
    return train.Example(features=train.Features(feature=features)).SerializeToString()


def example_from(image: ValidImage) -> bytes:
    """make_example for a ValidImage."""
    entry, result = image.entry, image.result
    return make_example(
        result.data,
        entry.label,
        entry.label_name,
        image.image_id,
        entry.relpath,
        result.height,
        result.width,
        result.image_format,
    )


def resolve_copies(copies: Iterable[ValidImage]) -> tuple[ValidImage | None, list, list]:
    """Keeps one of several copies of the same content.

    Returns:
      (kept, duplicates, quarantined): the copy with the smallest relpath and duplicate
      records {"path", "kept", "image_id"} for the others; or, when copies sit in
      different classes (a labelling conflict), (None, [], a quarantine record for
      every copy).
    """
    copies = sorted(copies, key=lambda copy: copy.entry.relpath)
    classes = sorted({copy.entry.label_name for copy in copies})
    if len(classes) > 1:
        reason = f"same image in classes {', '.join(classes)}; keep it in one class folder"
        return None, [], [quarantine_record(c.entry.relpath, reason) for c in copies]
    kept = copies[0]
    duplicates = [
        {"path": c.entry.relpath, "kept": kept.entry.relpath, "image_id": c.image_id}
        for c in copies[1:]
    ]
    return kept, duplicates, []


# --- the Beam job ----------------------------------------------------------------------


def _counter(name: str):
    return beam.metrics.Metrics.counter(METRICS_NAMESPACE, name)


class _ReadAndValidateDoFn(beam.DoFn):
    """Reads one file's bytes and validates them.

    Outputs (image_id, ValidImage) on the main output and quarantine records on the
    QUARANTINE_OUTPUT tag. Logs progress (components.common.progress, task
    PROGRESS_TASK): files read of `total`, shared by the instances of one job in a process.
    """

    def __init__(self, max_pixels: int, max_side: int, total: int | None = None):
        self._max_pixels = max_pixels
        self._max_side = max_side
        self._total = total
        self._job = uuid.uuid4().hex  # this job's progress counter (progress.shared)

    def setup(self):
        allow_pixels(self._max_pixels)
        self._read = _counter("files_read")
        self._quarantined = _counter(spec.COUNT_QUARANTINED)
        self._progress = progress.shared(
            f"ingest-{self._job}", PROGRESS_TASK, progress.IMAGES, self._total
        )

    def process(self, entry: FileEntry):
        yield from self._validate(entry)
        self._progress.advance()

    def _validate(self, entry: FileEntry):
        self._read.inc()
        try:
            data = read_file(entry.path)
        except OSError as err:
            self._quarantined.inc()
            yield beam.pvalue.TaggedOutput(
                QUARANTINE_OUTPUT, quarantine_record(entry.relpath, f"cannot read file: {err}")
            )
            return
        result = read_image(data, entry.relpath, self._max_pixels, self._max_side)
        if result.reason:
            self._quarantined.inc()
            yield beam.pvalue.TaggedOutput(
                QUARANTINE_OUTPUT, quarantine_record(entry.relpath, result.reason)
            )
            return
        image_id = content_id(data)
        yield image_id, ValidImage(entry, image_id, result)


class _ResolveCopiesDoFn(beam.DoFn):
    """Keeps one copy per content id; duplicates and conflicts go to tagged outputs."""

    def setup(self):
        self._duplicates = _counter(spec.COUNT_DUPLICATES)
        self._conflicts = _counter("conflicting_copies")

    def process(self, keyed_copies: tuple[str, Iterable[ValidImage]]):
        kept, duplicates, quarantined = resolve_copies(keyed_copies[1])
        self._duplicates.inc(len(duplicates))
        self._conflicts.inc(len(quarantined))
        for record in duplicates:
            yield beam.pvalue.TaggedOutput(DUPLICATES_OUTPUT, record)
        for record in quarantined:
            yield beam.pvalue.TaggedOutput(QUARANTINE_OUTPUT, record)
        if kept is not None:
            yield kept


class _ClassCountFn(beam.CombineFn):
    """(class, split) pairs -> {class: {split: n}}, with 0 for every class and split."""

    def __init__(self, classes: Sequence[str]):
        self._classes = tuple(classes)

    def create_accumulator(self) -> dict:
        return {name: dict.fromkeys(examples.SPLITS, 0) for name in self._classes}

    def add_input(self, accumulator: dict, class_split: tuple[str, str]) -> dict:
        name, split = class_split
        accumulator.setdefault(name, dict.fromkeys(examples.SPLITS, 0))[split] += 1
        return accumulator

    def merge_accumulators(self, accumulators: Iterable[dict]) -> dict:
        merged = self.create_accumulator()
        for accumulator in accumulators:
            for name, per_split in accumulator.items():
                row = merged.setdefault(name, dict.fromkeys(examples.SPLITS, 0))
                for split, count in per_split.items():
                    row[split] += count
        return merged

    def extract_output(self, accumulator: dict) -> dict:
        return accumulator


def _image_tally(split_image: tuple[str, ValidImage]) -> dict:
    split, image = split_image
    return {
        spec.COUNT_INGESTED: 1,
        split_count_name(split): 1,
        spec.COUNT_TRANSCODED: int(image.result.transcoded),
        spec.COUNT_DOWNSCALED: int(image.result.downscaled),
    }


class IngestImages(beam.PTransform):
    """Files -> validated, deduplicated, split, serialized tf.Examples (apply to a Pipeline).

    Returns a dict of PCollections:
      examples.TRAIN_SPLIT, examples.EVAL_SPLIT: serialized tf.Example bytes per split.
      QUARANTINE_OUTPUT: {"path", "reason"} for every quarantined file (including the
        `escaped` records passed in).
      DUPLICATES_OUTPUT: {"path", "kept", "image_id"} for every dropped exact copy.
      COUNTS_OUTPUT: one dict with every name in COUNT_NAMES plus split_count_name(s)
        for each split; files_seen = ingested + quarantined + duplicates + ignored
        (`ignored`: the relpaths list_files ignored, only counted).
      CLASS_COUNTS_OUTPUT: one dict {class: {split: n}} covering every class in
        `classes` (labelled examples only; {} when unlabelled).
    """

    def __init__(
        self,
        entries: Sequence[FileEntry],
        escaped: Sequence[dict] = (),
        classes: Sequence[str] = (),
        train_ratio: float = 0.8,
        max_pixels: int = 50_000_000,
        max_side: int = 0,
        ignored: Sequence[str] = (),
    ):
        super().__init__()
        self._entries = list(entries)
        self._escaped = list(escaped)
        self._ignored = list(ignored)
        self._classes = list(classes)
        self._train_ratio = train_ratio
        self._max_pixels = max_pixels
        self._max_side = max_side

    def expand(self, pbegin: beam.pvalue.PBegin) -> dict:
        entries = pbegin | "CreateEntries" >> beam.Create(self._entries)
        escaped = pbegin | "CreateEscaped" >> beam.Create(self._escaped)
        ignored = pbegin | "CreateIgnored" >> beam.Create(self._ignored)
        read = (
            entries
            | "Reshuffle" >> beam.Reshuffle()
            | "ReadAndValidate"
            >> beam.ParDo(
                _ReadAndValidateDoFn(self._max_pixels, self._max_side, len(self._entries))
            ).with_outputs(QUARANTINE_OUTPUT, main="valid")
        )
        resolved = (
            read.valid
            | "GroupByContentId" >> beam.GroupByKey()
            | "ResolveCopies"
            >> beam.ParDo(_ResolveCopiesDoFn()).with_outputs(
                DUPLICATES_OUTPUT, QUARANTINE_OUTPUT, main="unique"
            )
        )
        ratio = self._train_ratio
        with_split = resolved.unique | "AssignSplit" >> beam.Map(
            lambda image: (assign_split(image.image_id, ratio), image)
        )
        outputs = self._serialize_splits(with_split)
        quarantine = (
            escaped,
            read[QUARANTINE_OUTPUT],
            resolved[QUARANTINE_OUTPUT],
        ) | "FlattenQuarantine" >> beam.Flatten()
        duplicates = resolved[DUPLICATES_OUTPUT]
        outputs[QUARANTINE_OUTPUT] = quarantine
        outputs[DUPLICATES_OUTPUT] = duplicates
        outputs[COUNTS_OUTPUT] = _tally(
            entries, escaped, ignored, quarantine, duplicates, with_split
        )
        outputs[CLASS_COUNTS_OUTPUT] = (
            with_split
            | "LabelledOnly" >> beam.Filter(lambda split_image: split_image[1].entry.label >= 0)
            | "ClassAndSplit"
            >> beam.Map(lambda split_image: (split_image[1].entry.label_name, split_image[0]))
            | "CountPerClass" >> beam.CombineGlobally(_ClassCountFn(self._classes))
        )
        return outputs

    @staticmethod
    def _serialize_splits(with_split: beam.PCollection) -> dict:
        parts = with_split | "PartitionSplits" >> beam.Partition(
            lambda split_image, _: examples.SPLITS.index(split_image[0]), len(examples.SPLITS)
        )
        return {
            split: parts[i]
            | f"Serialize{split.capitalize()}" >> beam.Map(lambda kv: example_from(kv[1]))
            for i, split in enumerate(examples.SPLITS)
        }


def _tally(entries, escaped, ignored, quarantine, duplicates, with_split) -> beam.PCollection:
    """One dict of reconciled counts, each counted from its own PCollection."""
    names = COUNT_NAMES + tuple(split_count_name(s) for s in examples.SPLITS)
    seen = {spec.COUNT_FILES_SEEN: 1}
    return (
        (
            entries | "TallySeen" >> beam.Map(lambda _: seen),
            escaped | "TallyEscapedSeen" >> beam.Map(lambda _: seen),
            ignored | "TallyIgnored" >> beam.Map(lambda _: {**seen, spec.COUNT_IGNORED: 1}),
            quarantine | "TallyQuarantined" >> beam.Map(lambda _: {spec.COUNT_QUARANTINED: 1}),
            duplicates | "TallyDuplicates" >> beam.Map(lambda _: {spec.COUNT_DUPLICATES: 1}),
            with_split | "TallyIngested" >> beam.Map(_image_tally),
        )
        | "FlattenTallies" >> beam.Flatten()
        | "SumTallies" >> beam.CombineGlobally(TallyFn(names))
    )
