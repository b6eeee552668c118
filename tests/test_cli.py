"""The CLI: the run summary's lines, and one message with a documented exit status for
every failure a user can cause (real files, real sockets, real locks)."""

import socket
import types

import pytest
from ml_metadata.proto import metadata_store_pb2
from PIL import Image

from pipeline import cli
from pipeline import schema as schema_lib
from pipeline.config import load_config
from pipeline.local_runner import run_lock
from pipeline.run_summary import RunSummary


def test_counts_of_a_cached_component_are_not_reported_as_this_runs_work(capsys):
    counts = {"vectors_computed": 250, "vectors_reused": 0}
    cli._print_counts("bottleneck cache", counts, "COMPLETE")
    cli._print_counts("bottleneck cache", counts, "CACHED")
    cli._print_counts("ingest", {}, "COMPLETE")
    ran, cached = capsys.readouterr().out.splitlines()
    assert ran == "  bottleneck cache: vectors_computed 250, vectors_reused 0"
    assert cached.startswith("  bottleneck cache: nothing done this run (TFX's cache; when it ran")
    assert "vectors_computed 250" in cached


# --- the run summary's lines ------------------------------------------------------------------
def _artifact(**props):
    artifact = metadata_store_pb2.Artifact()
    for key, value in props.items():
        if isinstance(value, int):
            artifact.custom_properties[key].int_value = value
        else:
            artifact.custom_properties[key].string_value = value
    return artifact


def _summary(states, **outputs):
    return RunSummary(run_id="r1", states=states, outputs=outputs)


_CONFIG = types.SimpleNamespace(pipeline_name="p", pipeline_dir="/runs/p")
_RAN = {"Trainer": "COMPLETE", "ServingCheck": "COMPLETE", "Pusher": "COMPLETE"}
_SERVABLE = [_artifact(blessed=1, reason="6 requests answered")]


def _printed(capsys, summary):
    status = cli.print_summary(_CONFIG, summary, 12.0)
    return status, capsys.readouterr().out.splitlines()


def test_summary_of_a_run_that_pushed(capsys):
    pushed = [_artifact(pushed=1, pushed_destination="/s/m/17")]
    status, lines = _printed(capsys, _summary(_RAN, Pusher=pushed, ServingCheck=_SERVABLE))
    assert status == 0
    assert "pipeline p finished in 12s" in lines
    assert "  ran:    Pusher, ServingCheck, Trainer" in lines
    assert "  cached: -" in lines
    assert "  serving check: servable: 6 requests answered" in lines
    assert "  pushed: /s/m/17" in lines


def test_summary_of_a_fully_cached_rerun(capsys):
    cached = dict.fromkeys(_RAN, "CACHED")
    pushed = [_artifact(pushed=1, pushed_destination="/s/m/17")]
    _, lines = _printed(capsys, _summary(cached, Pusher=pushed, ServingCheck=_SERVABLE))
    assert "  ran:    -" in lines
    assert "  pushed: nothing new (the unchanged model is already at /s/m/17)" in lines


def test_summary_of_a_model_already_served(capsys):
    pushed = [_artifact(pushed=1, pushed_destination="/s/m/17", already_served=1)]
    _, lines = _printed(capsys, _summary(_RAN, Pusher=pushed, ServingCheck=_SERVABLE))
    assert "  pushed: nothing new (the same model is already served at /s/m/17)" in lines


def test_summary_of_a_model_that_cannot_serve(capsys):
    check = [_artifact(blessed=0, reason="predict_images(images[8]) fails under TF Serving")]
    pushed = [_artifact(pushed=0)]
    _, lines = _printed(capsys, _summary(_RAN, Pusher=pushed, ServingCheck=check))
    assert (
        "  serving check: NOT servable: predict_images(images[8]) fails under TF Serving" in lines
    )
    assert "  pushed: nothing (the model does not answer under TF Serving's loader)" in lines


def test_summary_of_a_model_not_blessed_and_a_failed_node(capsys):
    states = {**_RAN, "latest_blessed_model_resolver": "FAILED"}
    pushed = [_artifact(pushed=0)]
    status, lines = _printed(capsys, _summary(states, Pusher=pushed, ServingCheck=_SERVABLE))
    assert status == 1
    assert "  FAILED: latest_blessed_model_resolver (see the errors logged above)" in lines
    assert "  pushed: nothing (the model was not blessed)" in lines


# --- one message and a documented exit status per failure -------------------------------------
def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _png(path):
    Image.new("RGB", (4, 4), (200, 0, 0)).save(path)
    return str(path)


def test_schema_of_one_class_folder_is_refused_with_the_real_fix(tmp_path, capsys):
    (tmp_path / "only").mkdir()
    status = cli.main(["schema", "--data-root", str(tmp_path), "--out", str(tmp_path / "s")])
    assert status == 2
    err = capsys.readouterr().err
    assert "has one class folder ('only')" in err and "add a sub-folder" in err
    assert not (tmp_path / "s").exists()


def test_predict_on_a_folder_is_a_message(tmp_path, capsys):
    status = cli.main(["predict", str(tmp_path), "--model-dir", str(tmp_path)])
    assert status == 2
    assert f"{tmp_path} is a folder; pass image files" in capsys.readouterr().err


@pytest.mark.parametrize("protocol", ["grpc", "rest"])
def test_predict_against_a_closed_port_is_a_message(tmp_path, capsys, protocol):
    port = _closed_port()
    server = f"127.0.0.1:{port}" if protocol == "grpc" else f"http://127.0.0.1:{port}"
    args = ["predict", _png(tmp_path / "a.png"), "--server", server, "--model-name", "m"]
    status = cli.main([*args, "--protocol", protocol])
    assert status == 5
    err = capsys.readouterr().err
    assert err.startswith("tfx-transfer predict: error: ")
    assert "is the server running" in err and "Traceback" not in err


def _run_config(tmp_path, schema="s.pbtxt"):
    for name in ("cat", "dog"):
        (tmp_path / "data" / name).mkdir(parents=True)
        _png(tmp_path / "data" / name / "a.png")
    schema_lib.write_schema(schema_lib.build_schema(["cat", "dog"]), str(tmp_path / "s.pbtxt"))
    config = tmp_path / "c.yaml"
    config.write_text(
        f"pipeline_name: p\npipeline_root: {tmp_path / 'runs'}\nschema: {tmp_path / schema}\n"
        f"data: {{root: {tmp_path / 'data'}}}\nimage: {{height: 8, width: 8}}\n"
    )
    return str(config)


def test_run_with_a_missing_schema_stops_before_any_step(tmp_path, capsys):
    status = cli.main(["run", "--config", _run_config(tmp_path, schema="missing.pbtxt")])
    assert status == 2
    err = capsys.readouterr().err
    assert "schema: " in err and "missing.pbtxt does not exist" in err
    # Nothing ran: no metadata, no pipeline folder (only the run's log file).
    assert not (tmp_path / "runs" / "metadata.sqlite").exists()
    assert not (tmp_path / "runs" / "p").exists()


def test_run_while_another_run_holds_the_pipeline_root(tmp_path, capsys):
    path = _run_config(tmp_path)
    with run_lock(load_config(path)):
        status = cli.main(["run", "--config", path])
    assert status == 3
    err = capsys.readouterr().err
    assert "another run is using this pipeline (pid " in err and "--wait" in err
