"""The bundled demo data: real digits, deterministic, never overwrites user data."""

import os

import numpy as np
import pytest
from PIL import Image

from pipeline.demo_data import SOURCE_CLASSES, TARGET_CLASSES, write_demo_data


def test_demo_data_has_disjoint_tasks_and_few_target_labels(tmp_path):
    counts = write_demo_data(str(tmp_path / "d"), target_per_class=7)
    assert counts == {
        "source": 901,
        "target": 35,
        "unlabelled": 861,
        "photos_train": 50,
        "photos_eval": 250,
        "weights": 1,
    }
    assert sorted(os.listdir(tmp_path / "d/source")) == [str(c) for c in SOURCE_CLASSES]
    assert sorted(os.listdir(tmp_path / "d/target")) == [str(c) for c in TARGET_CLASSES]
    for c in TARGET_CLASSES:
        assert len(os.listdir(tmp_path / f"d/target/{c}")) == 7
    first = sorted(os.listdir(tmp_path / "d/target/5"))[0]
    img = Image.open(tmp_path / "d/target/5" / first)
    assert (img.format, img.mode, img.size) == ("PNG", "L", (8, 8))
    assert np.asarray(img).max() > 0


def test_demo_data_is_deterministic_and_rewrites_only_its_own_folder(tmp_path):
    write_demo_data(str(tmp_path / "d"), target_per_class=3)
    listing = sorted(os.listdir(tmp_path / "d/target/6"))
    write_demo_data(str(tmp_path / "d"), target_per_class=3)
    assert sorted(os.listdir(tmp_path / "d/target/6")) == listing
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine/photo.jpg").write_bytes(b"x")
    with pytest.raises(FileExistsError, match="not demo data"):
        write_demo_data(str(tmp_path / "mine"))
    assert (tmp_path / "mine/photo.jpg").read_bytes() == b"x"
