"""Tests of ImageExampleGen's pure core (ingest.py): listing, validation, Beam job.

The hostile folder built here holds every kind of file the component must survive;
test_image_example_gen_component.py reuses build_hostile_root.
"""

import hashlib
import io
import os
import zlib
from pathlib import Path

import apache_beam as beam
import numpy as np
import pytest
import tensorflow as tf
from apache_beam.testing import test_pipeline
from apache_beam.testing.util import assert_that, equal_to
from PIL import Image

from components.image_example_gen import ingest, spec

MAX_PIXELS = 1000  # the over-size fixture image is 40 x 40 = 1600 pixels


def encode(mode, color, fmt, size=(5, 7), **save_args) -> bytes:
    """A tiny solid image encoded with Pillow."""
    out = io.BytesIO()
    Image.new(mode, size, color).save(out, fmt, **save_args)
    return out.getvalue()


def _noise_png(size=(20, 20)) -> bytes:
    pixels = np.random.default_rng(0).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "PNG")
    return out.getvalue()


def _gif_two_frames() -> bytes:
    out = io.BytesIO()
    first = Image.new("RGB", (5, 7), (255, 0, 0)).convert("P")
    second = Image.new("RGB", (5, 7), (0, 0, 255)).convert("P")
    first.save(out, "GIF", save_all=True, append_images=[second], duration=10)
    return out.getvalue()


# relpath -> (bytes, class) of every image that must be ingested from the hostile root.
def _valid_files() -> dict:
    return {
        "cats/a.jpg": encode("RGB", (200, 10, 10), "JPEG"),
        "cats/rgb8.png": encode("RGB", (10, 200, 10), "PNG"),
        "cats/grey16.png": encode("I;16", 40000, "PNG"),
        "cats/palette.png": encode("P", 7, "PNG"),
        "cats/grey.png": encode("L", 77, "PNG"),
        "cats/rgba.png": encode("RGBA", (1, 2, 3, 128), "PNG"),
        "cats/anim.gif": _gif_two_frames(),
        "cats/bitmap.bmp": encode("RGB", (9, 99, 199), "BMP"),
        "cats/cmyk.jpg": encode("CMYK", (10, 120, 30, 40), "JPEG"),
        "cats/onebit.bmp": encode("1", 1, "BMP"),  # TensorFlow cannot decode 1-bit BMP
        "cats/ünï cødé ñame.png": encode("RGB", (3, 33, 133), "PNG"),
        "cats/nested/deeper/n.png": encode("RGB", (4, 44, 144), "PNG"),
        "dogs/d.png": encode("RGB", (5, 55, 155), "PNG"),
        "with space/w s.png": encode("RGB", (6, 66, 166), "PNG"),
    }


# AppleDouble ("._<name>") files that macOS writes next to files on foreign volumes:
# a resource-fork header, not an image.
APPLE_DOUBLE = b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        " + bytes(40)


def _os_junk(real_image: bytes) -> dict:
    """relpath -> bytes of files that operating systems and tools drop into a class folder.

    Every one of them is ignored: neither ingested nor quarantined (the hidden folder,
    holding a real image, counts as one ignored entry and is not walked).
    """
    return {
        "cats/.DS_Store": b"\x00\x00\x00\x01Bud1" + bytes(20),
        "cats/._img.png": APPLE_DOUBLE,
        "cats/Thumbs.db": b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(24),
        "cats/desktop.ini": b"[.ShellClassInfo]\r\nIconResource=x\r\n",
        "cats/.ipynb_checkpoints/img-checkpoint.png": real_image,
    }


def build_hostile_root(tmp_path: Path) -> tuple[Path, dict]:
    """Builds the hostile folder; returns (root, expected) for assertions.

    expected has "valid" {relpath: bytes}, "quarantined" {relpath: reason fragment},
    "duplicates" {relpath: kept relpath}, "transcoded" (set of relpaths), "classes",
    "ignored" (sorted relpaths of OS junk files and hidden folders).
    """
    root, outside = tmp_path / "root", tmp_path / "outside"
    valid = _valid_files()
    truncated = _noise_png()
    conflict = encode("RGB", (8, 88, 188), "PNG")
    files = {
        **valid,
        "cats/empty.jpg": b"",
        "cats/truncated.png": truncated[: len(truncated) * 6 // 10],
        "cats/text.png": b"this is not an image\n",
        "cats/scan.tiff": encode("RGB", (1, 1, 1), "TIFF"),
        "cats/huge.png": encode("RGB", (1, 2, 3), "PNG", size=(40, 40)),
        "cats/copy_of_a.jpg": valid["cats/a.jpg"],
        "dogs/conflict.png": conflict,
        "birds/conflict_copy.png": conflict,
        "root_file.png": encode("RGB", (9, 9, 9), "PNG"),
        "../outside/secret.png": encode("RGB", (7, 7, 7), "PNG"),
        "../outside/dir/inner.png": encode("RGB", (6, 6, 6), "PNG"),
        # OS junk, ignored: in a class folder, at the root, in a hidden top-level folder.
        **_os_junk(encode("RGB", (11, 111, 211), "PNG")),
        "dogs/THUMBS.DB": b"junk",
        ".DS_Store": b"junk",
        ".git/objects/img.png": encode("RGB", (12, 112, 212), "PNG"),
    }
    for relpath, data in files.items():
        path = root / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    (root / "empty_class").mkdir()
    os.symlink(outside / "secret.png", root / "cats/escape_file.png")
    os.symlink(outside / "dir", root / "cats/escape_dir")
    os.symlink("rgb8.png", root / "cats/zlink.png")  # inside the root: followed
    os.symlink("..", root / "cats/loop")  # a cycle: not entered again
    os.symlink("missing.png", root / "cats/broken.png")
    with open(os.fsencode(root / "cats") + b"/bad\xffname.png", "wb") as f:
        f.write(encode("RGB", (5, 5, 5), "PNG"))  # a name that is not UTF-8
    expected = {
        "valid": valid,
        "quarantined": {
            "cats/empty.jpg": "empty file (0 bytes)",
            "cats/truncated.png": "corrupt or truncated image",
            "cats/text.png": "not an image Pillow can identify",
            "cats/scan.tiff": "unsupported format TIFF; convert to PNG or JPEG",
            "cats/huge.png": "40 x 40 = 1600 pixels exceeds max_pixels=1000",
            "cats/escape_file.png": f"symlink leaves the input root -> {outside / 'secret.png'}",
            "cats/escape_dir": f"symlink leaves the input root -> {outside / 'dir'}",
            "cats/broken.png": "broken symlink -> missing.png",
            "cats/bad\ufffdname.png": "name is not valid UTF-8; rename it",
            "dogs/conflict.png": "same image in classes birds, dogs; keep it in one class folder",
            "birds/conflict_copy.png": "same image in classes birds, dogs",
            "root_file.png": f"not inside a class folder; move it into {root}/<class>/",
        },
        "duplicates": {"cats/copy_of_a.jpg": "cats/a.jpg", "cats/zlink.png": "cats/rgb8.png"},
        "transcoded": {"cats/onebit.bmp"},
        "classes": ["birds", "cats", "dogs", "empty_class", "with space"],
        "ignored": [
            ".DS_Store",
            ".git",
            "cats/.DS_Store",
            "cats/._img.png",
            "cats/.ipynb_checkpoints",
            "cats/Thumbs.db",
            "cats/desktop.ini",
            "dogs/THUMBS.DB",
        ],
    }
    return root, expected


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(name="hostile")
def _hostile(tmp_path):
    return build_hostile_root(tmp_path)


# --- listing ---------------------------------------------------------------------------


def test_list_files_sorts_every_file_into_entries_or_escaped(hostile):
    root, expected = hostile
    entries, escaped, ignored = ingest.list_files(str(root), labelled=True)
    assert ingest.list_classes(str(root)) == expected["classes"]
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
    entries, escaped, ignored = ingest.list_files(str(root), labelled=False)
    assert ingest.list_classes(str(root), labelled=False) == []
    assert ignored == expected["ignored"]
    assert {e.label for e in entries} == {spec.UNLABELLED}
    assert {e.label_name for e in entries} == {""}
    assert "root_file.png" in {e.relpath for e in entries}
    assert "root_file.png" not in {r["path"] for r in escaped}


def test_list_files_remote_branch_matches_local(tmp_path):
    root = tmp_path / "plain"
    junk = ("a/.DS_Store", "a/Desktop.INI", "a/.hidden/z.png", ".cache/c/w.png")
    for relpath in ("a/x 1.png", "a/deep/y.png", "b/ü.png", *junk):
        (root / relpath).parent.mkdir(parents=True, exist_ok=True)
        (root / relpath).write_bytes(b"x")
    local, _, local_ignored = ingest.list_files(str(root))
    remote, _, remote_ignored = ingest.list_files(f"file://{root}")
    assert [(e.relpath, e.label, e.label_name) for e in remote] == [
        (e.relpath, e.label, e.label_name) for e in local
    ]
    assert [e.relpath for e in local] == ["a/deep/y.png", "a/x 1.png", "b/ü.png"]
    assert local_ignored == [".cache", "a/.DS_Store", "a/.hidden", "a/Desktop.INI"]
    assert remote_ignored == local_ignored
    assert ingest.list_classes(f"file://{root}") == ingest.list_classes(str(root)) == ["a", "b"]
    assert ingest.read_file(remote[0].path) == b"x"


def test_missing_root_raises_clear_error(tmp_path):
    with pytest.raises(ValueError, match="does not exist; point data.root at a folder"):
        ingest.list_files(str(tmp_path / "nope"))
    with pytest.raises(ValueError, match="does not exist"):
        ingest.fingerprint(str(tmp_path / "nope"))
    (tmp_path / "file.png").write_bytes(b"x")
    with pytest.raises(ValueError, match="is a file, not a folder; point data.root"):
        ingest.list_files(str(tmp_path / "file.png"))


def test_fingerprint_tracks_changes(tmp_path):
    root = tmp_path / "root"
    (root / "cats").mkdir(parents=True)
    (root / "cats/a.png").write_bytes(b"one")
    first = ingest.fingerprint(str(root))
    assert ingest.fingerprint(str(root)) == first
    (root / "cats/b.png").write_bytes(b"two")
    added = ingest.fingerprint(str(root))
    assert added != first
    (root / "cats/a.png").write_bytes(b"one!")
    assert ingest.fingerprint(str(root)) != added
    (root / "dogs").mkdir()  # a new, still empty class changes the vocabulary
    assert len({first, added, ingest.fingerprint(str(root))}) == 3


def test_fingerprint_ignores_os_junk(tmp_path):
    """Ignored files never become examples: they do not make TFX's cache re-run."""
    root = tmp_path / "root"
    (root / "cats").mkdir(parents=True)
    (root / "cats/a.png").write_bytes(b"one")
    first = ingest.fingerprint(str(root))
    for relpath, data in _os_junk(b"png").items():
        (root / relpath).parent.mkdir(parents=True, exist_ok=True)
        (root / relpath).write_bytes(data)
    (root / ".git").mkdir()  # a hidden top-level folder is not a new class
    (root / ".git/HEAD").write_bytes(b"ref")
    assert ingest.fingerprint(str(root)) == first
    (root / "cats/.DS_Store").write_bytes(b"changed, longer")
    assert ingest.fingerprint(str(root)) == first
    (root / "cats/b.png").write_bytes(b"two")  # a real change still counts
    assert ingest.fingerprint(str(root)) != first


def test_is_ignored_rule():
    for name in (".DS_Store", "._img.png", ".gitkeep", "Thumbs.db", "THUMBS.DB", "Desktop.ini"):
        assert ingest.is_ignored(name), name
    for name in (".git", ".ipynb_checkpoints"):
        assert ingest.is_ignored(name, is_dir=True), name
    for name in ("img.png", "thumbs.db.png", "my desktop.ini", "a.DS_Store"):
        assert not ingest.is_ignored(name), name
    assert not ingest.is_ignored("Thumbs.db", is_dir=True)  # the file names are files only


# --- one image -------------------------------------------------------------------------


@pytest.mark.parametrize("relpath", sorted(_valid_files()))
def test_read_image_accepts_and_tf_decodes(relpath):
    data = _valid_files()[relpath]
    result = ingest.read_image(data, relpath, MAX_PIXELS)
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
    result = ingest.read_image(_gif_two_frames(), "anim.gif", MAX_PIXELS)
    pixel = tf.io.decode_image(result.data, channels=3, expand_animations=False)[0, 0]
    assert pixel.numpy().tolist() == [255, 0, 0]


def test_read_image_quarantines_with_reason(hostile):
    root, expected = hostile
    by_content = ("empty.jpg", "truncated.png", "text.png", "scan.tiff", "huge.png")
    for name in by_content:  # the others are decided by listing or deduplication
        relpath = f"cats/{name}"
        result = ingest.read_image((root / relpath).read_bytes(), relpath, MAX_PIXELS)
        assert expected["quarantined"][relpath] in result.reason, relpath
        assert result.data == b""


def test_read_image_reports_decompression_bomb_before_decoding():
    # 3000 x 3000 grey PNG compresses to a few KB; max_pixels=100 must stop it unread.
    data = encode("L", 0, "PNG", size=(3000, 3000))
    result = ingest.read_image(data, "bomb.png", max_pixels=100)
    assert result.reason.startswith("3000 x 3000 = 9000000 pixels exceeds max_pixels=100")


def _png_header(width: int, height: int) -> bytes:
    """Signature + IHDR + IEND: enough for Pillow to read the size, no pixel data."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body).to_bytes(4, "big")
        return len(body).to_bytes(4, "big") + kind + body + crc

    ihdr = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 2, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def test_read_image_reports_pillow_decompression_bomb_as_over_size():
    result = ingest.read_image(_png_header(100_000, 100_000), "bomb.png", max_pixels=1000)
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
    result = ingest.read_image(data, "big", max_pixels=10_000, max_side=8)
    assert result.downscaled and not result.transcoded
    assert (result.height, result.width) == (10, 40)  # original size
    assert result.image_format == stored
    decoded = tf.io.decode_image(result.data, channels=3, expand_animations=False)
    assert decoded.shape == (2, 8, 3)
    small = ingest.read_image(data, "big", max_pixels=10_000, max_side=40)
    assert not small.downscaled and small.data == data


def test_split_is_deterministic_and_respects_ratio():
    ids = [sha256(encode("RGB", (i, 255 - i, i // 2), "PNG", size=(2, 2))) for i in range(200)]
    splits = [ingest.assign_split(i, 0.8) for i in ids]
    assert splits == [ingest.assign_split(i, 0.8) for i in ids]
    assert 0.7 < splits.count(spec.TRAIN_SPLIT) / len(ids) < 0.9
    assert {ingest.assign_split(i, 0.0001) for i in ids} == {spec.EVAL_SPLIT}
    # The boundary: int(id[:8], 16) % 10000 < 8000 is train.
    assert ingest.assign_split("00001f3f" + "0" * 56, 0.8) == spec.TRAIN_SPLIT  # 7999
    assert ingest.assign_split("00001f40" + "f" * 56, 0.8) == spec.EVAL_SPLIT  # 8000


def test_make_example_round_trips():
    serialized = ingest.make_example(b"img", 2, "ünï", "ab" * 32, "c/ü x.png", 7, 5, "png")
    parsed = tf.train.Example.FromString(serialized).features.feature
    assert parsed[spec.IMAGE_KEY].bytes_list.value == [b"img"]
    assert parsed[spec.LABEL_KEY].int64_list.value == [2]
    assert parsed[spec.LABEL_NAME_KEY].bytes_list.value[0].decode() == "ünï"
    assert parsed[spec.SOURCE_PATH_KEY].bytes_list.value[0].decode() == "c/ü x.png"
    assert parsed[spec.HEIGHT_KEY].int64_list.value == [7]
    assert parsed[spec.WIDTH_KEY].int64_list.value == [5]
    assert parsed[spec.FORMAT_KEY].bytes_list.value == [b"png"]
    assert parsed[spec.IMAGE_ID_KEY].bytes_list.value == [b"ab" * 32]


# --- the Beam job ----------------------------------------------------------------------


def summarize(serialized: bytes) -> tuple:
    """(source_path, label, label_name, image_id, format, height, width) of an example."""
    feature = tf.train.Example.FromString(serialized).features.feature

    def text(key):
        return feature[key].bytes_list.value[0].decode("utf-8")

    def number(key):
        return feature[key].int64_list.value[0]

    decoded = tf.io.decode_image(
        feature[spec.IMAGE_KEY].bytes_list.value[0], channels=3, expand_animations=False
    )
    assert decoded.shape[2] == 3
    return (
        text(spec.SOURCE_PATH_KEY),
        number(spec.LABEL_KEY),
        text(spec.LABEL_NAME_KEY),
        text(spec.IMAGE_ID_KEY),
        text(spec.FORMAT_KEY),
        number(spec.HEIGHT_KEY),
        number(spec.WIDTH_KEY),
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
    entries, escaped, ignored = ingest.list_files(str(root))
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
    train = expected_examples(expected, spec.TRAIN_SPLIT)
    evaluation = expected_examples(expected, spec.EVAL_SPLIT)
    assert train and evaluation  # ratio 0.5 on 14 images: both splits are used
    counts[ingest.split_count_name(spec.TRAIN_SPLIT)] = len(train)
    counts[ingest.split_count_name(spec.EVAL_SPLIT)] = len(evaluation)
    class_counts = {name: {s: 0 for s in spec.SPLITS} for name in expected["classes"]}
    for split, rows in ((spec.TRAIN_SPLIT, train), (spec.EVAL_SPLIT, evaluation)):
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
            out[spec.TRAIN_SPLIT] | "SumTrain" >> beam.Map(summarize),
            equal_to(train),
            label="CheckTrain",
        )
        assert_that(
            out[spec.EVAL_SPLIT] | "SumEval" >> beam.Map(summarize),
            equal_to(evaluation),
            label="CheckEval",
        )
        assert_that(out[ingest.QUARANTINE_OUTPUT], reasons_match, label="CheckQuarantine")
        assert_that(out[ingest.DUPLICATES_OUTPUT], equal_to(duplicates), label="CheckDup")
        assert_that(out[ingest.COUNTS_OUTPUT], equal_to([counts]), label="CheckCounts")
        assert_that(out[ingest.CLASS_COUNTS_OUTPUT], equal_to([class_counts]), label="CheckCls")
    assert class_counts["empty_class"] == {spec.TRAIN_SPLIT: 0, spec.EVAL_SPLIT: 0}
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
    entries, escaped, ignored = ingest.list_files(str(root), labelled=False)
    assert ignored == []
    gone = ingest.FileEntry("gone.png", str(root / "gone.png"), spec.UNLABELLED, "")

    def check(examples):
        rows = {summarize(e)[0]: summarize(e) for e in examples}
        assert sorted(rows) == sorted(files)
        assert {row[1] for row in rows.values()} == {spec.UNLABELLED}
        assert {row[2] for row in rows.values()} == {""}
        assert rows["a/b/deep.jpg"][4:] == ("jpeg", 6, 12)  # original size kept

    with test_pipeline.TestPipeline() as p:
        out = p | ingest.IngestImages(
            [*entries, gone], escaped, [], 0.5, max_pixels=1000, max_side=4
        )
        both = (out[spec.TRAIN_SPLIT], out[spec.EVAL_SPLIT]) | "Both" >> beam.Flatten()
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
    for relpath, data in {"cats/img.png": image, **_os_junk(image)}.items():
        (root / relpath).parent.mkdir(parents=True, exist_ok=True)
        (root / relpath).write_bytes(data)
    (root / ".ipynb_checkpoints").mkdir()  # a hidden top-level folder: not a class

    entries, escaped, ignored = ingest.list_files(str(root))
    assert ingest.list_classes(str(root)) == ["cats"]
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
