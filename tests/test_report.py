"""The run report (pipeline/report.py): one self-contained HTML file per run.

Fast tests build the page from a synthetic Report or from artifact files written by
hand, so a broken section fails without a pipeline run. The end-to-end tests run
`tfx-transfer run` once on a small copy of the demo data (it writes the report and
prints its path), then a real browser, Debian's headless Chromium, renders the page:
its DOM must hold every section and the embedded pictures, and its screenshot is kept
in tests/artifacts/ for a person to look at. Chromium comes from
scripts/setup_browser.sh; the browser tests skip, saying so, only where it is missing
and cannot be installed.
"""

import html.parser
import io
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from ml_metadata.proto import metadata_store_pb2
from PIL import Image

from pipeline import cli, report
from pipeline.run_summary import RunSummary

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARTIFACTS = os.path.join(REPO, "tests", "artifacts")  # ignored by git
CHROMIUM = "/usr/bin/chromium"
# A reference to anything outside the file: a URL in src/href/url(), or @import.
EXTERNAL = re.compile(
    r"""(?:\b(?:src|href|srcset|action|poster|data)\s*=\s*["']?\s*(?!data:|#)[a-z][a-z0-9+.-]*:"""
    r"""|\b(?:src|href)\s*=\s*["']?\s*//|url\(\s*["']?\s*(?!data:|#)[^)\s]|@import)""",
    re.IGNORECASE,
)


def _png(colour=(200, 40, 40), size=(60, 40)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


class _Page(html.parser.HTMLParser):
    """What the tests look for in a page: element ids, images, text per section."""

    def __init__(self, text: str):
        super().__init__()
        self.ids: list[str] = []
        self.images: list[tuple[str, str]] = []  # (section id, src)
        self.text: dict[str, list[str]] = {}
        self.nodes: dict[str, str] = {}  # DAG node -> state
        self.chosen_rows = 0
        self._section = ""
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.append(attrs["id"])
            if tag in ("section", "header"):
                self._section = attrs["id"]
        if tag == "img":
            self.images.append((self._section, attrs.get("src", "")))
        if tag == "g" and "data-node" in attrs:
            self.nodes[attrs["data-node"]] = attrs.get("data-state", "")
        if tag == "tr" and attrs.get("class") == "chosen":
            self.chosen_rows += 1

    def handle_data(self, data):
        self.text.setdefault(self._section, []).append(data)

    def section(self, section_id: str) -> str:
        return " ".join(" ".join(self.text.get(section_id, [])).split())

    def data_images(self, section_id: str) -> int:
        return sum(
            1 for s, src in self.images if s == section_id and src.startswith("data:image/png;")
        )


# --- fast: the page from plain data ---------------------------------------------------------
def _full_report(**overrides) -> report.Report:
    values = dict(
        pipeline_name="digits",
        run_id="2026-11-29T10:00:00.000001",
        state="COMPLETE",
        started=1_800_000_000.0,
        finished=1_800_000_060.0,
        steps=(
            report.Step("ImageExampleGen", "CACHED", 0.0, 0.0),
            report.Step("ImportSchemaGen", "CACHED", 0.0, 0.0),
            report.Step("BottleneckCache", "COMPLETE", 1.0, 20.0),
            report.Step("Trainer", "COMPLETE", 21.0, 30.0),
            report.Step("latest_blessed_model_resolver", "COMPLETE", 51.0, 0.1),
            report.Step("Evaluator", "FAILED", 52.0, 8.0),
        ),
        edges=(
            report.Edge("ImageExampleGen", "BottleneckCache", ("examples",)),
            report.Edge("BottleneckCache", "Trainer", ("examples",)),
            report.Edge("ImportSchemaGen", "Trainer", ("schema",)),
            report.Edge("ImageExampleGen", "Evaluator", ("examples",)),
            report.Edge("Trainer", "Evaluator", ("model",)),
            report.Edge("latest_blessed_model_resolver", "Evaluator", (), flowed=False),
        ),
        ingest=(
            report.Ingest(
                "ImageExampleGen",
                "CACHED",
                {"files_seen": 12, "ingested": 10, "quarantined": 1, "duplicates": 1},
                report.Rows(({"path": "5/broken.png", "reason": "not an image <b>"},), 1),
                report.Rows(({"path": "6/copy.png", "kept": "6/a.png"},), 1),
                {"5": {"train": 3, "eval": 2}, "6": {"train": 3, "eval": 2}},
            ),
        ),
        cache_state="COMPLETE",
        cache_counts={"vectors_computed": 7, "vectors_reused": 3, "records_failed": 1},
        cache_failed=report.Rows(({"image_id": "ab12", "split": "train", "error": "bad"},), 1),
        cut=report.CutSelection(
            "block3_pool",
            "best probe accuracy",
            (
                {"cut_layer": "block2_pool", "accuracy": 0.9},
                {"cut_layer": "block3_pool", "accuracy": 0.95},
            ),
        ),
        cut_used="block3_pool, pooling flatten",
        training=(
            report.Training("Trainer", "COMPLETE", _png(), {"eval_accuracy": 0.95}),
            report.Training("SourceTrainer", "CACHED", _png((40, 200, 40)), {}),
        ),
        confusion_png=_png((40, 40, 200)),
        confusion_matrix=((3, 1), (0, 4)),
        class_names=("5", "6"),
        evaluation=report.Evaluation(
            "not blessed: sparse_categorical_accuracy 0.4000 is below the required minimum 0.5000",
            (("sparse_categorical_accuracy", 0.4, 0.6, -0.2),),
            ("SparseCategoricalAccuracy: at least 0.5000",),
            "/runs/Trainer/model/9/Format-Serving",
            "/runs/Trainer/model/4/Format-Serving",
        ),
        serving="NOT servable: no answer",
        push="nothing (the model was not blessed)",
        layerwise=(report.Picture("loss", _png()), report.Picture("grid", _png((9, 9, 9)))),
        layerwise_layers=({"layer": "block1", "input": "16x16x3", "code": "8x8x8"},),
        log_path="/runs/logs/digits.log",
        artifacts_dir="/runs/digits",
    )
    values.update(overrides)
    return report.Report(**values)


def test_every_section_is_there_once_with_its_pictures_embedded():
    text = report.render(_full_report())
    page = _Page(text)
    for section_id in report.SECTIONS:
        assert page.ids.count(section_id) == 1, section_id
    assert page.data_images("training") == 2
    assert page.data_images("confusion") == 1
    assert page.data_images("layerwise") == 2
    assert all(src.startswith("data:image/png;base64,") for _, src in page.images)
    assert page.nodes == {
        "ImageExampleGen": "CACHED",
        "ImportSchemaGen": "CACHED",
        "BottleneckCache": "COMPLETE",
        "Trainer": "COMPLETE",
        "latest_blessed_model_resolver": "COMPLETE",
        "Evaluator": "FAILED",
    }
    assert "from cache" in page.section("dag") and "failed" in page.section("dag")
    assert "5/broken.png" in page.section("ingest") and "not an image <b>" in page.section("ingest")
    assert "Quarantined files: 1" in page.section("ingest")
    assert "vectors computed" in page.section("cache") and "ab12" in page.section("cache")
    assert "Chosen: block3_pool" in page.section("cut") and page.chosen_rows == 1
    assert "not blessed" in page.section("evaluation")
    assert "/runs/Trainer/model/4/Format-Serving" in page.section("evaluation")
    assert "NOT servable: no answer" in page.section("serving")
    assert "nothing (the model was not blessed)" in page.section("push")
    assert "block1" in page.section("layerwise")


def test_the_page_loads_nothing_from_outside_the_file():
    text = report.render(_full_report())
    assert not EXTERNAL.search(text), EXTERNAL.search(text)
    assert "<script" not in text and "http://" not in text and "https://" not in text
    assert "default-src 'none'" in text  # the browser refuses any other load
    # The pattern catches what it must:
    for bad in (
        '<img src="https://x/y.png">',
        "<link href='http://x/s.css'>",
        "<img src=//cdn/x.png>",
        "a{background:url(http://x/y.png)}",
        "@import 'x.css'",
    ):
        assert EXTERNAL.search(bad), bad


def test_user_text_is_escaped():
    rows = report.Rows(({"path": "<script>alert(1)</script>", "reason": "a & b"},), 1)
    part = report.Ingest("ImageExampleGen", "COMPLETE", {"files_seen": 1}, rows)
    text = report.render(_full_report(ingest=(part,), run_id="<r>"))
    assert "<script>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text and "a &amp; b" in text
    assert "&lt;r&gt;" in text


def test_absent_parts_say_so_and_keep_their_sections():
    empty = report.Report("p", "r1", "COMPLETE", 1.0, 2.0)
    page = _Page(report.render(empty))
    for section_id in report.SECTIONS:
        assert page.ids.count(section_id) == 1, section_id
    assert page.images == []
    assert "Not measured in this run" in page.section("cut")
    assert "cut_selection.json" in page.section("cut")
    for section_id, words in (
        ("dag", "no step"),
        ("ingest", "no ingest report"),
        ("cache", "no bottleneck cache"),
        ("training", "no Trainer"),
        ("confusion", "no confusion matrix"),
        ("evaluation", "no Evaluator"),
        ("serving", "no serving check"),
        ("push", "no Pusher"),
        ("layerwise", "not a layer-wise run"),
    ):
        assert words in page.section(section_id), section_id


def test_a_missing_picture_is_a_sentence_not_a_broken_image():
    part = report.Training("Trainer", "COMPLETE", None, {})
    page = _Page(report.render(_full_report(training=(part,))))
    assert page.data_images("training") == 0
    assert "Trainer training curves was not written" in page.section("training")


def test_dag_rows_follow_the_edges_and_a_source_sits_above_its_consumer():
    names = ["A", "S", "B", "C", "D"]
    edges = [("A", "B"), ("B", "C"), ("C", "D"), ("S", "D"), ("A", "D")]
    place = report.layout(names, edges)
    assert all(place[t][0] > place[s][0] for s, t in edges)
    assert place["S"][0] == place["D"][0] - 1  # not at the top, far from its consumer
    assert report.implied_edges(edges) == {("A", "D")}
    # A cycle (TFX never makes one) still places every node.
    assert set(report.layout(["x", "y"], [("x", "y"), ("y", "x")])) == {"x", "y"}


def test_cut_selection_file_in_both_shapes():
    by_rows = report.cut_selection_from(
        {"chosen": {"cut_layer": "b3", "pooling": "avg"}, "rows": [{"cut_layer": "b3"}]}
    )
    assert by_rows.chosen == "cut_layer b3, pooling avg" and by_rows.rows == ({"cut_layer": "b3"},)
    by_columns = report.cut_selection_from(
        {"chosen": "b2", "reason": "r", "columns": ["cut", "acc"], "rows": [["b2", 0.9]]}
    )
    assert by_columns.rows == ({"cut": "b2", "acc": 0.9},) and by_columns.reason == "r"
    # What the Trainer's cut_layer: auto writes (components/trainer/cut_selection.py).
    trainer = report.cut_selection_from(
        {
            "chosen": "block2_pool",
            "reason": "best mean fold accuracy",
            "folds": 5,
            "seconds": 3.5,
            "candidates": [
                {"layer": "block1_pool", "dim": 512, "mean": 0.8, "fold_accuracies": [0.8]},
                {"layer": "block2_pool", "dim": 256, "mean": 0.9, "fold_accuracies": [0.9]},
            ],
        },
        png=_png(),
    )
    assert [row["layer"] for row in trainer.rows] == ["block1_pool", "block2_pool"]
    assert trainer.facts == (("folds", 5), ("seconds", 3.5))
    page = _Page(report.render(_full_report(cut=trainer)))
    assert page.chosen_rows == 1 and page.data_images("cut") == 1
    assert "best mean fold accuracy" in page.section("cut") and "folds" in page.section("cut")


def _fine_tune_selection(chosen: int = 0):
    """A fine_tune auto table as the Trainer measures it (fine_tune_selection.py)."""
    from components.trainer import fine_tune_selection as selection

    off = selection.Trial(0, (True,) * 8 + (False,) * 2, 7.0)
    trials = (
        selection.Trial(1, (True,) * 9 + (False,), 50.0, ("block4_conv3",)),
        selection.Trial(2, skipped="budget: 100 s spent + 50 s for the previous k > 120 s"),
    )
    return selection.FineTuneSelection(
        off, trials, chosen, "gain within one SE", 10, 40, 120.0, 57.0, 7.0
    )


def test_fine_tune_selection_is_shown_like_the_cut():
    data = json.loads(json.dumps(_fine_tune_selection().to_dict()))  # as the file holds it
    measured = report.cut_selection_from(data, "Trainer: reports/fine_tune_selection.json", _png())
    assert measured.chosen == "off" and [row["setting"] for row in measured.rows] == [
        "off",
        "k=1",
        "k=2",
    ]
    got = _full_report(fine_tune=measured, fine_tune_used="auto: the base stayed frozen", cut=None)
    page = _Page(report.render(got))
    text = page.section("fine_tune")
    assert "Chosen: off" in text and "auto: the base stayed frozen" in text
    assert "gain within one SE" in text and "budget: 100 s spent" in text
    assert "validation_examples" in text and "standard error" in text  # facts: the rule
    assert page.chosen_rows == 1 and page.data_images("fine_tune") == 1
    empty = _Page(report.render(_full_report()))
    assert "Not measured in this run" in empty.section("fine_tune")
    assert "fine_tune_selection.json" in empty.section("fine_tune")


def test_fine_tune_line_of_the_run_summary():
    from pipeline.run_summary import fine_tune_line

    data = json.loads(json.dumps(_fine_tune_selection(chosen=1).to_dict()))
    line = fine_tune_line(data)
    assert line.startswith("  fine-tune: k=1 (fine_tune auto, gain over off on a fold of ")
    assert "k=1 +0.100 +- 0.100" in line and "k=2 skipped (budget:" in line
    assert line.endswith("s of a 120s budget)")
    assert "\n" not in line


def test_default_path_is_under_the_pipeline_root_with_a_safe_name():
    path = report.default_path("/runs", "digits", "2026-11-29T21:27:21.122220")
    assert path == "/runs/reports/digits-2026-11-29T21-27-21.122220.html"
    assert report.default_path("gs://b/r", "p", "x").startswith("gs://b/r/reports/")


# --- fast: collect() on artifact files written by hand -----------------------------------------
def _artifact(type_name, uri, **props):
    artifact = metadata_store_pb2.Artifact(type=type_name, uri=str(uri))
    for key, value in props.items():
        if isinstance(value, int):
            artifact.custom_properties[key].int_value = value
        else:
            artifact.custom_properties[key].string_value = value
    return artifact


def _write(path, content):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    mode = "wb" if isinstance(content, bytes) else "w"
    with open(path, mode) as f:
        f.write(content)


def test_collect_reads_what_the_components_wrote(tmp_path):
    from components.common import artifacts as shared
    from components.layerwise_pretrainer import spec as layerwise_spec
    from components.trainer import reports as trainer_reports

    ingest, vocab = tmp_path / "ingest", tmp_path / "vocab"
    _write(str(ingest / shared.COUNTS_FILE), json.dumps({"files_seen": 3, "ingested": 2}))
    quarantine = "".join(
        json.dumps({"path": f"c/{i}.png", "reason": "truncated"}) + "\n" for i in range(600)
    )
    _write(str(ingest / shared.QUARANTINE_FILE), quarantine)
    _write(str(vocab / shared.CLASS_COUNTS_FILE), json.dumps({"5": {"train": 1, "eval": 1}}))
    cache = tmp_path / "cache"
    _write(str(cache / "failed.jsonl"), json.dumps({"image_id": "f00d", "error": "x"}) + "\n")
    model = tmp_path / "model"
    _write(str(model / "reports" / trainer_reports.CURVES_FILE), _png())
    _write(str(model / "reports" / trainer_reports.CONFUSION_FILE), _png())
    metrics = {
        "eval_accuracy": 0.5,
        "class_names": ["5", "6"],
        "confusion_matrix": [[1, 0], [1, 0]],
    }
    _write(str(model / "reports" / trainer_reports.METRICS_FILE), json.dumps(metrics))
    base = tmp_path / "base"
    reports_dir = base / layerwise_spec.REPORTS_DIR
    _write(str(reports_dir / layerwise_spec.LOSS_PLOT_FILE), _png())
    _write(str(reports_dir / layerwise_spec.GRID_FILE), _png())
    layer = {"name": "block1", "input_shape": [8, 8, 3], "code_shape": [4, 4, 8]}
    history = {"layers": [{**layer, "loss": [0.5, 0.25], "val_loss": [0.6, 0.3]}]}
    _write(str(reports_dir / layerwise_spec.HISTORY_FILE), json.dumps(history))
    cut = {"chosen": "block2_pool", "rows": [{"cut_layer": "block2_pool", "accuracy": 0.8}]}
    _write(str(base / "reports" / report.CUT_SELECTION_FILE), json.dumps(cut))
    from components.trainer import fine_tune_selection

    fine_tune_selection.write_selection(_fine_tune_selection(), str(model / "reports"))
    _write(
        str(model / "reports" / trainer_reports.METRICS_FILE),
        json.dumps({**metrics, "fine_tune": {"setting": "auto", "unfrozen_layers": 0}}),
    )
    summary = RunSummary(
        run_id="r1",
        pipeline_name="p",
        states={
            "ImageExampleGen": "COMPLETE",
            "LayerwisePretrainer": "COMPLETE",
            "BottleneckCache": "CACHED",
            "Trainer": "COMPLETE",
            "ServingCheck": "COMPLETE",
            "Pusher": "COMPLETE",
        },
        outputs={
            "ImageExampleGen": [
                _artifact("IngestReport", ingest),
                _artifact("ClassVocabulary", vocab),
            ],
            "LayerwisePretrainer": [_artifact("Model", base)],
            "BottleneckCache": [
                _artifact(
                    "Examples",
                    cache,
                    vectors_computed=0,
                    vectors_reused=4,
                    resolved_cut_layer="block2_pool",
                    applied_pooling="flatten",
                )
            ],
            "Trainer": [_artifact("Model", model)],
            "ServingCheck": [_artifact("InfraBlessing", tmp_path, blessed=1, reason="ok")],
            "Pusher": [_artifact("PushedModel", tmp_path, pushed=1, pushed_destination="/s/9")],
        },
        started=100.0,
        finished=160.0,
        times={"ImageExampleGen": (100.0, 104.0), "Trainer": (110.0, 150.5)},
        flows=(("ImageExampleGen", "Trainer", "examples"),),
    )
    got = report.collect(summary)
    (part,) = got.ingest
    assert part.counts == {"files_seen": 3, "ingested": 2}
    assert part.quarantine.total == 600 and len(part.quarantine.rows) == report.TABLE_ROWS
    assert part.class_counts == {"5": {"train": 1, "eval": 1}}
    assert got.cache_state == "CACHED" and got.cache_counts["vectors_reused"] == 4
    assert got.cache_failed.rows == ({"image_id": "f00d", "error": "x"},)
    assert got.cut_used == "block2_pool, pooling flatten"
    assert got.cut.chosen == "block2_pool" and got.cut.source.startswith("LayerwisePretrainer")
    assert got.fine_tune.chosen == "off" and got.fine_tune.source.startswith("Trainer")
    assert got.fine_tune.png.startswith(b"\x89PNG")
    assert got.fine_tune_used == "auto: the base stayed frozen"
    assert summary.fine_tune_selection["rows"][1]["val_accuracy"] == 0.9
    assert got.training[0].curves_png.startswith(b"\x89PNG") and got.confusion_png
    assert got.confusion_matrix == ((1, 0), (1, 0)) and got.class_names == ("5", "6")
    assert len(got.layerwise) == 2 and got.layerwise_layers[0]["last held-out loss"] == 0.3
    assert got.serving == "servable: ok" and got.push == "/s/9"
    assert got.evaluation is None  # no Evaluator in this run
    trainer = next(s for s in got.steps if s.name == "Trainer")
    assert trainer.start == 10.0 and trainer.seconds == 40.5
    assert got.edges == (report.Edge("ImageExampleGen", "Trainer", ("examples",)),)
    page = _Page(report.render(got))
    assert "the first 500 of 600" in page.section("ingest")
    assert page.data_images("layerwise") == 2 and page.data_images("training") == 1


def test_an_unreadable_artifact_costs_its_section_not_the_report(monkeypatch, caplog):
    def broken(summary):
        raise ValueError("truncated record")

    monkeypatch.setattr(report, "_evaluation", broken)
    summary = RunSummary(run_id="r1", states={"Evaluator": "COMPLETE"}, outputs={})
    with caplog.at_level("WARNING"):
        got = report.collect(summary)
    assert "could not be read" in got.evaluation.verdict
    assert "the evaluation left out: ValueError: truncated record" in caplog.text
    assert set(report.SECTIONS) <= set(_Page(report.render(got)).ids)


def test_a_report_that_cannot_be_written_leaves_the_run_as_it_was(monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(report, "write_report", broken)
    with caplog.at_level("WARNING"):
        assert cli._write_report(object(), object(), None) is None
    assert "the run report was not written: OSError: disk full" in caplog.text


# --- end to end: a real run, its report, a real browser -----------------------------------------
def _chromium_or_skip() -> str:
    """/usr/bin/chromium, installed by scripts/setup_browser.sh if need be; else skip."""
    if not os.path.exists(CHROMIUM):
        setup = subprocess.run(
            ["bash", os.path.join(REPO, "scripts", "setup_browser.sh")],
            capture_output=True,
            text=True,
            timeout=900,
        )
        if not os.path.exists(CHROMIUM):
            pytest.skip(
                f"no headless browser: {CHROMIUM} is not installed and "
                f"scripts/setup_browser.sh could not install it: {setup.stdout.strip()}"
            )
    return CHROMIUM


def _browser(chromium: str, page: str, tmp_path, *mode: str) -> str:
    """Runs headless Chromium on file://page (no network, throw-away profile); stdout."""
    command = [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        *mode,
        "file://" + os.path.abspath(page),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def _screenshot(chromium: str, page: str, tmp_path, name: str) -> Image.Image:
    """A 1280x4000 screenshot, kept as tests/artifacts/<name> (the path is printed)."""
    shot = tmp_path / name
    _browser(chromium, page, tmp_path, f"--screenshot={shot}", "--window-size=1280,4000")
    os.makedirs(ARTIFACTS, exist_ok=True)
    kept = os.path.join(ARTIFACTS, name)
    shutil.copy(shot, kept)
    print(f"report screenshot: {kept}")
    return Image.open(kept).convert("RGB")


def _near(image: Image.Image, colour: tuple[int, int, int], tolerance: int = 30) -> int:
    """How many pixels are within `tolerance` of `colour` on every channel."""
    pixels = np.asarray(image, dtype=np.int16)
    return int((np.abs(pixels - np.array(colour, np.int16)) <= tolerance).all(axis=-1).sum())


@pytest.fixture(scope="module")
def run(tmp_path_factory, demo_with_schema):
    """`tfx-transfer run` (a fresh process, as a user starts it) on 10 images per class
    and a corrupt file, with a base and a floor of 0 so the model is blessed and pushed."""
    root = demo_with_schema(tmp_path_factory.mktemp("report"))
    data_root = root / "demo" / "target"
    (data_root / "5" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    config = root / "config.yaml"
    config.write_text(
        f"pipeline_name: report-e2e\npipeline_root: {root / 'runs'}\n"
        f"schema: {root / 'schema.pbtxt'}\n"
        f"data: {{root: {data_root}, train_ratio: 0.5, min_train_per_class: 2}}\n"
        "image: {height: 16, width: 16}\n"
        "base_model: {kind: builtin, name: small_cnn, cut_layer: block2_pool, pooling: flatten}\n"
        "training: {fine_tune: 'off', batch_size: 8, learning_rate: 0.01, epochs: 8, seed: 1}\n"
        "evaluation: {min_accuracy: 0.0}\n"
        f"serving: {{model_name: digits, root: {root / 'serving'}}}\n"
    )
    command = [sys.executable, "-m", "pipeline.cli", "run", "--config", str(config)]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1200)
    return root, str(config), done


@pytest.mark.e2e
def test_run_writes_the_report_and_prints_its_path(run):
    root, _, done = run
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    lines = done.stdout.splitlines()
    (line,) = [line for line in lines if line.startswith("  report: ")]
    path = line.removeprefix("  report: ")
    assert path.startswith(str(root / "runs" / "reports" / "report-e2e-")) and path.endswith(
        ".html"
    )
    assert os.path.isfile(path)
    assert lines[-1].startswith("  full log: ")  # the log's path stays last


@pytest.mark.e2e
def test_the_report_of_a_real_run_is_complete_and_self_contained(run):
    _, _, done = run
    path = done.stdout.split("  report: ", 1)[1].splitlines()[0]
    text = open(path, encoding="utf-8").read()
    assert not EXTERNAL.search(text), EXTERNAL.search(text)
    assert "http://" not in text and "https://" not in text and "<script" not in text
    page = _Page(text)
    assert set(report.SECTIONS) <= set(page.ids)
    assert page.nodes["Trainer"] == "COMPLETE" and page.nodes["Pusher"] == "COMPLETE"
    assert "broken.png" in page.section("ingest")
    assert "vectors computed" in page.section("cache")
    assert "Not measured in this run" in page.section("cut")
    assert "block2_pool" in page.section("cut")
    assert "blessed" in page.section("evaluation") and "servable" in page.section("serving")
    assert "Pushed to" in page.section("push")


@pytest.mark.e2e
def test_chromium_renders_every_section_and_the_pictures(run, tmp_path):
    chromium = _chromium_or_skip()
    _, _, done = run
    path = done.stdout.split("  report: ", 1)[1].splitlines()[0]
    dom = _Page(_browser(chromium, path, tmp_path, "--dump-dom"))
    for section_id in report.SECTIONS:
        assert dom.ids.count(section_id) == 1, section_id
    assert dom.data_images("training") == 1  # the Trainer's curves
    assert dom.data_images("confusion") == 1
    assert {"ImageExampleGen", "BottleneckCache", "Trainer", "Evaluator", "Pusher"} <= set(
        dom.nodes
    )
    assert "5/broken.png" in dom.section("ingest")
    image = _screenshot(chromium, path, tmp_path, "report.png")
    shutil.copy(path, os.path.join(ARTIFACTS, "report.html"))  # beside its screenshot
    assert image.size == (1280, 4000)
    # The pictures were drawn, not only referenced: matplotlib's orange (the eval curve)
    # and the confusion matrix's darkest blue appear nowhere in the page's own style.
    assert _near(image, (255, 127, 14)) > 50
    assert _near(image, (8, 48, 107)) > 50


@pytest.mark.e2e
def test_report_command_writes_a_past_run_and_refuses_an_unknown_one(run, tmp_path, capsys):
    _, config, _ = run
    out = tmp_path / "again.html"
    assert cli.main(["report", "--config", config, "--out", str(out)]) == 0
    assert f"written to {out}" in capsys.readouterr().out
    assert set(report.SECTIONS) <= set(_Page(out.read_text(encoding="utf-8")).ids)
    assert cli.main(["report", "--config", config, "--run", "no-such-run"]) == 2
    assert "no run 'no-such-run' of report-e2e" in capsys.readouterr().err


def test_chromium_shows_the_layerwise_pictures(tmp_path):
    """The layer-wise section in a real browser (a synthetic report: no second run)."""
    chromium = _chromium_or_skip()
    page = tmp_path / "layerwise.html"
    page.write_text(report.render(_full_report()), encoding="utf-8")
    dom = _Page(_browser(chromium, str(page), tmp_path, "--dump-dom"))
    assert dom.data_images("layerwise") == 2 and "block1" in dom.section("layerwise")
    image = _screenshot(chromium, str(page), tmp_path, "report_synthetic.png")
    assert _near(image, (200, 40, 40), 3) > 1000  # the synthetic PNGs were decoded and drawn
