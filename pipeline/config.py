"""Typed pipeline configuration, loaded from YAML and validated once, at the edge.

`load_config(path)` returns a frozen `PipelineConfig`; `create_pipeline` takes only that
object. Every error names the offending field by its dotted path (``data.train_ratio``)
and says what is allowed, and unknown keys are rejected (a typo is never silently
ignored).

Relative local paths in the file are resolved against the directory the command runs
in (the project root in the README's commands) and stored absolute; remote URIs such as
``gs://bucket/x`` are kept as they are.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import yaml

from components.base_model_gen import spec as base_spec
from components.bottleneck_cache import spec as cache_spec
from components.common import model_surgery, preprocessing
from components.common.artifact_io import is_remote
from components.image_example_gen import spec as ingest_spec
from components.layerwise_pretrainer import spec as layerwise_spec
from components.trainer import config as trainer_config


class ConfigError(ValueError):
    """A configuration value is missing, unknown or out of its allowed range."""


KIND_LAYERWISE = "layerwise_pretrain"
# The Trainer's defaults (a TrainerConfig needs an image spec to exist; any will do).
_TRAINER = trainer_config.TrainerConfig(image=preprocessing.ImageSpec(height=1, width=1))
T = TypeVar("T")


def _choice(*allowed: str) -> dict[str, Any]:
    return {"choices": allowed}


def _range(low: float | None = None, high: float | None = None, *, exclusive=False):
    return {"range": (low, high, exclusive, exclusive)}


def _owned(name: str, table: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A number's range as its owner states it (default: components.trainer.config)."""
    return {"range": (table if table is not None else trainer_config.BOUNDS)[name].as_range()}


def _path() -> dict[str, Any]:
    return {"path": True}


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Where the images are and how they are ingested (ImageExampleGen)."""

    # A folder with one sub-folder per class (or, with labelled: false, any images).
    root: str = dataclasses.field(metadata=_path())
    labelled: bool = True
    # Share of images (by content hash, deterministic) that go to the train split.
    train_ratio: float = dataclasses.field(
        default=0.8, metadata=_owned(ingest_spec.TRAIN_RATIO_KEY, ingest_spec.BOUNDS)
    )
    # Images with more pixels are quarantined (decompression-bomb guard).
    max_pixels: int = dataclasses.field(
        default=50_000_000, metadata=_owned(ingest_spec.MAX_PIXELS_KEY, ingest_spec.BOUNDS)
    )
    # Downscale at ingest so that the longest side is at most this; 0 keeps originals.
    max_side: int = dataclasses.field(
        default=0, metadata=_owned(ingest_spec.MAX_SIDE_KEY, ingest_spec.BOUNDS)
    )
    # With a base model, the run stops before training unless every class of the
    # schema has at least this many labelled images in each split (after quarantine).
    min_train_per_class: int = dataclasses.field(default=3, metadata=_range(1))
    min_eval_per_class: int = dataclasses.field(default=2, metadata=_range(1))


@dataclasses.dataclass(frozen=True)
class ImageConfig:
    """The base network's input: size, resize and pixel scaling (Transform)."""

    height: int = dataclasses.field(metadata=_range(1))
    width: int = dataclasses.field(metadata=_range(1))
    resize_method: str = dataclasses.field(
        default="bilinear", metadata=_choice(*preprocessing.RESIZE_METHODS)
    )
    resize_mode: str = dataclasses.field(
        default="stretch", metadata=_choice(*preprocessing.RESIZE_MODES)
    )
    scaling: str = dataclasses.field(default="symmetric", metadata=_choice(*preprocessing.SCALINGS))

    def image_spec(self) -> preprocessing.ImageSpec:
        """The preprocessing spec shared by Transform, the cache and the served model."""
        return preprocessing.ImageSpec(
            height=self.height,
            width=self.width,
            resize_method=self.resize_method,
            resize_mode=self.resize_mode,
            scaling=self.scaling,
        )


@dataclasses.dataclass(frozen=True)
class SourceTaskConfig:
    """A labelled source task that trains the base (every layer) before it is reused."""

    # A folder of class sub-folders (other classes than the target's), and its schema.
    data_root: str = dataclasses.field(metadata=_path())
    schema: str = dataclasses.field(metadata=_path())
    train_ratio: float = dataclasses.field(
        default=0.8, metadata=_owned(ingest_spec.TRAIN_RATIO_KEY, ingest_spec.BOUNDS)
    )
    # The source Trainer's numbers: the Trainer's ranges (components/trainer/config.py).
    epochs: int = dataclasses.field(default=30, metadata=_owned("epochs"))
    learning_rate: float = dataclasses.field(default=1e-3, metadata=_owned("learning_rate"))
    batch_size: int = dataclasses.field(default=32, metadata=_owned("batch_size"))


@dataclasses.dataclass(frozen=True)
class ConvBlockConfig:
    """One convolutional block of a layer-wise pretrained encoder."""

    filters: int = dataclasses.field(metadata=_owned("filters", layerwise_spec.BOUNDS))
    kernel: int = dataclasses.field(default=3, metadata=_owned("kernel", layerwise_spec.BOUNDS))
    # Max pooling window after the conv; 1: no pooling.
    pool: int = dataclasses.field(default=2, metadata=_owned("pool", layerwise_spec.BOUNDS))


@dataclasses.dataclass(frozen=True)
class LayerwiseConfig:
    """Greedy layer-wise autoencoder pretraining of the base (kind layerwise_pretrain)."""

    # A folder of unlabelled images (any layout); empty: the target's own images, with
    # their labels ignored (its train split only, usually far fewer images).
    data_root: str = dataclasses.field(default="", metadata=_path())
    # Share of those images trained on; the rest give a held-out reconstruction loss.
    train_ratio: float = dataclasses.field(
        default=0.9, metadata=_owned(ingest_spec.TRAIN_RATIO_KEY, ingest_spec.BOUNDS)
    )
    # The encoder stack, lowest first: conv blocks, then dense layers.
    conv_blocks: tuple[ConvBlockConfig, ...] = ()
    dense_units: tuple[int, ...] = ()
    epochs_per_layer: int = dataclasses.field(
        default=10, metadata=_owned(layerwise_spec.EPOCHS_KEY, layerwise_spec.BOUNDS)
    )
    batch_size: int = dataclasses.field(
        default=32, metadata=_owned(layerwise_spec.BATCH_SIZE_KEY, layerwise_spec.BOUNDS)
    )
    learning_rate: float = dataclasses.field(
        default=1e-3, metadata=_owned(layerwise_spec.LEARNING_RATE_KEY, layerwise_spec.BOUNDS)
    )
    # Denoising: corrupt each autoencoder's input (gaussian: stddev; masking: the
    # probability of zeroing a value) and reconstruct the clean one.
    noise: str = dataclasses.field(default="gaussian", metadata=_choice(*layerwise_spec.NOISES))
    noise_level: float = dataclasses.field(
        default=0.1, metadata=_owned(layerwise_spec.NOISE_LEVEL_KEY, layerwise_spec.BOUNDS)
    )

    def conv_block_dicts(self) -> list[dict[str, int]]:
        return [dataclasses.asdict(block) for block in self.conv_blocks]


@dataclasses.dataclass(frozen=True)
class BaseModelConfig:
    """The pretrained network whose lower layers are reused, and where to cut it."""

    # keras_application: an architecture by name; builtin: a small architecture of this
    # project (small_cnn); file: a user's .keras/.h5 model; layerwise_pretrain: an
    # encoder trained without labels inside the pipeline (the `layerwise` section).
    kind: str = dataclasses.field(metadata=_choice(*base_spec.KINDS, KIND_LAYERWISE))
    name: str = dataclasses.field(
        default="", metadata=_choice(*base_spec.APPLICATIONS, *base_spec.BUILTINS)
    )
    # keras_application: a local weights file (the architecture's *_notop.h5); empty
    # builds seeded random weights. Nothing is ever downloaded.
    weights: str = dataclasses.field(default="", metadata=_path())
    # file: the model file.
    path: str = dataclasses.field(default="", metadata=_path())
    seed: int = 0
    # Where to cut: a layer name, a number of top layers to drop (not both), or "auto":
    # BottleneckCache caches every candidate, the Trainer picks the best by k-fold
    # cross-validation on the train split (cut_candidates: empty = the base's block
    # boundaries, at most 6).
    cut_layer: str = ""
    cut_candidates: tuple[str, ...] = ()
    drop_top_layers: int = dataclasses.field(
        default=0, metadata=_owned(cache_spec.DROP_TOP_LAYERS_KEY, cache_spec.BOUNDS)
    )
    # Applied when the cut output is a spatial map.
    pooling: str = dataclasses.field(
        default=model_surgery.DEFAULT_POOLING, metadata=_choice(*model_surgery.POOLINGS)
    )
    # Optional: train the base on a labelled source task first (inside the pipeline).
    source_task: SourceTaskConfig | None = None
    # Required for kind layerwise_pretrain.
    layerwise: LayerwiseConfig | None = None


@dataclasses.dataclass(frozen=True)
class CacheConfig:
    """The bottleneck cache: a persistent, content-addressed store of frozen outputs."""

    # Defaults to <pipeline_root>/bottleneck_cache; it outlives executions and runs.
    dir: str = dataclasses.field(default="", metadata=_path())
    batch_size: int = dataclasses.field(
        default=32, metadata=_owned(cache_spec.BATCH_SIZE_KEY, cache_spec.BOUNDS)
    )
    # Beam args for the cache job alone (override the pipeline's), e.g. a GPU runner.
    beam_pipeline_args: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """The new head (phase 1, on cached bottlenecks) and optional fine-tuning (phase 2).

    Defaults and ranges are the Trainer's own (components.trainer.config: TrainerConfig
    and BOUNDS), except fine_tune, which the YAML turns on ("auto") by default.
    """

    hidden_units: tuple[int, ...] = ()
    dropout: float = dataclasses.field(default=_TRAINER.dropout, metadata=_owned("dropout"))
    learning_rate: float = dataclasses.field(
        default=_TRAINER.learning_rate, metadata=_owned("learning_rate")
    )
    batch_size: int = dataclasses.field(default=_TRAINER.batch_size, metadata=_owned("batch_size"))
    epochs: int = dataclasses.field(default=_TRAINER.epochs, metadata=_owned("epochs"))
    early_stopping_patience: int = dataclasses.field(
        default=_TRAINER.early_stopping_patience, metadata=_owned("early_stopping_patience")
    )
    # off: train the head only; auto: measure off against unfreezing the top 1 and 2
    # layers on a fold of the train split, fine-tune only when that wins by more than one
    # standard error (components/trainer/fine_tune_selection.py); layers: unfreeze
    # fine_tune_layers top layers.
    fine_tune: str = dataclasses.field(default="auto", metadata=_choice("off", "auto", "layers"))
    fine_tune_layers: int = dataclasses.field(default=0, metadata=_range(0))
    fine_tune_epochs: int = dataclasses.field(
        default=_TRAINER.fine_tune_epochs, metadata=_owned("fine_tune_epochs")
    )
    # Fine-tuning learning rate = learning_rate * this (about a tenth).
    fine_tune_lr_factor: float = dataclasses.field(
        default=_TRAINER.fine_tune_lr_factor, metadata=_owned("fine_tune_lr_factor")
    )
    # fine_tune auto: seconds the measurement may spend (it trains through the base); a
    # depth is tried only when it fits in what is left.
    fine_tune_budget_seconds: float = dataclasses.field(
        default=_TRAINER.fine_tune_budget_seconds, metadata=_owned("fine_tune_budget_seconds")
    )
    seed: int = dataclasses.field(default=_TRAINER.seed, metadata=_owned("seed"))


@dataclasses.dataclass(frozen=True)
class EvaluationConfig:
    """The gate before Pusher: an absolute floor and no regression vs the served model."""

    min_accuracy: float = dataclasses.field(default=0.5, metadata=_range(0.0, 1.0))
    # How much accuracy may drop against the last blessed model (0: no drop at all).
    max_regression: float = dataclasses.field(default=0.0, metadata=_range(0.0, 1.0))


@dataclasses.dataclass(frozen=True)
class ServingConfig:
    """Where Pusher writes: <root>/<model_name>/<version>/ (TF Serving's layout)."""

    model_name: str = "model"
    root: str = dataclasses.field(default="serving", metadata=_path())


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    """The whole pipeline: the one argument of `create_pipeline`."""

    pipeline_name: str
    data: DataConfig
    image: ImageConfig
    # The checked-in tf.Example schema (see `tfx-transfer schema` to write one).
    schema: str = dataclasses.field(metadata=_path())
    # Artifacts and the local SQLite metadata live under this folder.
    pipeline_root: str = dataclasses.field(default="tfx_transfer_runs", metadata=_path())
    # Defaults to <pipeline_root>/metadata.sqlite.
    metadata_path: str = dataclasses.field(default="", metadata=_path())
    # Without a base model the pipeline stops after Transform.
    base_model: BaseModelConfig | None = None
    cache: CacheConfig = CacheConfig()
    training: TrainingConfig = TrainingConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    serving: ServingConfig = ServingConfig()
    enable_cache: bool = True
    # Passed to every Beam-based component (DirectRunner in-process by default).
    beam_pipeline_args: tuple[str, ...] = ("--direct_running_mode=in_memory",)

    @property
    def metadata_file(self) -> str:
        """The SQLite file of ML Metadata for local runs."""
        return self.metadata_path or os.path.join(self.pipeline_root, "metadata.sqlite")

    @property
    def cache_dir(self) -> str:
        """The bottleneck cache's root folder."""
        return self.cache.dir or os.path.join(self.pipeline_root, "bottleneck_cache")

    @property
    def pipeline_dir(self) -> str:
        """Where TFX writes this pipeline's artifacts."""
        return os.path.join(self.pipeline_root, self.pipeline_name)


def _resolve_path(value: str, base_dir: str) -> str:
    if not value or is_remote(value):
        return value
    return os.path.normpath(os.path.join(base_dir, os.path.expanduser(value)))


def _check_scalar(name: str, value: Any, type_: Any) -> Any:
    """Checks one YAML scalar against the dataclass field's type."""
    if type_ is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{name}: expected true or false, got {value!r}")
        return value
    if type_ is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{name}: expected an integer, got {value!r}")
        return value
    if type_ is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{name}: expected a number, got {value!r}")
        return float(value)
    if type_ is str:
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{name}: expected a non-empty string, got {value!r}")
        return value
    if typing.get_origin(type_) is tuple:
        item = typing.get_args(type_)[0]
        if not isinstance(value, list):
            raise ConfigError(f"{name}: expected a list of {item.__name__}, got {value!r}")
        return tuple(_check_scalar(f"{name}[{i}]", v, item) for i, v in enumerate(value))
    raise TypeError(f"unsupported config type {type_!r} for {name}")


def _check_metadata(name: str, value: Any, meta: Mapping[str, Any]) -> None:
    if "choices" in meta and value not in meta["choices"]:
        allowed = ", ".join(meta["choices"])
        raise ConfigError(f"{name}: {value!r} is not allowed; choose one of: {allowed}")
    if "range" in meta:
        low, high, low_open, high_open = meta["range"]
        above, below = ">" if low_open else ">=", "<" if high_open else "<="
        ok_low = low is None or (value > low if low_open else value >= low)
        ok_high = high is None or (value < high if high_open else value <= high)
        if not (ok_low and ok_high):
            bounds = [f"{op} {b}" for op, b in ((above, low), (below, high)) if b is not None]
            must = " and ".join(bounds)
            raise ConfigError(f"{name}: {value!r} is out of range; it must be {must}")


def required_field(field: dataclasses.Field) -> bool:
    return field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING


def _unwrap_optional(type_: Any) -> Any:
    """`X | None` -> X; anything else unchanged."""
    args = [a for a in typing.get_args(type_) if a is not type(None)]
    return (
        args[0]
        if typing.get_origin(type_) in (typing.Union, types.UnionType) and len(args) == 1
        else type_
    )


def _build(cls: type, raw: Any, prefix: str, base_dir: str) -> Any:
    """Builds dataclass `cls` from a YAML mapping, naming the field of any error."""
    where = prefix or "the config file"
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: expected a mapping of keys, got {type(raw).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(map(str, unknown))}; "
            f"allowed keys: {', '.join(fields)}"
        )
    hints = typing.get_type_hints(cls)
    values = {}
    for name, field in fields.items():
        dotted = f"{prefix}.{name}" if prefix else name
        if name not in raw:
            if required_field(field):
                raise ConfigError(f"{dotted}: required but missing")
            if field.metadata.get("path"):  # defaults are relative paths too
                values[name] = _resolve_path(field.default, base_dir)
            continue
        type_ = _unwrap_optional(hints[name])
        if raw[name] is None and not required_field(field):
            continue  # null in YAML means "the default"
        if dataclasses.is_dataclass(type_):
            values[name] = _build(type_, raw[name], dotted, base_dir)
            continue
        item = typing.get_args(type_)[0] if typing.get_origin(type_) is tuple else None
        if dataclasses.is_dataclass(item):
            if not isinstance(raw[name], list):
                raise ConfigError(f"{dotted}: expected a list of mappings, got {raw[name]!r}")
            values[name] = tuple(
                _build(item, entry, f"{dotted}[{i}]", base_dir) for i, entry in enumerate(raw[name])
            )
            continue
        value = _check_scalar(dotted, raw[name], type_)
        _check_metadata(dotted, value, field.metadata)
        if field.metadata.get("path"):
            value = _resolve_path(value, base_dir)
        values[name] = value
    return cls(**values)


def config_from_dict(raw: Mapping[str, Any], base_dir: str | None = None) -> PipelineConfig:
    """Validates a parsed config mapping.

    Args:
      raw: the mapping read from YAML.
      base_dir: directory that relative paths are resolved against (default: cwd).

    Returns:
      The frozen, validated config.

    Raises:
      ConfigError: naming the field and what is allowed.
    """
    config = _build(PipelineConfig, raw, "", base_dir or os.getcwd())
    if not config.pipeline_name.replace("-", "").replace("_", "").isalnum():
        raise ConfigError(
            f"pipeline_name: {config.pipeline_name!r} may contain only letters, digits, '-' and '_'"
        )
    if config.base_model is not None:
        _check_base_model(config.base_model, config.image)
    try:
        config.image.image_spec()
    except ValueError as e:
        raise ConfigError(f"image: {e}") from e
    return config


def _check_base_model(base: BaseModelConfig, image: ImageConfig) -> None:
    """Cross-field rules of base_model (single fields were checked already)."""
    if base.kind == base_spec.KIND_BUILTIN and base.name not in base_spec.BUILTINS:
        raise ConfigError(
            f"base_model.name: {base.name!r} is not a builtin architecture; choose one of: "
            + ", ".join(base_spec.BUILTINS)
        )
    if base.kind == base_spec.KIND_APPLICATION:
        if base.name not in base_spec.APPLICATIONS:
            raise ConfigError(
                f"base_model.name: {base.name or 'nothing'!r} is not a Keras Applications "
                "architecture (required for kind keras_application); choose one of: "
                + ", ".join(base_spec.APPLICATIONS)
            )
        expected = base_spec.APPLICATIONS[base.name]
        if base.weights and image.scaling != expected:
            raise ConfigError(
                f"image.scaling: {image.scaling!r} does not match the pretrained weights of "
                f"{base.name}, which expect {expected!r}; set image.scaling: {expected}"
            )
    if base.kind == base_spec.KIND_FILE and not base.path:
        raise ConfigError("base_model.path: required for kind file (a .keras or .h5 file)")
    if base.kind == KIND_LAYERWISE:
        if base.layerwise is None or not (base.layerwise.conv_blocks or base.layerwise.dense_units):
            raise ConfigError(
                "base_model.layerwise: required for kind layerwise_pretrain, with at least one "
                "of conv_blocks (e.g. [{filters: 32}, {filters: 64}]) or dense_units (e.g. [256])"
            )
        if base.source_task is not None:
            raise ConfigError(
                "base_model: source_task and kind layerwise_pretrain exclude each other (the "
                "layer-wise encoder is trained without labels); remove one"
            )
    elif base.layerwise is not None:
        raise ConfigError(
            f"base_model.layerwise: only used with kind layerwise_pretrain, not {base.kind!r}; "
            "remove the section or set kind: layerwise_pretrain"
        )
    if base.cut_layer and base.drop_top_layers:
        raise ConfigError(
            "base_model: set cut_layer or drop_top_layers, not both "
            f"(got cut_layer={base.cut_layer!r}, drop_top_layers={base.drop_top_layers})"
        )
    if base.cut_candidates and base.cut_layer != model_surgery.CUT_AUTO:
        raise ConfigError(
            f"base_model.cut_candidates: only used with cut_layer: {model_surgery.CUT_AUTO} "
            f"(got cut_layer={base.cut_layer!r}); set cut_layer: auto or remove the list"
        )
    if len(set(base.cut_candidates)) != len(base.cut_candidates) or any(
        not isinstance(name, str) or not name for name in base.cut_candidates
    ):
        raise ConfigError(
            f"base_model.cut_candidates: {list(base.cut_candidates)} must be distinct layer "
            "names of the base"
        )
    if len(base.cut_candidates) == 1:
        raise ConfigError(
            f"base_model.cut_candidates: one candidate ({base.cut_candidates[0]!r}) leaves "
            "nothing to choose: list at least 2, or set cut_layer to that layer"
        )


def load_config(path: str) -> PipelineConfig:
    """Reads and validates a YAML config file.

    Raises:
      ConfigError: the file is missing, is not YAML, or a field is invalid.
    """
    return read_yaml(path, config_from_dict)


def read_yaml(path: str, from_dict: Callable[[Mapping[str, Any]], T]) -> T:
    """Reads a YAML mapping and validates it with `from_dict`; errors name the file.

    Raises:
      ConfigError: the file is missing, is not YAML, or `from_dict` rejects a field.
    """
    if not os.path.isfile(path):
        raise ConfigError(f"config file {path!r} does not exist")
    with open(path, encoding="utf-8") as f:
        try:
            raw = yaml.safe_load(f)
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML: {e}") from e
    try:
        return from_dict(raw or {})
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from e
