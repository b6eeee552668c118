"""create_pipeline(config): the one place where the DAG is wired.

The same function serves the local runner (LocalDagRunner, SQLite metadata, Beam
DirectRunner) and, later, Kubeflow Pipelines: runners only differ in what they wrap
around the returned `tfx.dsl.Pipeline`.
"""

from __future__ import annotations

from tfx import v1 as tfx

from components.anomaly_gate.component import AnomalyGate
from components.image_example_gen.component import ImageExampleGen
from pipeline.config import PipelineConfig

# Transform calls this function by its dotted path: no user-module wheel is built, and
# the Kubeflow image (where the package is installed) resolves it the same way.
PREPROCESSING_FN = "pipeline.preprocessing.preprocessing_fn"


def create_components(config: PipelineConfig) -> list:
    """Returns the pipeline's components, wired, in topological order."""
    # Image folders -> train/eval tf.Examples, class vocabulary, quarantine report.
    example_gen = ImageExampleGen(
        input_base=config.data.root,
        train_ratio=config.data.train_ratio,
        max_pixels=config.data.max_pixels,
        max_side=config.data.max_side,
        labelled=config.data.labelled,
    )
    # Per-split statistics of the ingested examples.
    statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"])
    # The reviewed, checked-in schema (label vocabulary, required image bytes).
    schema_gen = tfx.components.ImportSchemaGen(schema_file=config.schema)
    # Statistics vs schema -> anomalies ...
    example_validator = tfx.components.ExampleValidator(
        statistics=statistics_gen.outputs["statistics"],
        schema=schema_gen.outputs["schema"],
    )
    # ... and any anomaly stops the run here, with a message naming it.
    anomaly_gate = AnomalyGate(anomalies=example_validator.outputs["anomalies"])
    # Decode -> RGB -> resize -> the base network's scaling: the transform graph that
    # the bottleneck cache and the served model reuse. Nothing is materialized: image
    # tensors are large, and every consumer applies the graph itself.
    transform = tfx.components.Transform(
        examples=example_gen.outputs["examples"],
        schema=schema_gen.outputs["schema"],
        preprocessing_fn=PREPROCESSING_FN,
        custom_config=config.image.image_spec().to_dict(),
        materialize=False,
        disable_statistics=True,
    )
    transform.add_upstream_node(anomaly_gate)
    return [
        example_gen,
        statistics_gen,
        schema_gen,
        example_validator,
        anomaly_gate,
        transform,
    ]


def create_pipeline(
    config: PipelineConfig,
    metadata_connection_config=None,
) -> tfx.dsl.Pipeline:
    """Builds the TFX pipeline for a validated config.

    Args:
      config: the validated pipeline config.
      metadata_connection_config: ML Metadata connection; None lets the runner
        choose (Kubeflow supplies its own).

    Returns:
      The logical pipeline, ready for a runner.
    """
    return tfx.dsl.Pipeline(
        pipeline_name=config.pipeline_name,
        pipeline_root=config.pipeline_dir,
        components=create_components(config),
        enable_cache=config.enable_cache,
        metadata_connection_config=metadata_connection_config,
        beam_pipeline_args=list(config.beam_pipeline_args),
    )
