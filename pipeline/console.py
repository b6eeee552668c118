"""A run a person can read: one line per step on the terminal, every log line in a file.

``quiet_run(log_path)`` is used by the CLI only (components never touch logging, so a
Kubeflow pod keeps its full logs). For its duration, the process's own stdout and
stderr (file descriptors 1 and 2, so TensorFlow's C++ lines, Beam, Keras' epoch lines
and child processes too) go to ``log_path``; the terminal gets:

* one line as each pipeline step starts and one as it ends, with its state (ran /
  from cache / failed) and seconds, read from the LocalDagRunner's own log records
  ("Component X is running." / "is finished.", the launcher's "A cached execution" and
  "Going to run a new execution"). A step's line is written when it starts to do
  something (its executor runs, it reports progress or a warning); steps that end
  without doing anything (served from TFX's cache, or a resolver) are quiet, and a run
  of consecutive quiet steps takes one line ("13 steps, BaseModelGen to Pusher: 12 from
  cache, 1 ran (0.1s)"), so a fully cached rerun is not a page of "from cache";
* progress of the long steps, from the components' progress records
  (components.common.progress: ingest and the cache job in images done of total, the
  Trainer in epochs), with a rate and an estimate of the time left: on a terminal an
  updating status on the step's line (carriage return); otherwise (a file, CI) at most
  MAX_STEP_LINES lines per step, when a step passes 25/50/75% (every
  UNKNOWN_TOTAL_GAP seconds when the total is unknown) and at least MIN_GAP seconds
  after the step started or its last such line; either way the step's closing line
  ends with what each task did and its rate;
* every WARNING or ERROR logged by this project's code (components/, pipeline/):
  those concern the user's data or models and are shown in full;
* whatever the caller prints through the returned ``Console``.

Progress records reach the handler only from code running in this process: Beam's
DirectRunner in_memory runs its workers here, multi_processing does not (those steps
keep their plain line).

What is hidden (third-party INFO logs, TensorFlow's start-up lines, the Google client
libraries' FutureWarning about Python 3.10, TFX's protobuf dumps) is still in the file,
whose path the CLI prints with the summary.
"""

from __future__ import annotations

import collections
import contextlib
import io
import logging
import os
import re
import sys
import time
from collections.abc import Callable, Iterator

from components.common import progress as progress_lib

_RUNNING = re.compile(r"^Component (\S+) is running\.$")
_FINISHED = re.compile(r"^Component (\S+) is finished\.$")
_CACHED = re.compile(r"^A cached execution \d+ is used\.$")
_EXECUTES = re.compile(r"^Going to run a new execution \d+$")  # the launcher: a cache miss
MIN_GAP = 10.0  # seconds: no progress line sooner after the step's start or last line
UNKNOWN_TOTAL_GAP = 30.0  # seconds between progress lines when the total is unknown
MAX_STEP_LINES = 3  # progress lines per step when the output is not a terminal
STATUS_INTERVAL = 0.25  # seconds between rewrites of a terminal's status
_PROJECT_DIRS = tuple(
    os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), name) + os.sep
    for name in ("components", "pipeline")
)


class Console:
    """Writes to the terminal the run started on (not to the log file).

    ``start`` writes the beginning of a line that ``finish`` completes, so a step takes
    one line; any other line printed in between first ends the open one. On a
    terminal (``tty``), ``status`` rewrites the rest of the open line in place.
    """

    def __init__(self, stream: io.TextIOBase, tty: bool | None = None):
        self._stream = stream
        self._open = False
        self._head = ""  # the text `start` wrote
        self._status = False  # the open line holds a status after its head
        self._held: str | None = None  # a whole line written before anything else
        if tty is None:
            try:
                tty = stream.isatty()
            except (AttributeError, ValueError, OSError):
                tty = False
        self.tty = bool(tty)

    def _write(self, text: str) -> None:
        if self._held is not None:
            text, self._held = self._held + "\n" + text, None
        self._stream.write(text)
        self._stream.flush()

    @property
    def held(self) -> str | None:
        return self._held

    def hold(self, line: str) -> None:
        """Keeps `line` (a whole line, written when no line is open) back until anything
        else is written or the console closes, so that it can still be replaced."""
        self._held = line

    def print(self, text: str = "") -> None:
        self._write(("\n" if self._open else "") + text + "\n")
        self._open = self._status = False

    def start(self, text: str) -> None:
        self._write(("\n" if self._open else "") + text)
        self._open, self._head, self._status = True, text, False

    def status(self, text: str) -> None:
        """On a terminal: the open line becomes head + text (reopened after a print)."""
        if not self.tty or not self._head:
            return
        line = self._fit(self._head + text)
        self._write(f"\r{line}\x1b[K" if self._open else line)
        self._open = self._status = True

    def finish(self, text: str, head: str) -> None:
        """Completes the open line, or writes `head` + `text` when it was closed."""
        if self._open and self._status:  # a terminal: rewrite the whole line
            self._write(f"\r{self._head}{text}\x1b[K\n")
        else:
            self._write(text + "\n" if self._open else head + text + "\n")
        self._open = self._status = False
        self._head = ""

    def close_line(self) -> None:
        """Ends an open line (e.g. a step that stopped the run) and writes a held one,
        so what follows starts on its own line."""
        self._write("\n" if self._open else "")
        self._open = self._status = False

    def _fit(self, line: str) -> str:
        """The line cut to the terminal's width (a wrapped line cannot be rewritten):
        $COLUMNS, else the terminal's size, else 80 columns."""
        try:
            width = int(os.environ.get("COLUMNS", "0"))
        except ValueError:
            width = 0
        if width <= 0:
            try:
                width = os.get_terminal_size(self._stream.fileno()).columns
            except (AttributeError, ValueError, OSError, io.UnsupportedOperation):
                width = 0
        return line[: (width if width > 0 else 80) - 1]


class _StepProgress:
    """What a step's progress records said, and which of them were shown."""

    def __init__(self, started: float):
        self.last_line = started  # the step's start, then its last progress line
        self.lines = 0
        self.last_status = float("-inf")
        self.tasks: dict[str, progress_lib.Fields] = {}  # the latest record per task
        self.quarters: dict[str, int] = {}  # the last quarter shown per task

    def summary(self) -> str:
        """'; ingest 250/250 images, 120 img/s' for the closing line ('' without records)."""
        done = [f"{task} {progress_lib.describe(f, False)}" for task, f in self.tasks.items()]
        return "; " + "; ".join(done) if done else ""


class _ProgressHandler(logging.Handler):
    """Turns the runner's log records into step lines and the components' progress
    records into a status or a few lines; forwards the project's warnings."""

    def __init__(self, console: Console, clock: Callable[[], float] = time.monotonic):
        super().__init__(level=logging.INFO)
        self.console = console
        self._clock = clock
        self._started: dict[str, float] = {}
        self._current: str | None = None
        self._cached: set[str] = set()
        self._step: _StepProgress | None = None  # the running step's (None between steps)
        self._shown = False  # the running step's line is written
        self._quiet: list[tuple[str, str, float]] = []  # (node, state, seconds) held back

    def emit(self, record: logging.LogRecord) -> None:
        fields = progress_lib.fields_of(record)
        if fields is not None:
            self._progress(fields)
            return
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad log call must not break the run
            return
        if match := _RUNNING.match(message):
            node = match.group(1)
            self._started[node] = self._clock()
            self._current = node
            self._step = _StepProgress(self._started[node])
            self._shown = False
        elif match := _FINISHED.match(message):
            node = match.group(1)
            seconds = self._clock() - self._started.get(node, self._clock())
            state = "from cache" if node in self._cached else "ran"
            done = self._step.summary() if self._step and node == self._current else ""
            self._step = None
            if self._shown:
                self.console.finish(f" {state} ({seconds:.1f}s{done})", f"  {node} ...")
            else:
                self._hold_quiet(node, state, seconds)
        elif _CACHED.match(message) and self._current:
            self._cached.add(self._current)
        elif _EXECUTES.match(message):
            self._show()
        elif record.levelno >= logging.WARNING and record.pathname.startswith(_PROJECT_DIRS):
            self._show()
            self.console.print(f"  {record.levelname.lower()}: {message}")

    def _show(self) -> None:
        """Writes the running step's line (after the quiet steps held before it)."""
        if self._step is not None and not self._shown:
            self._shown = True
            self.console.start(f"  {self._current} ...")

    def _hold_quiet(self, node: str, state: str, seconds: float) -> None:
        """A step that did nothing joins the quiet steps just before it on one held line."""
        if self.console.held is None:  # the last group was written: a new one
            self._quiet = []
        self._quiet.append((node, state, seconds))
        if len(self._quiet) == 1:
            self.console.hold(f"  {node} ... {state} ({seconds:.1f}s)")
            return
        states = collections.Counter(state for _, state, _ in self._quiet)  # first seen first
        counts = ", ".join(f"{n} {state}" for state, n in states.items())
        total = sum(each for _, _, each in self._quiet)
        first, last = self._quiet[0][0], self._quiet[-1][0]
        self.console.hold(f"  {len(self._quiet)} steps, {first} to {last}: {counts} ({total:.1f}s)")

    def _progress(self, fields: progress_lib.Fields) -> None:
        """A status on a terminal; otherwise a line when it is due (see the module doc)."""
        step = self._step
        if step is None:  # not from a running step
            return
        self._show()
        step.tasks[fields.task] = fields
        now = self._clock()
        text = f"{fields.task} {progress_lib.describe(fields)}"
        if self.console.tty:
            if now - step.last_status >= STATUS_INTERVAL:
                step.last_status = now
                self.console.status(" " + text)
            return
        reached = fields.total is not None and fields.done >= fields.total
        if step.lines >= MAX_STEP_LINES or reached:
            return  # the closing line says where it ended
        if fields.total:
            quarter = min(3, 4 * fields.done // fields.total)
            due = quarter > step.quarters.get(fields.task, 0) and now - step.last_line >= MIN_GAP
            if due:
                step.quarters[fields.task] = quarter
        else:
            due = now - step.last_line >= UNKNOWN_TOTAL_GAP
        if due:
            step.last_line = now
            step.lines += 1
            self.console.print(f"    {text}")

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
        console.close_line()
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
