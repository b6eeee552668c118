"""The import contract: which folder may import which (docs/ARCHITECTURE.md, "Layers").

Lowest first:

1. ``components.common``: the shared lower layer (tf.Example contract, preprocessing,
   model I/O and surgery, artifact I/O, TF Serving requests, counting, drivers). It
   imports nothing of the project above it; ``components.common.examples`` (the
   contract clients read) imports nothing at all beyond the standard library.
2. ``components.<name>``: one custom component each (and the Trainer's user code in
   ``components.trainer``); each imports ``components.common`` and itself only.
3. ``pipeline``: the application (config, DAG, runner, CLI, predict client, summary);
   it may import any component, and only ``pipeline.cli`` imports ``kubeflow``.
   Neither ``components`` nor ``pipeline`` imports ``tfx.v1``, which imports every TFX
   extension (Google Cloud's clients too) at the start of every run and step.
4. ``kubeflow``: deployment; imports ``pipeline`` and ``components``.

The check walks every import statement (function-level ones included) of every
module with ``ast``; nothing is imported to check it.
"""

import ast
import os
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("components", "pipeline", "kubeflow")
PROJECT = (*PACKAGES, "bench", "tests")


def _modules() -> dict[str, str]:
    """module name -> file path, for every module of the three layered packages."""
    found = {}
    for package in PACKAGES:
        for root, _, names in os.walk(os.path.join(REPO, package)):
            for name in names:
                if name.endswith(".py"):
                    path = os.path.join(root, name)
                    module = os.path.relpath(path, REPO)[:-3].replace(os.sep, ".")
                    found[module.removesuffix(".__init__")] = path
    return found


def imports_of(module: str, source: str) -> list[str]:
    """Every absolute module name imported by the source (relative imports resolved)."""
    names = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = module.split(".")[: -node.level]
                base = ".".join([*parent, base] if base else parent)
            names += (
                [f"{base}.{alias.name}" for alias in node.names]
                if base
                in (
                    *PACKAGES,
                    "components.common",
                    "tfx",  # to see `from tfx import v1`
                )
                else [base]
            )
    return names


def _component(module: str) -> str | None:
    """'components.<name>' of a component module (None for components.common)."""
    parts = module.split(".")
    if parts[0] != "components" or len(parts) < 2 or parts[1] == "common":
        return None
    return ".".join(parts[:2])


def violation(module: str, imported: str) -> str | None:
    """Why `module` may not import `imported` (None when it may)."""
    top = imported.split(".")[0]
    if (
        module == "components.common.examples"
        and imported.split(".")[0] not in sys.stdlib_module_names
    ):
        return "the tf.Example contract imports only the standard library"
    if imported.split(".")[:2] == ["tfx", "v1"] and not module.startswith("kubeflow"):
        return (
            "tfx.v1 imports every TFX extension with it (Google Cloud AI Platform's client: "
            "about 4 s of each run's start); import the class from its own module"
        )
    if top not in PROJECT:
        return None
    if top in ("bench", "tests"):
        return f"{top} is not importable by the layered packages"
    if module.startswith("components.common"):
        if not imported.startswith("components.common") and imported != "components":
            return "components.common is the lowest layer: it imports only itself"
        return None
    if module.startswith("components"):
        own = _component(module)
        if imported.startswith("components.common") or imported == "components":
            return None
        if own and (imported == own or imported.startswith(own + ".")):
            return None
        return f"a component imports components.common and itself only, not {imported}"
    if module.startswith("pipeline"):
        if top == "kubeflow" and module != "pipeline.cli":
            return "only pipeline.cli (the entry point) imports kubeflow"
        return None
    return None  # kubeflow: anything below it


def violations() -> list[str]:
    found = []
    for module, path in sorted(_modules().items()):
        with open(path, encoding="utf-8") as f:
            source = f.read()
        for imported in imports_of(module, source):
            why = violation(module, imported)
            if why:
                found.append(f"{module} imports {imported}: {why}")
    return found


def test_no_module_imports_upward_or_sideways():
    assert violations() == []


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("components.common.preprocessing", "from pipeline import config"),
        ("components.common.model_io", "from components.trainer import data"),
        ("components.common.examples", "import tensorflow as tf"),
        ("components.serving_check.check", "from components.image_example_gen import spec"),
        ("components.trainer.train", "import pipeline.dag"),
        ("pipeline.dag", "from kubeflow import compile"),
        ("components.bottleneck_cache.cache", "from tests import conftest"),
        ("pipeline.dag", "from tfx import v1 as tfx"),
        ("components.anomaly_gate.component", "import tfx.v1.dsl"),
    ],
)
def test_the_checker_catches_a_deliberate_violation(module, source):
    assert [violation(module, name) for name in imports_of(module, source)] != [None]


def test_the_checker_allows_what_the_layers_allow():
    allowed = [
        ("components.serving_check.check", "from components.common import serving_requests"),
        ("components.serving_check.component", "from components.serving_check import check"),
        ("pipeline.dag", "from components.trainer import train"),
        ("pipeline.cli", "from kubeflow import compile"),
        ("kubeflow.compile", "from pipeline import dag"),
        ("kubeflow.compile", "from tfx import v1 as tfx"),
        ("pipeline.dag", "from tfx.components import Pusher"),
        ("components.common.examples", "import dataclasses"),
    ]
    for module, source in allowed:
        assert [violation(module, name) for name in imports_of(module, source)] == [None] * len(
            imports_of(module, source)
        ), (module, source)
