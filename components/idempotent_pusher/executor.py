"""A Pusher executor that publishes each model once, in a version of its own, atomically.

For a filesystem PushDestination (any other goes to TFX's Pusher unchanged), a model
that is not blessed (ModelBlessing or InfraBlessing) is marked not pushed; a blessed one:

* is not copied again when a version under the destination already holds the same
  files (``saved_model_digest``: relative paths and bytes); the PushedModel then names
  that version and has ALREADY_SERVED_KEY = 1;
* otherwise becomes ``<base_directory>/<version>/`` (``publish``), version = max(unix
  time, newest version + 1). Locally it is copied into a hidden ``.staging-<random>``
  folder (TF Serving loads only folders named by an integer) and renamed; a rename onto
  a version another run took fails, and the next number is tried: versions are unique
  and appear whole. On object stores (gs://) the files are copied with saved_model.pb
  last, under a number not yet used: unique only while one run pushes at a time (the
  CLI's run lock per pipeline root).

Why, and the cases tried: docs/ARCHITECTURE.md, "Runs, locks and versions", and
docs/RELIABILITY.md.
"""

from __future__ import annotations

import errno
import hashlib
import os
import time
import uuid
from collections.abc import Callable

from absl import logging
from tfx.components.pusher import executor as pusher_executor
from tfx.dsl.io import fileio
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import io_utils, proto_utils

from components.common.artifact_io import is_remote

STAGING_PREFIX = ".staging-"
SAVED_MODEL_FILE = "saved_model.pb"
_MAX_ATTEMPTS = 1000
# Set to 1 on the PushedModel when the destination already held the same model.
ALREADY_SERVED_KEY = "already_served"


def saved_model_digest(model_dir: str) -> str:
    """sha256 over the relative paths and bytes of every file under a SavedModel dir."""
    digest = hashlib.sha256()
    files = []
    for root, _, names in fileio.walk(model_dir):
        files.extend(os.path.join(root, name) for name in names)
    for path in sorted(files):
        digest.update(os.path.relpath(path, model_dir).encode())
        with fileio.open(path, "rb") as f:
            digest.update(hashlib.sha256(f.read()).digest())
    return digest.hexdigest()


def versions(base_directory: str) -> list[int]:
    """The version numbers under the destination (folders named by an integer)."""
    if not fileio.exists(base_directory):
        return []
    names = (name.strip("/") for name in fileio.listdir(base_directory))
    return sorted(int(name) for name in names if name.isdigit())


def find_same_version(model_dir: str, base_directory: str) -> str | None:
    """The existing version directory holding the same model, if any (newest first)."""
    existing = versions(base_directory)
    if not existing:
        return None
    wanted = saved_model_digest(model_dir)
    for version in reversed(existing):
        path = os.path.join(base_directory, str(version))
        if saved_model_digest(path) == wanted:
            return path
    return None


def publish(
    model_dir: str, base_directory: str, clock: Callable[[], float] = time.time
) -> tuple[str, str]:
    """Copies a SavedModel into a new, unique version folder; returns (version, path).

    Raises:
        FileNotFoundError: model_dir holds no saved_model.pb (nothing servable to push).
        RuntimeError: no free version number after many attempts (should not happen).
    """
    if not fileio.exists(os.path.join(model_dir, SAVED_MODEL_FILE)):
        raise FileNotFoundError(f"no {SAVED_MODEL_FILE} in {model_dir}: nothing to push")
    fileio.makedirs(base_directory)
    if is_remote(base_directory):
        return _publish_by_copy(model_dir, base_directory, clock)
    staging = os.path.join(base_directory, f"{STAGING_PREFIX}{uuid.uuid4().hex}")
    io_utils.copy_dir(model_dir, staging)
    try:
        version = int(clock())
        for _ in range(_MAX_ATTEMPTS):
            version = max(version, max(versions(base_directory), default=0) + 1)
            target = os.path.join(base_directory, str(version))
            try:
                os.rename(staging, target)  # atomic; fails onto a non-empty folder
                return str(version), target
            except OSError as error:
                if error.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                    raise
                version += 1  # another run took it a moment ago
        raise RuntimeError(f"no free version number under {base_directory}")
    finally:
        if os.path.exists(staging):
            io_utils.delete_dir(staging)


def _publish_by_copy(
    model_dir: str, base_directory: str, clock: Callable[[], float]
) -> tuple[str, str]:
    """Object stores: next free version, files copied with saved_model.pb last."""
    version = max(int(clock()), max(versions(base_directory), default=0) + 1)
    target = os.path.join(base_directory, str(version))
    io_utils.copy_dir(model_dir, target, deny_regex_patterns=[r"saved_model\.pb"])
    io_utils.copy_file(
        os.path.join(model_dir, SAVED_MODEL_FILE), os.path.join(target, SAVED_MODEL_FILE)
    )
    return str(version), target


class Executor(pusher_executor.Executor):
    """Pushes like TFX's Pusher, except a model already served, into unique versions."""

    def Do(self, input_dict, output_dict, exec_properties):  # noqa: N802 - TFX's name
        destination = pusher_pb2.PushDestination()
        proto_utils.json_to_proto(
            exec_properties[standard_component_specs.PUSH_DESTINATION_KEY], destination
        )
        if destination.WhichOneof("destination") != "filesystem":
            super().Do(input_dict, output_dict, exec_properties)
            return
        model_push = artifact_utils.get_single_instance(
            output_dict[standard_component_specs.PUSHED_MODEL_KEY]
        )
        if not self.CheckBlessing(input_dict):
            self._MarkNotPushed(model_push)
            return
        model_dir = self.GetModelPath(input_dict)
        base_directory = destination.filesystem.base_directory
        same = find_same_version(model_dir, base_directory)
        if same is not None:
            logging.info("The model is already served as %s; pushing nothing new.", same)
            self._MarkPushed(
                model_push, pushed_destination=same, pushed_version=os.path.basename(same)
            )
            model_push.set_int_custom_property(ALREADY_SERVED_KEY, 1)
            return
        version, path = publish(model_dir, base_directory)
        logging.info("Model written to serving path %s.", path)
        io_utils.copy_dir(model_dir, model_push.uri)  # the archive copy, as TFX's Pusher
        self._MarkPushed(model_push, pushed_destination=path, pushed_version=version)
