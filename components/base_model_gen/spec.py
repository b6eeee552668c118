"""Keys, choices and the ComponentSpec of BaseModelGen, declared once.

BaseModelGen turns a base-network choice from the config into a `Model` artifact (a
directory holding model.keras), the one form every consumer (BottleneckCache, the
Trainers) reads, whatever the source: a Keras Applications architecture, a builtin
architecture of this project, or a user's file.
"""

from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

KIND_KEY = "kind"
NAME_KEY = "name"
WEIGHTS_KEY = "weights"
PATH_KEY = "path"
HEIGHT_KEY = "height"
WIDTH_KEY = "width"
SEED_KEY = "seed"
SOURCE_FINGERPRINT_KEY = "source_fingerprint"  # set by the driver, keys TFX's cache
MODEL_KEY = "model"

KIND_APPLICATION = "keras_application"
KIND_BUILTIN = "builtin"
KIND_FILE = "file"
KINDS = (KIND_APPLICATION, KIND_BUILTIN, KIND_FILE)

# Small architectures of this project (random, seeded), for bases that a source task
# or layer-wise pretraining trains; name -> the input scaling they are built for.
BUILTINS = {"small_cnn": "symmetric"}

# Keras Applications architectures offered by name, with the input scaling each one's
# pretrained weights expect (the config's image.scaling). "raw" ones rescale inside.
APPLICATIONS = {
    "MobileNetV2": "symmetric",
    "MobileNetV3Small": "raw",
    "MobileNetV3Large": "raw",
    "EfficientNetB0": "raw",
    "EfficientNetV2B0": "raw",
    "ResNet50": "caffe",
    "ResNet50V2": "symmetric",
    "VGG16": "caffe",
    "DenseNet121": "torch",
    "InceptionV3": "symmetric",
    "Xception": "symmetric",
    "ConvNeXtTiny": "raw",
}

# Files accepted for kind "file".
FILE_SUFFIXES = (".keras", ".h5")

PROP_ARCHITECTURE = "architecture"
PROP_LAYERS = "num_layers"


class BaseModelGenSpec(ComponentSpec):
    """ComponentSpec of BaseModelGen."""

    PARAMETERS = {
        KIND_KEY: ExecutionParameter(type=str),
        NAME_KEY: ExecutionParameter(type=str, optional=True),
        WEIGHTS_KEY: ExecutionParameter(type=str, optional=True),
        PATH_KEY: ExecutionParameter(type=str, optional=True),
        HEIGHT_KEY: ExecutionParameter(type=int),
        WIDTH_KEY: ExecutionParameter(type=int),
        SEED_KEY: ExecutionParameter(type=int, optional=True),
        SOURCE_FINGERPRINT_KEY: ExecutionParameter(type=str, optional=True),
    }
    INPUTS = {}
    OUTPUTS = {MODEL_KEY: ChannelParameter(type=standard_artifacts.Model)}
