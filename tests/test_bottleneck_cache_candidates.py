"""cut_layer auto in BottleneckCache: every candidate in one forward pass, each cached
in its own namespace (the one a fixed cut at that layer uses), so adding a candidate
later computes only that candidate's entries."""

import numpy as np
import pytest
import tensorflow as tf

from components.bottleneck_cache import plan as plan_lib
from components.bottleneck_cache import spec, store
from components.common import testing
from components.common.artifact_io import content_id
from components.common.examples import IMAGE_ID_KEY, candidate_key
from components.common.testing import make_image, tiny_cnn, write_examples


def _run(run_job, tmp_path, name, examples, base, transform, cut_layer, candidates=()):
    return run_job(
        examples,
        base,
        transform,
        tmp_path / "cache",
        tmp_path / name,
        cut_layer=cut_layer,
        cut_candidates=candidates,
    )


def _features(out_dir) -> dict:
    """image_id -> the output record's features."""
    found = {}
    for split in ("train", "eval"):
        for feature in testing.read_output(out_dir, split):
            found[feature[IMAGE_ID_KEY].bytes_list.value[0].decode()] = feature
    return found


def _shards(cache_dir, segment) -> list:
    return sorted(tf.io.gfile.glob(store.shard_pattern(segment.namespace_dir(str(cache_dir)))))


@pytest.fixture(scope="module")
def world(tmp_path_factory, transform_dir, tiny_base, split_images):
    root = tmp_path_factory.mktemp("candidates")
    images = [make_image(i, seed=5) for i in range(12)]
    examples = write_examples(root / "examples", split_images(images))
    return root, examples, images


def test_each_candidate_is_cached_once_under_a_fixed_cuts_namespace(
    world, transform_dir, tiny_base, assert_close, run_job
):
    root, examples, images = world
    tmp = root / "a"
    plan, counts = _run(
        run_job, tmp, "first", examples, tiny_base, transform_dir, "auto", ["relu1", "conv2"]
    )
    assert plan.auto and [s.layer for s in plan.segments] == ["relu1", "conv2"]
    assert counts[spec.PROP_COMPUTED] == 12 and counts[spec.PROP_REUSED] == 0
    assert counts["vectors_computed@relu1"] == counts["vectors_computed@conv2"] == 12
    # each candidate's namespace is the one a fixed cut at that layer uses
    for segment in plan.segments:
        fixed = plan_lib.make_plan(str(tiny_base), str(transform_dir), segment.layer)
        assert segment.namespace == fixed.namespace
        assert len(_shards(tmp / "cache", segment)) == 1
    # the records hold each candidate's vector, equal to the layer's own output
    base = tiny_cnn()
    by_id = _features(tmp / "first")
    ids = [content_id(image) for image in images]
    for layer in ("relu1", "conv2"):
        expected = testing.direct_vectors(base, layer, "avg", images)
        got = np.stack([np.array(by_id[i][candidate_key(layer)].float_list.value) for i in ids])
        assert_close(got, expected)
    assert "bottleneck" not in by_id[ids[0]]

    # same candidates again: nothing computed
    _, counts = _run(
        run_job, tmp, "second", examples, tiny_base, transform_dir, "auto", ["relu1", "conv2"]
    )
    assert counts[spec.PROP_COMPUTED] == 0 and counts[spec.PROP_REUSED] == 12

    # a candidate added: only its entries are written
    plan3, counts = _run(
        run_job, tmp, "third", examples, tiny_base, transform_dir, "auto", ["relu1", "conv2", "gap"]
    )
    assert counts["vectors_computed@gap"] == 12
    assert counts["vectors_computed@relu1"] == counts["vectors_computed@conv2"] == 0
    assert [len(_shards(tmp / "cache", s)) for s in plan3.segments] == [1, 1, 1]

    # a fixed cut at a candidate reuses the auto run's vectors
    _, counts = _run(run_job, tmp, "fixed", examples, tiny_base, transform_dir, "conv2")
    assert counts[spec.PROP_COMPUTED] == 0 and counts[spec.PROP_REUSED] == 12
    fixed = _features(tmp / "fixed")
    for image_id, feature in fixed.items():
        np.testing.assert_array_equal(
            feature["bottleneck"].float_list.value,
            by_id[image_id][candidate_key("conv2")].float_list.value,
        )


def test_default_candidates_and_bad_ones(world, transform_dir, tiny_base):
    plan = plan_lib.make_plan(str(tiny_base), str(transform_dir), "auto")
    assert [s.layer for s in plan.segments] == ["relu1", "conv2", "logits"]
    assert plan.shape == (sum(s.dim for s in plan.segments),)
    with pytest.raises(ValueError, match="not layers of base model"):
        plan_lib.make_plan(
            str(tiny_base), str(transform_dir), "auto", cut_candidates=("nope", "conv2")
        )
    with pytest.raises(ValueError, match="only used with cut_layer 'auto'"):
        plan_lib.validate_parameters("conv2", 0, "avg", 4, "/tmp/c", ("relu1", "conv2"))
