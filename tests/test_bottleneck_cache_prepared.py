"""Tests of what a fresh process reuses (components/bottleneck_cache/prepared.py): the
stored plan and the exported, pre-traced extractor.

A "fresh process" is simulated by emptying the process memos (plan and extractor);
a later make_plan must then load nothing, a worker with images to compute must load
the exported extractor instead of the Keras model, its vectors must equal the Keras
path's, and a missing, corrupt or foreign export must fall back to the Keras model.
"""

import dataclasses
import json
import os

import apache_beam as beam
import numpy as np
import pytest
import tensorflow as tf

from components.bottleneck_cache import base_file, cache, handler, prepared, spec
from components.bottleneck_cache import extractor as extractor_lib
from components.bottleneck_cache import plan as plan_lib
from components.common import testing
from components.common.testing import make_image, read_vectors, save_base, tiny_cnn, write_examples


def fresh_process() -> None:
    """Forgets every plan and extractor this process made (as a new process would)."""
    plan_lib.forget_plans()
    extractor_lib.forget_all()


@pytest.fixture
def loads(monkeypatch):
    """The Keras model loads (base_file.load_bytes calls) made during the test."""
    made = []
    load_bytes = base_file.load_bytes
    monkeypatch.setattr(base_file, "load_bytes", lambda data: made.append(1) or load_bytes(data))
    return made


def run(examples, base, transform_dir, cache_dir, out_dir, cut_layer="relu1"):
    """make_plan with the cache dir (as the executor calls it) + the Beam job."""
    plan = plan_lib.make_plan(str(base), str(transform_dir), cut_layer, cache_dir=str(cache_dir))
    counts = cache.run_bottlenecks(
        beam.Pipeline, testing.split_patterns(examples), plan, str(cache_dir), str(out_dir), 4
    )
    return plan, (counts[spec.PROP_COMPUTED], counts[spec.PROP_REUSED])


def test_a_fresh_process_reuses_the_stored_plan_and_the_exported_extractor(
    tmp_path, transform_dir, split_images, loads
):
    base = save_base(tiny_cnn(seed=11), tmp_path / "base")  # loaded by no other test
    images = [make_image(i, seed=21) for i in range(8)]
    examples = write_examples(tmp_path / "examples", split_images(images))
    cache_dir = tmp_path / "cache"
    fresh_process()

    plan, counts = run(examples, base, transform_dir, cache_dir, tmp_path / "cold")
    assert counts == (8, 0) and len(loads) == 1
    assert plan.prepared_dir.startswith(str(cache_dir))
    assert os.path.isfile(os.path.join(plan.prepared_dir, prepared.PLAN_FILE))
    assert prepared.has_extractor(plan.prepared_dir)  # exported on its first use
    keras_vectors = read_vectors(tmp_path / "cold")

    fresh_process()  # nothing new: the stored plan, and no model at all
    assert run(examples, base, transform_dir, cache_dir, tmp_path / "same") == (plan, (0, 8))
    assert len(loads) == 1

    fresh_process()  # two new images: the exported extractor, still no Keras load
    grown_images = [*images, make_image(100, seed=21), make_image(101, seed=21)]
    grown = write_examples(tmp_path / "grown", split_images(grown_images))
    assert run(grown, base, transform_dir, cache_dir, tmp_path / "grown_out")[1] == (2, 8)
    assert len(loads) == 1
    assert isinstance(extractor_lib.recall(plan.extractor_key), extractor_lib.SavedExtractor)

    # The exported extractor computes what the Keras model computes, bit for bit here.
    saved = extractor_lib.recall(plan.extractor_key)
    fresh_process()
    rebuilt = handler._build(dataclasses.replace(plan, prepared_dir=""))
    assert isinstance(rebuilt, extractor_lib.Extractor) and len(loads) == 2
    np.testing.assert_array_equal(saved(images), rebuilt(images))
    grown_vectors = read_vectors(tmp_path / "grown_out")
    for image_id, vector in keras_vectors.items():
        np.testing.assert_array_equal(grown_vectors[image_id], vector)


def exported(tmp_path, transform_dir, seed: int, count: int = 3):
    """A fresh process plans a tiny base (seeded) and its worker's first batch exports
    the extractor; returns (base, plan, images, that batch's vectors)."""
    base = save_base(tiny_cnn(seed=seed), tmp_path / "base")
    images = [make_image(i, seed=seed + 10) for i in range(count)]
    fresh_process()
    plan = plan_lib.make_plan(str(base), str(transform_dir), "relu1", cache_dir=str(tmp_path))
    vectors = handler.LazyExtractor(plan)(images)
    prepared.wait_for_exports()
    return base, plan, images, vectors


def export_of(plan) -> str:
    with open(os.path.join(plan.prepared_dir, prepared.EXTRACTOR_FILE)) as f:
        return os.path.join(plan.prepared_dir, json.load(f)["saved_model"])


@pytest.mark.parametrize(
    "damage", ["missing", "truncated variables", "graph changed", "file removed", "file added"]
)
def test_an_unusable_export_falls_back_to_the_keras_model(tmp_path, transform_dir, loads, damage):
    _, plan, images, expected = exported(tmp_path, transform_dir, seed=12, count=6)
    export = export_of(plan)
    variables = os.path.join(export, "variables", "variables.data-00000-of-00001")
    if damage == "missing":
        os.remove(os.path.join(plan.prepared_dir, prepared.EXTRACTOR_FILE))
    elif damage == "truncated variables":
        with open(variables, "r+b") as f:
            f.truncate(os.path.getsize(variables) // 2)
    elif damage == "graph changed":  # still a SavedModel that loads: one byte flipped
        graph = os.path.join(export, "saved_model.pb")
        with open(graph, "r+b") as f:
            f.seek(os.path.getsize(graph) // 2)
            byte = f.read(1)
            f.seek(-1, os.SEEK_CUR)
            f.write(bytes([byte[0] ^ 1]))
    elif damage == "file removed":
        os.remove(os.path.join(export, "fingerprint.pb"))
    else:
        with open(os.path.join(export, "variables", "stray"), "w") as f:
            f.write("x")

    fresh_process()
    extractor = handler.load_extractor(plan)
    assert isinstance(extractor, extractor_lib.Extractor)  # built from the Keras model
    assert len(loads) == 2
    np.testing.assert_array_equal(extractor(images), expected)
    assert not prepared.has_extractor(plan.prepared_dir)  # withdrawn

    fresh_process()  # a worker that fell back exports again, replacing the bad export
    handler.LazyExtractor(plan)(images)
    prepared.wait_for_exports()
    if damage != "missing":
        assert export_of(plan) != export
    fresh_process()
    assert isinstance(handler.load_extractor(plan), extractor_lib.SavedExtractor)
    assert len(loads) == 3


def test_an_export_that_computes_other_vectors_is_not_published(
    tmp_path, transform_dir, loads, monkeypatch
):
    """The export is checked once, where it is made: loaded back, its probe vectors
    compared with the Keras path's. A valid SavedModel that computes something else is
    recorded as failed, so no later process loads it (nor tries again)."""
    base = save_base(tiny_cnn(seed=16), tmp_path / "base")
    images = [make_image(i, seed=25) for i in range(3)]
    fresh_process()
    plan = plan_lib.make_plan(str(base), str(transform_dir), "relu1", cache_dir=str(tmp_path))
    load = extractor_lib.SavedExtractor.load

    def loads_other_vectors(directory, dim):
        saved = load(directory, dim)
        compute = saved._function
        saved._function = lambda images: compute(images) + 1.0
        return saved

    monkeypatch.setattr(extractor_lib.SavedExtractor, "load", loads_other_vectors)
    expected = handler.LazyExtractor(plan)(images)
    prepared.wait_for_exports()
    with open(os.path.join(plan.prepared_dir, prepared.FAILED_FILE)) as f:
        assert "differ from the Keras model's" in json.load(f)["failed"]
    assert not os.path.exists(os.path.join(plan.prepared_dir, prepared.EXTRACTOR_FILE))
    assert not [n for n in os.listdir(plan.prepared_dir) if n.startswith("extractor-")]

    fresh_process()
    extractor = handler.load_extractor(plan)
    assert isinstance(extractor, extractor_lib.Extractor) and len(loads) == 2
    np.testing.assert_array_equal(extractor(images), expected)


def test_a_worker_in_the_planning_process_does_not_read_the_base_again(
    tmp_path, transform_dir, monkeypatch
):
    """The in-memory runner's worker checks the base file's digest; the executor's
    make_plan hashed the same unchanged file a moment before, so it is not read again.
    A file rewritten since (another size or modification time) is read and caught."""
    base, plan, _, _ = exported(tmp_path, transform_dir, seed=17)
    reads = []
    read_base = base_file.read_base
    monkeypatch.setattr(base_file, "read_base", lambda uri: reads.append(uri) or read_base(uri))
    fresh_process()  # the digests this process read are kept, like the plan on disk
    assert isinstance(handler.load_extractor(plan), extractor_lib.SavedExtractor)
    assert reads == []

    model = base_file.model_file(str(base))
    with open(model, "ab") as f:
        f.write(b"\0")  # another size: another file
    fresh_process()
    with pytest.raises(RuntimeError, match="was it modified"):
        handler.load_extractor(plan)
    assert len(reads) == 1


def test_a_long_lived_process_exports_once(tmp_path, transform_dir, split_images):
    """LocalDagRunner runs every job in one process: the extractor it remembers is the
    Keras one, and a later job must not export it again over the published export."""
    base = save_base(tiny_cnn(seed=15), tmp_path / "base")
    images = [make_image(i, seed=24) for i in range(4)]
    cache_dir = tmp_path / "cache"
    fresh_process()
    examples = write_examples(tmp_path / "examples", split_images(images))
    plan, _ = run(examples, base, transform_dir, cache_dir, tmp_path / "first")
    published = export_of(plan)
    grown = write_examples(
        tmp_path / "grown", split_images([*images, make_image(50, seed=24)])
    )  # a new image: the job calls the remembered extractor again
    assert run(grown, base, transform_dir, cache_dir, tmp_path / "second")[1] == (1, 4)
    prepared.wait_for_exports()
    assert export_of(plan) == published
    assert len([n for n in os.listdir(plan.prepared_dir) if n.startswith("extractor-")]) == 1


def test_a_failed_export_is_cleaned_up_and_not_tried_again(
    tmp_path, transform_dir, loads, monkeypatch
):
    base = save_base(tiny_cnn(seed=14), tmp_path / "base")
    images = [make_image(i, seed=23) for i in range(3)]
    fresh_process()
    plan = plan_lib.make_plan(str(base), str(transform_dir), "relu1", cache_dir=str(tmp_path))
    tries = []

    def failing_save(self, path):
        tries.append(path)
        os.makedirs(os.path.join(path, "variables"))  # part of it written, then an error
        raise ValueError("cannot export a table")

    monkeypatch.setattr(extractor_lib.Extractor, "save", failing_save)
    handler.LazyExtractor(plan)(images)
    prepared.wait_for_exports()
    assert len(tries) == 1 and not os.path.exists(tries[0])  # the partial folder is gone
    with open(os.path.join(plan.prepared_dir, prepared.FAILED_FILE)) as f:
        assert "cannot export a table" in json.load(f)["failed"]

    fresh_process()  # the next cold worker uses the Keras model and does not export again
    assert isinstance(handler.LazyExtractor(plan)(images), np.ndarray)
    prepared.wait_for_exports()
    assert len(tries) == 1 and len(loads) == 2


def test_a_storage_error_while_exporting_is_not_recorded_and_tried_again(
    tmp_path, transform_dir, monkeypatch
):
    base = save_base(tiny_cnn(seed=18), tmp_path / "base")
    images = [make_image(i, seed=27) for i in range(3)]
    fresh_process()
    plan = plan_lib.make_plan(str(base), str(transform_dir), "relu1", cache_dir=str(tmp_path))
    file_digests = prepared.file_digests
    calls = []

    def unavailable_once(path):
        calls.append(path)
        if len(calls) == 1:
            raise tf.errors.UnavailableError(None, None, "503 from the object store")
        return file_digests(path)

    monkeypatch.setattr(prepared, "file_digests", unavailable_once)
    handler.LazyExtractor(plan)(images)
    prepared.wait_for_exports()
    assert not prepared.has_extractor(plan.prepared_dir)  # nothing recorded: try again
    assert not [n for n in os.listdir(plan.prepared_dir) if n.startswith("extractor-")]

    fresh_process()  # the next cold worker exports it
    handler.LazyExtractor(plan)(images)
    prepared.wait_for_exports()
    fresh_process()
    assert isinstance(handler.load_extractor(plan), extractor_lib.SavedExtractor)


def test_a_failure_never_replaces_an_export_another_process_published(
    tmp_path, transform_dir, monkeypatch
):
    """Two processes export at once; one publishes, the other fails for good after it
    had found nothing published: the published export stays in use."""
    _, plan, _, _ = exported(tmp_path, transform_dir, seed=19)
    published = export_of(plan)

    def fails(saved, extractor):
        raise ValueError("its vectors of the probe images differ from the Keras model's")

    monkeypatch.setattr(prepared, "has_extractor", lambda directory: False)  # found nothing
    monkeypatch.setattr(prepared, "check_reproduces", fails)
    assert not prepared.save_extractor(plan.prepared_dir, extractor_lib.recall(plan.extractor_key))
    assert export_of(plan) == published
    fresh_process()
    assert isinstance(handler.load_extractor(plan), extractor_lib.SavedExtractor)


def test_the_key_holds_the_source_of_the_code_that_makes_plans(tmp_path, monkeypatch):
    memo_key = ("digest", "relu1")
    before = prepared.prepared_key(1, memo_key)
    assert prepared.prepared_key(1, memo_key) == before  # stable within a release
    changed = tmp_path / "model_surgery.py"  # the same module, one line different
    import components.common.model_surgery as surgery

    with open(surgery.__file__, encoding="utf-8") as f:
        changed.write_text(f.read() + "\n# a new release\n")
    find_spec = prepared.importlib.util.find_spec

    def patched(name, *args):
        spec_ = find_spec(name, *args)
        if name == "components.common.model_surgery":
            spec_ = prepared.importlib.util.spec_from_file_location(name, changed)
        return spec_

    monkeypatch.setattr(prepared.importlib.util, "find_spec", patched)
    prepared.code_digest.cache_clear()
    try:
        assert prepared.prepared_key(1, memo_key) != before
    finally:
        monkeypatch.undo()
        prepared.code_digest.cache_clear()
    assert prepared.prepared_key(1, memo_key) == before


def test_a_stored_plan_with_other_fields_is_made_again(tmp_path, transform_dir, tiny_base, loads):
    fresh_process()
    plan = plan_lib.make_plan(str(tiny_base), str(transform_dir), "relu1", cache_dir=str(tmp_path))
    path = os.path.join(plan.prepared_dir, prepared.PLAN_FILE)
    with open(path) as f:
        record = json.load(f)
    del record["pooling"]  # written by a release whose CachePlan had other fields
    with open(path, "w") as f:
        json.dump(record, f)
    fresh_process()
    again = plan_lib.make_plan(str(tiny_base), str(transform_dir), "relu1", cache_dir=str(tmp_path))
    assert again == plan and len(loads) == 2


def test_a_corrupt_stored_plan_is_made_again(tmp_path, transform_dir, tiny_base, loads):
    fresh_process()
    plan = plan_lib.make_plan(str(tiny_base), str(transform_dir), "relu1", cache_dir=str(tmp_path))
    with open(os.path.join(plan.prepared_dir, prepared.PLAN_FILE), "w") as f:
        f.write('{"cut_layer": "relu1"')  # cut short
    fresh_process()
    again = plan_lib.make_plan(str(tiny_base), str(transform_dir), "relu1", cache_dir=str(tmp_path))
    assert again == plan and len(loads) == 2

    fresh_process()  # and stored again, whole
    assert (
        plan_lib.make_plan(str(tiny_base), str(transform_dir), "relu1", cache_dir=str(tmp_path))
        == plan
    )
    assert len(loads) == 2


def test_the_stored_plan_is_keyed_by_the_files_and_the_arguments(
    tmp_path, transform_dir, tiny_base
):
    fresh_process()
    cache_dir = str(tmp_path / "cache")
    plans = [
        plan_lib.make_plan(str(tiny_base), str(transform_dir), "relu1", cache_dir=cache_dir),
        plan_lib.make_plan(str(tiny_base), str(transform_dir), "conv1", cache_dir=cache_dir),
        plan_lib.make_plan(
            str(tiny_base), str(transform_dir), "relu1", pooling="max", cache_dir=cache_dir
        ),
    ]
    other_base = save_base(tiny_cnn(seed=13), tmp_path / "other")
    plans.append(
        plan_lib.make_plan(str(other_base), str(transform_dir), "relu1", cache_dir=cache_dir)
    )
    assert len({plan.prepared_dir for plan in plans}) == len(plans)
    fresh_process()
    again = plan_lib.make_plan(str(other_base), str(transform_dir), "relu1", cache_dir=cache_dir)
    assert again == plans[-1] and again.base_fingerprint != plans[0].base_fingerprint
