"""What the last local run did, read back from ML Metadata (SQLite).

Used by the CLI to print a summary after a run (which components ran, which were
served from TFX's cache, what ingestion counted), and by the end-to-end tests.
"""

from __future__ import annotations

import dataclasses

import ml_metadata as mlmd
from ml_metadata.proto import metadata_store_pb2

from components.image_example_gen import spec as ingest_spec

_STATE = metadata_store_pb2.Execution.State


@dataclasses.dataclass(frozen=True)
class RunSummary:
    """States of one pipeline run's executions and the ingestion counts."""

    run_id: str
    # node id -> "COMPLETE" (ran), "CACHED" (reused), "FAILED", ...
    states: dict[str, str]
    # ImageExampleGen's counts: files_seen, ingested, quarantined, duplicates, ...
    ingest_counts: dict[str, int]

    def ran(self) -> list[str]:
        return sorted(n for n, s in self.states.items() if s == "COMPLETE")

    def cached(self) -> list[str]:
        return sorted(n for n, s in self.states.items() if s == "CACHED")


def _store(metadata_file: str) -> mlmd.MetadataStore:
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = metadata_file
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    return mlmd.MetadataStore(config)


def _counts(store: mlmd.MetadataStore, execution_id: int) -> dict[str, int]:
    events = store.get_events_by_execution_ids([execution_id])
    output_ids = [e.artifact_id for e in events if e.type == metadata_store_pb2.Event.OUTPUT]
    for artifact in store.get_artifacts_by_id(output_ids):
        props = artifact.custom_properties
        if ingest_spec.COUNT_FILES_SEEN in props:
            return {k: props[k].int_value for k in _COUNT_KEYS if k in props}
    return {}


_COUNT_KEYS = (
    ingest_spec.COUNT_FILES_SEEN,
    ingest_spec.COUNT_INGESTED,
    ingest_spec.COUNT_QUARANTINED,
    ingest_spec.COUNT_DUPLICATES,
    ingest_spec.COUNT_TRANSCODED,
    ingest_spec.COUNT_DOWNSCALED,
)


def latest_run(metadata_file: str, pipeline_name: str) -> RunSummary:
    """Summarizes the newest run of `pipeline_name` recorded in `metadata_file`."""
    store = _store(metadata_file)
    runs = [
        c
        for c in store.get_contexts_by_type("pipeline_run")
        if _pipeline_of_run(store, c.id) == pipeline_name
    ]
    if not runs:
        raise LookupError(f"no run of pipeline {pipeline_name!r} in {metadata_file}")
    run = max(runs, key=lambda c: (c.create_time_since_epoch, c.id))
    states, counts = {}, {}
    for execution in store.get_executions_by_context(run.id):
        node = _node_of(store, execution.id, pipeline_name)
        states[node] = _STATE.Name(execution.last_known_state)
        if node == "ImageExampleGen":
            counts = _counts(store, execution.id) or counts
    return RunSummary(run_id=run.name, states=states, ingest_counts=counts)


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
