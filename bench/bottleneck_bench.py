"""BottleneckCache benchmark: Beam cache vs plain Keras, cached vs through-base epochs.

Everything is measured side by side in one run, on the same images and the same
model, and printed as ratios (not a timed test: absolute numbers depend on the
machine, the ratios much less)::

    python -m bench.bottleneck_bench [--images 256] [--size 224] [--batch-size 32] \
        [--out snippet.md] [--no-multiprocessing] [--no-memory] [--workdir DIR]

Inputs, built the way the pipeline builds them:

- images: N deterministic synthetic JPEGs (smooth random colour fields plus mild
  noise, quality 90), each side drawn from [0.8, 1.25] x (8/7 x size), i.e. around
  256x256 for size 224, spread round-robin over 10 class folders, ingested by
  ImageExampleGen's executor into a real Examples artifact (train/eval by content hash);
- transform graph: tf.Transform export of ``components.common.preprocessing.preprocessing_fn``
  (ImageSpec size x size, bilinear stretch, symmetric scaling), written by
  ``components.common.testing.write_transform`` as the tests write theirs;
- base: ``keras.applications.MobileNetV2(include_top=False, weights=None)``, seeded,
  saved with ``components.common.model_io.save_keras``; cut at "out_relu", avg pooling (1280-d).

Figures (see docs/PERFORMANCE.md for what each timing includes):

1. BottleneckCache ``Executor.Do`` end to end (cold cache, DirectRunner in-memory)
   images/s over plain Keras images/s (``preprocess_images`` + frozen extractor in one
   tf.function, same batch size, same images held in memory); target >= 0.85. Also,
   for information, the multi_processing DirectRunner (2 workers; about a minute on 2
   idle cores, skip it with --no-multiprocessing), and the marginal
   throughput from the two fresh-process runs of figure 4 (extra images / extra time,
   i.e. without the job's fixed costs).
2. One head-training epoch (Dense softmax, 10 classes, Keras fit, batch size as given)
   on the cached vectors vs through the frozen base (decode + resize + MobileNetV2
   forward + the same head step); target speedup >= 100x; break-even epochs
   = cache build time / (epoch through base - epoch on cached vectors).
3. Incremental rerun after adding 10% new images (new Examples artifact holding old +
   new, same cache dir): its time as a share of the cold run (target < 20%), and the
   vectors computed (target: only the new images).
4. Peak RSS (VmHWM) of the cache job at 1x and 4x the images, each in a fresh
   subprocess; target 4x/1x <= 1.25 (roughly flat).
"""

from __future__ import annotations

import argparse
import datetime
import io
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from PIL import Image
from tfx.types import standard_artifacts

from components.bottleneck_cache import spec
from components.bottleneck_cache.testing import run_executor as run_cache_executor
from components.common import examples as contract
from components.common import model_io, model_surgery, testing
from components.common import preprocessing as pp
from components.common.examples import IMAGE_KEY, LABEL_KEY
from components.image_example_gen.testing import run_executor as run_ingest

REPO = Path(__file__).resolve().parents[1]
SEED = 20251125
CUT_LAYER = "out_relu"
NUM_CLASSES = 10
TRAIN_RATIO = 0.8
NEW_SHARE = 0.10  # incremental rerun: 10% new images
MEMORY_SCALE = 4
WARMUP_IMAGES = 16
CACHED_EPOCHS = 10  # timed epochs on cached vectors (median taken)
MULTI_ARGS = ["--direct_running_mode=multi_processing", "--direct_num_workers=2"]
RESULT_PREFIX = "BOTTLENECK_BENCH_RESULT "

TARGET_THROUGHPUT = 0.85
TARGET_SPEEDUP = 100.0
TARGET_INCREMENTAL = 0.20
TARGET_MEMORY = 1.25


# --- inputs ---------------------------------------------------------------------------
def make_image(index: int, size: int, seed: int = SEED) -> bytes:
    """A deterministic smooth random JPEG whose sides are around 8/7 x size."""
    rng = np.random.default_rng([seed, index])
    around = size * 8 / 7
    height, width = (int(round(around * rng.uniform(0.8, 1.25))) for _ in range(2))
    coarse = rng.uniform(0, 255, (6, 6, 3)).astype(np.uint8)
    field = np.asarray(Image.fromarray(coarse).resize((width, height), Image.BICUBIC), float)
    pixels = np.clip(field + rng.normal(0, 6, field.shape), 0, 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG", quality=90)
    return out.getvalue()


def write_images(folder: str, start: int, count: int, size: int) -> None:
    """Writes images start..start+count-1 into <folder>/class_<k>/ (k = index mod 10)."""
    for index in range(start, start + count):
        directory = os.path.join(folder, f"class_{index % NUM_CLASSES}")
        os.makedirs(directory, exist_ok=True)
        with open(os.path.join(directory, f"img_{index:05d}.jpg"), "wb") as f:
            f.write(make_image(index, size))


def ingest(folder: str, uri: str):
    """ImageExampleGen's executor on `folder`; returns the Examples artifact."""
    examples, _, _ = run_ingest(folder, uri, train_ratio=TRAIN_RATIO)
    return examples


def read_records(examples_uri: str, splits, feature_spec: dict) -> dict[str, np.ndarray]:
    """The parsed records of the given splits of an Examples artifact, concatenated."""
    files = []
    for split in splits:
        files += tf.io.gfile.glob(os.path.join(examples_uri, f"Split-{split}", "data_tfrecord-*"))
    dataset = tf.data.TFRecordDataset(sorted(files), compression_type="GZIP").batch(4096)
    parts = [tf.io.parse_example(batch, feature_spec) for batch in dataset]
    return {key: np.concatenate([p[key].numpy() for p in parts]) for key in feature_spec}


def save_base(directory: str, size: int, seed: int = SEED) -> str:
    """Seeded MobileNetV2 without top (random weights) saved as <directory>/model.keras."""
    keras.utils.set_random_seed(seed)
    model = keras.applications.MobileNetV2(
        include_top=False, weights=None, input_shape=(size, size, 3)
    )
    return testing.save_base(model, directory)


def load_extractor(base_uri: str) -> keras.Model:
    """The same frozen extractor the cache builds: cut at CUT_LAYER, avg pooling."""
    return model_surgery.feature_extractor(model_io.load_keras(base_uri), CUT_LAYER, pooling="avg")


# --- the cache job --------------------------------------------------------------------
def run_cache(job: dict, name: str, beam_args=None) -> tuple[float, object]:
    """Times BottleneckCache's Executor.Do end to end; returns (seconds, output artifact).

    `job` holds examples (uri), split_names, transform, base, cache_dir, work, batch_size.
    """
    examples = testing.artifact(standard_artifacts.Examples, job["examples"], job["split_names"])
    transform = testing.artifact(standard_artifacts.TransformGraph, job["transform"])
    base = testing.artifact(standard_artifacts.Model, job["base"])
    start = time.perf_counter()
    output = run_cache_executor(
        examples,
        transform,
        base,
        os.path.join(job["work"], "bottlenecks", name),
        cache_dir=job["cache_dir"],
        tmp_dir=os.path.join(job["work"], "tmp", name),
        unique_id=name,
        beam_args=beam_args,
        cut_layer=CUT_LAYER,
        batch_size=job["batch_size"],
    )
    return time.perf_counter() - start, output


def computed(output) -> int:
    return output.get_int_custom_property(spec.PROP_COMPUTED)


def reused(output) -> int:
    return output.get_int_custom_property(spec.PROP_REUSED)


# --- 1. throughput --------------------------------------------------------------------
def keras_seconds(encoded: np.ndarray, extractor, image_spec: pp.ImageSpec, batch: int) -> float:
    """Plain TF/Keras: preprocess_images + extractor in one tf.function, batch by batch.

    Images are already in memory; the trace (first call) is a warm-up, not timed.
    """

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def compute(images):
        return extractor(image_spec.preprocess(images), training=False)

    batches = [tf.constant(encoded[i : i + batch]) for i in range(0, len(encoded), batch)]
    compute(batches[0]).numpy()
    start = time.perf_counter()
    for images in batches:
        compute(images).numpy()
    return time.perf_counter() - start


def keras_cold_seconds(encoded: np.ndarray, base_uri: str, image_spec, batch: int) -> float:
    """Plain Keras as a fresh job would run it: load model.keras, cut, trace, predict."""
    start = time.perf_counter()
    extractor = load_extractor(base_uri)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def compute(images):
        return extractor(image_spec.preprocess(images), training=False)

    for i in range(0, len(encoded), batch):
        compute(tf.constant(encoded[i : i + batch])).numpy()
    return time.perf_counter() - start


def measure_throughput(args, setup: dict) -> dict:
    """Warm-up Do (small set), Keras pass, cold Do, Keras pass again (best kept)."""
    image_spec = pp.ImageSpec(height=args.size, width=args.size)
    warm_job = {**setup["job"], "cache_dir": os.path.join(setup["work"], "cache_warmup")}
    warm_job.update(examples=setup["warmup"].uri, split_names=setup["warmup"].split_names)
    warm_job["base"] = setup["warmup_base"]  # another model: the cold Do loads its own
    warm_seconds, _ = run_cache(warm_job, "warmup")
    encoded = read_records(
        setup["job"]["examples"],
        contract.SPLITS,
        {IMAGE_KEY: tf.io.FixedLenFeature([], tf.string)},
    )[IMAGE_KEY]
    extractor = load_extractor(setup["job"]["base"])
    keras_runs = [keras_seconds(encoded, extractor, image_spec, args.batch_size)]
    cold_seconds, cold = run_cache(setup["job"], "cold")
    keras_runs.append(keras_seconds(encoded, extractor, image_spec, args.batch_size))
    keras_cold = keras_cold_seconds(encoded, setup["job"]["base"], image_spec, args.batch_size)
    images = len(encoded)
    return {
        "images": images,
        "warmup_do_s": warm_seconds,
        "keras_s": min(keras_runs),
        "keras_runs_s": keras_runs,
        "keras_ips": images / min(keras_runs),
        "keras_cold_s": keras_cold,
        "cold_s": cold_seconds,
        "cold_ips": images / cold_seconds,
        "cold_computed": computed(cold),
        "cold_output": cold.uri,
        "throughput_ratio": (images / cold_seconds) / (images / min(keras_runs)),
    }


def measure_multiprocessing(setup: dict, keras_ips: float) -> dict:
    """The same cold job under DirectRunner multi_processing with 2 workers."""
    job = {**setup["job"], "cache_dir": os.path.join(setup["work"], "cache_multi")}
    seconds, output = run_cache(job, "multi", beam_args=MULTI_ARGS)
    images = computed(output) + reused(output)
    return {
        "multi_s": seconds,
        "multi_ips": images / seconds,
        "multi_ratio": images / seconds / keras_ips,
    }


# --- 2. epochs ------------------------------------------------------------------------
class EpochTimer(keras.callbacks.Callback):
    """Wall time of every epoch of a fit (on_epoch_begin to on_epoch_end)."""

    def __init__(self):
        super().__init__()
        self.seconds: list[float] = []
        self._start = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)


def head_layer() -> keras.layers.Layer:
    keras.utils.set_random_seed(SEED)
    return keras.layers.Dense(NUM_CLASSES, activation="softmax", name="head")


def fit_epochs(model: keras.Model, dataset: tf.data.Dataset, epochs: int) -> list[float]:
    """Compiles (Adam, sparse CE) and fits; returns every epoch's seconds."""
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    timer = EpochTimer()
    model.fit(dataset, epochs=epochs, verbose=0, callbacks=[timer])
    return timer.seconds


def measure_epochs(args, setup: dict, cold_output: str, cold_seconds: float) -> dict:
    """Head epoch on the cached train vectors vs through the frozen base (first epoch of
    each fit is the warm-up, not counted)."""
    image_spec = pp.ImageSpec(height=args.size, width=args.size)
    extractor = load_extractor(setup["job"]["base"])
    dim = int(extractor.outputs[0].shape[-1])
    records = read_records(
        cold_output,
        [contract.TRAIN_SPLIT],
        {
            contract.BOTTLENECK_KEY: tf.io.FixedLenFeature([dim], tf.float32),
            IMAGE_KEY: tf.io.FixedLenFeature([], tf.string),
            LABEL_KEY: tf.io.FixedLenFeature([], tf.int64),
        },
    )
    labels = records[LABEL_KEY]
    cached = tf.data.Dataset.from_tensor_slices((records[contract.BOTTLENECK_KEY], labels))
    cached_model = keras.Sequential([keras.Input((dim,)), head_layer()])
    cached_epochs = fit_epochs(
        cached_model, cached.batch(args.batch_size).prefetch(tf.data.AUTOTUNE), 1 + CACHED_EPOCHS
    )
    images = tf.data.Dataset.from_tensor_slices((records[IMAGE_KEY], labels))
    images = images.batch(args.batch_size).map(lambda e, y: (image_spec.preprocess(e), y))
    inputs = keras.Input((args.size, args.size, 3))
    base_model = keras.Model(inputs, head_layer()(extractor(inputs, training=False)))
    base_epochs = fit_epochs(base_model, images.prefetch(tf.data.AUTOTUNE), 2)
    epoch_cached = float(np.median(cached_epochs[1:]))
    epoch_base = base_epochs[1]
    return {
        "train_records": len(labels),
        "epoch_cached_s": epoch_cached,
        "epoch_base_s": epoch_base,
        "epoch_base_warmup_s": base_epochs[0],
        "speedup": epoch_base / epoch_cached,
        "break_even_epochs": cold_seconds / (epoch_base - epoch_cached),
    }


# --- 3. incremental -------------------------------------------------------------------
def measure_incremental(args, setup: dict, cold_seconds: float) -> dict:
    """Adds 10% new images to the folder, re-ingests, reruns on the same cache dir; then
    reruns once more with nothing new (the floor: the job's fixed costs and I/O)."""
    new = max(1, round(args.images * NEW_SHARE))
    write_images(setup["folder"], args.images, new, args.size)
    examples = ingest(setup["folder"], os.path.join(setup["work"], "ingest_incremental"))
    job = {**setup["job"], "examples": examples.uri, "split_names": examples.split_names}
    shutil.copytree(job["cache_dir"], os.path.join(setup["work"], "cache_after_cold"))
    seconds, output = run_cache(job, "incremental")
    rerun_seconds, rerun = run_cache(job, "unchanged")
    total = computed(output) + reused(output)
    setup["incremental_examples"] = examples
    return {
        "new_images": new,
        "incr_s": seconds,
        "incr_computed": computed(output),
        "incr_reused": reused(output),
        "incr_total": total,
        "incr_share": seconds / cold_seconds,
        "unchanged_s": rerun_seconds,
        "unchanged_computed": computed(rerun),
    }


# --- 4. memory ------------------------------------------------------------------------
def status_kb(field: str) -> int:
    """A field of /proc/self/status in kB (VmRSS, VmHWM), or -1 where there is none."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return -1


def cache_job_child(job: dict) -> None:
    """Runs one cold cache job in this (fresh) process and prints its memory figures."""
    start_rss = status_kb("VmRSS")  # after the imports, before the job
    seconds, output = run_cache(job, job["name"])
    result = {
        "seconds": seconds,
        "computed": computed(output),
        "start_rss_kb": start_rss,
        "vmhwm_kb": status_kb("VmHWM"),
        # ru_maxrss is not used: subprocess starts the child with vfork, and Linux
        # carries the parent's high-water mark into ru_maxrss across exec.
        "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }
    print(RESULT_PREFIX + json.dumps(result), flush=True)


def run_child(job: dict) -> dict:
    """cache_job_child in a fresh Python process; returns its result."""
    command = [sys.executable, "-m", "bench.bottleneck_bench", "--cache-job", json.dumps(job)]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if done.returncode or not lines:
        raise RuntimeError(f"cache job {job['name']} failed:\n{done.stderr[-4000:]}")
    return json.loads(lines[-1][len(RESULT_PREFIX) :])


def measure_memory(args, setup: dict) -> dict:
    """Peak RSS of a cold cache job on 1x and MEMORY_SCALE x the images, fresh processes."""
    folder = os.path.join(setup["work"], f"images_x{MEMORY_SCALE}")
    write_images(folder, 0, args.images * MEMORY_SCALE, args.size)  # 1x is a subset
    larger = ingest(folder, os.path.join(setup["work"], f"ingest_x{MEMORY_SCALE}"))
    results = {}
    for scale, examples in ((1, setup["examples"]), (MEMORY_SCALE, larger)):
        job = {
            **setup["job"],
            "examples": examples.uri,
            "split_names": examples.split_names,
            "cache_dir": os.path.join(setup["work"], f"cache_memory_x{scale}"),
            "name": f"memory_x{scale}",
        }
        results[scale] = run_child(job)
    one, many = results[1], results[MEMORY_SCALE]
    incremental = setup.get("incremental_examples")
    fresh = {}
    if incremental is not None:  # the incremental rerun again, in a fresh process
        job = {
            **setup["job"],
            "examples": incremental.uri,
            "split_names": incremental.split_names,
            "cache_dir": os.path.join(setup["work"], "cache_after_cold"),
            "name": "incremental_fresh",
        }
        run = run_child(job)
        fresh = {"incr_fresh": run, "incr_fresh_share": run["seconds"] / one["seconds"]}
    return {
        **fresh,
        "mem_1x": one,
        "mem_nx": many,
        "mem_ratio": many["vmhwm_kb"] / one["vmhwm_kb"],
        # The two fresh-process runs differ only in the images: their difference is
        # the per-image cost of the job, free of its fixed costs.
        "marginal_ips": (many["computed"] - one["computed"]) / (many["seconds"] - one["seconds"]),
    }


# --- report ---------------------------------------------------------------------------
def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def gib(kb: float) -> str:
    return f"{kb / 2**20:.2f} GiB"


Row = tuple[str, str, str, str, str]  # id, figure, measured, target, result


def throughput_rows(r: dict) -> list[Row]:
    """Figure 1 and its information rows (those that were measured)."""
    keras_ips = r["keras_ips"]
    rows = [
        (
            "1",
            "cache throughput / Keras predict (DirectRunner in-memory)",
            f"{r['throughput_ratio']:.2f} ({r['cold_ips']:.1f} vs {keras_ips:.1f} img/s)",
            f">= {TARGET_THROUGHPUT}",
            verdict(r["throughput_ratio"] >= TARGET_THROUGHPUT),
        )
    ]
    if "multi_ratio" in r:
        measured = f"{r['multi_ratio']:.2f} ({r['multi_ips']:.1f} vs {keras_ips:.1f} img/s)"
        rows.append(
            ("1b", "cache throughput / Keras predict (multi_processing, 2 workers)", measured)
            + ("-", "info")
        )
    if "keras_cold_s" in r:
        ratio = r["keras_cold_s"] / r["cold_s"]
        measured = f"{ratio:.2f} ({r['cold_s']:.1f} s vs {r['keras_cold_s']:.1f} s)"
        figure = "cold Do / Keras load + cut + trace + predict (both pay the model load)"
        rows.append(("1d", figure, measured, "-", "info"))
    if "marginal_ips" in r:
        ratio = r["marginal_ips"] / keras_ips
        measured = f"{ratio:.2f} ({r['marginal_ips']:.1f} vs {keras_ips:.1f} img/s)"
        figure = f"marginal cache throughput (1x vs {MEMORY_SCALE}x runs) / Keras predict"
        rows.append(("1c", figure, measured, "-", "info"))
    return rows


def other_rows(r: dict) -> list[Row]:
    """Figures 2, 3 and 4 (4 only when measured)."""
    share = r["incr_computed"] / r["incr_total"]
    rows = [
        (
            "2",
            "head epoch speedup: through frozen base / on cached vectors",
            f"{r['speedup']:.0f}x ({r['epoch_base_s']:.2f} s vs "
            f"{r['epoch_cached_s'] * 1000:.1f} ms)",
            f">= {TARGET_SPEEDUP:.0f}x",
            verdict(r["speedup"] >= TARGET_SPEEDUP),
        ),
        (
            "2b",
            "break-even epochs: cache build / (epoch via base - epoch cached)",
            f"{r['break_even_epochs']:.2f} ({r['cold_s']:.1f} s build)",
            "-",
            "info",
        ),
        (
            "3",
            f"incremental rerun (+{NEW_SHARE:.0%} images): time / cold run",
            f"{r['incr_share']:.0%} ({r['incr_s']:.1f} s vs {r['cold_s']:.1f} s)",
            f"< {TARGET_INCREMENTAL:.0%}",
            verdict(r["incr_share"] < TARGET_INCREMENTAL),
        ),
        (
            "3b",
            "incremental rerun: vectors computed / records",
            f"{r['incr_computed']} / {r['incr_total']} ({share:.1%}; {r['new_images']} new)",
            "only the new",
            verdict(r["incr_computed"] == r["new_images"]),
        ),
    ]
    if "incr_fresh_share" in r:
        fresh = r["incr_fresh"]
        measured = (
            f"{r['incr_fresh_share']:.0%} ({fresh['seconds']:.1f} s vs "
            f"{r['mem_1x']['seconds']:.1f} s; {fresh['computed']} computed)"
        )
        figure = "incremental rerun (+10%), fresh process / cold run, fresh process"
        rows.append(("3c", figure, measured, "-", "info"))
    if "mem_ratio" in r:
        measured = (
            f"{r['mem_ratio']:.2f} ({gib(r['mem_nx']['vmhwm_kb'])} vs "
            f"{gib(r['mem_1x']['vmhwm_kb'])})"
        )
        figure = f"peak RSS of the cache job: {MEMORY_SCALE}x / 1x images"
        rows.append(
            ("4", figure, measured, f"<= {TARGET_MEMORY}", verdict(r["mem_ratio"] <= TARGET_MEMORY))
        )
    return rows


def format_table(r: dict) -> str:
    header = ("#", "figure", "measured", "target", "result")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in throughput_rows(r) + other_rows(r)]
    return "\n".join(lines)


def format_details(args, r: dict) -> str:
    """The raw timings behind the ratios, one per line."""
    lines = [
        f"images: {r['images']} ingested (train {r['train_records']}), input {args.size}x"
        f"{args.size}, batch {args.batch_size}, base MobileNetV2 (weights=None) cut "
        f"{CUT_LAYER} + avg pooling",
        f"warm-up Do ({WARMUP_IMAGES} images, own cache): {r['warmup_do_s']:.1f} s",
        "keras predict passes: " + ", ".join(f"{s:.2f} s" for s in r["keras_runs_s"]),
        f"keras load + cut + trace + predict: {r['keras_cold_s']:.2f} s",
        f"cold Do: {r['cold_s']:.2f} s, {r['cold_computed']} vectors computed",
    ]
    if "multi_s" in r:
        lines.append(f"cold Do, multi_processing x2: {r['multi_s']:.2f} s")
    lines += [
        f"epoch through base: {r['epoch_base_s']:.2f} s (first, with tracing: "
        f"{r['epoch_base_warmup_s']:.2f} s); epoch on cached vectors: median of "
        f"{CACHED_EPOCHS} = {r['epoch_cached_s'] * 1000:.1f} ms",
        f"incremental Do: {r['incr_s']:.2f} s ({r['incr_computed']} computed, "
        f"{r['incr_reused']} reused); rerun with nothing new: {r['unchanged_s']:.2f} s "
        f"({r['unchanged_computed']} computed)",
    ]
    for key, scale in (("mem_1x", 1), ("mem_nx", MEMORY_SCALE)):
        if key in r:
            m = r[key]
            lines.append(
                f"memory {scale}x (fresh process): VmHWM {gib(m['vmhwm_kb'])}, RSS after "
                f"imports {gib(m['start_rss_kb'])}, Do {m['seconds']:.1f} s, "
                f"{m['computed']} computed"
            )
    if "incr_fresh" in r:
        m = r["incr_fresh"]
        lines.append(
            f"incremental (+{r['new_images']}) in a fresh process: Do {m['seconds']:.1f} s, "
            f"{m['computed']} computed, VmHWM {gib(m['vmhwm_kb'])}"
        )
    return "\n".join(lines)


# --- main -----------------------------------------------------------------------------
def prepare(args, work: str) -> dict:
    """Images, Examples artifacts, transform graph and base model under `work`."""
    folder = os.path.join(work, "images")
    write_images(folder, 0, args.images, args.size)
    examples = ingest(folder, os.path.join(work, "ingest"))
    warmup_folder = os.path.join(work, "images_warmup")
    write_images(warmup_folder, 10**6, WARMUP_IMAGES, args.size)
    warmup = ingest(warmup_folder, os.path.join(work, "ingest_warmup"))
    pattern = os.path.join(examples.uri, f"Split-{contract.TRAIN_SPLIT}", "*")
    record = next(iter(tf.data.TFRecordDataset(tf.io.gfile.glob(pattern), "GZIP"))).numpy()
    image_spec = pp.ImageSpec(height=args.size, width=args.size)
    job = {
        "examples": examples.uri,
        "split_names": examples.split_names,
        "transform": testing.write_transform(os.path.join(work, "transform"), record, image_spec),
        "base": save_base(os.path.join(work, "base"), args.size),
        "cache_dir": os.path.join(work, "cache"),
        "work": work,
        "batch_size": args.batch_size,
    }
    return {
        "work": work,
        "folder": folder,
        "examples": examples,
        "warmup": warmup,
        "warmup_base": save_base(os.path.join(work, "base_warmup"), args.size, SEED + 1),
        "job": job,
    }


def run(args, work: str) -> dict:
    """Every measurement, in order; returns the flat result dict."""
    setup = prepare(args, work)
    r = measure_throughput(args, setup)
    r.update(measure_epochs(args, setup, r["cold_output"], r["cold_s"]))
    r.update(measure_incremental(args, setup, r["cold_s"]))
    if not args.no_multiprocessing:
        r.update(measure_multiprocessing(setup, r["keras_ips"]))
    if not args.no_memory:
        r.update(measure_memory(args, setup))
    return r


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=256, help="images at 1x (default 256)")
    parser.add_argument("--size", type=int, default=224, help="model input side (default 224)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--out", help="also write the table and details (markdown) here")
    parser.add_argument("--workdir", help="keep the artifacts here (default: a temp dir)")
    parser.add_argument(
        "--no-multiprocessing",
        action="store_true",
        help="skip figure 1b (DirectRunner multi_processing, 2 workers: about 1 min)",
    )
    parser.add_argument("--no-memory", action="store_true", help="skip figure 4 (and 1c)")
    parser.add_argument("--cache-job", help=argparse.SUPPRESS)  # internal: memory child
    args = parser.parse_args(argv)
    if args.images < 10:
        parser.error("--images must be at least 10")
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.cache_job:
        cache_job_child(json.loads(args.cache_job))
        return
    work = args.workdir or tempfile.mkdtemp(prefix="bottleneck_bench_")
    start, load_before = time.perf_counter(), os.getloadavg()[0]
    try:
        results = run(args, work)
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.python_version()}"
    report = (
        f"BottleneckCache benchmark, {stamp} ({machine}; TF {tf.__version__}, "
        f"Keras {keras.__version__})\n\n{format_table(results)}\n\n"
        f"{format_details(args, results)}\n\ntotal wall time: "
        f"{time.perf_counter() - start:.0f} s; 1-minute load average at start "
        f"{load_before:.2f}, at end {os.getloadavg()[0]:.2f} (other processes skew timings)\n"
    )
    print("\n" + report)
    if args.out:
        Path(args.out).write_text(report)


if __name__ == "__main__":
    main()
