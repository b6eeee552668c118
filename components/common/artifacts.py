"""Artifact types that more than one component reads, and the files inside them.

ImageExampleGen writes a ClassVocabulary (the class names in label-index order and the
per-class counts) and an IngestReport (what happened to every file); AnomalyGate reads
the vocabulary, the Kubeflow compile maps both types to its own artifact titles.
"""

from tfx import types

# --- files inside the output artifacts ------------------------------------------
VOCABULARY_FILE = "labels.txt"  # one class name per line; line number = label index
CLASS_COUNTS_FILE = "class_counts.json"  # {"class": {"train": n, "eval": n}}
QUARANTINE_FILE = "quarantine.jsonl"  # {"path", "reason"} per quarantined file
DUPLICATES_FILE = "duplicates.jsonl"  # {"path", "kept", "image_id"} per dropped copy
COUNTS_FILE = "counts.json"  # the reconciled counts, also set as custom properties


class ClassVocabulary(types.Artifact):
    """The class names in label-index order (labels.txt) and per-class counts."""

    TYPE_NAME = "ClassVocabulary"


class IngestReport(types.Artifact):
    """What ingestion did with every file: quarantined, duplicate, counts."""

    TYPE_NAME = "IngestReport"
