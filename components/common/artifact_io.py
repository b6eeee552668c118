"""Artifact I/O shared by every component: paths, atomic writes, content ids, records.

One implementation of each small helper that components and the application need:
a path join and a remote-path test that work for local folders and tf.io.gfile URLs
(gs://...), a byte and an atomic text write, the content id of an image, and the
reader of an Examples split (gzipped TFRecords in ``Split-<name>/``). TensorFlow is
imported only by the helpers that touch files, so ``is_remote`` and ``join`` cost
nothing to import.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import uuid
from collections.abc import Sequence

COMPRESSION = "GZIP"  # every Examples split this project writes or reads


def is_remote(path: str) -> bool:
    """True for URIs such as gs://bucket/dir, which are read through tf.io.gfile."""
    return "://" in path


def join(directory: str, name: str) -> str:
    """os.path.join for local paths, "/" for URLs such as gs://bucket/dir."""
    return (
        posixpath.join(directory, name) if is_remote(directory) else os.path.join(directory, name)
    )


def content_id(data: bytes) -> str:
    """The id of an image's content: sha256 hex of its encoded bytes (also the cache key)."""
    return hashlib.sha256(data).hexdigest()


def write_bytes(path: str, data: bytes) -> None:
    """Writes bytes to a local path or a tf.io.gfile URL."""
    import tensorflow as tf

    with tf.io.gfile.GFile(path, "wb") as f:
        f.write(data)


def write_text_atomically(path: str, text: str) -> None:
    """Writes under a unique temporary name beside `path`, then renames over it."""
    import tensorflow as tf

    partial = f"{path}.{uuid.uuid4().hex}.tmp"
    with tf.io.gfile.GFile(partial, "w") as f:
        f.write(text)
    tf.io.gfile.rename(partial, path, overwrite=True)


def split_files(split_uri: str) -> list[str]:
    """The record files of one split folder of an Examples artifact, sorted."""
    import tensorflow as tf

    return sorted(tf.io.gfile.glob(join(split_uri, "*")))


def read_records(files: Sequence[str]):
    """A tf.data.Dataset of the serialized records of gzipped TFRecord files."""
    import tensorflow as tf

    return tf.data.TFRecordDataset(list(files), compression_type=COMPRESSION)
