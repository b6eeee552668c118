"""The Trainer with cut_layer auto, on BottleneckCache's candidate records: it selects on
the train split only, trains and exports the chosen cut, and writes the table."""

import json
import os

import pytest

from components.common import testing
from components.common.testing import make_image, write_examples
from components.trainer import train as trainer
from components.trainer.config import TrainerConfig

CANDIDATES = ("relu1", "conv2")
CONFIG = TrainerConfig(
    image=testing.TINY_SPEC,
    cut_layer="auto",
    cut_candidates=CANDIDATES,
    pooling="avg",
    learning_rate=0.05,
    batch_size=4,
    epochs=2,
    early_stopping_patience=0,
)


def _cached(run_job, root, name, records, tiny_base, transform_dir) -> str:
    examples = write_examples(root / f"examples_{name}", records)
    out = root / f"bottlenecks_{name}"
    run_job(
        examples,
        tiny_base,
        transform_dir,
        root / "cache",
        out,
        cut_layer="auto",
        cut_candidates=CANDIDATES,
    )
    return str(out)


@pytest.fixture(scope="module")
def world(tmp_path_factory, transform_dir, tiny_base, split_images, run_job):
    root = tmp_path_factory.mktemp("cut_auto")
    records = split_images([make_image(i, seed=8) for i in range(24)])
    other_eval = split_images([make_image(i, seed=9) for i in range(24)])["eval"]
    first = _cached(run_job, root, "a", records, tiny_base, transform_dir)
    second = _cached(
        run_job,
        root,
        "b",
        {"train": records["train"], "eval": other_eval},
        tiny_base,
        transform_dir,
    )
    return root, first, second, tiny_base


def _train(bottlenecks, base):
    return trainer.train(
        CONFIG,
        ["class0", "class1"],
        str(base),
        [os.path.join(bottlenecks, "Split-train", "*")],
        [os.path.join(bottlenecks, "Split-eval", "*")],
    )


def test_selects_on_train_only_and_exports_the_chosen_cut(world, tmp_path):
    _, first, second, base = world
    result = _train(first, base)
    selection = result.cut_selection
    assert selection is not None and selection.chosen in CANDIDATES
    assert [s.layer for s in selection.scores] == list(CANDIDATES)
    assert result.cut_layer == selection.chosen
    # the extractor ends at the chosen layer: no layer above it is in the model
    names = [layer.name for layer in result.extractor.layers]
    assert selection.chosen in names
    if selection.chosen == "relu1":
        assert "conv2" not in names
    # another eval split, the same train split: the same table (eval is never read)
    again = _train(second, base).cut_selection
    assert again.to_dict()["candidates"] == selection.to_dict()["candidates"]

    exported = trainer.export(
        result,
        CONFIG,
        ["class0", "class1"],
        str(tmp_path / "model" / "Format-Serving"),
        [os.path.join(first, "Split-eval", "*")],
    )
    table = json.loads(open(exported.reports["cut_selection"]).read())
    assert table["chosen"] == selection.chosen
    assert [c["layer"] for c in table["candidates"]] == list(CANDIDATES)
    assert open(exported.reports["cut_selection_png"], "rb").read(4) == b"\x89PNG"
    metrics = json.loads(open(exported.reports["metrics"]).read())
    assert metrics["cut_layer"] == selection.chosen


def test_records_without_the_candidates_are_named(
    world, tmp_path, transform_dir, tiny_base, run_job, make_record
):
    _, _, _, base = world
    images = [make_image(i, seed=11) for i in range(7)]
    records = {"train": [make_record(image, i % 2) for i, image in enumerate(images[:6])]}
    records["eval"] = [make_record(images[6], 0)]
    examples = write_examples(tmp_path / "ex", records)
    fixed = tmp_path / "fixed"
    run_job(examples, tiny_base, transform_dir, tmp_path / "cache", fixed, cut_layer="relu1")
    with pytest.raises(ValueError, match="bottleneck@relu1.*same cut_layer and cut_candidates"):
        _train(str(fixed), base)
