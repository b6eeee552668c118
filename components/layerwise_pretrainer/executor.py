"""Executor of LayerwisePretrainer: images -> level caches -> a pretrained encoder.

Reads the train split (and the eval split, for a held-out reconstruction loss) of an
Examples artifact, ignoring labels; runs the Transform graph once per image to write
level 0 (the preprocessed images) as a memory-mapped cache; trains the stack layer by
layer (stack.pretrain); writes ``<model.uri>/model.keras`` (the encoder, the one form
every base takes in this pipeline) and ``<model.uri>/reports/``: the loss curves, a
grid of reconstructions and the per-layer history as JSON.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator

import numpy as np
import tensorflow as tf
from absl import logging
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils

from components.common import artifact_io, model_io
from components.common.examples import EVAL_SPLIT, IMAGE_KEY, TRAIN_SPLIT
from components.common.transform_graph import ImageTransform, load_image_transform
from components.layerwise_pretrainer import reports, spec, stack

GRID_IMAGES = 8
_READ_BATCH = 64


def split_files(examples, split: str) -> list[str]:
    """The split's gzipped TFRecord files; [] when the artifact has no such split."""
    if split not in artifact_utils.decode_split_names(examples.split_names):
        return []
    return artifact_io.split_files(artifact_utils.get_split_uri([examples], split))


def _encoded_batches(files: list[str]) -> Iterator[tf.Tensor]:
    spec_ = {IMAGE_KEY: tf.io.FixedLenFeature([], tf.string)}
    ds = artifact_io.read_records(files)
    ds = ds.map(lambda r: tf.io.parse_single_example(r, spec_)[IMAGE_KEY])
    yield from ds.batch(_READ_BATCH)


def count_images(files: list[str]) -> int:
    """Records in the files (an empty split has files without records)."""
    return sum(int(batch.shape[0]) for batch in _encoded_batches(files)) if files else 0


def image_level(
    files: list[str], transform: ImageTransform, path: str, count: int | None = None
) -> stack.LevelCache:
    """Level 0: every image of the files through the transform, once, into a memory map.

    `count` is the number of records when the caller has counted them already.
    """
    count = count_images(files) if count is None else count
    if count == 0:
        raise ValueError(f"no images in {files}: layer-wise pretraining needs images")
    item_shape = transform(next(_encoded_batches(files))[:1]).shape[1:]
    images = (transform(batch).numpy() for batch in _encoded_batches(files))
    return stack.fill_from_batches(path, count, item_shape, images)


def pretrain_from_examples(
    examples, transform_uri: str, layers, config: stack.PretrainConfig, workdir: str
) -> tuple[stack.PretrainResult, stack.LevelCache, int]:
    """Level 0 from the Examples artifact, then layer-wise pretraining.

    Returns:
        The result, the level-0 cache to draw report samples from (held out when
        there is an eval split), and the number of training images.
    """
    train_files = split_files(examples, TRAIN_SPLIT)
    if not train_files:
        raise ValueError(
            f"examples {examples.uri} have no {TRAIN_SPLIT!r} records: layer-wise pretraining "
            "trains on the train split"
        )
    os.makedirs(workdir, exist_ok=True)
    transform = load_image_transform(transform_uri)
    train = image_level(train_files, transform, os.path.join(workdir, "train_level0.npy"))
    eval_files = split_files(examples, EVAL_SPLIT)
    eval_count = count_images(eval_files)  # may be 0: few images, a high train_ratio
    held_out = (
        image_level(eval_files, transform, os.path.join(workdir, "eval_level0.npy"), eval_count)
        if eval_count
        else None
    )
    logging.info(
        "layer-wise pretraining on %d images (%d held out) of %s",
        len(train),
        len(held_out) if held_out is not None else 0,
        examples.uri,
    )
    result = stack.pretrain(train, layers, config, workdir, validation=held_out)
    return result, held_out if held_out is not None else train, len(train)


def write_reports(result: stack.PretrainResult, samples: np.ndarray, directory: str) -> None:
    """Loss curves, the reconstruction grid and the history JSON into `directory`."""
    tf.io.gfile.makedirs(directory)
    artifact_io.write_bytes(
        artifact_io.join(directory, spec.LOSS_PLOT_FILE), reports.loss_curves_png(result.layers)
    )
    rows = [
        (f"depth {d} ({result.layers[d - 1].name})", result.reconstruct(samples, d))
        for d in range(1, len(result.layers) + 1)
    ]
    artifact_io.write_bytes(
        artifact_io.join(directory, spec.GRID_FILE), reports.reconstruction_grid_png(samples, rows)
    )
    history = {"layers": [layer.to_dict() for layer in result.layers]}
    artifact_io.write_bytes(
        artifact_io.join(directory, spec.HISTORY_FILE), json.dumps(history, indent=2).encode()
    )


class Executor(base_executor.BaseExecutor):
    """Trains the encoder stack layer by layer and writes it as `<model.uri>/model.keras`."""

    def Do(self, input_dict, output_dict, exec_properties):  # noqa: N802 - TFX's name
        examples = artifact_utils.get_single_instance(input_dict[spec.EXAMPLES_KEY])
        transform_graph = artifact_utils.get_single_instance(input_dict[spec.TRANSFORM_GRAPH_KEY])
        model_artifact = artifact_utils.get_single_instance(output_dict[spec.MODEL_KEY])
        layers = stack.layers_from_json(exec_properties[spec.LAYERS_KEY])
        config = stack.PretrainConfig(
            epochs_per_layer=int(exec_properties[spec.EPOCHS_KEY]),
            batch_size=int(exec_properties[spec.BATCH_SIZE_KEY]),
            learning_rate=float(exec_properties[spec.LEARNING_RATE_KEY]),
            noise=exec_properties[spec.NOISE_KEY],
            noise_level=float(exec_properties[spec.NOISE_LEVEL_KEY]),
            seed=int(exec_properties[spec.SEED_KEY]),
        )
        workdir = tempfile.mkdtemp(prefix="layerwise-")
        try:
            result, samples, images = pretrain_from_examples(
                examples, transform_graph.uri, layers, config, workdir
            )
            path = model_io.save_keras(result.encoder, model_artifact.uri)
            write_reports(
                result,
                np.asarray(samples.array[:GRID_IMAGES]),
                artifact_io.join(model_artifact.uri, spec.REPORTS_DIR),
            )
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        model_artifact.set_string_custom_property(spec.PROP_ARCHITECTURE, result.encoder.name)
        model_artifact.set_int_custom_property(spec.PROP_LAYERS, len(result.encoder.layers))
        model_artifact.set_int_custom_property(spec.PROP_IMAGES, images)
        model_artifact.set_float_custom_property(spec.PROP_FINAL_LOSS, result.layers[-1].loss[-1])
        logging.info("LayerwisePretrainer wrote %s (%d layers)", path, len(result.encoder.layers))
