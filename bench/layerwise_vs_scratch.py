"""Layer-wise pretraining vs scratch, with 5, 10 and 20 labels per class.

Does greedy layer-wise autoencoder pretraining on unlabelled images help when labels
are few? On the bundled digits data (``tfx-transfer demo-data``): the encoder is
pretrained on the 646 unlabelled images (digits 5-9, no labels), exactly as the
pipeline's LayerwisePretrainer does (``stack.pretrain`` with the stack, epochs, noise
and learning rate of the config), then three arms train on the same few labels and are
scored on the same held-out target images:

- **layerwise + fine-tune**: the pretrained encoder cut where the config cuts it, a
  new head (the config's head) trained on the frozen features, then every layer
  fine-tuned at ``fine_tune_lr_factor`` x the head's rate;
- **layerwise, frozen**: the same, without the fine-tuning phase (what the pipeline's
  Trainer does with ``fine_tune: auto`` when fine-tuning does not win on its
  validation fold of the train split by more than one standard error);
- **scratch**: the same network (``stack.build_encoder``: same layers, fresh seeded
  init) and head, every layer trained on the labels for the same total epochs at the
  head's learning rate.

Per seed and labels-per-class n: n labelled images per class are drawn from the target
folder (50 per class) and the remaining 50 - n per class are the test set. No early
stopping and no model selection on the test images: every arm trains for a fixed
number of epochs (``--epochs`` head/scratch, ``--fine-tune-epochs`` more for
fine-tuning; scratch gets both). Images go through ``ImageSpec.preprocess``, the
pipeline's one preprocessing.

    python -m bench.layerwise_vs_scratch --config pipeline/configs/demo_layerwise.yaml \
        --seeds 5 --out docs/LAYERWISE.md
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
import tempfile
import time
from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from components.common import model_surgery
from components.layerwise_pretrainer import stack
from pipeline.config import KIND_LAYERWISE, PipelineConfig, load_config

LABELS_PER_CLASS = (5, 10, 20)
ARMS = ("layerwise_ft", "layerwise_frozen", "scratch")
ARM_TITLES = {
    "layerwise_ft": "layer-wise + fine-tune",
    "layerwise_frozen": "layer-wise, frozen",
    "scratch": "scratch",
}


def _read_folder(root: str, image_spec) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(preprocessed images, labels, class names) of a folder; label -1 without classes."""
    paths, labels, classes = (
        [],
        [],
        sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d))),
    )
    if classes:
        for label, name in enumerate(classes):
            for file in sorted(os.listdir(os.path.join(root, name))):
                paths.append(os.path.join(root, name, file))
                labels.append(label)
    else:
        paths = [os.path.join(root, f) for f in sorted(os.listdir(root))]
        labels = [-1] * len(paths)
    encoded = tf.constant([tf.io.read_file(p).numpy() for p in paths])
    images = np.concatenate(
        [image_spec.preprocess(encoded[i : i + 256]).numpy() for i in range(0, len(paths), 256)]
    )
    return images, np.asarray(labels, np.int64), classes


@dataclasses.dataclass(frozen=True)
class Setup:
    """What the config says about the network and its training."""

    layers: list
    pretrain: stack.PretrainConfig
    cut_layer: str
    drop_top_layers: int
    pooling: str
    head: model_surgery.HeadSpec
    learning_rate: float
    batch_size: int
    fine_tune_lr_factor: float


def setup_from_config(config: PipelineConfig, num_classes: int) -> Setup:
    base = config.base_model
    if base is None or base.kind != KIND_LAYERWISE:
        raise ValueError("the config's base_model.kind must be layerwise_pretrain")
    layerwise = base.layerwise
    return Setup(
        layers=stack.parse_layers(layerwise.conv_block_dicts(), layerwise.dense_units),
        pretrain=stack.PretrainConfig(
            epochs_per_layer=layerwise.epochs_per_layer,
            batch_size=layerwise.batch_size,
            learning_rate=layerwise.learning_rate,
            noise=layerwise.noise,
            noise_level=layerwise.noise_level,
            seed=base.seed,
        ),
        cut_layer=base.cut_layer,
        drop_top_layers=base.drop_top_layers,
        pooling=base.pooling,
        head=model_surgery.HeadSpec(
            num_classes=num_classes,
            hidden_units=config.training.hidden_units,
            dropout=config.training.dropout,
        ),
        learning_rate=config.training.learning_rate,
        batch_size=config.training.batch_size,
        fine_tune_lr_factor=config.training.fine_tune_lr_factor,
    )


def sample_labels(labels: np.ndarray, per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, test indices): per_class per class for training, the rest test."""
    rng = np.random.default_rng(seed)
    train = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        if len(members) <= per_class:
            raise ValueError(f"class {label} has {len(members)} images; need > {per_class}")
        train.extend(rng.choice(members, per_class, replace=False))
    train = np.sort(np.asarray(train))
    return train, np.setdiff1d(np.arange(len(labels)), train)


def _fit(model, x, y, learning_rate, epochs, batch_size, seed):
    keras.utils.set_random_seed(seed)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    model.fit(x, y, batch_size=batch_size, epochs=epochs, shuffle=True, verbose=0)


def _accuracy(model, x, y) -> float:
    probabilities = model.predict(x, batch_size=256, verbose=0)
    return float(np.mean(np.argmax(probabilities, axis=1) == y))


def _classifier(encoder: keras.Model, setup: Setup) -> tuple[keras.Model, keras.Model]:
    extractor = model_surgery.feature_extractor(
        encoder, setup.cut_layer, setup.drop_top_layers, setup.pooling
    )
    head = model_surgery.build_head(extractor.output.shape[1:], setup.head)
    image = keras.Input(encoder.input.shape[1:], name="image")
    return extractor, keras.Model(image, head(extractor(image)), name="classifier")


def run_arms(
    encoder: keras.Model,
    setup: Setup,
    data: tuple[np.ndarray, np.ndarray],
    split: tuple[np.ndarray, np.ndarray],
    epochs: int,
    fine_tune_epochs: int,
    seed: int,
) -> dict[str, float]:
    """Test accuracy of the three arms on one labelled sample."""
    images, labels = data
    train, test = split
    x, y, x_test, y_test = images[train], labels[train], images[test], labels[test]
    results = {}
    pretrained = keras.models.clone_model(encoder)
    pretrained.set_weights(encoder.get_weights())
    extractor, classifier = _classifier(pretrained, setup)
    _fit(classifier, x, y, setup.learning_rate, epochs, setup.batch_size, seed)
    results["layerwise_frozen"] = _accuracy(classifier, x_test, y_test)
    extractor.trainable = True  # every layer, at a tenth of the rate (no BN here)
    fine_tune_rate = setup.learning_rate * setup.fine_tune_lr_factor
    _fit(classifier, x, y, fine_tune_rate, fine_tune_epochs, setup.batch_size, seed)
    results["layerwise_ft"] = _accuracy(classifier, x_test, y_test)
    fresh = stack.build_encoder(setup.layers, encoder.input.shape[1:], seed=10_000 + seed)
    extractor, classifier = _classifier(fresh, setup)
    extractor.trainable = True
    _fit(classifier, x, y, setup.learning_rate, epochs + fine_tune_epochs, setup.batch_size, seed)
    results["scratch"] = _accuracy(classifier, x_test, y_test)
    return results


def format_table(results: dict[int, dict[str, list[float]]], seeds: int) -> str:
    lines = [
        f"| labels per class | {' | '.join(ARM_TITLES[a] for a in ARMS)} "
        "| fine-tuned beats scratch |",
        "|---" * (len(ARMS) + 2) + "|",
    ]
    for n, arms in sorted(results.items()):
        cells = [
            f"{np.mean(arms[a]):.3f} ± {np.std(arms[a], ddof=1 if seeds > 1 else 0):.3f}"
            for a in ARMS
        ]
        wins = sum(f > s for f, s in zip(arms["layerwise_ft"], arms["scratch"], strict=True))
        lines.append(f"| {n} | {' | '.join(cells)} | {wins} of {seeds} seeds |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="pipeline/configs/demo_layerwise.yaml")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--labels", type=int, nargs="+", default=list(LABELS_PER_CLASS))
    parser.add_argument("--epochs", type=int, default=60, help="head / scratch epochs")
    parser.add_argument("--fine-tune-epochs", type=int, default=30)
    parser.add_argument("--out", default="", help="also write the table (markdown) here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    config = load_config(args.config)
    layerwise = config.base_model.layerwise if config.base_model else None
    if layerwise is None or not layerwise.data_root:
        raise SystemExit("the config needs base_model.layerwise.data_root (unlabelled images)")
    spec = config.image.image_spec()
    start = time.time()
    unlabelled, _, _ = _read_folder(layerwise.data_root, spec)
    images, labels, classes = _read_folder(config.data.root, spec)
    setup = setup_from_config(config, len(classes))
    per_class = int(np.min(np.bincount(labels)))
    logging.info(
        "%d unlabelled images, %d labelled target images in %d classes",
        len(unlabelled),
        len(images),
        len(classes),
    )
    results: dict[int, dict[str, list[float]]] = {n: {a: [] for a in ARMS} for n in args.labels}
    for i in range(args.seeds):
        seed = config.base_model.seed + i
        with tempfile.TemporaryDirectory() as work:
            level0 = stack.fill_from_batches(
                os.path.join(work, "level0.npy"),
                len(unlabelled),
                unlabelled.shape[1:],
                [unlabelled],
            )
            pretrain = dataclasses.replace(setup.pretrain, seed=seed)
            encoder = stack.pretrain(level0, setup.layers, pretrain, work).encoder
        for n in args.labels:
            split = sample_labels(labels, n, seed=1000 * n + seed)
            accuracy = run_arms(
                encoder, setup, (images, labels), split, args.epochs, args.fine_tune_epochs, seed
            )
            for arm, value in accuracy.items():
                results[n][arm].append(value)
            logging.info(
                "seed %d, %d labels/class: %s",
                seed,
                n,
                ", ".join(f"{a} {v:.3f}" for a, v in accuracy.items()),
            )
    table = format_table(results, args.seeds)
    command = "python -m bench.layerwise_vs_scratch " + " ".join(argv or sys.argv[1:])
    footer = (
        f"\n\n{args.seeds} seeds; test = the other {per_class} - n target images per class; "
        f"{time.time() - start:.0f} s. Command: `{command.strip()}`"
    )
    print(table + footer)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(table + footer + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
