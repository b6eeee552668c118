"""What a fresh process reuses from earlier runs on the same files: the plan and the
traced extractor.

On Kubeflow every run of the component is a new process. Without this, each one loads
the base network and the transform graph to make its plan (fingerprints, cut, shapes)
and, if a single image is new, traces the extractor again: seconds, even when every
vector is already cached. Both are functions of the exact files and the arguments, so
the first process that computes them keeps them beside the cache namespaces:

``<cache_dir>/prepared/<key>/``, key = ``prepared_key``: sha256 of (PREPARED_FORMAT,
the cache format version, the TensorFlow and Keras versions, the sha256 of the base's
.keras file, the transform graph's file digest, cut_layer, drop_top_layers, pooling,
cut candidates), i.e. the in-process plan memo's key (plan.py) plus the versions:

- ``plan.json``: the CachePlan without its uris (``plan.plan_record``), written
  atomically once the plan is made. A later process with the same files and
  arguments makes the same plan from it without loading anything.
- ``extractor.json`` and ``extractor-<id>/``: the traced extractor function (the
  transform graph, the cut, pooled, frozen base) exported as a TensorFlow SavedModel
  (``Extractor.save``, in a background thread of the worker that first builds it from
  the Keras model: ``export_in_background``). Before publishing it, the exporting thread
  loads the export back and checks that it reproduces the Keras path's vectors of the
  fixed probe images (transform_graph.probe_images; np.allclose, PROBE_RTOL), then
  records the sha256 of every file of the export in extractor.json, written atomically
  last, so a reader sees all of it or none. Loading it (``load_extractor``) checks those
  digests instead of running the probes again (0.3 s of a fresh process on the photo
  demo, against 0.05 s of hashing its 57 MB): the files are then the very bytes that
  were checked. Anything missing, unreadable or changed is logged and the caller builds
  the extractor from the Keras model.

Neither file can stand for other files: the key holds both files' content digests, and
the worker still checks the files' digests against the plan before using either. An
export cut short (a killed process, or a multi_processing worker ended before its
thread) leaves an unpublished ``extractor-<id>/`` folder that nothing reads. An export
that fails for good (its probe vectors differ, or the graph cannot be exported) removes
its folder and records the reason in ``extractor.failed.json`` (never over a published
extractor.json), so it is not tried again at every cold run; one that fails on storage
or memory (OSError, a TensorFlow OpError, MemoryError) removes its folder and records
nothing, so a later run tries again. Two processes exporting at once each write their
own folder and the last extractor.json wins. A published export whose files are
missing or changed is withdrawn (extractor.json removed, unless another process has
published a new one meanwhile) and made again by the next worker that builds the
extractor from the Keras model. With multi_processing workers the job may end before
a worker's export thread: nothing is published then, and the next run tries again.
The key includes the source of the code that makes the plan and the extractor
(code_digest), so a new release never reuses an old release's plan.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import threading
import uuid

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from components.bottleneck_cache.extractor import Extractor, SavedExtractor
from components.common import transform_graph as transform_lib
from components.common.artifact_io import join, write_text_atomically

PREPARED_FORMAT = 2  # bump when plan.json or the exported extractor change meaning
PREPARED_DIR = "prepared"
PLAN_FILE = "plan.json"
EXTRACTOR_FILE = "extractor.json"
FAILED_FILE = "extractor.failed.json"  # why exporting failed for good (never retried)
KEY_CHARS = 24
PROBE_RTOL = 1e-4  # of the largest probe value: a re-run of the same graph is bit-equal
_CHUNK = 1 << 22  # bytes read at a time when hashing an export's files


# The project's code that turns the files and arguments into a plan and an extractor.
# Its source is part of the key: a new release that resolves a cut, pools or
# preprocesses differently must not reuse what the old code stored (the probe check
# cannot tell: the old export was checked against the same old code).
CODE_MODULES = (
    "components.bottleneck_cache.plan",
    "components.bottleneck_cache.extractor",
    "components.bottleneck_cache.prepared",
    "components.bottleneck_cache.base_file",
    "components.common.model_surgery",
    "components.common.transform_graph",
    "components.common.preprocessing",
)


@functools.lru_cache(maxsize=1)
def code_digest() -> str:
    """sha256 of the source files of CODE_MODULES (found, not imported)."""
    digest = hashlib.sha256()
    for name in CODE_MODULES:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.origin:
            raise RuntimeError(f"cannot find the source of {name}")
        with open(spec.origin, "rb") as f:
            digest.update(name.encode() + b"\0" + f.read())
    return digest.hexdigest()


def prepared_key(cache_format: int, memo_key: tuple) -> str:
    """The folder name for a plan memo key (plan.py) under these library versions and
    this code (code_digest)."""
    key = json.dumps(
        [
            PREPARED_FORMAT,
            cache_format,
            tf.__version__,
            keras.__version__,
            code_digest(),
            *memo_key,
        ]
    )
    return hashlib.sha256(key.encode()).hexdigest()[:KEY_CHARS]


def prepared_dir(cache_dir: str, key: str) -> str:
    return join(join(cache_dir, PREPARED_DIR), key)


def _read_json(path: str) -> dict | None:
    try:
        if not tf.io.gfile.exists(path):
            return None
        with tf.io.gfile.GFile(path, "r") as f:
            value = json.loads(f.read())
    except (OSError, ValueError, tf.errors.OpError) as error:
        logging.warning("BottleneckCache: ignoring unreadable %s: %s", path, error)
        return None
    return value if isinstance(value, dict) else None


def read_plan(directory: str) -> dict | None:
    """The stored plan record, or None (missing or unreadable)."""
    return _read_json(join(directory, PLAN_FILE))


def write_plan(directory: str, record: dict) -> None:
    """Stores a plan record atomically; a failure to write is logged, not raised."""
    try:
        tf.io.gfile.makedirs(directory)
        write_text_atomically(join(directory, PLAN_FILE), json.dumps(record, sort_keys=True))
    except (OSError, tf.errors.OpError) as error:
        logging.warning("BottleneckCache: could not store the plan in %s: %s", directory, error)


def has_extractor(directory: str) -> bool:
    """An export, or the record that exporting failed for good, is in `directory`."""
    return any(tf.io.gfile.exists(join(directory, f)) for f in (EXTRACTOR_FILE, FAILED_FILE))


# Failures that may not happen again (storage, memory): nothing is recorded, a later
# run tries again. Anything else (a graph that cannot be exported, vectors that differ)
# would fail the same way every time, and is recorded in FAILED_FILE.
_TRANSIENT = (OSError, MemoryError, tf.errors.OpError)


def save_extractor(directory: str, extractor: Extractor) -> bool:
    """Exports `extractor` under `directory` unless an export (or a recorded failure)
    is there, checks that the export reproduces it (check_reproduces) and publishes it
    with its files' digests; True when published. (load_extractor withdraws an export
    it rejects, so the next worker that builds from the Keras model replaces it.)

    A failure is logged, not raised, and its partial folder removed. One that would
    happen again (e.g. a transform graph that cannot be exported, or an export whose
    probe vectors differ) is recorded in FAILED_FILE, so later processes build the
    extractor from the Keras model without trying to export it at every cold run.
    """
    if has_extractor(directory):
        return False
    name = f"extractor-{uuid.uuid4().hex[:12]}"
    path = join(directory, name)
    try:
        extractor.save(path)
        files = file_digests(path)  # the bytes that are checked next are the ones recorded
        check_reproduces(SavedExtractor.load(path, extractor.dim), extractor)
        record = {"saved_model": name, "dim": extractor.dim, "files": files}
        write_text_atomically(join(directory, EXTRACTOR_FILE), json.dumps(record))
    except Exception as error:  # noqa: BLE001 - any failure only costs a later rebuild
        logging.warning("BottleneckCache: could not export the extractor to %s: %s", path, error)
        try:
            if tf.io.gfile.exists(path):
                tf.io.gfile.rmtree(path)
            if not isinstance(error, _TRANSIENT):
                failed = {"failed": f"{type(error).__name__}: {error}"[:500]}
                write_text_atomically(join(directory, FAILED_FILE), json.dumps(failed))
        except (OSError, tf.errors.OpError) as cleanup:
            logging.warning("BottleneckCache: could not clean up %s: %s", path, cleanup)
        return False
    return True


_exports_lock = threading.Lock()
_exports: dict[str, threading.Thread] = {}


def export_in_background(directory: str, extractor: Extractor) -> None:
    """save_extractor in a thread of this process (once per directory), so the export
    overlaps the job's inference instead of adding to it; wait_for_exports joins it."""
    with _exports_lock:
        if directory in _exports:
            return
        thread = threading.Thread(
            target=save_extractor,
            args=(directory, extractor),
            name="export-extractor",
        )
        _exports[directory] = thread
    thread.start()


def wait_for_exports() -> None:
    """Waits for this process's exports (the job calls it before it returns)."""
    with _exports_lock:
        threads = list(_exports.items())
    for directory, thread in threads:
        thread.join()
        with _exports_lock:
            if _exports.get(directory) is thread:
                del _exports[directory]


def check_reproduces(saved: SavedExtractor, extractor: Extractor) -> None:
    """Raises ValueError unless `saved` computes `extractor`'s vectors of the probe
    images (np.allclose, PROBE_RTOL of the largest value; bit-equal in practice)."""
    probes = transform_lib.probe_images()
    expected, vectors = extractor(probes), saved(probes)
    scale = float(np.max(np.abs(expected))) if expected.size else 0.0
    if vectors.shape != expected.shape or not np.allclose(
        vectors, expected, rtol=PROBE_RTOL, atol=PROBE_RTOL * scale
    ):
        raise ValueError("its vectors of the probe images differ from the Keras model's")


def file_digests(path: str) -> dict[str, str]:
    """sha256 hex of every file under the folder `path`, by path relative to it."""
    digests = {}
    for folder, _, names in tf.io.gfile.walk(path):
        for name in names:
            file_path = join(folder, name)
            digest = hashlib.sha256()
            with tf.io.gfile.GFile(file_path, "rb") as f:
                while chunk := f.read(_CHUNK):
                    digest.update(chunk)
            digests[file_path[len(path) :].lstrip("/")] = digest.hexdigest()
    return digests


def load_extractor(directory: str, dim: int) -> SavedExtractor | None:
    """The exported extractor under `directory` if its files are the ones checked at
    export (file_digests), else None (the reason is logged, except when there is none)."""
    record = _read_json(join(directory, EXTRACTOR_FILE))
    if record is None:
        return None
    try:
        if record.get("dim") != dim:
            raise ValueError(f"dimension {record.get('dim')}, expected {dim}")
        expected = record.get("files")
        if not isinstance(expected, dict) or not expected:
            raise ValueError("no file digests in its record")
        path = join(directory, str(record["saved_model"]))
        found = file_digests(path)
        if found != expected:
            names = expected.keys() | found.keys()
            changed = sorted(n for n in names if expected.get(n) != found.get(n))
            raise ValueError(f"files missing, added or changed since it was checked: {changed}")
        extractor = SavedExtractor.load(path, dim)
    except Exception as error:  # noqa: BLE001 - missing, corrupt or different: rebuild
        logging.warning(
            "BottleneckCache: not using the exported extractor in %s (%s); loading the "
            "Keras model instead, and withdrawing the export so that it is made again",
            directory,
            error,
        )
        try:  # unpublished: the worker that builds from the Keras model exports anew,
            # unless another process has published a new export since it was read
            if _read_json(join(directory, EXTRACTOR_FILE)) == record:
                tf.io.gfile.remove(join(directory, EXTRACTOR_FILE))
        except (OSError, tf.errors.OpError):
            pass  # already withdrawn (another process) or not writable: only a rebuild
        return None
    return extractor
