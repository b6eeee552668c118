"""BottleneckCache: the frozen layers' output for every image, computed once and cached.

Inputs: `examples` (ImageExampleGen's Examples: encoded images), `transform_graph`
(Transform's output: decode -> resize -> scaling) and `base_model` (a Model whose uri
holds model.keras). Output: `bottlenecks`, an Examples artifact with the same splits
whose records are the input records plus the flattened bottleneck vector, so the
standard Trainer can train a new head on it. Vectors persist under `cache_dir`,
content-addressed (see plan.py and store.py): a rerun computes only new images.
"""

import json

from tfx import types
from tfx.dsl.components.base import base_beam_component, executor_spec
from tfx.types import standard_artifacts

from components.bottleneck_cache import executor, spec
from components.bottleneck_cache.plan import validate_parameters


class BottleneckCache(base_beam_component.BaseBeamComponent):
    """Runs the transform and the frozen lower layers over every example (Beam)."""

    SPEC_CLASS = spec.BottleneckCacheSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)

    def __init__(
        self,
        examples: types.BaseChannel,
        transform_graph: types.BaseChannel,
        base_model: types.BaseChannel,
        cache_dir: str,
        cut_layer: str = "",
        drop_top_layers: int = 0,
        pooling: str = "avg",
        batch_size: int = 32,
        cut_candidates: tuple[str, ...] = (),
    ):
        """Constructs a BottleneckCache.

        Args:
          examples: Examples with the encoded image, label, label_name and image_id.
          transform_graph: TransformGraph of components.common.preprocessing.preprocessing_fn.
          base_model: Model whose uri is a directory holding model.keras.
          cache_dir: persistent folder (or URI) of the content-addressed cache, shared
            by all runs; it must outlive the pipeline root's executions.
          cut_layer: name of the last layer to keep; "" to use drop_top_layers; "auto"
            to cache every candidate of cut_candidates (the Trainer chooses among them).
          drop_top_layers: number of layers dropped from the top of the base (0 keeps
            the whole base); only when cut_layer is "".
          pooling: one of model_surgery.POOLINGS (components.common), applied when the
            cut output is a spatial map.
          batch_size: images per model call.
          cut_candidates: with cut_layer "auto", the candidate layers (empty: the
            base's block boundaries); each candidate's vectors are cached in its own
            namespace, all computed in the same forward pass.

        Raises:
          ValueError: if an argument is outside its allowed values (the message names
            the argument and what is allowed).
        """
        validate_parameters(
            cut_layer, drop_top_layers, pooling, batch_size, cache_dir, cut_candidates
        )
        super().__init__(
            spec=spec.BottleneckCacheSpec(
                **{
                    spec.EXAMPLES_KEY: examples,
                    spec.TRANSFORM_GRAPH_KEY: transform_graph,
                    spec.BASE_MODEL_KEY: base_model,
                    spec.CACHE_DIR_KEY: cache_dir,
                    spec.CUT_LAYER_KEY: cut_layer,
                    spec.CUT_CANDIDATES_KEY: json.dumps(list(cut_candidates)),
                    spec.DROP_TOP_LAYERS_KEY: drop_top_layers,
                    spec.POOLING_KEY: pooling,
                    spec.BATCH_SIZE_KEY: batch_size,
                    spec.BOTTLENECKS_KEY: types.Channel(type=standard_artifacts.Examples),
                }
            )
        )
