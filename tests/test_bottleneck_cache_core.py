"""Tests of BottleneckCache's pure core: bases, transform fingerprint, handler, Beam job.

Correctness is checked against a direct TensorFlow computation on real Keras
Applications architectures (random weights); everything else uses a tiny CNN. The
helpers (images, transform graph, base models, running the job, reading its output)
are shared with the other bottleneck cache tests: components.common.testing and the
fixtures of conftest.py.
"""

import datetime
import json
import os
import threading

import keras
import numpy as np
import pytest
import tensorflow as tf
from apache_beam.io.filesystems import FileSystems

from components.bottleneck_cache import base_file, cache, handler, spec, store
from components.bottleneck_cache import plan as plan_lib
from components.common import artifact_io, testing
from components.common import examples as contract
from components.common import model_surgery as surgery
from components.common import preprocessing as pp
from components.common import transform_graph as transform_lib
from components.common.examples import (
    IMAGE_ID_KEY,
    IMAGE_KEY,
    LABEL_KEY,
    LABEL_NAME_KEY,
    SPLITS,
)
from components.common.testing import (
    direct_vectors,
    make_image,
    read_output,
    read_vectors,
    save_base,
    tiny_cnn,
    write_examples,
)

SIZE = testing.TINY_SIZE
IMAGE_SPEC = testing.TINY_SPEC


def he_initialize(model: keras.Model, seed: int) -> keras.Model:
    """Re-draws every kernel with He-normal scale, so deep activations stay O(1).

    Keras' default (Glorot) kernels with inference-mode BatchNormalization make the
    activations of a deep random network shrink towards 0, where any comparison
    would pass; with He scaling they keep a magnitude worth comparing.
    """
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        kernel = getattr(layer, "kernel", None)
        if kernel is None:
            continue
        shape = tuple(kernel.shape)
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            fan_in = shape[0] * shape[1]
        else:
            fan_in = int(np.prod(shape[:-1]))
        kernel.assign(rng.normal(0.0, np.sqrt(2.0 / fan_in), shape).astype(np.float32))
    return model


@pytest.fixture(scope="module")
def scaled_transforms(tmp_path_factory, transform_dir, write_transform):
    """scaling -> (ImageSpec, transform dir), exported on first use."""
    exported = {IMAGE_SPEC.scaling: (IMAGE_SPEC, transform_dir)}

    def get(scaling: str):
        if scaling not in exported:
            image_spec = pp.ImageSpec(height=SIZE, width=SIZE, scaling=scaling)
            directory = tmp_path_factory.mktemp(f"transform_{scaling}")
            exported[scaling] = (image_spec, write_transform(directory, image_spec))
        return exported[scaling]

    return get


# --- (a) correctness on real architectures ----------------------------------------------
# Each with its own Keras Applications scaling, a cut in the middle and a pooling.
ARCHITECTURES = [
    pytest.param(
        keras.applications.MobileNetV2,
        "symmetric",
        {"cut_layer": "block_6_expand_relu"},
        "avg",
        id="mobilenetv2",
    ),
    pytest.param(
        keras.applications.EfficientNetB0,
        "raw",
        {"cut_layer": "block3b_add"},
        "max",
        id="efficientnetb0",
    ),
    pytest.param(
        keras.applications.ResNet50, "caffe", {"drop_top_layers": 45}, "none", id="resnet50"
    ),
]


@pytest.mark.parametrize("architecture, scaling, cut, pooling", ARCHITECTURES)
def test_cached_vectors_equal_direct_computation(
    tmp_path,
    scaled_transforms,
    split_images,
    run_job,
    assert_close,
    architecture,
    scaling,
    cut,
    pooling,
):
    image_spec, transform_dir = scaled_transforms(scaling)
    keras.utils.set_random_seed(1)
    model = he_initialize(architecture(weights=None, input_shape=(SIZE, SIZE, 3)), seed=1)
    base_dir = save_base(model, tmp_path / "base")
    images = [make_image(i) for i in range(7)]
    examples = write_examples(tmp_path / "examples", split_images(images))
    plan, counts = run_job(
        examples,
        base_dir,
        transform_dir,
        tmp_path / "cache",
        tmp_path / "out",
        pooling=pooling,
        batch_size=3,
        **cut,
    )

    layer = cut.get("cut_layer") or model.layers[-1 - cut["drop_top_layers"]].name
    assert plan.cut_layer == layer
    expected = direct_vectors(model, layer, pooling, images, image_spec)
    scale = np.abs(expected).max()
    assert scale > 0.01, scale  # magnitudes worth comparing at 1e-5
    assert len({row.tobytes() for row in (expected / scale).round(3)}) == len(images)
    native = model.get_layer(layer).output.shape[1:]
    assert plan.shape == (tuple(native) if pooling == "none" else (native[-1],))
    assert counts[spec.PROP_COMPUTED] == len(images) and counts[spec.PROP_FAILED] == 0
    vectors = read_vectors(tmp_path / "out")
    assert len(vectors) == len(images)
    for i, image in enumerate(images):
        got = vectors[artifact_io.content_id(image)]
        assert got.shape == (plan.dim,)
        assert_close(got, expected[i])


def test_output_records_keep_every_input_feature(
    tmp_path, transform_dir, tiny_base, split_images, run_job
):
    images = [make_image(i) for i in range(4)]
    examples = write_examples(tmp_path / "examples", split_images(images))
    plan, counts = run_job(
        examples,
        tiny_base,
        transform_dir,
        tmp_path / "cache",
        tmp_path / "out",
        cut_layer="relu1",
        pooling="none",
    )
    assert plan.shape == (30, 30, 4) and plan.pooling == "none" and plan.dim == 3600
    inputs = {artifact_io.content_id(image): i for i, image in enumerate(images)}
    for split, records in split_images(images).items():
        outputs = read_output(tmp_path / "out", split)
        assert counts[cache.split_count_name(split)] == len(outputs) == len(records)
        for feature in outputs:
            image_id = feature[IMAGE_ID_KEY].bytes_list.value[0].decode()
            index = inputs[image_id]
            assert feature[IMAGE_KEY].bytes_list.value == [images[index]]
            assert feature[LABEL_KEY].int64_list.value == [index % 2]
            assert feature[LABEL_NAME_KEY].bytes_list.value == [b"class%d" % (index % 2)]
            assert len(feature[contract.BOTTLENECK_KEY].float_list.value) == 3600
    spatial = direct_vectors(tiny_cnn(), "relu1", "none", images[:1])[0]
    np.testing.assert_allclose(
        read_vectors(tmp_path / "out")[artifact_io.content_id(images[0])], spatial, atol=1e-5
    )


# --- (e) corrupt records ------------------------------------------------------------------
def test_corrupt_records_are_counted_and_written_not_fatal(
    tmp_path, transform_dir, tiny_base, make_record, run_job
):
    good = [make_image(i) for i in range(5)]
    not_image = make_record(b"this is not an image", label=1)
    truncated_png = make_record(make_image(0, seed=9)[:40])
    no_image = tf.train.Example().SerializeToString()
    not_example = b"\xff\xff\xff\xff not a protocol buffer"
    records = [make_record(image) for image in good]
    splits = {
        SPLITS[0]: [records[0], not_image, records[1], truncated_png, records[2]],
        SPLITS[1]: [records[3], not_example, records[4], no_image, records[0]],  # a copy
    }
    examples = write_examples(tmp_path / "examples", splits)
    _, counts = run_job(
        examples,
        tiny_base,
        transform_dir,
        tmp_path / "cache",
        tmp_path / "out",
        cut_layer="conv2",
        batch_size=8,
    )
    assert counts[spec.PROP_FAILED] == 4
    assert counts[spec.PROP_COMPUTED] == 5  # the copy of records[0] is computed once
    assert counts[cache.split_count_name(SPLITS[0])] == 3
    assert counts[cache.split_count_name(SPLITS[1])] == 3
    vectors = read_vectors(tmp_path / "out")
    expected = direct_vectors(tiny_cnn(), "conv2", "avg", good)
    for i, image in enumerate(good):
        np.testing.assert_allclose(vectors[artifact_io.content_id(image)], expected[i], atol=1e-5)

    failures = cache.read_failures(str(tmp_path / "out"))
    by_id = {(f["split"], f["image_id"]): f["error"] for f in failures}
    assert len(failures) == 4
    not_image_id = artifact_io.content_id(b"this is not an image")
    assert "Unknown image file format" in by_id[(SPLITS[0], not_image_id)]
    assert "PNG" in by_id[(SPLITS[0], artifact_io.content_id(make_image(0, seed=9)[:40]))]
    errors = sorted(f["error"] for f in failures if f["split"] == SPLITS[1])
    assert any("not a tf.Example" in e for e in errors)
    assert any("no single non-empty 'image'" in e for e in errors)
    with open(tmp_path / "out" / spec.FAILED_FILE) as f:
        assert [json.loads(line) for line in f] == failures

    # Failures are not cached: a rerun fails them again and reuses the good vectors.
    _, again = run_job(
        examples,
        tiny_base,
        transform_dir,
        tmp_path / "cache",
        tmp_path / "out2",
        cut_layer="conv2",
        batch_size=8,
    )
    assert (again[spec.PROP_COMPUTED], again[spec.PROP_REUSED], again[spec.PROP_FAILED]) == (
        0,
        5,
        4,
    )


def test_handler_falls_back_to_one_by_one_on_a_bad_batch(transform_dir, tiny_base):
    plan = plan_lib.make_plan(tiny_base, transform_dir, cut_layer="relu1")
    model_handler = handler.BottleneckModelHandler(plan, batch_size=3)
    assert model_handler.batch_elements_kwargs() == {"min_batch_size": 3, "max_batch_size": 3}
    extractor = model_handler.load_model()
    assert not extractor.loaded  # loaded on the first batch, not before
    batch = [("a", make_image(1), 1), ("b", b"garbage", 2), ("c", make_image(2), 3)]
    results = list(model_handler.run_inference(batch, extractor))
    assert extractor.loaded
    assert [r.example for r in results] == batch
    assert isinstance(results[1].inference, handler.InferenceFailure)
    assert "Unknown image file format" in results[1].inference.error
    expected = direct_vectors(tiny_cnn(), "relu1", "avg", [make_image(1), make_image(2)])
    np.testing.assert_allclose(results[0].inference, expected[0], atol=1e-5)
    np.testing.assert_allclose(results[2].inference, expected[1], atol=1e-5)
    whole = list(model_handler.run_inference(batch[::2], extractor))
    np.testing.assert_allclose(whole[1].inference, results[2].inference, atol=1e-6)


# --- (f) cut resolution and argument errors ----------------------------------------------
def test_unknown_cut_layer_lists_the_valid_names(transform_dir, tiny_base):
    with pytest.raises(ValueError, match=r"cut_layer 'conv9' is not a layer .*relu1, conv2"):
        plan_lib.make_plan(tiny_base, transform_dir, cut_layer="conv9")


def test_drop_top_layers_resolves_and_checks_its_range(transform_dir, tiny_base):
    """The cache resolves and cuts through model_surgery, exactly as the Trainer does."""
    model = tiny_cnn()  # image, conv1, bn1, relu1, conv2, gap, logits
    assert surgery.resolve_cut_layer(model, drop_top_layers=0) == "logits"
    assert surgery.resolve_cut_layer(model, drop_top_layers=2) == "conv2"
    assert surgery.resolve_cut_layer(model, drop_top_layers=5) == "conv1"
    for bad in (6, -1, 99, True):
        with pytest.raises(ValueError, match=r"drop_top_layers=.* out of range .*'tiny'.*<= 5"):
            surgery.resolve_cut_layer(model, drop_top_layers=bad)
    with pytest.raises(ValueError, match=r"drop_top_layers=6 is out of range .* <= 5"):
        plan_lib.make_plan(tiny_base, transform_dir, drop_top_layers=6)
    with pytest.raises(ValueError, match="set cut_layer or drop_top_layers, not both"):
        surgery.resolve_cut_layer(model, "conv1", 2)
    plan = plan_lib.make_plan(tiny_base, transform_dir, drop_top_layers=1)
    assert (plan.cut_layer, plan.pooling, plan.shape) == ("gap", "none", (6,))
    extractor = surgery.freeze_extractor(surgery.cut_base(model, "relu1"), "max")
    assert not extractor.trainable and not extractor.trainable_weights
    assert extractor.output_shape == (None, 4)
    assert model.get_layer("conv1").trainable is False  # shared layers: the cut is frozen
    # The Trainer's extractor of the same cut computes the same vectors.
    trainer_side = surgery.feature_extractor(model, drop_top_layers=3, pooling="max")
    x = np.random.default_rng(0).random((2, SIZE, SIZE, 3), dtype=np.float32)
    np.testing.assert_allclose(extractor(x), trainer_side(x), atol=1e-6)


def test_missing_base_model_names_what_was_looked_for(tmp_path, transform_dir):
    empty = tmp_path / "empty_model_dir"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match=f"looked for {empty}/model.keras"):
        base_file.load_base(str(empty))
    with pytest.raises(FileNotFoundError, match=f"no Keras model at {tmp_path}/nowhere"):
        plan_lib.make_plan(str(tmp_path / "nowhere"), transform_dir)


def test_base_input_must_match_the_transform_output(tmp_path, transform_dir):
    inputs = keras.Input((16, 16, 3))
    small = keras.Model(inputs, keras.layers.Conv2D(2, 3, name="c")(inputs), name="small")
    base = save_base(small, tmp_path / "small")
    with pytest.raises(ValueError, match=r"'small' takes 16x16 images but the transform .* 32x32"):
        plan_lib.make_plan(base, transform_dir)


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"cache_dir": " "}, "cache_dir must be a non-empty folder path"),
        ({"cut_layer": None}, "cut_layer must be a layer name"),
        ({"drop_top_layers": -1}, "drop_top_layers must be an integer >= 0"),
        ({"drop_top_layers": True}, "drop_top_layers must be an integer >= 0"),
        ({"cut_layer": "a", "drop_top_layers": 1}, "set cut_layer or drop_top_layers, not both"),
        (
            {"pooling": "mean"},
            r"pooling: '(mean|average)' is not allowed; choose one of: avg, max, flatten, none",
        ),
        ({"batch_size": 0}, "batch_size must be an integer >= 1"),
    ],
)
def test_validate_parameters_names_argument_and_allowed_values(arguments, message):
    values = {
        "cut_layer": "",
        "drop_top_layers": 0,
        "pooling": "avg",
        "batch_size": 8,
        "cache_dir": "/tmp/cache",
        **arguments,
    }
    with pytest.raises(ValueError, match=message):
        plan_lib.validate_parameters(**values)


# --- fingerprints --------------------------------------------------------------------------
def test_base_fingerprint_follows_weights_and_cut_not_saving(tmp_path):
    model = tiny_cnn()
    first = base_file.fingerprint(surgery.cut_base(model, "relu1"))
    assert len(first) == 64
    reloaded = base_file.load_base(save_base(model, tmp_path / "a"))
    assert base_file.fingerprint(surgery.cut_base(reloaded, "relu1")) == first
    resaved = base_file.load_base(save_base(reloaded, tmp_path / "b"))
    frozen = surgery.cut_base(resaved, "relu1")
    surgery.freeze_extractor(frozen, "avg")  # sets trainable=False on its layers
    assert base_file.fingerprint(frozen) == first
    assert base_file.fingerprint(surgery.cut_base(model, "conv2")) != first
    # Weights of layers above the cut do not matter; those below do.
    model.get_layer("logits").kernel.assign(np.zeros((6, 3), np.float32))
    assert base_file.fingerprint(surgery.cut_base(model, "relu1")) == first
    kernel = model.get_layer("conv1").kernel
    kernel.assign(kernel.numpy() + 1e-6)
    assert base_file.fingerprint(surgery.cut_base(model, "relu1")) != first


def test_transform_fingerprint_is_behavioural(tmp_path, transform_dir, write_transform):
    same_fp, probes = transform_lib.transform_fingerprint(
        transform_lib.load_image_transform(transform_dir)
    )
    assert probes.shape == (6, SIZE, SIZE, 3)
    np.testing.assert_allclose(
        probes, IMAGE_SPEC.preprocess(tf.constant(transform_lib.probe_images())), atol=1e-6
    )
    # Another export of the same preprocessing (scalar raw features: another graph).
    other_export = write_transform(tmp_path / "scalar", scalar=True)
    with open(os.path.join(other_export, "transform_fn", "saved_model.pb"), "rb") as f:
        other_bytes = f.read()
    with open(os.path.join(transform_dir, "transform_fn", "saved_model.pb"), "rb") as f:
        assert f.read() != other_bytes
    fp, _ = transform_lib.transform_fingerprint(transform_lib.load_image_transform(other_export))
    assert fp == same_fp
    assert transform_lib.probe_images() == transform_lib.probe_images()


def test_shard_reader_rejects_truncated_and_foreign_files(tmp_path):
    good = tmp_path / "entries-good-00000-of-00001.tfrecord.gz"
    with tf.io.TFRecordWriter(str(good), "GZIP") as writer:
        for i in range(50):
            writer.write(store.encode_entry(f"id{i}", np.arange(6, dtype=np.float32) + i))
    entries = store.read_shard(str(good), 6)
    assert [e[0] for e in entries] == [f"id{i}" for i in range(50)]
    np.testing.assert_array_equal(entries[7][1], np.arange(6) + 7)
    data = good.read_bytes()
    truncated = tmp_path / "entries-cut-00000-of-00001.tfrecord.gz"
    for end in range(0, len(data), 7):  # TF's reader takes some of these for whole files
        truncated.write_bytes(data[:end])
        with pytest.raises(ValueError, match="gzip"):
            store.read_shard(str(truncated), 6)
    with pytest.raises(ValueError, match="6 floats"):
        store.read_shard(str(good), 5)
    garbage = tmp_path / "entries-garbage-00000-of-00001.tfrecord.gz"
    garbage.write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(ValueError, match="not a valid gzip stream"):
        store.read_shard(str(garbage), 6)


def _write_shard(path, count: int = 5) -> bytes:
    """A complete shard of `count` 6-float entries; returns its bytes."""
    with tf.io.TFRecordWriter(str(path), "GZIP") as writer:
        for i in range(count):
            writer.write(store.encode_entry(f"id{i}", np.arange(6, dtype=np.float32) + i))
    return path.read_bytes()


def _rejection(path) -> str:
    with pytest.raises(ValueError) as raised:
        store.read_shard(str(path), 6)
    return str(raised.value)


def test_unreadable_shards_are_quarantined_with_their_reason_and_readable_ones_never(
    tmp_path, monkeypatch
):
    namespace = tmp_path / "ns"
    namespace.mkdir()
    quarantine = namespace / store.QUARANTINE_DIR
    good = namespace / "entries-good-00000-of-00001.tfrecord.gz"
    data = _write_shard(good)
    torn = namespace / "entries-torn-00000-of-00001.tfrecord.gz"
    torn.write_bytes(data[: len(data) // 2])
    error = _rejection(torn)

    moved = store.quarantine_shard(str(torn), 6, error)
    assert moved == str(quarantine / torn.name)
    assert not torn.exists()
    assert (quarantine / torn.name).read_bytes() == data[: len(data) // 2]  # the evidence
    reason = json.loads((quarantine / f"{torn.name}{store.REASON_SUFFIX}").read_text())
    assert reason["shard"] == str(torn)
    assert reason["error"] == error and "truncated gzip stream" in error
    assert datetime.datetime.fromisoformat(reason["time"]).tzinfo is not None
    assert sorted(os.listdir(quarantine)) == [torn.name, f"{torn.name}{store.REASON_SUFFIX}"]
    assert tf.io.gfile.glob(store.shard_pattern(str(namespace))) == [str(good)]
    assert store.clean_stale_staging(str(namespace), stale_after_s=0) == []
    assert quarantine.is_dir()

    # Gone already (another run, or an earlier attempt of the bundle, moved it): fine.
    assert store.quarantine_shard(str(torn), 6, error) is None
    # A complete shard is never moved, whatever error a first read reported...
    assert store.quarantine_shard(str(good), 6, "a read that failed once") is None
    # ...nor one that cannot be opened on the second look (not proven bad).
    garbage = namespace / "entries-garbage-00000-of-00001.tfrecord.gz"
    garbage.write_bytes(b"not a gzip file at all")
    error = _rejection(garbage)

    def unavailable(path, dim):
        raise tf.errors.UnavailableError(None, None, "the bucket is unreachable")

    with monkeypatch.context() as patch:
        patch.setattr(store, "read_shard", unavailable)
        assert store.quarantine_shard(str(garbage), 6, error) is None
    assert good.read_bytes() == data and garbage.exists()

    # A shard of a name already in quarantine gets its own name; the earlier evidence stays.
    torn.write_bytes(b"torn again")
    again = store.quarantine_shard(str(torn), 6, _rejection(torn))
    assert again is not None and os.path.dirname(again) == str(quarantine)
    assert again != moved and again.endswith(store.SHARD_SUFFIX)
    assert (quarantine / torn.name).read_bytes() == data[: len(data) // 2]
    assert open(again, "rb").read() == b"torn again"
    assert os.path.exists(again + store.REASON_SUFFIX)
    assert sorted(tf.io.gfile.glob(store.shard_pattern(str(namespace)))) == sorted(
        [str(good), str(garbage)]
    )


def test_runs_that_find_the_same_corrupt_shard_move_it_once(tmp_path, monkeypatch):
    namespace = tmp_path / "ns"
    namespace.mkdir()
    quarantine = namespace / store.QUARANTINE_DIR
    data = _write_shard(tmp_path / "whole.tfrecord.gz")

    # Overtaken between its second look and its move: the other run's move wins.
    torn = namespace / "entries-torn-00000-of-00001.tfrecord.gz"
    torn.write_bytes(data[:-9])
    read_shard, winners = store.read_shard, []

    def overtaken(path, dim):
        monkeypatch.setattr(store, "read_shard", read_shard)
        try:
            return read_shard(path, dim)
        finally:
            winners.append(store.quarantine_shard(path, dim, "the other run's error"))

    monkeypatch.setattr(store, "read_shard", overtaken)
    assert store.quarantine_shard(str(torn), 6, "this run's error") is None
    assert winners == [str(quarantine / torn.name)]
    assert sorted(os.listdir(quarantine)) == [torn.name, f"{torn.name}{store.REASON_SUFFIX}"]
    reason = json.loads((quarantine / f"{torn.name}{store.REASON_SUFFIX}").read_text())
    assert reason["error"] == "the other run's error"

    # Truly at once: threads released together on shards of their own, one move each.
    names = [f"entries-race{i}-00000-of-00001.tfrecord.gz" for i in range(6)]
    for name in names:
        (namespace / name).write_bytes(data[: len(data) // 3])
    racers = 4
    barrier = threading.Barrier(racers)
    results, errors = [[] for _ in range(racers)], []

    def race(results_of_one):
        try:
            for name in names:
                barrier.wait()
                results_of_one.append(store.quarantine_shard(str(namespace / name), 6, "race"))
        except Exception as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=race, args=(r,)) for r in results]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    for i, name in enumerate(names):
        moved = [r[i] for r in results if r[i] is not None]
        assert moved == [str(quarantine / name)], (name, moved)
        assert not (namespace / name).exists()
    expected = {torn.name, *names}
    assert sorted(os.listdir(quarantine)) == sorted(
        [*expected, *(f"{name}{store.REASON_SUFFIX}" for name in expected)]
    )
    assert tf.io.gfile.glob(store.shard_pattern(str(namespace))) == []


def test_only_complete_shards_match_the_glob(tmp_path):
    namespace = tmp_path / "ns"
    temp_dir = namespace / "beam-temp-entries-run1-0123abcd"
    temp_dir.mkdir(parents=True)
    for path in (
        temp_dir / "5f1e.entries-run1.tfrecord.gz",  # what Beam writes before finalize
        namespace / "namespace.json",
        namespace / ".namespace.json.abc.tmp",
        namespace / "entries-run1-00000-of-00001.tfrecord.gz",
    ):
        path.write_bytes(b"")
    complete = [str(namespace / "entries-run1-00000-of-00001.tfrecord.gz")]
    pattern = store.shard_pattern(str(namespace))
    assert tf.io.gfile.glob(pattern) == complete
    (matched,) = FileSystems.match([pattern])  # what ReadCacheEntries's MatchFiles uses
    assert [metadata.path for metadata in matched.metadata_list] == complete
    quarantined = namespace / store.QUARANTINE_DIR / "entries-run0-00000-of-00001.tfrecord.gz"
    quarantined.parent.mkdir()
    quarantined.write_bytes(b"")
    assert store.quarantine_dir(str(namespace)) == str(quarantined.parent)
    assert tf.io.gfile.glob(pattern) == complete
    (matched,) = FileSystems.match([pattern])
    assert [metadata.path for metadata in matched.metadata_list] == complete
    final = store.final_shard_path(str(namespace), "run2", "0a1b")
    assert final == str(namespace / "entries-run2-0a1b.tfrecord.gz")


def test_error_text_keeps_the_line_that_says_what_went_wrong():
    wrapped = (
        "Graph execution error:\n\nDetected at node map/while/DecodeImage defined at (most "
        "recent call last):\n<stack traces unavailable>\nInvalid PNG. Failed to initialize "
        "decoder.\n\t [[{{node map/while/DecodeImage}}]] [Op:__inference__compute_960]"
    )
    error = tf.errors.InvalidArgumentError(None, None, wrapped)
    assert handler.error_text(error) == "Invalid PNG. Failed to initialize decoder."
    eager = "{{function_node __inference_f_1}} Unknown image file format.\n\t [[{{node x}}]]"
    assert handler.error_text(tf.errors.InvalidArgumentError(None, None, eager)) == (
        "Unknown image file format."
    )
