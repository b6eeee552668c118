"""Reliability end to end: real runs of the CLI on the demo data, as a user would start them.

- A degenerate dataset (a class cut to one image) stops before anything is trained,
  with a message naming the class and its counts, and exit status 4.
- Two `tfx-transfer run` processes on the same pipeline root: the second refuses at
  once (exit status 3, naming the run that holds the root) while the first finishes.
"""

import os
import shutil
import subprocess
import sys
import time

import pytest

from pipeline import cli
from pipeline.run_summary import latest_run

pytestmark = pytest.mark.e2e


def _write_config(root, data_root, base_model=True) -> str:
    text = (
        f"pipeline_name: rel\npipeline_root: {root / 'runs'}\nschema: {root / 'schema.pbtxt'}\n"
        f"data: {{root: {data_root}, train_ratio: 0.5, min_train_per_class: 2}}\n"
        "image: {height: 16, width: 16}\n"
        f"serving: {{model_name: digits, root: {root / 'serving'}}}\n"
    )
    if base_model:
        text += (
            "base_model: {kind: builtin, name: small_cnn, cut_layer: block2_pool}\n"
            "training: {epochs: 2, fine_tune: 'off'}\n"
        )
    path = root / "config.yaml"
    path.write_text(text)
    return str(path)


@pytest.fixture(scope="module")
def demo(tmp_path_factory, demo_with_schema):
    return demo_with_schema(tmp_path_factory.mktemp("reliability"))


def test_a_class_cut_to_one_image_stops_the_run_before_training(demo, tmp_path, capsys):
    data_root = tmp_path / "target"
    shutil.copytree(demo / "demo" / "target", data_root)
    for name in sorted(os.listdir(data_root / "7"))[1:]:
        os.remove(data_root / "7" / name)
    shutil.copy(demo / "schema.pbtxt", tmp_path / "schema.pbtxt")
    status = cli.main(["run", "--config", _write_config(tmp_path, data_root)])
    err = capsys.readouterr().err
    assert status == 4, err
    assert "too few labelled images" in err and "class '7': " in err
    assert "data.min_train_per_class" in err and "Traceback" not in err
    states = latest_run(str(tmp_path / "runs" / "metadata.sqlite"), "rel").states
    assert states.get("AnomalyGate") == "FAILED", states
    assert not {"Transform", "BottleneckCache", "Trainer", "Pusher"} & set(states), states
    assert not (tmp_path / "serving").exists()


def test_a_second_run_on_the_same_pipeline_root_refuses_while_the_first_runs(demo):
    # With a base model the first run trains for a while: the second one, which needs
    # a few seconds to start, meets it holding the root.
    config = _write_config(demo, demo / "demo" / "target", base_model=True)
    command = [sys.executable, "-m", "pipeline.cli", "run", "--config", config]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    first = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    lock = demo / "runs" / "rel" / ".run.lock"
    # The first run holds the lock once it wrote its pid there (bounded wait, no deadline
    # asserted: on a loaded machine this only takes longer).
    for _ in range(600):
        if lock.exists() and f"pid {first.pid}" in lock.read_text():
            break
        assert first.poll() is None, first.stdout.read().decode()[-3000:]
        time.sleep(0.5)
    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    output, _ = first.communicate(timeout=1200)
    assert second.returncode == 3, second.stderr[-3000:]
    assert f"another run is using this pipeline (pid {first.pid}" in second.stderr
    assert "Traceback" not in second.stderr
    assert first.returncode == 0, output.decode()[-3000:]
    # A run a person can read: one line per step and the summary on the terminal,
    # everything else (TensorFlow's start-up lines, absl, Beam, Keras) in the log file.
    text = output.decode()
    assert "pipeline rel finished" in text
    assert "  Trainer ... ran (" in text and "  Pusher ... ran (" in text
    assert len(text.splitlines()) <= 40, text
    assert "tensorflow/core" not in text and "Epoch " not in text
    log_path = text.splitlines()[0].removeprefix("run: full log in ").strip()
    log = open(log_path, encoding="utf-8", errors="replace").read()
    assert "Component Trainer is running." in log and "tensorflow" in log


def test_runs_lists_the_past_runs_from_ml_metadata(demo, capsys):
    """`tfx-transfer runs`: one line per run (after the run of the test above)."""
    config = _write_config(demo, demo / "demo" / "target", base_model=True)
    assert cli.main(["runs", "--config", config]) == 0
    header, *rows = capsys.readouterr().out.strip().splitlines()
    assert header.split()[:4] == ["run", "started", "took", "state"]
    complete = [row for row in rows if " COMPLETE " in row]
    assert complete, rows
    run_id, _, _, took, state, accuracy, pushed = complete[-1].split()[:7]
    assert state == "COMPLETE" and 0.0 <= float(accuracy) <= 1.0
    # Two epochs do not reach the 0.5 floor: not blessed, nothing pushed ("-").
    assert pushed == "-" and not (demo / "serving" / "digits").exists()
