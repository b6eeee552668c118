"""Tests of ImageExampleGen's pure core (ingest.py): listing, validation, Beam job.

The hostile folder (components.common.testing.build_hostile_root) holds every kind of
file the component must survive; the component and bottleneck cache tests use it too.
"""

import hashlib
import io
import zlib
from pathlib import Path

import apache_beam as beam
import pytest
import tensorflow as tf
from apache_beam.testing import test_pipeline
from apache_beam.testing.util import assert_that, equal_to
from PIL import Image

from components.common import examples as contract
from components.common.testing import (
    HOSTILE_MAX_PIXELS,
    build_hostile_root,
    encode,
    gif_two_frames,
    os_junk,
    valid_files,
)
from components.image_example_gen import images, ingest, listing, spec

MAX_PIXELS = HOSTILE_MAX_PIXELS  # the over-size hostile image is 40 x 40 = 1600 pixels


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(name="hostile")
def _hostile(tmp_path):
    return build_hostile_root(tmp_path)


# --- listing ---------------------------------------------------------------------------


def test_list_files_sorts_every_file_into_entries_or_escaped(hostile):
    root, expected = hostile
    entries, escaped, ignored = listing.list_files(str(root), labelled=True)
    assert listing.list_classes(str(root)) == expected["classes"]
    assert ignored == expected["ignored"]
    relpaths = [e.relpath for e in entries]
    assert relpaths == sorted(relpaths)
    assert "cats/nested/deeper/n.png" in relpaths and "cats/zlink.png" in relpaths
    assert not any("loop" in p or "inner.png" in p or "secret" in p for p in relpaths)
    by_path = {e.relpath: e for e in entries}
    assert by_path["with space/w s.png"].label == expected["classes"].index("with space")
    assert by_path["cats/nested/deeper/n.png"].label_name == "cats"
    assert {r["path"] for r in escaped} == {
        "cats/escape_file.png",
        "cats/escape_dir",
        "cats/broken.png",
        "cats/bad\ufffdname.png",
        "root_file.png",
    }
    listed = len(entries) + len(escaped) + len(ignored)
    assert listed == (
        len(expected["valid"]) + len(expected["quarantined"]) + 2 + len(expected["ignored"])
    )  # 2 duplicates


def test_list_files_unlabelled_keeps_root_files(hostile):
    root, expected = hostile
    entries, escaped, ignored = listing.list_files(str(root), labelled=False)
    assert listing.list_classes(str(root), labelled=False) == []
    assert ignored == expected["ignored"]
    assert {e.label for e in entries} == {contract.UNLABELLED}
    assert {e.label_name for e in entries} == {""}
    assert "root_file.png" in {e.relpath for e in entries}
    assert "root_file.png" not in {r["path"] for r in escaped}


def test_list_files_remote_branch_matches_local(tmp_path):
    root = tmp_path / "plain"
    junk = ("a/.DS_Store", "a/Desktop.INI", "a/.hidden/z.png", ".cache/c/w.png")
    for relpath in ("a/x 1.png", "a/deep/y.png", "b/ü.png", *junk):
        (root / relpath).parent.mkdir(parents=True, exist_ok=True)
        (root / relpath).write_bytes(b"x")
    local, _, local_ignored = listing.list_files(str(root))
    remote, _, remote_ignored = listing.list_files(f"file://{root}")
    assert [(e.relpath, e.label, e.label_name) for e in remote] == [
        (e.relpath, e.label, e.label_name) for e in local
    ]
    assert [e.relpath for e in local] == ["a/deep/y.png", "a/x 1.png", "b/ü.png"]
    assert local_ignored == [".cache", "a/.DS_Store", "a/.hidden", "a/Desktop.INI"]
    assert remote_ignored == local_ignored
    assert listing.list_classes(f"file://{root}") == listing.list_classes(str(root)) == ["a", "b"]
    assert listing.read_file(remote[0].path) == b"x"


def test_missing_root_raises_clear_error(tmp_path):
    with pytest.raises(ValueError, match="does not exist; point data.root at a folder"):
        listing.list_files(str(tmp_path / "nope"))
    with pytest.raises(ValueError, match="does not exist"):
        listing.fingerprint(str(tmp_path / "nope"))
    (tmp_path / "file.png").write_bytes(b"x")
    with pytest.raises(ValueError, match="is a file, not a folder; point data.root"):
        listing.list_files(str(tmp_path / "file.png"))


def test_fingerprint_tracks_changes(tmp_path):
    root = tmp_path / "root"
    (root / "cats").mkdir(parents=True)
    (root / "cats/a.png").write_bytes(b"one")
    first = listing.fingerprint(str(root))
    assert listing.fingerprint(str(root)) == first
    (root / "cats/b.png").write_bytes(b"two")
    added = listing.fingerprint(str(root))
    assert added != first
    (root / "cats/a.png").write_bytes(b"one!")
    assert listing.fingerprint(str(root)) != added
    (root / "dogs").mkdir()  # a new, still empty class changes the vocabulary
    assert len({first, added, listing.fingerprint(str(root))}) == 3


def test_fingerprint_ignores_os_junk(tmp_path):
    """Ignored files never become examples: they do not make TFX's cache re-run."""
    root = tmp_path / "root"
    (root / "cats").mkdir(parents=True)
    (root / "cats/a.png").write_bytes(b"one")
    first = listing.fingerprint(str(root))
    for relpath, data in os_junk(b"png").items():
        (root / relpath).parent.mkdir(parents=True, exist_ok=True)
        (root / relpath).write_bytes(data)
    (root / ".git").mkdir()  # a hidden top-level folder is not a new class
    (root / ".git/HEAD").write_bytes(b"ref")
    assert listing.fingerprint(str(root)) == first
    (root / "cats/.DS_Store").write_bytes(b"changed, longer")
    assert listing.fingerprint(str(root)) == first
    (root / "cats/b.png").write_bytes(b"two")  # a real change still counts
    assert listing.fingerprint(str(root)) != first


def test_is_ignored_rule():
    for name in (".DS_Store", "._img.png", ".gitkeep", "Thumbs.db", "THUMBS.DB", "Desktop.ini"):
        assert listing.is_ignored(name), name
    for name in (".git", ".ipynb_checkpoints"):
        assert listing.is_ignored(name, is_dir=True), name
    for name in ("img.png", "thumbs.db.png", "my desktop.ini", "a.DS_Store"):
        assert not listing.is_ignored(name), name
    assert not listing.is_ignored("Thumbs.db", is_dir=True)  # the file names are files only


# --- one image -------------------------------------------------------------------------


@pytest.mark.parametrize("relpath", sorted(valid_files()))
def test_read_image_accepts_and_tf_decodes(relpath):
    data = valid_files()[relpath]
    result = images.read_image(data, relpath, MAX_PIXELS)
    assert result.reason == ""
    assert (result.height, result.width) == (7, 5)
    assert not result.downscaled
    assert result.transcoded == (relpath == "cats/onebit.bmp")
    if not result.transcoded:
        assert result.data == data
        assert result.image_format == Path(relpath).suffix[1:].replace("jpg", "jpeg")
    else:
        assert result.image_format == "png" and result.data[:4] == b"\x89PNG"
    decoded = tf.io.decode_image(result.data, channels=3, expand_animations=False)
    assert decoded.shape == (7, 5, 3)


def test_read_image_gif_first_frame_counts():
    result = images.read_image(gif_two_frames(), "anim.gif", MAX_PIXELS)
    pixel = tf.io.decode_image(result.data, channels=3, expand_animations=False)[0, 0]
    assert pixel.numpy().tolist() == [255, 0, 0]


def test_read_image_quarantines_with_reason(hostile):
    root, expected = hostile
    by_content = ("empty.jpg", "truncated.png", "text.png", "scan.tiff", "huge.png")
    for name in by_content:  # the others are decided by listing or deduplication
        relpath = f"cats/{name}"
        result = images.read_image((root / relpath).read_bytes(), relpath, MAX_PIXELS)
        assert expected["quarantined"][relpath] in result.reason, relpath
        assert result.data == b""


def test_read_image_reports_decompression_bomb_before_decoding():
    # 3000 x 3000 grey PNG compresses to a few KB; max_pixels=100 must stop it unread.
    data = encode("L", 0, "PNG", size=(3000, 3000))
    result = images.read_image(data, "bomb.png", max_pixels=100)
    assert result.reason.startswith("3000 x 3000 = 9000000 pixels exceeds max_pixels=100")


def _png_header(width: int, height: int) -> bytes:
    """Signature + IHDR + IEND: enough for Pillow to read the size, no pixel data."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body).to_bytes(4, "big")
        return len(body).to_bytes(4, "big") + kind + body + crc

    ihdr = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 2, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def test_read_image_reports_pillow_decompression_bomb_as_over_size():
    result = images.read_image(_png_header(100_000, 100_000), "bomb.png", max_pixels=1000)
    assert result.reason.startswith("10000000000 pixels exceeds max_pixels=1000; raise max_pixels")


@pytest.mark.parametrize(
    ("mode", "color", "fmt", "stored"),
    [
        ("RGB", (1, 2, 3), "JPEG", "jpeg"),
        ("RGBA", (1, 2, 3, 4), "PNG", "png"),
        ("P", 3, "GIF", "png"),
    ],
)
def test_read_image_downscale_caps_longest_side(mode, color, fmt, stored):
    data = encode(mode, color, fmt, size=(40, 10))
    result = images.read_image(data, "big", max_pixels=10_000, max_side=8)
    assert result.downscaled and not result.transcoded
    assert (result.height, result.width) == (10, 40)  # original size
    assert result.image_format == stored
    decoded = tf.io.decode_image(result.data, channels=3, expand_animations=False)
    assert decoded.shape == (2, 8, 3)
    small = images.read_image(data, "big", max_pixels=10_000, max_side=40)
    assert not small.downscaled and small.data == data


def test_split_is_deterministic_and_respects_ratio():
    ids = [sha256(encode("RGB", (i, 255 - i, i // 2), "PNG", size=(2, 2))) for i in range(200)]
    splits = [ingest.assign_split(i, 0.8) for i in ids]
    assert splits == [ingest.assign_split(i, 0.8) for i in ids]
    assert 0.7 < splits.count(contract.TRAIN_SPLIT) / len(ids) < 0.9
    assert {ingest.assign_split(i, 0.0001) for i in ids} == {contract.EVAL_SPLIT}
    # The boundary: int(id[:8], 16) % 10000 < 8000 is train.
    assert ingest.assign_split("00001f3f" + "0" * 56, 0.8) == contract.TRAIN_SPLIT  # 7999
    assert ingest.assign_split("00001f40" + "f" * 56, 0.8) == contract.EVAL_SPLIT  # 8000


def test_make_example_round_trips():
    serialized = ingest.make_example(b"img", 2, "ünï", "ab" * 32, "c/ü x.png", 7, 5, "png")
    parsed = tf.train.Example.FromString(serialized).features.feature
    assert parsed[contract.IMAGE_KEY].bytes_list.value == [b"img"]
    assert parsed[contract.LABEL_KEY].int64_list.value == [2]
    assert parsed[contract.LABEL_NAME_KEY].bytes_list.value[0].decode() == "ünï"
    assert parsed[contract.SOURCE_PATH_KEY].bytes_list.value[0].decode() == "c/ü x.png"
    assert parsed[contract.HEIGHT_KEY].int64_list.value == [7]
    assert parsed[contract.WIDTH_KEY].int64_list.value == [5]
    assert parsed[contract.FORMAT_KEY].bytes_list.value == [b"png"]
    assert parsed[contract.IMAGE_ID_KEY].bytes_list.value == [b"ab" * 32]


# --- the Beam job ----------------------------------------------------------------------


def summarize(serialized: bytes) -> tuple:
    """(source_path, label, label_name, image_id, format, height, width) of an example."""
    feature = tf.train.Example.FromString(serialized).features.feature

    def text(key):
        return feature[key].bytes_list.value[0].decode("utf-8")

    def number(key):
        return feature[key].int64_list.value[0]

    decoded = tf.io.decode_image(
        feature[contract.IMAGE_KEY].bytes_list.value[0], channels=3, expand_animations=False
    )
    assert decoded.shape[2] == 3
    return (
        text(contract.SOURCE_PATH_KEY),
        number(contract.LABEL_KEY),
        text(contract.LABEL_NAME_KEY),
        text(contract.IMAGE_ID_KEY),
        text(contract.FORMAT_KEY),
        number(contract.HEIGHT_KEY),
        number(contract.WIDTH_KEY),
    )


def expected_examples(expected: dict, split: str) -> list:
    rows = []
    for relpath, data in expected["valid"].items():
        image_id = sha256(data)
        if ingest.assign_split(image_id, 0.5) != split:
            continue
        label_name = relpath.split("/")[0]
        fmt = Image.open(io.BytesIO(data)).format.lower()
        fmt = "png" if relpath in expected["transcoded"] else fmt
        label = expected["classes"].index(label_name)
        rows.append((relpath, label, label_name, image_id, fmt, 7, 5))
    return rows


def test_ingest_images_on_hostile_folder(hostile):
    root, expected = hostile
    entries, escaped, ignored = listing.list_files(str(root))
    n_valid, n_bad = len(expected["valid"]), len(expected["quarantined"])
    n_dup, n_ignored = len(expected["duplicates"]), len(expected["ignored"])
    counts = {
        spec.COUNT_FILES_SEEN: n_valid + n_bad + n_dup + n_ignored,
        spec.COUNT_INGESTED: n_valid,
        spec.COUNT_QUARANTINED: n_bad,
        spec.COUNT_DUPLICATES: n_dup,
        spec.COUNT_IGNORED: n_ignored,
        spec.COUNT_TRANSCODED: 1,
        spec.COUNT_DOWNSCALED: 0,
    }
    train = expected_examples(expected, contract.TRAIN_SPLIT)
    evaluation = expected_examples(expected, contract.EVAL_SPLIT)
    assert train and evaluation  # ratio 0.5 on 14 images: both splits are used
    counts[ingest.split_count_name(contract.TRAIN_SPLIT)] = len(train)
    counts[ingest.split_count_name(contract.EVAL_SPLIT)] = len(evaluation)
    class_counts = {name: {s: 0 for s in contract.SPLITS} for name in expected["classes"]}
    for split, rows in ((contract.TRAIN_SPLIT, train), (contract.EVAL_SPLIT, evaluation)):
        for row in rows:
            class_counts[row[2]][split] += 1

    def reasons_match(records):
        assert sorted(r["path"] for r in records) == sorted(expected["quarantined"])
        for record in records:
            assert expected["quarantined"][record["path"]] in record["reason"], record

    duplicates = [
        {"path": path, "kept": kept, "image_id": sha256((root / kept).read_bytes())}
        for path, kept in expected["duplicates"].items()
    ]
    with test_pipeline.TestPipeline() as p:
        out = p | ingest.IngestImages(
            entries,
            escaped,
            expected["classes"],
            train_ratio=0.5,
            max_pixels=MAX_PIXELS,
            ignored=ignored,
        )
        assert_that(
            out[contract.TRAIN_SPLIT] | "SumTrain" >> beam.Map(summarize),
            equal_to(train),
            label="CheckTrain",
        )
        assert_that(
            out[contract.EVAL_SPLIT] | "SumEval" >> beam.Map(summarize),
            equal_to(evaluation),
            label="CheckEval",
        )
        assert_that(out[ingest.QUARANTINE_OUTPUT], reasons_match, label="CheckQuarantine")
        assert_that(out[ingest.DUPLICATES_OUTPUT], equal_to(duplicates), label="CheckDup")
        assert_that(out[ingest.COUNTS_OUTPUT], equal_to([counts]), label="CheckCounts")
        assert_that(out[ingest.CLASS_COUNTS_OUTPUT], equal_to([class_counts]), label="CheckCls")
    assert class_counts["empty_class"] == {contract.TRAIN_SPLIT: 0, contract.EVAL_SPLIT: 0}
    assert counts[spec.COUNT_FILES_SEEN] == len(entries) + len(escaped) + len(ignored)


def test_ingest_images_unlabelled_and_downscaled(tmp_path):
    root = tmp_path / "unlabelled"
    files = {
        "top.png": encode("RGB", (1, 1, 1), "PNG", size=(12, 6)),
        "a/b/deep.jpg": encode("RGB", (2, 2, 2), "JPEG", size=(12, 6)),
        "small.png": encode("RGB", (3, 3, 3), "PNG", size=(2, 2)),
    }
    for relpath, data in files.items():
        (root / relpath).parent.mkdir(parents=True, exist_ok=True)
        (root / relpath).write_bytes(data)
    entries, escaped, ignored = listing.list_files(str(root), labelled=False)
    assert ignored == []
    gone = listing.FileEntry("gone.png", str(root / "gone.png"), contract.UNLABELLED, "")

    def check(examples):
        rows = {summarize(e)[0]: summarize(e) for e in examples}
        assert sorted(rows) == sorted(files)
        assert {row[1] for row in rows.values()} == {contract.UNLABELLED}
        assert {row[2] for row in rows.values()} == {""}
        assert rows["a/b/deep.jpg"][4:] == ("jpeg", 6, 12)  # original size kept

    with test_pipeline.TestPipeline() as p:
        out = p | ingest.IngestImages(
            [*entries, gone], escaped, [], 0.5, max_pixels=1000, max_side=4
        )
        both = (out[contract.TRAIN_SPLIT], out[contract.EVAL_SPLIT]) | "Both" >> beam.Flatten()
        assert_that(both, check, label="CheckExamples")
        tally = out[ingest.COUNTS_OUTPUT] | "Pick" >> beam.Map(
            lambda c: (
                c[spec.COUNT_FILES_SEEN],
                c[spec.COUNT_INGESTED],
                c[spec.COUNT_QUARANTINED],
                c[spec.COUNT_DOWNSCALED],
            )
        )
        assert_that(tally, equal_to([(4, 3, 1, 2)]), label="CheckCounts")
        reasons = out[ingest.QUARANTINE_OUTPUT] | "Reason" >> beam.Map(
            lambda r: (r["path"], r["reason"].split(":")[0])
        )
        assert_that(reasons, equal_to([("gone.png", "cannot read file")]), label="CheckGone")
        assert_that(out[ingest.CLASS_COUNTS_OUTPUT], equal_to([{}]), label="CheckClasses")


def test_os_junk_is_ignored_not_quarantined(tmp_path):
    """.DS_Store, ._img.png, Thumbs.db, desktop.ini and a hidden folder are only counted."""
    root = tmp_path / "root"
    image = encode("RGB", (1, 2, 3), "PNG")
    for relpath, data in {"cats/img.png": image, **os_junk(image)}.items():
        (root / relpath).parent.mkdir(parents=True, exist_ok=True)
        (root / relpath).write_bytes(data)
    (root / ".ipynb_checkpoints").mkdir()  # a hidden top-level folder: not a class

    entries, escaped, ignored = listing.list_files(str(root))
    assert listing.list_classes(str(root)) == ["cats"]
    assert [e.relpath for e in entries] == ["cats/img.png"]
    assert escaped == []
    assert ignored == [
        ".ipynb_checkpoints",
        "cats/.DS_Store",
        "cats/._img.png",
        "cats/.ipynb_checkpoints",
        "cats/Thumbs.db",
        "cats/desktop.ini",
    ]
    counts = {
        spec.COUNT_FILES_SEEN: 7,
        spec.COUNT_INGESTED: 1,
        spec.COUNT_QUARANTINED: 0,
        spec.COUNT_DUPLICATES: 0,  # the checkpoint copy of img.png is not even read
        spec.COUNT_IGNORED: 6,
        spec.COUNT_TRANSCODED: 0,
        spec.COUNT_DOWNSCALED: 0,
    }

    def check_counts(tallies):
        (tally,) = tallies
        assert {name: tally[name] for name in counts} == counts
        assert tally[spec.COUNT_FILES_SEEN] == sum(
            tally[name]
            for name in (
                spec.COUNT_INGESTED,
                spec.COUNT_QUARANTINED,
                spec.COUNT_DUPLICATES,
                spec.COUNT_IGNORED,
            )
        )

    with test_pipeline.TestPipeline() as p:
        out = p | ingest.IngestImages(entries, escaped, ["cats"], ignored=ignored)
        assert_that(out[ingest.QUARANTINE_OUTPUT], equal_to([]), label="CheckQuarantine")
        assert_that(out[ingest.DUPLICATES_OUTPUT], equal_to([]), label="CheckDup")
        assert_that(out[ingest.COUNTS_OUTPUT], check_counts, label="CheckCounts")
