"""Keys and the ComponentSpec of LayerwisePretrainer, declared once."""

from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

from components.common.bounds import Bounds

EXAMPLES_KEY = "examples"
TRANSFORM_GRAPH_KEY = "transform_graph"
MODEL_KEY = "model"

LAYERS_KEY = "layers"  # JSON: {"conv_blocks": [...], "dense_units": [...]}
EPOCHS_KEY = "epochs_per_layer"
BATCH_SIZE_KEY = "batch_size"
LEARNING_RATE_KEY = "learning_rate"
NOISE_KEY = "noise"
NOISE_LEVEL_KEY = "noise_level"
SEED_KEY = "seed"

NOISES = ("none", "gaussian", "masking")

# Ranges of the numeric parameters, stated once (stack.py validates with them; the YAML
# config's base_model.layerwise section reads them).
BOUNDS = {
    "filters": Bounds(1, 4096, integer=True),
    "kernel": Bounds(1, 15, integer=True),
    "pool": Bounds(1, 8, integer=True),  # 1: no pooling
    "units": Bounds(1, 65536, integer=True),
    EPOCHS_KEY: Bounds(1, integer=True),
    BATCH_SIZE_KEY: Bounds(1, integer=True),
    LEARNING_RATE_KEY: Bounds(0.0, 1.0, low_open=True, high_open=True),
    # gaussian: the stddev; masking: the probability of zeroing a value
    NOISE_LEVEL_KEY: Bounds(0.0, 1.0, high_open=True),
}

# Inside the output Model artifact, beside model.keras.
REPORTS_DIR = "reports"
LOSS_PLOT_FILE = "reconstruction_loss.png"
GRID_FILE = "reconstructions.png"
HISTORY_FILE = "pretraining.json"

PROP_ARCHITECTURE = "architecture"  # the same property BaseModelGen sets
PROP_LAYERS = "num_layers"
PROP_IMAGES = "pretraining_images"
PROP_FINAL_LOSS = "final_reconstruction_loss"  # the top layer's last training loss


class LayerwisePretrainerSpec(ComponentSpec):
    """ComponentSpec of LayerwisePretrainer."""

    PARAMETERS = {
        LAYERS_KEY: ExecutionParameter(type=str),
        EPOCHS_KEY: ExecutionParameter(type=int),
        BATCH_SIZE_KEY: ExecutionParameter(type=int),
        LEARNING_RATE_KEY: ExecutionParameter(type=float),
        NOISE_KEY: ExecutionParameter(type=str),
        NOISE_LEVEL_KEY: ExecutionParameter(type=float),
        SEED_KEY: ExecutionParameter(type=int),
    }
    INPUTS = {
        EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples),
        TRANSFORM_GRAPH_KEY: ChannelParameter(type=standard_artifacts.TransformGraph),
    }
    OUTPUTS = {MODEL_KEY: ChannelParameter(type=standard_artifacts.Model)}
