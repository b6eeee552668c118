"""Keys, parameter ranges, count names and the ComponentSpec of ImageExampleGen, declared once.

The component, its driver, executor and ingest core, the YAML config (BOUNDS), the run
summary (the counts) and the tests import these names, so they cannot drift apart. The
tf.Example feature and split names are in components/common/examples.py, the output
artifact types and their files in components/common/artifacts.py.
"""

from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

from components.common.artifacts import ClassVocabulary, IngestReport
from components.common.bounds import Bounds

# --- component keys --------------------------------------------------------------
INPUT_BASE_KEY = "input_base"
TRAIN_RATIO_KEY = "train_ratio"
MAX_PIXELS_KEY = "max_pixels"
MAX_SIDE_KEY = "max_side"
LABELLED_KEY = "labelled"
INPUT_FINGERPRINT_KEY = "input_fingerprint"  # set by the driver, keys TFX's cache

# Ranges of the numeric parameters (the YAML config's `data` section reads these).
BOUNDS = {
    TRAIN_RATIO_KEY: Bounds(0.0, 1.0, low_open=True, high_open=True),
    MAX_PIXELS_KEY: Bounds(1, integer=True),
    MAX_SIDE_KEY: Bounds(0, integer=True),  # 0: never downscale
}

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
