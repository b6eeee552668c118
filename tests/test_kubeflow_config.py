"""kubeflow/config.py: the deployment config, and the pipeline config as deployed."""

from __future__ import annotations

import copy
import functools
import os
import re

import pytest
import yaml

from kubeflow import config as kubeflow_config
from pipeline.config import ConfigError

DEMO = "kubeflow/configs/demo.yaml"


def _raw():
    with open(DEMO, encoding="utf-8") as f:
        return yaml.safe_load(f)


def _with(path: str, value):
    """The demo deployment mapping with one dotted key set (or removed: value None)."""
    raw = copy.deepcopy(_raw())
    *parents, last = path.split(".")
    node = raw
    for key in parents:
        node = node.setdefault(key, {})
    if value is None:
        node.pop(last, None)
    else:
        node[last] = value
    return raw


def test_demo_deployment_loads():
    kf = kubeflow_config.load_config(DEMO)
    assert kf.pipeline_config == os.path.abspath("pipeline/configs/demo.yaml")
    assert kf.image.endswith(":0.1.0-cuda12.3")
    assert kf.components["BottleneckCache"].gpu == kubeflow_config.GpuConfig(
        type="nvidia-tesla-t4", count=1
    )
    assert kf.components["BottleneckCache"].beam_pipeline_args == ("--direct_num_workers=1",)
    # Resources merge field by field: a component's own value, else the default.
    assert kf.resources_of("Transform") == kubeflow_config.ResourceConfig(cpu=1.0, memory=8.0)
    assert kf.resources_of("Pusher") == kubeflow_config.ResourceConfig(cpu=1.0, memory=4.0)
    assert kf.component("Pusher") == kubeflow_config.ComponentConfig()


def test_every_deployment_in_the_repository_validates_and_applies_its_overrides():
    paths = sorted(os.listdir("kubeflow/configs"))
    assert {"demo.yaml", "layerwise.yaml"} <= set(paths)
    for path in paths:
        kf = kubeflow_config.load_config(os.path.join("kubeflow/configs", path))
        config = kubeflow_config.cluster_pipeline_config(kf)
        assert config.pipeline_root == kf.pipeline_root, path
        assert kf.pipeline_overrides, path
        for dotted, value in kf.pipeline_overrides.items():
            assert functools.reduce(getattr, dotted.split("."), config) == value, (path, dotted)
        # The pipeline config's relative paths, resolved where the image holds them.
        assert config.schema.startswith(kf.workdir.rstrip("/") + "/"), (path, config.schema)


@pytest.mark.parametrize(
    "path, value, message",
    [
        ("imagee", "x:1", r"unknown key\(s\) imagee; allowed keys: pipeline_config, image"),
        ("components.Trainer.gpus", 1, r"components\.Trainer: unknown key\(s\) gpus"),
        ("components.Trainer.gpu.count", 0, r"components\.Trainer\.gpu\.count: 0 is out of range"),
        ("components.Trainer.gpu.type", None, r"components\.Trainer\.gpu\.type: required"),
        ("components.Trainer.cpu", "four", r"components\.Trainer\.cpu: expected a number"),
        ("gpu_resource", "gpu", r"gpu_resource: 'gpu' is not allowed; choose one of: nvidia"),
        ("resources.memory", -1, r"resources\.memory: -1.0 is out of range; it must be >= 0.0"),
        ("parameters.data_root", "data/target", r"parameters\.data_root: .* storage URI"),
        ("parameters.serving_root", None, r"parameters\.serving_root: required"),
        ("pipeline_root", "/tmp/runs", r"pipeline_root: '/tmp/runs' is not a storage URI"),
        ("image", "tfx-transfer", r"image: 'tfx-transfer' is not pinned"),
        ("image", "registry:5000/tfx-transfer", "is not pinned"),
        ("image", "r.example.com/tfx-transfer:latest", "is not pinned"),
        ("workdir", "app", r"workdir: 'app' must be an absolute path"),
        ("components.Trainer.cpu_request", 8, r"cpu_request: 8.0 is above the limit cpu: 4.0"),
        ("components.Trainer.gpu.type", "T4 GPU", r"gpu\.type: 'T4 GPU' is not a node label"),
        ("components", ["Trainer"], "components: expected a mapping of component ids"),
        ("pipeline_overrides", ["x"], "pipeline_overrides: expected a mapping"),
    ],
)
def test_errors_name_the_field_and_the_fix(path, value, message):
    with pytest.raises(ConfigError, match=message):
        kubeflow_config.config_from_dict(_with(path, value))


@pytest.mark.parametrize(
    "pinned, unpinned",
    [
        ("europe-docker.pkg.dev/p/tfx-transfer:0.1.0", "europe-docker.pkg.dev/p/tfx-transfer"),
        ("registry:5000/tfx-transfer:1.2", "registry:5000/tfx-transfer"),  # a port, no tag
        ("tfx-transfer:0.1.0", "tfx-transfer:latest"),
        ("tfx-transfer@sha256:" + "a" * 64, "tfx-transfer@sha256:" + "a" * 63),
    ],
)
def test_pinned_images_are_accepted_and_their_near_misses_rejected(pinned, unpinned):
    assert kubeflow_config.config_from_dict(_with("image", pinned)).image == pinned
    with pytest.raises(ConfigError, match=f"image: {re.escape(repr(unpinned))} is not pinned"):
        kubeflow_config.config_from_dict(_with("image", unpinned))


def test_cluster_pipeline_config_resolves_paths_in_the_image():
    kf = kubeflow_config.load_config(DEMO)
    config = kubeflow_config.cluster_pipeline_config(kf)
    assert config.schema == "/app/schemas/digits_target.pbtxt"
    assert config.base_model.source_task.schema == "/app/schemas/digits_source.pbtxt"
    assert config.base_model.source_task.data_root == "gs://my-bucket/datasets/digits/source"
    assert config.pipeline_root == kf.pipeline_root
    assert config.cache_dir == "gs://my-bucket/tfx-transfer/bottleneck_cache"
    # The model and training are the pipeline config's own.
    assert config.serving.model_name == "digits"
    assert config.training.epochs == 100


def test_a_local_folder_not_in_the_image_is_an_error():
    raw = _raw()
    del raw["pipeline_overrides"]["base_model.source_task.data_root"]
    kf = kubeflow_config.config_from_dict(raw)
    with pytest.raises(ConfigError, match=r"base_model\.source_task\.data_root is '/app/demo_data"):
        kubeflow_config.cluster_pipeline_config(kf)


def test_a_local_cache_dir_is_an_error():
    raw = _raw()
    raw["pipeline_overrides"]["cache.dir"] = "cache"
    with pytest.raises(ConfigError, match="cache.dir resolves to '/app/cache'"):
        kubeflow_config.cluster_pipeline_config(kubeflow_config.config_from_dict(raw))


def test_pipeline_overrides_are_validated_as_the_pipeline_config():
    raw = _raw()
    raw["pipeline_overrides"]["training.epochs"] = 0
    with pytest.raises(ConfigError, match=r"as deployed\): training\.epochs: 0 is out of range"):
        kubeflow_config.cluster_pipeline_config(kubeflow_config.config_from_dict(raw))
    raw["pipeline_overrides"] = {"training.epochs.value": 3}
    with pytest.raises(ConfigError, match=r"training\.epochs is not a mapping"):
        kubeflow_config.cluster_pipeline_config(kubeflow_config.config_from_dict(raw))


def test_missing_pipeline_config_file():
    kf = kubeflow_config.config_from_dict(_with("pipeline_config", "pipeline/configs/nope.yaml"))
    with pytest.raises(ConfigError, match="does not exist"):
        kubeflow_config.cluster_pipeline_config(kf)


def test_dockerignore_keeps_out_what_the_config_says_is_not_in_the_image():
    with open("kubeflow/Dockerfile.dockerignore", encoding="utf-8") as f:
        ignored = {line.strip() for line in f if line.strip() and not line.startswith("#")}
    assert set(kubeflow_config.NOT_IN_IMAGE) <= ignored


def test_serving_paths_of_a_deployment():
    from kubeflow.serving import render

    assert render.serving_paths(DEMO) == ("digits", "gs://my-bucket/serving/digits")
