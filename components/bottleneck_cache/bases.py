"""The frozen part of the base network: load it, resolve the cut, pool, fingerprint.

A base network is a native Keras 3 ``.keras`` file (``pipeline.model_io``), usually
the ``model.keras`` inside a Model artifact's directory. The bottleneck extractor is
the sub-model from the base's input up to one named layer (the cut), followed by a
global pooling layer when that layer's output is a spatial map (rank 4) and pooling
is not "none". It is frozen (``trainable = False``) and always called with
``training=False``, so BatchNormalization uses its moving statistics.

The fingerprint identifies what the extractor computes: a sha256 over the cut
sub-model's architecture (canonical JSON) and every weight array (name, dtype, shape
and bytes). Saving the same model again gives the same fingerprint; other weights or
another cut give another one. Pooling is not part of it: the cache namespace adds it
(see plan.py).
"""

from __future__ import annotations

import hashlib
import json

import keras
import numpy as np

from components.bottleneck_cache import spec
from pipeline import model_io

# Pooling layers applied to a rank-4 cut output ("none" keeps the spatial map).
_POOLING_LAYERS = {
    "avg": keras.layers.GlobalAveragePooling2D,
    "max": keras.layers.GlobalMaxPooling2D,
    "flatten": keras.layers.Flatten,
}
NO_POOLING = "none"


def load_base(uri: str) -> keras.Model:
    """Loads the base network from a Model artifact's uri.

    Args:
        uri: a directory holding model.keras (a Model artifact's uri) or a .keras file.

    Returns:
        The Keras 3 model.

    Raises:
        FileNotFoundError: neither ``uri`` (as a .keras file) nor
            ``<uri>/model.keras`` exists; the message names what was looked for.
    """
    try:
        return model_io.load_keras(uri)
    except FileNotFoundError as error:
        raise FileNotFoundError(f"base_model: cannot load the base network: {error}") from error


def resolve_cut_layer(model: keras.Model, cut_layer: str = "", drop_top_layers: int = 0) -> str:
    """The name of the last layer kept in the frozen extractor.

    Args:
        model: the base network (functional or built Sequential).
        cut_layer: a layer name; "" to use drop_top_layers.
        drop_top_layers: how many layers to drop from the top of ``model.layers``
            (0 keeps the whole network). Ignored when cut_layer is set.

    Returns:
        A layer name of ``model``.

    Raises:
        ValueError: unknown cut_layer (the message lists the valid names), both
            arguments set, or drop_top_layers outside 0..(number of layers - 2) (the
            input layer cannot be the cut).
    """
    names = [layer.name for layer in model.layers]
    if cut_layer and drop_top_layers:
        raise ValueError(
            f"set cut_layer or drop_top_layers, not both (got cut_layer={cut_layer!r}, "
            f"drop_top_layers={drop_top_layers})"
        )
    if cut_layer:
        if cut_layer not in names:
            raise ValueError(
                f"cut_layer {cut_layer!r} is not a layer of base model {model.name!r}; "
                f"valid layer names: {names}"
            )
        return cut_layer
    kept = [layer.name for layer in model.layers if not _is_input(layer)]
    if isinstance(drop_top_layers, bool) or not 0 <= drop_top_layers < len(kept):
        raise ValueError(
            f"drop_top_layers must be between 0 and {len(kept) - 1} for base model "
            f"{model.name!r}, which has {len(kept)} layers after its input; "
            f"got {drop_top_layers!r}"
        )
    return kept[len(kept) - 1 - drop_top_layers]


def _is_input(layer: keras.layers.Layer) -> bool:
    return isinstance(layer, keras.layers.InputLayer)


def cut_model(model: keras.Model, cut_layer: str) -> keras.Model:
    """model_io.cut, checked to have one output tensor."""
    sub_model = model_io.cut(model, cut_layer)
    if len(sub_model.outputs) != 1:
        raise ValueError(
            f"cut layer {cut_layer!r} has {len(sub_model.outputs)} outputs; "
            "choose a layer with a single output tensor"
        )
    return sub_model


def effective_pooling(sub_model: keras.Model, pooling: str) -> str:
    """The pooling actually applied: ``pooling`` for a rank-4 cut output, else "none".

    Raises:
        ValueError: pooling is not one of spec.POOLINGS.
    """
    if pooling not in spec.POOLINGS:
        raise ValueError(f"pooling must be one of {list(spec.POOLINGS)}, got {pooling!r}")
    return pooling if len(sub_model.outputs[0].shape) == 4 else NO_POOLING


def build_extractor(sub_model: keras.Model, pooling: str) -> keras.Model:
    """The frozen feature extractor: the cut sub-model plus the pooling layer.

    Args:
        sub_model: the base cut at the resolved layer (``cut_model``).
        pooling: one of spec.POOLINGS; applied only when the output has rank 4.

    Returns:
        A non-trainable keras.Model; call it with ``training=False``. It shares its
        layers with the base, so those layers of the base are frozen too.
    """
    applied = effective_pooling(sub_model, pooling)
    outputs = sub_model.outputs[0]
    if applied != NO_POOLING:
        outputs = _POOLING_LAYERS[applied](name=f"bottleneck_{applied}_pooling")(outputs)
    extractor = keras.Model(
        inputs=sub_model.input, outputs=outputs, name=f"{sub_model.name}_{applied}"
    )
    extractor.trainable = False
    return extractor


def fingerprint(sub_model: keras.Model) -> str:
    """sha256 hex over the architecture (canonical JSON) and every weight array.

    Left out, because they do not change what the frozen extractor computes: the
    compile configuration and every "trainable" flag (freezing the extractor sets
    them; it is always called with training=False).
    """
    digest = hashlib.sha256()
    architecture = _without_keys(json.loads(sub_model.to_json()), {"compile_config", "trainable"})
    digest.update(json.dumps(architecture, sort_keys=True, separators=(",", ":")).encode())
    for weight in sub_model.weights:
        array = np.ascontiguousarray(keras.ops.convert_to_numpy(weight))
        header = f"\n{weight.path}|{array.dtype.str}|{array.shape}\n"
        digest.update(header.encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def _without_keys(value, keys: set[str]):
    """A JSON value with the given dict keys removed at every depth."""
    if isinstance(value, dict):
        return {k: _without_keys(v, keys) for k, v in value.items() if k not in keys}
    if isinstance(value, list):
        return [_without_keys(v, keys) for v in value]
    return value
