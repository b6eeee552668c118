"""The Pusher executor: one version per model, unique versions, written whole.

Real SavedModel-like folders, real processes racing for a version number, and TFX's
own artifacts and Pusher base class: nothing here is mocked.
"""

import multiprocessing
import os

import pytest
from tfx.proto import pusher_pb2
from tfx.types import standard_artifacts
from tfx.utils import proto_utils

from components.idempotent_pusher import executor as pusher


def _model(folder, payload: bytes) -> str:
    os.makedirs(os.path.join(folder, "variables"), exist_ok=True)
    with open(os.path.join(folder, "saved_model.pb"), "wb") as f:
        f.write(b"graph" + payload)
    with open(os.path.join(folder, "variables", "variables.index"), "wb") as f:
        f.write(payload * 100)
    return str(folder)


def test_digest_changes_with_content_and_names_not_with_location(tmp_path):
    a = _model(tmp_path / "a", b"1")
    b = _model(tmp_path / "b", b"1")
    c = _model(tmp_path / "c", b"2")
    assert pusher.saved_model_digest(a) == pusher.saved_model_digest(b)
    assert pusher.saved_model_digest(a) != pusher.saved_model_digest(c)
    os.rename(tmp_path / "b" / "variables", tmp_path / "b" / "vars")
    assert pusher.saved_model_digest(a) != pusher.saved_model_digest(b)


def test_find_same_version_ignores_staging_and_other_entries(tmp_path):
    base = tmp_path / "serving" / "m"
    assert pusher.find_same_version(_model(tmp_path / "cand", b"x"), str(base)) is None
    _model(base / "100", b"old")
    _model(base / "200", b"x")
    _model(base / ".staging-abc", b"x")  # a push in progress is no version
    (base / "notes.txt").parent.mkdir(parents=True, exist_ok=True)
    (base / "notes.txt").write_text("not a version")
    assert pusher.versions(str(base)) == [100, 200]
    found = pusher.find_same_version(str(tmp_path / "cand"), str(base))
    assert found == os.path.join(str(base), "200")
    assert pusher.find_same_version(_model(tmp_path / "new", b"y"), str(base)) is None


def test_publish_takes_a_number_above_every_existing_version(tmp_path):
    base = tmp_path / "m"
    _model(base / "2000000000", b"future")  # e.g. pushed from a machine whose clock runs ahead
    version, path = pusher.publish(_model(tmp_path / "cand", b"x"), str(base), clock=lambda: 5)
    assert version == "2000000001" and path == str(base / "2000000001")
    assert pusher.saved_model_digest(path) == pusher.saved_model_digest(str(tmp_path / "cand"))
    assert sorted(os.listdir(base)) == ["2000000000", "2000000001"]  # no staging left


def _publish_at(model_dir, base, barrier, results):
    barrier.wait()  # both processes publish at the same moment, with the same clock
    results.put(pusher.publish(model_dir, base, clock=lambda: 1_700_000_000))


def test_two_processes_publishing_in_the_same_second_get_two_whole_versions(tmp_path):
    base = str(tmp_path / "m")
    models = [_model(tmp_path / f"cand{i}", bytes([i]) * 50_000) for i in range(2)]
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(2), context.Queue()
    workers = [
        context.Process(target=_publish_at, args=(model, base, barrier, results))
        for model in models
    ]
    for worker in workers:
        worker.start()
    published = [results.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    versions = sorted(version for version, _ in published)
    assert versions == ["1700000000", "1700000001"]
    # Each version holds exactly one of the two models, whole.
    digests = {pusher.saved_model_digest(path) for _, path in published}
    assert digests == {pusher.saved_model_digest(m) for m in models}
    assert sorted(os.listdir(base)) == versions


def _push(tmp_path, model_dir, run):
    model = standard_artifacts.Model()
    model.uri = str(tmp_path / f"model{run}")
    os.makedirs(model.uri, exist_ok=True)
    os.symlink(model_dir, os.path.join(model.uri, "Format-Serving"))
    blessing = standard_artifacts.ModelBlessing()
    blessing.set_int_custom_property("blessed", 1)
    pushed = standard_artifacts.PushedModel()
    pushed.uri = str(tmp_path / f"pushed{run}")
    destination = pusher_pb2.PushDestination(
        filesystem=pusher_pb2.PushDestination.Filesystem(base_directory=str(tmp_path / "m"))
    )
    pusher.Executor().Do(
        {"model": [model], "model_blessing": [blessing]},
        {"pushed_model": [pushed]},
        {"push_destination": proto_utils.proto_to_json(destination), "custom_config": None},
    )
    return pushed


def test_the_same_model_is_recorded_as_already_served_and_copied_once(tmp_path):
    first = _push(tmp_path, _model(tmp_path / "a", b"1"), 1)
    assert first.get_int_custom_property("pushed") == 1
    assert first.get_int_custom_property(pusher.ALREADY_SERVED_KEY) == 0
    destination = first.get_string_custom_property("pushed_destination")
    again = _push(tmp_path, _model(tmp_path / "b", b"1"), 2)  # same bytes, other artifact
    assert again.get_int_custom_property("pushed") == 1
    assert again.get_int_custom_property(pusher.ALREADY_SERVED_KEY) == 1
    assert again.get_string_custom_property("pushed_destination") == destination
    assert os.listdir(tmp_path / "m") == [os.path.basename(destination)]
    other = _push(tmp_path, _model(tmp_path / "c", b"2"), 3)
    assert other.get_string_custom_property("pushed_destination") != destination
    assert len(os.listdir(tmp_path / "m")) == 2


def test_nothing_servable_is_never_published(tmp_path):
    base = tmp_path / "m"
    (tmp_path / "empty").mkdir()
    for source in ("missing", "empty"):
        with pytest.raises(FileNotFoundError, match="no saved_model.pb"):
            pusher.publish(str(tmp_path / source), str(base))
    assert not base.exists() or os.listdir(base) == []
