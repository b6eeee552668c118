"""Model surgery on Keras 3 models: cut a base, freeze it, add a head, unfreeze the top.

Pure functions on `keras.Model`s, unit-tested on tiny models. The bottleneck cache
and the Trainer both cut the base through `cut_base`, so they cannot disagree on
where the frozen part ends.

- `resolve_cut_layer` / `cut_base`: the sub-model from the input up to a named layer,
  or with the top N layers dropped; an unknown name lists the valid ones.
- `feature_extractor` / `freeze_extractor`: cut + optional pooling of a spatial
  output, frozen; `applied_pooling` says which pooling that is.
- `CUT_AUTO` / `default_cut_candidates` / `resolve_cut_candidates`: the candidate cut
  points that ``cut_layer: auto`` measures (the base's block boundaries by default).
- `check_input_size`: the base takes the pipeline's image size.
- `build_head`: the new classifier on the bottleneck vectors (hidden layers, dropout).
- `unfreeze_top`: for fine-tuning, the top K weighted layers of the base become
  trainable while every BatchNormalization layer stays frozen (inference mode: its
  moving statistics are neither used in batch mode nor updated).
- How many layers to unfreeze under `fine_tune: auto` is measured by the Trainer
  (components/trainer/fine_tune_selection.py), not decided here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import keras

from components.common import model_io

# How a spatial cut output becomes a vector: the one list of choices and the default
# (BottleneckCache, the Trainer and the YAML config all read these).
POOLINGS = ("avg", "max", "flatten", "none")
DEFAULT_POOLING = "avg"


def check_pooling(pooling: str, field: str = "pooling") -> str:
    """Returns `pooling`; raises ValueError naming `field` and the choices otherwise."""
    if pooling not in POOLINGS:
        raise ValueError(
            f"{field}: {pooling!r} is not allowed; choose one of: {', '.join(POOLINGS)}"
        )
    return pooling


def resolve_cut_layer(model: keras.Model, cut_layer: str = "", drop_top_layers: int = 0) -> str:
    """The name of the layer whose output is the bottleneck.

    Args:
      model: the base network (functional, or a built Sequential).
      cut_layer: a layer name; "" to use drop_top_layers.
      drop_top_layers: how many layers to drop from the top of ``model.layers``
        (0 keeps the whole base). Input layers are not counted: they cannot be the cut.

    Raises:
      ValueError: both are set, the name is unknown (valid names listed), or
        drop_top_layers is not an integer from 0 to (layers after the input - 1).
    """
    names = [layer.name for layer in model.layers]
    if cut_layer and drop_top_layers:
        raise ValueError(
            f"set cut_layer or drop_top_layers, not both (got cut_layer={cut_layer!r}, "
            f"drop_top_layers={drop_top_layers!r})"
        )
    if cut_layer:
        if cut_layer not in names:
            raise ValueError(
                f"cut_layer {cut_layer!r} is not a layer of base model {model.name!r}; "
                "valid names: " + ", ".join(names)
            )
        return cut_layer
    kept = [layer.name for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    if (
        isinstance(drop_top_layers, bool)
        or not isinstance(drop_top_layers, int)
        or not 0 <= drop_top_layers < len(kept)
    ):
        raise ValueError(
            f"drop_top_layers={drop_top_layers!r} is out of range for base model "
            f"{model.name!r}: it has {len(kept)} layers after its input, so it must be >= 0 "
            f"and <= {len(kept) - 1}"
        )
    return kept[len(kept) - 1 - drop_top_layers]


# cut_layer "auto": the cut is measured among candidates (the Trainer's cut selection).
CUT_AUTO = "auto"
MAX_DEFAULT_CANDIDATES = 6
_POOLING_LAYERS = (
    keras.layers.MaxPooling2D,
    keras.layers.AveragePooling2D,
    keras.layers.GlobalAveragePooling2D,
    keras.layers.GlobalMaxPooling2D,
)


def _spatial_size(layer: keras.layers.Layer) -> tuple | None:
    try:
        shape = layer.output.shape
    except (AttributeError, ValueError):  # several outputs, or not built
        return None
    return tuple(shape[1:3]) if len(shape) == 4 else None


def default_cut_candidates(
    model: keras.Model, max_candidates: int = MAX_DEFAULT_CANDIDATES
) -> list[str]:
    """The base's block boundaries, bottom to top: its top ``max_candidates``.

    A block boundary is a pooling layer when the base has three or more (VGG16's
    ``block{1..5}_pool``, the project's small_cnn), else the last layer at each spatial
    resolution, padding layers aside (strided networks such as MobileNetV2 or
    ResNet50). The base's own output layer is always a candidate.
    """
    # Nested models (e.g. the head of a classifier trained on a source task) are not
    # cut points: their `output` is their own graph's, not the outer model's.
    layers = [
        layer
        for layer in model.layers
        if not isinstance(layer, (keras.layers.InputLayer, keras.Model))
    ]
    pools = [layer.name for layer in layers if isinstance(layer, _POOLING_LAYERS)]
    if len(pools) >= 3:
        names = pools
    else:  # the last layer at each spatial resolution (padding layers do not count)
        sized = [
            (layer.name, _spatial_size(layer))
            for layer in layers
            if not isinstance(layer, keras.layers.ZeroPadding2D)
        ]
        names = [
            name
            for (name, size), (_, after) in zip(sized, sized[1:] + [("", None)], strict=True)
            if size is not None and after != size
        ]
    if layers and layers[-1].name not in names:
        names.append(layers[-1].name)
    return names[-max_candidates:]


def resolve_cut_candidates(model: keras.Model, candidates: Sequence[str] = ()) -> list[str]:
    """The candidates ``cut_layer: auto`` measures, bottom to top (model order).

    Args:
      model: the base.
      candidates: layer names; empty: default_cut_candidates(model).

    Raises:
      ValueError: an unknown layer name (the valid names listed), a repeated one, or
        fewer than two candidates (nothing to choose from).
    """
    order = {layer.name: i for i, layer in enumerate(model.layers)}
    names = list(candidates) or default_cut_candidates(model)
    unknown = [name for name in names if name not in order]
    if unknown:
        raise ValueError(
            f"cut_candidates {unknown} are not layers of base model {model.name!r}; valid "
            "names: " + ", ".join(order)
        )
    if len(set(names)) != len(names):
        raise ValueError(f"cut_candidates {names} lists a layer twice")
    if len(names) < 2:
        raise ValueError(
            f"cut_layer auto needs at least 2 cut_candidates to choose from, got {names}: "
            "list more layers, or set cut_layer to the one you want"
        )
    return sorted(names, key=order.__getitem__)


def cut_base(model: keras.Model, cut_layer: str = "", drop_top_layers: int = 0) -> keras.Model:
    """The base from its input up to the cut (shares the original's weights).

    Raises:
      ValueError: see resolve_cut_layer; or the cut layer has more than one output.
    """
    name = resolve_cut_layer(model, cut_layer, drop_top_layers)
    if name == model.layers[-1].name and len(model.outputs) == 1:
        return model
    cut = model_io.cut(model, name)
    if len(cut.outputs) != 1:
        raise ValueError(
            f"cut layer {name!r} has {len(cut.outputs)} outputs; choose a layer with a "
            "single output tensor"
        )
    return cut


def _pooling_layer(pooling: str) -> keras.layers.Layer | None:
    check_pooling(pooling)
    return {
        "avg": keras.layers.GlobalAveragePooling2D(name="bottleneck_avg_pool"),
        "max": keras.layers.GlobalMaxPooling2D(name="bottleneck_max_pool"),
        "flatten": keras.layers.Flatten(name="bottleneck_flatten"),
        "none": None,
    }[pooling]


def applied_pooling(cut: keras.Model, pooling: str) -> str:
    """The pooling `freeze_extractor` applies: `pooling` on a spatial (rank-4) output,
    else "none" (vectors are not pooled again)."""
    check_pooling(pooling)
    return pooling if len(cut.outputs[0].shape) == 4 else "none"


def freeze_extractor(cut: keras.Model, pooling: str = "avg", name: str = "") -> keras.Model:
    """The frozen extractor of an already cut base: pooled when its output is spatial.

    Returns a model with `trainable = False` (it shares its layers with the base, so
    those are frozen too); call it with `training=False`.
    """
    pool = _pooling_layer(applied_pooling(cut, pooling))
    outputs = cut.outputs[0]
    if pool is not None:
        outputs = pool(outputs)
    extractor = keras.Model(cut.input, outputs, name=name or f"{cut.name}_frozen")
    extractor.trainable = False
    return extractor


def multi_extractor(base: keras.Model, layers: Sequence[str], pooling: str = "avg") -> keras.Model:
    """One frozen model computing several cuts in one forward pass: the outputs of
    `layers`, each pooled (as freeze_extractor would: only when spatial) and flattened,
    concatenated in the order given.

    Returns a model with `trainable = False`; call it with `training=False`.
    """
    check_pooling(pooling)
    tensors = [base.get_layer(resolve_cut_layer(base, layer)).output for layer in layers]
    outputs = []
    for i, (layer, tensor) in enumerate(zip(layers, tensors, strict=True)):
        applied = pooling if len(tensor.shape) == 4 else "none"
        if applied == "avg":
            tensor = keras.layers.GlobalAveragePooling2D(name=f"candidate{i}_avg_pool")(tensor)
        elif applied == "max":
            tensor = keras.layers.GlobalMaxPooling2D(name=f"candidate{i}_max_pool")(tensor)
        outputs.append(keras.layers.Flatten(name=f"candidate{i}_{layer}")(tensor))
    joined = (
        outputs[0] if len(outputs) == 1 else keras.layers.Concatenate(name="candidates")(outputs)
    )
    extractor = keras.Model(base.input, joined, name=f"{base.name}_candidates_frozen")
    extractor.trainable = False
    return extractor


def feature_extractor(
    base: keras.Model, cut_layer: str = "", drop_top_layers: int = 0, pooling: str = "avg"
) -> keras.Model:
    """The frozen part: the cut base, pooled when its output is a spatial map.

    Returns a model with `trainable = False`; call it with `training=False`.
    """
    cut = cut_base(base, cut_layer, drop_top_layers)
    return freeze_extractor(cut, pooling, name=f"{base.name}_frozen")


def check_input_size(
    model: keras.Model, height: int, width: int, source: str = "the image size", fix: str = ""
) -> None:
    """Raises ValueError unless `model` takes one [batch, height, width, 3] image input.

    The one check of "base input size == image size" (BaseModelGen, BottleneckCache
    and the Trainer call it). A None dimension of the model accepts any size.

    Args:
      model: the base network.
      height, width: the image size the pipeline's preprocessing produces.
      source: where that size comes from, for the message (e.g. "image.height/width").
      fix: what the user should do, appended to the message.
    """
    shapes = [tuple(tensor.shape) for tensor in model.inputs]
    if len(shapes) != 1 or len(shapes[0]) != 4 or shapes[0][3] not in (None, 3):
        raise ValueError(
            f"the base model {model.name!r} must take one image input [batch, height, "
            f"width, 3], got inputs {shapes}"
        )
    got = shapes[0][1:3]
    if any(g not in (None, e) for g, e in zip(got, (height, width), strict=True)):
        raise ValueError(
            f"the base model {model.name!r} takes {got[0]}x{got[1]} images but {source} is "
            f"{height}x{width}" + (f"; {fix}" if fix else "")
        )


@dataclasses.dataclass(frozen=True)
class HeadSpec:
    """The new classifier on top of the bottleneck."""

    num_classes: int
    hidden_units: tuple[int, ...] = ()
    dropout: float = 0.0

    def __post_init__(self):
        if self.num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {self.num_classes}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if any(units < 1 for units in self.hidden_units):
            raise ValueError(f"hidden_units must be positive, got {self.hidden_units}")


def build_head(bottleneck_shape: Sequence[int], head: HeadSpec) -> keras.Model:
    """The head: bottleneck (flattened if spatial) -> hidden layers -> softmax."""
    inputs = keras.Input(tuple(bottleneck_shape), name="bottleneck")
    x = inputs
    if len(bottleneck_shape) > 1:
        x = keras.layers.Flatten(name="head_flatten")(x)
    for i, units in enumerate(head.hidden_units):
        if head.dropout:
            x = keras.layers.Dropout(head.dropout, name=f"head_dropout_{i}")(x)
        x = keras.layers.Dense(units, activation="relu", name=f"head_dense_{i}")(x)
    if head.dropout:
        x = keras.layers.Dropout(head.dropout, name="head_dropout_out")(x)
    outputs = keras.layers.Dense(head.num_classes, activation="softmax", name="head_softmax")(x)
    return keras.Model(inputs, outputs, name="head")


def weighted_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """Layers that own weights, bottom to top (BatchNormalization included)."""
    return [layer for layer in model.layers if layer.weights]


def unfreeze_top(extractor: keras.Model, k: int) -> list[str]:
    """Makes the top `k` weighted non-BatchNorm layers trainable; returns their names.

    Every other layer stays frozen, and BatchNormalization layers always stay frozen:
    in Keras 3 a non-trainable BatchNormalization runs in inference mode (moving
    statistics, no updates), which is what fine-tuning on few images needs.
    """
    candidates = [
        layer
        for layer in weighted_layers(extractor)
        if not isinstance(layer, keras.layers.BatchNormalization)
    ]
    if not 0 <= k <= len(candidates):
        raise ValueError(f"k={k} must be between 0 and {len(candidates)} (layers with weights)")
    extractor.trainable = True
    for layer in extractor.layers:
        layer.trainable = False
    chosen = candidates[len(candidates) - k :] if k else []
    for layer in chosen:
        layer.trainable = True
    return [layer.name for layer in chosen]
