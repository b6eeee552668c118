"""LayerwisePretrainer: greedy layer-wise order, level caches, the artifact as a base,
and clear errors for bad layer specs."""

import json
import os

import numpy as np
import pytest
from tfx.types import artifact_utils, standard_artifacts

from components.common import model_io, model_surgery
from components.common.examples import SPLITS
from components.common.testing import make_image, write_examples
from components.layerwise_pretrainer import executor, spec, stack
from components.layerwise_pretrainer.component import LayerwisePretrainer
from pipeline.config import ConfigError, config_from_dict

CONFIG = stack.PretrainConfig(epochs_per_layer=2, batch_size=8, learning_rate=0.01, seed=3)
LAYERS = stack.parse_layers([{"filters": 4}, {"filters": 6, "kernel": 3, "pool": 2}], [8])


def _images(count, shape=(15, 13, 3), seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (count, *shape)).astype(np.float32)


def _level0(tmp_path, images, name="level0.npy"):
    return stack.fill_from_batches(str(tmp_path / name), len(images), images.shape[1:], [images])


def test_layers_train_bottom_up_with_the_lower_ones_frozen(tmp_path):
    images = _images(24)
    snapshots = {}

    def snapshot(index, groups):
        snapshots[index] = [
            [w.numpy().copy() for layer in g for w in layer.weights] for g in groups
        ]

    result = stack.pretrain(
        _level0(tmp_path, images), LAYERS, CONFIG, str(tmp_path / "work"), on_stage_end=snapshot
    )
    assert [r.name for r in result.layers] == ["block1", "block2", "dense3"]
    # Each stage trains only its own encoder layer and decoder ...
    assert result.layers[0].trainable == [
        "block1_conv/kernel",
        "block1_conv/bias",
        "decode1_conv/kernel",
        "decode1_conv/bias",
    ]
    assert all(name.startswith(("block2", "decode2")) for name in result.layers[1].trainable)
    assert all(name.startswith(("dense3", "decode3")) for name in result.layers[2].trainable)
    # ... while every layer below it is frozen: its weights do not move any more.
    assert result.layers[2].frozen_below == [
        "block1_conv/kernel",
        "block1_conv/bias",
        "block2_conv/kernel",
        "block2_conv/bias",
    ]
    for later in (1, 2):
        for before, after in zip(snapshots[0][0], snapshots[later][0], strict=True):
            np.testing.assert_array_equal(before, after)
    for before, after in zip(snapshots[1][1], snapshots[2][1], strict=True):
        np.testing.assert_array_equal(before, after)
    # The weights did train (a stage that learned nothing would also "stay frozen").
    assert all(r.loss[-1] < r.loss[0] for r in result.layers), [r.loss for r in result.layers]


def test_each_level_reads_the_cached_outputs_of_the_layers_below(tmp_path):
    images = _images(20)
    work = tmp_path / "work"
    checked = []

    def check_level(index, groups):
        # Level k's cache (what stage k trains on) is the frozen layers' output ...
        if index > 0:
            cached = np.load(work / f"level{index}.npy", mmap_mode="r")
            direct = images
            for group in groups[:index]:
                for layer in group:
                    direct = layer(direct)
            np.testing.assert_allclose(cached, np.asarray(direct), atol=1e-5)
            checked.append(index)
        # ... and at most two levels are on disk at a time (level 0 is the caller's).
        assert len(list(work.glob("level*.npy"))) <= 1

    result = stack.pretrain(
        _level0(tmp_path, images), LAYERS, CONFIG, str(work), on_stage_end=check_level
    )
    assert checked == [1, 2]
    assert result.layers[1].input_shape == (8, 7, 4)  # 'same' pooling of 15x13
    assert result.layers[2].input_shape == (4, 4, 6)
    assert result.encoder.output.shape[1:] == (8,)
    top = model_surgery.cut_base(result.encoder, "block2_pool")(images).numpy()
    assert top.shape == (20, 4, 4, 6)


def test_denoising_noise_is_absent_from_the_encoder(tmp_path):
    images = _images(16)
    for noise in ("gaussian", "masking"):
        config = stack.PretrainConfig(
            epochs_per_layer=1, batch_size=8, noise=noise, noise_level=0.5
        )
        result = stack.pretrain(
            _level0(tmp_path, images, f"{noise}.npy"), LAYERS[:1], config, str(tmp_path / noise)
        )
        names = [layer.name for layer in result.encoder.layers]
        assert names == ["image", "block1_conv", "block1_pool"], names
        first = result.encoder(images).numpy()
        np.testing.assert_array_equal(first, result.encoder(images).numpy())  # deterministic


def test_reconstruction_has_the_input_shape_at_every_depth(tmp_path):
    images = _images(16)
    result = stack.pretrain(_level0(tmp_path, images), LAYERS, CONFIG, str(tmp_path / "w"))
    for depth in (1, 2, 3):
        assert result.reconstruct(images[:3], depth).shape == images[:3].shape


@pytest.mark.parametrize(
    "blocks, dense, message",
    [
        ([], [], "the layer stack is empty"),
        ([{"kernel": 3}], [], r"conv_blocks\[0\].filters: required"),
        ([{"filters": 8, "stride": 2}], [], r"conv_blocks\[0\]: unknown key\(s\) stride"),
        ([{"filters": 8}, {"filters": 8, "kernel": 0}], [], r"conv_blocks\[1\].kernel: 0 is out"),
        ([{"filters": "8"}], [], r"conv_blocks\[0\].filters: expected an integer"),
        ([], [16, 2.5], r"dense_units\[1\]: expected an integer"),
        (["conv32"], [], r"conv_blocks\[0\]: expected a mapping"),
    ],
)
def test_bad_layer_specs_are_named(blocks, dense, message):
    with pytest.raises(stack.LayerSpecError, match=message):
        stack.parse_layers(blocks, dense)


def test_bad_training_settings_are_named():
    with pytest.raises(stack.LayerSpecError, match="noise: 'salt' is not allowed; choose one of"):
        stack.PretrainConfig(noise="salt")
    with pytest.raises(stack.LayerSpecError, match="epochs_per_layer: must be >= 1"):
        stack.PretrainConfig(epochs_per_layer=0)


BASE = {
    "pipeline_name": "lw",
    "schema": "s.pbtxt",
    "data": {"root": "d"},
    "image": {"height": 16, "width": 16},
}


@pytest.mark.parametrize(
    "base_model, message",
    [
        ({"kind": "layerwise_pretrain"}, "base_model.layerwise: required for kind"),
        (
            {"kind": "layerwise_pretrain", "layerwise": {"conv_blocks": []}},
            "base_model.layerwise: required for kind",
        ),
        (
            {"kind": "builtin", "name": "small_cnn", "layerwise": {"dense_units": [8]}},
            "base_model.layerwise: only used with kind layerwise_pretrain",
        ),
        (
            {"kind": "layerwise_pretrain", "layerwise": {"conv_blocks": [{"filters": 0}]}},
            r"base_model.layerwise.conv_blocks\[0\].filters: 0 is out of range",
        ),
        (
            {"kind": "layerwise_pretrain", "layerwise": {"conv_blocks": [{"filter": 8}]}},
            r"base_model.layerwise.conv_blocks\[0\]: unknown key\(s\) filter; allowed keys",
        ),
        (
            {"kind": "layerwise_pretrain", "layerwise": {"dense_units": [8], "noise": "salt"}},
            "base_model.layerwise.noise: 'salt' is not allowed; choose one of: none, gaussian",
        ),
        (
            {"kind": "layerwise", "layerwise": {"dense_units": [8]}},
            "base_model.kind: 'layerwise' is not allowed; choose one of: .*layerwise_pretrain",
        ),
    ],
)
def test_config_errors_name_the_field(base_model, message, tmp_path):
    with pytest.raises(ConfigError, match=message):
        config_from_dict({**BASE, "base_model": base_model}, str(tmp_path))


def test_config_builds_the_stack(tmp_path):
    config = config_from_dict(
        {
            **BASE,
            "base_model": {
                "kind": "layerwise_pretrain",
                "layerwise": {"conv_blocks": [{"filters": 8}, {"filters": 16, "pool": 1}]},
            },
        },
        str(tmp_path),
    )
    layerwise = config.base_model.layerwise
    assert stack.parse_layers(layerwise.conv_block_dicts(), layerwise.dense_units) == [
        stack.ConvBlock(8, 3, 2),
        stack.ConvBlock(16, 3, 1),
    ]


def test_component_rejects_a_bad_stack_when_the_pipeline_is_built():
    from tfx import types

    examples = types.Channel(type=standard_artifacts.Examples)
    graph = types.Channel(type=standard_artifacts.TransformGraph)
    with pytest.raises(stack.LayerSpecError, match="the layer stack is empty"):
        LayerwisePretrainer(examples=examples, transform_graph=graph)


# --- the executor on real Examples and a real transform graph ------------------------------
@pytest.fixture(scope="module")
def pretrained(tmp_path_factory, make_record, write_transform):
    root = tmp_path_factory.mktemp("layerwise")
    records = [make_record(make_image(i, seed=5), -1) for i in range(30)]
    examples = standard_artifacts.Examples()
    examples.uri = write_examples(
        root / "examples", {SPLITS[0]: records[:24], SPLITS[1]: records[24:]}
    )
    examples.split_names = artifact_utils.encode_split_names(list(SPLITS))
    graph = standard_artifacts.TransformGraph()
    graph.uri = write_transform(root / "transform")
    model = standard_artifacts.Model()
    model.uri = str(root / "model")
    properties = {
        spec.LAYERS_KEY: stack.layers_to_json(
            stack.parse_layers([{"filters": 4}, {"filters": 8}, {"filters": 8, "pool": 1}])
        ),
        spec.EPOCHS_KEY: 2,
        spec.BATCH_SIZE_KEY: 8,
        spec.LEARNING_RATE_KEY: 0.01,
        spec.NOISE_KEY: "gaussian",
        spec.NOISE_LEVEL_KEY: 0.1,
        spec.SEED_KEY: 0,
    }
    executor.Executor().Do(
        {spec.EXAMPLES_KEY: [examples], spec.TRANSFORM_GRAPH_KEY: [graph]},
        {spec.MODEL_KEY: [model]},
        properties,
    )
    return model


def test_an_empty_eval_split_trains_without_a_held_out_loss(tmp_path, make_record, write_transform):
    records = [make_record(make_image(i, seed=7), -1) for i in range(12)]
    examples = standard_artifacts.Examples()
    examples.uri = write_examples(tmp_path / "examples", {SPLITS[0]: records, SPLITS[1]: []})
    examples.split_names = artifact_utils.encode_split_names(list(SPLITS))
    result, samples, images = executor.pretrain_from_examples(
        examples,
        write_transform(tmp_path / "transform"),
        stack.parse_layers([{"filters": 2}]),
        stack.PretrainConfig(epochs_per_layer=1, batch_size=4),
        str(tmp_path / "work"),
    )
    assert images == len(samples) == 12  # the samples come from the train split
    assert result.layers[0].val_loss == []


def test_the_artifact_loads_as_a_base_and_cuts_like_one(pretrained):
    encoder = model_io.load_keras(pretrained.uri)
    assert tuple(encoder.inputs[0].shape[1:]) == (32, 32, 3)
    assert pretrained.get_int_custom_property(spec.PROP_IMAGES) == 24
    assert pretrained.get_int_custom_property(spec.PROP_LAYERS) == len(encoder.layers)
    images = np.random.default_rng(1).uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
    # A layer name, a number of top layers to drop, and pooling work as on any base.
    assert model_surgery.resolve_cut_layer(encoder, "block2_pool") == "block2_pool"
    assert model_surgery.resolve_cut_layer(encoder, drop_top_layers=1) == "block2_pool"
    extractor = model_surgery.feature_extractor(encoder, "block2_pool", pooling="avg")
    assert extractor(images).shape == (2, 8)
    flat = model_surgery.feature_extractor(encoder, "block3_conv", pooling="flatten")
    assert flat(images).shape == (2, 8 * 8 * 8)
    with pytest.raises(ValueError, match="block1_conv"):  # the valid names are listed
        model_surgery.resolve_cut_layer(encoder, "block9_pool")


def test_the_artifact_carries_loss_plots_reconstructions_and_history(pretrained):
    reports = os.path.join(pretrained.uri, spec.REPORTS_DIR)
    for name in (spec.LOSS_PLOT_FILE, spec.GRID_FILE):
        with open(os.path.join(reports, name), "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    with open(os.path.join(reports, spec.HISTORY_FILE)) as f:
        history = json.load(f)["layers"]
    assert [layer["name"] for layer in history] == ["block1", "block2", "block3"]
    assert all(len(layer["loss"]) == 2 and len(layer["val_loss"]) == 2 for layer in history)
