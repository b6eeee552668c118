"""Listing of ImageExampleGen's input folder: which files are candidates, which are not.

Local roots are walked with os.walk (symlinks followed while they stay inside the
root, cycles entered once); remote roots (gs://...) with tf.io.gfile. Every file seen
ends up as a FileEntry (read and validated later), as a quarantine record that says
why it was not read, or as ignored (is_ignored: files and folders that operating
systems and tools drop into folders). No TFX APIs are used here.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import posixpath
from collections.abc import Iterator
from typing import NamedTuple

from components.common import examples
from components.common.artifact_io import is_remote

ROOT_FILE_REASON = "not inside a class folder; move it into {root}/<class>/"

# Names of files that operating systems drop into folders (compared case-insensitively).
# These and every name starting with "." (.DS_Store, ._* AppleDouble files, .gitkeep,
# hidden folders such as .git or .ipynb_checkpoints) are ignored: neither read nor
# quarantined, only counted (spec.COUNT_IGNORED). The rule is is_ignored, below.
IGNORED_FILE_NAMES = frozenset({"thumbs.db", "desktop.ini"})


def is_ignored(name: str, is_dir: bool = False) -> bool:
    """True when a file or folder `name` (one path component) is ignored, not ingested.

    Hidden names (starting with ".") are ignored for files and folders; a hidden folder
    is not walked, not a class, and counts as one ignored entry. IGNORED_FILE_NAMES are
    ignored for files only.
    """
    if name.startswith("."):
        return True
    return not is_dir and name.lower() in IGNORED_FILE_NAMES


class FileEntry(NamedTuple):
    """One candidate file: where to read it and which label its folder gives it."""

    relpath: str  # posix path relative to the input root
    path: str  # local path or URI to read the bytes from
    label: int  # index into the class vocabulary; examples.UNLABELLED when unlabelled
    label_name: str  # class folder name; "" when unlabelled


def quarantine_record(path: str, reason: str) -> dict:
    """One line of quarantine.jsonl."""
    return {"path": path, "reason": reason}


def _gfile():
    """tf.io.gfile, imported on first use (local listing needs no TensorFlow)."""
    import tensorflow as tf

    return tf.io.gfile


def check_input_root(input_root: str) -> None:
    """Raises a ValueError that names the fix when `input_root` is not a folder."""
    exists, isdir = (
        (_gfile().exists, _gfile().isdir)
        if is_remote(input_root)
        else (os.path.exists, os.path.isdir)
    )
    if not input_root or not exists(input_root):
        raise ValueError(
            f"input_base {input_root} does not exist; "
            "point data.root at a folder of class sub-folders"
        )
    if not isdir(input_root):
        raise ValueError(
            f"input_base {input_root} is a file, not a folder; "
            "point data.root at a folder of class sub-folders"
        )


def _inside(real: str, real_root: str) -> bool:
    return os.path.commonpath([real, real_root]) == real_root


def _local_file_problem(path: str, real_root: str) -> str:
    """Why a local file cannot be read as a candidate image ("" when it can)."""
    if os.path.islink(path):
        real = os.path.realpath(path)
        if not _inside(real, real_root):
            return f"symlink leaves the input root -> {real}"
        if not os.path.exists(path):
            return f"broken symlink -> {os.readlink(path)}"
    if not os.path.isfile(path):
        return "not a regular file (FIFO, socket or device); remove it"
    return ""


def _walk_local(root: str) -> Iterator[tuple[str, str, str]]:
    """Yields (relpath, path, problem) for every file under a local root.

    Symlinks are followed while they stay inside the root. A directory whose real path
    is one of its own ancestors' is a cycle and is not entered again; aliases that are
    not cycles are walked (their files then show up as duplicates or conflicts).
    Ignored (hidden) folders are yielded themselves, as one entry, and not entered.
    """
    real_root = os.path.realpath(root)
    chains = {root: frozenset([real_root])}  # dirpath -> real paths of it and ancestors
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        chain = chains.pop(dirpath)
        kept = []
        for name in sorted(dirnames):
            path = os.path.join(dirpath, name)
            real = os.path.realpath(path)
            rel = os.path.relpath(path, root).replace(os.sep, "/")
            if is_ignored(name, is_dir=True):
                yield rel, path, ""
            elif not _inside(real, real_root):
                yield rel, path, f"symlink leaves the input root -> {real}"
            elif real in chain:
                logging.warning("Not entering %s again: symlink cycle to %s", path, real)
            else:
                chains[path] = chain | {real}
                kept.append(name)
        dirnames[:] = kept
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root).replace(os.sep, "/")
            yield rel, path, _local_file_problem(path, real_root)


def _walk_remote(root: str) -> Iterator[tuple[str, str, str]]:
    """Yields (relpath, path, "") for every file under a remote root (no symlinks).

    Ignored (hidden) folders are yielded themselves, as one entry, and not entered.
    """
    gfile = _gfile()
    base = root.rstrip("/")

    def rel(path: str) -> str:
        return path[len(base) :].strip("/").replace("//", "/")

    for dirpath, dirnames, filenames in gfile.walk(base):
        hidden = [name for name in dirnames if is_ignored(name.rstrip("/"), is_dir=True)]
        dirnames[:] = [name for name in dirnames if name not in hidden]  # not entered
        for name in sorted(hidden):
            path = posixpath.join(dirpath, name.rstrip("/"))
            yield rel(path), path, ""
        for name in sorted(filenames):
            path = posixpath.join(dirpath, name)
            yield rel(path), path, ""


def _walk(root: str) -> Iterator[tuple[str, str, str]]:
    return _walk_remote(root) if is_remote(root) else _walk_local(root)


def _name_problem(name: str) -> str:
    """Why a file or folder name cannot be stored as is ("" when it can)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return "name is not valid UTF-8; rename it"
    if "\n" in name or "\r" in name:
        return "name contains a line break; rename it"
    return ""


def _printable(name: str) -> str:
    """The name with undecodable bytes (surrogate escapes) replaced by U+FFFD."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _local_class_dir(input_root: str, real_root: str, name: str) -> bool:
    path = os.path.join(input_root, name)
    real = os.path.realpath(path)
    return (
        not is_ignored(name, is_dir=True)
        and os.path.isdir(path)
        and _inside(real, real_root)
        and real != real_root
    )


def list_classes(input_root: str, labelled: bool = True) -> list[str]:
    """The class vocabulary: sorted first-level folder names ([] when unlabelled).

    Not classes: ignored (hidden) folders such as .git (see is_ignored), folders that
    are symlinks leaving the root or pointing at the root itself, and names that
    cannot be written to labels.txt (their files are quarantined by list_files).
    """
    if not labelled:
        return []
    if is_remote(input_root):
        gfile = _gfile()
        base = input_root.rstrip("/")
        names = [
            n.rstrip("/")
            for n in gfile.listdir(base)
            if not is_ignored(n.rstrip("/"), is_dir=True) and gfile.isdir(f"{base}/{n}")
        ]
    else:
        real_root = os.path.realpath(input_root)
        names = [
            name for name in os.listdir(input_root) if _local_class_dir(input_root, real_root, name)
        ]
    return sorted(name for name in names if not _name_problem(name))


def _ignored_relpath(relpath: str) -> bool:
    """True when the last component of a walked relpath is ignored (see is_ignored).

    The walkers yield a hidden folder as one entry and do not enter it, so a hidden
    name anywhere in a walked relpath is its last component.
    """
    return is_ignored(posixpath.basename(relpath))


def list_files(
    input_root: str, labelled: bool = True
) -> tuple[list[FileEntry], list[dict], list[str]]:
    """Walks the input root and sorts every file into a candidate, quarantine or ignored.

    Args:
      input_root: local folder or remote URI (gs://...).
      labelled: True: the first-level folder is the class; files directly in the root
        are quarantined. False: every file is unlabelled.

    Returns:
      (entries, escaped, ignored): candidate files sorted by relpath; quarantine records
      (symlinks leaving the root, root-level files, non-regular files, names that are
      not UTF-8 or hold line breaks) sorted by path; and the sorted relpaths of ignored
      files and hidden folders (is_ignored: .DS_Store, ._*, Thumbs.db, desktop.ini,
      .git/ ...; a hidden folder is one entry, its contents are not listed). The name
      rule wins over every other check, so e.g. a root-level .DS_Store is ignored.
      Every file seen is in exactly one of the three lists.

    Raises:
      ValueError: if input_root is not an existing folder.
    """
    check_input_root(input_root)
    classes = list_classes(input_root, labelled)
    index = {name: i for i, name in enumerate(classes)}
    root_reason = ROOT_FILE_REASON.format(root=input_root.rstrip("/"))
    entries, escaped, ignored = [], [], []
    for relpath, path, problem in _walk(input_root):
        if _ignored_relpath(relpath):
            ignored.append(_printable(relpath))
            continue
        top, sep, _ = relpath.partition("/")
        problem = problem or _name_problem(relpath)
        if problem:
            escaped.append(quarantine_record(_printable(relpath), problem))
        elif not labelled:
            entries.append(FileEntry(relpath, path, examples.UNLABELLED, ""))
        elif not sep or top not in index:
            escaped.append(quarantine_record(relpath, root_reason))
        else:
            entries.append(FileEntry(relpath, path, index[top], top))
    entries.sort()
    escaped.sort(key=lambda record: record["path"])
    ignored.sort()
    return entries, escaped, ignored


def fingerprint(input_root: str) -> str:
    """A cheap fingerprint of the input folder, so TFX's cache re-runs when files change.

    sha256 over the sorted (relpath, size, mtime_ns) of every file, plus the class
    folder names (an empty new class changes the vocabulary). File contents are not
    read. Ignored files and hidden folders (is_ignored) are left out: they never
    become examples, so adding, touching or removing a .DS_Store reuses the cached
    ingestion (whose `ignored` count then describes the folder as it was).

    Raises:
      ValueError: if input_root is not an existing folder.
    """
    check_input_root(input_root)
    digest = hashlib.sha256(json.dumps(list_classes(input_root)).encode())
    for relpath, path, problem in sorted(_walk(input_root)):
        if _ignored_relpath(relpath):
            continue
        size, mtime_ns = _stat(path, problem)
        digest.update(json.dumps([relpath, size, mtime_ns, problem]).encode())
    return digest.hexdigest()


def _stat(path: str, problem: str) -> tuple[int, int]:
    if problem:
        return -1, -1
    if is_remote(path):
        stat = _gfile().stat(path)
        return stat.length, stat.mtime_nsec
    stat = os.stat(path)
    return stat.st_size, stat.st_mtime_ns


def read_file(path: str) -> bytes:
    """Reads a local file or remote URI; remote errors are raised as OSError."""
    if not is_remote(path):
        with open(path, "rb") as f:
            return f.read()
    import tensorflow as tf  # only remote paths need it

    try:
        with tf.io.gfile.GFile(path, "rb") as f:
            return f.read()
    except tf.errors.OpError as err:
        raise OSError(err.message) from err
