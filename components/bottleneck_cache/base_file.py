"""The base network of the cache: its file, its digest, and what the frozen part computes.

A base network is a native Keras 3 ``.keras`` file (``components.common.model_io``), usually
the ``model.keras`` inside a Model artifact's directory. Where to cut, pooling and
freezing are ``components.common.model_surgery``'s (``resolve_cut_layer``, ``cut_base``,
``freeze_extractor``): the cache and the Trainer use the same code, so they cannot
drift.

Two digests:

* ``read_base``'s digest: sha256 of the model file's bytes. Cheap (no model is built); it
  identifies the exact file a plan was made from, so a worker can trust the plan's
  fingerprint without loading and fingerprinting the model again. ``base_digest``
  gives it without reading the file again when this process already read it and it is
  unchanged since (same path, size and modification time): the in-memory runner's
  worker checks the file the executor's make_plan hashed a moment before (0.1 s for
  the photo demo's 59 MB VGG16).
* ``fingerprint``: what the frozen part computes, a sha256 over the cut sub-model's
  architecture (canonical JSON) and every weight array (name, dtype, shape and
  bytes). Saving the same model again gives the same fingerprint (the file bytes
  differ: the .keras zip holds a save date); other weights or another cut give
  another one. Pooling is not part of it: the cache namespace adds it (see plan.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading

import keras
import numpy as np
import tensorflow as tf

from components.common import model_io


def model_file(uri: str) -> str:
    """The .keras file of a Model artifact's uri (a directory holding model.keras) or
    of a .keras path (``model_io.keras_model_path``).

    Raises:
        FileNotFoundError: neither exists; the message names what was looked for.
    """
    try:
        return model_io.keras_model_path(uri)
    except FileNotFoundError as e:
        raise FileNotFoundError(f"base_model: cannot load the base network: {e}") from e


_digests_lock = threading.Lock()
_digests: dict[tuple, str] = {}  # (path, size, mtime in ns) -> sha256 of what was read


def _stat_key(path: str) -> tuple:
    stat = tf.io.gfile.stat(path)
    return path, stat.length, stat.mtime_nsec


def read_base(uri: str) -> tuple[bytes, str]:
    """(bytes of the base's .keras file, their sha256 hex); see model_file."""
    path = model_file(uri)
    before = _stat_key(path)
    with tf.io.gfile.GFile(path, "rb") as f:
        data = f.read()
    digest = hashlib.sha256(data).hexdigest()
    if _stat_key(path) == before:  # not rewritten while it was read
        with _digests_lock:
            _digests[before] = digest
    return data, digest


def base_digest(uri: str) -> str:
    """The sha256 hex of the base's .keras file, as read_base gives it, without reading
    the file again if this process read it and its size and modification time are
    unchanged."""
    with _digests_lock:
        known = _digests.get(_stat_key(model_file(uri)))
    return known if known is not None else read_base(uri)[1]


def load_bytes(data: bytes) -> keras.Model:
    """The Keras 3 model in the bytes of a .keras file (read_base), loaded uncompiled."""
    with tempfile.TemporaryDirectory() as local_dir:
        path = os.path.join(local_dir, model_io.KERAS_MODEL_FILE)
        with open(path, "wb") as f:
            f.write(data)
        return keras.models.load_model(path, compile=False)


def load_base(uri: str) -> keras.Model:
    """Loads the base network from a Model artifact's uri (or a .keras path)."""
    return load_bytes(read_base(uri)[0])


def fingerprint(sub_model: keras.Model) -> str:
    """sha256 hex over the architecture (canonical JSON) and every weight array.

    Left out, because they do not change what the frozen extractor computes: the
    compile configuration and every "trainable" flag (freezing the extractor sets
    them; it is always called with training=False).
    """
    digest = hashlib.sha256()
    architecture = _without_keys(json.loads(sub_model.to_json()), {"compile_config", "trainable"})
    digest.update(json.dumps(architecture, sort_keys=True, separators=(",", ":")).encode())
    for weight in sub_model.weights:
        array = np.ascontiguousarray(keras.ops.convert_to_numpy(weight))
        header = f"\n{weight.path}|{array.dtype.str}|{array.shape}\n"
        digest.update(header.encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def _without_keys(value, keys: set[str]):
    """A JSON value with the given dict keys removed at every depth."""
    if isinstance(value, dict):
        return {k: _without_keys(v, keys) for k, v in value.items() if k not in keys}
    if isinstance(value, list):
        return [_without_keys(v, keys) for v in value]
    return value
