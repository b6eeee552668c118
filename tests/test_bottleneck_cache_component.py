"""Tests of BottleneckCache's executor and component on artifacts under a temp dir.

The input examples are ImageExampleGen's real output on its hostile test folder (every
accepted format: 8/16-bit PNG, palette, grey, RGBA, CMYK JPEG, GIF, BMP); the
transform graph is preprocessing_fn's, the base a tiny CNN saved as model.keras. The
run with DirectRunner's multi_processing mode is in test_bottleneck_cache_multiprocess.py
(its worker processes take a minute to start on two cores).
"""

import json
import os

import numpy as np
import pytest
import tensorflow as tf
from tfx import types
from tfx.types import artifact_utils, standard_artifacts

from components.bottleneck_cache import component, executor, spec
from components.bottleneck_cache import plan as plan_lib
from components.common import examples as contract
from components.common.examples import (
    IMAGE_ID_KEY,
    IMAGE_KEY,
    LABEL_KEY,
    LABEL_NAME_KEY,
    SPLITS,
)
from components.common.testing import (
    TINY_DIM,
    artifact,
    build_hostile_root,
    parse_split,
    save_base,
    tiny_cnn,
    vectors_by_id,
    write_examples,
)

DIM = TINY_DIM  # tiny_cnn's relu1 has 4 channels, pooled


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, run_image_example_gen, write_transform):
    """(examples, transform_graph, base_model) artifacts, and the ingested image count."""
    root = tmp_path_factory.mktemp("inputs")
    image_root, expected = build_hostile_root(root)
    examples, _, _ = run_image_example_gen(root, image_root)
    transform = artifact(standard_artifacts.TransformGraph, write_transform(root / "transform"))
    base = artifact(standard_artifacts.Model, save_base(tiny_cnn(), root / "base"))
    return examples, transform, base, len(expected["valid"])


@pytest.fixture(scope="module")
def first_run(tmp_path_factory, inputs, run_cache):
    tmp_path = tmp_path_factory.mktemp("first_run")
    return tmp_path, run_cache(tmp_path, inputs, "first")


def test_executor_writes_standard_examples_with_bottlenecks(first_run, inputs):
    tmp_path, output = first_run
    examples, transform, base, ingested = inputs
    assert artifact_utils.decode_split_names(output.split_names) == list(SPLITS)
    inputs_by_id = {}
    for split in SPLITS:
        for record in tf.data.TFRecordDataset(
            tf.io.gfile.glob(os.path.join(examples.uri, f"Split-{split}", "*")), "GZIP"
        ):
            feature = tf.train.Example.FromString(record.numpy()).features.feature
            inputs_by_id[feature[IMAGE_ID_KEY].bytes_list.value[0]] = (split, feature)
    total = 0
    for split in SPLITS:
        parsed = parse_split(output, split)
        total += len(parsed[IMAGE_ID_KEY])
        assert output.get_int_custom_property(f"{split}_examples") == len(parsed[IMAGE_ID_KEY])
        for i, image_id in enumerate(parsed[IMAGE_ID_KEY]):
            input_split, feature = inputs_by_id[image_id]
            assert input_split == split
            assert parsed[IMAGE_KEY][i] == feature[IMAGE_KEY].bytes_list.value[0]
            assert parsed[LABEL_KEY][i] == feature[LABEL_KEY].int64_list.value[0]
            assert parsed[LABEL_NAME_KEY][i] == feature[LABEL_NAME_KEY].bytes_list.value[0]
        assert np.all(np.isfinite(parsed[contract.BOTTLENECK_KEY]))
    assert total == ingested == len(inputs_by_id)

    plan = plan_lib.make_plan(base.uri, transform.uri, cut_layer="relu1")
    expected_properties = {
        spec.PROP_COMPUTED: ingested,
        spec.PROP_REUSED: 0,
        spec.PROP_FAILED: 0,
        spec.PROP_SHARDS_SKIPPED: 0,
        spec.PROP_DIM: DIM,
    }
    for name, value in expected_properties.items():
        assert output.get_int_custom_property(name) == value, name
    assert json.loads(output.get_string_custom_property(spec.PROP_SHAPE)) == [DIM]
    assert output.get_string_custom_property(spec.PROP_NAMESPACE) == plan.namespace
    assert output.get_string_custom_property(spec.PROP_CUT_LAYER) == "relu1"
    assert output.get_string_custom_property(spec.PROP_POOLING) == "avg"
    base_fp = output.get_string_custom_property(spec.PROP_BASE_FINGERPRINT)
    transform_fp = output.get_string_custom_property(spec.PROP_TRANSFORM_FINGERPRINT)
    assert (base_fp, transform_fp) == (plan.base_fingerprint, plan.transform_fingerprint)
    with open(os.path.join(output.uri, spec.COUNTS_FILE)) as f:
        assert json.load(f)[spec.PROP_COMPUTED] == ingested
    assert os.path.getsize(os.path.join(output.uri, spec.FAILED_FILE)) == 0
    namespace_dir = plan.namespace_dir(str(tmp_path / "cache"))
    assert sorted(os.listdir(namespace_dir))[-1] == plan_lib.NAMESPACE_FILE
    assert len(os.listdir(namespace_dir)) == 2  # namespace.json and one shard


def test_second_execution_reuses_every_vector(first_run, inputs, run_cache):
    tmp_path, first = first_run
    second = run_cache(tmp_path, inputs, "second", drop_top_layers=3, **{spec.CUT_LAYER_KEY: ""})
    # The same cut reached another way: conv1 bn1 relu1 | conv2 gap logits.
    assert second.get_string_custom_property(spec.PROP_CUT_LAYER) == "relu1"
    assert second.get_int_custom_property(spec.PROP_COMPUTED) == 0
    assert second.get_int_custom_property(spec.PROP_REUSED) == inputs[3]
    expected = vectors_by_id(first)
    got = vectors_by_id(second)
    assert got.keys() == expected.keys()
    for image_id, vector in expected.items():
        np.testing.assert_array_equal(got[image_id], vector)


def test_executor_raises_when_every_record_fails(tmp_path, inputs, make_record, run_cache):
    _, transform, base, _ = inputs
    bad = {split: [make_record(b"not an image %d" % i) for i in range(2)] for split in SPLITS}
    examples = artifact(standard_artifacts.Examples, write_examples(tmp_path / "bad", bad))
    examples.split_names = artifact_utils.encode_split_names(list(SPLITS))
    with pytest.raises(ValueError, match="every record failed \\(4\\):.*Unknown image file format"):
        run_cache(tmp_path, (examples, transform, base, 0), "out")
    failed = os.path.join(tmp_path, "out", spec.FAILED_FILE)
    with open(failed) as f:
        assert len(f.read().splitlines()) == 4


@pytest.mark.parametrize(
    "overrides, error, message",
    [
        (
            {spec.POOLING_KEY: "mean"},
            ValueError,
            r"pooling: 'mean' is not allowed; choose one of: avg, max",
        ),
        ({spec.BATCH_SIZE_KEY: -2}, ValueError, "batch_size must be an integer >= 1"),
        ({spec.CUT_LAYER_KEY: "nope"}, ValueError, r"'nope' is not a layer.*names: image, conv1"),
        ({spec.DROP_TOP_LAYERS_KEY: 50, spec.CUT_LAYER_KEY: ""}, ValueError, ">= 0 and <= 5"),
    ],
)
def test_executor_rejects_bad_parameters_before_running(
    tmp_path, inputs, run_cache, overrides, error, message
):
    with pytest.raises(error, match=message):
        run_cache(tmp_path, inputs, "out", **overrides)
    assert not os.path.exists(tmp_path / "cache")  # rejected before anything is written


def test_executor_names_the_missing_model_file(tmp_path, inputs, run_cache):
    examples, transform, _, _ = inputs
    (tmp_path / "empty_model").mkdir()
    empty = artifact(standard_artifacts.Model, tmp_path / "empty_model")
    with pytest.raises(FileNotFoundError, match="empty_model/model.keras"):
        run_cache(tmp_path, (examples, transform, empty, 0), "out")


def test_a_corrupt_cache_shard_is_quarantined_counted_and_summarized(
    tmp_path, inputs, run_cache, capsys
):
    from components.bottleneck_cache import store
    from pipeline import cli
    from pipeline.run_summary import RunSummary

    _, transform, base, ingested = inputs
    run_cache(tmp_path, inputs, "first")
    namespace_dir = plan_lib.make_plan(base.uri, transform.uri, cut_layer="relu1").namespace_dir(
        str(tmp_path / "cache")
    )
    (shard,) = tf.io.gfile.glob(store.shard_pattern(namespace_dir))
    with open(shard, "rb") as f:
        torn = f.read()[:-5]
    with open(shard, "wb") as f:
        f.write(torn)

    second = run_cache(tmp_path, inputs, "second")
    assert second.get_int_custom_property(spec.PROP_SHARDS_SKIPPED) == 1
    assert second.get_int_custom_property(spec.PROP_COMPUTED) == ingested
    assert second.get_int_custom_property(spec.PROP_REUSED) == 0
    name = os.path.basename(shard)
    quarantine = store.quarantine_dir(namespace_dir)
    assert sorted(os.listdir(quarantine)) == [name, f"{name}{store.REASON_SUFFIX}"]
    with open(os.path.join(quarantine, name), "rb") as f:
        assert f.read() == torn
    summary = RunSummary(
        "run", {"BottleneckCache": "COMPLETE"}, {"BottleneckCache": [second.mlmd_artifact]}
    )
    assert summary.cache_counts[spec.PROP_SHARDS_SKIPPED] == 1
    cli._print_counts("bottleneck cache", summary.cache_counts, "COMPLETE")
    assert f"{spec.PROP_SHARDS_SKIPPED} 1" in capsys.readouterr().out

    third = run_cache(tmp_path, inputs, "third")
    assert third.get_int_custom_property(spec.PROP_SHARDS_SKIPPED) == 0
    assert third.get_int_custom_property(spec.PROP_COMPUTED) == 0
    assert third.get_int_custom_property(spec.PROP_REUSED) == ingested
    assert sorted(os.listdir(quarantine)) == [name, f"{name}{store.REASON_SUFFIX}"]


# --- component -------------------------------------------------------------------------


def _channels() -> dict:
    return {
        "examples": types.Channel(type=standard_artifacts.Examples),
        "transform_graph": types.Channel(type=standard_artifacts.TransformGraph),
        "base_model": types.Channel(type=standard_artifacts.Model),
    }


def test_component_properties_reach_the_executor_and_beam_args_stay_per_instance():
    """What the executor makes of the component's exec properties (same keys on both
    sides, the component's defaults the executor's), and Beam args on one instance."""
    cache = component.BottleneckCache(
        **_channels(), cache_dir="/tmp/bottlenecks", drop_top_layers=3, pooling="max", batch_size=8
    )
    assert cache.outputs[spec.BOTTLENECKS_KEY].type is standard_artifacts.Examples
    assert cache.inputs[spec.TRANSFORM_GRAPH_KEY].type is standard_artifacts.TransformGraph
    assert cache.executor_spec.executor_class is executor.Executor
    # A key the two sides spelled differently would come back as the executor's default.
    assert executor._parameters(cache.exec_properties) == {
        spec.CACHE_DIR_KEY: "/tmp/bottlenecks",
        spec.CUT_LAYER_KEY: "",
        spec.DROP_TOP_LAYERS_KEY: 3,
        spec.POOLING_KEY: "max",
        spec.BATCH_SIZE_KEY: 8,
        spec.CUT_CANDIDATES_KEY: (),
    }
    plain = component.BottleneckCache(**_channels(), cache_dir="/tmp/c")
    assert executor._parameters(plain.exec_properties) == executor._parameters(
        {spec.CACHE_DIR_KEY: "/tmp/c"}
    )

    assert cache.with_beam_pipeline_args(["--direct_num_workers=2"]) is cache
    assert cache.executor_spec.beam_pipeline_args == ["--direct_num_workers=2"]
    # Added to this component's executor spec, not to the class's shared one.
    assert plain.executor_spec.beam_pipeline_args == []
    assert component.BottleneckCache.EXECUTOR_SPEC.beam_pipeline_args == []


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"cache_dir": ""}, "cache_dir must be a non-empty folder path"),
        (
            {"pooling": "average"},
            r"pooling: '(mean|average)' is not allowed; choose one of: avg, max, flatten, none",
        ),
        ({"drop_top_layers": -3}, "drop_top_layers must be an integer >= 0"),
        ({"cut_layer": "x", "drop_top_layers": 2}, "set cut_layer or drop_top_layers, not both"),
        ({"batch_size": 0}, "batch_size must be an integer >= 1"),
    ],
)
def test_component_rejects_bad_arguments(arguments, message):
    with pytest.raises(ValueError, match=message):
        component.BottleneckCache(**_channels(), **{"cache_dir": "/tmp/c", **arguments})
