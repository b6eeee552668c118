"""Tests of components.common.preprocessing: decoding, resizing, scaling, ImageSpec, Transform.

Images are made in memory with Pillow (or, for 16-bit colour PNGs that Pillow cannot
write, by a minimal PNG encoder below) and the decoded pixels are compared with the
values that went in.
"""

import functools
import io
import struct
import zlib

import apache_beam as beam
import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from PIL import Image
from tensorflow_transform.tf_metadata import schema_utils
from tfx_bsl.public import tfxio

from components.common import preprocessing as pp
from components.common.examples import IMAGE_ID_KEY, IMAGE_KEY, LABEL_KEY, LABEL_NAME_KEY
from components.common.preprocessing import (
    PAD_VALUE,
    RESIZE_METHODS,
    RESIZE_MODES,
    SCALINGS,
    TRANSFORMED_IMAGE_KEY,
    ImageSpec,
)

WHITE = [1.0, 1.0, 1.0]


def _encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def _png16(pixels: np.ndarray) -> bytes:
    """A 16-bit PNG of uint16 pixels [H, W, C]; C = 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA."""
    height, width, channels = pixels.shape
    colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    rows = b"".join(b"\x00" + pixels[y].astype(">u2").tobytes() for y in range(height))

    def chunk(tag: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(tag + data))
        return struct.pack(">I", len(data)) + tag + data + crc

    header = struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def _decode(encoded: bytes) -> np.ndarray:
    image = pp.decode_image(tf.constant(encoded))
    assert image.dtype == tf.float32
    assert image.shape.rank == 3 and image.shape[-1] == 3
    return image.numpy()


def _gradient(height: int, width: int) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([y * 6, x * 5, (x + y) * 3], axis=-1).astype(np.uint8)


# --- decoding -----------------------------------------------------------------------
def test_rgb_png_is_exact():
    pixels = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    decoded = _decode(_encode(Image.fromarray(pixels), "PNG"))
    np.testing.assert_allclose(decoded, pixels / 255.0, atol=1e-6)


def test_grey_png_is_replicated_to_rgb():
    pixels = np.arange(15, dtype=np.uint8).reshape(3, 5) * 17
    decoded = _decode(_encode(Image.fromarray(pixels, "L"), "PNG"))
    assert decoded.shape == (3, 5, 3)
    for channel in range(3):
        np.testing.assert_allclose(decoded[..., channel], pixels / 255.0, atol=1e-6)


def test_grey_alpha_png_is_composited_over_white():
    grey = np.array([[0, 100, 200]], np.uint8)
    alpha = np.array([[0, 255, 128]], np.uint8)
    image = Image.fromarray(np.stack([grey, alpha], axis=-1), "LA")
    decoded = _decode(_encode(image, "PNG"))
    a = alpha / 255.0
    expected = grey / 255.0 * a + (1.0 - a)
    np.testing.assert_allclose(decoded, np.repeat(expected[..., None], 3, axis=-1), atol=1e-6)
    np.testing.assert_allclose(decoded[0, 0], WHITE, atol=1e-6)  # fully transparent black


def test_rgba_png_transparent_is_white_and_opaque_keeps_colour():
    image = Image.new("RGBA", (3, 1))
    image.putdata([(10, 20, 30, 0), (200, 100, 50, 255), (0, 0, 255, 51)])
    decoded = _decode(_encode(image, "PNG"))
    np.testing.assert_allclose(decoded[0, 0], WHITE, atol=1e-6)
    np.testing.assert_allclose(decoded[0, 1], np.array([200, 100, 50]) / 255.0, atol=1e-6)
    np.testing.assert_allclose(decoded[0, 2], [0.8, 0.8, 1.0], atol=1e-6)  # 20% blue on white


def test_16bit_grey_png_keeps_full_precision():
    values = np.array([[0, 257 * 100, 65535, 1]], np.uint16)
    encoded = _encode(Image.fromarray(values), "PNG")
    assert Image.open(io.BytesIO(encoded)).mode == "I;16"
    decoded = _decode(encoded)
    expected = [0.0, 100 / 255, 1.0, 1 / 65535]  # 1/65535 would be 0 after 8-bit decoding
    for channel in range(3):
        np.testing.assert_allclose(decoded[0, :, channel], expected, atol=1e-6)
    assert decoded[0, 3, 0] > 0


def test_16bit_rgba_png_keeps_precision_and_composites():
    pixels = np.array([[[65535, 0, 1, 65535], [0, 0, 0, 32768], [5, 6, 7, 0]]], np.uint16)
    decoded = _decode(_png16(pixels))
    half = 32768 / 65535
    np.testing.assert_allclose(decoded[0, 0], [1.0, 0.0, 1 / 65535], atol=1e-6)
    np.testing.assert_allclose(decoded[0, 1], [1 - half] * 3, atol=1e-6)
    np.testing.assert_allclose(decoded[0, 2], WHITE, atol=1e-6)


def test_16bit_png_helper_agrees_with_pillow():
    pixels = np.array([[[0], [300], [65535]]], np.uint16)
    from_pillow = np.asarray(Image.open(io.BytesIO(_png16(pixels))))
    np.testing.assert_array_equal(from_pillow, pixels[..., 0])
    np.testing.assert_allclose(_decode(_png16(pixels))[..., 0], pixels[..., 0] / 65535, atol=1e-6)


def _palette_image(size=(3, 2)) -> Image.Image:
    image = Image.new("P", size)
    image.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255, 17, 34, 51] + [0] * (768 - 12))
    image.putdata([0, 1, 2, 3, 1, 0])
    return image


PALETTE_RGB = np.array(
    [[[255, 0, 0], [0, 255, 0], [0, 0, 255]], [[17, 34, 51], [0, 255, 0], [255, 0, 0]]]
)


def test_palette_png_gives_palette_colours():
    decoded = _decode(_encode(_palette_image(), "PNG"))
    np.testing.assert_allclose(decoded, PALETTE_RGB / 255.0, atol=1e-6)


def test_palette_png_transparency_is_white():
    decoded = _decode(_encode(_palette_image(), "PNG", transparency=0))
    np.testing.assert_allclose(decoded[0, 0], WHITE, atol=1e-6)
    np.testing.assert_allclose(decoded[1, 0], np.array([17, 34, 51]) / 255.0, atol=1e-6)


def test_gif_gives_first_frame():
    first, second = Image.new("RGB", (4, 3), (255, 0, 0)), Image.new("RGB", (4, 3), (0, 0, 255))
    encoded = _encode(first, "GIF", save_all=True, append_images=[second])
    assert Image.open(io.BytesIO(encoded)).n_frames == 2
    decoded = _decode(encoded)
    assert decoded.shape == (3, 4, 3)
    np.testing.assert_allclose(decoded, np.broadcast_to([1.0, 0.0, 0.0], (3, 4, 3)), atol=1e-6)


@pytest.mark.parametrize(
    "options",
    [
        {},  # global colour table only
        {"comment": b"made by a test", "duration": 40, "loop": 0},  # extension blocks
        {"optimize": False, "transparency": 0, "disposal": 2},
    ],
)
def test_only_the_first_gif_frame_is_decoded(options):
    rng = np.random.default_rng(3)
    frames = [
        Image.fromarray(rng.integers(0, 256, (9, 11, 3), dtype=np.uint8)).convert(
            "P", palette=Image.ADAPTIVE, colors=16 + 8 * i
        )  # a different palette per frame: local colour tables after the first
        for i in range(4)
    ]
    encoded = _encode(frames[0], "GIF", save_all=True, append_images=frames[1:], **options)
    assert tf.io.decode_gif(encoded).shape[0] == 4
    cut = pp.gif_first_frame(tf.constant(encoded)).numpy()
    # What is decoded is one frame, not four (the decoder never sees the others) ...
    assert tf.io.decode_gif(cut).shape[0] == 1 and len(cut) < len(encoded) / 2
    # ... and it is the first frame, exactly as decoding every frame gave it.
    decoded = _decode(encoded)
    np.testing.assert_allclose(decoded, tf.io.decode_gif(encoded)[0].numpy() / 255.0, atol=1e-6)
    if "transparency" not in options:  # (TF's GIF decoder has no alpha; Pillow does)
        pillow = np.asarray(Image.open(io.BytesIO(encoded)).convert("RGB"), np.float32)
        np.testing.assert_allclose(decoded, pillow / 255.0, atol=1e-6)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "BMP"])
def test_header_pixels_reads_the_declared_size_without_decoding(fmt):
    encoded = _encode(Image.new("RGB", (37, 11), (10, 20, 30)), fmt)
    assert int(pp.header_pixels(tf.constant(encoded))) == 37 * 11
    assert int(pp.header_pixels(tf.constant(b"not an image"))) == 0


def test_a_cut_gif_that_is_not_a_gif_still_fails_to_decode():
    with pytest.raises(tf.errors.InvalidArgumentError):
        pp.decode_image(tf.constant(b"GIF89a" + b"\xff" * 20))


def test_bmp_24bit_is_exact():
    pixels = np.random.default_rng(1).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    decoded = _decode(_encode(Image.fromarray(pixels), "BMP"))
    np.testing.assert_allclose(decoded, pixels / 255.0, atol=1e-6)


def test_bmp_8bit_palette_is_looked_up():
    encoded = _encode(_palette_image(), "BMP")
    assert encoded[28] == 8  # bits per pixel: really a palette BMP
    np.testing.assert_allclose(_decode(encoded), PALETTE_RGB / 255.0, atol=1e-6)
    grey = np.array([[0, 77, 255]], np.uint8)
    decoded = _decode(_encode(Image.fromarray(grey, "L"), "BMP"))
    np.testing.assert_allclose(decoded[..., 1], grey / 255.0, atol=1e-6)


def test_bmp_32bit_fourth_byte_is_ignored_like_pillow():
    encoded = _encode(Image.new("RGBA", (2, 2), (10, 20, 30, 0)), "BMP")
    expected = np.asarray(Image.open(io.BytesIO(encoded)).convert("RGB")) / 255.0
    np.testing.assert_allclose(_decode(encoded), expected, atol=1e-6)
    np.testing.assert_allclose(expected[0, 0], np.array([10, 20, 30]) / 255.0)


@pytest.mark.parametrize("quality", [95, 60])
def test_jpeg_matches_pillow(quality):
    encoded = _encode(Image.fromarray(_gradient(37, 51)), "JPEG", quality=quality)
    expected = np.asarray(Image.open(io.BytesIO(encoded)).convert("RGB")) / 255.0
    decoded = _decode(encoded)
    assert decoded.shape == (37, 51, 3)
    assert np.abs(decoded - expected).max() <= 1.01 / 255


def test_grey_and_cmyk_jpeg_become_rgb_like_pillow():
    grey = _encode(Image.fromarray(_gradient(9, 11)[..., 1], "L"), "JPEG", quality=90)
    cmyk = _encode(Image.new("CMYK", (6, 4), (0, 255, 0, 40)), "JPEG", quality=95)
    for encoded in (grey, cmyk):
        expected = np.asarray(Image.open(io.BytesIO(encoded)).convert("RGB")) / 255.0
        assert np.abs(_decode(encoded) - expected).max() <= 2.01 / 255


@pytest.mark.parametrize(
    "encoded, message",
    [
        (b"definitely not an image", "Unknown image file format"),
        (b"", "empty"),
        (_encode(Image.new("RGB", (4, 4)), "TIFF"), "Unknown image file format"),
        (_encode(Image.new("RGB", (9, 9), (1, 2, 3)), "PNG")[:40], "PNG"),
        (_encode(Image.fromarray(_gradient(9, 9)), "JPEG")[:100], "JPEG"),
        (_encode(Image.new("1", (8, 2)), "BMP"), "channels"),
    ],
    ids=["garbage", "empty", "tiff", "truncated-png", "truncated-jpeg", "1bit-bmp"],
)
def test_invalid_bytes_raise_invalid_argument(encoded, message):
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        pp.decode_image(tf.constant(encoded)).numpy()


def test_invalid_bytes_in_a_traced_batch_raise_invalid_argument():
    good = _encode(Image.new("RGB", (3, 3)), "PNG")
    fn = tf.function(functools.partial(pp.preprocess_images, height=4, width=4))
    with pytest.raises(tf.errors.InvalidArgumentError, match="Unknown image file format"):
        fn(tf.constant([good, b"garbage"]))


# --- resizing -----------------------------------------------------------------------
def _uniform(height: int, width: int, colour=(0.2, 0.6, 0.4)) -> tf.Tensor:
    return tf.constant(np.broadcast_to(colour, (height, width, 3)), tf.float32)


@pytest.mark.parametrize("method", RESIZE_METHODS)
@pytest.mark.parametrize("mode", RESIZE_MODES)
@pytest.mark.parametrize("source", [(5, 7), (1, 13), (3, 3), (40, 9)])
@pytest.mark.parametrize("target", [(8, 8), (4, 6)])
def test_resize_gives_exact_static_shape_and_keeps_colour(method, mode, source, target):
    out = pp.resize(_uniform(*source), *target, method=method, mode=mode)
    assert out.shape.as_list() == [*target, 3]
    values = out.numpy()
    assert values.min() >= 0.0 and values.max() <= 1.0
    coloured = np.all(np.abs(values - [0.2, 0.6, 0.4]) < 1e-5, axis=-1)
    padded = np.all(values == PAD_VALUE, axis=-1)
    assert np.all(coloured | padded)  # no colour drift, no ringing, nothing else
    if mode == "stretch":
        assert coloured.all()
    # Pad mode fits the image: it spans the full height or the full width, never 0 pixels.
    assert coloured.any(axis=1).sum() == target[0] or coloured.any(axis=0).sum() == target[1]


def test_pad_keeps_aspect_ratio_and_fills_with_the_pad_value():
    wide = pp.resize(_uniform(1, 13), 8, 8, mode="pad").numpy()  # 1x13 -> 1x8, row 3
    rows = np.all(wide != PAD_VALUE, axis=(1, 2))
    np.testing.assert_array_equal(rows, [False, False, False, True, False, False, False, False])
    square = pp.resize(_uniform(3, 3), 4, 6, mode="pad").numpy()  # 3x3 -> 4x4, cols 1..4
    cols = np.all(square != PAD_VALUE, axis=(0, 2))
    np.testing.assert_array_equal(cols, [False, True, True, True, True, False])
    assert np.all(square[:, [0, 5]] == PAD_VALUE)
    stretched = pp.resize(_uniform(3, 3), 4, 6, mode="stretch").numpy()
    assert np.all(stretched != PAD_VALUE)


def test_resize_methods_are_really_applied():
    blocks = tf.constant([[[0.0] * 3, [1.0] * 3], [[0.5] * 3, [0.25] * 3]])
    nearest = pp.resize(blocks, 4, 4, method="nearest").numpy()[..., 0]
    np.testing.assert_allclose(nearest, np.kron([[0, 1], [0.5, 0.25]], np.ones((2, 2))))
    bilinear = pp.resize(blocks, 4, 4, method="bilinear").numpy()[..., 0]
    assert len(np.unique(bilinear.round(6))) > 4  # interpolates, unlike nearest
    big = tf.constant(np.kron([[0, 1], [0.5, 0.25]], np.ones((2, 2)))[..., None].repeat(3, -1))
    area = pp.resize(tf.cast(big, tf.float32), 2, 2, method="area").numpy()[..., 0]
    np.testing.assert_allclose(area, [[0, 1], [0.5, 0.25]], atol=1e-6)


def test_resize_rejects_unknown_method_and_mode():
    with pytest.raises(ValueError, match=r"method must be one of \['bilinear'"):
        pp.resize(_uniform(2, 2), 4, 4, method="cubic")
    with pytest.raises(ValueError, match=r"mode must be one of \['stretch', 'pad'\]"):
        pp.resize(_uniform(2, 2), 4, 4, mode="crop")


# --- scaling ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "scaling, keras_mode", [("symmetric", "tf"), ("caffe", "caffe"), ("torch", "torch")]
)
def test_scaling_matches_keras_applications(scaling, keras_mode):
    image01 = np.random.default_rng(2).integers(0, 256, (2, 3, 5, 3)).astype(np.float32) / 255
    expected = keras.applications.imagenet_utils.preprocess_input(
        image01 * 255.0, mode=keras_mode, data_format="channels_last"
    )
    np.testing.assert_allclose(pp.scale(tf.constant(image01), scaling).numpy(), expected, atol=1e-4)


def test_unit_and_raw_scaling():
    image01 = tf.constant([[[0.0, 0.5, 1.0]]])
    np.testing.assert_allclose(pp.scale(image01, "unit").numpy(), [[[0.0, 0.5, 1.0]]])
    np.testing.assert_allclose(pp.scale(image01, "raw").numpy(), [[[0.0, 127.5, 255.0]]])
    assert set(SCALINGS) == {"unit", "symmetric", "caffe", "torch", "raw"}
    with pytest.raises(ValueError, match=r"scaling must be one of \['unit', 'symmetric'"):
        pp.scale(image01, "imagenet")


# --- batches ------------------------------------------------------------------------
def _mixed_batch() -> list[bytes]:
    return [
        _encode(Image.fromarray(_gradient(5, 7)), "PNG"),
        _encode(Image.fromarray(_gradient(37, 51)), "JPEG"),
        _encode(Image.new("LA", (1, 13), (90, 200)), "PNG"),
        _encode(_palette_image(), "GIF"),
        _encode(Image.fromarray(_gradient(3, 3)), "BMP"),
        _png16(np.full((2, 9, 1), 40000, np.uint16)),
    ]


@pytest.mark.parametrize("scaling", SCALINGS)
def test_preprocess_images_equals_per_image_pipeline(scaling):
    batch = _mixed_batch()
    kwargs = dict(height=8, width=6, method="bicubic", mode="pad", scaling=scaling)
    out = pp.preprocess_images(tf.constant(batch), **kwargs)
    assert out.shape.as_list() == [len(batch), 8, 6, 3]
    for i, encoded in enumerate(batch):
        one = pp.resize(pp.decode_image(tf.constant(encoded)), 8, 6, "bicubic", "pad")
        np.testing.assert_allclose(out[i].numpy(), pp.scale(one, scaling).numpy(), atol=1e-6)


def test_preprocess_images_traces_with_unknown_batch_size():
    spec = ImageSpec(height=5, width=4, resize_method="area", scaling="torch")
    fn = tf.function(spec.preprocess, input_signature=[tf.TensorSpec([None], tf.string)])
    traced = fn.get_concrete_function().structured_outputs
    assert traced.shape.as_list() == [None, 5, 4, 3] and traced.dtype == tf.float32
    batch = tf.constant(_mixed_batch())
    np.testing.assert_allclose(fn(batch).numpy(), spec.preprocess(batch).numpy(), atol=1e-6)
    assert fn(tf.constant([], tf.string)).shape == (0, 5, 4, 3)


# --- ImageSpec ----------------------------------------------------------------------
def test_image_spec_round_trips_through_a_dict():
    spec = ImageSpec(height=224, width=160, resize_method="lanczos3", resize_mode="pad")
    assert spec.to_dict() == {
        "height": 224,
        "width": 160,
        "resize_method": "lanczos3",
        "resize_mode": "pad",
        "scaling": "symmetric",
    }
    assert ImageSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(AttributeError):
        spec.height = 1  # frozen


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"height": 0}, r"ImageSpec.height must be a positive integer, got 0"),
        ({"width": 2.5}, r"ImageSpec.width must be a positive integer, got 2.5"),
        ({"height": True}, r"ImageSpec.height must be a positive integer"),
        ({"resize_method": "cubic"}, r"ImageSpec.resize_method must be one of \['bilinear', "),
        ({"resize_mode": "crop"}, r"ImageSpec.resize_mode must be one of \['stretch', 'pad'\]"),
        ({"scaling": "tf"}, r"ImageSpec.scaling must be one of \['unit', 'symmetric', 'caffe'"),
    ],
)
def test_image_spec_rejects_bad_values_naming_field_and_allowed(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ImageSpec(**{"height": 8, "width": 8, **kwargs})


def test_image_spec_from_dict_rejects_unknown_and_missing_keys():
    with pytest.raises(ValueError, match=r"unknown keys \['hieght'\]; allowed keys: \['height'"):
        ImageSpec.from_dict({"hieght": 8, "width": 8})
    with pytest.raises(ValueError, match=r"missing required keys \['height'\]"):
        ImageSpec.from_dict({"width": 8})


# --- tf.Transform -------------------------------------------------------------------
RAW_FEATURE_SPEC = {
    IMAGE_KEY: tf.io.FixedLenFeature([], tf.string),
    LABEL_KEY: tf.io.FixedLenFeature([], tf.int64),
    IMAGE_ID_KEY: tf.io.FixedLenFeature([], tf.string),
    LABEL_NAME_KEY: tf.io.FixedLenFeature([], tf.string),
}


def _example(image: bytes, label: int) -> bytes:
    def feature(value):
        if isinstance(value, int):
            return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))

    values = {IMAGE_KEY: image, LABEL_KEY: label, IMAGE_ID_KEY: b"id%d" % label}
    values[LABEL_NAME_KEY] = b"class%d" % label
    features = tf.train.Features(feature={k: feature(v) for k, v in values.items()})
    return tf.train.Example(features=features).SerializeToString()


def _run_transform(examples: list[bytes], spec: ImageSpec, out_dir: str) -> None:
    """AnalyzeAndTransformDataset on serialized tf.Examples, as TFX Transform runs it.

    Writes the transform graph to <out_dir>/transform and the transformed examples to
    <out_dir>/transformed.tfrecord.
    """
    schema = schema_utils.schema_from_feature_spec(RAW_FEATURE_SPEC)
    source = tfxio.TFExampleBeamRecord(
        physical_format="inmem", telemetry_descriptors=["test"], schema=schema
    )
    fn = functools.partial(pp.preprocessing_fn, custom_config=spec.to_dict())
    with tft_beam.Context(temp_dir=f"{out_dir}/tmp", force_tf_compat_v1=False):
        with beam.Pipeline() as pipeline:
            records = pipeline | "Create" >> beam.Create(examples) | "Decode" >> source.BeamSource()
            (transformed, metadata), transform_fn = (
                records,
                source.TensorAdapterConfig(),
            ) | "AnalyzeAndTransform" >> tft_beam.AnalyzeAndTransformDataset(fn)
            _ = transform_fn | "WriteTransformFn" >> tft_beam.WriteTransformFn(
                f"{out_dir}/transform"
            )
            coder = tft.coders.ExampleProtoCoder(metadata.schema)
            _ = (
                transformed
                | "Encode" >> beam.Map(coder.encode)
                | "Write"
                >> beam.io.WriteToTFRecord(
                    f"{out_dir}/transformed.tfrecord", shard_name_template=""
                )
            )


def test_transform_output_equals_preprocess_images(tmp_path):
    images = _mixed_batch()[:4]
    examples = [_example(b, i) for i, b in enumerate(images)]
    spec = ImageSpec(height=8, width=6, resize_method="bilinear", resize_mode="pad")
    _run_transform(examples, spec, str(tmp_path))
    direct = spec.preprocess(tf.constant(images)).numpy()

    output = tft.TFTransformOutput(str(tmp_path / "transform"))
    feature_spec = output.transformed_feature_spec()
    assert feature_spec[TRANSFORMED_IMAGE_KEY] == tf.io.FixedLenFeature([8, 6, 3], tf.float32)
    records = list(tf.data.TFRecordDataset(str(tmp_path / "transformed.tfrecord")))
    rows = tf.io.parse_example(tf.stack(records), feature_spec)
    order = np.argsort(rows[LABEL_KEY].numpy())
    np.testing.assert_array_equal(rows[LABEL_KEY].numpy()[order], [0, 1, 2, 3])
    assert list(rows[IMAGE_ID_KEY].numpy()[order]) == [b"id0", b"id1", b"id2", b"id3"]
    assert rows[LABEL_NAME_KEY].numpy()[order][2] == b"class2"
    np.testing.assert_allclose(rows[TRANSFORMED_IMAGE_KEY].numpy()[order], direct, atol=1e-6)

    parsed = tf.io.parse_example(examples, RAW_FEATURE_SPEC)
    served = output.transform_features_layer()(parsed)
    np.testing.assert_allclose(served[TRANSFORMED_IMAGE_KEY].numpy(), direct, atol=1e-6)
    np.testing.assert_array_equal(served[LABEL_KEY].numpy(), [0, 1, 2, 3])


def test_preprocessing_fn_rejects_bad_config_and_sparse_features():
    png = _encode(Image.new("RGB", (3, 2)), "PNG")
    inputs = {IMAGE_KEY: tf.constant([png]), IMAGE_ID_KEY: tf.constant([b"id"])}
    inputs[LABEL_KEY] = tf.constant([1], tf.int64)
    with pytest.raises(ValueError, match=r"missing required keys \['height', 'width'\]"):
        pp.preprocessing_fn(inputs, custom_config={})
    sparse = dict(inputs, **{LABEL_KEY: tf.sparse.from_dense(tf.constant([[1]], tf.int64))})
    with pytest.raises(
        ValueError, match="'label' is a SparseTensor; declare it .* required scalar"
    ):
        pp.preprocessing_fn(sparse, custom_config={"height": 4, "width": 4})
    column = dict(inputs, **{IMAGE_KEY: tf.constant([[png]])})  # [batch, 1] is accepted
    out = pp.preprocessing_fn(column, custom_config={"height": 4, "width": 4})
    assert out[TRANSFORMED_IMAGE_KEY].shape.as_list() == [1, 4, 4, 3]
    assert LABEL_NAME_KEY not in out
