"""The run report: one self-contained HTML file per pipeline run, readable offline.

``tfx-transfer report`` writes it for any recorded run, and ``tfx-transfer run`` at the
end of every run, to ``<pipeline_root>/reports/<pipeline>-<run id>.html`` (see
``default_path``). Everything is inside the file: pictures are PNG ``data:`` URIs, the
DAG is inline SVG, the style sheet is inline, there is no script, and a
Content-Security-Policy forbids any other load, so the page looks the same on a laptop
without network as on the machine that ran the pipeline.

Two steps, so each part can be tested alone:

* ``collect(summary, config)`` reads what the run recorded: states, times and artifact
  flows from ML Metadata (``pipeline.run_summary``), the declared DAG (``pipeline.dag``,
  for edges no artifact shows, e.g. AnomalyGate before Transform), and the files the
  components wrote into their artifacts (ImageExampleGen's IngestReport, the bottleneck
  cache's failed records, the Trainer's and the layer-wise pretrainer's reports, TFMA's
  metrics). It returns a plain ``Report``.
* ``render(report)`` turns a ``Report`` into the HTML text; it reads nothing.

Sections, each an element with a stable ``id`` (``SECTIONS``; every one is always
present, saying "not in this run" when there is nothing to show): ``run`` (header),
``dag`` (steps, state, seconds, edges), ``ingest`` (counts, per-class split, quarantine
table with reasons, duplicates), ``cache`` (vectors computed / reused, failed records),
``cut`` (the cut point and the measurements that chose it), ``fine_tune`` (the
fine-tuning depth and the measurements that chose it), ``training`` (curves and
the Trainer's numbers), ``confusion``, ``evaluation`` (verdict, candidate vs baseline),
``serving`` (ServingCheck's verdict), ``push`` and ``layerwise`` (reconstruction loss
and pictures of a layer-wise pretrained base).

The cut section's hook: a component that measures candidate cut points writes
``CUT_SELECTION_FILE`` (``cut_selection.json``) at the top of, or in ``reports/`` of,
one of its output artifacts, as::

    {"chosen": "block3_pool",                       # or {"cut_layer": ..., "pooling": ...}
     "reason": "best eval accuracy of a linear probe",          # optional
     "rows": [{"cut_layer": "block2_pool", "accuracy": 0.91}, ...]}  # any columns

(``candidates`` may stand for ``rows``, as components/trainer/cut_selection.py writes
it; other plain values, e.g. ``folds``, are listed; a ``cut_selection.png`` beside the
file is shown). ``collect`` finds it in any output of the run (``_cut_selection``) and
``render`` draws the table, the chosen row marked. Without it the section says "not
measured in this run" and names the cut the run used.

The fine_tune section reads ``FINE_TUNE_SELECTION_FILE`` (``fine_tune_selection.json``,
what components/trainer/fine_tune_selection.py writes for ``fine_tune: auto``) the same
way (same format, ``fine_tune_selection.png`` beside it), and names the setting the
Trainer used (its metrics.json).
"""

from __future__ import annotations

import base64
import dataclasses
import html
import json
import logging
import os
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

SECTIONS = (
    "run",
    "dag",
    "ingest",
    "cache",
    "cut",
    "fine_tune",
    "training",
    "confusion",
    "evaluation",
    "serving",
    "push",
    "layerwise",
)
CUT_SELECTION_FILE = "cut_selection.json"
CUT_SELECTION_PICTURE = "cut_selection.png"
FINE_TUNE_SELECTION_FILE = "fine_tune_selection.json"
FINE_TUNE_SELECTION_PICTURE = "fine_tune_selection.png"
TABLE_ROWS = 500  # rows of a quarantine / duplicates / failures table; the rest counted
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_STATE_WORDS = {"COMPLETE": "ran", "CACHED": "from cache", "FAILED": "failed"}


# --- what the page shows: plain data, built by collect(), drawn by render() -------------
@dataclasses.dataclass(frozen=True)
class Step:
    name: str
    state: str  # ML Metadata's: COMPLETE, CACHED, FAILED, RUNNING, ...
    start: float | None = None  # seconds after the run started
    seconds: float | None = None


@dataclasses.dataclass(frozen=True)
class Edge:
    source: str
    target: str
    keys: tuple[str, ...] = ()  # the target's input keys the source's artifacts fed
    flowed: bool = True  # False: declared in the DAG, no artifact recorded in this run


@dataclasses.dataclass(frozen=True)
class Rows:
    """A table: the first TABLE_ROWS rows of a JSON-lines file and how many it had."""

    rows: tuple[Mapping[str, Any], ...] = ()
    total: int = 0


@dataclasses.dataclass(frozen=True)
class Ingest:
    node: str
    state: str
    counts: Mapping[str, int]
    quarantine: Rows = Rows()
    duplicates: Rows = Rows()
    class_counts: Mapping[str, Mapping[str, int]] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Training:
    node: str
    state: str
    curves_png: bytes | None
    metrics: Mapping[str, Any]


@dataclasses.dataclass(frozen=True)
class Evaluation:
    verdict: str
    # (metric, candidate, baseline, candidate - baseline); None where not measured
    metrics: tuple[tuple[str, float | None, float | None, float | None], ...] = ()
    thresholds: tuple[str, ...] = ()
    candidate: str = ""
    baseline: str = ""  # the served model it was compared with; "" on a first run


_UNREADABLE = Evaluation("the Evaluator's output could not be read (see the run's log)")


@dataclasses.dataclass(frozen=True)
class CutSelection:
    """A measured choice (the cut point, or the fine-tuning depth) and its table."""

    chosen: str
    reason: str = ""
    rows: tuple[Mapping[str, Any], ...] = ()
    source: str = ""  # the file it was read from
    facts: tuple[tuple[str, Any], ...] = ()  # the file's other plain values (folds, ...)
    png: bytes | None = None  # CUT_SELECTION_PICTURE beside the file, if any


@dataclasses.dataclass(frozen=True)
class Picture:
    title: str
    png: bytes


@dataclasses.dataclass(frozen=True)
class Report:
    pipeline_name: str
    run_id: str
    state: str
    started: float  # seconds since the epoch
    finished: float
    steps: tuple[Step, ...] = ()
    edges: tuple[Edge, ...] = ()
    ingest: tuple[Ingest, ...] = ()
    cache_state: str | None = None  # None: no BottleneckCache in this run
    cache_counts: Mapping[str, int] = dataclasses.field(default_factory=dict)
    cache_failed: Rows = Rows()
    cut: CutSelection | None = None
    cut_used: str = ""  # the cut the run's cache and Trainer used
    fine_tune: CutSelection | None = None  # fine_tune auto's measured table
    fine_tune_used: str = ""  # the Trainer's fine-tuning setting and what it did
    training: tuple[Training, ...] = ()
    confusion_png: bytes | None = None
    confusion_matrix: tuple[tuple[int, ...], ...] = ()
    class_names: tuple[str, ...] = ()
    evaluation: Evaluation | None = None
    serving: str | None = None
    push: str | None = None
    layerwise: tuple[Picture, ...] = ()
    layerwise_layers: tuple[Mapping[str, Any], ...] = ()
    log_path: str = ""
    artifacts_dir: str = ""


# --- writing ------------------------------------------------------------------------------
def default_path(pipeline_root: str, pipeline_name: str, run_id: str) -> str:
    """<pipeline_root>/reports/<pipeline>-<run id>.html (the id's ':' and such as '-')."""
    from components.common.artifact_io import join

    safe_id = re.sub(r"[^A-Za-z0-9._-]+", "-", run_id).strip("-") or "run"
    return join(join(pipeline_root, "reports"), f"{pipeline_name}-{safe_id}.html")


def write_report(config, summary, out: str = "", log_path: str = "") -> str:
    """Collects, renders and writes the report of `summary`'s run; returns its path."""
    import tensorflow as tf

    from components.common.artifact_io import write_text_atomically

    path = out or default_path(config.pipeline_root, config.pipeline_name, summary.run_id)
    text = render(collect(summary, config, log_path))
    directory = os.path.dirname(path)
    if directory:
        tf.io.gfile.makedirs(directory)
    write_text_atomically(path, text)
    return path


# --- collecting ---------------------------------------------------------------------------
def collect(summary, config=None, log_path: str = "") -> Report:
    """Everything the page shows, read from ML Metadata and the run's artifacts.

    `config` (optional) adds the DAG's declared edges and the artifacts folder.
    """
    from components.bottleneck_cache import spec as cache_spec
    from components.trainer import reports as trainer_reports

    trainer_metrics = _guarded("the Trainer's metrics", {}, _trainer_metrics, summary, "Trainer")
    class_names = tuple(str(c) for c in trainer_metrics.get("class_names", ()))
    matrix = tuple(
        tuple(int(v) for v in row) for row in trainer_metrics.get("confusion_matrix", ())
    )
    cache_uri = _uri_with_property(summary, "BottleneckCache", cache_spec.PROP_COMPUTED)
    confusion_path = _join(_reports_dir(summary, "Trainer"), trainer_reports.CONFUSION_FILE)
    layerwise_pictures, layerwise_layers = _guarded(
        "layer-wise reports", ((), ()), _layerwise, summary
    )
    return Report(
        pipeline_name=summary.pipeline_name or getattr(config, "pipeline_name", ""),
        run_id=summary.run_id,
        state=summary.state,
        started=summary.started,
        finished=summary.finished,
        steps=_steps(summary),
        edges=_edges(summary, _declared_edges(config, summary)),
        ingest=_guarded("the ingest reports", (), _ingest, summary),
        cache_state=summary.states.get("BottleneckCache"),
        cache_counts=summary.cache_counts,
        cache_failed=_guarded(
            "failed records", Rows(), _jsonl, _join(cache_uri, cache_spec.FAILED_FILE)
        ),
        cut=_guarded("the cut selection", None, _cut_selection, summary),
        cut_used=_cut_used(summary, trainer_metrics),
        fine_tune=_guarded(
            "the fine-tuning selection",
            None,
            _cut_selection,
            summary,
            FINE_TUNE_SELECTION_FILE,
            FINE_TUNE_SELECTION_PICTURE,
        ),
        fine_tune_used=_fine_tune_used(trainer_metrics),
        training=_guarded("training reports", (), _training, summary),
        confusion_png=_guarded("the confusion matrix", None, _read_png, confusion_path),
        confusion_matrix=matrix,
        class_names=class_names,
        evaluation=_guarded("the evaluation", _UNREADABLE, _evaluation, summary),
        serving=summary.serving_verdict(),
        push=summary.push_verdict(),
        layerwise=layerwise_pictures,
        layerwise_layers=layerwise_layers,
        log_path=log_path,
        artifacts_dir=getattr(config, "pipeline_dir", ""),
    )


def _guarded(what: str, default: Any, read, *args) -> Any:
    """read(*args); on any error a warning and `default`: one unreadable artifact costs
    its section, not the report."""
    try:
        return read(*args)
    except Exception as error:  # noqa: BLE001 - the rest of the page still stands
        logging.warning("run report: %s left out: %s: %s", what, type(error).__name__, error)
        return default


def _join(directory: str | None, *names: str) -> str | None:
    from components.common.artifact_io import join

    if not directory:
        return None
    for name in names:
        directory = join(directory, name)
    return directory


def _read(path: str | None) -> bytes | None:
    """The file's bytes (local or tf.io.gfile URL); None when there is no such file."""
    if not path:
        return None
    import tensorflow as tf

    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path, "rb") as f:
        return f.read()


def _read_png(path: str | None) -> bytes | None:
    data = _read(path)
    return data if data and data.startswith(_PNG_MAGIC) else None


def _read_json(path: str | None) -> Any:
    data = _read(path)
    if data is None:
        return None
    try:
        return json.loads(data.decode("utf-8"))
    except ValueError:
        logging.warning("run report: %s is not valid JSON; left out", path)
        return None


def _jsonl(path: str | None) -> Rows:
    """The first TABLE_ROWS JSON objects of a JSON-lines file, and how many it holds."""
    data = _read(path)
    if not data:
        return Rows()
    lines = [line for line in data.decode("utf-8", errors="replace").splitlines() if line.strip()]
    rows = []
    for line in lines[:TABLE_ROWS]:
        try:
            row = json.loads(line)
        except ValueError:
            row = {"line": line}
        rows.append(row if isinstance(row, dict) else {"value": row})
    return Rows(tuple(rows), len(lines))


def _steps(summary) -> tuple[Step, ...]:
    def start(node: str) -> float:
        return summary.times.get(node, (summary.finished, 0.0))[0]

    steps = []
    for node in sorted(summary.states, key=lambda n: (start(n), n)):
        begun = summary.times.get(node, (None,))[0]
        steps.append(
            Step(
                node,
                summary.states[node],
                None if begun is None else max(0.0, begun - summary.started),
                summary.seconds(node),
            )
        )
    return tuple(steps)


def _declared_edges(config, summary) -> set[tuple[str, str]]:
    """(producer, consumer) of every input channel and explicit upstream node of the
    config's DAG (pipeline.dag); empty without a config of this pipeline or when the
    DAG cannot be built from it."""
    if config is None or getattr(config, "pipeline_name", None) != summary.pipeline_name:
        return set()
    from absl import logging as absl_logging

    verbosity = absl_logging.get_verbosity()
    absl_logging.set_verbosity(absl_logging.ERROR)  # TFX's deprecation notes, not news here
    try:
        from pipeline.dag import create_components

        components = create_components(config)
    except Exception as error:  # noqa: BLE001 - the page still has the recorded flows
        logging.info("run report: the declared DAG is left out: %s", error)
        return set()
    finally:
        absl_logging.set_verbosity(verbosity)
    edges = set()
    for component in components:
        for channel in component.inputs.values():
            producer = getattr(channel, "producer_component_id", None)
            if producer:
                edges.add((producer, component.id))
        edges.update((upstream.id, component.id) for upstream in component.upstream_nodes)
    return edges


def _edges(summary, declared: Iterable[tuple[str, str]]) -> tuple[Edge, ...]:
    keys: dict[tuple[str, str], list[str]] = {}
    for source, target, key in summary.flows:
        keys.setdefault((source, target), [])
        if key and key not in keys[(source, target)]:
            keys[(source, target)].append(key)
    edges = [Edge(s, t, tuple(k), True) for (s, t), k in sorted(keys.items())]
    edges += [
        Edge(s, t, (), False)
        for s, t in sorted(set(declared) - set(keys))
        if s in summary.states and t in summary.states
    ]
    return tuple(edges)


def _ingest(summary) -> tuple[Ingest, ...]:
    from components.common import artifacts as shared

    parts = []
    gens = [n for n, outs in summary.outputs.items() if any(a.type == "IngestReport" for a in outs)]
    for node in sorted(gens, key=lambda n: (n != "ImageExampleGen", n)):
        report_uri = summary.artifact_uri(node, "IngestReport")
        counts = _read_json(_join(report_uri, shared.COUNTS_FILE))
        if not isinstance(counts, dict):
            counts = summary.ingest_counts if node == "ImageExampleGen" else {}
        vocabulary_uri = summary.artifact_uri(node, "ClassVocabulary")
        class_counts = _read_json(_join(vocabulary_uri, shared.CLASS_COUNTS_FILE))
        parts.append(
            Ingest(
                node,
                summary.states.get(node, ""),
                {k: v for k, v in counts.items() if isinstance(v, int)},
                _jsonl(_join(report_uri, shared.QUARANTINE_FILE)),
                _jsonl(_join(report_uri, shared.DUPLICATES_FILE)),
                class_counts if isinstance(class_counts, dict) else {},
            )
        )
    return tuple(parts)


def _uri_with_property(summary, node: str, prop: str) -> str | None:
    for artifact in summary.outputs.get(node, []):
        if prop in artifact.custom_properties:
            return artifact.uri
    return None


def _reports_dir(summary, node: str) -> str | None:
    from components.trainer import reports as trainer_reports

    return _join(summary.artifact_uri(node, "Model"), trainer_reports.REPORTS_DIR)


def _trainer_metrics(summary, node: str) -> dict[str, Any]:
    from components.trainer import reports as trainer_reports

    metrics = _read_json(_join(_reports_dir(summary, node), trainer_reports.METRICS_FILE))
    return metrics if isinstance(metrics, dict) else {}


def _training(summary) -> tuple[Training, ...]:
    from components.trainer import reports as trainer_reports

    parts = []
    for node in ("Trainer", "SourceTrainer"):  # the target task first, then the base's
        if node in summary.states:
            curves = _read_png(_join(_reports_dir(summary, node), trainer_reports.CURVES_FILE))
            parts.append(
                Training(node, summary.states[node], curves, _trainer_metrics(summary, node))
            )
    return tuple(parts)


def _cut_selection(
    summary, name: str = CUT_SELECTION_FILE, picture_name: str = CUT_SELECTION_PICTURE
) -> CutSelection | None:
    """A measured choice: the file `name` (default the cut point's) in any output of the
    run, at its top or in reports/, with `picture_name` beside it; None if absent."""
    for node in sorted(summary.outputs):
        for artifact in summary.outputs[node]:
            for path in (_join(artifact.uri, name), _join(artifact.uri, "reports", name)):
                found = _read_json(path)
                if isinstance(found, dict):
                    picture = _read_png(path[: -len(name)] + picture_name)
                    return cut_selection_from(found, f"{node}: {path}", picture)
    return None


def _fine_tune_used(trainer_metrics: Mapping[str, Any]) -> str:
    """'auto: 1 top layer(s) unfrozen (block4_conv3)' from the Trainer's metrics."""
    fine_tune = trainer_metrics.get("fine_tune")
    if not isinstance(fine_tune, Mapping) or "setting" not in fine_tune:
        return ""
    layers = fine_tune.get("unfrozen_layers") or 0
    if not layers:
        return f"{fine_tune['setting']}: the base stayed frozen"
    names = ", ".join(map(str, fine_tune.get("layer_names") or ()))
    return f"{fine_tune['setting']}: top {layers} layer(s) fine-tuned" + (
        f" ({names})" if names else ""
    )


def cut_selection_from(
    data: Mapping[str, Any], source: str = "", png: bytes | None = None
) -> CutSelection:
    """A CutSelection from the JSON of CUT_SELECTION_FILE (format: module docstring)."""
    chosen = data.get("chosen", "")
    if isinstance(chosen, Mapping):
        chosen = ", ".join(f"{k} {v}" for k, v in chosen.items())
    rows = data.get("rows") or data.get("candidates") or ()
    if rows and not isinstance(rows[0], Mapping):  # {"columns": [...], "rows": [[...]]}
        columns = list(data.get("columns") or range(len(rows[0])))
        rows = [dict(zip(map(str, columns), row, strict=False)) for row in rows]
    facts = tuple(
        (str(k), v)
        for k, v in data.items()
        if k not in ("chosen", "reason", "rows", "candidates", "columns")
        and isinstance(v, (str, int, float))
    )
    return CutSelection(str(chosen), str(data.get("reason", "")), tuple(rows), source, facts, png)


def _cut_used(summary, trainer_metrics: Mapping[str, Any]) -> str:
    from components.bottleneck_cache import spec as cache_spec

    for artifact in summary.outputs.get("BottleneckCache", []):
        props = artifact.custom_properties
        if cache_spec.PROP_CUT_LAYER in props:
            pooling = (
                props[cache_spec.PROP_POOLING].string_value
                if cache_spec.PROP_POOLING in props
                else ""
            )
            text = props[cache_spec.PROP_CUT_LAYER].string_value
            return f"{text}, pooling {pooling}" if pooling else text
    config = trainer_metrics.get("config") or {}
    where = config.get("cut_layer") or ""
    if not where and config.get("drop_top_layers"):
        where = f"{config['drop_top_layers']} top layers dropped"
    if where and config.get("pooling"):
        where += f", pooling {config['pooling']}"
    return where


def _evaluation(summary) -> Evaluation | None:
    uri = summary.artifact_uri("Evaluator", "ModelEvaluation")
    if uri is None:
        return None
    import tensorflow_model_analysis as tfma

    values: dict[str, dict[str, float]] = {}
    for per_slice in tfma.load_metrics(uri):
        if per_slice.slice_key.single_slice_keys:
            continue  # the overall slice only
        for item in per_slice.metric_keys_and_values:
            if not item.value.HasField("double_value"):
                continue
            role = "diff" if item.key.is_diff else (item.key.model_name or "candidate")
            values.setdefault(item.key.name, {})[role] = item.value.double_value.value
    metrics = tuple(
        (name, v.get("candidate"), v.get("baseline"), v.get("diff"))
        for name, v in sorted(values.items())
    )
    saved = _read_json(_join(uri, "eval_config.json")) or {}
    locations = saved.get("modelLocations", {}) if isinstance(saved, dict) else {}
    return Evaluation(
        verdict=summary.evaluation_verdict() or "",
        metrics=metrics,
        thresholds=_thresholds(saved.get("evalConfig", {}) if isinstance(saved, dict) else {}),
        candidate=str(locations.get("candidate") or locations.get("") or ""),
        baseline=str(locations.get("baseline") or ""),
    )


def _thresholds(eval_config: Mapping[str, Any]) -> tuple[str, ...]:
    """'SparseCategoricalAccuracy: at least 0.5', '... may drop by at most 0 vs the baseline'."""
    lines = []
    for spec in eval_config.get("metricsSpecs", []):
        for metric in spec.get("metrics", []):
            threshold = metric.get("threshold", {})
            name = metric.get("className", "?")
            lower = threshold.get("valueThreshold", {}).get("lowerBound")
            if lower is not None:
                lines.append(f"{name}: at least {float(lower):.4f}")
            change = threshold.get("changeThreshold", {})
            if "absolute" in change:
                drop = max(0.0, -float(change["absolute"]))
                lines.append(f"{name}: may drop by at most {drop:.4f} against the baseline")
    return tuple(lines)


def _layerwise(summary) -> tuple[tuple[Picture, ...], tuple[Mapping[str, Any], ...]]:
    from components.layerwise_pretrainer import spec as layerwise_spec

    if "LayerwisePretrainer" not in summary.states:
        return (), ()
    reports = _join(
        summary.artifact_uri("LayerwisePretrainer", "Model"), layerwise_spec.REPORTS_DIR
    )
    pictures = []
    for title, name in (
        ("reconstruction loss per layer (train and held out)", layerwise_spec.LOSS_PLOT_FILE),
        ("held-out images and their reconstructions, one row per depth", layerwise_spec.GRID_FILE),
    ):
        png = _read_png(_join(reports, name))
        if png:
            pictures.append(Picture(title, png))
    history = _read_json(_join(reports, layerwise_spec.HISTORY_FILE)) or {}
    layers = []
    for layer in history.get("layers", []) if isinstance(history, dict) else []:
        layers.append(
            {
                "layer": layer.get("name", ""),
                "input": _shape(layer.get("input_shape")),
                "code": _shape(layer.get("code_shape")),
                "epochs": len(layer.get("loss") or ()),
                "last train loss": _last(layer.get("loss")),
                "last held-out loss": _last(layer.get("val_loss")),
            }
        )
    return tuple(pictures), tuple(layers)


def _shape(shape: Any) -> str:
    return "x".join(str(d) for d in shape) if isinstance(shape, list) else ""


def _last(values: Any) -> float | None:
    return float(values[-1]) if isinstance(values, list) and values else None


# --- rendering ----------------------------------------------------------------------------
_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;
  color:#1d2430;background:#f6f7f9}
header,section{max-width:1200px;margin:0 auto;padding:12px 24px}
section{background:#fff;margin:14px auto;border:1px solid #dde1e6;border-radius:6px}
h1{font-size:22px;margin:18px 0 4px}
h2{font-size:18px;margin:4px 0 10px}
h3{font-size:15px;margin:14px 0 6px}
nav a{margin-right:12px;color:#1565c0;text-decoration:none}
table{border-collapse:collapse;margin:6px 0}
td,th{border:1px solid #dde1e6;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f0f2f5}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.none{color:#5f6b7a;font-style:italic}
.bad{color:#b71c1c;font-weight:600}
.good{color:#1b5e20;font-weight:600}
.COMPLETE{background:#e8f5e9}
.CACHED{background:#e3f2fd}
.FAILED{background:#ffebee}
.OTHER{background:#fff8e1}
.track{position:relative;width:220px;height:12px;background:#f0f2f5}
.bar{position:absolute;top:0;height:12px;min-width:2px;background:#607d8b}
img{max-width:100%;border:1px solid #dde1e6;background:#fff}
img.curves{max-width:620px}
img.confusion{max-width:440px}
.chosen td{background:#fff3c4;font-weight:600}
code{font:12px ui-monospace,SFMono-Regular,Menlo,monospace;background:#f0f2f5;padding:0 3px}
svg text{font:12px system-ui,sans-serif}
.row{display:flex;flex-wrap:wrap;gap:8px 28px;align-items:flex-start}
.row>div{min-width:0}
.edge.implied{stroke-opacity:.3;stroke-width:1}
"""
# No network, no script: only inline styles and data: images may load.
_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
_TITLES = {
    "dag": "Pipeline steps",
    "ingest": "Ingestion",
    "cache": "Bottleneck cache",
    "cut": "Cut point",
    "fine_tune": "Fine-tuning depth",
    "training": "Training",
    "confusion": "Confusion matrix",
    "evaluation": "Evaluation",
    "serving": "Serving check",
    "push": "Push",
    "layerwise": "Layer-wise pretraining",
}


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _none(text: str) -> str:
    return f'<p class="none">{_e(text)}</p>'


def _number(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return "-" if value is None else str(value)
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def _cell(value: Any) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f'<td class="num">{_e(_number(value))}</td>'
    if isinstance(value, (list, dict)):
        value = json.dumps(value, sort_keys=True)
    return f"<td>{_e('-' if value is None else value)}</td>"


def _table(
    columns: Sequence[str], rows: Iterable[Sequence[Any]], row_classes: Sequence[str] = ()
) -> str:
    head = "".join(f"<th>{_e(c)}</th>" for c in columns)
    body = []
    for i, row in enumerate(rows):
        css = f' class="{_e(row_classes[i])}"' if i < len(row_classes) and row_classes[i] else ""
        body.append(f"<tr{css}>" + "".join(_cell(v) for v in row) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _dict_rows(rows: Sequence[Mapping[str, Any]], first: Sequence[str] = ()) -> str:
    """A table of JSON objects: the `first` columns, then every other key seen, in order."""
    columns = [c for c in first if any(c in r for r in rows)]
    for row in rows:
        columns += [k for k in row if k not in columns]
    return _table(columns, [[row.get(c) for c in columns] for row in rows])


def _image(png: bytes | None, alt: str, css: str = "") -> str:
    if not png:
        return _none(f"no picture: {alt} was not written")
    data = base64.b64encode(png).decode("ascii")
    css = f' class="{css}"' if css else ""
    return f'<img{css} alt="{_e(alt)}" src="data:image/png;base64,{data}">'


def _word(state: str | None) -> str:
    return _STATE_WORDS.get(state or "", (state or "not run").lower())


def _section(section_id: str, body: str) -> str:
    return f'<section id="{section_id}"><h2>{_e(_TITLES[section_id])}</h2>{body}</section>'


def _clock(seconds: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds)) if seconds else "-"


def render(report: Report) -> str:
    """The whole page, as text (UTF-8)."""
    title = f"{report.pipeline_name} run {report.run_id}"
    nav = "".join(f'<a href="#{s}">{_e(_TITLES[s])}</a>' for s in SECTIONS if s in _TITLES)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
        _header(report, nav),
        _section("dag", _dag(report)),
        _section("ingest", _ingest_html(report)),
        _section("cache", _cache_html(report)),
        _section("cut", _cut_html(report)),
        _section("fine_tune", _fine_tune_html(report)),
        _section("training", _training_html(report)),
        _section("confusion", _confusion_html(report)),
        _section("evaluation", _evaluation_html(report)),
        _section("serving", _serving_html(report)),
        _section("push", _push_html(report)),
        _section("layerwise", _layerwise_html(report)),
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def _header(report: Report, nav: str) -> str:
    took = max(0.0, report.finished - report.started)
    state_class = (
        "bad" if report.state == "FAILED" else "good" if report.state == "COMPLETE" else ""
    )
    facts = [
        ("run", _e(report.run_id)),
        ("state", f'<span class="{state_class}">{_e(report.state)}</span>'),
        ("started", _e(_clock(report.started))),
        ("took", f"{took:.0f} s"),
    ]
    if report.artifacts_dir:
        facts.append(("artifacts", f"<code>{_e(report.artifacts_dir)}</code>"))
    if report.log_path:
        facts.append(("full log", f"<code>{_e(report.log_path)}</code>"))
    rows = "".join(f"<tr><th>{_e(k)}</th><td>{v}</td></tr>" for k, v in facts)
    return (
        f'<header id="run"><h1>Pipeline {_e(report.pipeline_name)}</h1>'
        f"<table>{rows}</table><nav>{nav}</nav>"
        f'<p class="none">Written {_e(_clock(time.time()))} by tfx-transfer report; '
        "self-contained (no network needed).</p></header>"
    )


# --- the DAG ------------------------------------------------------------------------------
_BOX_W, _BOX_H, _GAP_X, _ROW_H, _MARGIN = 176, 40, 16, 74, 12
_COLOURS = {  # state: (fill, stroke)
    "COMPLETE": ("#e8f5e9", "#2e7d32"),
    "CACHED": ("#e3f2fd", "#1565c0"),
    "FAILED": ("#ffebee", "#c62828"),
}
_OTHER_COLOURS = ("#fff8e1", "#f9a825")


def layout(names: Sequence[str], edges: Iterable[tuple[str, str]]) -> dict[str, tuple[int, int]]:
    """Row and column of each node: rows by longest path from a source (a source sits
    just above its first consumer), nodes in a row ordered by their producers' places."""
    preds: dict[str, set[str]] = {n: set() for n in names}
    succs: dict[str, set[str]] = {n: set() for n in names}
    for source, target in edges:
        if source in preds and target in preds and source != target:
            preds[target].add(source)
            succs[source].add(target)
    order, ready, seen = [], [n for n in names if not preds[n]], set()
    remaining = {n: len(preds[n]) for n in names}
    while ready:
        node = ready.pop(0)
        order.append(node)
        seen.add(node)
        for nxt in sorted(succs[node], key=names.index):
            remaining[nxt] -= 1
            if remaining[nxt] == 0:
                ready.append(nxt)
    order += [n for n in names if n not in seen]  # a cycle (never in TFX): keep them all
    depth: dict[str, int] = {}
    for node in order:
        depth[node] = max((depth[p] + 1 for p in preds[node] if p in depth), default=0)
    for node in reversed(order):
        if not preds[node] and succs[node]:
            depth[node] = max(0, min(depth[s] for s in succs[node]) - 1)
    rows: dict[int, list[str]] = {}
    for node in order:
        rows.setdefault(depth[node], []).append(node)
    place: dict[str, tuple[int, int]] = {}
    position: dict[str, float] = {}
    for row in sorted(rows):
        members = rows[row]

        def key(node: str, members=members) -> tuple[float, int]:
            placed = [position[p] for p in preds[node] if p in position]
            mean = (
                sum(placed) / len(placed) if placed else (members.index(node) + 0.5) / len(members)
            )
            return (mean, names.index(node))

        for col, node in enumerate(sorted(members, key=key)):
            place[node] = (row, col)
            position[node] = (col + 0.5) / len(members)
    return place


def implied_edges(edges: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
    """The edges (a, b) for which a longer path a -> ... -> b exists (drawn faint)."""
    succs: dict[str, set[str]] = {}
    for source, target in edges:
        succs.setdefault(source, set()).add(target)

    def reachable(start: str, skip: tuple[str, str]) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            node = todo.pop()
            for nxt in succs.get(node, ()):
                if (node, nxt) != skip and nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    return {(a, b) for a, b in edges if b in reachable(a, (a, b))}


def _dag_svg(report: Report) -> str:
    names = [s.name for s in report.steps]
    place = layout(names, [(e.source, e.target) for e in report.edges])
    widths: dict[int, int] = {}
    for row, col in place.values():
        widths[row] = max(widths.get(row, 0), col + 1)
    most = max(widths.values(), default=1)
    width = 2 * _MARGIN + most * _BOX_W + (most - 1) * _GAP_X
    height = 2 * _MARGIN + (max(widths, default=0) + 1) * _ROW_H - (_ROW_H - _BOX_H)

    def box(node: str) -> tuple[float, float]:
        row, col = place[node]
        count = widths[row]
        row_width = count * _BOX_W + (count - 1) * _GAP_X
        x = (width - row_width) / 2 + col * (_BOX_W + _GAP_X)
        return x, _MARGIN + row * _ROW_H

    out = [
        f'<svg role="img" aria-label="pipeline DAG" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" style="max-width:100%;height:auto">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
        'fill="#607d8b"/></marker></defs>',
    ]
    implied = implied_edges([(e.source, e.target) for e in report.edges])
    for edge in report.edges:
        if edge.source not in place or edge.target not in place:
            continue
        (x1, y1), (x2, y2) = box(edge.source), box(edge.target)
        x1, y1, x2 = x1 + _BOX_W / 2, y1 + _BOX_H, x2 + _BOX_W / 2
        bend = max(18.0, (y2 - y1) / 2)
        dash = "" if edge.flowed else ' stroke-dasharray="5,4"'
        what = ", ".join(edge.keys) if edge.flowed else "declared order, no artifact in this run"
        css = "edge implied" if (edge.source, edge.target) in implied else "edge"
        out.append(
            f'<path class="{css}" d="M{x1:.0f},{y1:.0f} C{x1:.0f},{y1 + bend:.0f} '
            f'{x2:.0f},{y2 - bend:.0f} {x2:.0f},{y2:.0f}" fill="none" stroke="#607d8b" '
            f'stroke-width="1.4"{dash} marker-end="url(#arrow)">'
            f"<title>{_e(edge.source)} -> {_e(edge.target)}: {_e(what)}</title></path>"
        )
    for step in report.steps:
        x, y = box(step.name)
        fill, stroke = _COLOURS.get(step.state, _OTHER_COLOURS)
        label = step.name if len(step.name) <= 24 else step.name[:23] + "\u2026"
        took = (
            f" {step.seconds:.1f} s" if step.seconds is not None and step.state != "CACHED" else ""
        )
        out.append(
            f'<g class="node" data-node="{_e(step.name)}" data-state="{_e(step.state)}">'
            f"<title>{_e(step.name)}: {_e(_word(step.state))}{_e(took)}</title>"
            f'<rect x="{x:.0f}" y="{y:.0f}" width="{_BOX_W}" height="{_BOX_H}" rx="6" '
            f'fill="{fill}" stroke="{stroke}" stroke-width="1.5"/>'
            f'<text x="{x + _BOX_W / 2:.0f}" y="{y + 16:.0f}" text-anchor="middle" '
            f'font-weight="600">{_e(label)}</text>'
            f'<text x="{x + _BOX_W / 2:.0f}" y="{y + 32:.0f}" text-anchor="middle" '
            f'fill="{stroke}">{_e(_word(step.state) + took)}</text></g>'
        )
    out.append("</svg>")
    return "".join(out)


def _dag(report: Report) -> str:
    if not report.steps:
        return _none("no step of this run is recorded in ML Metadata")
    total = max(1e-9, report.finished - report.started)
    rows = []
    for step in report.steps:
        left = 100.0 * (step.start or 0.0) / total
        span = 100.0 * (step.seconds or 0.0) / total
        bar = (
            f'<div class="track"><div class="bar" style="left:{left:.1f}%;'
            f'width:{min(span, 100.0 - left):.1f}%"></div></div>'
        )
        rows.append(
            f'<tr class="{step.state if step.state in _COLOURS else "OTHER"}" '
            f'data-node="{_e(step.name)}"><td>{_e(step.name)}</td><td>{_e(_word(step.state))}</td>'
            f'<td class="num">{_e(_seconds(step.start))}</td>'
            f'<td class="num">{_e(_seconds(step.seconds))}</td><td>{bar}</td></tr>'
        )
    legend = (
        "<p>Green: ran in this run; blue: served from TFX's cache (its outputs are those of "
        "an earlier run); red: failed. Arrows: an artifact passed in this run (hover for "
        "its input; faint: also implied by a longer path); dashed: declared order only. "
        "Times are ML Metadata's: the execution's creation to its last update.</p>"
    )
    table = (
        "<table><thead><tr><th>step</th><th>state</th><th>started at (s)</th>"
        f"<th>took (s)</th><th>timeline ({total:.0f} s)</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )
    return f'<div class="row"><div>{_dag_svg(report)}</div><div>{table}</div></div>{legend}'


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


# --- the other sections ---------------------------------------------------------------------
def _rows_table(rows: Rows, what: str, first: Sequence[str]) -> str:
    if not rows.total:
        return _none(f"no {what}")
    shown = f" (the first {len(rows.rows)} of {rows.total})" if rows.total > len(rows.rows) else ""
    return f"<h3>{_e(what.capitalize())}: {rows.total}{_e(shown)}</h3>" + _dict_rows(
        rows.rows, first
    )


def _cached_note(state: str | None, what: str) -> str:
    if state == "CACHED":
        return (
            f'<p class="none">Served from TFX\'s cache: nothing was {what} in this run; the '
            "numbers are those of the run that made the artifact.</p>"
        )
    return ""


def _ingest_html(report: Report) -> str:
    if not report.ingest:
        return _none("no ingest report in this run")
    parts = []
    for part in report.ingest:
        parts.append(f"<h3>{_e(part.node)} ({_e(_word(part.state))})</h3>")
        parts.append(_cached_note(part.state, "ingested"))
        blocks = [_counts(part.counts)]
        if part.class_counts:
            splits = sorted({s for counts in part.class_counts.values() for s in counts})
            rows = [[c, *(n.get(s, 0) for s in splits)] for c, n in part.class_counts.items()]
            blocks.append(_table(("class", *(f"{s} images" for s in splits)), rows))
        blocks.append(
            _rows_table(part.quarantine, "quarantined files", ("path", "reason"))
            + _rows_table(part.duplicates, "duplicates dropped", ("path", "kept"))
        )
        parts.append(blocks[0] + _row(blocks[1:]))
    return "".join(parts)


_COUNT_ORDER = (
    "files_seen",
    "ingested",
    "quarantined",
    "duplicates",
    "ignored",
    "transcoded",
    "downscaled",
    "train_examples",
    "eval_examples",
)


def _counts(counts: Mapping[str, Any]) -> str:
    """Counts as one table row (names as the header), the usual ones first."""
    given = list(counts)
    names = sorted(given, key=lambda k: (k not in _COUNT_ORDER, _order(k), given.index(k)))
    return (
        _table([n.replace("_", " ") for n in names], [[counts[n] for n in names]]) if names else ""
    )


def _order(name: str) -> int:
    return _COUNT_ORDER.index(name) if name in _COUNT_ORDER else 0


def _row(blocks: Iterable[str]) -> str:
    """Blocks side by side, wrapping when the page is narrow."""
    return '<div class="row">' + "".join(f"<div>{b}</div>" for b in blocks if b) + "</div>"


def _cache_html(report: Report) -> str:
    if report.cache_state is None:
        return _none("no bottleneck cache in this run (no base model)")
    return (
        f"<p>BottleneckCache: {_e(_word(report.cache_state))}.</p>"
        + _cached_note(report.cache_state, "computed")
        + _counts(report.cache_counts)
        + _rows_table(report.cache_failed, "failed records", ("image_id", "split", "error"))
    )


def _cut_html(report: Report) -> str:
    used = f" The cut this run used: <code>{_e(report.cut_used)}</code>." if report.cut_used else ""
    what = f"A step that measures cut points writes <code>{CUT_SELECTION_FILE}</code>"
    return _selection_html(report.cut, used, what, "cut selection")


def _fine_tune_html(report: Report) -> str:
    used = report.fine_tune_used
    used = f" The Trainer's setting: <code>{_e(used)}</code>." if used else ""
    what = (
        f"The Trainer writes <code>{FINE_TUNE_SELECTION_FILE}</code> with "
        "<code>fine_tune: auto</code>"
    )
    return _selection_html(report.fine_tune, used, what, "fine-tuning selection")


def _selection_html(cut: CutSelection | None, used: str, what: str, alt: str) -> str:
    """A measured choice: what was chosen and used, why, the table (the chosen row
    marked), the other facts and the picture; or that it was not measured."""
    if cut is None:
        return (
            f'<p class="none">Not measured in this run.</p><p>{used.strip()}</p>'
            f'<p class="none">{what} into its output; it is shown here.</p>'
        )
    parts = [f"<p>Chosen: <strong>{_e(cut.chosen)}</strong>{used}</p>"]
    if cut.reason:
        parts.append(f"<p>{_e(cut.reason)}</p>")
    if cut.rows:
        columns: list[str] = []
        for row in cut.rows:
            columns += [k for k in row if k not in columns]
        marks = [
            "chosen" if any(str(v) == cut.chosen for v in row.values()) else "" for row in cut.rows
        ]
        parts.append(_table(columns, [[row.get(c) for c in columns] for row in cut.rows], marks))
    parts.append(_row([_facts(cut.facts), _image(cut.png, alt) if cut.png else ""]))
    if cut.source:
        parts.append(f'<p class="none">From {_e(cut.source)}</p>')
    return "".join(parts)


_TRAINING_FACTS = (
    ("eval_accuracy", "eval accuracy"),
    ("num_train_examples", "train examples"),
    ("num_eval_examples", "eval examples"),
    ("bottleneck_shape", "bottleneck shape"),
)


def _training_html(report: Report) -> str:
    if not report.training:
        return _none("no Trainer in this run")
    parts = []
    for part in report.training:
        what = "the target task" if part.node == "Trainer" else "the base's source task"
        parts.append(f"<h3>{_e(part.node)}: {_e(what)} ({_e(_word(part.state))})</h3>")
        facts = [
            (label, part.metrics[key]) for key, label in _TRAINING_FACTS if key in part.metrics
        ]
        for name, phase in (part.metrics.get("phases") or {}).items():
            if isinstance(phase, dict):
                facts.append(
                    (
                        f"phase {name}",
                        f"{phase.get('epochs_run', '?')} epochs "
                        f"(best {phase.get('best_epoch', '?')}), "
                        f"learning rate {phase.get('learning_rate', '?')}",
                    )
                )
        fine_tune = part.metrics.get("fine_tune")
        if isinstance(fine_tune, dict) and fine_tune.get("reason"):
            facts.append(("fine-tuning", fine_tune["reason"]))
        curves = _image(part.curves_png, f"{part.node} training curves", "curves")
        parts.append(_row([curves, _facts(facts)]))
    return "".join(parts)


def _facts(facts: Sequence[tuple[str, Any]]) -> str:
    """A two-column table of (name, value), names as row headers; "" when empty."""
    rows = "".join(f"<tr><th>{_e(k)}</th>{_cell(v)}</tr>" for k, v in facts)
    return f"<table>{rows}</table>" if rows else ""


def _confusion_html(report: Report) -> str:
    if not report.confusion_png and not report.confusion_matrix:
        return _none("no confusion matrix in this run (no Trainer)")
    picture = _image(report.confusion_png, "confusion matrix on the eval split", "confusion")
    names = report.class_names or tuple(str(i) for i in range(len(report.confusion_matrix)))
    counts = ""
    if report.confusion_matrix and len(names) == len(report.confusion_matrix):
        counts = "<h3>Counts (rows: true class, columns: predicted)</h3>" + _table(
            ("true \\ predicted", *names),
            [[n, *row] for n, row in zip(names, report.confusion_matrix, strict=True)],
        )
    return _row([picture, counts])


def _evaluation_html(report: Report) -> str:
    evaluation = report.evaluation
    if evaluation is None:
        return _none("no Evaluator in this run")
    css = "good" if evaluation.verdict == "blessed" else "bad"
    parts = [f'<p>Verdict: <span class="{css}">{_e(evaluation.verdict or "-")}</span></p>']
    if evaluation.baseline:
        parts.append(f"<p>Baseline (the served model): <code>{_e(evaluation.baseline)}</code></p>")
    else:
        parts.append(
            "<p>No baseline: no blessed model was in service, so the candidate was gated on "
            "the floor alone.</p>"
        )
    if evaluation.candidate:
        parts.append(f"<p>Candidate: <code>{_e(evaluation.candidate)}</code></p>")
    if evaluation.metrics:
        parts.append(
            _table(("metric", "candidate", "baseline", "candidate - baseline"), evaluation.metrics)
        )
    if evaluation.thresholds:
        items = "".join(f"<li>{_e(t)}</li>" for t in evaluation.thresholds)
        parts.append(f"<h3>Gate</h3><ul>{items}</ul>")
    return "".join(parts)


def _serving_html(report: Report) -> str:
    if report.serving is None:
        return _none("no serving check in this run")
    css = "bad" if report.serving.startswith("NOT") else "good"
    return f'<p class="{css}">{_e(report.serving)}</p>'


def _push_html(report: Report) -> str:
    if report.push is None:
        return _none("no Pusher in this run")
    if report.push.startswith("nothing"):
        return f"<p>Pushed: {_e(report.push)}</p>"
    return f'<p>Pushed to <code class="good">{_e(report.push)}</code></p>'


def _layerwise_html(report: Report) -> str:
    if not report.layerwise and not report.layerwise_layers:
        return _none("not a layer-wise run (no LayerwisePretrainer)")
    blocks = [_dict_rows(report.layerwise_layers) if report.layerwise_layers else ""]
    for picture in report.layerwise:
        blocks.append(f"<h3>{_e(picture.title)}</h3>" + _image(picture.png, picture.title))
    return _row(blocks)
