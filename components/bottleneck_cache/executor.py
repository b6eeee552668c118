"""Executor of BottleneckCache: thin glue between TFX artifacts and cache.ComputeBottlenecks.

Reads the three input artifacts, makes the plan (plan.make_plan: cut, fingerprints,
namespace), runs the Beam job (cache.run_bottlenecks), and writes a standard Examples artifact
(``<uri>/Split-<split>/data_tfrecord-*.gz`` for every input split, split_names set)
plus failed.jsonl and counts.json, whose values become custom properties.
"""

import json

from absl import logging
from tfx.dsl.components.base import base_beam_executor
from tfx.types import artifact_utils

from components.bottleneck_cache import cache, spec
from components.bottleneck_cache import plan as plan_lib

_SHOWN_FAILURES = 5


class Executor(base_beam_executor.BaseBeamExecutor):
    """Computes (or reuses from the persistent cache) the bottleneck of every example."""

    def Do(self, input_dict, output_dict, exec_properties):  # noqa: N802 - TFX's name
        """Runs the Beam job and records what it did.

        Raises:
          ValueError: bad parameters or cut, or no record could be processed.
          FileNotFoundError: the base model artifact holds no model.keras.
        """
        examples = artifact_utils.get_single_instance(input_dict[spec.EXAMPLES_KEY])
        transform_graph = artifact_utils.get_single_instance(input_dict[spec.TRANSFORM_GRAPH_KEY])
        base_model = artifact_utils.get_single_instance(input_dict[spec.BASE_MODEL_KEY])
        output = artifact_utils.get_single_instance(output_dict[spec.BOTTLENECKS_KEY])
        params = _parameters(exec_properties)
        plan = plan_lib.make_plan(
            base_model.uri,
            transform_graph.uri,
            params[spec.CUT_LAYER_KEY],
            params[spec.DROP_TOP_LAYERS_KEY],
            params[spec.POOLING_KEY],
            params[spec.CUT_CANDIDATES_KEY],
            cache_dir=params[spec.CACHE_DIR_KEY],
        )
        splits = artifact_utils.decode_split_names(examples.split_names)
        patterns = {
            s: plan_lib.join(artifact_utils.get_split_uri([examples], s), "*") for s in splits
        }
        output.split_names = artifact_utils.encode_split_names(splits)
        counts = cache.run_bottlenecks(
            self._make_beam_pipeline,
            patterns,
            plan,
            params[spec.CACHE_DIR_KEY],
            output.uri,
            params[spec.BATCH_SIZE_KEY],
        )
        _set_properties(output, plan, counts)
        logging.info("BottleneckCache namespace %s: %s", plan.namespace, json.dumps(counts))
        written = sum(counts[cache.split_count_name(s)] for s in splits)
        if written == 0:
            raise ValueError(_nothing_written(counts, output.uri))


def _parameters(exec_properties: dict) -> dict:
    """Exec properties with defaults, validated (errors name the parameter)."""
    params = {
        spec.CUT_LAYER_KEY: exec_properties.get(spec.CUT_LAYER_KEY) or "",
        spec.DROP_TOP_LAYERS_KEY: int(exec_properties.get(spec.DROP_TOP_LAYERS_KEY) or 0),
        spec.POOLING_KEY: exec_properties.get(spec.POOLING_KEY) or "avg",
        spec.BATCH_SIZE_KEY: int(exec_properties.get(spec.BATCH_SIZE_KEY) or 32),
        spec.CACHE_DIR_KEY: exec_properties.get(spec.CACHE_DIR_KEY),
        spec.CUT_CANDIDATES_KEY: tuple(
            json.loads(exec_properties.get(spec.CUT_CANDIDATES_KEY) or "[]")
        ),
    }
    plan_lib.validate_parameters(**params)
    return params


def _set_properties(output, plan: plan_lib.CachePlan, counts: dict) -> None:
    for name, value in counts.items():
        output.set_int_custom_property(name, value)
    output.set_string_custom_property(spec.PROP_SHAPE, json.dumps(list(plan.shape)))
    output.set_int_custom_property(spec.PROP_DIM, plan.dim)
    output.set_string_custom_property(spec.PROP_NAMESPACE, plan.namespace)
    output.set_string_custom_property(spec.PROP_BASE_FINGERPRINT, plan.base_fingerprint)
    output.set_string_custom_property(spec.PROP_TRANSFORM_FINGERPRINT, plan.transform_fingerprint)
    output.set_string_custom_property(spec.PROP_CUT_LAYER, plan.cut_layer)
    output.set_string_custom_property(spec.PROP_POOLING, plan.pooling)
    if plan.auto:
        candidates = [segment.to_dict() for segment in plan.segments]
        output.set_string_custom_property(spec.PROP_CANDIDATES, json.dumps(candidates))


def _nothing_written(counts: dict, output_uri: str) -> str:
    """The error message when no record got a vector, quoting the first failures."""
    failures = cache.read_failures(output_uri)
    if not failures:
        return f"the input examples hold no records (counts: {counts})"
    shown = "; ".join(
        f"{f['split']}/{f['image_id'] or '?'}: {f['error']}" for f in failures[:_SHOWN_FAILURES]
    )
    more = (
        f" (and {len(failures) - _SHOWN_FAILURES} more)" if len(failures) > _SHOWN_FAILURES else ""
    )
    return (
        f"every record failed ({counts[spec.PROP_FAILED]}): {shown}{more}. "
        f"Full list: {plan_lib.join(output_uri, spec.FAILED_FILE)}"
    )
