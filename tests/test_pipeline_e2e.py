"""End to end: the local pipeline on a small copy of the demo data (LocalDagRunner).

One module-scoped run is shared by the tests; a second run with unchanged inputs must
be served entirely from TFX's cache, and a data change must re-run ingestion.
"""

import os
import shutil

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
from PIL import Image

from components.anomaly_gate.gate import DataAnomalyError
from components.image_example_gen import spec
from pipeline import schema as schema_lib
from pipeline.config import config_from_dict
from pipeline.demo_data import write_demo_data
from pipeline.local_runner import run_local
from pipeline.run_summary import latest_run

pytestmark = pytest.mark.e2e

NODES = {
    "ImageExampleGen",
    "StatisticsGen",
    "ImportSchemaGen",
    "ExampleValidator",
    "AnomalyGate",
    "Transform",
}


def _config(root, data_root, schema_path):
    return config_from_dict(
        {
            "pipeline_name": "e2e",
            "pipeline_root": str(root / "runs"),
            "schema": str(schema_path),
            "data": {"root": str(data_root), "train_ratio": 0.5},
            "image": {"height": 16, "width": 16, "scaling": "unit"},
        }
    )


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    write_demo_data(str(root / "demo"), target_per_class=4)
    data_root = root / "demo" / "target"
    # A hostile touch: a corrupt file must be quarantined, not crash the run.
    (data_root / "5" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    schema_path = root / "schema.pbtxt"
    schema_lib.write_schema(
        schema_lib.build_schema(schema_lib.class_names_in(str(data_root))), str(schema_path)
    )
    config = _config(root, data_root, schema_path)
    run_local(config)
    return config, latest_run(config.metadata_file, config.pipeline_name)


def test_first_run_runs_every_component_and_counts_reconcile(first_run):
    config, summary = first_run
    assert set(summary.ran()) == NODES, summary.states
    counts = summary.ingest_counts
    assert counts[spec.COUNT_FILES_SEEN] == 21
    assert counts[spec.COUNT_INGESTED] == 20
    assert counts[spec.COUNT_QUARANTINED] == 1
    assert counts[spec.COUNT_IGNORED] == 0  # the demo data has no hidden files
    assert counts[spec.COUNT_FILES_SEEN] == (
        counts[spec.COUNT_INGESTED]
        + counts[spec.COUNT_QUARANTINED]
        + counts[spec.COUNT_DUPLICATES]
        + counts[spec.COUNT_IGNORED]
    )


def _latest_output(config, node, key):
    base = os.path.join(config.pipeline_dir, node, key)
    return os.path.join(base, max(os.listdir(base), key=int))


def test_transform_graph_resizes_raw_examples(first_run):
    config, _ = first_run
    tf_output = tft.TFTransformOutput(_latest_output(config, "Transform", "transform_graph"))
    examples_dir = _latest_output(config, "ImageExampleGen", "examples")
    files = tf.io.gfile.glob(os.path.join(examples_dir, "Split-train", "*.gz"))
    records = list(tf.data.TFRecordDataset(files, compression_type="GZIP").take(3))
    parsed = tf.io.parse_example(tf.stack(records), tf_output.raw_feature_spec())
    outputs = tf_output.transform_features_layer()(parsed)
    images = [v for v in outputs.values() if v.dtype == tf.float32 and v.shape.rank == 4]
    assert len(images) == 1 and images[0].shape[1:] == (16, 16, 3)
    assert 0.0 <= float(tf.reduce_min(images[0])) <= float(tf.reduce_max(images[0])) <= 1.0


def test_second_run_is_served_from_cache_and_a_new_file_reruns_ingestion(first_run, tmp_path):
    """On its own copy of the data, with its own pipeline root and metadata: the file it
    adds and the runs it makes never reach the module's data folder or run."""
    shared, _ = first_run
    data_root = tmp_path / "data"
    shutil.copytree(shared.data.root, data_root)
    config = _config(tmp_path, data_root, shared.schema)
    run_local(config)
    first = latest_run(config.metadata_file, config.pipeline_name)
    assert set(first.ran()) == NODES, first.states
    run_local(config)
    second = latest_run(config.metadata_file, config.pipeline_name)
    assert set(second.cached()) == NODES, second.states
    assert second.ran() == []

    pixels = np.arange(64, dtype=np.uint8).reshape(8, 8) * 3
    Image.fromarray(pixels, mode="L").save(data_root / "7" / "new.png")
    run_local(config)
    third = latest_run(config.metadata_file, config.pipeline_name)
    assert "ImageExampleGen" in third.ran(), third.states
    assert third.ingest_counts[spec.COUNT_INGESTED] == 21


def test_a_class_outside_the_schema_stops_the_run_before_transform(first_run, tmp_path):
    config, _ = first_run
    data_root = tmp_path / "data"
    shutil.copytree(config.data.root, data_root)
    shutil.copytree(data_root / "9", data_root / "unexpected")
    for name in os.listdir(data_root / "unexpected"):  # new content, not duplicates
        path = data_root / "unexpected" / name
        img = np.asarray(Image.open(path)) if name.endswith(".png") else None
        if img is not None and img.ndim == 2:
            Image.fromarray(255 - img).save(path)
    bad = _config(tmp_path, data_root, config.schema)
    message = r"feature 'label_name': Unexpected string values: .*unexpected"
    with pytest.raises(DataAnomalyError, match=message) as err:
        run_local(bad)
    assert "tfx-transfer schema" in str(err.value)
    states = latest_run(bad.metadata_file, bad.pipeline_name).states
    assert "Transform" not in states or states["Transform"] != "COMPLETE"
