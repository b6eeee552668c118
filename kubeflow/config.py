"""The Kubeflow deployment config: typed, validated YAML that names the pipeline config.

A deployment file (kubeflow/configs/demo.yaml) holds what only matters on a cluster:
the container image, the KFP pipeline root, CPU/memory for every step, GPU type and
count per component id, Beam args per component id, and the defaults of the run-time
parameters. The pipeline itself (DAG, model, training) stays in the pipeline config it
names, validated by pipeline/config.py exactly as for local runs.

Errors name the dotted field and what is allowed; unknown keys are rejected. The
pipeline config's relative paths are resolved against ``workdir``, the folder where
the container image holds the project (the Dockerfile's WORKDIR), because that is
where the steps read them.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from typing import Any

import yaml

from pipeline import config as pconf
from pipeline.config import ConfigError, PipelineConfig

# Node label whose value names the GPU model on GKE (cloud.google.com/gke-accelerator);
# other clusters label GPU nodes differently (e.g. nvidia.com/gpu.product).
DEFAULT_GPU_NODE_LABEL = "cloud.google.com/gke-accelerator"
GPU_RESOURCES = ("nvidia.com/gpu", "amd.com/gpu")
# Folders of the repository that the image does not contain (kubeflow/Dockerfile.dockerignore).
NOT_IN_IMAGE = (".git", ".venv", "build", "demo_data", "serving", "tfx_transfer_runs")
_COMPONENT_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]*$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


def _remote() -> dict[str, Any]:
    return {"remote": True}


@dataclasses.dataclass(frozen=True)
class ResourceConfig:
    """CPU (cores) and memory (GB) of one step's container; 0 leaves it unset."""

    cpu: float = dataclasses.field(default=0.0, metadata=pconf._range(0.0))
    memory: float = dataclasses.field(default=0.0, metadata=pconf._range(0.0))
    cpu_request: float = dataclasses.field(default=0.0, metadata=pconf._range(0.0))
    memory_request: float = dataclasses.field(default=0.0, metadata=pconf._range(0.0))


@dataclasses.dataclass(frozen=True)
class GpuConfig:
    """GPUs of one step: how many, and which model (the node label's value)."""

    # e.g. nvidia-tesla-t4, nvidia-l4, nvidia-tesla-a100 (GKE's accelerator names).
    type: str
    count: int = dataclasses.field(default=1, metadata=pconf._range(1, 16))


@dataclasses.dataclass(frozen=True)
class ComponentConfig(ResourceConfig):
    """Settings of one component, by its id (BottleneckCache, Trainer, ...).

    The ResourceConfig fields override the default resources field by field (0: the
    default's value).
    """

    gpu: GpuConfig | None = None
    # Appended after the default Beam args (later args win): Beam components only.
    beam_pipeline_args: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class ParametersConfig:
    """Defaults of the run-time parameters (each run may set its own)."""

    # The image folder (one sub-folder per class) on storage the cluster reads.
    data_root: str = dataclasses.field(metadata=_remote())
    # Pusher writes <serving_root>/<model_name>/<version>/, where TF Serving reads.
    serving_root: str = dataclasses.field(metadata=_remote())
    # Head-phase epochs; 0 keeps the pipeline config's training.epochs.
    epochs: int = dataclasses.field(default=0, metadata=pconf._range(0))


@dataclasses.dataclass(frozen=True)
class KubeflowConfig:
    """One deployment of one pipeline config to Kubeflow Pipelines."""

    # The pipeline config that this deploys (a path in the repository).
    pipeline_config: str = dataclasses.field(metadata=pconf._path())
    # The container image every step runs in, pinned by a version tag or digest.
    image: str
    parameters: ParametersConfig
    # KFP's default pipeline root (artifacts); each run may set another.
    pipeline_root: str = dataclasses.field(metadata=_remote())
    # Where the image holds the project (kubeflow/Dockerfile's WORKDIR).
    workdir: str = "/app"
    # Pipeline config fields to replace for the cluster, by dotted name, e.g.
    # base_model.source_task.data_root: gs://bucket/source
    pipeline_overrides: dict[str, Any] = dataclasses.field(default_factory=dict)
    # KFP's cache for the steps whose inputs are all artifacts (see compile.py).
    enable_cache: bool = True
    # Resources of every step, unless its component sets its own.
    resources: ResourceConfig = ResourceConfig()
    # Beam args of every Beam-based step (after the pipeline config's).
    beam_pipeline_args: tuple[str, ...] = ()
    gpu_resource: str = dataclasses.field(
        default=GPU_RESOURCES[0], metadata=pconf._choice(*GPU_RESOURCES)
    )
    # Node label that selects the GPU model; set it to "none" for no node selector.
    gpu_node_label: str = DEFAULT_GPU_NODE_LABEL
    components: dict[str, ComponentConfig] = dataclasses.field(default_factory=dict)

    def component(self, component_id: str) -> ComponentConfig:
        """The settings of a component id (all defaults when it has none)."""
        return self.components.get(component_id, ComponentConfig())

    def resources_of(self, component_id: str) -> ResourceConfig:
        """The default resources overridden by the component's own, field by field."""
        own = self.component(component_id)
        merged = {
            f.name: getattr(own, f.name) or getattr(self.resources, f.name)
            for f in dataclasses.fields(ResourceConfig)
        }
        return ResourceConfig(**merged)


def _check_remote(cls: type, obj: Any, prefix: str) -> None:
    for field in dataclasses.fields(cls):
        if field.metadata.get("remote") and "://" not in getattr(obj, field.name):
            raise ConfigError(
                f"{prefix}{field.name}: {getattr(obj, field.name)!r} is not a storage URI; "
                "steps on the cluster need shared storage such as gs://bucket/path"
            )


def config_from_dict(raw: Any, base_dir: str | None = None) -> KubeflowConfig:
    """Validates a parsed deployment mapping.

    Args:
      raw: the mapping read from YAML.
      base_dir: directory that `pipeline_config` is resolved against (default: cwd).

    Returns:
      The frozen, validated deployment config.

    Raises:
      ConfigError: naming the field and what is allowed.
    """
    if not isinstance(raw, Mapping):
        raise ConfigError(f"the config file: expected a mapping of keys, got {type(raw).__name__}")
    raw = dict(raw)
    components_raw = raw.pop("components", None) or {}
    overrides = raw.pop("pipeline_overrides", None) or {}
    config = pconf._build(KubeflowConfig, raw, "", base_dir or os.getcwd())
    if not isinstance(overrides, Mapping) or not all(isinstance(k, str) for k in overrides):
        raise ConfigError(
            "pipeline_overrides: expected a mapping of dotted pipeline config fields to "
            f"values, got {overrides!r}"
        )
    if not isinstance(components_raw, Mapping):
        raise ConfigError(
            "components: expected a mapping of component ids (BottleneckCache, Trainer, ...) "
            f"to settings, got {type(components_raw).__name__}"
        )
    components = {}
    for component_id, settings in components_raw.items():
        if not isinstance(component_id, str) or not _COMPONENT_ID.match(component_id):
            raise ConfigError(f"components: {component_id!r} is not a component id")
        components[component_id] = pconf._build(
            ComponentConfig, settings or {}, f"components.{component_id}", os.getcwd()
        )
    config = dataclasses.replace(config, components=components, pipeline_overrides=dict(overrides))
    _check(config)
    return config


def _check(config: KubeflowConfig) -> None:
    """Cross-field rules (single fields were checked already)."""
    _check_remote(KubeflowConfig, config, "")
    _check_remote(ParametersConfig, config.parameters, "parameters.")
    if not _image_pinned(config.image):
        raise ConfigError(
            f"image: {config.image!r} is not pinned; name a version tag other than latest, "
            "or a digest, e.g. registry.example.com/tfx-transfer:0.1.0"
        )
    if not os.path.isabs(config.workdir):
        raise ConfigError(f"workdir: {config.workdir!r} must be an absolute path in the image")
    for component_id, settings in config.components.items():
        merged = config.resources_of(component_id)
        for limit, request in (("cpu", "cpu_request"), ("memory", "memory_request")):
            if getattr(merged, limit) and getattr(merged, request) > getattr(merged, limit):
                raise ConfigError(
                    f"components.{component_id}.{request}: {getattr(merged, request)} is "
                    f"above the limit {limit}: {getattr(merged, limit)}"
                )
        if settings.gpu is not None and not re.match(r"^[A-Za-z0-9._-]+$", settings.gpu.type):
            raise ConfigError(
                f"components.{component_id}.gpu.type: {settings.gpu.type!r} is not a node "
                "label value (letters, digits, '.', '_', '-'), e.g. nvidia-tesla-t4"
            )


def _image_pinned(image: str) -> bool:
    """True for name:tag (not latest) and name@sha256:digest references."""
    name, _, digest = image.partition("@")
    if digest:
        return bool(_DIGEST.match(digest)) and not any(c.isspace() for c in name)
    _, colon, tag = name.rpartition("/")[2].partition(":")
    return bool(colon) and bool(_TAG.match(tag)) and tag != "latest"


def _set_dotted(raw: dict, dotted: str, value: Any) -> None:
    """Sets raw[a][b][c] = value for "a.b.c", creating the mappings on the way."""
    *parents, last = dotted.split(".")
    node = raw
    for i, key in enumerate(parents):
        child = node.get(key)
        if child is None:
            child = node[key] = {}
        if not isinstance(child, dict):
            where = ".".join(parents[: i + 1])
            raise ConfigError(f"pipeline_overrides.{dotted}: {where} is not a mapping")
        node = child
    node[last] = value


def cluster_pipeline_config(config: KubeflowConfig) -> PipelineConfig:
    """The pipeline config as the cluster's steps see it.

    The pipeline config file is read, `pipeline_root` and `pipeline_overrides` are
    applied, and the result is validated by pipeline/config.py with relative paths
    resolved against `workdir`.

    Raises:
      ConfigError: the pipeline config is invalid, or a path it names would not exist
        on the cluster.
    """
    path = config.pipeline_config
    if not os.path.isfile(path):
        raise ConfigError(f"pipeline_config: {path!r} does not exist")
    with open(path, encoding="utf-8") as f:
        try:
            raw = yaml.safe_load(f) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"pipeline_config: {path} is not valid YAML: {e}") from e
    if not isinstance(raw, dict):
        raise ConfigError(f"pipeline_config: {path} is not a mapping of keys")
    raw["pipeline_root"] = config.pipeline_root
    for dotted, value in config.pipeline_overrides.items():
        _set_dotted(raw, dotted, value)
    try:
        result = pconf.config_from_dict(raw, base_dir=config.workdir)
    except ConfigError as e:
        raise ConfigError(f"pipeline_config ({path}, as deployed): {e}") from e
    if "://" not in result.cache_dir:
        raise ConfigError(
            f"pipeline_overrides: cache.dir resolves to {result.cache_dir!r}, a folder inside "
            "one container; set cache.dir to shared storage such as gs://bucket/cache"
        )
    _check_paths_in_image(config, result, path)
    return result


# Fields replaced by run-time parameters, or unused on Kubeflow (metadata is KFP's).
_RUNTIME_PATHS = ("data.root", "serving.root", "metadata_path", "pipeline_root", "cache.dir")


def _local_paths(obj: Any, prefix: str = "") -> list[tuple[str, str]]:
    """(dotted field, value) of every non-empty local path field of a config tree."""
    found = []
    for field in dataclasses.fields(obj):
        value = getattr(obj, field.name)
        dotted = f"{prefix}{field.name}"
        if dataclasses.is_dataclass(value):
            found += _local_paths(value, dotted + ".")
        elif field.metadata.get("path") and value and "://" not in value:
            found.append((dotted, value))
    return found


def _check_paths_in_image(config: KubeflowConfig, result: PipelineConfig, path: str) -> None:
    """Every local path the steps read must be a file of the repository, in the image."""
    repo_root = os.getcwd()
    for dotted, value in _local_paths(result):
        if dotted in _RUNTIME_PATHS:
            continue
        relative = os.path.relpath(value, config.workdir)
        top = relative.split(os.sep, 1)[0]
        if relative.startswith("..") or top in NOT_IN_IMAGE:
            where = "outside the image" if relative.startswith("..") else "not in the image"
            raise ConfigError(
                f"pipeline_config ({path}, as deployed): {dotted} is {value!r}, {where}; "
                f"set pipeline_overrides: {{{dotted}: gs://...}}"
            )
        if not os.path.exists(os.path.join(repo_root, relative)):
            raise ConfigError(
                f"pipeline_config ({path}, as deployed): {dotted} is {value!r}, but "
                f"{relative!r} is not in this repository, so not in the image; commit it or "
                f"set pipeline_overrides: {{{dotted}: gs://...}}"
            )


def load_config(path: str) -> KubeflowConfig:
    """Reads and validates a deployment YAML file.

    Raises:
      ConfigError: the file is missing, is not YAML, or a field is invalid.
    """
    return pconf.read_yaml(path, config_from_dict)
