"""AnomalyGate: fail the run when the examples cannot train a model that means anything.

A Python-function component. Its inputs are ExampleValidator's ExampleAnomalies and,
when a model will be trained on labelled data (a base model is configured), the schema
and ImageExampleGen's ClassVocabulary. It stops the
run on any anomaly against the schema, on class folders that are not exactly the
schema's classes, and on a class with fewer labelled examples than the minimum in
the train or the eval split. Components that must not run on such data (Transform
and everything after it) are made downstream of this gate in `create_pipeline`.
"""

import json
import os

from tfx.dsl.component.experimental.annotations import InputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.dsl.io import fileio
from tfx.types import artifact_utils, standard_artifacts

from components.anomaly_gate import gate
from components.common import artifacts
from components.common.artifacts import ClassVocabulary
from components.common.schema import SCHEMA_FILE, class_names_from_schema

Schema = standard_artifacts.Schema


@component
def AnomalyGate(  # noqa: N802 (TFX components are classes by convention)
    anomalies: InputArtifact[standard_artifacts.ExampleAnomalies],
    # Optional inputs: TFX's decorator takes the default None as "optional".
    schema: InputArtifact[Schema] = None,
    vocabulary: InputArtifact[ClassVocabulary] = None,
    min_train_per_class: Parameter[int] = 0,
    min_eval_per_class: Parameter[int] = 0,
) -> None:
    """Raises DataAnomalyError naming every anomaly, class mismatch or short class."""
    splits = artifact_utils.decode_split_names(anomalies.split_names)
    gate.check(
        {
            split: gate.read_anomalies(artifact_utils.get_split_uri([anomalies], split))
            for split in splits
        }
    )
    if schema is None or vocabulary is None:
        return
    with fileio.open(os.path.join(vocabulary.uri, artifacts.VOCABULARY_FILE)) as f:
        labels = [line.rstrip("\n") for line in f.read().splitlines() if line.strip()]
    with fileio.open(os.path.join(vocabulary.uri, artifacts.CLASS_COUNTS_FILE)) as f:
        counts = json.loads(f.read())
    gate.check_classes(
        class_names_from_schema(os.path.join(schema.uri, SCHEMA_FILE)),
        labels,
        counts,
        min_train_per_class,
        min_eval_per_class,
    )
