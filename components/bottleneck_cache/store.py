"""The persistent entry store of one cache namespace: shard files of (content id, vector).

Layout under ``<cache_dir>/<namespace>/`` (see plan.py for the namespace):

* ``entries-<run id>-<unique>.tfrecord.gz``: gzipped TFRecords, one small tf.Example
  per vector: ENTRY_ID_KEY (sha256 hex of the encoded image bytes) and
  examples.BOTTLENECK_KEY (the flattened float32 vector). Every run writes new shards
  under its own run id and never touches other shards.
* Atomicity: a run writes each shard into its staging folder
  ``beam-temp-entries-<run id>/`` and renames the complete file to its final name
  only once the bundle that wrote it has been committed (cache.py). SHARD_GLOB
  matches file names in the namespace directory only, so staged files never match;
  a run killed part way leaves complete shards and a staging folder, which the next
  run removes once it is no longer in use (``clean_stale_staging``). Shards are only
  written when there is something to write: no empty shards.
* Readers still distrust every shard: a shard that cannot be read to its end (a
  truncated or corrupt file, a record that is not a valid entry) is skipped whole and
  counted, its vectors are simply recomputed, and it is moved aside, with one warning,
  into ``quarantine/`` (``quarantine_shard``): ``quarantine/<shard name>`` next to
  ``<shard name>.reason.json`` (the error, when and where). SHARD_GLOB does not match
  that folder, so later runs neither read nor warn about it again. Only a shard whose
  content is bad, and still bad on a second read, is moved; one that cannot be opened
  (permissions, network) is skipped and kept. When concurrent runs find the same shard,
  one move wins and the others find it gone. Entries for the same id in several shards
  (a crash after a shard was finalized, concurrent runs) are allowed; the join keeps
  one.
"""

from __future__ import annotations

import datetime
import json
import os
import socket
import struct
import time
import uuid
import zlib
from collections.abc import Iterator

import numpy as np
import tensorflow as tf
from absl import logging
from google.protobuf.message import DecodeError

from components.bottleneck_cache.plan import join
from components.common import examples

ENTRY_ID_KEY = "content_id"  # bytes: sha256 hex of the encoded image bytes
SHARD_PREFIX = "entries"
SHARD_SUFFIX = ".tfrecord.gz"
SHARD_GLOB = f"{SHARD_PREFIX}-*{SHARD_SUFFIX}"
SKIPPED_OUTPUT = "skipped_shards"  # {"shard", "error"} per unreadable shard
# <namespace>/<QUARANTINE_DIR>/: unreadable shards moved aside, each with a reason file
# (<name><REASON_SUFFIX>: {"shard", "error", "time", "host"}). Neither SHARD_GLOB nor
# STAGING_PREFIX matches the folder: it is never read, and never cleaned up.
QUARANTINE_DIR = "quarantine"
REASON_SUFFIX = ".reason.json"
# A run writes its shards into <namespace>/<STAGING_PREFIX><run id>/ and renames each
# complete file to its final name. The prefix is also what Beam's own file sinks
# used (beam-temp-entries-<run id>-<uuid>/), so stale folders of either are cleaned.
STAGING_PREFIX = "beam-temp-entries-"
OWNER_FILE = "OWNER.json"
STALE_AFTER_S = 24 * 3600.0  # idle time after which an unowned staging folder is stale


def shard_pattern(namespace_dir: str) -> str:
    """The glob that matches exactly the complete entry shards of a namespace."""
    return join(namespace_dir, SHARD_GLOB)


def encode_entry(content_id: str, vector: np.ndarray) -> bytes:
    """A serialized entry tf.Example."""
    train = tf.train
    features = {
        ENTRY_ID_KEY: train.Feature(bytes_list=train.BytesList(value=[content_id.encode()])),
        examples.BOTTLENECK_KEY: train.Feature(
            float_list=train.FloatList(value=np.asarray(vector, np.float32).ravel())
        ),
    }
    return train.Example(features=train.Features(feature=features)).SerializeToString()


def decode_entry(record: bytes, dim: int) -> tuple[str, np.ndarray]:
    """(content id, float32 vector) of a serialized entry.

    Raises:
        ValueError: not an entry of a dim-long vector.
    """
    try:
        features = tf.train.Example.FromString(record).features.feature
    except DecodeError as error:
        raise ValueError(f"not a tf.Example: {error}") from error
    ids = features[ENTRY_ID_KEY].bytes_list.value
    values = features[examples.BOTTLENECK_KEY].float_list.value
    if len(ids) != 1 or len(values) != dim:
        raise ValueError(
            f"entry must have one {ENTRY_ID_KEY!r} and {dim} floats in "
            f"{examples.BOTTLENECK_KEY!r}; got {len(ids)} ids and {len(values)} floats"
        )
    return ids[0].decode(), np.asarray(values, np.float32)


def read_shard(path: str, dim: int) -> list[tuple[str, np.ndarray]]:
    """Every entry of one shard; raises when any part of it cannot be read.

    The gzip stream must be complete (end-of-stream marker and CRC-32 checked) and
    the TFRecord framing must end exactly at its end: TensorFlow's own reader takes
    a gzip file cut at some points for a shorter, valid one.

    Raises:
        tf.errors.OpError: the file is missing or cannot be read.
        ValueError: the file is truncated, not gzip, fails a checksum, or a record is
            not a valid entry.
    """
    with tf.io.gfile.GFile(path, "rb") as f:
        data = f.read()
    return [decode_entry(record, dim) for record in _tfrecords(_gunzip(data))]


def _gunzip(data: bytes) -> bytes:
    """Decompresses every gzip member of `data`; raises ValueError unless all are whole."""
    if not data:
        raise ValueError("empty file: not a gzip stream")
    parts = []
    while data:
        stream = zlib.decompressobj(wbits=31)
        try:
            parts.append(stream.decompress(data))
            parts.append(stream.flush())
        except zlib.error as error:
            raise ValueError(f"not a valid gzip stream: {error}") from error
        if not stream.eof:
            raise ValueError("truncated gzip stream: no end-of-stream marker")
        data = stream.unused_data
    return b"".join(parts)


def _tfrecords(data: bytes) -> Iterator[bytes]:
    """The records of uncompressed TFRecord bytes (length, crc, data, crc each)."""
    offset = 0
    while offset < len(data):
        if offset + 12 > len(data):
            raise ValueError(f"truncated TFRecord header at byte {offset}")
        (length,) = struct.unpack_from("<Q", data, offset)
        end = offset + 12 + length + 4
        if end > len(data):
            raise ValueError(f"truncated TFRecord of {length} bytes at byte {offset}")
        yield data[offset + 12 : offset + 12 + length]
        offset = end


# --- quarantine: where unreadable shards are moved aside, evidence kept -------------------
def quarantine_dir(namespace_dir: str) -> str:
    """``<namespace>/quarantine``: the unreadable shards moved aside, with their reasons."""
    return join(namespace_dir, QUARANTINE_DIR)


def quarantine_shard(path: str, dim: int, error: str) -> str | None:
    """Moves a shard that read_shard rejected (ValueError: its content is bad) into
    quarantine_dir, with a reason file; returns its new path, or None when this call
    moved nothing. Never raises for a shard that is gone or cannot be moved.

    Nothing is moved when the shard reads fine on a second look (a complete shard is
    never moved; this run still skips it), when it is gone (a concurrent run, or an
    earlier attempt of this bundle, moved it first: only the winning move writes the
    reason file), or when the move fails (say, no permission; logged, and the next
    run skips it again). A name already taken in quarantine_dir (an earlier shard of
    the same name) gets a unique one. Moves are tf.io.gfile renames: atomic on local
    disks; on object stores (gs://) a copy and a delete, so racing runs can at worst
    leave a second copy of the evidence.

    Args:
        path: the shard, directly in its namespace directory.
        dim: the namespace's vector length (for the second look).
        error: why read_shard rejected it (written to the reason file).
    """
    try:
        read_shard(path, dim)
    except tf.errors.NotFoundError:
        logging.info("Unreadable cache shard %s was already moved aside by another run", path)
        return None
    except tf.errors.OpError as again:  # cannot be opened now: not proven bad
        logging.warning("Unreadable cache shard %s not moved: %s", path, again.message)
        return None
    except ValueError:
        pass
    else:
        logging.warning(
            "Cache shard %s could not be read (%s) but reads on a second look: not moved",
            path,
            error,
        )
        return None
    namespace_dir, name = path.rsplit("/", 1)
    folder = quarantine_dir(namespace_dir)
    target = join(folder, name)
    try:
        tf.io.gfile.makedirs(folder)
        if tf.io.gfile.exists(target):
            stem = name.removesuffix(SHARD_SUFFIX)
            target = join(folder, f"{stem}-{uuid.uuid4().hex[:8]}{SHARD_SUFFIX}")
        tf.io.gfile.rename(path, target, overwrite=False)
    except (tf.errors.NotFoundError, tf.errors.AlreadyExistsError):  # lost the race
        logging.info("Unreadable cache shard %s was already moved aside by another run", path)
        return None
    except tf.errors.OpError as failed:
        logging.warning(
            "Unreadable cache shard %s (%s) could not be moved to %s: %s; it stays and is "
            "skipped again by the next run",
            path,
            error,
            folder,
            failed.message,
        )
        return None
    reason = {
        "shard": path,
        "error": error,
        "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "host": socket.gethostname(),
    }
    partial = join(folder, f".{uuid.uuid4().hex}.tmp")
    try:
        with tf.io.gfile.GFile(partial, "w") as f:
            f.write(json.dumps(reason, sort_keys=True) + "\n")
        tf.io.gfile.rename(partial, target + REASON_SUFFIX, overwrite=True)
    except tf.errors.OpError as failed:  # the shard itself is moved: keep going
        logging.warning("Could not write the reason file of %s: %s", target, failed.message)
    logging.warning(
        "Unreadable cache shard %s moved to %s (its vectors are recomputed): %s",
        path,
        target,
        error,
    )
    return target


# --- staging: where a run's shards are written before they get their final name ----------
def staging_dir(namespace_dir: str, run_id: str) -> str:
    """The run's staging folder inside the namespace (STAGING_PREFIX + run id)."""
    return join(namespace_dir, f"{STAGING_PREFIX}{run_id}")


def final_shard_path(namespace_dir: str, run_id: str, unique: str) -> str:
    """``entries-<run id>-<unique>.tfrecord.gz``: what SHARD_GLOB matches."""
    return join(namespace_dir, f"{SHARD_PREFIX}-{run_id}-{unique}{SHARD_SUFFIX}")


def claim_staging(directory: str) -> None:
    """Creates a run's staging folder with OWNER_FILE: this host, process id and time.

    The owner lets a later run tell a staging folder that is still in use (its process
    is alive, or it is on another host and recent) from one left by a killed run.
    """
    tf.io.gfile.makedirs(directory)
    owner = {
        "host": socket.gethostname(),
        "machine": machine_id(),
        "pid": os.getpid(),
        "started": time.time(),
    }
    with tf.io.gfile.GFile(join(directory, OWNER_FILE), "w") as f:
        f.write(json.dumps(owner))


def release_staging(directory: str) -> None:
    """Removes a finished run's staging folder (left-overs of retried bundles included)."""
    if tf.io.gfile.exists(directory):
        tf.io.gfile.rmtree(directory)


def _newest_mtime(directory: str) -> float:
    newest = tf.io.gfile.stat(directory).mtime_nsec / 1e9
    for parent, _, names in tf.io.gfile.walk(directory):
        for name in names:
            try:
                newest = max(newest, tf.io.gfile.stat(join(parent, name)).mtime_nsec / 1e9)
            except tf.errors.NotFoundError:  # removed meanwhile
                continue
    return newest


def machine_id() -> str:
    """Where a process id means the same process: host name, boot and pid namespace.

    Containers may share a host name (host networking, or every one called
    "localhost" on a shared cache volume) while each has its own process ids; a pid
    is only compared within the same boot and pid namespace.
    """
    parts = [socket.gethostname()]
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
            parts.append(f.read().strip())
        parts.append(str(os.stat("/proc/self/ns/pid").st_ino))
    except OSError:  # not Linux: the host name alone
        pass
    return "|".join(parts)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def is_stale(directory: str, stale_after_s: float = STALE_AFTER_S, now: float | None = None):
    """Why a staging folder is no longer in use, or None while it may be.

    Stale: its owner process (OWNER_FILE) is on this machine (machine_id: host, boot,
    pid namespace) and no longer runs; or, for an owner elsewhere or a folder without
    an owner (such as Beam's own
    ``beam-temp-entries-*`` of older versions), nothing in it changed for
    stale_after_s. A folder whose owner process still runs on this host is in use.
    """
    now = time.time() if now is None else now
    owner_path = join(directory, OWNER_FILE)
    owner = None
    if tf.io.gfile.exists(owner_path):
        try:
            with tf.io.gfile.GFile(owner_path) as f:
                owner = json.loads(f.read())
        except (ValueError, tf.errors.OpError):
            owner = None
    if (
        isinstance(owner, dict)
        and owner.get("machine") == machine_id()
        and isinstance(owner.get("pid"), int)
    ):
        if owner["pid"] == os.getpid():
            return None  # this process: a run of ours (maybe in another thread)
        if _process_alive(owner["pid"]):
            return None
        return f"its process {owner['pid']} on this host has ended"
    idle = now - _newest_mtime(directory)
    if idle > stale_after_s:
        return f"nothing in it changed for {idle:.0f} s"
    return None


def clean_stale_staging(namespace_dir: str, stale_after_s: float = STALE_AFTER_S) -> list[str]:
    """Removes the namespace's staging folders that are no longer in use (is_stale);
    returns their paths. Complete shards and folders in use are never touched."""
    if not tf.io.gfile.isdir(namespace_dir):
        return []
    removed = []
    for name in tf.io.gfile.listdir(namespace_dir):
        name = name.rstrip("/")
        directory = join(namespace_dir, name)
        if not name.startswith(STAGING_PREFIX) or not tf.io.gfile.isdir(directory):
            continue
        try:
            reason = is_stale(directory, stale_after_s)
            if reason is not None:
                tf.io.gfile.rmtree(directory)
        except tf.errors.NotFoundError:  # another run removed it first
            continue
        if reason is not None:
            logging.info("Removed stale cache staging folder %s: %s", directory, reason)
            removed.append(directory)
    return removed
