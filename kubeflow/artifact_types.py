"""KFP schema titles for the project's custom artifact types.

TFX's KubeflowV2 compiler writes a custom artifact type's TYPE_NAME as the KFP schema
title, and refuses names that are not ``<lowercase module>.<Class>``
(tfx/orchestration/kubeflow/v2/compiler_utils.py, _SCHEMA_TITLE_RE). In the container,
the step entrypoint imports the class by that title (kubeflow_v2_entrypoint_utils.py,
_retrieve_class_path). The project's custom types are named plainly
(``ClassVocabulary``), which is what the local ML Metadata stores hold, so the compile
gives them the title ``kubeflow.<Class>`` for the duration of the compile only, and
``kubeflow/__init__.py`` resolves that title back to the very class.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterable, Iterator

from pipeline.config import ConfigError

TITLE_MODULE = "kubeflow"

# Class name -> dotted path of every custom artifact type that a pipeline step outputs.
ARTIFACT_CLASSES = {
    "ClassVocabulary": "components.common.artifacts.ClassVocabulary",
    "IngestReport": "components.common.artifacts.IngestReport",
}


def artifact_class(name: str) -> type:
    """Imports the artifact class registered under `name`."""
    module, _, attr = ARTIFACT_CLASSES[name].rpartition(".")
    return getattr(importlib.import_module(module), attr)


def title(cls: type) -> str:
    """The KFP schema title the compile gives a custom artifact class."""
    return f"{TITLE_MODULE}.{cls.__name__}"


def custom_types(artifact_types: Iterable[type]) -> list[type]:
    """The types among `artifact_types` that TFX's KFP compiler does not know itself."""
    from tfx.orchestration.kubeflow.v2 import compiler_utils

    known = compiler_utils._SUPPORTED_STANDARD_ARTIFACT_TYPES  # noqa: SLF001 - TFX's list
    return sorted({t for t in artifact_types if t not in known}, key=lambda t: t.__name__)


@contextlib.contextmanager
def kfp_titles(artifact_types: Iterable[type]) -> Iterator[None]:
    """Gives each custom artifact type its KFP title while the block runs.

    Raises:
      ConfigError: a custom type is not registered in ARTIFACT_CLASSES (its title
        would not import in the container).
    """
    types = custom_types(artifact_types)
    for cls in types:
        registered = ARTIFACT_CLASSES.get(cls.__name__)
        if registered != f"{cls.__module__}.{cls.__qualname__}":
            raise ConfigError(
                f"artifact type {cls.__module__}.{cls.__qualname__} has no KFP title: add "
                f"{cls.__name__!r}: {cls.__module__ + '.' + cls.__qualname__!r} to "
                "ARTIFACT_CLASSES in kubeflow/artifact_types.py"
            )
    saved = {cls: cls.__dict__.get("TYPE_NAME") for cls in types}
    try:
        for cls in types:
            cls.TYPE_NAME = title(cls)
        yield
    finally:
        for cls, name in saved.items():
            cls.TYPE_NAME = name
