"""ImageExampleGen's executor on a folder, outside TFX: for tests and bench/."""

from __future__ import annotations

import os

from tfx.types import standard_artifacts

from components.common import artifacts
from components.common.testing import artifact
from components.image_example_gen import executor, spec


def run_executor(input_base: str, output_uri: str, **exec_properties):
    """Executor.Do on `input_base`, outputs under `output_uri`/{examples,vocabulary,report}.

    exec_properties override the defaults (train_ratio 0.5, max_pixels 64,000,000,
    max_side 0, labelled). Returns (examples, vocabulary, report) artifacts.
    """
    examples = artifact(standard_artifacts.Examples, os.path.join(output_uri, "examples"))
    vocabulary = artifact(artifacts.ClassVocabulary, os.path.join(output_uri, "vocabulary"))
    report = artifact(artifacts.IngestReport, os.path.join(output_uri, "report"))
    properties = {
        spec.INPUT_BASE_KEY: str(input_base),
        spec.TRAIN_RATIO_KEY: 0.5,
        spec.MAX_PIXELS_KEY: 64_000_000,
        spec.MAX_SIDE_KEY: 0,
        spec.LABELLED_KEY: 1,
        **exec_properties,
    }
    outputs = {
        spec.EXAMPLES_KEY: [examples],
        spec.VOCABULARY_KEY: [vocabulary],
        spec.REPORT_KEY: [report],
    }
    executor.Executor().Do({}, outputs, properties)
    return examples, vocabulary, report
