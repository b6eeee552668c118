"""The one implementation of image decoding, resizing and input scaling.

Every consumer of pixels needs exactly the same ones, and all of them call this module:

* the TFX Transform component (``preprocessing_fn``, traced by tf.Transform), whose
  graph the bottleneck cache and LayerwisePretrainer apply to the image bytes,
* the Trainer's fine-tuning and full-training phases (``ImageSpec.preprocess``),
* the served model, which takes raw encoded image bytes of any format and size
  (``ImageSpec.preprocess`` inside its tf.function signatures, see ``model_io``).

Everything here is pure TensorFlow and graph-compatible: it works eagerly, inside
``tf.function``, inside ``tf.map_fn`` and under tf.Transform's TF2 tracing.

Decoding rules (``decode_image``), all giving float32 RGB in [0, 1]:

* JPEG: decoded with libjpeg's accurate integer DCT (``INTEGER_ACCURATE``), which is
  what Pillow uses, so pixels equal Pillow's (TF's default, ``INTEGER_FAST``, is off by
  up to a few levels). CMYK and grey JPEGs are converted to RGB by the decoder.
* PNG: 8 and 16 bit. 16-bit samples keep their full precision (value / 65535).
  Palette PNGs are expanded to their palette colours (with tRNS transparency as alpha).
* GIF: the first frame only; GIF transparency is not applied (TF's decoder limitation).
* BMP: 24 and 32 bit, and 8-bit palette BMPs (the palette is looked up here: TF's own
  decoder returns the palette *indices*). The 4th byte of a 32-bit BMP is ignored, as
  Pillow does: in the common ``BI_RGB`` layout it is reserved and often 0, so reading
  it as alpha would turn such images white. 1- and 4-bit BMPs are rejected.
* Channels: grey is replicated to RGB. An alpha channel (grey+alpha, RGBA, palette
  with transparency) is composited over a WHITE background rather than dropped:
  dropping alpha exposes whatever colour the encoder left in fully transparent pixels
  (often black or garbage), while white matches how the image is normally displayed
  (on a page) and gives one deterministic colour for "nothing here".
* Invalid or truncated bytes raise ``tf.errors.InvalidArgumentError`` with TF's message
  (for example "Unknown image file format"); the process never crashes.

Resizing (``resize``) and scaling (``scale``) then bring the image to the base
network's input size and value range. ``ImageSpec`` holds those choices and is what
config code validates and passes to Transform as ``custom_config``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import tensorflow as tf

from components.common.examples import (
    IMAGE_ID_KEY,
    IMAGE_KEY,
    LABEL_KEY,
    LABEL_NAME_KEY,
)

# --- allowed values (config code imports these) ----------------------------------
RESIZE_METHODS = ("bilinear", "area", "bicubic", "nearest", "lanczos3")
RESIZE_MODES = ("stretch", "pad")
SCALINGS = ("unit", "symmetric", "caffe", "torch", "raw")

# --- Transform output feature names ------------------------------------------------
# The preprocessed image gets its own name: IMAGE_KEY stays "encoded bytes" everywhere
# (raw examples, serving_default), TRANSFORMED_IMAGE_KEY is always float pixels.
TRANSFORMED_IMAGE_KEY = "image_xf"
# Features copied unchanged from the raw examples into the transformed ones.
PASSTHROUGH_KEYS = (LABEL_KEY, IMAGE_ID_KEY)
# Also copied when the input schema has it (labelled data always does).
OPTIONAL_PASSTHROUGH_KEYS = (LABEL_NAME_KEY,)

# Value of the padding added by resize mode "pad", in [0, 1] pixel units, before
# scaling (0.0 is black, as tf.image.resize_with_pad pads).
PAD_VALUE = 0.0

# ImageNet statistics used by Keras Applications' "caffe" and "torch" modes.
CAFFE_BGR_MEANS = (103.939, 116.779, 123.68)
TORCH_RGB_MEANS = (0.485, 0.456, 0.406)
TORCH_RGB_STDS = (0.229, 0.224, 0.225)

_BMP_MAGIC = b"BM"


# --- decoding -----------------------------------------------------------------------
def decode_image(encoded: tf.Tensor) -> tf.Tensor:
    """Decodes one encoded image (JPEG, PNG, GIF or BMP) to RGB in [0, 1].

    Args:
        encoded: scalar string tensor, the file's bytes.

    Returns:
        float32 tensor [height, width, 3] with values in [0, 1]. See the module
        docstring for the per-format rules (alpha over white, 16-bit precision...).

    Raises:
        tf.errors.InvalidArgumentError: when the bytes are not a decodable image
            (raised when the op runs: eagerly, or when the graph executes).
    """
    encoded = tf.convert_to_tensor(encoded, dtype=tf.string)
    is_bmp = tf.equal(tf.strings.substr(encoded, 0, 2), _BMP_MAGIC)
    image = tf.cond(
        tf.io.is_jpeg(encoded),
        lambda: _decode_jpeg(encoded),
        lambda: tf.cond(is_bmp, lambda: _decode_bmp(encoded), lambda: _decode_other(encoded)),
    )
    image.set_shape([None, None, 3])
    return image


def header_pixels(encoded: tf.Tensor) -> tf.Tensor:
    """The pixel count the image's header declares (int64 scalar), without decoding.

    JPEG: the SOF marker; PNG: IHDR; GIF: the logical screen; BMP: the DIB header.
    Other bytes give 0 (they fail to decode anyway). Lets a caller refuse a
    decompression bomb before any pixel is allocated.
    """
    encoded = tf.convert_to_tensor(encoded, dtype=tf.string)

    def field(offset, length, dtype, little_endian):
        raw = tf.strings.substr(tf.strings.join([encoded, b"\0" * 32]), offset, length)
        return tf.abs(
            tf.cast(tf.io.decode_raw(raw, dtype, little_endian=little_endian)[0], tf.int64)
        )

    def png():
        return field(16, 4, tf.int32, False) * field(20, 4, tf.int32, False)

    def gif():
        return field(6, 2, tf.uint16, True) * field(8, 2, tf.uint16, True)

    def bmp():
        return field(18, 4, tf.int32, True) * field(22, 4, tf.int32, True)

    def jpeg():
        shape = tf.image.extract_jpeg_shape(encoded, output_type=tf.int64)
        return shape[0] * shape[1]

    magic = tf.strings.substr(encoded, 0, 4)
    return tf.case(
        [
            (tf.io.is_jpeg(encoded), jpeg),
            (tf.equal(magic, b"\x89PNG"), png),
            (tf.equal(tf.strings.substr(magic, 0, 3), b"GIF"), gif),
            (tf.equal(tf.strings.substr(magic, 0, 2), _BMP_MAGIC), bmp),
        ],
        default=lambda: tf.constant(0, tf.int64),
    )


def _decode_jpeg(encoded: tf.Tensor) -> tf.Tensor:
    image = tf.io.decode_jpeg(encoded, channels=3, dct_method="INTEGER_ACCURATE")
    return tf.cast(image, tf.float32) / 255.0


def _decode_other(encoded: tf.Tensor) -> tf.Tensor:
    """PNG (8/16 bit, any colour type) and GIF; float32 decoding keeps 16-bit precision.

    A GIF is cut after its first frame before decoding: TensorFlow's GIF decoder
    decodes every frame even when only the first is kept (a 100-frame 2000x2000 GIF
    took 2.8 GB), and the first frame is all this project uses.
    """
    is_gif = tf.equal(tf.strings.substr(encoded, 0, 3), b"GIF")
    encoded = tf.cond(is_gif, lambda: gif_first_frame(encoded), lambda: encoded)
    image = tf.io.decode_image(encoded, channels=0, dtype=tf.float32, expand_animations=False)
    return _to_rgb(image)


def gif_first_frame(encoded: tf.Tensor) -> tf.Tensor:
    """The GIF's bytes up to the end of its first image, then the trailer (0x3B).

    Walks the GIF block structure (header, logical screen descriptor, global colour
    table, then extension blocks and the first image descriptor with its local colour
    table and LZW data sub-blocks) and drops everything after the first image. Bytes
    that are not a well-formed GIF come out cut somewhere and fail to decode as before.
    """
    data = tf.io.decode_raw(encoded, tf.uint8)
    size = tf.size(data)

    def byte(i):
        return tf.cast(tf.gather(data, tf.clip_by_value(i, 0, tf.maximum(size - 1, 0))), tf.int32)

    def table_size(packed):  # 3 * 2^(N+1) bytes when the colour table flag is set
        return tf.where(
            tf.bitwise.bitwise_and(packed, 0x80) > 0,
            3 * tf.bitwise.left_shift(2, tf.bitwise.bitwise_and(packed, 7)),
            0,
        )

    def skip_sub_blocks(pos):  # data sub-blocks: a length byte, then that many bytes; 0 ends
        (pos,) = tf.while_loop(
            lambda p: (p < size) & (byte(p) != 0), lambda p: (p + byte(p) + 1,), (pos,)
        )
        return pos + 1

    def block(pos, done):
        marker = byte(pos)
        extension = lambda: (skip_sub_blocks(pos + 2), False)  # noqa: E731
        image = lambda: (  # noqa: E731
            skip_sub_blocks(pos + 10 + table_size(byte(pos + 9)) + 1),
            True,
        )
        return tf.case(
            [(tf.equal(marker, 0x21), extension), (tf.equal(marker, 0x2C), image)],
            default=lambda: (pos, True),
        )

    start = 13 + table_size(byte(10))
    end, _ = tf.while_loop(
        lambda pos, done: tf.logical_not(done) & (pos < size),
        block,
        (start, tf.constant(False)),
    )
    return tf.strings.substr(encoded, 0, tf.minimum(end, size)) + b"\x3b"


def _decode_bmp(encoded: tf.Tensor) -> tf.Tensor:
    """24/32-bit BMP (4th byte ignored) and 8-bit palette BMP (palette applied)."""
    image = tf.io.decode_bmp(encoded, channels=0)
    rgb = tf.cond(
        tf.equal(tf.shape(image)[-1], 1),
        lambda: _bmp_palette_lookup(encoded, image),
        lambda: image[..., :3],
    )
    return tf.cast(rgb, tf.float32) / 255.0


def _bmp_palette_lookup(encoded: tf.Tensor, indices: tf.Tensor) -> tf.Tensor:
    """Maps 8-bit BMP palette indices [H, W, 1] to uint8 RGB [H, W, 3].

    The palette follows the 14-byte file header and the DIB header (whose size is the
    little-endian uint32 at offset 14), as 4-byte BGRX entries. An index beyond the
    palette raises InvalidArgumentError (from tf.gather).
    """
    dib_size = tf.io.decode_raw(tf.strings.substr(encoded, 14, 4), tf.int32, little_endian=True)
    palette = tf.io.decode_raw(tf.strings.substr(encoded, 14 + dib_size[0], 4 * 256), tf.uint8)
    entries = tf.shape(palette)[0] // 4
    palette = tf.reshape(palette[: entries * 4], [entries, 4])
    rgb_palette = tf.reverse(palette[:, :3], axis=[1])  # BGR -> RGB
    return tf.gather(rgb_palette, tf.cast(indices[..., 0], tf.int32))


def _to_rgb(image: tf.Tensor) -> tf.Tensor:
    """Grey -> RGB; grey+alpha and RGBA composited over white; RGB unchanged."""

    def grey():
        return tf.tile(image[..., :1], [1, 1, 3])

    def grey_alpha():
        return _over_white(tf.tile(image[..., :1], [1, 1, 3]), image[..., 1:2])

    def rgb():
        return image[..., :3]

    def rgba():
        return _over_white(image[..., :3], image[..., 3:4])

    channels = tf.shape(image)[-1]
    return tf.switch_case(channels - 1, branch_fns=[grey, grey_alpha, rgb, rgba])


def _over_white(rgb: tf.Tensor, alpha: tf.Tensor) -> tf.Tensor:
    """Composites straight (non-premultiplied) alpha over a white background."""
    return rgb * alpha + (1.0 - alpha)


# --- resizing -----------------------------------------------------------------------
def resize(
    image: tf.Tensor, height: int, width: int, method: str = "bilinear", mode: str = "stretch"
) -> tf.Tensor:
    """Resizes one image [H, W, 3] to exactly [height, width, 3].

    Args:
        image: float32 [H, W, 3], values in [0, 1].
        height: output height in pixels.
        width: output width in pixels.
        method: one of RESIZE_METHODS. Anti-aliasing is on: when downscaling, bilinear,
            bicubic and lanczos3 widen their kernel (area and nearest ignore the flag).
        mode: "stretch" resizes to the exact size (the aspect ratio may change); "pad"
            keeps the aspect ratio, resizes so the image fits, and centres it on a
            PAD_VALUE background (tf.image.resize_with_pad semantics, except that a
            side is never resized to 0 pixels).

    Returns:
        float32 [height, width, 3] with a static shape, clipped to [0, 1] (bicubic and
        lanczos overshoot near edges).
    """
    _check_choice("method", method, RESIZE_METHODS)
    _check_choice("mode", mode, RESIZE_MODES)
    if mode == "stretch":
        out = tf.image.resize(image, [height, width], method=method, antialias=True)
    else:
        out = _resize_with_pad(image, height, width, method)
    out = tf.clip_by_value(out, 0.0, 1.0)
    out.set_shape([height, width, 3])
    return out


def _resize_with_pad(image: tf.Tensor, height: int, width: int, method: str) -> tf.Tensor:
    """Aspect-preserving resize into [height, width], centred, padded with PAD_VALUE."""
    in_hw = tf.cast(tf.shape(image)[:2], tf.float64)
    target = tf.constant([height, width], tf.float64)
    factor = tf.reduce_min(target / in_hw)
    new_hw = tf.cast(tf.round(in_hw * factor), tf.int32)
    new_hw = tf.clip_by_value(new_hw, 1, tf.constant([height, width], tf.int32))
    resized = tf.image.resize(image, new_hw, method=method, antialias=True)
    top, left = (height - new_hw[0]) // 2, (width - new_hw[1]) // 2
    paddings = [[top, height - new_hw[0] - top], [left, width - new_hw[1] - left], [0, 0]]
    return tf.pad(resized, paddings, constant_values=PAD_VALUE)


# --- scaling ------------------------------------------------------------------------
def scale(image01: tf.Tensor, scaling: str) -> tf.Tensor:
    """Maps RGB pixels in [0, 1] to the base network's input range.

    Args:
        image01: float32 [..., 3] RGB in [0, 1].
        scaling: one of SCALINGS:
            "unit": unchanged, [0, 1].
            "symmetric": [-1, 1] (Keras Applications "tf" mode: MobileNetV2, ...).
            "caffe": RGB -> BGR, 0-255 minus the ImageNet BGR means (Keras "caffe" mode:
                VGG, ResNet50).
            "torch": (x - ImageNet mean) / ImageNet std on [0, 1] RGB (Keras "torch"
                mode: DenseNet).
            "raw": 0-255 floats (networks that scale inside, e.g. EfficientNet).

    Returns:
        float32 tensor of the same shape.
    """
    _check_choice("scaling", scaling, SCALINGS)
    if scaling == "unit":
        return image01
    if scaling == "symmetric":
        return image01 * 2.0 - 1.0
    if scaling == "caffe":
        return tf.reverse(image01, axis=[-1]) * 255.0 - tf.constant(CAFFE_BGR_MEANS)
    if scaling == "torch":
        return (image01 - tf.constant(TORCH_RGB_MEANS)) / tf.constant(TORCH_RGB_STDS)
    return image01 * 255.0


# --- batches ------------------------------------------------------------------------
def preprocess_image(
    encoded: tf.Tensor, *, height: int, width: int, method: str, mode: str, scaling: str
) -> tf.Tensor:
    """decode_image -> resize -> scale for one scalar string; float32 [height, width, 3]."""
    image = resize(decode_image(encoded), height, width, method=method, mode=mode)
    return scale(image, scaling)


def preprocess_images(
    encoded_batch: tf.Tensor,
    *,
    height: int,
    width: int,
    method: str = "bilinear",
    mode: str = "stretch",
    scaling: str = "symmetric",
) -> tf.Tensor:
    """Decodes, resizes and scales a batch of encoded images.

    Args:
        encoded_batch: string tensor [batch] of encoded images (any supported format
            and size, mixed freely).
        height, width, method, mode, scaling: as in ImageSpec.

    Returns:
        float32 [batch, height, width, 3].

    Raises:
        tf.errors.InvalidArgumentError: when any element is not a decodable image.
    """
    for name, value, allowed in (
        ("method", method, RESIZE_METHODS),
        ("mode", mode, RESIZE_MODES),
        ("scaling", scaling, SCALINGS),
    ):
        _check_choice(name, value, allowed)
    encoded_batch = tf.convert_to_tensor(encoded_batch, dtype=tf.string)
    images = tf.map_fn(
        lambda encoded: preprocess_image(
            encoded, height=height, width=width, method=method, mode=mode, scaling=scaling
        ),
        encoded_batch,
        fn_output_signature=tf.TensorSpec([height, width, 3], tf.float32),
    )
    images.set_shape([None, height, width, 3])
    return images


# --- the spec ------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class ImageSpec:
    """What the base network expects as input: size, resize rule and value scaling.

    Attributes:
        height: input height in pixels (positive int).
        width: input width in pixels (positive int).
        resize_method: one of RESIZE_METHODS.
        resize_mode: one of RESIZE_MODES ("stretch" or "pad").
        scaling: one of SCALINGS.
    """

    height: int
    width: int
    resize_method: str = "bilinear"
    resize_mode: str = "stretch"
    scaling: str = "symmetric"

    def __post_init__(self):
        for name in ("height", "width"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"ImageSpec.{name} must be a positive integer, got {value!r}")
        _check_choice("ImageSpec.resize_method", self.resize_method, RESIZE_METHODS)
        _check_choice("ImageSpec.resize_mode", self.resize_mode, RESIZE_MODES)
        _check_choice("ImageSpec.scaling", self.scaling, SCALINGS)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict, e.g. for Transform's custom_config."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> ImageSpec:
        """Builds and validates an ImageSpec; unknown keys are rejected by name."""
        fields = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(values) - set(fields))
        if unknown:
            raise ValueError(f"ImageSpec got unknown keys {unknown}; allowed keys: {fields}")
        missing = [name for name in ("height", "width") if name not in values]
        if missing:
            raise ValueError(f"ImageSpec is missing required keys {missing}")
        return cls(**values)

    def preprocess(self, encoded_batch: tf.Tensor) -> tf.Tensor:
        """preprocess_images with this spec's settings."""
        return preprocess_images(
            encoded_batch,
            height=self.height,
            width=self.width,
            method=self.resize_method,
            mode=self.resize_mode,
            scaling=self.scaling,
        )


def _check_choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {list(allowed)}, got {value!r}")


# --- tf.Transform ----------------------------------------------------------------------
def preprocessing_fn(
    inputs: Mapping[str, tf.Tensor], custom_config: Mapping[str, Any]
) -> dict[str, tf.Tensor]:
    """The TFX Transform entry point: raw examples -> preprocessed image + labels.

    Args:
        inputs: parsed raw features. IMAGE_KEY, LABEL_KEY and IMAGE_ID_KEY must be
            required scalar features in the schema, which tf.Transform passes as dense
            tensors of shape [batch] (a [batch, 1] tensor is accepted too).
        custom_config: exactly the fields of ImageSpec (``ImageSpec.to_dict()``).

    Returns:
        TRANSFORMED_IMAGE_KEY: float32 [batch, height, width, 3]; PASSTHROUGH_KEYS (and
        OPTIONAL_PASSTHROUGH_KEYS present in the inputs) copied as dense [batch] tensors.
        No analyzers: every output is computed per instance.

    Raises:
        ValueError: when custom_config is not a valid ImageSpec or a feature is not a
            dense scalar feature.
    """
    spec = ImageSpec.from_dict(custom_config or {})
    outputs = {TRANSFORMED_IMAGE_KEY: spec.preprocess(_dense_vector(inputs, IMAGE_KEY))}
    for key in PASSTHROUGH_KEYS:
        outputs[key] = _dense_vector(inputs, key)
    for key in OPTIONAL_PASSTHROUGH_KEYS:
        if key in inputs:
            outputs[key] = _dense_vector(inputs, key)
    return outputs


def _dense_vector(inputs: Mapping[str, Any], key: str) -> tf.Tensor:
    """The feature `key` as a dense [batch] tensor; [batch, 1] is reshaped."""
    if key not in inputs:
        raise ValueError(f"preprocessing_fn: feature {key!r} missing; got {sorted(inputs)}")
    value = inputs[key]
    if not isinstance(value, tf.Tensor):
        raise ValueError(
            f"preprocessing_fn: feature {key!r} is a {type(value).__name__}; declare it in the "
            "schema as a required scalar (a FixedLenFeature of shape [])"
        )
    if value.shape.rank == 2 and value.shape[1] == 1:
        return tf.reshape(value, [-1])
    if value.shape.rank != 1:
        raise ValueError(f"preprocessing_fn: feature {key!r} must be [batch], got {value.shape}")
    return value
