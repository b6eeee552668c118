"""A run a person can read: one line per step on the terminal, every log line in a file.

``quiet_run(log_path)`` is used by the CLI only (components never touch logging, so a
Kubeflow pod keeps its full logs). For its duration, the process's own stdout and
stderr (file descriptors 1 and 2, so TensorFlow's C++ lines, Beam, Keras' epoch lines
and child processes too) go to ``log_path``; the terminal gets:

* one line as each pipeline step starts and one as it ends, with its state (ran /
  from cache / failed) and seconds, read from the LocalDagRunner's own log records
  ("Component X is running." / "is finished.", the launcher's "A cached execution");
* every WARNING or ERROR logged by this project's code (components/, pipeline/):
  those concern the user's data or models and are shown in full;
* whatever the caller prints through the returned ``Console``.

What is hidden (third-party INFO logs, TensorFlow's start-up lines, the Google client
libraries' FutureWarning about Python 3.10, TFX's protobuf dumps) is still in the file,
whose path the CLI prints with the summary.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import sys
import time
from collections.abc import Iterator

_RUNNING = re.compile(r"^Component (\S+) is running\.$")
_FINISHED = re.compile(r"^Component (\S+) is finished\.$")
_CACHED = re.compile(r"^A cached execution \d+ is used\.$")
_PROJECT_DIRS = tuple(
    os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), name) + os.sep
    for name in ("components", "pipeline")
)


class Console:
    """Writes to the terminal the run started on (not to the log file).

    ``start`` writes the beginning of a line that ``finish`` completes, so a step takes
    one line; any other line printed in between first ends the open one.
    """

    def __init__(self, stream: io.TextIOBase):
        self._stream = stream
        self._open = False

    def _write(self, text: str) -> None:
        self._stream.write(text)
        self._stream.flush()

    def print(self, text: str = "") -> None:
        self._write(("\n" if self._open else "") + text + "\n")
        self._open = False

    def start(self, text: str) -> None:
        self._write(("\n" if self._open else "") + text)
        self._open = True

    def finish(self, text: str, head: str) -> None:
        """Completes the open line, or writes `head` + `text` when it was closed."""
        self._write(text + "\n" if self._open else head + text + "\n")
        self._open = False


class _ProgressHandler(logging.Handler):
    """Turns the runner's log records into step lines; forwards the project's warnings."""

    def __init__(self, console: Console):
        super().__init__(level=logging.INFO)
        self.console = console
        self._started: dict[str, float] = {}
        self._current: str | None = None
        self._cached: set[str] = set()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad log call must not break the run
            return
        if match := _RUNNING.match(message):
            node = match.group(1)
            self._started[node] = time.monotonic()
            self._current = node
            self.console.start(f"  {node} ...")
        elif match := _FINISHED.match(message):
            node = match.group(1)
            seconds = time.monotonic() - self._started.get(node, time.monotonic())
            state = "from cache" if node in self._cached else "ran"
            self.console.finish(f" {state} ({seconds:.1f}s)", f"  {node} ...")
        elif _CACHED.match(message) and self._current:
            self._cached.add(self._current)
        elif record.levelno >= logging.WARNING and record.pathname.startswith(_PROJECT_DIRS):
            self.console.print(f"  {record.levelname.lower()}: {message}")

    def failed_step(self) -> str | None:
        """The step that was running when the run stopped, if any."""
        if self._current and self._current in self._started:
            return self._current
        return None


@contextlib.contextmanager
def quiet_run(log_path: str) -> Iterator[tuple[Console, _ProgressHandler]]:
    """Sends fds 1 and 2 to log_path for the block; yields (console, progress)."""
    os.makedirs(os.path.dirname(os.path.abspath(log_path)), exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved_out, saved_err = os.dup(1), os.dup(2)
    terminal = io.TextIOWrapper(os.fdopen(os.dup(saved_out), "wb"), write_through=True)
    console = Console(terminal)
    progress = _ProgressHandler(console)
    log_file = open(log_path, "ab")  # noqa: SIM115 - closed in finally
    root = logging.getLogger()  # its stream handlers write to fd 2: the log file below
    old_level = root.level
    # absl's verbosity *flag*, not only its logger's level: TensorFlow's SavedModel
    # export sets the flag to FATAL and back to the flag's previous value, which is
    # WARNING unless set, and the runner's INFO lines would stop there.
    from absl import logging as absl_logging

    absl_logging.set_verbosity(absl_logging.INFO)
    try:
        os.dup2(log_file.fileno(), 1)
        os.dup2(log_file.fileno(), 2)
        root.addHandler(progress)
        root.setLevel(logging.INFO)
        yield console, progress
    finally:
        root.removeHandler(progress)
        root.setLevel(old_level)
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved_out, 1)
        os.dup2(saved_err, 2)
        os.close(saved_out)
        os.close(saved_err)
        log_file.close()
        terminal.flush()
