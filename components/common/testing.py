"""Shared test builders: small, deterministic inputs for the tests and the benchmarks.

What the tests of several components and bench/ build alike, declared once (the
pipeline itself never imports this module):

- images: make_image (tiny noisy images of odd shapes and several formats), encode (a
  solid image), and ImageExampleGen's hostile input folder (build_hostile_root);
- Examples on disk: write_examples (the ``Split-<name>/`` layout of gzipped
  TFRecords), split_patterns, and artifact (a TFX artifact at a uri);
- a transform graph: write_transform (preprocessing_fn exported as TFX Transform does);
- base models: tiny_cnn, save_base;
- bottleneck outputs: read_output, read_vectors, parse_split, vectors_by_id, and the
  reference they are compared with, direct_vectors.

Everything is seeded. Like the rest of components.common, this imports only
components.common and third-party packages (tests/test_layers.py). Builders that run a
component's own code live beside it: an executor run outside TFX in
``components/<name>/testing.py`` (``run_executor``, shared with bench/), the rest (a
tf.Example as ImageExampleGen writes it, a cache job) as fixtures in tests/conftest.py.
"""

from __future__ import annotations

import functools
import io
import os
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from PIL import Image
from tfx.types import artifact_utils

from components.common import model_io
from components.common import preprocessing as pp
from components.common.examples import (
    BOTTLENECK_KEY,
    IMAGE_ID_KEY,
    IMAGE_KEY,
    LABEL_KEY,
    LABEL_NAME_KEY,
    SPLITS,
)

# --- tiny images -------------------------------------------------------------------------
TINY_SIZE = 32  # tiny_cnn's input side, and the side of TINY_SPEC's output
TINY_SPEC = pp.ImageSpec(height=TINY_SIZE, width=TINY_SIZE)
TINY_DIM = 4  # tiny_cnn's relu1 has 4 channels: the length of its pooled vectors

# (height, width, Pillow mode, format): odd sizes, grey, RGB and RGBA, PNG and JPEG.
SHAPES = (
    (5, 7, "RGB", "PNG"),
    (13, 4, "RGB", "JPEG"),
    (9, 9, "L", "PNG"),
    (6, 11, "RGBA", "PNG"),
    (40, 33, "RGB", "JPEG"),
    (3, 17, "L", "JPEG"),
)


def make_image(index: int, seed: int = 0) -> bytes:
    """A distinct noisy image; the shape and format cycle through SHAPES."""
    height, width, mode, fmt = SHAPES[index % len(SHAPES)]
    pixels = np.random.default_rng([seed, index]).integers(0, 256, (height, width, 4), np.uint8)
    image = Image.fromarray(pixels, "RGBA").convert(mode)
    out = io.BytesIO()
    image.save(out, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return out.getvalue()


def encode(mode, color, fmt, size=(5, 7), **save_args) -> bytes:
    """A tiny solid image encoded with Pillow."""
    out = io.BytesIO()
    Image.new(mode, size, color).save(out, fmt, **save_args)
    return out.getvalue()


# --- ImageExampleGen's hostile input folder ------------------------------------------------
HOSTILE_MAX_PIXELS = 1000  # the over-size image of the hostile folder is 40 x 40 = 1600


def noise_png(size=(20, 20)) -> bytes:
    """A PNG of seeded RGB noise (it compresses badly: truncating it breaks it)."""
    pixels = np.random.default_rng(0).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "PNG")
    return out.getvalue()


def gif_two_frames() -> bytes:
    """A 5x7 animated GIF: a red frame, then a blue one."""
    out = io.BytesIO()
    first = Image.new("RGB", (5, 7), (255, 0, 0)).convert("P")
    second = Image.new("RGB", (5, 7), (0, 0, 255)).convert("P")
    first.save(out, "GIF", save_all=True, append_images=[second], duration=10)
    return out.getvalue()


def valid_files() -> dict:
    """relpath -> bytes of every image that must be ingested from the hostile root."""
    return {
        "cats/a.jpg": encode("RGB", (200, 10, 10), "JPEG"),
        "cats/rgb8.png": encode("RGB", (10, 200, 10), "PNG"),
        "cats/grey16.png": encode("I;16", 40000, "PNG"),
        "cats/palette.png": encode("P", 7, "PNG"),
        "cats/grey.png": encode("L", 77, "PNG"),
        "cats/rgba.png": encode("RGBA", (1, 2, 3, 128), "PNG"),
        "cats/anim.gif": gif_two_frames(),
        "cats/bitmap.bmp": encode("RGB", (9, 99, 199), "BMP"),
        "cats/cmyk.jpg": encode("CMYK", (10, 120, 30, 40), "JPEG"),
        "cats/onebit.bmp": encode("1", 1, "BMP"),  # TensorFlow cannot decode 1-bit BMP
        "cats/ünï cødé ñame.png": encode("RGB", (3, 33, 133), "PNG"),
        "cats/nested/deeper/n.png": encode("RGB", (4, 44, 144), "PNG"),
        "dogs/d.png": encode("RGB", (5, 55, 155), "PNG"),
        "with space/w s.png": encode("RGB", (6, 66, 166), "PNG"),
    }


# AppleDouble ("._<name>") files that macOS writes next to files on foreign volumes:
# a resource-fork header, not an image.
APPLE_DOUBLE = b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        " + bytes(40)


def os_junk(real_image: bytes) -> dict:
    """relpath -> bytes of files that operating systems and tools drop into a class folder.

    Every one of them is ignored: neither ingested nor quarantined (the hidden folder,
    holding a real image, counts as one ignored entry and is not walked).
    """
    return {
        "cats/.DS_Store": b"\x00\x00\x00\x01Bud1" + bytes(20),
        "cats/._img.png": APPLE_DOUBLE,
        "cats/Thumbs.db": b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(24),
        "cats/desktop.ini": b"[.ShellClassInfo]\r\nIconResource=x\r\n",
        "cats/.ipynb_checkpoints/img-checkpoint.png": real_image,
    }


def build_hostile_root(tmp_path: Path) -> tuple[Path, dict]:
    """Builds the hostile folder under tmp_path; returns (root, expected) for assertions.

    expected has "valid" {relpath: bytes}, "quarantined" {relpath: reason fragment},
    "duplicates" {relpath: kept relpath}, "transcoded" (set of relpaths), "classes",
    "ignored" (sorted relpaths of OS junk files and hidden folders). The reasons are
    those of ImageExampleGen with max_pixels=HOSTILE_MAX_PIXELS.
    """
    root, outside = tmp_path / "root", tmp_path / "outside"
    valid = valid_files()
    truncated = noise_png()
    conflict = encode("RGB", (8, 88, 188), "PNG")
    files = {
        **valid,
        "cats/empty.jpg": b"",
        "cats/truncated.png": truncated[: len(truncated) * 6 // 10],
        "cats/text.png": b"this is not an image\n",
        "cats/scan.tiff": encode("RGB", (1, 1, 1), "TIFF"),
        "cats/huge.png": encode("RGB", (1, 2, 3), "PNG", size=(40, 40)),
        "cats/copy_of_a.jpg": valid["cats/a.jpg"],
        "dogs/conflict.png": conflict,
        "birds/conflict_copy.png": conflict,
        "root_file.png": encode("RGB", (9, 9, 9), "PNG"),
        "../outside/secret.png": encode("RGB", (7, 7, 7), "PNG"),
        "../outside/dir/inner.png": encode("RGB", (6, 6, 6), "PNG"),
        # OS junk, ignored: in a class folder, at the root, in a hidden top-level folder.
        **os_junk(encode("RGB", (11, 111, 211), "PNG")),
        "dogs/THUMBS.DB": b"junk",
        ".DS_Store": b"junk",
        ".git/objects/img.png": encode("RGB", (12, 112, 212), "PNG"),
    }
    for relpath, data in files.items():
        path = root / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    (root / "empty_class").mkdir()
    os.symlink(outside / "secret.png", root / "cats/escape_file.png")
    os.symlink(outside / "dir", root / "cats/escape_dir")
    os.symlink("rgb8.png", root / "cats/zlink.png")  # inside the root: followed
    os.symlink("..", root / "cats/loop")  # a cycle: not entered again
    os.symlink("missing.png", root / "cats/broken.png")
    with open(os.fsencode(root / "cats") + b"/bad\xffname.png", "wb") as f:
        f.write(encode("RGB", (5, 5, 5), "PNG"))  # a name that is not UTF-8
    expected = {
        "valid": valid,
        "quarantined": {
            "cats/empty.jpg": "empty file (0 bytes)",
            "cats/truncated.png": "corrupt or truncated image",
            "cats/text.png": "not an image Pillow can identify",
            "cats/scan.tiff": "unsupported format TIFF; convert to PNG or JPEG",
            "cats/huge.png": "40 x 40 = 1600 pixels exceeds max_pixels=1000",
            "cats/escape_file.png": f"symlink leaves the input root -> {outside / 'secret.png'}",
            "cats/escape_dir": f"symlink leaves the input root -> {outside / 'dir'}",
            "cats/broken.png": "broken symlink -> missing.png",
            "cats/bad\ufffdname.png": "name is not valid UTF-8; rename it",
            "dogs/conflict.png": "same image in classes birds, dogs; keep it in one class folder",
            "birds/conflict_copy.png": "same image in classes birds, dogs",
            "root_file.png": f"not inside a class folder; move it into {root}/<class>/",
        },
        "duplicates": {"cats/copy_of_a.jpg": "cats/a.jpg", "cats/zlink.png": "cats/rgb8.png"},
        "transcoded": {"cats/onebit.bmp"},
        "classes": ["birds", "cats", "dogs", "empty_class", "with space"],
        "ignored": [
            ".DS_Store",
            ".git",
            "cats/.DS_Store",
            "cats/._img.png",
            "cats/.ipynb_checkpoints",
            "cats/Thumbs.db",
            "cats/desktop.ini",
            "dogs/THUMBS.DB",
        ],
    }
    return root, expected


# --- Examples on disk ----------------------------------------------------------------------
def write_examples(root, splits: dict) -> str:
    """Writes {split: [serialized record]} in the Examples layout; returns root."""
    for split, records in splits.items():
        directory = os.path.join(str(root), f"Split-{split}")
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, "data_tfrecord-00000-of-00001.gz")
        with tf.io.TFRecordWriter(path, "GZIP") as writer:
            for record in records:
                writer.write(record)
    return str(root)


def split_patterns(examples_root) -> dict[str, str]:
    """{split name: file pattern} of every ``Split-<name>/`` folder under examples_root."""
    splits = sorted(os.listdir(examples_root))
    names = [s.removeprefix("Split-") for s in splits]
    return {n: os.path.join(examples_root, s, "*") for n, s in zip(names, splits, strict=True)}


def artifact(artifact_type, uri, split_names: str | None = None):
    """A new artifact of artifact_type at uri (split_names: encoded, as TFX stores them)."""
    result = artifact_type()
    result.uri = str(uri)
    if split_names is not None:
        result.split_names = split_names
    return result


# --- a transform graph ---------------------------------------------------------------------
def write_transform(
    directory, record: bytes, image_spec: pp.ImageSpec = TINY_SPEC, scalar: bool = False
) -> str:
    """Exports a transform graph of preprocessing_fn as TFX Transform does; returns its dir.

    The analysis runs on the one serialized tf.Example `record`. The raw features have
    shape [1] like the checked-in schemas (shape [] when scalar).
    """
    import apache_beam as beam  # heavy: imported on first use
    import tensorflow_transform.beam as tft_beam
    from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils
    from tfx_bsl.public import tfxio

    shape = [] if scalar else [1]
    feature_spec = {
        IMAGE_KEY: tf.io.FixedLenFeature(shape, tf.string),
        LABEL_KEY: tf.io.FixedLenFeature(shape, tf.int64),
        IMAGE_ID_KEY: tf.io.FixedLenFeature(shape, tf.string),
        LABEL_NAME_KEY: tf.io.FixedLenFeature(shape, tf.string),
    }
    schema = schema_utils.schema_from_feature_spec(feature_spec)
    source = tfxio.TFExampleBeamRecord(
        physical_format="inmem", telemetry_descriptors=["test"], schema=schema
    )
    fn = functools.partial(pp.preprocessing_fn, custom_config=image_spec.to_dict())
    out = str(directory)
    with tft_beam.Context(temp_dir=os.path.join(out, "tmp"), force_tf_compat_v1=False):
        with beam.Pipeline() as pipeline:
            records = pipeline | "Create" >> beam.Create([record]) | "Decode" >> source.BeamSource()
            transform_fn = (records, source.TensorAdapterConfig()) | tft_beam.AnalyzeDataset(fn)
            _ = transform_fn | "WriteTransformFn" >> tft_beam.WriteTransformFn(out)
            _ = dataset_metadata.DatasetMetadata(schema) | "WriteRawMetadata" >> (
                tft_beam.WriteMetadata(os.path.join(out, "metadata"), pipeline)
            )
    return out


# --- base models ---------------------------------------------------------------------------
def tiny_cnn(seed: int = 0) -> keras.Model:
    """Input 32x32x3 -> conv1 -> bn1 -> relu1 -> conv2 -> gap -> logits."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((TINY_SIZE, TINY_SIZE, 3), name="image")
    x = keras.layers.Conv2D(4, 3, name="conv1")(inputs)
    x = keras.layers.BatchNormalization(name="bn1")(x)
    x = keras.layers.ReLU(name="relu1")(x)
    x = keras.layers.Conv2D(6, 3, strides=2, name="conv2")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = keras.layers.Dense(3, name="logits")(x)
    model = keras.Model(inputs, outputs, name="tiny")
    bn = model.get_layer("bn1")  # non-trivial statistics: inference mode matters
    bn.moving_mean.assign(np.full(4, 0.3, np.float32))
    bn.moving_variance.assign(np.full(4, 2.0, np.float32))
    return model


def save_base(model: keras.Model, directory) -> str:
    """Saves model.keras into a Model artifact-like directory; returns the directory."""
    model_io.save_keras(model, str(directory))
    return str(directory)


# --- bottleneck outputs --------------------------------------------------------------------
def read_output(out_dir, split: str) -> list:
    """Parsed output records of one split (tf.train.Example feature maps)."""
    pattern = os.path.join(str(out_dir), f"Split-{split}", "data_tfrecord-*.gz")
    files = tf.io.gfile.glob(pattern)
    assert files, f"no output file matches {pattern}"
    dataset = tf.data.TFRecordDataset(files, compression_type="GZIP")
    return [tf.train.Example.FromString(r.numpy()).features.feature for r in dataset]


def read_vectors(out_dir, splits=SPLITS) -> dict:
    """{image_id: vector} over the given splits of an output."""
    vectors = {}
    for split in splits:
        for feature in read_output(out_dir, split):
            image_id = feature[IMAGE_ID_KEY].bytes_list.value[0].decode()
            vectors[image_id] = np.array(feature[BOTTLENECK_KEY].float_list.value, np.float32)
    return vectors


def parse_split(output, split, dim=TINY_DIM):
    """Records of one split of an output artifact, parsed with the feature spec a
    Trainer would use ({} when the split is empty)."""
    files = tf.io.gfile.glob(
        os.path.join(artifact_utils.get_split_uri([output], split), "data_tfrecord-*.gz")
    )
    assert files, split
    feature_spec = {
        BOTTLENECK_KEY: tf.io.FixedLenFeature([dim], tf.float32),
        LABEL_KEY: tf.io.FixedLenFeature([], tf.int64),
        LABEL_NAME_KEY: tf.io.FixedLenFeature([], tf.string),
        IMAGE_ID_KEY: tf.io.FixedLenFeature([], tf.string),
        IMAGE_KEY: tf.io.FixedLenFeature([], tf.string),
    }
    records = list(tf.data.TFRecordDataset(files, compression_type="GZIP"))
    if not records:
        return {}
    parsed = tf.io.parse_example(tf.stack(records), feature_spec)
    return {key: value.numpy() for key, value in parsed.items()}


def vectors_by_id(output) -> dict:
    """{image_id: vector} over both splits of an output artifact (parse_split's vectors)."""
    vectors = {}
    for split in SPLITS:
        parsed = parse_split(output, split)
        for image_id, vector in zip(
            parsed.get(IMAGE_ID_KEY, []), parsed.get(BOTTLENECK_KEY, []), strict=True
        ):
            vectors[image_id.decode()] = vector
    return vectors


def direct_vectors(
    model: keras.Model, layer: str, pooling: str, images: list, image_spec=TINY_SPEC
) -> np.ndarray:
    """The reference: the layer's output on preprocess_images, pooled, flattened."""
    output = model.get_layer(layer).output
    pool = {
        "avg": keras.layers.GlobalAveragePooling2D(),
        "max": keras.layers.GlobalMaxPooling2D(),
        "flatten": keras.layers.Flatten(),
        "none": None,
    }[pooling]
    reference = keras.Model(model.input, pool(output) if pool else output)
    pixels = image_spec.preprocess(tf.constant(images))
    out = reference(pixels, training=False).numpy()
    return out.reshape(len(images), -1)
