"""Tests of ImageExampleGen's executor, driver and component on artifacts under tmp_path."""

import json
import os
import shutil

import pytest
import tensorflow as tf
from tfx.orchestration.portable import data_types as portable_data_types
from tfx.types import artifact_utils, standard_artifacts

from components.common import artifact_io, artifacts
from components.common import examples as contract
from components.common.testing import build_hostile_root, encode
from components.image_example_gen import component, driver, ingest, spec


def read_split(examples, split):
    """(files, parsed examples) of one split, read like downstream components do."""
    pattern = os.path.join(artifact_utils.get_split_uri([examples], split), "data_tfrecord-*.gz")
    files = tf.io.gfile.glob(pattern)
    dataset = tf.data.TFRecordDataset(files, compression_type="GZIP")
    return files, [tf.train.Example.FromString(r.numpy()).features.feature for r in dataset]


def read_json_lines(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def test_executor_on_hostile_folder(tmp_path, run_image_example_gen):
    root, expected = build_hostile_root(tmp_path)
    examples, vocabulary, report = run_image_example_gen(tmp_path, root)

    assert artifact_utils.decode_split_names(examples.split_names) == list(contract.SPLITS)
    seen_paths = {}
    for split in contract.SPLITS:
        files, parsed = read_split(examples, split)
        assert files, f"no TFRecord file in split {split}"
        assert examples.get_int_custom_property(ingest.split_count_name(split)) == len(parsed)
        for feature in parsed:
            path = feature[contract.SOURCE_PATH_KEY].bytes_list.value[0].decode("utf-8")
            data = feature[contract.IMAGE_KEY].bytes_list.value[0]
            image = tf.io.decode_image(data, channels=3, expand_animations=False)
            assert image.shape == (7, 5, 3), path
            label_name = feature[contract.LABEL_NAME_KEY].bytes_list.value[0].decode("utf-8")
            label = feature[contract.LABEL_KEY].int64_list.value[0]
            assert expected["classes"][label] == label_name == path.split("/")[0]
            seen_paths[path] = feature[contract.IMAGE_ID_KEY].bytes_list.value[0].decode()
    assert sorted(seen_paths) == sorted(expected["valid"])
    for path, image_id in seen_paths.items():
        assert image_id == artifact_io.content_id(expected["valid"][path])

    counts = {
        spec.COUNT_FILES_SEEN: 36,
        spec.COUNT_INGESTED: 14,
        spec.COUNT_QUARANTINED: 12,
        spec.COUNT_DUPLICATES: 2,
        spec.COUNT_IGNORED: 8,  # OS junk and hidden folders, see build_hostile_root
        spec.COUNT_TRANSCODED: 1,
        spec.COUNT_DOWNSCALED: 0,
    }
    for name, value in counts.items():
        assert examples.get_int_custom_property(name) == value, name
        assert report.get_int_custom_property(name) == value, name
    with open(os.path.join(report.uri, artifacts.COUNTS_FILE)) as f:
        written = json.load(f)
    assert {name: written[name] for name in counts} == counts
    assert len(expected["ignored"]) == counts[spec.COUNT_IGNORED]

    with open(os.path.join(vocabulary.uri, artifacts.VOCABULARY_FILE), encoding="utf-8") as f:
        assert f.read().splitlines() == expected["classes"]
    with open(os.path.join(vocabulary.uri, artifacts.CLASS_COUNTS_FILE), encoding="utf-8") as f:
        class_counts = json.load(f)
    assert sorted(class_counts) == expected["classes"]
    assert class_counts["empty_class"] == {contract.TRAIN_SPLIT: 0, contract.EVAL_SPLIT: 0}
    assert sum(class_counts["cats"].values()) == 12

    quarantine = read_json_lines(os.path.join(report.uri, artifacts.QUARANTINE_FILE))
    assert [r["path"] for r in quarantine] == sorted(expected["quarantined"])
    for record in quarantine:
        assert expected["quarantined"][record["path"]] in record["reason"]
    duplicates = read_json_lines(os.path.join(report.uri, artifacts.DUPLICATES_FILE))
    assert {r["path"]: r["kept"] for r in duplicates} == expected["duplicates"]


def test_executor_writes_both_splits_even_when_one_is_empty(tmp_path, run_image_example_gen):
    root = tmp_path / "one"
    (root / "cats").mkdir(parents=True)
    (root / "cats" / "only.png").write_bytes(encode("RGB", (1, 2, 3), "PNG"))
    examples, _, report = run_image_example_gen(tmp_path, root, **{spec.LABELLED_KEY: 0})
    sizes = {}
    for split in contract.SPLITS:
        files, parsed = read_split(examples, split)
        assert len(files) == 1
        sizes[split] = len(parsed)
        for feature in parsed:
            assert feature[contract.LABEL_KEY].int64_list.value == [contract.UNLABELLED]
    assert sorted(sizes.values()) == [0, 1]
    assert os.path.getsize(os.path.join(report.uri, artifacts.QUARANTINE_FILE)) == 0
    assert os.path.getsize(os.path.join(report.uri, artifacts.DUPLICATES_FILE)) == 0


def test_executor_raises_when_nothing_is_ingested(tmp_path, run_image_example_gen):
    root = tmp_path / "bad"
    (root / "cats").mkdir(parents=True)
    (root / "cats" / "note.png").write_text("not an image")
    (root / "stray.jpg").write_bytes(b"")
    with pytest.raises(ValueError, match="no image was ingested") as error:
        run_image_example_gen(tmp_path, root)
    message = str(error.value)
    assert "2 files seen, 0 ingested" in message
    assert "cats/note.png: not an image Pillow can identify" in message
    assert "stray.jpg: not inside a class folder" in message


def test_executor_raises_on_missing_input_root(tmp_path, run_image_example_gen):
    missing = tmp_path / "missing"
    with pytest.raises(ValueError, match=f"input_base {missing} does not exist; point data.root"):
        run_image_example_gen(tmp_path, missing)


# --- driver ----------------------------------------------------------------------------


def fingerprint_from_driver(input_base) -> str:
    exec_properties = {spec.INPUT_BASE_KEY: str(input_base), spec.TRAIN_RATIO_KEY: 0.8}
    info = portable_data_types.ExecutionInfo(exec_properties=exec_properties)
    output = driver.Driver(None).run(info)
    properties = output.exec_properties
    assert properties[spec.INPUT_BASE_KEY].string_value == str(input_base)
    assert properties[spec.TRAIN_RATIO_KEY].double_value == 0.8
    assert not output.output_artifacts
    legacy = driver.Driver(None).resolve_exec_properties(dict(exec_properties), None, None)
    assert legacy[spec.INPUT_FINGERPRINT_KEY] == properties[spec.INPUT_FINGERPRINT_KEY].string_value
    return properties[spec.INPUT_FINGERPRINT_KEY].string_value


def test_driver_fingerprint_follows_file_changes(tmp_path):
    root = tmp_path / "root"
    (root / "cats").mkdir(parents=True)
    image = root / "cats" / "a.png"
    image.write_bytes(encode("RGB", (1, 2, 3), "PNG"))
    first = fingerprint_from_driver(root)
    assert len(first) == 64
    assert fingerprint_from_driver(root) == first  # nothing changed

    (root / "cats" / "b.png").write_bytes(encode("RGB", (3, 2, 1), "PNG"))
    added = fingerprint_from_driver(root)
    assert added != first

    stat = image.stat()
    image.write_bytes(encode("RGB", (9, 9, 9), "PNG"))  # same size: mtime tells
    os.utime(image, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    modified = fingerprint_from_driver(root)
    assert modified not in (first, added)

    copy = tmp_path / "copy"
    shutil.copytree(root, copy, copy_function=shutil.copy2)  # same names, sizes, mtimes
    assert fingerprint_from_driver(copy) == modified


def test_driver_rejects_missing_root(tmp_path):
    with pytest.raises(ValueError, match="does not exist; point data.root"):
        fingerprint_from_driver(tmp_path / "missing")


# --- component -------------------------------------------------------------------------


def test_component_declares_outputs_and_properties(tmp_path):
    gen = component.ImageExampleGen(str(tmp_path), train_ratio=0.7, max_side=64, labelled=False)
    assert gen.driver_class is driver.Driver
    assert gen.outputs[spec.EXAMPLES_KEY].type is standard_artifacts.Examples
    assert gen.outputs[spec.VOCABULARY_KEY].type is artifacts.ClassVocabulary
    assert gen.outputs[spec.REPORT_KEY].type is artifacts.IngestReport
    assert gen.exec_properties[spec.TRAIN_RATIO_KEY] == 0.7
    assert gen.exec_properties[spec.MAX_PIXELS_KEY] == 50_000_000
    assert gen.exec_properties[spec.MAX_SIDE_KEY] == 64
    assert gen.exec_properties[spec.LABELLED_KEY] == 0


@pytest.mark.parametrize(
    ("argument", "value", "message"),
    [
        ("train_ratio", 1.0, r"train_ratio must be a number in \(0, 1\)"),
        ("train_ratio", 0, r"train_ratio must be a number in \(0, 1\)"),
        ("max_pixels", 0, "max_pixels must be an integer >= 1"),
        ("max_side", -1, "max_side must be an integer >= 0"),
        ("labelled", "yes", "labelled must be True or False"),
        ("input_base", " ", "input_base must be a folder path"),
    ],
)
def test_component_rejects_bad_arguments(tmp_path, argument, value, message):
    arguments = {"input_base": str(tmp_path), argument: value}
    with pytest.raises(ValueError, match=message):
        component.ImageExampleGen(**arguments)


@pytest.mark.e2e
def test_tfx_cache_reruns_only_when_the_folder_changes(tmp_path):
    """LocalDagRunner: same folder -> cached execution; an added file -> a new run."""
    from ml_metadata.proto import metadata_store_pb2
    from tfx.orchestration import metadata
    from tfx.orchestration import pipeline as tfx_pipeline
    from tfx.orchestration.local.local_dag_runner import LocalDagRunner

    root = tmp_path / "data"
    (root / "cats").mkdir(parents=True)
    (root / "cats" / "a.png").write_bytes(encode("RGB", (1, 2, 3), "PNG"))
    connection = metadata.sqlite_metadata_connection_config(str(tmp_path / "mlmd.sqlite"))

    def run_and_list_states():
        pipeline = tfx_pipeline.Pipeline(
            pipeline_name="image_example_gen_cache",
            pipeline_root=str(tmp_path / "pipeline_root"),
            components=[component.ImageExampleGen(str(root))],
            enable_cache=True,
            metadata_connection_config=connection,
        )
        LocalDagRunner().run(pipeline)
        with metadata.Metadata(connection) as m:
            executions = sorted(m.store.get_executions(), key=lambda e: e.id)
        return [e.last_known_state for e in executions]

    complete, cached = metadata_store_pb2.Execution.COMPLETE, metadata_store_pb2.Execution.CACHED
    assert run_and_list_states() == [complete]
    assert run_and_list_states() == [complete, cached]
    (root / "cats" / "b.png").write_bytes(encode("RGB", (3, 2, 1), "PNG"))
    assert run_and_list_states() == [complete, cached, complete]
