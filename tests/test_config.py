"""Config loading and validation: every error names the field and what is allowed."""

import os

import pytest
import yaml

from pipeline import config as config_lib
from pipeline.config import ConfigError, config_from_dict, load_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _raw(**overrides):
    raw = {
        "pipeline_name": "p",
        "schema": "schemas/x.pbtxt",
        "data": {"root": "data"},
        "image": {"height": 32, "width": 32},
    }
    for dotted, value in overrides.items():
        keys = dotted.split("__")
        target = raw
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value
    return raw


def test_demo_config_loads_with_defaults_and_absolute_paths():
    config = load_config(os.path.join(REPO, "pipeline/configs/demo.yaml"))
    assert config.pipeline_name == "digits-transfer"
    assert config.data.train_ratio == pytest.approx(0.2)
    assert os.path.isabs(config.data.root) and config.data.root.endswith("demo_data/target")
    assert config.metadata_file.endswith("tfx_transfer_runs/metadata.sqlite")
    assert config.image.image_spec().height == 32


def test_relative_paths_resolve_against_base_dir_and_remote_uris_are_kept():
    config = config_from_dict(_raw(data__root="gs://bucket/images"), base_dir="/base")
    assert config.data.root == "gs://bucket/images"
    assert config.schema == "/base/schemas/x.pbtxt"
    assert config.pipeline_root == "/base/tfx_transfer_runs"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"image__resize_method": "cubic"},
            "image.resize_method: 'cubic' is not allowed; choose one of: bilinear",
        ),
        ({"image__scaling": "imagenet"}, "image.scaling: 'imagenet' is not allowed"),
        ({"image__resize_mode": "crop"}, "image.resize_mode: 'crop' is not allowed"),
        (
            {"data__train_ratio": 1.0},
            "data.train_ratio: 1.0 is out of range; it must be > 0.0 and < 1.0",
        ),
        ({"data__train_ratio": "half"}, "data.train_ratio: expected a number"),
        ({"data__max_pixels": 0}, "data.max_pixels: 0 is out of range; it must be >= 1"),
        ({"data__labelled": "yes"}, "data.labelled: expected true or false"),
        ({"image__height": 2.5}, "image.height: expected an integer"),
        ({"data__colour": "red"}, "data: unknown key(s) colour; allowed keys: root, labelled"),
        ({"pipeline_name": "a b"}, "pipeline_name: 'a b' may contain only"),
        ({"beam_pipeline_args": "--runner=X"}, "beam_pipeline_args: expected a list of str"),
        (
            {"training": {"hidden_units": [64, "x"]}},
            "training.hidden_units[1]: expected an integer",
        ),
        (
            {"training": {"fine_tune": "all"}},
            "training.fine_tune: 'all' is not allowed; choose one of: off, auto, layers",
        ),
        (
            {"training": {"fine_tune_budget_seconds": 0}},
            "training.fine_tune_budget_seconds: 0.0 is out of range; it must be > 0.0",
        ),
        (
            {"evaluation": {"min_accuracy": 1.5}},
            "evaluation.min_accuracy: 1.5 is out of range; it must be >= 0.0 and <= 1.0",
        ),
    ],
)
def test_bad_values_name_the_field_and_the_allowed_values(overrides, message):
    with pytest.raises(ConfigError) as err:
        config_from_dict(_raw(**overrides))
    assert message in str(err.value)


def test_missing_required_field_is_named():
    raw = _raw()
    del raw["image"]["height"]
    with pytest.raises(ConfigError, match=r"image\.height: required but missing"):
        config_from_dict(raw)


def test_load_config_reports_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(str(tmp_path / "nope.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(str(bad))
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(_raw(image__scaling="nope")))
    with pytest.raises(ConfigError, match=f"{good}: image.scaling"):
        load_config(str(good))


def test_config_is_frozen():
    config = config_from_dict(_raw())
    with pytest.raises(AttributeError):
        config.pipeline_name = "other"  # type: ignore[misc]
    assert isinstance(config.data, config_lib.DataConfig)


def _with_base(**base):
    raw = _raw()
    raw["base_model"] = base
    return raw


def test_base_model_section_is_optional_and_validated():
    assert config_from_dict(_raw()).base_model is None
    config = config_from_dict(
        _with_base(kind="keras_application", name="MobileNetV2", cut_layer="block_6_expand_relu"),
        base_dir="/b",
    )
    assert config.base_model.pooling == "avg"
    assert config.cache_dir == "/b/tfx_transfer_runs/bottleneck_cache"


@pytest.mark.parametrize(
    ("base", "message"),
    [
        (
            {"kind": "hub"},
            "base_model.kind: 'hub' is not allowed; choose one of: "
            "keras_application, builtin, file",
        ),
        (
            {"kind": "keras_application"},
            "is not a Keras Applications architecture (required for kind keras_application)",
        ),
        (
            {"kind": "keras_application", "name": "ResNet9"},
            "base_model.name: 'ResNet9' is not allowed; choose one of: MobileNetV2",
        ),
        ({"kind": "file"}, "base_model.path: required for kind file"),
        (
            {"kind": "keras_application", "name": "ResNet50", "weights": "w.h5"},
            "image.scaling: 'symmetric' does not match the pretrained weights of ResNet50, "
            "which expect 'caffe'",
        ),
        (
            {"kind": "builtin", "name": "small_cnn", "cut_candidates": ["block1_pool", "gap"]},
            "base_model.cut_candidates: only used with cut_layer: auto",
        ),
        (
            {
                "kind": "builtin",
                "name": "small_cnn",
                "cut_layer": "auto",
                "cut_candidates": ["gap"],
            },
            "one candidate ('gap') leaves nothing to choose",
        ),
        (
            {"kind": "file", "path": "b.keras", "cut_layer": "x", "drop_top_layers": 2},
            "set cut_layer or drop_top_layers, not both",
        ),
        (
            {"kind": "file", "path": "b.keras", "pooling": "mean"},
            "base_model.pooling: 'mean' is not allowed; choose one of: avg, max, flatten, none",
        ),
    ],
)
def test_bad_base_model_fields_are_named(base, message):
    with pytest.raises(ConfigError) as err:
        config_from_dict(_with_base(**base))
    assert message in str(err.value)
