"""The Trainer's settings: a frozen, validated `TrainerConfig` passed as custom_config.

The TFX Trainer hands ``custom_config`` to ``run_fn`` as a JSON-decoded dict, so the
config travels as ``TrainerConfig.to_dict()`` and is rebuilt (and validated again) by
``TrainerConfig.from_dict`` inside the Trainer. Every error names the field as
``trainer.<field>`` and says what is allowed; unknown keys are errors.

``fine_tune`` has one canonical form: ``"off"``, ``"auto"`` or a positive int K (the
number of top weighted layers of the frozen extractor to unfreeze). The integer may be
given as a string ("3"), and 0 / "0" mean "off"; both are normalized on construction,
so ``to_dict()`` always writes the canonical form.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

from components.common.bounds import Bounds
from components.common.model_surgery import CUT_AUTO, DEFAULT_POOLING, check_pooling
from components.common.preprocessing import ImageSpec

FINE_TUNE_OFF = "off"
FINE_TUNE_AUTO = "auto"
# transfer: a new head on the cached bottlenecks of the frozen base (+ fine-tuning);
# full: every layer of the cut base and the head trained on images at learning_rate,
# BatchNormalization in training mode: a source task pretraining the base, or the
# from-scratch baseline when the base is freshly initialized.
MODE_TRANSFER = "transfer"
MODE_FULL = "full"
MODES = (MODE_TRANSFER, MODE_FULL)
_PREFIX = "trainer"


# The one statement of each training number's range: TrainerConfig validates with it,
# and the YAML config's `training` section (pipeline/config.py) declares the same.
BOUNDS = {
    "dropout": Bounds(0.0, 1.0, high_open=True),
    "learning_rate": Bounds(0.0, low_open=True),
    "batch_size": Bounds(1, integer=True),
    "epochs": Bounds(1, integer=True),
    "early_stopping_patience": Bounds(0, integer=True),  # 0: no early stopping
    "fine_tune_epochs": Bounds(1, integer=True),
    "fine_tune_lr_factor": Bounds(0.0, 1.0, low_open=True),
    # fine_tune auto: seconds the measurement of the depths may take (it trains through
    # the base); once spent, further depths are not tried.
    "fine_tune_budget_seconds": Bounds(0.0, low_open=True),
    "seed": Bounds(0, integer=True),
}


@dataclasses.dataclass(frozen=True)
class TrainerConfig:
    """What the Trainer trains and how.

    Attributes:
        image: the base network's input preprocessing (the same ImageSpec as Transform).
        cut_layer: layer of the base whose output is the bottleneck ("" = use
            drop_top_layers; "auto" = chosen among cut_candidates by k-fold
            cross-validation on the train split, components.trainer.cut_selection);
            must match BottleneckCache's setting.
        cut_candidates: with cut_layer "auto", the candidate layers (empty: the base's
            block boundaries); must match BottleneckCache's.
        drop_top_layers: top layers of the base to drop (0 keeps the whole base).
        pooling: one of model_surgery.POOLINGS, applied to a spatial cut output.
        hidden_units: sizes of the head's hidden Dense layers (empty: a linear head).
        dropout: dropout rate of the head, in [0, 1).
        learning_rate: Adam learning rate of the head phase.
        batch_size: examples per batch, both phases.
        epochs: maximum epochs of the head phase.
        early_stopping_patience: epochs without a better eval loss before stopping
            (both phases); 0 disables early stopping.
        mode: "transfer" (head on bottlenecks, then optional fine-tuning) or "full"
            (every layer trained on images; for a source task or a scratch baseline).
        fine_tune: "off", "auto" (measured: off against the top 1 and 2 layers on a
            validation fold carved from the train split,
            components.trainer.fine_tune_selection) or K >= 1 top weighted
            (non-BatchNormalization) layers of the extractor to unfreeze.
        fine_tune_epochs: maximum epochs of the fine-tuning phase.
        fine_tune_lr_factor: fine-tuning learning rate = learning_rate * this, in (0, 1].
        fine_tune_budget_seconds: fine_tune "auto": the measurement stops trying further
            depths once it has taken this long (> 0).
        seed: seed of weight initialisation, dropout and shuffling.
    """

    image: ImageSpec
    cut_layer: str = ""
    cut_candidates: tuple[str, ...] = ()
    drop_top_layers: int = 0
    pooling: str = DEFAULT_POOLING
    hidden_units: tuple[int, ...] = ()
    dropout: float = 0.0
    learning_rate: float = 1e-3
    batch_size: int = 32
    epochs: int = 50
    early_stopping_patience: int = 5
    fine_tune: str | int = FINE_TUNE_OFF
    mode: str = MODE_TRANSFER
    fine_tune_epochs: int = 10
    fine_tune_lr_factor: float = 0.1
    fine_tune_budget_seconds: float = 120.0
    seed: int = 0

    def __post_init__(self):
        if not isinstance(self.image, ImageSpec):
            # An ImageSpec of a reloaded module (TFX re-imports user modules) or a dict.
            values = self.image.to_dict() if hasattr(self.image, "to_dict") else self.image
            if not isinstance(values, Mapping):
                raise ValueError(f"{_PREFIX}.image must be an ImageSpec, got {self.image!r}")
            self._set("image", ImageSpec.from_dict(values))
        if not isinstance(self.cut_layer, str):
            raise ValueError(
                f"{_PREFIX}.cut_layer must be a layer name (str, '' for none), "
                f"got {self.cut_layer!r}"
            )
        if isinstance(self.cut_candidates, str) or not all(
            isinstance(name, str) and name for name in self.cut_candidates
        ):
            raise ValueError(
                f"{_PREFIX}.cut_candidates must be a list of layer names, got "
                f"{self.cut_candidates!r}"
            )
        self._set("cut_candidates", tuple(self.cut_candidates))
        if self.cut_candidates and self.cut_layer != CUT_AUTO:
            raise ValueError(
                f"{_PREFIX}.cut_candidates: only used with cut_layer {CUT_AUTO!r} (got "
                f"cut_layer={self.cut_layer!r})"
            )
        _check_int("drop_top_layers", self.drop_top_layers, 0)
        if self.cut_layer and self.drop_top_layers:
            raise ValueError(
                f"{_PREFIX}.cut_layer / {_PREFIX}.drop_top_layers: set one, not both (got "
                f"cut_layer={self.cut_layer!r}, drop_top_layers={self.drop_top_layers})"
            )
        check_pooling(self.pooling, f"{_PREFIX}.pooling")
        self._set("hidden_units", _hidden_units(self.hidden_units))
        for name in ("dropout", "learning_rate", "fine_tune_lr_factor", "fine_tune_budget_seconds"):
            self._set(name, _number(name, getattr(self, name)))
        for name in ("batch_size", "epochs", "early_stopping_patience", "fine_tune_epochs"):
            _check_int(name, getattr(self, name), int(BOUNDS[name].low))
        _check_int("seed", self.seed, int(BOUNDS["seed"].low))
        self._set("fine_tune", normalize_fine_tune(self.fine_tune))
        if self.mode not in MODES:
            raise ValueError(
                f"{_PREFIX}.mode: {self.mode!r} is not allowed; choose one of: {', '.join(MODES)}"
            )

    def _set(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (the Trainer's custom_config)."""
        values = dataclasses.asdict(self)
        values["image"] = self.image.to_dict()
        values["hidden_units"] = list(self.hidden_units)
        values["cut_candidates"] = list(self.cut_candidates)
        return values

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> TrainerConfig:
        """Builds and validates a TrainerConfig from a (JSON-decoded) dict.

        Raises:
            ValueError: an unknown or missing key, or a value out of its allowed range;
                the message names the field and the allowed values.
        """
        if not isinstance(values, Mapping):
            raise ValueError(
                f"{_PREFIX}: custom_config must be a dict of TrainerConfig fields (with at "
                f"least 'image'), got {values!r}"
            )
        fields = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(values) - set(fields))
        if unknown:
            raise ValueError(
                f"{_PREFIX}: unknown key(s) {', '.join(map(str, unknown))}; "
                f"allowed keys: {', '.join(fields)}"
            )
        if "image" not in values:
            raise ValueError(f"{_PREFIX}.image: required but missing (an ImageSpec dict)")
        kwargs = dict(values)
        image = kwargs["image"]
        if not isinstance(image, ImageSpec):
            if not isinstance(image, Mapping):
                raise ValueError(f"{_PREFIX}.image: expected a mapping of ImageSpec fields")
            try:
                kwargs["image"] = ImageSpec.from_dict(image)
            except ValueError as error:
                raise ValueError(f"{_PREFIX}.image: {error}") from error
        return cls(**kwargs)

    @property
    def fixed_unfreeze(self) -> int | None:
        """Layers to unfreeze when fixed by the config (0 for "off"); None for "auto"."""
        if self.fine_tune == FINE_TUNE_AUTO:
            return None
        return 0 if self.fine_tune == FINE_TUNE_OFF else int(self.fine_tune)


def normalize_fine_tune(value: Any) -> str | int:
    """The canonical fine_tune: "off", "auto" or an int K >= 1 (0 and "0" are "off").

    Raises:
        ValueError: naming trainer.fine_tune and the allowed values.
    """
    if isinstance(value, str) and value in (FINE_TUNE_OFF, FINE_TUNE_AUTO):
        return value
    number = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.strip().isdigit():
        number = int(value.strip())
    if number is None or number < 0:
        raise ValueError(
            f"{_PREFIX}.fine_tune: {value!r} is not allowed; choose one of: "
            f"'{FINE_TUNE_OFF}', '{FINE_TUNE_AUTO}', or an integer K >= 0 "
            "(top weighted layers of the frozen base to unfreeze; 0 = off)"
        )
    return FINE_TUNE_OFF if number == 0 else number


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{_PREFIX}.{name}: must be an integer >= {minimum}, got {value!r}")


def _number(name: str, value: Any) -> float:
    """`value` as a float within BOUNDS[name]; the error names the field and the range."""
    bounds = BOUNDS[name]
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or not bounds.contains(value)
    ):
        raise ValueError(f"{_PREFIX}.{name}: must be a number {bounds.describe()}, got {value!r}")
    return float(value)


def _hidden_units(value: Any) -> tuple[int, ...]:
    units = tuple(value) if isinstance(value, (list, tuple)) else None
    if units is None or any(isinstance(u, bool) or not isinstance(u, int) or u < 1 for u in units):
        raise ValueError(
            f"{_PREFIX}.hidden_units: must be a list of integers >= 1 (empty for a linear "
            f"head), got {value!r}"
        )
    return units
