"""BaseModelGen: the base network as a `Model` artifact (a directory with model.keras).

Every base reaches the rest of the DAG in this one form. A driver fingerprints the
user's weights or model file, so TFX's cache rebuilds the base when the file changes.
"""

from typing import Any

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts

from components.base_model_gen import bases, executor, spec
from components.common.fingerprint_driver import FingerprintDriver


class Driver(FingerprintDriver):
    """Adds a fingerprint of the weights/model file to the execution properties."""

    FINGERPRINT_KEY = spec.SOURCE_FINGERPRINT_KEY

    @classmethod
    def fingerprint(cls, exec_properties: dict[str, Any]) -> str:
        source = exec_properties.get(spec.WEIGHTS_KEY) or exec_properties.get(spec.PATH_KEY)
        return bases.source_fingerprint(source or "")


class BaseModelGen(base_component.BaseComponent):
    """Builds a Keras Applications base or loads a user's model file."""

    SPEC_CLASS = spec.BaseModelGenSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)
    DRIVER_CLASS = Driver

    def __init__(
        self,
        kind: str,
        height: int,
        width: int,
        name: str = "",
        weights: str = "",
        path: str = "",
        seed: int = 0,
    ):
        """Constructs a BaseModelGen.

        Args:
          kind: "keras_application" (name, optional weights file), "builtin" (name of
            a small architecture of this project) or "file" (path).
          height: the pipeline's image height (the base's input).
          width: the pipeline's image width.
          name: a Keras Applications name, for kind "keras_application".
          weights: a local `*_notop.h5` weights file; "" builds random weights.
          path: a `.keras` or `.h5` model file, for kind "file".
          seed: seeds random weights so that the same config builds the same base.

        Raises:
          ValueError: an argument outside its allowed values.
        """
        if kind not in spec.KINDS:
            raise ValueError(f"kind must be one of {', '.join(spec.KINDS)}, got {kind!r}")
        if kind == spec.KIND_APPLICATION and name not in spec.APPLICATIONS:
            raise ValueError(
                f"name must be one of {', '.join(spec.APPLICATIONS)} for kind {kind!r}, "
                f"got {name!r}"
            )
        if kind == spec.KIND_BUILTIN and name not in spec.BUILTINS:
            raise ValueError(
                f"name must be one of {', '.join(spec.BUILTINS)} for kind {kind!r}, got {name!r}"
            )
        if kind == spec.KIND_FILE and not path:
            raise ValueError("path is required for kind 'file'")
        super().__init__(
            spec=spec.BaseModelGenSpec(
                **{
                    spec.KIND_KEY: kind,
                    spec.NAME_KEY: name,
                    spec.WEIGHTS_KEY: weights,
                    spec.PATH_KEY: path,
                    spec.HEIGHT_KEY: height,
                    spec.WIDTH_KEY: width,
                    spec.SEED_KEY: seed,
                    spec.MODEL_KEY: types.Channel(type=standard_artifacts.Model),
                }
            )
        )
