"""What a smaller input size costs the photo demo: accuracy and forward time per size.

VGG16 was trained at 224x224; the demo's crops are 48-96 px. For each input size this
prints, side by side in one process:

- the forward throughput of the cut base (pretrained VGG16 up to ``--cut``, global
  average pooling) on pre-decoded, pre-resized images, batch 32, best of two passes,
  and its ratio to the smallest size's;
- a linear probe's test accuracy (scikit-learn logistic regression on the standardized
  pooled vectors of the demo's train split, scored on its eval split) for the
  pretrained weights and for random weights (mean over ``--random-seeds`` seeds).

The probe stands in for the head: it is deterministic, so sizes differ only by their
features. Run after ``tfx-transfer demo-data --out demo_data``::

    python -m bench.input_size --data demo_data --sizes 64,96,128,160,224
"""

from __future__ import annotations

import argparse
import glob
import os
import sys
import time
from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from components.common.artifact_io import content_id
from components.common.examples import TRAIN_SPLIT
from components.common.preprocessing import ImageSpec
from components.image_example_gen.ingest import assign_split
from pipeline.demo_photos import PHOTO_TRAIN_RATIO, VGG16_NOTOP_FILE


def load_task(photos: str) -> tuple[list[bytes], np.ndarray, np.ndarray]:
    """Encoded images, labels, and the train mask (the pipeline's split rule)."""
    images, labels, train = [], [], []
    for label, name in enumerate(sorted(os.listdir(photos))):
        for path in sorted(glob.glob(os.path.join(photos, name, "*"))):
            with open(path, "rb") as f:
                data = f.read()
            images.append(data)
            labels.append(label)
            train.append(assign_split(content_id(data), PHOTO_TRAIN_RATIO) == TRAIN_SPLIT)
    return images, np.array(labels), np.array(train)


def probe(vectors: np.ndarray, labels: np.ndarray, train: np.ndarray) -> float:
    from sklearn.linear_model import LogisticRegression

    mean, std = vectors[train].mean(0), vectors[train].std(0) + 1e-6
    scaled = (vectors - mean) / std
    model = LogisticRegression(max_iter=2000).fit(scaled[train], labels[train])
    return float(model.score(scaled[~train], labels[~train]))


def cut_model(weights: str, size: int, cut: str, seed: int = 0) -> keras.Model:
    keras.utils.set_random_seed(seed)
    base = keras.applications.VGG16(
        include_top=False, weights=weights or None, input_shape=(size, size, 3)
    )
    pooled = keras.layers.GlobalAveragePooling2D()(base.get_layer(cut).output)
    return keras.Model(base.input, pooled)


def forward(model: keras.Model, pixels: np.ndarray, batch: int = 32) -> tuple[np.ndarray, float]:
    """The pooled vectors and the best of two passes' images per second."""
    best = float("inf")
    for _ in range(2):
        start = time.perf_counter()
        out = np.concatenate(
            [model(pixels[i : i + batch], training=False) for i in range(0, len(pixels), batch)]
        )
        best = min(best, time.perf_counter() - start)
    return out, len(pixels) / best


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.input_size", description=__doc__)
    parser.add_argument("--data", default="demo_data", help="tfx-transfer demo-data's folder")
    parser.add_argument("--sizes", default="64,96,128,160,224")
    parser.add_argument("--cut", default="block4_pool")
    parser.add_argument("--random-seeds", type=int, default=3)
    args = parser.parse_args(argv)
    weights = os.path.join(args.data, "weights", VGG16_NOTOP_FILE)
    photos = os.path.join(args.data, "photos")
    if not os.path.exists(weights) or not os.path.isdir(photos):
        print(f"{args.data}: run `tfx-transfer demo-data --out {args.data}` first", file=sys.stderr)
        return 2
    images, labels, train = load_task(photos)
    print(f"{len(images)} images ({int(train.sum())} train), VGG16 up to {args.cut} + avg pool")
    print("| size | img/s (forward) | time vs smallest | probe, pretrained | probe, random |")
    print("|---:|---:|---:|---:|---:|")
    smallest = None
    for size in (int(s) for s in args.sizes.split(",")):
        spec = ImageSpec(height=size, width=size, scaling="caffe")
        pixels = np.concatenate(
            [
                spec.preprocess(tf.constant(images[i : i + 64])).numpy()
                for i in range(0, len(images), 64)
            ]
        )
        vectors, rate = forward(cut_model(weights, size, args.cut), pixels)
        pretrained = probe(vectors, labels, train)
        random = [
            probe(forward(cut_model("", size, args.cut, seed), pixels)[0], labels, train)
            for seed in range(args.random_seeds)
        ]
        smallest = smallest or rate
        print(
            f"| {size} | {rate:.1f} | {smallest / rate:.2f}x | {pretrained:.3f} "
            f"| {np.mean(random):.3f} +- {np.std(random, ddof=1) if len(random) > 1 else 0:.3f} |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
