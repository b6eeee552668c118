"""The transform graph as a function of encoded image bytes, and its fingerprint.

- ``load_image_transform``: Transform's graph
  (``components.common.preprocessing.preprocessing_fn``) as encoded bytes [batch] ->
  TRANSFORMED_IMAGE_KEY, the decoded, resized and scaled image. Its users (the
  bottleneck cache, LayerwisePretrainer) feed it the IMAGE_KEY feature only:
  tf.Transform computes the outputs that depend on the features it is given, so a
  cached vector is a function of the image bytes alone and may be keyed by their hash.
  A transform whose image output needs other features is rejected with a clear error.
- ``transform_fingerprint``: behavioural, not the bytes of the graph: the output on
  fixed probe images (``probe_images``: deterministic synthetic pixels; odd sizes,
  aspect ratios both ways, grey, RGB and RGBA, PNG and JPEG), hashed after rounding to
  PROBE_DECIMALS, so a change of size, resize method, resize mode or scaling changes
  it, while a re-exported graph computing the same pixels and last-bit float noise
  do not (why: docs/ARCHITECTURE.md, "BottleneckCache").
- ``graph_digest``: sha256 of the graph's files, naming one exact export.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import numpy as np
import tensorflow as tf

from components.common.examples import IMAGE_KEY
from components.common.preprocessing import TRANSFORMED_IMAGE_KEY

PROBE_DECIMALS = 4
# The parts of a TransformGraph directory that load_image_transform reads.
_GRAPH_PARTS = ("transform_fn", "transformed_metadata", "metadata")
_PROBE_SEED = 20240611
# (height, width, channels, format) of the probe images.
_PROBES = (
    (5, 7, 1, "png"),
    (13, 4, 3, "jpeg"),
    (31, 17, 3, "png"),
    (9, 40, 4, "png"),
    (64, 48, 3, "jpeg"),
    (3, 3, 1, "jpeg"),
)

ImageTransform = Callable[[tf.Tensor], tf.Tensor]


def load_image_transform(transform_uri: str) -> ImageTransform:
    """Loads a TransformGraph directory as encoded bytes [batch] -> image [batch, h, w, 3].

    Args:
        transform_uri: the output directory of TFX Transform (or of
            tft_beam.WriteTransformFn).

    Returns:
        A function usable eagerly or inside tf.function; it raises
        tf.errors.InvalidArgumentError when an element is not a decodable image.

    Raises:
        ValueError: the graph has no float TRANSFORMED_IMAGE_KEY output of rank 4, or
            its raw IMAGE_KEY input is not a string feature of shape [] or [1].
    """
    import tensorflow_transform as tft  # heavy, and it sets TF_USE_LEGACY_KERAS

    output = tft.TFTransformOutput(transform_uri)
    image_shape = _raw_image_shape(output.raw_feature_spec(), transform_uri)
    transformed = output.transformed_feature_spec().get(TRANSFORMED_IMAGE_KEY)
    if transformed is None or len(getattr(transformed, "shape", ())) != 3:
        raise ValueError(
            f"transform graph {transform_uri} has no {TRANSFORMED_IMAGE_KEY!r} output of shape "
            f"[height, width, 3] (outputs: {sorted(output.transformed_feature_spec())}); "
            "it must come from components.common.preprocessing.preprocessing_fn"
        )
    layer = output.transform_features_layer()

    def transform(encoded: tf.Tensor) -> tf.Tensor:
        images = tf.reshape(tf.convert_to_tensor(encoded, tf.string), [-1, *image_shape])
        outputs = layer({IMAGE_KEY: images})
        if TRANSFORMED_IMAGE_KEY not in outputs:
            raise ValueError(
                f"transform graph {transform_uri}: {TRANSFORMED_IMAGE_KEY!r} cannot be computed "
                f"from {IMAGE_KEY!r} alone; the bottleneck cache keys vectors by image content"
            )
        return tf.cast(outputs[TRANSFORMED_IMAGE_KEY], tf.float32)

    return transform


def _raw_image_shape(raw_feature_spec: dict, transform_uri: str) -> list[int]:
    feature = raw_feature_spec.get(IMAGE_KEY)
    shape = list(getattr(feature, "shape", [None]))
    if (
        not isinstance(feature, tf.io.FixedLenFeature)
        or feature.dtype != tf.string
        or shape not in ([], [1])
    ):
        raise ValueError(
            f"transform graph {transform_uri}: raw feature {IMAGE_KEY!r} must be a required "
            f"string feature of shape [] or [1], got {feature!r}"
        )
    return shape


def probe_images() -> list[bytes]:
    """The fixed, deterministic probe images (encoded with TensorFlow's encoders)."""
    rng = np.random.default_rng(_PROBE_SEED)
    images = []
    for height, width, channels, image_format in _PROBES:
        y, x = np.mgrid[0:height, 0:width]
        ramp = (x * 255 // max(width - 1, 1) + y * 255 // max(height - 1, 1)) // 2
        noise = rng.integers(0, 64, (height, width, channels))
        pixels = np.clip(ramp[..., None] + noise - 32, 0, 255).astype(np.uint8)
        if image_format == "png":
            images.append(tf.io.encode_png(pixels).numpy())
        else:
            images.append(tf.io.encode_jpeg(pixels, quality=90).numpy())
    return images


def transform_fingerprint(transform: ImageTransform) -> tuple[str, np.ndarray]:
    """sha256 hex of the transform's output on the probe images, and that output.

    Returns:
        (fingerprint, transformed probes as float32 [probes, height, width, 3]).
    """
    transformed = transform(tf.constant(probe_images())).numpy()
    digest = hashlib.sha256()
    digest.update(f"{transformed.shape}|{PROBE_DECIMALS}\n".encode())
    rounded = np.round(transformed.astype(np.float64), PROBE_DECIMALS) + 0.0  # no -0.0
    digest.update(rounded.tobytes())
    return digest.hexdigest(), transformed


def graph_digest(transform_uri: str) -> str:
    """sha256 hex of the files of a TransformGraph directory that the graph is loaded
    from (relative paths and bytes, in sorted order).

    Cheap (nothing is loaded): it identifies the exact export a plan was made from. Two
    exports of the same preprocessing differ here; their transform_fingerprint does not.
    """
    digest = hashlib.sha256()
    for part in _GRAPH_PARTS:
        root = transform_uri.rstrip("/") + "/" + part
        if not tf.io.gfile.isdir(root):
            continue
        files = []
        for directory, _, names in tf.io.gfile.walk(root):
            files += [directory.rstrip("/") + "/" + name for name in names]
        for path in sorted(files):
            with tf.io.gfile.GFile(path, "rb") as f:
                data = f.read()
            relative = path[len(transform_uri) :].lstrip("/")
            digest.update(f"{relative}|{len(data)}\n".encode())
            digest.update(data)
    return digest.hexdigest()
