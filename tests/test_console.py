"""Progress of the long steps: the records components log (components.common.progress)
and what `tfx-transfer run`'s console (pipeline/console.py) makes of them.

The console is fed synthetic records on a fake clock; the components' records come
from small real runs (the ingest and cache Beam jobs on DirectRunner, a Keras fit).
"""

import io
import logging

import numpy as np
import pytest

from components.common import progress
from components.common.testing import make_image, valid_files, write_examples
from pipeline import console as console_lib


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _record(message: str, name: str = "tfx.orchestration", **extra) -> logging.LogRecord:
    record = logging.LogRecord(name, logging.INFO, __file__, 1, message, (), None)
    record.__dict__.update(extra)
    return record


def _progress_record(task, done, total, unit, seconds, detail="") -> logging.LogRecord:
    fields = progress.Fields(task, done, total, unit, seconds, detail)
    extra = {f"progress_{name}": value for name, value in fields._asdict().items()}
    return _record(f"progress {task}: {progress.describe(fields)}", progress.LOGGER_NAME, **extra)


def _handler(tty: bool = False):
    out, clock = io.StringIO(), Clock()
    handler = console_lib._ProgressHandler(console_lib.Console(out, tty=tty), clock=clock)
    return handler, out, clock


def _run_step(handler, clock, node, records, seconds):
    """Step `node` starts, `records` [(at second, record)] arrive, it finishes."""
    start = clock.now
    handler.emit(_record(f"Component {node} is running."))
    for at, record in records:
        clock.now = start + at
        handler.emit(record)
    clock.now = start + seconds
    handler.emit(_record(f"Component {node} is finished."))


# --- the records -------------------------------------------------------------------------
def test_describe_says_done_total_rate_and_time_left():
    images = progress.Fields("ingest", 300, 600, progress.IMAGES, 6.0)
    assert progress.describe(images) == "300/600 images, 50 img/s, ~6s left"
    assert progress.describe(images, False) == "300/600 images, 50 img/s"
    slow = progress.Fields("bottlenecks", 3, None, progress.IMAGES, 6.0)
    assert progress.describe(slow) == "3 images, 2.0 s/img"  # total unknown: no estimate
    epochs = progress.Fields("head", 12, 100, progress.EPOCHS, 4.8, "val_loss 0.41")
    assert progress.describe(epochs) == "epoch 12/100, 0.4 s/epoch, ~35s left, val_loss 0.41"
    long = progress.Fields("ingest", 10, 1000, progress.IMAGES, 40.0)
    assert progress.eta(long) == "~1h 06m left"


def test_progress_logs_at_most_every_interval_and_always_the_total(caplog):
    caplog.set_level(logging.INFO, logger=progress.LOGGER_NAME)
    clock = Clock()
    counter = progress.Progress("ingest", progress.IMAGES, total=1000, interval=2.0, clock=clock)
    for i in range(1, 1000):  # 999 elements in 5 s: records at 2 s and 4 s only
        clock.now = 100 + i / 200
        counter.advance()
    clock.now = 105.0
    counter.advance()  # the total: logged at once
    counter.flush()  # already logged: nothing
    fields = [progress.fields_of(r) for r in caplog.records]
    assert [f.done for f in fields] == [400, 800, 1000]
    assert all(r.name == progress.LOGGER_NAME and r.levelno == logging.INFO for r in caplog.records)
    assert fields[-1] == progress.Fields("ingest", 1000, 1000, progress.IMAGES, 5.0, "")
    assert caplog.records[-1].getMessage() == "progress ingest: 1000/1000 images, 200 img/s"


def test_shared_progress_is_one_counter_per_key_and_learns_its_total():
    first = progress.shared("test-shared-key", "bottlenecks", progress.IMAGES)
    again = progress.shared("test-shared-key", "bottlenecks", progress.IMAGES, total=8)
    assert first is again and first.total == 8
    assert progress.shared("test-other-key", "bottlenecks", progress.IMAGES) is not first


def test_other_records_are_not_progress():
    assert progress.fields_of(_record("progress ingest: 1/2 images")) is None
    assert progress.fields_of(_record("x", progress.LOGGER_NAME)) is None


# --- the console ---------------------------------------------------------------------------
def test_non_tty_shows_quarters_of_a_long_step_and_the_end_on_its_line():
    handler, out, clock = _handler()
    records = [  # a 40 s ingest of 400 images; records every 2 s
        (t, _progress_record("ingest", 10 * t, 400, progress.IMAGES, t)) for t in range(2, 42, 2)
    ]
    _run_step(handler, clock, "ImageExampleGen", records, 41.0)
    assert out.getvalue().splitlines() == [
        "  ImageExampleGen ...",
        "    ingest 100/400 images, 10 img/s, ~30s left",
        "    ingest 200/400 images, 10 img/s, ~20s left",
        "    ingest 300/400 images, 10 img/s, ~10s left",
        "  ImageExampleGen ... ran (41.0s; ingest 400/400 images, 10 img/s)",
    ]


def test_non_tty_short_step_keeps_one_line():
    handler, out, clock = _handler()
    records = [(t, _progress_record("ingest", 100 * t, 250, progress.IMAGES, t)) for t in (1, 2)]
    records.append((2.5, _progress_record("ingest", 250, 250, progress.IMAGES, 2.5)))
    _run_step(handler, clock, "ImageExampleGen", records, 3.0)
    assert out.getvalue().splitlines() == [
        "  ImageExampleGen ... ran (3.0s; ingest 250/250 images, 100 img/s)"
    ]


def test_non_tty_epochs_of_two_phases_and_early_stopping():
    handler, out, clock = _handler()
    head = [
        (
            t,
            _progress_record("head", t, 100, progress.EPOCHS, t - 1.0, f"val_loss {1 / t:.2f}"),
        )
        for t in range(2, 42)
    ]
    head[-1] = (41, _progress_record("head", 41, 100, progress.EPOCHS, 40.0, "stopped early"))
    tune = [(50, _progress_record("fine-tune", 10, 10, progress.EPOCHS, 8.0, "val_loss 0.21"))]
    _run_step(handler, clock, "Trainer", head + tune, 52.0)
    assert out.getvalue().splitlines() == [
        "  Trainer ...",
        "    head epoch 25/100, 1.0 s/epoch, ~1m 12s left, val_loss 0.04",
        "  Trainer ... ran (52.0s; head epoch 41/100, 1.0 s/epoch, stopped early; "
        "fine-tune epoch 10/10, 0.8 s/epoch, val_loss 0.21)",
    ]


@pytest.mark.parametrize("total", [None, 1000])
def test_non_tty_never_prints_more_than_the_cap(total):
    handler, out, clock = _handler()
    records = [  # an hour, a record every 2 s
        (t, _progress_record("bottlenecks", t, total, progress.IMAGES, t))
        for t in range(2, 3600, 2)
    ]
    _run_step(handler, clock, "BottleneckCache", records, 3600.0)
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 + console_lib.MAX_STEP_LINES
    assert lines[-1].startswith("  BottleneckCache ... ran (3600.0s; bottlenecks 3598")


def test_cached_step_and_records_outside_a_step():
    handler, out, clock = _handler()
    handler.emit(_progress_record("ingest", 1, 2, progress.IMAGES, 1.0))  # no step: ignored
    handler.emit(_record("Component ImageExampleGen is running."))
    handler.emit(_record("A cached execution 7 is used."))
    handler.emit(_record("Component ImageExampleGen is finished."))
    assert out.getvalue() == ""  # held: the next quiet step may join it
    handler.console.close_line()
    assert out.getvalue() == "  ImageExampleGen ... from cache (0.0s)\n"


def _quiet_step(handler, clock, node, cached=True, seconds=0.02):
    handler.emit(_record(f"Component {node} is running."))
    if cached:
        handler.emit(_record("A cached execution 3 is used."))
    clock.now += seconds
    handler.emit(_record(f"Component {node} is finished."))


def test_a_fully_cached_rerun_is_one_line_before_the_summary():
    handler, out, clock = _handler()
    for node in ("BaseModelGen", "ImageExampleGen", "Transform", "Trainer"):
        _quiet_step(handler, clock, node)
    _quiet_step(handler, clock, "latest_blessed_model_resolver", cached=False)
    _quiet_step(handler, clock, "Pusher")
    handler.console.print("pipeline finished")  # the summary flushes the held line first
    assert out.getvalue().splitlines() == [
        "  6 steps, BaseModelGen to Pusher: 5 from cache, 1 ran (0.1s)",
        "pipeline finished",
    ]


def test_quiet_steps_then_a_step_that_runs_then_quiet_steps_again():
    handler, out, clock = _handler()
    _quiet_step(handler, clock, "BaseModelGen")
    _quiet_step(handler, clock, "ImageExampleGen")
    handler.emit(_record("Component Trainer is running."))
    handler.emit(_record("Going to run a new execution 9"))  # the executor starts
    assert out.getvalue().splitlines() == [
        "  2 steps, BaseModelGen to ImageExampleGen: 2 from cache (0.0s)",
        "  Trainer ...",
    ]  # the step's line is there while it runs, with no progress records
    clock.now += 7
    handler.emit(_record("Component Trainer is finished."))
    _quiet_step(handler, clock, "Pusher")
    handler.console.close_line()
    assert out.getvalue().splitlines()[1:] == [
        "  Trainer ... ran (7.0s)",
        "  Pusher ... from cache (0.0s)",
    ]


def test_a_warning_in_a_quiet_step_shows_the_step_first():
    handler, out, clock = _handler()
    _quiet_step(handler, clock, "BaseModelGen")
    handler.emit(_record("Component AnomalyGate is running."))
    warning = _record("2 anomalies", "components.anomaly_gate.gate")
    warning.levelno, warning.levelname = logging.WARNING, "WARNING"
    warning.pathname = console_lib._PROJECT_DIRS[0] + "anomaly_gate/gate.py"
    handler.emit(warning)
    handler.emit(_record("Component AnomalyGate is finished."))
    assert out.getvalue().splitlines() == [
        "  BaseModelGen ... from cache (0.0s)",
        "  AnomalyGate ...",
        "  warning: 2 anomalies",
        "  AnomalyGate ... ran (0.0s)",
    ]


def test_tty_rewrites_the_step_line_in_place(monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    handler, out, clock = _handler(tty=True)
    records = [(t, _progress_record("ingest", 10 * t, 400, progress.IMAGES, t)) for t in (2, 4)]
    records.append((4.1, _progress_record("ingest", 41, 400, progress.IMAGES, 4.1)))  # too soon
    _run_step(handler, clock, "ImageExampleGen", records, 6.0)
    assert out.getvalue() == (
        "  ImageExampleGen ..."
        "\r  ImageExampleGen ... ingest 20/400 images, 10 img/s, ~38s left\x1b[K"
        "\r  ImageExampleGen ... ingest 40/400 images, 10 img/s, ~36s left\x1b[K"
        "\r  ImageExampleGen ... ran (6.0s; ingest 41/400 images, 10 img/s)\x1b[K\n"
    )


def test_tty_status_is_cut_to_the_terminal_width(monkeypatch):
    monkeypatch.setenv("COLUMNS", "30")
    handler, out, _ = _handler(tty=True)
    handler.emit(_record("Component ImageExampleGen is running."))
    handler.emit(_progress_record("ingest", 20, 400, progress.IMAGES, 2.0))
    assert out.getvalue().split("\r")[-1] == "  ImageExampleGen ... ingest \x1b[K"  # 29 columns
    monkeypatch.setenv("COLUMNS", "0")  # unknown (a pseudo-terminal of size 0): 80 columns
    handler.console.status(" " + "x" * 100)
    assert len(out.getvalue().split("\r")[-1]) == 79 + len("\x1b[K")


def test_a_warning_ends_the_status_line_and_the_step_line_comes_back(monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    handler, out, clock = _handler(tty=True)
    handler.emit(_record("Component Trainer is running."))
    handler.emit(_progress_record("head", 1, 10, progress.EPOCHS, 1.0))
    warning = _record("few labels", "components.trainer.train")
    warning.levelno, warning.levelname = logging.WARNING, "WARNING"
    warning.pathname = console_lib._PROJECT_DIRS[0] + "trainer/train.py"
    handler.emit(warning)
    clock.now += 1
    handler.emit(_progress_record("head", 2, 10, progress.EPOCHS, 2.0))
    handler.console.close_line()
    assert out.getvalue().split("\n") == [
        "  Trainer ...\r  Trainer ... head epoch 1/10, 1.0 s/epoch, ~9s left\x1b[K",
        "  warning: few labels",
        "  Trainer ... head epoch 2/10, 1.0 s/epoch, ~8s left",
        "",
    ]


# --- the components' records -------------------------------------------------------------
def _progress_of(caplog, task: str) -> list[progress.Fields]:
    found = [progress.fields_of(r) for r in caplog.records]
    return [f for f in found if f is not None and f.task == task]


def test_ingest_logs_files_read_of_those_listed(tmp_path, caplog, run_image_example_gen):
    from components.image_example_gen import ingest

    for relpath, data in valid_files().items():
        (tmp_path / "in" / relpath).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "in" / relpath).write_bytes(data)
    caplog.set_level(logging.INFO, logger=progress.LOGGER_NAME)
    run_image_example_gen(tmp_path, tmp_path / "in")
    records = _progress_of(caplog, ingest.PROGRESS_TASK)
    assert records, "no progress record from the ingest job"
    last = records[-1]
    assert last.done == last.total == len(valid_files())
    assert last.unit == progress.IMAGES and last.seconds >= 0


def test_cache_job_logs_records_done_of_records_read(
    tmp_path, caplog, transform_dir, tiny_base, split_images, run_job
):
    from components.bottleneck_cache import cache

    images = [make_image(i) for i in range(5)]
    examples = write_examples(tmp_path / "examples", split_images(images))
    caplog.set_level(logging.INFO, logger=progress.LOGGER_NAME)
    for out in ("out", "again"):  # computed, then reused from the cache
        caplog.clear()
        run_job(examples, tiny_base, transform_dir, tmp_path / "cache", tmp_path / out)
        records = _progress_of(caplog, cache.PROGRESS_TASK)
        assert records and records[-1].done == records[-1].total == len(images), out


def test_trainer_logs_one_record_per_epoch(caplog):
    import keras

    from components.trainer import train

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    x, y = np.random.default_rng(0).normal(size=(16, 3)), np.arange(16) % 2
    caplog.set_level(logging.INFO, logger=progress.LOGGER_NAME)
    callback = train.EpochProgress("head", 3)
    model.fit(x, y, validation_data=(x, y), epochs=3, callbacks=[callback], verbose=0)
    records = _progress_of(caplog, "head")
    assert [(f.done, f.total, f.unit) for f in records] == [
        (e, 3, progress.EPOCHS) for e in (1, 2, 3)
    ]
    assert records[-1].detail.startswith("val_loss ")
