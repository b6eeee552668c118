"""Checks before the DAG starts: every path the config names, classes vs schema, the cut.

Each case is a real config and real files under a temporary folder; the check must
name the field and the fix, and report every problem at once.
"""

import pytest

from pipeline import preflight
from pipeline import schema as schema_lib
from pipeline.config import ConfigError, config_from_dict


@pytest.fixture
def setup(tmp_path):
    data = tmp_path / "data"
    for name in ("cat", "dog"):
        (data / name).mkdir(parents=True)
    schema_lib.write_schema(schema_lib.build_schema(["cat", "dog"]), str(tmp_path / "s.pbtxt"))
    return tmp_path


def _config(root, **overrides):
    raw = {
        "pipeline_name": "p",
        "pipeline_root": str(root / "runs"),
        "schema": str(root / "s.pbtxt"),
        "data": {"root": str(root / "data")},
        "image": {"height": 16, "width": 16},
        "base_model": {"kind": "builtin", "name": "small_cnn", "cut_layer": "block2_pool"},
    }
    for key, value in overrides.items():
        section, _, field = key.partition("__")
        if field:
            raw[section] = {**raw.get(section, {}), field: value}
        else:
            raw[section] = value
    return config_from_dict(raw)


def test_a_good_config_has_no_problems(setup):
    assert preflight.problems(_config(setup)) == []


def test_missing_paths_are_all_named_with_their_fields(setup):
    config = _config(
        setup,
        schema=str(setup / "nope.pbtxt"),
        data__root=str(setup / "missing"),
        base_model={"kind": "file", "path": str(setup / "model.keras")},
    )
    found = preflight.problems(config)
    assert any(p.startswith(f"schema: {setup / 'nope.pbtxt'} does not exist") for p in found)
    assert any(p.startswith("data.root:") and "does not exist" in p for p in found)
    assert any(p.startswith("base_model.path:") for p in found)
    with pytest.raises(ConfigError, match="3 problem"):
        preflight.check(config)


def test_a_file_where_a_folder_is_expected(setup):
    (setup / "file.txt").write_text("x")
    found = preflight.problems(_config(setup, data__root=str(setup / "file.txt")))
    assert found == [
        f"data.root: {setup / 'file.txt'} is a file, not a folder; point it at a folder"
    ]


def test_class_folders_must_be_the_schema_classes(setup):
    (setup / "data" / "eel").mkdir()
    (setup / "data" / ".ipynb_checkpoints").mkdir()  # hidden: never a class
    found = preflight.problems(_config(setup))
    assert len(found) == 1 and "does not list: ['eel']" in found[0]
    assert "tfx-transfer schema" in found[0]
    (setup / "data" / "eel").rmdir()
    (setup / "data" / "dog").rmdir()  # one class folder left of a two-class schema
    found = preflight.problems(_config(setup))
    assert len(found) == 1 and "classes with no folder" in found[0] and "['dog']" in found[0]


def test_a_cut_layer_that_the_base_does_not_have(setup):
    found = preflight.problems(_config(setup, base_model__cut_layer="block9_pool"))
    assert len(found) == 1 and found[0].startswith("base_model: cut_layer 'block9_pool'")
    assert "valid names:" in found[0] and "block2_pool" in found[0]
    base = {"kind": "builtin", "name": "small_cnn", "drop_top_layers": 99}
    found = preflight.problems(_config(setup, base_model=base))
    assert len(found) == 1 and "drop_top_layers=99 is out of range" in found[0]


def test_cut_auto_checks_its_candidates_before_the_run(setup):
    base = {"kind": "builtin", "name": "small_cnn", "cut_layer": "auto"}
    assert preflight.problems(_config(setup, base_model=base)) == []
    base["cut_candidates"] = ["block2_pool", "block9_pool"]
    found = preflight.problems(_config(setup, base_model=base))
    assert len(found) == 1 and "cut_candidates ['block9_pool'] are not layers" in found[0]


def test_a_cut_layer_of_a_layerwise_encoder(setup):
    layerwise = {"conv_blocks": [{"filters": 4}, {"filters": 8}]}
    base = {"kind": "layerwise_pretrain", "layerwise": layerwise, "cut_layer": "block2_pool"}
    assert preflight.problems(_config(setup, base_model=base)) == []
    base["cut_layer"] = "block3_pool"
    assert "cut_layer 'block3_pool'" in preflight.problems(_config(setup, base_model=base))[0]


def test_an_unparseable_schema(setup):
    (setup / "s.pbtxt").write_text("this is { not a schema")
    found = preflight.problems(_config(setup))
    assert len(found) == 1 and found[0].startswith("schema: ") and "not a usable schema" in found[0]
