"""The Trainer's inputs: bottleneck records, label counts, the base network's location.

The Trainer's ``examples`` are BottleneckCache's output: gzipped TFRecords of
tf.Examples in ``Split-<name>/`` folders, each record carrying BOTTLENECK_KEY (the
frozen layers' output, flattened), LABEL_KEY and the original encoded image under
IMAGE_KEY (for fine-tuning). Unlabelled records (label -1) are skipped everywhere.

- ``bottleneck_dataset``: (bottleneck reshaped to the extractor's output, label)
  batches for the head phase; parsed once and cached in memory.
- ``image_dataset``: (preprocessed image, label) batches for fine-tuning, through
  ``ImageSpec.preprocess`` (the same code Transform and the served model use).
- ``encoded_eval_batches``: (encoded bytes, labels) for evaluating the exported model.
- ``record_files``, ``count_labels``, ``bottleneck_dim``: a split's files (error when
  none match), its labelled examples per class, the stored vector length.
- ``resolve_base_model``: where model.keras is for the Trainer's base_model input.

The class names come from the schema (``components.common.schema``).
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator, Mapping, Sequence

import numpy as np
import tensorflow as tf

from components.common import model_io
from components.common.artifact_io import join, read_records
from components.common.examples import BOTTLENECK_KEY, IMAGE_KEY, LABEL_KEY
from components.common.preprocessing import ImageSpec

MAX_SHUFFLE_BUFFER = 10_000
_COUNT_BATCH = 1024


def record_files(patterns: Sequence[str], split: str) -> list[str]:
    """The files matching the split's patterns (fn_args.train_files / eval_files).

    Raises:
        FileNotFoundError: no file matches; names the split and the patterns.
    """
    files = sorted({path for pattern in patterns or () for path in tf.io.gfile.glob(pattern)})
    if not files:
        raise FileNotFoundError(f"no {split} records match {list(patterns or ())}")
    return files


def count_labels(files: Sequence[str], num_classes: int, split: str) -> np.ndarray:
    """Labelled examples per class (int64 [num_classes]); unlabelled ones are skipped.

    Raises:
        ValueError: a label is >= num_classes (the schema's vocabulary is smaller
            than the data's), or the split has no labelled example.
    """
    spec = {LABEL_KEY: tf.io.FixedLenFeature([], tf.int64)}
    counts = np.zeros(num_classes, np.int64)
    batches = read_records(files).batch(_COUNT_BATCH).map(lambda r: tf.io.parse_example(r, spec))
    for batch in batches:
        labels = batch[LABEL_KEY].numpy()
        if labels.size and labels.max() >= num_classes:
            raise ValueError(
                f"{split} split has label {labels.max()} but the schema lists only "
                f"{num_classes} classes: regenerate the schema for this data"
            )
        counts += np.bincount(labels[labels >= 0], minlength=num_classes)
    if not counts.sum():
        raise ValueError(f"the {split} split has no labelled example ({len(files)} files)")
    return counts


def bottleneck_dim(files: Sequence[str], key: str = BOTTLENECK_KEY) -> int:
    """Length of the `key` float list (default BOTTLENECK_KEY) in the first record.

    Raises:
        ValueError: the record has no such float feature (not BottleneckCache output, or
            BottleneckCache ran with another cut_layer / cut_candidates).
    """
    for serialized in read_records(files[:1]).take(1):
        example = tf.train.Example.FromString(serialized.numpy())
        feature = example.features.feature.get(key)
        if feature is None or feature.WhichOneof("kind") != "float_list":
            found = sorted(
                name for name in example.features.feature if name.startswith(BOTTLENECK_KEY)
            )
            raise ValueError(
                f"records in {files[0]} have no float feature {key!r} (they have {found}): "
                "the Trainer's examples must be BottleneckCache's output, made with the same "
                "cut_layer and cut_candidates"
            )
        return len(feature.float_list.value)
    raise ValueError(f"{files[0]} holds no record")


def _labelled(features: dict[str, tf.Tensor]) -> tf.Tensor:
    return features[LABEL_KEY] >= 0


def record_labels(files: Sequence[str]) -> np.ndarray:
    """The labels of the labelled records, in file order (int64 [examples]): the order
    in which ``keep`` masks of the dataset functions below are read."""
    spec = {LABEL_KEY: tf.io.FixedLenFeature([], tf.int64)}
    parsed = read_records(files).batch(_COUNT_BATCH).map(lambda r: tf.io.parse_example(r, spec))
    labels = [batch[LABEL_KEY].numpy() for batch in parsed]
    labels = np.concatenate(labels) if labels else np.zeros(0, np.int64)
    return labels[labels >= 0].astype(np.int64)


def _kept(ds: tf.data.Dataset, keep: np.ndarray | None) -> tf.data.Dataset:
    """Only the labelled records whose position (file order) is True in `keep`."""
    if keep is None:
        return ds
    mask = tf.constant(np.asarray(keep, dtype=bool))
    return ds.enumerate().filter(lambda i, _: tf.gather(mask, i)).map(lambda _, x: x)


def _shuffle_batch(
    ds: tf.data.Dataset, batch_size: int, size: int, shuffle_seed: int | None
) -> tf.data.Dataset:
    """Shuffles (when seeded) and batches `size` examples; the batch count is asserted.

    Keras then knows the steps per epoch, and a count that does not match the data
    fails loudly instead of silently training on a part of it.
    """
    if shuffle_seed is not None:
        buffer = max(1, min(size, MAX_SHUFFLE_BUFFER))
        ds = ds.shuffle(buffer, seed=shuffle_seed, reshuffle_each_iteration=True)
    batches = -(-size // batch_size)
    return ds.batch(batch_size).apply(tf.data.experimental.assert_cardinality(batches))


def bottleneck_dataset(
    files: Sequence[str],
    shape: Sequence[int],
    batch_size: int,
    size: int,
    *,
    shuffle_seed: int | None = None,
    key: str = BOTTLENECK_KEY,
    keep: np.ndarray | None = None,
) -> tf.data.Dataset:
    """(bottleneck float32 [batch, *shape], label int64 [batch]) batches.

    Args:
        files: gzipped TFRecord files of BottleneckCache.
        shape: the extractor's output shape per example (the records hold it flattened).
        batch_size: examples per batch.
        size: number of labelled examples in the files (count_labels).
        shuffle_seed: shuffle with this seed (every epoch a new order); None keeps the
            file order (evaluation).
        key: the vector's feature (a candidate's, examples.candidate_key, for cut auto).
        keep: a boolean mask over the labelled records in file order (record_labels):
            only those are read (a fold of the split); None: all. `size` counts the kept.
    """
    shape = [int(d) for d in shape]
    spec = {
        key: tf.io.FixedLenFeature([int(np.prod(shape))], tf.float32),
        LABEL_KEY: tf.io.FixedLenFeature([], tf.int64),
    }
    ds = (
        read_records(files)
        .map(lambda r: tf.io.parse_single_example(r, spec), num_parallel_calls=tf.data.AUTOTUNE)
        .filter(_labelled)
    )
    ds = _kept(ds, keep).map(lambda f: (tf.reshape(f[key], shape), f[LABEL_KEY])).cache()
    return _shuffle_batch(ds, batch_size, size, shuffle_seed).prefetch(tf.data.AUTOTUNE)


def _encoded_dataset(files: Sequence[str]) -> tf.data.Dataset:
    """(encoded image bytes, label) per labelled record."""
    spec = {
        IMAGE_KEY: tf.io.FixedLenFeature([], tf.string),
        LABEL_KEY: tf.io.FixedLenFeature([], tf.int64),
    }
    return (
        read_records(files)
        .map(lambda r: tf.io.parse_single_example(r, spec), num_parallel_calls=tf.data.AUTOTUNE)
        .filter(_labelled)
        .map(lambda f: (f[IMAGE_KEY], f[LABEL_KEY]))
    )


def image_dataset(
    files: Sequence[str],
    image_spec: ImageSpec,
    batch_size: int,
    size: int,
    *,
    shuffle_seed: int | None = None,
    keep: np.ndarray | None = None,
) -> tf.data.Dataset:
    """(preprocessed image float32 [batch, h, w, 3], label int64 [batch]) batches.

    Arguments as in bottleneck_dataset; images go through ``image_spec.preprocess``.
    """
    ds = _shuffle_batch(_kept(_encoded_dataset(files), keep), batch_size, size, shuffle_seed)
    ds = ds.map(
        lambda encoded, label: (image_spec.preprocess(encoded), label),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    return ds.prefetch(tf.data.AUTOTUNE)


def encoded_eval_batches(
    files: Sequence[str], batch_size: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(encoded image bytes [batch], labels [batch]) numpy batches, in file order."""
    for encoded, labels in _encoded_dataset(files).batch(batch_size):
        yield encoded.numpy(), labels.numpy()


def resolve_base_model(path: str | None) -> str:
    """The directory (or .keras file) holding the base network for the Trainer.

    TFX passes ``<Model artifact uri>/Format-Serving`` as fn_args.base_model, while
    BaseModelGen and this Trainer write ``<uri>/model.keras``: look there and in the
    parent.

    Raises:
        FileNotFoundError: naming the places looked at.
    """
    if not path:
        raise FileNotFoundError("the Trainer needs its base_model input (model.keras)")
    if path.endswith(".keras") and tf.io.gfile.exists(path):
        return path
    parent = posixpath.dirname(path.rstrip("/"))
    for directory in (path, parent):
        if tf.io.gfile.exists(join(directory, model_io.KERAS_MODEL_FILE)):
            return directory
    raise FileNotFoundError(
        f"base_model: no {model_io.KERAS_MODEL_FILE} in {path} or {parent}; the base must "
        "be a Model artifact holding model.keras (BaseModelGen, or another Trainer)"
    )


def candidate_arrays(
    files: Sequence[str], keys: Mapping[str, str]
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Every labelled record's vectors of several features, in memory.

    Args:
        files: gzipped TFRecord files of BottleneckCache (one split).
        keys: name -> float-list feature (cut candidates: examples.candidate_key).

    Returns:
        (name -> float32 [examples, dim], labels int64 [examples]), rows aligned.
    """
    rows: dict[str, list[np.ndarray]] = {name: [] for name in keys}
    labels = []
    for serialized in read_records(files):
        feature = tf.train.Example.FromString(serialized.numpy()).features.feature
        label = feature[LABEL_KEY].int64_list.value[0]
        if label < 0:
            continue
        labels.append(label)
        for name, key in keys.items():
            rows[name].append(np.asarray(feature[key].float_list.value, np.float32))
    if not labels:
        raise ValueError(f"no labelled record in {list(files)}")
    return {name: np.stack(values) for name, values in rows.items()}, np.array(labels, np.int64)
