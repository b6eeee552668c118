"""Progress records: how far a long step is, as ordinary log lines.

Components report progress through Python logging only (never handlers or stdout), so
a Kubeflow pod's log keeps them as plain lines and ``tfx-transfer run`` (the console's
progress handler, pipeline/console.py) turns them into a status on the step's line.

The shape, which readers may rely on:

* logger ``LOGGER_NAME`` ("tfx_transfer.progress"), level INFO;
* message ``"progress <task>: <describe(...)>"``, e.g.
  ``progress ingest: 300/646 images, 52 img/s, ~7s left`` or
  ``progress head: epoch 12/100, 0.4 s/epoch, ~35s left, val_loss 0.41``;
* the fields as attributes of the LogRecord (``logging``'s ``extra``):
  ``progress_task`` (str), ``progress_done`` (int), ``progress_total`` (int, or None
  when unknown), ``progress_unit`` (``IMAGES`` or ``EPOCHS``), ``progress_seconds``
  (float: since the task started, so rate = done / seconds) and ``progress_detail``
  (str, e.g. the epoch's validation loss; may be empty).

``Progress`` counts and logs at most one record every ``interval`` seconds (and always
the one that reaches the total): cheap enough to call once per element in a Beam DoFn.
In a Beam job the counts are those of the worker process that logs them; ``shared``
gives the DoFns of one job running in one process (DirectRunner in_memory) one counter.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import NamedTuple

LOGGER_NAME = "tfx_transfer.progress"
IMAGES = "images"
EPOCHS = "epochs"
DEFAULT_INTERVAL = 2.0  # seconds between records of one task (Beam workers)

_SHORT = {IMAGES: "img", EPOCHS: "epoch"}
_logger = logging.getLogger(LOGGER_NAME)


class Fields(NamedTuple):
    """What one progress record says."""

    task: str
    done: int
    total: int | None
    unit: str
    seconds: float
    detail: str = ""


def fields_of(record: logging.LogRecord) -> Fields | None:
    """The progress fields of a log record; None when it is not a progress record."""
    if record.name != LOGGER_NAME or not hasattr(record, "progress_done"):
        return None
    try:
        total = record.progress_total
        return Fields(
            str(record.progress_task),
            int(record.progress_done),
            None if total is None else int(total),
            str(record.progress_unit),
            float(record.progress_seconds),
            str(getattr(record, "progress_detail", "") or ""),
        )
    except (AttributeError, TypeError, ValueError):
        return None


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"


def rate(fields: Fields) -> str:
    """'52 img/s', '1.5 s/img' or '0.4 s/epoch' ('' before anything is done)."""
    if fields.done <= 0 or fields.seconds <= 0:
        return ""
    short = _SHORT.get(fields.unit, fields.unit.rstrip("s") or fields.unit)
    per_second = fields.done / fields.seconds
    if fields.unit == EPOCHS or per_second < 1:
        per_item = fields.seconds / fields.done
        return f"{per_item:.2f} s/{short}" if per_item < 0.1 else f"{per_item:.1f} s/{short}"
    return f"{per_second:.0f} {short}/s" if per_second >= 10 else f"{per_second:.1f} {short}/s"


def eta(fields: Fields) -> str:
    """'~7s left' from the mean rate so far ('' when the total is unknown or reached)."""
    if fields.total is None or fields.done <= 0 or fields.done >= fields.total:
        return ""
    return f"~{_duration(fields.seconds / fields.done * (fields.total - fields.done))} left"


def describe(fields: Fields, with_eta: bool = True) -> str:
    """'300/646 images, 52 img/s, ~7s left' or 'epoch 12/100, 0.4 s/epoch, ~35s left,
    val_loss 0.41' (the detail last: a terminal's status line may cut it)."""
    of = f"/{fields.total}" if fields.total is not None else ""
    if fields.unit == EPOCHS:
        parts = [f"epoch {fields.done}{of}"]
    else:
        parts = [f"{fields.done}{of} {fields.unit}"]
    parts += [rate(fields), eta(fields) if with_eta else "", fields.detail]
    return ", ".join(part for part in parts if part)


def log(fields: Fields) -> None:
    """Logs one progress record with `fields` (the documented shape)."""
    extra = {f"progress_{name}": value for name, value in fields._asdict().items()}
    _logger.info("progress %s: %s", fields.task, describe(fields), extra=extra)


class Progress:
    """Counts what a task has done and logs it, at most every `interval` seconds.

    ``advance(n)`` adds to the count, ``update(done)`` sets it; either logs a record
    when `interval` seconds passed since the last one (or since the start), when the
    count first reaches the total, or with ``interval=0`` every time. ``flush()``
    logs the current count unless it was the last one logged. Thread-safe.
    """

    def __init__(
        self,
        task: str,
        unit: str,
        total: int | None = None,
        interval: float = DEFAULT_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.task = task
        self.unit = unit
        self.total = total
        self.done = 0
        self._interval = interval
        self._clock = clock
        self._start = clock()
        self._last = self._start
        self._logged = 0  # the count of the last record (none yet: 0)
        self._lock = threading.Lock()

    def advance(self, n: int = 1, detail: str = "") -> None:
        with self._lock:
            self.done += n
            fields = self._due(detail)
        if fields is not None:
            log(fields)

    def update(self, done: int, detail: str = "") -> None:
        with self._lock:
            self.done = done
            fields = self._due(detail)
        if fields is not None:
            log(fields)

    def flush(self, detail: str = "") -> None:
        with self._lock:
            fields = self._due(detail, force=self.done != self._logged)
        if fields is not None:
            log(fields)

    def _due(self, detail: str, force: bool = False) -> Fields | None:
        """The record to log now (None: not yet); call with the lock held."""
        now = self._clock()
        reached = self.total is not None and self.done >= self.total > self._logged
        if not (force or reached or now - self._last >= self._interval):
            return None
        self._last, self._logged = now, self.done
        return Fields(self.task, self.done, self.total, self.unit, now - self._start, detail)


_shared: dict[str, Progress] = {}
_shared_lock = threading.Lock()


def shared(key: str, task: str, unit: str, total: int | None = None) -> Progress:
    """The one Progress of `key` in this process (made on first use): the DoFns of one
    Beam job share it when they run in the same process. A total given later fills in
    an unknown one."""
    with _shared_lock:
        found = _shared.get(key)
        if found is None:
            found = _shared[key] = Progress(task, unit, total)
        elif found.total is None and total is not None:
            found.total = total
        return found
