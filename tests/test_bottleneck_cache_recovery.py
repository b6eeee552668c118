"""Tests that the cache survives crashes: killed runs, torn and duplicated shards.

A run is started in a subprocess and SIGKILLed part way; the rerun must give exactly
the outputs of an uninterrupted run into a separate cache. Shard files that cannot be
read are skipped and counted, duplicates across shards are harmless.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import tensorflow as tf

from components.bottleneck_cache import plan as plan_lib
from components.bottleneck_cache import spec, store
from tests.test_bottleneck_cache_core import (
    make_image,
    read_vectors,
    run_job,
    save_base,
    split_images,
    tiny_cnn,
    write_examples,
    write_transform,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Runs the job with a model slowed to SLOW_SECONDS per batch, so that the parent has
# time to kill it in the middle of computing and writing.
_CHILD = """
import sys, time
from components.bottleneck_cache import handler
from tests.test_bottleneck_cache_core import run_job

slow = float(sys.argv[6])
call = handler.Extractor.__call__
def slow_call(self, images):
    time.sleep(slow)
    return call(self, images)
handler.Extractor.__call__ = slow_call
run_job(*sys.argv[1:6], cut_layer="relu1", batch_size=1)
"""


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """(examples, base, transform, images, reference vectors of an uninterrupted run)."""
    root = tmp_path_factory.mktemp("recovery")
    images = [make_image(i, seed=7) for i in range(24)]
    examples = write_examples(root / "examples", split_images(images))
    base = save_base(tiny_cnn(), root / "base")
    transform = write_transform(root / "transform")
    _, counts = run_job(
        examples, base, transform, root / "ref_cache", root / "ref", cut_layer="relu1"
    )
    assert counts[spec.PROP_COMPUTED] == len(images)
    return examples, base, transform, images, read_vectors(root / "ref")


def _start_child(setup, tmp_path, name: str, slow_seconds: float) -> subprocess.Popen:
    """Starts the job in a subprocess writing to <tmp_path>/<name>_cache."""
    examples, base, transform, _, _ = setup
    script = tmp_path / "child.py"
    script.write_text(textwrap.dedent(_CHILD))
    cache_dir, out = tmp_path / f"{name}_cache", tmp_path / f"{name}_out"
    args = [examples, base, transform, str(cache_dir), str(out), str(slow_seconds)]
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([ROOT, *sys.path])}
    return subprocess.Popen([sys.executable, str(script), *args], cwd=ROOT, env=environment)


def _kill_when_ready(children: dict) -> dict:
    """SIGKILLs each child once its ready() is true (polling every 5 ms).

    Args:
      children: name -> (Popen, ready function).

    Returns:
      name -> the namespace listing (relative paths) at the moment of the kill.
    """
    deadline = time.monotonic() + 150
    pending, listings = dict(children), {}
    try:
        while pending:
            for name, (child, ready) in list(pending.items()):
                listing = ready()
                if listing is not None:
                    os.kill(child.pid, signal.SIGKILL)
                    listings[name] = listing
                    del pending[name]
                else:
                    assert child.poll() is None, f"{name}: ended (rc {child.returncode}) unkilled"
            assert time.monotonic() < deadline, f"timed out waiting for {sorted(pending)}"
            time.sleep(0.005)
    finally:
        for child, _ in children.values():
            child.kill()
            child.wait()
    for name, (child, _) in children.items():
        assert child.returncode == -signal.SIGKILL, name
    return listings


def _listing_if(namespace: str, pattern: str):
    """A ready() function: the namespace's files once `pattern` matches, else None."""

    def ready():
        if not tf.io.gfile.glob(os.path.join(namespace, pattern)):
            return None
        return sorted(
            os.path.relpath(os.path.join(d, f), namespace)
            for d, _, files in os.walk(namespace)
            for f in files
        )

    return ready


def _rerun_and_compare(setup, tmp_path, name) -> dict:
    examples, base, transform, images, reference = setup
    cache_dir, out = tmp_path / f"{name}_cache", tmp_path / f"{name}_rerun"
    _, counts = run_job(examples, base, transform, cache_dir, out, cut_layer="relu1")
    vectors = read_vectors(out)
    assert vectors.keys() == reference.keys()
    for image_id, vector in reference.items():
        np.testing.assert_array_equal(vectors[image_id], vector)
    assert counts[spec.PROP_COMPUTED] + counts[spec.PROP_REUSED] == len(images)
    assert counts[spec.PROP_FAILED] == 0
    return counts


def test_killed_runs_rerun_to_the_uninterrupted_result(setup, tmp_path):
    """Two runs killed at once (they share the 2 cores' start-up time):

    "writing": killed while its new shard is being written (the model is slowed),
    so only Beam's temporary file exists; "finalized": killed once its shard has
    its final name, before the run ends. Both reruns equal the reference run.
    """
    _, base, transform, images, _ = setup
    namespace = plan_lib.make_plan(base, transform, cut_layer="relu1").namespace
    writing_ns = os.path.join(tmp_path, "writing_cache", namespace)
    finalized_ns = os.path.join(tmp_path, "finalized_cache", namespace)
    listings = _kill_when_ready(
        {
            "writing": (
                _start_child(setup, tmp_path, "writing", slow_seconds=0.1),
                _listing_if(writing_ns, "beam-temp-entries-*/*.tfrecord.gz"),
            ),
            "finalized": (
                _start_child(setup, tmp_path, "finalized", slow_seconds=0.0),
                _listing_if(finalized_ns, store.SHARD_GLOB),
            ),
        }
    )
    writing = listings["writing"]
    assert any(name.startswith("beam-temp-entries-") for name in writing), writing
    assert not any(name.startswith("entries-") for name in writing), writing
    assert tf.io.gfile.glob(os.path.join(writing_ns, "beam-temp-entries-*"))
    counts = _rerun_and_compare(setup, tmp_path, "writing")
    assert counts[spec.PROP_COMPUTED] == len(images)  # the temporary file was not read
    assert counts[spec.PROP_SHARDS_SKIPPED] == 0
    # The rerun removed the killed run's staging folder (its process is gone) and its own.
    assert not tf.io.gfile.glob(os.path.join(writing_ns, "beam-temp-entries-*"))

    finalized = listings["finalized"]
    assert sum(name.startswith("entries-") for name in finalized) == 1, finalized
    counts = _rerun_and_compare(setup, tmp_path, "finalized")
    assert counts[spec.PROP_COMPUTED] == 0  # every vector came from the finalized shard
    assert not tf.io.gfile.glob(os.path.join(finalized_ns, "beam-temp-entries-*"))


def test_torn_and_duplicated_shards_are_skipped_or_deduplicated(setup, tmp_path):
    examples, base, transform, images, _ = setup
    cache_dir = tmp_path / "torn_cache"
    first_images = images[:12]
    partial = write_examples(tmp_path / "partial", split_images(first_images))
    plan, _ = run_job(
        partial, base, transform, cache_dir, tmp_path / "partial_out", cut_layer="relu1"
    )
    namespace = plan.namespace_dir(str(cache_dir))
    (shard,) = tf.io.gfile.glob(store.shard_pattern(namespace))
    shutil.copy(shard, os.path.join(namespace, "entries-duplicate-00000-of-00001.tfrecord.gz"))
    with open(shard, "rb") as f:
        data = f.read()
    torn = os.path.join(namespace, "entries-torn-00000-of-00001.tfrecord.gz")
    with open(torn, "wb") as f:
        f.write(data[: len(data) * 2 // 3])
    with open(os.path.join(namespace, "entries-garbage-00000-of-00001.tfrecord.gz"), "wb") as f:
        f.write(b"not a gzip file at all")

    counts = _rerun_and_compare(setup, tmp_path, "torn")
    assert counts[spec.PROP_SHARDS_SKIPPED] == 2
    assert counts[spec.PROP_REUSED] == 12 and counts[spec.PROP_COMPUTED] == len(images) - 12


def test_stale_staging_folders_are_removed_and_live_ones_kept(tmp_path):
    """Only staging folders no longer in use go: a dead owner process on this host, or
    (another host, no owner) nothing changed for longer than the stale age."""
    namespace = tmp_path / "ns"
    namespace.mkdir()
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    host, here = socket.gethostname(), store.machine_id()
    day_ago = time.time() - 86400 * 2
    folders = {
        "dead_owner": {"host": host, "machine": here, "pid": ended.pid},
        "this_process": {"host": host, "machine": here, "pid": os.getpid()},
        "live_owner": {"host": host, "machine": here, "pid": os.getppid()},
        # Same host name, another pid namespace (a container): its pid means nothing here.
        "other_namespace_recent": {"host": host, "machine": "other", "pid": ended.pid},
        "other_host_recent": {"host": "elsewhere", "machine": "elsewhere", "pid": 1},
        "other_host_idle": {"host": "elsewhere", "machine": "elsewhere", "pid": 1},
        "unowned_recent": None,  # e.g. Beam's own beam-temp-entries-<run>-<uuid>/
        "unowned_idle": None,
    }
    for name, owner in folders.items():
        folder = namespace / f"{store.STAGING_PREFIX}{name}"
        folder.mkdir()
        (folder / "0123.tfrecord.gz").write_bytes(b"partial")
        if owner is not None:
            (folder / store.OWNER_FILE).write_text(json.dumps({**owner, "started": 0}))
        if name.endswith("_idle"):
            for path in (*folder.iterdir(), folder):
                os.utime(path, (day_ago, day_ago))
    keep = ["namespace.json", "entries-run1-00000-of-00001.tfrecord.gz", "beam-temp-other"]
    (namespace / keep[0]).write_text("{}")
    (namespace / keep[1]).write_bytes(b"")
    (namespace / keep[2]).mkdir()  # not a cache staging folder
    os.utime(namespace / keep[2], (day_ago, day_ago))

    removed = store.clean_stale_staging(str(namespace))
    expected = ["dead_owner", "other_host_idle", "unowned_idle"]
    assert sorted(removed) == sorted(
        str(namespace / f"{store.STAGING_PREFIX}{n}") for n in expected
    )
    remaining = sorted(os.listdir(namespace))
    kept = [f"{store.STAGING_PREFIX}{n}" for n in folders if n not in expected]
    assert remaining == sorted(keep + kept)
    assert store.clean_stale_staging(str(namespace)) == []
    assert store.clean_stale_staging(str(tmp_path / "no_such_namespace")) == []
