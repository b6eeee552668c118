"""No test or benchmark module imports a test module.

Helpers that several test modules share are fixtures in tests/conftest.py (which pytest
loads; nothing imports it) or plain builders in components.common.testing (which
bench/ uses too). The check walks every import statement of tests/*.py and bench/*.py
with ``ast``, function-level ones included, and those of the Python programs a module
assigns to a name as a string (a child process's script); nothing is imported to
check it.
"""

import ast
import os
import textwrap

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FOLDERS = ("tests", "bench")


def _files() -> list[str]:
    """Every tests/*.py and bench/*.py, as paths relative to the repository."""
    return sorted(
        os.path.join(folder, name)
        for folder in FOLDERS
        for name in os.listdir(os.path.join(REPO, folder))
        if name.endswith(".py")
    )


def _imported(tree: ast.AST, package: str) -> list[str]:
    """Absolute names of the tree's imports (relative ones resolved in `package`); for
    ``from a import b``, "a.b" (b may be a module)."""
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            packages = package.split(".")
            prefix = packages[: len(packages) + 1 - node.level] if node.level else []
            base = ".".join([*prefix, node.module] if node.module else prefix)
            names += [f"{base}.{alias.name}" if base else alias.name for alias in node.names]
    return names


def _programs(tree: ast.AST) -> list[ast.AST]:
    """The strings assigned to a name in the tree that are Python programs."""
    programs = []
    for node in ast.walk(tree):
        value = node.value if isinstance(node, ast.Assign | ast.AnnAssign) else None
        if isinstance(value, ast.Constant) and isinstance(value.value, str):
            try:
                programs.append(ast.parse(textwrap.dedent(value.value)))
            except (SyntaxError, ValueError):
                continue  # prose, not a program
    return programs


def violations_in(path: str, source: str) -> list[str]:
    """'<path> imports <module>' for every import of a test module or of conftest."""
    package = os.path.dirname(path).replace(os.sep, ".")
    tree = ast.parse(source)
    found = []
    for part in (tree, *_programs(tree)):
        for name in _imported(part, package):
            top = name.split(".")[0]
            if top == "tests" or top == "conftest" or name.endswith(".conftest"):
                found.append(f"{path} imports {name}")
    return found


def test_no_test_or_bench_module_imports_a_test_module():
    found = []
    for path in _files():
        with open(os.path.join(REPO, path), encoding="utf-8") as f:
            found += violations_in(path, f.read())
    assert found == []


def test_the_walk_covers_both_folders_and_the_conftest():
    files = _files()
    assert "tests/conftest.py" in files and "tests/test_suite_hygiene.py" in files
    assert any(path.startswith("bench/") for path in files)


@pytest.mark.parametrize(
    "source",
    [
        "from tests.test_bottleneck_cache_core import make_image",
        "import tests.test_image_example_gen_core",
        "from tests import conftest",
        "import conftest",
        "from . import test_trainer",
        "from .conftest import run_job",
        "def helper():\n    from tests.test_trainer import _images\n",
        'CHILD = """\nimport sys\nfrom tests.test_bottleneck_cache_core import run_job\n"""',
    ],
)
def test_the_checker_catches_a_deliberate_violation(source):
    assert violations_in("tests/test_example.py", source) != []


def test_the_checker_allows_what_the_suite_may_import():
    allowed = (
        "from components.common.testing import make_image\n"
        "import pytest\n"
        "from bench import transfer_vs_scratch\n"
        "from pipeline import cli\n"
        'TEXT = """Tests come from the tests folder: not code."""\n'
        'CHILD = """\nfrom components.bottleneck_cache import cache\n"""\n'
    )
    assert violations_in("tests/test_example.py", allowed) == []
    assert violations_in("bench/example.py", "from components.common import testing") == []
