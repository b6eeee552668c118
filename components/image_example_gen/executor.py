"""Executor of ImageExampleGen: thin glue between TFX artifacts and ingest.IngestImages.

Writes the standard Examples layout (<uri>/Split-<split>/data_tfrecord-*.gz, both
splits always present), the class vocabulary (labels.txt, class_counts.json) and the
ingest report (quarantine.jsonl, duplicates.jsonl, counts.json), and records the
reconciled counts as custom properties.
"""

import json
import os

import apache_beam as beam
import tensorflow as tf
from absl import logging
from tfx.dsl.components.base import base_beam_executor
from tfx.types import artifact_utils

from components.common import artifacts
from components.common import examples as contract
from components.image_example_gen import ingest, listing, spec

_TFRECORD_PREFIX = "data_tfrecord"  # what TFX's own ExampleGen writes
_SHOWN_REASONS = 5  # quarantine records quoted when nothing was ingested


class Executor(base_beam_executor.BaseBeamExecutor):
    """Ingests an image folder into tf.Examples (see ingest.py for the rules)."""

    def Do(self, input_dict, output_dict, exec_properties):  # noqa: N802 - TFX's name
        """Runs the Beam job and writes the three output artifacts.

        Raises:
          ValueError: if input_base does not exist or no image could be ingested.
        """
        del input_dict
        examples = artifact_utils.get_single_instance(output_dict[spec.EXAMPLES_KEY])
        vocabulary = artifact_utils.get_single_instance(output_dict[spec.VOCABULARY_KEY])
        report = artifact_utils.get_single_instance(output_dict[spec.REPORT_KEY])
        input_base = exec_properties[spec.INPUT_BASE_KEY]
        labelled = bool(exec_properties.get(spec.LABELLED_KEY, 1))
        entries, escaped, ignored = listing.list_files(input_base, labelled)
        classes = listing.list_classes(input_base, labelled)
        ingest_images = ingest.IngestImages(
            entries,
            escaped,
            classes,
            train_ratio=float(exec_properties[spec.TRAIN_RATIO_KEY]),
            max_pixels=int(exec_properties[spec.MAX_PIXELS_KEY]),
            max_side=int(exec_properties.get(spec.MAX_SIDE_KEY) or 0),
            ignored=ignored,
        )
        examples.split_names = artifact_utils.encode_split_names(list(contract.SPLITS))
        for uri in (examples.uri, vocabulary.uri, report.uri):
            tf.io.gfile.makedirs(uri)
        with self._make_beam_pipeline() as pipeline:
            outputs = pipeline | "IngestImages" >> ingest_images
            _write_outputs(outputs, examples, vocabulary.uri, report.uri)
        _write_text(os.path.join(vocabulary.uri, artifacts.VOCABULARY_FILE), _lines(classes))
        counts = json.loads(_read_text(os.path.join(report.uri, artifacts.COUNTS_FILE)))
        for artifact in (examples, report):
            for name, value in counts.items():
                artifact.set_int_custom_property(name, value)
        logging.info("ImageExampleGen %s: %s", input_base, _summary(counts))
        _warn_empty_classes(os.path.join(vocabulary.uri, artifacts.CLASS_COUNTS_FILE))
        if counts[spec.COUNT_INGESTED] == 0:
            raise ValueError(_nothing_ingested(input_base, counts, report.uri))


def _write_outputs(outputs: dict, examples, vocabulary_uri: str, report_uri: str) -> None:
    """Adds the write steps: TFRecords per split, JSON lines and JSON files."""
    for split in contract.SPLITS:
        prefix = os.path.join(artifact_utils.get_split_uri([examples], split), _TFRECORD_PREFIX)
        _ = outputs[split] | f"Write{split.capitalize()}" >> beam.io.WriteToTFRecord(
            prefix, file_name_suffix=".gz"
        )
    targets = {
        ingest.QUARANTINE_OUTPUT: (report_uri, artifacts.QUARANTINE_FILE, "path"),
        ingest.DUPLICATES_OUTPUT: (report_uri, artifacts.DUPLICATES_FILE, "path"),
        ingest.COUNTS_OUTPUT: (report_uri, artifacts.COUNTS_FILE, None),
        ingest.CLASS_COUNTS_OUTPUT: (vocabulary_uri, artifacts.CLASS_COUNTS_FILE, None),
    }
    for output, (uri, name, sort_key) in targets.items():
        label = "".join(part.capitalize() for part in output.split("_"))
        _ = (
            outputs[output]
            | f"Collect{label}" >> beam.combiners.ToList()
            | f"Format{label}" >> beam.Map(_json_lines, sort_key)
            | f"Write{label}"
            >> beam.io.WriteToText(
                os.path.join(uri, name),
                shard_name_template="",
                num_shards=1,
                append_trailing_newlines=False,
            )
        )


def _json_lines(records: list, sort_key) -> str:
    """One JSON document per line, sorted by `sort_key` so reports are reproducible."""
    if sort_key is not None:
        records = sorted(records, key=lambda record: record[sort_key])
    return _lines(json.dumps(r, sort_keys=True, ensure_ascii=False) for r in records)


def _lines(items) -> str:
    return "".join(f"{item}\n" for item in items)


def _write_text(path: str, text: str) -> None:
    with tf.io.gfile.GFile(path, "w") as f:
        f.write(text)


def _read_text(path: str) -> str:
    with tf.io.gfile.GFile(path, "r") as f:
        return f.read()


def _summary(counts: dict) -> str:
    splits = ", ".join(f"{s} {counts[ingest.split_count_name(s)]}" for s in contract.SPLITS)
    return (
        f"{counts[spec.COUNT_FILES_SEEN]} files seen, {counts[spec.COUNT_INGESTED]} ingested "
        f"({splits}), {counts[spec.COUNT_QUARANTINED]} quarantined, "
        f"{counts[spec.COUNT_DUPLICATES]} duplicates, {counts[spec.COUNT_IGNORED]} ignored, "
        f"{counts[spec.COUNT_TRANSCODED]} transcoded, {counts[spec.COUNT_DOWNSCALED]} downscaled"
    )


def _warn_empty_classes(class_counts_path: str) -> None:
    class_counts = json.loads(_read_text(class_counts_path))
    for name, per_split in sorted(class_counts.items()):
        if not any(per_split.values()):
            logging.warning("Class folder %r has no valid images; its label stays reserved", name)


def _nothing_ingested(input_base: str, counts: dict, report_uri: str) -> str:
    """The error message when no image was ingested, quoting the first reasons."""
    path = os.path.join(report_uri, artifacts.QUARANTINE_FILE)
    records = [json.loads(line) for line in _read_text(path).splitlines()]
    shown = "; ".join(f"{r['path']}: {r['reason']}" for r in records[:_SHOWN_REASONS])
    more = f" (and {len(records) - _SHOWN_REASONS} more)" if len(records) > _SHOWN_REASONS else ""
    return (
        f"no image was ingested from {input_base}: {_summary(counts)}. "
        f"Quarantined: {shown or 'none'}{more}. Full list: {path}"
    )
