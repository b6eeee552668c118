"""A Pusher executor that does not push a model the destination already serves.

TFX's Pusher writes every blessed model to a new `<base_directory>/<unix time>/`.
After the first push of a model, the next run's Evaluator compares that same model
against itself (its baseline input changed from none to it) and blesses it again, so
the stock Pusher would publish an identical second version. This executor first
compares the candidate SavedModel with every version already under the destination
(a content hash of its files) and, if one is identical, records that version as the
push and copies nothing: a run with nothing changed publishes nothing new.
"""

from __future__ import annotations

import hashlib
import os

from absl import logging
from tfx.components.pusher import executor as pusher_executor
from tfx.dsl.io import fileio
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import proto_utils


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


def find_same_version(model_dir: str, base_directory: str) -> str | None:
    """The existing version directory holding the same model, if any."""
    if not fileio.exists(base_directory):
        return None
    versions = [v for v in fileio.listdir(base_directory) if v.strip("/").isdigit()]
    if not versions:
        return None
    wanted = saved_model_digest(model_dir)
    for version in sorted(versions, key=lambda v: int(v.strip("/")), reverse=True):
        path = os.path.join(base_directory, version.strip("/"))
        if saved_model_digest(path) == wanted:
            return path
    return None


class Executor(pusher_executor.Executor):
    """Pushes like TFX's Pusher, except a model that is already served."""

    def Do(self, input_dict, output_dict, exec_properties):  # noqa: N802 - TFX's name
        destination = pusher_pb2.PushDestination()
        proto_utils.json_to_proto(
            exec_properties[standard_component_specs.PUSH_DESTINATION_KEY], destination
        )
        if destination.WhichOneof("destination") == "filesystem" and self.CheckBlessing(input_dict):
            same = find_same_version(
                self.GetModelPath(input_dict), destination.filesystem.base_directory
            )
            if same is not None:
                model_push = artifact_utils.get_single_instance(
                    output_dict[standard_component_specs.PUSHED_MODEL_KEY]
                )
                logging.info("The model is already served as %s; pushing nothing new.", same)
                self._MarkPushed(
                    model_push, pushed_destination=same, pushed_version=os.path.basename(same)
                )
                return
        super().Do(input_dict, output_dict, exec_properties)
