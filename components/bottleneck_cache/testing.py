"""BottleneckCache's executor outside TFX: for tests and bench/."""

from __future__ import annotations

from tfx.types import standard_artifacts

from components.bottleneck_cache import executor, spec
from components.common.testing import artifact


def run_executor(
    examples,
    transform_graph,
    base_model,
    output_uri: str,
    *,
    cache_dir: str,
    tmp_dir: str,
    unique_id: str,
    beam_args=None,
    **exec_properties,
):
    """Executor.Do into a new Examples artifact at `output_uri`; returns it.

    exec_properties override the defaults (the whole base, avg pooling, batch 32);
    cache_dir is the persistent cache root.
    """
    output = artifact(standard_artifacts.Examples, output_uri)
    properties = {
        spec.CACHE_DIR_KEY: str(cache_dir),
        spec.CUT_LAYER_KEY: "",
        spec.DROP_TOP_LAYERS_KEY: 0,
        spec.POOLING_KEY: "avg",
        spec.BATCH_SIZE_KEY: 32,
        **exec_properties,
    }
    inputs = {
        spec.EXAMPLES_KEY: [examples],
        spec.TRANSFORM_GRAPH_KEY: [transform_graph],
        spec.BASE_MODEL_KEY: [base_model],
    }
    context = executor.Executor.Context(
        beam_pipeline_args=beam_args, tmp_dir=str(tmp_dir), unique_id=unique_id
    )
    executor.Executor(context).Do(inputs, {spec.BOTTLENECKS_KEY: [output]}, properties)
    return output
