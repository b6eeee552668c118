"""Tests that the cache survives crashes: killed runs, torn and duplicated shards.

A run is started in a subprocess and SIGKILLed part way; the rerun must give exactly
the outputs of an uninterrupted run into a separate cache. Shard files that cannot be
read are skipped and counted, duplicates across shards are harmless.
"""

import fnmatch
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
from components.common.testing import make_image, read_vectors, save_base, tiny_cnn, write_examples

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Runs the job (conftest's run_job with cut_layer="relu1", spelled out: a child process
# has no fixtures) until it reaches the point named by its `stop_at` argument, writes that
# name (and a path, for "writing") as a line to the pipe `ready_fd` and waits there for
# the parent's SIGKILL: the kill point
# is fixed, not a race between the run and the parent. The code runs unchanged up to
# that point.
#   "writing": in WriteStaged, once the bundle's staged entries file holds ENTRIES_STAGED
#     entries, flushed to disk (as a large shard's first blocks would be) but not
#     closed: a half-written shard, and no shard has its final name yet.
#   "finalized": when the job's summary is about to be written, i.e. after every
#     shard was renamed to its final name, before the counts and the end of the run.
ENTRIES_STAGED = 2
_CHILD = """
import os, sys, threading
import apache_beam as beam
from components.bottleneck_cache import cache
from components.bottleneck_cache import plan as plan_lib
from components.common import testing

examples, base, transform, cache_dir, out, stop_at, ready_fd, entries = sys.argv[1:9]


def stop_here(*words):
    os.write(int(ready_fd), " ".join([stop_at, *words]).encode() + b"\\n")
    threading.Event().wait()  # until SIGKILL


if stop_at == "writing":
    process = cache._WriteStagedDoFn.process
    written = []

    def process_or_stop(self, element):
        process(self, element)
        if element[0] == cache.CACHE_DESTINATION:
            written.append(element)
            if len(written) == int(entries):
                writer, path, _ = self._files[cache.CACHE_DESTINATION]
                writer.flush()
                stop_here(path)

    cache._WriteStagedDoFn.process = process_or_stop
elif stop_at == "finalized":
    def write_summary_or_stop(*args):
        stop_here()

    cache._write_summary = write_summary_or_stop
else:
    sys.exit("unknown stop_at " + stop_at)
plan = plan_lib.make_plan(base, transform, "relu1", 0, "avg")
patterns = testing.split_patterns(examples)
cache.run_bottlenecks(lambda: beam.Pipeline(argv=[]), patterns, plan, cache_dir, out, 4, run_id="")
"""


@pytest.fixture(scope="module")
def setup(tmp_path_factory, split_images, write_transform, run_job):
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


def _start_child(setup, tmp_path, stop_at: str) -> tuple:
    """Starts the job in a subprocess writing to <tmp_path>/<stop_at>_cache and _out.

    Returns:
      (Popen, the read end of its ready pipe, its log file path).
    """
    examples, base, transform, _, _ = setup
    script = tmp_path / "child.py"
    script.write_text(textwrap.dedent(_CHILD))
    cache_dir, out = tmp_path / f"{stop_at}_cache", tmp_path / f"{stop_at}_out"
    read_end, write_end = os.pipe()
    args = [examples, base, transform, str(cache_dir), str(out), stop_at, str(write_end)]
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([ROOT, *sys.path])}
    log = tmp_path / f"{stop_at}.log"
    with open(log, "wb") as output:
        child = subprocess.Popen(
            [sys.executable, str(script), *args, str(ENTRIES_STAGED)],
            cwd=ROOT,
            env=environment,
            pass_fds=(write_end,),
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    os.close(write_end)  # the child holds the only write end: EOF when it exits
    return child, read_end, log


def _kill_at_stop(children: dict) -> dict:
    """Waits until each child reports its stop point, then SIGKILLs it there.

    Args:
      children: stop point -> _start_child's (Popen, ready pipe read end, log path).

    Returns:
      stop point -> the rest of the line the child reported (a path, or "").

    Reading the pipe blocks until the child writes its line, or returns nothing once
    the child has exited without reaching its stop point (which fails the test).
    """
    reported = {}
    try:
        for stop_at, (child, ready, log) in children.items():
            with os.fdopen(ready, "rb") as pipe:
                line = pipe.readline().decode()
            child.kill()
            child.wait()
            reached, _, reported[stop_at] = line.rstrip("\n").partition(" ")
            if reached != stop_at:
                tail = log.read_text(errors="replace")[-3000:]
                pytest.fail(f"{stop_at}: ended (rc {child.returncode}) before {stop_at!r}:\n{tail}")
            assert child.returncode == -signal.SIGKILL, stop_at
    finally:
        for child, _, _ in children.values():
            if child.poll() is None:
                child.kill()
                child.wait()
    return reported


def _listing(namespace: str) -> list[str]:
    """Every file under the namespace, as paths relative to it."""
    return sorted(
        os.path.relpath(os.path.join(d, f), namespace)
        for d, _, files in os.walk(namespace)
        for f in files
    )


def _rerun_and_compare(setup, tmp_path, name, run_job) -> dict:
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


def test_killed_runs_rerun_to_the_uninterrupted_result(setup, tmp_path, run_job):
    """Two runs, SIGKILLed at fixed points (they share the 2 cores' start-up time):

    "writing": in the middle of computing, its new shard only staged (the staging
    folder holds the partial entries file, no shard has its final name);
    "finalized": once its shard has its final name, before the run ends (no counts
    written). Both reruns equal the reference run: nothing half-written is read, and
    nothing the killed run finalized is lost.
    """
    _, base, transform, images, _ = setup
    plan = plan_lib.make_plan(base, transform, cut_layer="relu1")
    writing_ns = plan.namespace_dir(str(tmp_path / "writing_cache"))
    finalized_ns = plan.namespace_dir(str(tmp_path / "finalized_cache"))
    stops = ("writing", "finalized")
    reported = _kill_at_stop({stop: _start_child(setup, tmp_path, stop) for stop in stops})

    writing = _listing(writing_ns)
    assert not any(name.startswith("entries-") for name in writing), writing
    staged = reported["writing"]  # the entries file being written when killed
    assert fnmatch.fnmatch(os.path.relpath(staged, writing_ns), store.STAGING_PREFIX + "*/*")
    assert os.path.getsize(staged) > 0  # entries on disk, the gzip stream unfinished
    with pytest.raises(ValueError, match="truncated gzip stream"):
        store.read_shard(staged, plan.dim)
    counts = _rerun_and_compare(setup, tmp_path, "writing", run_job)
    assert counts[spec.PROP_COMPUTED] == len(images)  # the staged file was not read
    assert counts[spec.PROP_SHARDS_SKIPPED] == 0
    # The rerun removed the killed run's staging folder (its process is gone) and its own.
    assert not tf.io.gfile.glob(os.path.join(writing_ns, "beam-temp-entries-*"))

    finalized = _listing(finalized_ns)
    assert sum(name.startswith("entries-") for name in finalized) == 1, finalized
    assert not os.path.exists(tmp_path / "finalized_out" / spec.COUNTS_FILE)  # run unfinished
    counts = _rerun_and_compare(setup, tmp_path, "finalized", run_job)
    assert counts[spec.PROP_COMPUTED] == 0  # every vector came from the finalized shard
    assert counts[spec.PROP_SHARDS_SKIPPED] == 0
    assert not tf.io.gfile.glob(os.path.join(finalized_ns, "beam-temp-entries-*"))


def test_torn_and_duplicated_shards_are_skipped_or_deduplicated(
    setup, tmp_path, split_images, run_job
):
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

    counts = _rerun_and_compare(setup, tmp_path, "torn", run_job)
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
