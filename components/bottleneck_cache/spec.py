"""Keys, parameter ranges, artifact properties, files and the ComponentSpec of BottleneckCache.

Declared once: the component, executor, plan, Beam core, the YAML config (BOUNDS), the
run summary (the counts) and the tests import these names. The feature the cache adds
to its output records is examples.BOTTLENECK_KEY (components/common/examples.py), which
the Trainer reads.
"""

from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

from components.common.bounds import Bounds

# --- component keys ----------------------------------------------------------------
EXAMPLES_KEY = "examples"  # Examples from ImageExampleGen (raw encoded images)
TRANSFORM_GRAPH_KEY = "transform_graph"  # TransformGraph: decode + resize + scaling
BASE_MODEL_KEY = "base_model"  # Model: a directory holding model.keras
BOTTLENECKS_KEY = "bottlenecks"  # output Examples: the cached frozen-layer outputs

CUT_LAYER_KEY = "cut_layer"  # a layer name, "" (= use drop_top_layers) or "auto"
# JSON list of layer names: the candidates of cut_layer "auto" ("[]" or unset: the
# base's block boundaries, model_surgery.default_cut_candidates).
CUT_CANDIDATES_KEY = "cut_candidates"
DROP_TOP_LAYERS_KEY = "drop_top_layers"  # number of top layers to drop (0 = whole base)
POOLING_KEY = "pooling"  # applied when the cut output is spatial (rank 4)
BATCH_SIZE_KEY = "batch_size"
CACHE_DIR_KEY = "cache_dir"  # persistent root of the content-addressed cache

# Ranges of the numeric parameters (the YAML config's `cache` and `base_model` read these).
BOUNDS = {
    DROP_TOP_LAYERS_KEY: Bounds(0, integer=True),
    BATCH_SIZE_KEY: Bounds(1, integer=True),
}


# --- custom properties of the output artifact ----------------------------------------
PROP_COMPUTED = "vectors_computed"
PROP_REUSED = "vectors_reused"
PROP_FAILED = "records_failed"  # corrupt records: counted, written to failed.jsonl
PROP_SHAPE = "bottleneck_shape"  # JSON list, the shape before flattening
PROP_DIM = "bottleneck_dim"
PROP_NAMESPACE = "cache_namespace"
PROP_BASE_FINGERPRINT = "base_fingerprint"
PROP_TRANSFORM_FINGERPRINT = "transform_fingerprint"
PROP_CUT_LAYER = "resolved_cut_layer"
PROP_POOLING = "applied_pooling"  # "none" when the cut output is not rank 4
# cut_layer "auto": JSON list of {"layer", "pooling", "shape", "dim", "namespace",
# "feature"}, one per candidate, bottom to top (each candidate's own cache namespace).
PROP_CANDIDATES = "cut_candidates"
# Unreadable cache shards this run found and skipped (their vectors recomputed); those
# with bad content are moved to <namespace>/quarantine/, so later runs do not meet them.
PROP_SHARDS_SKIPPED = "cache_shards_skipped"

FAILED_FILE = "failed.jsonl"  # {"image_id", "split", "error"} per failed record
COUNTS_FILE = "counts.json"


class BottleneckCacheSpec(ComponentSpec):
    """ComponentSpec of BottleneckCache."""

    PARAMETERS = {
        CUT_LAYER_KEY: ExecutionParameter(type=str, optional=True),
        CUT_CANDIDATES_KEY: ExecutionParameter(type=str, optional=True),
        DROP_TOP_LAYERS_KEY: ExecutionParameter(type=int, optional=True),
        POOLING_KEY: ExecutionParameter(type=str, optional=True),
        BATCH_SIZE_KEY: ExecutionParameter(type=int, optional=True),
        CACHE_DIR_KEY: ExecutionParameter(type=str),
    }
    INPUTS = {
        EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples),
        TRANSFORM_GRAPH_KEY: ChannelParameter(type=standard_artifacts.TransformGraph),
        BASE_MODEL_KEY: ChannelParameter(type=standard_artifacts.Model),
    }
    OUTPUTS = {
        BOTTLENECKS_KEY: ChannelParameter(type=standard_artifacts.Examples),
    }
