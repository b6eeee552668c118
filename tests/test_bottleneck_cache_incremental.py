"""Tests of the persistent cache across runs: incremental reuse and invalidation.

A rerun with the same inputs computes nothing; new images are the only ones computed;
a changed base (weights or cut), pooling or preprocessing gets a new namespace and
recomputes everything; re-saving the same base or re-exporting the same
preprocessing does not. Helpers come from components.common.testing and conftest.py.
"""

import json
import logging
import os

import numpy as np
import pytest
import tensorflow as tf

from components.bottleneck_cache import base_file, handler, spec, store
from components.bottleneck_cache import extractor as extractor_lib
from components.bottleneck_cache import plan as plan_lib
from components.common import preprocessing as pp
from components.common import testing
from components.common import transform_graph as transform_lib
from components.common.testing import (
    make_image,
    read_vectors,
    save_base,
    tiny_cnn,
    write_examples,
)

SIZE = testing.TINY_SIZE
IMAGE_SPEC = testing.TINY_SPEC


def shard_files(cache_dir, plan) -> list:
    return sorted(tf.io.gfile.glob(store.shard_pattern(plan.namespace_dir(str(cache_dir)))))


def counts_of(counts: dict) -> tuple:
    return counts[spec.PROP_COMPUTED], counts[spec.PROP_REUSED], counts[spec.PROP_FAILED]


def test_incremental_runs_compute_only_new_images(
    tmp_path, transform_dir, tiny_base, split_images, run_job
):
    images = [make_image(i, seed=3) for i in range(20)]
    cache_dir = tmp_path / "cache"

    def run(name, batch):
        examples = write_examples(tmp_path / f"examples_{name}", split_images(batch))
        plan, counts = run_job(
            examples, tiny_base, transform_dir, cache_dir, tmp_path / name, cut_layer="relu1"
        )
        return plan, counts, read_vectors(tmp_path / name)

    plan, counts, first = run("first", images)
    assert counts_of(counts) == (20, 0, 0)
    assert len(first) == 20 and len(shard_files(cache_dir, plan)) == 1

    grown = images + [make_image(i, seed=4) for i in range(2)]  # 10% new images
    _, counts, second = run("second", grown)
    assert counts_of(counts) == (2, 20, 0)
    assert counts["train_examples"] + counts["eval_examples"] == 22
    assert len(shard_files(cache_dir, plan)) == 2
    for image_id, vector in first.items():
        np.testing.assert_array_equal(second[image_id], vector)

    _, counts, third = run("third", grown)
    assert counts_of(counts) == (0, 22, 0)
    assert len(shard_files(cache_dir, plan)) == 2  # an empty shard is not kept
    assert third.keys() == second.keys()
    for image_id, vector in second.items():
        np.testing.assert_array_equal(third[image_id], vector)

    with open(os.path.join(plan.namespace_dir(str(cache_dir)), plan_lib.NAMESPACE_FILE)) as f:
        described = f.read()
    for value in (plan.base_fingerprint, plan.transform_fingerprint, '"relu1"', '"avg"'):
        assert value in described


def test_a_corrupt_shard_is_quarantined_once_and_never_read_again(
    tmp_path, transform_dir, tiny_base, split_images, run_job, caplog
):
    """A torn shard and a foreign file are moved to quarantine/ by the run that finds
    them (counted, warned about once, their vectors recomputed); the next run neither
    skips nor warns nor computes anything; the readable shard is never moved."""
    images = [make_image(i, seed=6) for i in range(12)]
    cache_dir = tmp_path / "cache"

    def run(name, batch):
        examples = write_examples(tmp_path / f"examples_{name}", split_images(batch))
        plan, counts = run_job(
            examples, tiny_base, transform_dir, cache_dir, tmp_path / name, cut_layer="relu1"
        )
        return plan, counts

    plan, counts = run("first", images[:10])
    (kept,) = shard_files(cache_dir, plan)
    _, counts = run("second", images)
    assert counts_of(counts) == (2, 10, 0)
    (torn,) = set(shard_files(cache_dir, plan)) - {kept}  # the entries of the 2 new images
    namespace = plan.namespace_dir(str(cache_dir))
    with open(torn, "rb") as f:
        torn_bytes = f.read()[:-7]
    with open(torn, "wb") as f:
        f.write(torn_bytes)
    garbage = os.path.join(namespace, "entries-garbage-00000-of-00001.tfrecord.gz")
    with open(garbage, "wb") as f:
        f.write(b"not a gzip file at all")
    with open(kept, "rb") as f:
        kept_bytes = f.read()

    with caplog.at_level(logging.INFO):
        _, counts = run("third", images)
    assert counts_of(counts) == (2, 10, 0)
    assert counts[spec.PROP_SHARDS_SKIPPED] == 2
    quarantine = store.quarantine_dir(namespace)
    names = [os.path.basename(torn), os.path.basename(garbage)]
    reasons = [f"{name}{store.REASON_SUFFIX}" for name in names]
    assert sorted(os.listdir(quarantine)) == sorted(names + reasons)
    with open(os.path.join(quarantine, names[0]), "rb") as f:
        assert f.read() == torn_bytes  # the evidence, as it was
    errors = ["truncated", "not a valid gzip"]
    for name, path, error in zip(reasons, [torn, garbage], errors, strict=True):
        with open(os.path.join(quarantine, name)) as f:
            reason = json.loads(f.read())
        assert reason["shard"] == path and error in reason["error"], reason
    for path in (torn, garbage):
        warned = [r for r in caplog.records if path in r.getMessage()]
        assert [r.levelno for r in warned] == [logging.WARNING], warned
        assert not os.path.exists(path)
    assert kept in shard_files(cache_dir, plan)  # the readable shard stays, as it was
    with open(kept, "rb") as f:
        assert f.read() == kept_bytes
    assert len(shard_files(cache_dir, plan)) == 2  # kept and the recomputed entries

    caplog.clear()
    with caplog.at_level(logging.INFO):
        _, counts = run("fourth", images)
    assert counts_of(counts) == (0, 12, 0)
    assert counts[spec.PROP_SHARDS_SKIPPED] == 0
    assert not [r for r in caplog.records if "shard" in r.getMessage()], caplog.records
    assert sorted(os.listdir(quarantine)) == sorted(names + reasons)
    second, fourth = read_vectors(tmp_path / "second"), read_vectors(tmp_path / "fourth")
    assert fourth.keys() == second.keys()
    for image_id, vector in second.items():
        np.testing.assert_array_equal(fourth[image_id], vector)


def test_changes_invalidate_exactly_what_they_must(
    tmp_path, transform_dir, tiny_base, split_images, run_job, write_transform
):
    images = [make_image(i, seed=5) for i in range(6)]
    examples = write_examples(tmp_path / "examples", split_images(images))
    cache_dir = tmp_path / "cache"
    runs = iter(range(100))

    def run(base=tiny_base, transform=transform_dir, **options):
        options.setdefault("cut_layer", "relu1")
        out = tmp_path / f"out{next(runs)}"
        plan, counts = run_job(examples, base, transform, cache_dir, out, **options)
        return plan.namespace, counts_of(counts)

    namespace, counts = run()
    assert counts == (6, 0, 0)
    assert run() == (namespace, (0, 6, 0))  # nothing changed

    changed = [
        run(cut_layer="conv2"),
        run(pooling="max"),
        run(base=save_base(tiny_cnn(seed=1), tmp_path / "other_weights")),
        run(transform=write_transform(tmp_path / "unit", pp.ImageSpec(SIZE, SIZE, scaling="unit"))),
    ]
    for new_namespace, new_counts in changed:
        assert new_counts == (6, 0, 0)
        assert new_namespace != namespace
    assert len({n for n, _ in changed}) == len(changed)

    # The same content under other artifact uris: the cache still applies.
    resaved = save_base(tiny_cnn(seed=0), tmp_path / "same_weights_again")
    assert run(base=resaved) == (namespace, (0, 6, 0))
    reexported = write_transform(tmp_path / "scalar", IMAGE_SPEC, scalar=True)
    assert run(transform=reexported) == (namespace, (0, 6, 0))
    assert sorted(os.listdir(cache_dir)) == sorted({namespace, *(n for n, _ in changed)})


def test_transform_fingerprint_follows_every_preprocessing_choice(
    tmp_path, transform_dir, write_transform
):
    def fingerprint(directory):
        return transform_lib.transform_fingerprint(transform_lib.load_image_transform(directory))[0]

    variants = {
        "default": transform_dir,
        "area": write_transform(tmp_path / "a", pp.ImageSpec(SIZE, SIZE, resize_method="area")),
        "pad": write_transform(tmp_path / "p", pp.ImageSpec(SIZE, SIZE, resize_mode="pad")),
        "caffe": write_transform(tmp_path / "c", pp.ImageSpec(SIZE, SIZE, scaling="caffe")),
        "size": write_transform(tmp_path / "s", pp.ImageSpec(SIZE, SIZE + 8)),
    }
    fingerprints = {name: fingerprint(directory) for name, directory in variants.items()}
    assert len(set(fingerprints.values())) == len(variants), fingerprints


def test_the_model_is_loaded_once_per_process_and_only_when_needed(
    tmp_path, transform_dir, split_images, run_job, monkeypatch
):
    loads = []
    load_bytes = base_file.load_bytes
    monkeypatch.setattr(base_file, "load_bytes", lambda data: loads.append(1) or load_bytes(data))
    base = save_base(tiny_cnn(seed=2), tmp_path / "base")  # loaded by no other test
    images = [make_image(i, seed=8) for i in range(6)]
    examples = write_examples(tmp_path / "examples", split_images(images))
    cache_dir = tmp_path / "cache"

    def run(examples_root, name):
        plan, counts = run_job(
            examples_root, base, transform_dir, cache_dir, tmp_path / name, cut_layer="relu1"
        )
        return plan, counts_of(counts)

    plan, counts = run(examples, "first")
    assert counts == (6, 0, 0)
    assert len(loads) == 1  # make_plan's load, reused by the in-memory worker

    extractor_lib.forget_all()
    assert run(examples, "unchanged") == (plan, (0, 6, 0))
    assert len(loads) == 1  # the plan is reused, and nothing to compute: no load
    assert extractor_lib.recall(plan.extractor_key) is None

    grown = write_examples(tmp_path / "grown", split_images([*images, make_image(0, seed=9)]))
    assert run(grown, "grown")[1] == (1, 6, 0)
    assert len(loads) == 2  # loaded by the worker, for its one batch
    assert extractor_lib.recall(plan.extractor_key) is not None

    # A worker that must load checks the file against the plan's digest.
    extractor_lib.forget_all()
    save_base(tiny_cnn(seed=3), tmp_path / "base")
    with pytest.raises(RuntimeError, match="was it modified"):
        handler.load_extractor(plan)
