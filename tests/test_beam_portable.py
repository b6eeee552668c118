"""The project's two Beam jobs through Beam's portable job API, as Flink, Spark and
Dataflow Runner v2 run them.

Each executor runs twice on the same inputs: once on the DirectRunner in memory (Beam's
default runner: everything in the test process), once with ``--runner=PortableRunner``
through Beam's embedded Python job server and an ``EXTERNAL`` environment, whose SDK
workers are started by ``apache_beam.runners.worker.worker_pool_main`` in a separate
process. Every DoFn, CombineFn, lambda and model handler is then pickled, shipped and run
in a process that shares no memory with the driver, so equal outputs show that neither
ImageExampleGen nor BottleneckCache depends on the driver's memory or on state a remote
worker would not have. The inputs: a small copy of the demo digits (ImageExampleGen), and
the examples it ingests (BottleneckCache, with a tiny CNN cut at relu1).

The executors get their Beam arguments the way TFX passes them (the executor context's
beam_pipeline_args); no Java is needed.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

import numpy as np
import pytest
import tensorflow as tf
from tfx.dsl.components.base import base_beam_executor
from tfx.types import artifact_utils, standard_artifacts

from components.bottleneck_cache import spec as cache_spec
from components.common import artifacts
from components.common.examples import IMAGE_ID_KEY, SPLITS
from components.common.testing import artifact, read_vectors
from components.image_example_gen import executor as ieg_executor
from components.image_example_gen import spec as ieg_spec
from pipeline.demo_data import write_demo_data

pytestmark = pytest.mark.e2e

TARGET_PER_CLASS = 8  # 5 target classes: 40 digits
_POLLS, _POLL_SECONDS = 600, 0.1  # waiting for the worker pool's port (bounded)
_STOP_SECONDS = 15


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("localhost", 0))
        return sock.getsockname()[1]


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("localhost", port), timeout=1):
            return True
    except OSError:
        return False


def _stop(process: subprocess.Popen) -> None:
    """Ends the pool's process group (the pool and the SDK workers it started): SIGTERM,
    then SIGKILL to whatever is left."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=_STOP_SECONDS)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        pass
    try:  # the pool if it hung, and any worker it left behind
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


class WorkerPool:
    """A running worker_pool_main: the Beam arguments of a portable run that uses it,
    and how many SDK workers it has started so far (read from its log)."""

    STARTED = "Starting worker with command"  # what the pool logs for each SDK worker

    def __init__(self, port: int, log_path):
        self.args = [
            "--runner=PortableRunner",
            "--job_endpoint=embed",
            "--environment_type=EXTERNAL",
            f"--environment_config=localhost:{port}",
        ]
        self.log_path = log_path

    def workers_started(self) -> int:
        return self.log_path.read_text(errors="replace").count(self.STARTED)


@pytest.fixture(scope="module")
def worker_pool(tmp_path_factory):
    """A worker pool in a separate process, for portable runs (WorkerPool).

    The pool runs in its own process group with the virtual environment's bin first on
    PATH (it starts the SDK workers with the `python` found there), and is stopped with
    its workers at the end of the module.
    """
    port = _free_port()
    log_path = tmp_path_factory.mktemp("worker_pool") / "worker_pool.log"
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    command = [
        sys.executable,
        "-m",
        "apache_beam.runners.worker.worker_pool_main",
        f"--service_port={port}",
    ]
    with open(log_path, "wb") as log:
        pool = subprocess.Popen(
            command,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        for _ in range(_POLLS):
            if pool.poll() is not None or _accepts(port):
                break
            time.sleep(_POLL_SECONDS)
        if pool.poll() is not None or not _accepts(port):
            pytest.fail(f"worker pool on port {port} did not start: {log_path.read_text()}")
        yield WorkerPool(port, log_path)
    finally:
        _stop(pool)


@pytest.fixture
def portable_args(worker_pool, tmp_path, monkeypatch):
    """The pool's Beam arguments for one test; asserts afterwards that the pool started
    an SDK worker for it (the job did not run in the test process).

    With Beam arguments, TFX's executor packages TFX as a 42 MB sdist in a new temp
    dir (dependency_utils.make_beam_dependency_flags) and never removes it: the temp dir
    is the test's own here.
    """
    temp = tmp_path / "tempdir"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    before = worker_pool.workers_started()
    yield worker_pool.args
    assert worker_pool.workers_started() > before, worker_pool.log_path.read_text()


def _ingest(input_base, output_uri, beam_args=None):
    """ImageExampleGen's Executor.Do with the executor context's beam_pipeline_args;
    returns (examples, vocabulary, report) artifacts."""
    outputs = {
        ieg_spec.EXAMPLES_KEY: [artifact(standard_artifacts.Examples, output_uri / "examples")],
        ieg_spec.VOCABULARY_KEY: [artifact(artifacts.ClassVocabulary, output_uri / "vocabulary")],
        ieg_spec.REPORT_KEY: [artifact(artifacts.IngestReport, output_uri / "report")],
    }
    properties = {
        ieg_spec.INPUT_BASE_KEY: str(input_base),
        ieg_spec.TRAIN_RATIO_KEY: 0.5,
        ieg_spec.MAX_PIXELS_KEY: 64_000_000,
        ieg_spec.MAX_SIDE_KEY: 0,
        ieg_spec.LABELLED_KEY: 1,
    }
    context = base_beam_executor.BaseBeamExecutor.Context(beam_pipeline_args=beam_args)
    ieg_executor.Executor(context).Do({}, outputs, properties)
    keys = (ieg_spec.EXAMPLES_KEY, ieg_spec.VOCABULARY_KEY, ieg_spec.REPORT_KEY)
    return tuple(outputs[key][0] for key in keys)


def _read(directory: str, name: str) -> str:
    with open(os.path.join(directory, name), encoding="utf-8") as f:
        return f.read()


def _examples_by_id(examples, split: str) -> dict:
    """{image_id: parsed tf.train.Example} of one split; asserts ids are unique."""
    pattern = os.path.join(artifact_utils.get_split_uri([examples], split), "*")
    records = [
        r.numpy()
        for r in tf.data.TFRecordDataset(tf.io.gfile.glob(pattern), compression_type="GZIP")
    ]
    parsed = {}
    for record in records:
        example = tf.train.Example.FromString(record)
        parsed[example.features.feature[IMAGE_ID_KEY].bytes_list.value[0].decode()] = example
    assert len(parsed) == len(records), f"duplicate image ids in {split}"
    return parsed


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo's target folders (TARGET_PER_CLASS digits per class) and ImageExampleGen's
    outputs on them from the DirectRunner in memory: (input_base, outputs, root)."""
    root = tmp_path_factory.mktemp("portable")
    write_demo_data(str(root / "demo"), target_per_class=TARGET_PER_CLASS)
    input_base = root / "demo" / "target"
    return input_base, _ingest(input_base, root / "direct"), root


def test_image_example_gen_portable_run_matches_the_direct_run(demo, portable_args):
    input_base, direct, root = demo
    portable = _ingest(input_base, root / "portable", beam_args=portable_args)
    (direct_examples, direct_vocab, direct_report) = direct
    (portable_examples, portable_vocab, portable_report) = portable

    counts = json.loads(_read(direct_report.uri, artifacts.COUNTS_FILE))
    assert counts[ieg_spec.COUNT_INGESTED] > 0
    assert json.loads(_read(portable_report.uri, artifacts.COUNTS_FILE)) == counts
    for name in (artifacts.QUARANTINE_FILE, artifacts.DUPLICATES_FILE):
        assert _read(portable_report.uri, name) == _read(direct_report.uri, name)
    labels = _read(direct_vocab.uri, artifacts.VOCABULARY_FILE)
    assert labels.split() == ["5", "6", "7", "8", "9"]
    assert _read(portable_vocab.uri, artifacts.VOCABULARY_FILE) == labels
    class_counts = _read(direct_vocab.uri, artifacts.CLASS_COUNTS_FILE)
    assert json.loads(_read(portable_vocab.uri, artifacts.CLASS_COUNTS_FILE)) == json.loads(
        class_counts
    )
    assert portable_examples.split_names == direct_examples.split_names
    for split in SPLITS:
        expected = _examples_by_id(direct_examples, split)
        assert len(expected) == counts[f"{split}_examples"]
        assert _examples_by_id(portable_examples, split) == expected  # every feature


def test_bottleneck_cache_portable_run_matches_the_direct_run(
    tmp_path, demo, portable_args, transform_dir, tiny_base, run_cache
):
    _, (examples, _, report), _ = demo
    ingested = json.loads(_read(report.uri, artifacts.COUNTS_FILE))[ieg_spec.COUNT_INGESTED]
    inputs = (
        examples,
        artifact(standard_artifacts.TransformGraph, transform_dir),
        artifact(standard_artifacts.Model, tiny_base),
        ingested,
    )
    # Separate tmp folders: separate cache dirs, so both runs compute every vector.
    direct = run_cache(tmp_path / "direct", inputs, "out")
    portable = run_cache(tmp_path / "portable", inputs, "out", beam_args=portable_args)

    direct_counts = json.loads(_read(direct.uri, cache_spec.COUNTS_FILE))
    assert direct_counts[cache_spec.PROP_COMPUTED] == ingested
    assert direct_counts[cache_spec.PROP_FAILED] == 0
    assert json.loads(_read(portable.uri, cache_spec.COUNTS_FILE)) == direct_counts
    assert _read(portable.uri, cache_spec.FAILED_FILE) == ""
    expected, got = read_vectors(direct.uri), read_vectors(portable.uri)
    assert len(expected) == ingested and set(got) == set(expected)
    for image_id, vector in expected.items():
        np.testing.assert_allclose(got[image_id], vector, rtol=0, atol=1e-5, err_msg=image_id)
