"""What the last local run did, read back from ML Metadata (SQLite).

Used by the CLI to print a summary after a run (which components ran, which were
served from TFX's cache, what ingestion counted, how many bottleneck vectors were
computed or reused, whether the model was blessed, whether it answers the way TF
Serving loads it, and whether it was pushed, and if not why), by the run report
(pipeline/report.py: also each step's start and end times and which step's artifacts
another step read), and by the end-to-end tests.
"""

from __future__ import annotations

import dataclasses

import ml_metadata as mlmd
from ml_metadata.proto import metadata_store_pb2

from components.bottleneck_cache import spec as cache_spec
from components.image_example_gen import spec as ingest_spec

_STATE = metadata_store_pb2.Execution.State

_INGEST_KEYS = (
    ingest_spec.COUNT_FILES_SEEN,
    ingest_spec.COUNT_INGESTED,
    ingest_spec.COUNT_QUARANTINED,
    ingest_spec.COUNT_DUPLICATES,
    ingest_spec.COUNT_IGNORED,
    ingest_spec.COUNT_TRANSCODED,
    ingest_spec.COUNT_DOWNSCALED,
)
_CACHE_KEYS = (
    cache_spec.PROP_COMPUTED,
    cache_spec.PROP_REUSED,
    cache_spec.PROP_FAILED,
    cache_spec.PROP_SHARDS_SKIPPED,
)


@dataclasses.dataclass(frozen=True)
class RunSummary:
    """States of one pipeline run's executions and what its artifacts recorded."""

    run_id: str
    # node id -> "COMPLETE" (ran), "CACHED" (reused), "FAILED", ...
    states: dict[str, str]
    # node id -> the output artifacts of its execution in this run
    outputs: dict[str, list[metadata_store_pb2.Artifact]]
    # seconds since the epoch: the run's first execution created, its last one updated
    started: float = 0.0
    finished: float = 0.0
    pipeline_name: str = ""
    # node id -> (created, last updated), seconds since the epoch: what the step took
    # (a step served from TFX's cache takes about nothing)
    times: dict[str, tuple[float, float]] = dataclasses.field(default_factory=dict)
    # (producer node, consumer node, the consumer's input key): an artifact that one
    # step of this run output and another read, as ML Metadata's events record it
    flows: tuple[tuple[str, str, str], ...] = ()

    @property
    def state(self) -> str:
        """FAILED when a step failed, RUNNING while one has not ended, else COMPLETE."""
        if "FAILED" in self.states.values():
            return "FAILED"
        if any(s not in ("COMPLETE", "CACHED") for s in self.states.values()):
            return "RUNNING"
        return "COMPLETE"

    def _trainer_report(self, name: str) -> dict | None:
        """A JSON file of the Trainer's Model artifact's reports/ folder; None if absent."""
        import json

        import tensorflow as tf

        uri = self.artifact_uri("Trainer", "Model")
        path = f"{uri}/reports/{name}" if uri else None
        if not path or not tf.io.gfile.exists(path):
            return None
        with tf.io.gfile.GFile(path) as f:
            return json.load(f)

    @property
    def eval_accuracy(self) -> float | None:
        """The trained model's eval accuracy (the Trainer's reports/metrics.json)."""
        metrics = self._trainer_report("metrics.json")
        return None if metrics is None else float(metrics["eval_accuracy"])

    @property
    def cut_selection(self) -> dict | None:
        """cut_layer auto: the Trainer's measured table (reports/cut_selection.json)."""
        return self._trainer_report("cut_selection.json")

    @property
    def fine_tune_selection(self) -> dict | None:
        """fine_tune auto: the Trainer's measured depths (reports/fine_tune_selection.json)."""
        return self._trainer_report("fine_tune_selection.json")

    @property
    def pushed_version(self) -> str | None:
        """The serving version Pusher recorded in this run, if it pushed."""
        destination = self.pushed_destination
        return destination.rstrip("/").rsplit("/", 1)[-1] if destination else None

    def seconds(self, node: str) -> float | None:
        """How long the node's execution took (created to last updated); None: unknown."""
        if node not in self.times:
            return None
        created, updated = self.times[node]
        return max(0.0, updated - created)

    def ran(self) -> list[str]:
        return sorted(n for n, s in self.states.items() if s == "COMPLETE")

    def cached(self) -> list[str]:
        return sorted(n for n, s in self.states.items() if s == "CACHED")

    def _int_props(self, node: str, keys: tuple[str, ...]) -> dict[str, int]:
        for artifact in self.outputs.get(node, []):
            props = artifact.custom_properties
            if keys[0] in props:
                return {k: props[k].int_value for k in keys if k in props}
        return {}

    @property
    def ingest_counts(self) -> dict[str, int]:
        """ImageExampleGen's reconciled counts (files_seen, ingested, ...)."""
        return self._int_props("ImageExampleGen", _INGEST_KEYS)

    @property
    def cache_counts(self) -> dict[str, int]:
        """BottleneckCache's vectors computed / reused and failed records."""
        return self._int_props("BottleneckCache", _CACHE_KEYS)

    def artifact_uri(self, node: str, type_name: str) -> str | None:
        for artifact in self.outputs.get(node, []):
            if artifact.type == type_name:
                return artifact.uri
        return None

    @property
    def pushed_destination(self) -> str | None:
        """Where Pusher wrote the model in this run; None when it pushed nothing."""
        for artifact in self.outputs.get("Pusher", []):
            props = artifact.custom_properties
            if props.get("pushed") and props["pushed"].int_value == 1:
                return props["pushed_destination"].string_value
        return None

    @property
    def already_served(self) -> bool:
        """True when Pusher found the same model already served and copied nothing."""
        for artifact in self.outputs.get("Pusher", []):
            props = artifact.custom_properties
            if "already_served" in props and props["already_served"].int_value == 1:
                return True
        return False

    def push_verdict(self) -> str | None:
        """Where the model went: the destination, or 'nothing ...' and why; None: no Pusher."""
        state = self.states.get("Pusher")
        if state is None:
            return None
        pushed = self.pushed_destination
        if state == "CACHED":
            return f"nothing new (the unchanged model is already at {pushed})"
        if self.already_served:
            return f"nothing new (the same model is already served at {pushed})"
        if pushed:
            return pushed
        serving = self.serving_verdict()
        if serving is not None and serving.startswith("NOT servable"):
            return "nothing (the model does not answer under TF Serving's loader)"
        return "nothing (the model was not blessed)"

    def serving_verdict(self) -> str | None:
        """ServingCheck's verdict: 'servable: ...' or 'NOT servable: <why>'; None: no check."""
        for artifact in self.outputs.get("ServingCheck", []):
            props = artifact.custom_properties
            if "blessed" in props:
                word = "servable" if props["blessed"].int_value == 1 else "NOT servable"
                reason = props["reason"].string_value if "reason" in props else ""
                return f"{word}: {reason}" if reason else word
        return None

    def evaluation_verdict(self) -> str | None:
        """Evaluator's verdict: 'blessed', or why not (failing metrics and thresholds)."""
        uri = self.artifact_uri("Evaluator", "ModelEvaluation")
        if uri is None:
            return None
        import tensorflow_model_analysis as tfma

        result = tfma.load_validation_result(uri)
        if result.validation_ok:
            return "blessed"
        reasons = [
            _describe_failure(failure)
            for per_slice in result.metric_validations_per_slice
            for failure in per_slice.failures
        ]
        return "not blessed: " + ("; ".join(reasons) or str(result))


def _describe_failure(failure) -> str:
    """'accuracy 0.18 is below the floor 0.3' / '... dropped more than allowed vs ...'."""
    name, value = failure.metric_key.name, failure.metric_value.double_value.value
    threshold = failure.metric_threshold
    if threshold.HasField("value_threshold"):
        bound = threshold.value_threshold.lower_bound.value
        return f"{name} {value:.4f} is below the required minimum {bound:.4f}"
    if threshold.HasField("change_threshold"):
        allowed = -threshold.change_threshold.absolute.value
        return (
            f"{name} changed by {value:+.4f} against the served (last blessed) model; "
            f"the allowed drop is {max(allowed, 0.0):.4f}"
        )
    return f"{name} {value:.4f}: {failure.message}"


def _store(metadata_file: str) -> mlmd.MetadataStore:
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = metadata_file
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    return mlmd.MetadataStore(config)


def latest_run(metadata_file: str, pipeline_name: str) -> RunSummary:
    """Summarizes the newest run of `pipeline_name` recorded in `metadata_file`.

    Raises:
        LookupError: no run of that pipeline in the file.
    """
    found = runs(metadata_file, pipeline_name, newest=1)
    if not found:
        raise LookupError(f"no run of pipeline {pipeline_name!r} in {metadata_file}")
    return found[-1]


def runs(metadata_file: str, pipeline_name: str, newest: int = 0) -> list[RunSummary]:
    """Every run of `pipeline_name` (or the `newest` ones), oldest first."""
    store = _store(metadata_file)
    contexts = sorted(
        (
            c
            for c in store.get_contexts_by_type("pipeline_run")
            if _pipeline_of_run(store, c.id) == pipeline_name
        ),
        key=lambda c: (c.create_time_since_epoch, c.id),
    )
    return [_summarize(store, run, pipeline_name) for run in contexts[-newest:]]


def _summarize(store: mlmd.MetadataStore, run, pipeline_name: str) -> RunSummary:
    executions = store.get_executions_by_context(run.id)
    events = store.get_events_by_execution_ids([e.id for e in executions])
    node_of = {e.id: _node_of(store, e.id, pipeline_name) for e in executions}
    states, times, output_ids, produced_by = {}, {}, {}, {}
    for execution in executions:
        node = node_of[execution.id]
        states[node] = _STATE.Name(execution.last_known_state)
        created, updated = times.get(node, (float("inf"), 0.0))
        times[node] = (
            min(created, execution.create_time_since_epoch / 1000.0),
            max(updated, execution.last_update_time_since_epoch / 1000.0),
        )
        output_ids.setdefault(node, [])
    for event in events:
        if event.type == metadata_store_pb2.Event.OUTPUT:
            node = node_of[event.execution_id]
            output_ids[node].append(event.artifact_id)
            produced_by[event.artifact_id] = node
    artifacts = {a.id: a for a in store.get_artifacts_by_id(sorted(set(produced_by)))}
    outputs = {
        node: [artifacts[i] for i in ids if i in artifacts] for node, ids in output_ids.items()
    }
    flows = sorted(
        {
            (produced_by[e.artifact_id], node_of[e.execution_id], _event_key(e))
            for e in events
            if e.type == metadata_store_pb2.Event.INPUT and e.artifact_id in produced_by
        }
    )
    stamps = [t for pair in times.values() for t in pair]
    started = min(stamps, default=run.create_time_since_epoch / 1000.0)
    finished = max(stamps, default=run.create_time_since_epoch / 1000.0)
    return RunSummary(
        run_id=run.name,
        states=states,
        outputs=outputs,
        started=started,
        finished=finished,
        pipeline_name=pipeline_name,
        times=times,
        flows=tuple(flows),
    )


def _event_key(event: metadata_store_pb2.Event) -> str:
    """The input or output key an event records (e.g. 'examples'); '' when none."""
    for step in event.path.steps:
        if step.HasField("key"):
            return step.key
    return ""


def _pipeline_of_run(store: mlmd.MetadataStore, run_context_id: int) -> str | None:
    for execution in store.get_executions_by_context(run_context_id)[:1]:
        for context in store.get_contexts_by_execution(execution.id):
            if context.type == "pipeline":
                return context.name
    return None


def _node_of(store: mlmd.MetadataStore, execution_id: int, pipeline_name: str) -> str:
    for context in store.get_contexts_by_execution(execution_id):
        if context.type == "node" and context.name.startswith(pipeline_name + "."):
            return context.name[len(pipeline_name) + 1 :]
    return f"execution-{execution_id}"


def fine_tune_line(selection: dict) -> str:
    """fine_tune auto's choice on one line of the run summary (RunSummary.
    fine_tune_selection; the whole table is in the HTML report): the choice, each
    depth's gain over off with its standard error (or why it was skipped), the time."""
    measured = []
    for row in selection["rows"]:
        if row.get("skipped"):
            measured.append(f"{row['setting']} skipped ({row['skipped']})")
        elif row.get("gain_vs_off") is not None:
            se = row.get("gain_se")
            measured.append(
                f"{row['setting']} {row['gain_vs_off']:+.3f}"
                + (f" +- {se:.3f}" if se is not None else "")
            )
    gains = f": {', '.join(measured)}" if measured else ""
    return (
        f"  fine-tune: {selection['chosen']} (fine_tune auto, gain over off on a fold of "
        f"{selection['validation_examples']} train examples, kept only above one SE{gains}; "
        f"{selection['seconds']:.0f}s of a {selection['budget_seconds']:g}s budget)"
    )
