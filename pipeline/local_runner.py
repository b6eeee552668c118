"""Runs the pipeline locally: LocalDagRunner, SQLite metadata, Beam DirectRunner."""

from __future__ import annotations

import os

from tfx import v1 as tfx

from pipeline.config import PipelineConfig
from pipeline.pipeline import create_pipeline


def run_local(config: PipelineConfig) -> None:
    """Runs every component of the pipeline in this process (cached steps are reused)."""
    os.makedirs(os.path.dirname(os.path.abspath(config.metadata_file)), exist_ok=True)
    metadata = tfx.orchestration.metadata.sqlite_metadata_connection_config(config.metadata_file)
    tfx.orchestration.LocalDagRunner().run(create_pipeline(config, metadata))
