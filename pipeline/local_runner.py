"""Runs the pipeline locally: LocalDagRunner, SQLite metadata, Beam DirectRunner.

One run at a time per pipeline root and per metadata file: `run_local` holds an
exclusive lock (``flock``) on ``<metadata file>.lock`` and, for a local root, on
``<pipeline_dir>/.run.lock`` for the whole run. A second run on the same root refuses at
once with a message naming the run that holds it (or waits, with ``wait=True``). The
kernel releases the lock when the holding process ends, killed or not, so a crashed
run never leaves a stale lock behind.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import os
import socket
from collections.abc import Iterator

from pipeline.config import PipelineConfig
from pipeline.errors import RunInProgressError

LOCK_FILE = ".run.lock"


@contextlib.contextmanager
def _locked(path: str, wait: bool) -> Iterator[None]:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            raise RunInProgressError(
                f"another run is using this pipeline ({holder}; lock {path}); wait for it "
                "to end, run again with --wait, or use another pipeline_root"
            ) from None
        f.seek(0)
        f.truncate()
        started = datetime.datetime.now().isoformat(timespec="seconds")
        f.write(f"pid {os.getpid()} on {socket.gethostname()}, started {started}\n")
        f.flush()
        try:
            yield
        finally:
            f.truncate(0)
            fcntl.flock(f, fcntl.LOCK_UN)


@contextlib.contextmanager
def run_lock(config: PipelineConfig, wait: bool = False) -> Iterator[None]:
    """Holds the run locks of the config's pipeline root and metadata file.

    Raises:
        RunInProgressError: another run holds one of them (only when wait is False).
    """
    paths = [f"{os.path.abspath(config.metadata_file)}.lock"]
    if "://" not in config.pipeline_dir:
        paths.append(os.path.abspath(os.path.join(config.pipeline_dir, LOCK_FILE)))
    with contextlib.ExitStack() as stack:
        for path in sorted(set(paths)):
            stack.enter_context(_locked(path, wait))
        yield


def run_local(config: PipelineConfig, wait: bool = False) -> None:
    """Runs every component of the pipeline in this process (cached steps are reused).

    Raises:
        RunInProgressError: another run holds the pipeline root (see the module doc).
    """
    # Not tfx.v1 (it imports every extension, Google Cloud's clients included: dag.py).
    from tfx.orchestration.local.local_dag_runner import LocalDagRunner
    from tfx.orchestration.metadata import sqlite_metadata_connection_config

    from pipeline.dag import create_pipeline

    with run_lock(config, wait):
        metadata = sqlite_metadata_connection_config(config.metadata_file)
        LocalDagRunner().run(create_pipeline(config, metadata))
