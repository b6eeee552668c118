"""bench.transfer_table on a tiny real run: ImageExampleGen's and BottleneckCache's
executors on two colour classes, the tiny CNN as the "pretrained" base."""

import io
import json

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from bench import transfer_table as table
from components.common import testing
from components.common.artifact_io import read_records, split_files
from components.common.examples import IMAGE_ID_KEY
from components.trainer.config import TrainerConfig

SEEDS = (0, 1)
CONFIG = TrainerConfig(
    image=testing.TINY_SPEC,
    cut_layer="auto",
    cut_candidates=("relu1", "conv2"),
    pooling="avg",
    learning_rate=0.01,
    batch_size=4,
    epochs=3,
    early_stopping_patience=2,
    fine_tune_epochs=1,
)


def _write_folder(root) -> None:
    """Two classes (reddish, bluish), 12 noisy images each, PNG and JPEG."""
    rng = np.random.default_rng(0)
    for label, name in enumerate(("blue", "red")):
        (root / name).mkdir(parents=True)
        for i in range(12):
            pixels = rng.integers(0, 120, (20, 20, 3), np.uint8)
            pixels[..., 2 - 2 * label] += 120
            buffer = io.BytesIO()
            Image.fromarray(pixels).save(buffer, "PNG" if i % 2 else "JPEG")
            (root / name / f"{i}.{'png' if i % 2 else 'jpg'}").write_bytes(buffer.getvalue())


def _ids(files) -> list[bytes]:
    return [
        tf.train.Example.FromString(r.numpy()).features.feature[IMAGE_ID_KEY].bytes_list.value[0]
        for r in read_records(files)
    ]


@pytest.fixture(scope="module")
def world(tmp_path_factory, run_image_example_gen, run_cache, transform_dir, tiny_base):
    from tfx.types import standard_artifacts

    root = tmp_path_factory.mktemp("transfer_table")
    _write_folder(root / "images")
    examples, _, _ = run_image_example_gen(root, root / "images")
    transform = testing.artifact(standard_artifacts.TransformGraph, transform_dir)
    base = testing.artifact(standard_artifacts.Model, tiny_base)
    bottlenecks = run_cache(
        root,
        (examples, transform, base, 24),
        "bottlenecks",
        cut_layer="auto",
        cut_candidates='["relu1", "conv2"]',
    )
    run = table.Run(examples.uri, transform_dir, tiny_base, bottlenecks.uri, ("blue", "red"))
    results = table.run_arms(
        CONFIG,
        run,
        SEEDS,
        str(root / "work"),
        generic_cut="relu1",
        top_cut="conv2",
        fine_tune_layers=1,
        scratch_base="small_cnn",
        val_share=0.5,
        random_base=lambda seed: testing.tiny_cnn(seed + 100),
        extra_depths=(1,),
    )
    return {"root": root, "run": run, "results": results}


def test_every_arm_has_a_test_accuracy_per_seed(world):
    results = world["results"]
    assert list(results) == [*table.ARMS, "fine_tune_k1"]
    for arm, runs in results.items():
        assert [r.seed for r in runs] == list(SEEDS), arm
        assert all(0.0 <= r.accuracy <= 1.0 for r in runs), arm
    assert all(len(r.epochs) == 2 for r in results[table.FINE_TUNED])  # head, fine-tune
    assert all(len(r.epochs) == 1 for r in results[table.GENERIC])
    assert all(r.cut == "relu1" for r in results[table.GENERIC])
    assert all(r.cut == "conv2" for r in results[table.TOP])
    assert all(r.cut in ("relu1", "conv2") for r in results[table.AUTO])
    # fine_tune auto at the relu1 cut (one unfreezable layer, conv1): off or k=1, measured
    for r in results[table.DEPTH_AUTO]:
        assert r.depth in (0, 1) and r.selection_seconds > 0
        assert len(r.epochs) == (2 if r.depth else 1)
    assert all(r.depth == 1 and len(r.epochs) == 2 for r in results["fine_tune_k1"])


def test_third_split_divides_eval_into_disjoint_val_and_test(world, tmp_path):
    run = world["run"]
    files = table.split_eval(run.examples, str(tmp_path / "s"), 0.5)
    val, test, train = _ids(files["val"]), _ids(files["test"]), _ids(files["train"])
    eval_ids = _ids(split_files(f"{run.examples}/Split-eval"))
    assert sorted(val + test) == sorted(eval_ids)
    assert val and test and not set(val) & set(test)
    assert not set(test) & set(train)
    # the same rule for the bottleneck records: the same images land in test
    cached = table.split_eval(run.bottlenecks, str(tmp_path / "b"), 0.5)
    assert sorted(_ids(cached["test"])) == sorted(test)


def test_summary_pairs_each_arm_with_the_generic_cut(world, tmp_path):
    results = world["results"]
    summary = table.summarize(results, {arm: arm for arm in results})
    generic = [r.accuracy for r in results[table.GENERIC]]
    for arm in [a for a in results if a != table.GENERIC]:
        paired = summary[arm]["minus_generic"]["per_seed"]
        expected = [r.accuracy - g for r, g in zip(results[arm], generic, strict=True)]
        np.testing.assert_allclose(paired, expected)
    text = table.format_table(summary, {"train": 12, "val": 6, "test": 6}, SEEDS)
    for arm in results:
        assert f"| {arm} |" in text
    assert f"- {table.AUTO} chose, per seed: " in text
    assert f"- {table.DEPTH_AUTO} chose, per seed: " in text
    assert summary[table.DEPTH_AUTO]["depths"] == [r.depth for r in results[table.DEPTH_AUTO]]
    assert "6 test (reported; never trained or stopped on)" in text
    json.dumps(summary)  # JSON-able


def test_missing_run_says_to_run_the_demo(tmp_path):
    with pytest.raises(table.MissingArtifactsError, match="make demo"):
        table.find_run(str(tmp_path / "none.sqlite"), "p", "")
