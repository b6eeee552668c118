"""Keys, feature names and artifact types of ImageExampleGen, declared once.

The component, its executor, the schema, the Transform preprocessing_fn and the
tests all import these names, so they cannot drift apart.
"""

from tfx import types
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

# --- tf.Example feature names -------------------------------------------------
IMAGE_KEY = "image"  # bytes: the encoded image (original bytes unless downscaled)
LABEL_KEY = "label"  # int64: index into the class vocabulary; -1 when unlabelled
LABEL_NAME_KEY = "label_name"  # bytes: the class folder name; b"" when unlabelled
IMAGE_ID_KEY = "image_id"  # bytes: sha256 hex of the original file's content
SOURCE_PATH_KEY = "source_path"  # bytes: utf-8 path relative to the input root
HEIGHT_KEY = "height"  # int64: original height in pixels
WIDTH_KEY = "width"  # int64: original width in pixels
FORMAT_KEY = "format"  # bytes: jpeg | png | gif | bmp

UNLABELLED = -1

# --- splits -----------------------------------------------------------------------
TRAIN_SPLIT = "train"
EVAL_SPLIT = "eval"
SPLITS = (TRAIN_SPLIT, EVAL_SPLIT)

# --- files inside the output artifacts ------------------------------------------
VOCABULARY_FILE = "labels.txt"  # one class name per line; line number = label index
CLASS_COUNTS_FILE = "class_counts.json"  # {"class": {"train": n, "eval": n}}
QUARANTINE_FILE = "quarantine.jsonl"  # {"path", "reason"} per quarantined file
DUPLICATES_FILE = "duplicates.jsonl"  # {"path", "kept", "image_id"} per dropped copy
COUNTS_FILE = "counts.json"  # the reconciled counts, also set as custom properties

# --- component keys --------------------------------------------------------------
INPUT_BASE_KEY = "input_base"
TRAIN_RATIO_KEY = "train_ratio"
MAX_PIXELS_KEY = "max_pixels"
MAX_SIDE_KEY = "max_side"
LABELLED_KEY = "labelled"
INPUT_FINGERPRINT_KEY = "input_fingerprint"  # set by the driver, keys TFX's cache

EXAMPLES_KEY = "examples"
VOCABULARY_KEY = "vocabulary"
REPORT_KEY = "report"

# Counts recorded as custom properties of the examples artifact.
COUNT_FILES_SEEN = "files_seen"
COUNT_INGESTED = "ingested"
COUNT_QUARANTINED = "quarantined"
COUNT_DUPLICATES = "duplicates"
# Files that operating systems and tools drop into folders (.DS_Store, ._*, Thumbs.db,
# desktop.ini, hidden folders such as .git: listing.is_ignored): neither read nor
# quarantined. files_seen = ingested + quarantined + duplicates + ignored.
COUNT_IGNORED = "ignored"
COUNT_TRANSCODED = "transcoded"
COUNT_DOWNSCALED = "downscaled"


class ClassVocabulary(types.Artifact):
    """The class names in label-index order (labels.txt) and per-class counts."""

    TYPE_NAME = "ClassVocabulary"


class IngestReport(types.Artifact):
    """What ingestion did with every file: quarantined, duplicate, counts."""

    TYPE_NAME = "IngestReport"


class ImageExampleGenSpec(ComponentSpec):
    """ComponentSpec of ImageExampleGen."""

    PARAMETERS = {
        INPUT_BASE_KEY: ExecutionParameter(type=str),
        TRAIN_RATIO_KEY: ExecutionParameter(type=float),
        MAX_PIXELS_KEY: ExecutionParameter(type=int),
        MAX_SIDE_KEY: ExecutionParameter(type=int, optional=True),
        LABELLED_KEY: ExecutionParameter(type=int, optional=True),
        INPUT_FINGERPRINT_KEY: ExecutionParameter(type=str, optional=True),
    }
    INPUTS = {}
    OUTPUTS = {
        EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples),
        VOCABULARY_KEY: ChannelParameter(type=ClassVocabulary),
        REPORT_KEY: ChannelParameter(type=IngestReport),
    }
