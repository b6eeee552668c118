"""Pure core of BaseModelGen: build or load a base network as a Keras 3 model.

- kind "keras_application": a Keras Applications architecture by name, without its
  classification top (include_top=False), at the pipeline's input size, with weights
  from a local file the user supplies (the `*_notop.h5` file) or random (seeded, so
  the same config builds the same network). Nothing is ever downloaded.
- kind "builtin": a small architecture of this project by name (spec.BUILTINS:
  `small_cnn`), with seeded random weights.
- kind "file": a model the user trained, as a `.keras` or `.h5` file.

Either way the input must be the pipeline's image size with 3 channels.
"""

from __future__ import annotations

import hashlib
import logging
import os

import keras
import tensorflow as tf

from components.base_model_gen import spec
from components.common import model_surgery


def build_application(
    name: str, height: int, width: int, weights: str = "", seed: int = 0
) -> keras.Model:
    """A Keras Applications architecture without its top.

    Raises:
      ValueError: unknown name (lists the allowed ones), or a weights file that does
        not fit the architecture.
      FileNotFoundError: the weights file does not exist.
    """
    if name not in spec.APPLICATIONS:
        raise ValueError(
            f"base_model.name: {name!r} is not a known architecture; choose one of: "
            + ", ".join(spec.APPLICATIONS)
        )
    if weights and not tf.io.gfile.exists(weights):
        raise FileNotFoundError(f"base_model.weights: {weights!r} does not exist")
    keras.utils.set_random_seed(seed)
    builder = getattr(keras.applications, name)
    try:
        return builder(include_top=False, weights=weights or None, input_shape=(height, width, 3))
    except ValueError as e:
        raise ValueError(
            f"base_model.weights: {weights!r} does not fit {name} without its top at "
            f"{height}x{width}: {e}. Use the architecture's '*_notop.h5' weights file."
        ) from e


def small_cnn(height: int, width: int, seed: int = 0) -> keras.Model:
    """Three conv blocks (32, 64, 128 filters; conv-ReLU-maxpool) and global pooling.

    Layer names `block{1,2,3}_{conv,relu,pool}` and `gap` make cut points readable
    (the demo cuts at `block3_pool` with pooling flatten; docs/ARCHITECTURE.md, "The
    demo").
    """
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((height, width, 3), name="image")
    x = inputs
    for i, filters in enumerate((32, 64, 128), start=1):
        x = keras.layers.Conv2D(filters, 3, padding="same", name=f"block{i}_conv")(x)
        x = keras.layers.ReLU(name=f"block{i}_relu")(x)
        x = keras.layers.MaxPooling2D(2, padding="same", name=f"block{i}_pool")(x)
    outputs = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inputs, outputs, name="small_cnn")


def build_builtin(name: str, height: int, width: int, seed: int = 0) -> keras.Model:
    """A builtin architecture by name, with seeded random weights.

    Raises:
      ValueError: unknown name (lists the allowed ones).
    """
    if name not in spec.BUILTINS:
        raise ValueError(
            f"base_model.name: {name!r} is not a builtin architecture; choose one of: "
            + ", ".join(spec.BUILTINS)
        )
    return small_cnn(height, width, seed)


def load_file(path: str) -> keras.Model:
    """Loads a user's `.keras` / `.h5` model file (no custom objects, no compile).

    Raises:
      FileNotFoundError: the file does not exist.
      ValueError: the file is not a supported Keras model file.
    """
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(f"base_model.path: {path!r} does not exist")
    if not path.endswith(spec.FILE_SUFFIXES):
        raise ValueError(
            f"base_model.path: {path!r} must be a Keras model file ending in "
            + " or ".join(spec.FILE_SUFFIXES)
            + " (save a SavedModel's Keras model with model.save('base.keras'))"
        )
    return keras.models.load_model(path, compile=False)


def check_input(model: keras.Model, height: int, width: int) -> None:
    """Raises ValueError unless the model takes [batch, height, width, 3] images."""
    model_surgery.check_input_size(
        model,
        height,
        width,
        source="image.height/width",
        fix="set image.height and image.width to the base's size",
    )


def make_base(
    kind: str,
    height: int,
    width: int,
    name: str = "",
    weights: str = "",
    path: str = "",
    seed: int = 0,
) -> keras.Model:
    """Builds (application) or loads (file) the base network and checks its input."""
    if kind == spec.KIND_APPLICATION:
        model = build_application(name, height, width, weights, seed)
        expected = spec.APPLICATIONS[name]
        logging.info(
            "Built %s at %dx%d (weights: %s); its weights expect scaling %r",
            name,
            height,
            width,
            weights or "random",
            expected,
        )
    elif kind == spec.KIND_BUILTIN:
        model = build_builtin(name, height, width, seed)
    elif kind == spec.KIND_FILE:
        model = load_file(path)
    else:
        raise ValueError(f"base_model.kind: {kind!r}; choose one of: {', '.join(spec.KINDS)}")
    check_input(model, height, width)
    return model


def source_fingerprint(path: str) -> str:
    """A cheap fingerprint (path, size, mtime) of a weights or model file; '' if none."""
    if not path:
        return ""
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(f"base_model: {path!r} does not exist")
    stat = tf.io.gfile.stat(path)
    text = f"{os.path.abspath(path) if '://' not in path else path}|{stat.length}|{stat.mtime_nsec}"
    return hashlib.sha256(text.encode()).hexdigest()
