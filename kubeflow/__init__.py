"""Kubeflow Pipelines (KFP v2) deployment of the tfx-transfer pipeline.

config.py (the deployment's own YAML), compile.py (KubeflowV2DagRunner -> pipeline
YAML), submit.py (runs and recurring runs), serving/ (TensorFlow Serving manifests).

The package also resolves the KFP schema titles of the project's custom artifact types
(``kubeflow.ClassVocabulary``): a compiled step's container entrypoint imports an
artifact class by its title, and KFP titles must look like ``<module>.<Class>``. See
artifact_types.py.
"""

from __future__ import annotations

import importlib
from typing import Any


def __getattr__(name: str) -> Any:
    """Returns a custom artifact class by the name that its KFP schema title uses."""
    if name[:1].isupper():  # class names only: submodules are imported the usual way
        artifact_types = importlib.import_module("kubeflow.artifact_types")
        if name in artifact_types.ARTIFACT_CLASSES:
            return artifact_types.artifact_class(name)
    raise AttributeError(f"module 'kubeflow' has no attribute {name!r}")
