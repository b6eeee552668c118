"""BottleneckCache benchmark: Beam cache vs plain Keras, cached vs through-base epochs.

Everything is measured side by side in one run, on the same images and the same
model, and printed as ratios (not a timed test: absolute numbers depend on the
machine, the ratios much less)::

    python -m bench.bottleneck_bench [--base mobilenet_v2|vgg16|both] [--images 256] \
        [--size 224] [--vgg16-sizes 96[,224]] [--vgg16-cuts block4_pool[,block5_pool]] \
        [--batch-size 32] [--out snippet.md] [--no-multiprocessing] [--no-memory] \
        [--workdir DIR] [--demo demo_data/photos]

Inputs, built the way the pipeline builds them:

- images: N deterministic synthetic JPEGs (smooth random colour fields plus mild
  noise, quality 90), each side drawn from [0.8, 1.25] x (8/7 x size), i.e. around
  256x256 for size 224, spread round-robin over 10 class folders, ingested by
  ImageExampleGen's executor into a real Examples artifact (train/eval by content hash);
- transform graph: tf.Transform export of ``components.common.preprocessing.preprocessing_fn``
  (ImageSpec size x size, bilinear stretch, the base's scaling), written by
  ``components.common.testing.write_transform`` as the tests write theirs;
- bases (``--base``; both by default), each ``include_top=False, weights=None`` (random
  weights compute at the same speed as pretrained ones; nothing is downloaded), seeded,
  saved with ``components.common.model_io.save_keras``, avg pooling:
  ``keras.applications.MobileNetV2`` at ``--size`` (224), cut at "out_relu" (1280-d),
  symmetric scaling; and the heavy base ``keras.applications.VGG16`` at each of
  ``--vgg16-sizes`` (96, the photo demo's size, pipeline/configs/photos.yaml; 224 is
  VGG16's native one), cut at each of ``--vgg16-cuts`` (block4_pool, the cut the demo's
  ``cut_layer: auto`` picks, 512-d), caffe scaling as in the demo.
  Images are generated per input size (sides around 8/7 x size).

MobileNetV2 gets every figure below; VGG16 gets figure 2 (its own warm-up and cold Do
as in figure 1, then the two epochs), and figure 2 is printed for every (base, size,
cut) side by side in one table at the end.

Figures (see docs/PERFORMANCE.md for what each timing includes):

1. BottleneckCache ``Executor.Do`` end to end (cold cache, DirectRunner in-memory)
   images/s over plain Keras images/s (``preprocess_images`` + frozen extractor in one
   tf.function, same batch size, same images held in memory); target >= 0.85. Also,
   for information, the multi_processing DirectRunner (2 workers; about a minute on 2
   idle cores, skip it with --no-multiprocessing), and the marginal
   throughput from the two fresh-process runs of figure 4 (extra images / extra time,
   i.e. without the job's fixed costs).
2. One head-training epoch (Dense softmax, 10 classes, Keras fit, batch size as given)
   on the cached vectors vs through the frozen base (decode + resize + the base's
   forward + the same head step; median of BASE_EPOCHS epochs after the first, which
   traces); target speedup >= 100x; break-even epochs
   = cache build time (cold Do) / (epoch through base - epoch on cached vectors), from
   wall times and from this process's CPU times (time.process_time over the same spans:
   other processes on a shared machine skew it much less).
3. Incremental rerun after adding 10% new images (new Examples artifact holding old +
   new, same cache dir): its time as a share of the cold run (target < 20%), and the
   vectors computed (target: only the new images).
4. Peak RSS (VmHWM) of the cache job at 1x and 4x the images, each in a fresh
   subprocess; target 4x/1x <= 1.25 (roughly flat).
5. Per base (MobileNetV2, and VGG16 at each size with its first cut): the limit, the
   forward pass of the cut, pooled base on tensors already decoded and resized (same
   batch size, best of two passes, one before and one after the children), against the
   cold job in fresh processes at 1x and 4x images (the children of figure 4): ratios
   (targets >= 0.7 at 1x, >= 0.85 at 4x), marginal rate and peak memory per base.
   Beside the limit, the ceiling of any job that decodes: plain TF, warm, decode +
   resize + forward in one traced call per batch (best of two passes). With
   the fresh-process figures also 3c (+10% in a fresh process / cold in a fresh
   process, target <= 25%) and 3d (nothing new in a fresh process).
6. ``--demo DIR``: the photo demo's cache step (VGG16 96x96, caffe scaling, cut_layer
   auto) on DIR's class folders, each run a fresh process: cold, nothing new (target:
   whole process < 10 s), +10% new images (target: Do <= 25% of the cold Do).
"""

from __future__ import annotations

import argparse
import dataclasses
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
NUM_CLASSES = 10
TRAIN_RATIO = 0.8
NEW_SHARE = 0.10  # incremental rerun: 10% new images
MEMORY_SCALE = 4
WARMUP_IMAGES = 16
CACHED_EPOCHS = 10  # timed epochs on cached vectors (median taken)
BASE_EPOCHS = 3  # timed epochs through the frozen base (median taken)
MULTI_ARGS = ["--direct_running_mode=multi_processing", "--direct_num_workers=2"]
RESULT_PREFIX = "BOTTLENECK_BENCH_RESULT "

TARGET_THROUGHPUT = 0.85
TARGET_SPEEDUP = 100.0
TARGET_INCREMENTAL = 0.20
TARGET_MEMORY = 1.25
TARGET_LIMIT_1X = 0.70  # cold job in a fresh process / the limit, at 1x (256) images
TARGET_LIMIT_NX = 0.85  # the same at MEMORY_SCALE x (1,024) images
TARGET_FRESH_INCREMENTAL = 0.25  # +10% images, fresh process / cold, fresh process
TARGET_DEMO_UNCHANGED_S = 10.0  # the demo's cache step with nothing new, whole process


@dataclasses.dataclass(frozen=True)
class Base:
    """A Keras Applications base without top (weights=None), cut and avg-pooled."""

    key: str  # the --base choice
    name: str  # keras.applications.<name>
    cut: str  # the default cut layer
    scaling: str  # ImageSpec.scaling the pipeline would use for it

    def build(self, size: int) -> keras.Model:
        application = getattr(keras.applications, self.name)
        return application(include_top=False, weights=None, input_shape=(size, size, 3))


MOBILENET_V2 = Base("mobilenet_v2", "MobileNetV2", "out_relu", "symmetric")
# The heavy base: the photo demo's network (issue 14), cut at a generic block.
VGG16 = Base("vgg16", "VGG16", "block4_pool", "caffe")
VGG16_CUTS = ("block3_pool", "block4_pool", "block5_pool")


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


def save_base(directory: str, size: int, seed: int = SEED, base: Base = MOBILENET_V2) -> str:
    """Seeded `base` without top (random weights) saved as <directory>/model.keras."""
    keras.utils.set_random_seed(seed)
    return testing.save_base(base.build(size), directory)


def load_extractor(base_uri: str, cut_layer: str) -> keras.Model:
    """The same frozen extractor the cache builds: cut at `cut_layer`, avg pooling."""
    return model_surgery.feature_extractor(model_io.load_keras(base_uri), cut_layer, pooling="avg")


# --- the cache job --------------------------------------------------------------------
def run_cache(job: dict, name: str, beam_args=None) -> tuple[float, object]:
    """Times BottleneckCache's Executor.Do end to end; returns (seconds, output artifact).

    `job` holds examples (uri), split_names, transform, base, cut_layer, cache_dir, work,
    batch_size.
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
        cut_layer=job["cut_layer"],
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


def keras_cold_seconds(encoded: np.ndarray, job: dict, image_spec, batch: int) -> float:
    """Plain Keras as a fresh job would run it: load model.keras, cut, trace, predict."""
    start = time.perf_counter()
    extractor = load_extractor(job["base"], job["cut_layer"])

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def compute(images):
        return extractor(image_spec.preprocess(images), training=False)

    for i in range(0, len(encoded), batch):
        compute(tf.constant(encoded[i : i + batch])).numpy()
    return time.perf_counter() - start


def warm_up(setup: dict, job: dict, name: str) -> float:
    """A Do on the small warm-up set with another base of the same kind, into its own
    cache (imports, TF runtime, Beam); the cold Do that follows still loads and traces
    its own base. Returns its seconds."""
    warm_job = {**job, "cache_dir": os.path.join(setup["work"], f"cache_{name}")}
    warm_job.update(examples=setup["warmup"].uri, split_names=setup["warmup"].split_names)
    warm_job["base"] = setup["warmup_base"]  # another model: the cold Do loads its own
    return run_cache(warm_job, name)[0]


def measure_throughput(args, setup: dict) -> dict:
    """Warm-up Do (small set), Keras pass, cold Do, Keras pass again (best kept)."""
    image_spec = setup["image_spec"]
    warm_seconds = warm_up(setup, setup["job"], "warmup")
    encoded = read_records(
        setup["job"]["examples"],
        contract.SPLITS,
        {IMAGE_KEY: tf.io.FixedLenFeature([], tf.string)},
    )[IMAGE_KEY]
    extractor = load_extractor(setup["job"]["base"], setup["job"]["cut_layer"])
    keras_runs = [keras_seconds(encoded, extractor, image_spec, args.batch_size)]
    cpu_start = time.process_time()
    cold_seconds, cold = run_cache(setup["job"], "cold")
    cold_cpu = time.process_time() - cpu_start
    keras_runs.append(keras_seconds(encoded, extractor, image_spec, args.batch_size))
    keras_cold = keras_cold_seconds(encoded, setup["job"], image_spec, args.batch_size)
    images = len(encoded)
    return {
        "images": images,
        "warmup_do_s": warm_seconds,
        "keras_s": min(keras_runs),
        "keras_runs_s": keras_runs,
        "keras_ips": images / min(keras_runs),
        "keras_cold_s": keras_cold,
        "cold_s": cold_seconds,
        "cold_cpu_s": cold_cpu,
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
    """Wall time and this process's CPU time (all threads) of every epoch of a fit
    (on_epoch_begin to on_epoch_end)."""

    def __init__(self):
        super().__init__()
        self.seconds: list[float] = []
        self.cpu_seconds: list[float] = []
        self._start = self._cpu_start = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._start, self._cpu_start = time.perf_counter(), time.process_time()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)
        self.cpu_seconds.append(time.process_time() - self._cpu_start)


def head_layer() -> keras.layers.Layer:
    keras.utils.set_random_seed(SEED)
    return keras.layers.Dense(NUM_CLASSES, activation="softmax", name="head")


def fit_epochs(model: keras.Model, dataset: tf.data.Dataset, epochs: int) -> EpochTimer:
    """Compiles (Adam, sparse CE) and fits; returns the timer (every epoch's seconds)."""
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    timer = EpochTimer()
    model.fit(dataset, epochs=epochs, verbose=0, callbacks=[timer])
    return timer


def break_even(build: float, through_base: float, cached: float) -> float:
    """Epochs after which building the cache has paid for itself."""
    return build / (through_base - cached)


def measure_epochs(args, setup: dict, cold: dict, job=None) -> dict:
    """Head epoch on the cached train vectors vs through the frozen base (first epoch of
    each fit is the warm-up, not counted). `cold` holds the cold Do's cold_output,
    cold_s and cold_cpu_s; `job` (default setup's) names base and cut."""
    job = job or setup["job"]
    image_spec, size = setup["image_spec"], setup["size"]
    extractor = load_extractor(job["base"], job["cut_layer"])
    dim = int(extractor.outputs[0].shape[-1])
    records = read_records(
        cold["cold_output"],
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
    inputs = keras.Input((size, size, 3))
    base_model = keras.Model(inputs, head_layer()(extractor(inputs, training=False)))
    base_epochs = fit_epochs(base_model, images.prefetch(tf.data.AUTOTUNE), 1 + BASE_EPOCHS)
    epoch_cached = float(np.median(cached_epochs.seconds[1:]))
    epoch_base = float(np.median(base_epochs.seconds[1:]))
    epoch_cached_cpu = float(np.median(cached_epochs.cpu_seconds[1:]))
    epoch_base_cpu = float(np.median(base_epochs.cpu_seconds[1:]))
    return {
        "train_records": len(labels),
        "dim": dim,
        "epoch_cached_s": epoch_cached,
        "epoch_base_s": epoch_base,
        "epoch_base_warmup_s": base_epochs.seconds[0],
        "epoch_base_runs_s": base_epochs.seconds[1:],
        "epoch_cached_cpu_s": epoch_cached_cpu,
        "epoch_base_cpu_s": epoch_base_cpu,
        "speedup": epoch_base / epoch_cached,
        "break_even_epochs": break_even(cold["cold_s"], epoch_base, epoch_cached),
        "break_even_cpu": break_even(cold["cold_cpu_s"], epoch_base_cpu, epoch_cached_cpu),
    }


# --- 3. incremental -------------------------------------------------------------------
def measure_incremental(args, setup: dict, cold_seconds: float) -> dict:
    """Adds 10% new images to the folder, re-ingests, reruns on the same cache dir; then
    reruns once more with nothing new (the floor: the job's fixed costs and I/O)."""
    new = max(1, round(args.images * NEW_SHARE))
    write_images(setup["folder"], args.images, new, setup["size"])
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
    cpu_start = time.process_time()
    seconds, output = run_cache(job, job["name"])
    result = {
        "seconds": seconds,
        "cpu_s": time.process_time() - cpu_start,
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
    start = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    process_seconds = time.perf_counter() - start
    lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if done.returncode or not lines:
        raise RuntimeError(f"cache job {job['name']} failed:\n{done.stderr[-4000:]}")
    # process_s: the whole child, from exec to exit (interpreter, imports, Do, teardown)
    return {**json.loads(lines[-1][len(RESULT_PREFIX) :]), "process_s": process_seconds}


def pixel_batches(encoded: np.ndarray, image_spec: pp.ImageSpec, batch: int) -> list:
    """The images decoded, resized and scaled ahead of time, in batches (for the limit)."""
    return [
        image_spec.preprocess(tf.constant(encoded[i : i + batch]))
        for i in range(0, len(encoded), batch)
    ]


def limit_seconds(batches: list, extractor) -> float:
    """The forward pass alone: the cut, pooled base on tensors already decoded and
    resized, one traced call per batch and .numpy() of each result (trace not timed)."""
    spec_ = tf.TensorSpec([None, *batches[0].shape[1:]], tf.float32)

    @tf.function(input_signature=[spec_])
    def forward(images):
        return extractor(images, training=False)

    forward(batches[0]).numpy()
    start = time.perf_counter()
    for images in batches:
        forward(images).numpy()
    return time.perf_counter() - start


def measure_fresh(args, setup: dict, job: dict) -> dict:
    """The limit and the cold job in fresh processes at 1x and MEMORY_SCALE x images.

    The limit (forward pass on pre-decoded, pre-resized tensors, same batch size) is
    timed in this process on the 1x images just before and just after the two fresh
    processes; the faster pass is kept. Each child runs a cold Do (fresh cache dir) and
    reports its Do time and its peak RSS.
    """
    folder = os.path.join(setup["work"], f"images_x{MEMORY_SCALE}")
    write_images(folder, 0, args.images * MEMORY_SCALE, setup["size"])  # 1x is a subset
    larger = ingest(folder, os.path.join(setup["work"], f"ingest_x{MEMORY_SCALE}"))
    encoded = read_records(
        setup["examples"].uri, contract.SPLITS, {IMAGE_KEY: tf.io.FixedLenFeature([], tf.string)}
    )[IMAGE_KEY]
    batches = pixel_batches(encoded, setup["image_spec"], args.batch_size)
    extractor = load_extractor(job["base"], job["cut_layer"])
    limit_runs = [limit_seconds(batches, extractor)]
    # The ceiling of any job that decodes: plain TF, warm, decode + resize + forward in
    # one traced call per batch (no Beam, no load, no trace timed).
    decode_runs = [keras_seconds(encoded, extractor, setup["image_spec"], args.batch_size)]
    results = {}
    for scale, examples in ((1, setup["examples"]), (MEMORY_SCALE, larger)):
        child = {
            **job,
            "examples": examples.uri,
            "split_names": examples.split_names,
            "cache_dir": os.path.join(setup["work"], f"cache_fresh_{job['cut_layer']}_x{scale}"),
            "name": f"fresh_{job['cut_layer']}_x{scale}",
        }
        results[scale] = run_child(child)
    limit_runs.append(limit_seconds(batches, extractor))
    decode_runs.append(keras_seconds(encoded, extractor, setup["image_spec"], args.batch_size))
    one, many = results[1], results[MEMORY_SCALE]
    limit_ips = len(encoded) / min(limit_runs)
    return {
        "limit_ips": limit_ips,
        "limit_runs_s": limit_runs,
        "decode_ips": len(encoded) / min(decode_runs),
        "decode_runs_s": decode_runs,
        "mem_1x": one,
        "mem_nx": many,
        "mem_ratio": many["vmhwm_kb"] / one["vmhwm_kb"],
        "limit_ratio_1x": one["computed"] / one["seconds"] / limit_ips,
        "limit_ratio_nx": many["computed"] / many["seconds"] / limit_ips,
        # The two fresh-process runs differ only in the images: their difference is
        # the per-image cost of the job, free of its fixed costs.
        "marginal_ips": (many["computed"] - one["computed"]) / (many["seconds"] - one["seconds"]),
    }


def measure_memory(args, setup: dict) -> dict:
    """Figure 4 and 5 on MobileNetV2 (measure_fresh), then the incremental rerun and a
    rerun with nothing new, each in a fresh process."""
    fresh = measure_fresh(args, setup, setup["job"])
    incremental = setup.get("incremental_examples")
    if incremental is not None:  # the incremental rerun again, in a fresh process
        job = {
            **setup["job"],
            "examples": incremental.uri,
            "split_names": incremental.split_names,
            "cache_dir": os.path.join(setup["work"], "cache_after_cold"),
            "name": "incremental_fresh",
        }
        run = run_child(job)
        fresh.update(incr_fresh=run, incr_fresh_share=run["seconds"] / fresh["mem_1x"]["seconds"])
        # nothing new: the cache the incremental child completed, same records
        fresh["unchanged_fresh"] = run_child({**job, "name": "unchanged_fresh"})
    return fresh


# --- 6. the photo demo in fresh processes (--demo) -------------------------------------
DEMO_SPEC = pp.ImageSpec(height=96, width=96, scaling="caffe")  # pipeline/configs/photos.yaml
DEMO_TRAIN_RATIO = 0.2


def add_to_classes(folder: str, count: int, size: int) -> None:
    """`count` new synthetic JPEGs spread round-robin over the existing class folders."""
    classes = sorted(
        name for name in os.listdir(folder) if os.path.isdir(os.path.join(folder, name))
    )
    for index in range(count):
        path = os.path.join(folder, classes[index % len(classes)], f"bench_new_{index:04d}.jpg")
        with open(path, "wb") as f:
            f.write(make_image(10**5 + index, size))


def measure_demo(args, work: str) -> dict:
    """The photo demo's cache step (VGG16 at 96, cut_layer auto: every block boundary),
    each run in a fresh process as on Kubeflow: cold (empty cache), nothing new, and
    +10% new images (ingested into a new Examples artifact, same cache)."""
    folder = os.path.join(work, "photos")
    shutil.copytree(args.demo, folder)
    examples, _, _ = run_ingest(folder, os.path.join(work, "ingest"), train_ratio=DEMO_TRAIN_RATIO)
    job = cache_job(work, examples, DEMO_SPEC, VGG16, model_surgery.CUT_AUTO, args.batch_size)
    cold = run_child({**job, "name": "demo_cold"})
    unchanged = run_child({**job, "name": "demo_unchanged"})
    new = max(1, round(cold["computed"] * NEW_SHARE))
    add_to_classes(folder, new, DEMO_SPEC.height * 7 // 8)
    grown, _, _ = run_ingest(
        folder, os.path.join(work, "ingest_grown"), train_ratio=DEMO_TRAIN_RATIO
    )
    incremental = run_child(
        {**job, "examples": grown.uri, "split_names": grown.split_names, "name": "demo_incr"}
    )
    return {
        "demo_cold": cold,
        "demo_unchanged": unchanged,
        "demo_incr": incremental,
        "demo_new": new,
        "demo_incr_share": incremental["seconds"] / cold["seconds"],
        "demo_incr_process_share": incremental["process_s"] / cold["process_s"],
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
            f"{r['break_even_epochs']:.2f} ({r['cold_s']:.1f} s build; CPU time: "
            f"{r['break_even_cpu']:.2f})",
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
        figure = "incremental rerun (+10%), fresh process / cold run, fresh process (Do)"
        target = f"<= {TARGET_FRESH_INCREMENTAL:.0%}"
        ok = r["incr_fresh_share"] <= TARGET_FRESH_INCREMENTAL
        rows.append(("3c", figure, measured, target, verdict(ok)))
        same = r["unchanged_fresh"]
        measured = (
            f"Do {same['seconds']:.1f} s, whole process {same['process_s']:.1f} s "
            f"({same['computed']} computed)"
        )
        rows.append(("3d", "rerun with nothing new, fresh process", measured, "-", "info"))
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
        f"{args.size}, batch {args.batch_size}, base {MOBILENET_V2.name} (weights=None) cut "
        f"{MOBILENET_V2.cut} + avg pooling",
        f"warm-up Do ({WARMUP_IMAGES} images, own cache): {r['warmup_do_s']:.1f} s",
        "keras predict passes: " + ", ".join(f"{s:.2f} s" for s in r["keras_runs_s"]),
        f"keras load + cut + trace + predict: {r['keras_cold_s']:.2f} s",
        f"cold Do: {r['cold_s']:.2f} s, {r['cold_computed']} vectors computed",
    ]
    if "multi_s" in r:
        lines.append(f"cold Do, multi_processing x2: {r['multi_s']:.2f} s")
    lines += [
        f"epoch through base: median of {BASE_EPOCHS} = {r['epoch_base_s']:.2f} s "
        f"({', '.join(f'{x:.2f}' for x in r['epoch_base_runs_s'])}; first, with tracing: "
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


def limit_row(r: dict) -> dict:
    """Figure 5's inputs of one (base, size, cut): the limit and the fresh cold runs."""
    keys = ("base", "size", "cut", "limit_ips", "limit_runs_s", "decode_ips", "decode_runs_s")
    keys += ("mem_1x", "mem_nx")
    keys += ("mem_ratio", "limit_ratio_1x", "limit_ratio_nx", "marginal_ips", "load_1min")
    return {key: r[key] for key in keys}


def format_limits(rows: list[dict]) -> str:
    """Figure 5 per base, side by side: the cold job in a fresh process against the
    limit (the forward pass alone), at 1x and 4x images, and the peak memory."""
    header = (
        "base",
        "input",
        "cut",
        "limit: forward pass only",
        "plain TF decode + forward, warm (/ limit)",
        "cold job, fresh process, 1x: img/s (/ limit)",
        f"{MEMORY_SCALE}x: img/s (/ limit)",
        "marginal (/ limit)",
        f"peak RSS 1x, {MEMORY_SCALE}x ({MEMORY_SCALE}x / 1x)",
        "result",
    )
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        one, many = r["mem_1x"], r["mem_nx"]
        ok = (
            r["limit_ratio_1x"] >= TARGET_LIMIT_1X,
            r["limit_ratio_nx"] >= TARGET_LIMIT_NX,
            r["mem_ratio"] <= TARGET_MEMORY,
        )
        cells = (
            r["base"],
            f"{r['size']}x{r['size']}",
            r["cut"],
            f"{r['limit_ips']:.1f} img/s",
            f"{r['decode_ips']:.1f} ({r['decode_ips'] / r['limit_ips']:.2f})",
            f"{one['computed'] / one['seconds']:.1f} ({r['limit_ratio_1x']:.2f}), "
            f"{one['computed']} images",
            f"{many['computed'] / many['seconds']:.1f} ({r['limit_ratio_nx']:.2f}), "
            f"{many['computed']} images",
            f"{r['marginal_ips']:.1f} ({r['marginal_ips'] / r['limit_ips']:.2f})",
            f"{gib(one['vmhwm_kb'])}, {gib(many['vmhwm_kb'])} ({r['mem_ratio']:.2f})",
            " / ".join(verdict(x) for x in ok),
        )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_limit_details(rows: list[dict]) -> str:
    """Per base: the limit passes and the two children's times."""
    lines = []
    for r in rows:
        parts = [
            f"{r['base']} {r['size']}x{r['size']} {r['cut']}: limit passes "
            + ", ".join(f"{x:.2f} s" for x in r["limit_runs_s"])
            + "; decode + forward passes "
            + ", ".join(f"{x:.2f} s" for x in r["decode_runs_s"])
        ]
        for key, scale in (("mem_1x", 1), ("mem_nx", MEMORY_SCALE)):
            m = r[key]
            parts.append(
                f"{scale}x child: Do {m['seconds']:.2f} s (CPU {m['cpu_s']:.1f} s), whole "
                f"process {m['process_s']:.1f} s, RSS after imports {gib(m['start_rss_kb'])}"
            )
        lines.append("; ".join(parts))
    return "\n".join(lines)


def format_demo(r: dict) -> str:
    """Figure 6: the photo demo's cache step, each run in a fresh process."""
    cold, same, incr = r["demo_cold"], r["demo_unchanged"], r["demo_incr"]

    def run(m: dict) -> str:
        return (
            f"Do {m['seconds']:.2f} s (CPU {m['cpu_s']:.1f} s), whole process "
            f"{m['process_s']:.1f} s, {m['computed']} computed, VmHWM {gib(m['vmhwm_kb'])}"
        )

    unchanged_ok = same["process_s"] < TARGET_DEMO_UNCHANGED_S
    incr_ok = r["demo_incr_share"] <= TARGET_FRESH_INCREMENTAL
    return "\n".join(
        [
            "| # | figure (photo demo, VGG16 96x96, cut auto, fresh processes) | measured "
            "| target | result |",
            "|---|---|---|---|---|",
            f"| 6 | nothing new: whole process | {same['process_s']:.1f} s (Do "
            f"{same['seconds']:.2f} s) | < {TARGET_DEMO_UNCHANGED_S:.0f} s | "
            f"{verdict(unchanged_ok)} |",
            f"| 6b | +{r['demo_new']} images (10%): Do / cold Do | {r['demo_incr_share']:.0%} "
            f"({incr['seconds']:.2f} s vs {cold['seconds']:.2f} s; whole processes "
            f"{r['demo_incr_process_share']:.0%}) | <= {TARGET_FRESH_INCREMENTAL:.0%} | "
            f"{verdict(incr_ok)} |",
            "",
            f"cold: {run(cold)}",
            f"nothing new: {run(same)}",
            f"+{r['demo_new']} new: {run(incr)}",
        ]
    )


def comparison_row(r: dict) -> dict:
    """Figure 2's inputs of one (base, size, cut), as format_comparison takes them."""
    keys = ("base", "size", "cut", "images", "train_records", "dim", "load_1min")
    keys += ("warmup_do_s", "cold_s", "epoch_base_s", "epoch_base_warmup_s", "epoch_cached_s")
    keys += ("epoch_base_runs_s", "cold_cpu_s", "epoch_base_cpu_s", "epoch_cached_cpu_s")
    return {key: r[key] for key in keys + ("speedup", "break_even_epochs", "break_even_cpu")}


def format_comparison(rows: list[dict]) -> str:
    """Figure 2 per base, side by side: cache build, the two epochs, break-even."""
    header = (
        "base",
        "input",
        "cut (vector)",
        "cache build (cold Do): wall (CPU)",
        "epoch through frozen base: wall (CPU)",
        "epoch on cached vectors: wall (CPU)",
        "speedup (wall)",
        "break-even epochs: wall (CPU)",
    )
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        cells = (
            r["base"],
            f"{r['size']}x{r['size']}",
            f"{r['cut']} ({r['dim']}-d)",
            f"{r['cold_s']:.1f} s ({r['cold_cpu_s']:.1f} s), {r['images']} images",
            f"{r['epoch_base_s']:.2f} s ({r['epoch_base_cpu_s']:.2f} s), "
            f"{r['train_records']} train",
            f"{r['epoch_cached_s'] * 1000:.1f} ms ({r['epoch_cached_cpu_s'] * 1000:.1f} ms)",
            f"{r['speedup']:.0f}x",
            f"{r['break_even_epochs']:.2f} ({r['break_even_cpu']:.2f})",
        )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_comparison_details(rows: list[dict]) -> str:
    """Per (base, size, cut): the rates and warm-ups behind the comparison table."""
    lines = []
    for r in rows:
        lines.append(
            f"{r['base']} {r['size']}x{r['size']} {r['cut']}: warm-up Do {r['warmup_do_s']:.1f} s; "
            f"cold Do {r['cold_s']:.2f} s = {r['images'] / r['cold_s']:.1f} img/s; epochs "
            f"through base {', '.join(f'{x:.2f}' for x in r['epoch_base_runs_s'])} s, median "
            f"{r['train_records'] / r['epoch_base_s']:.1f} img/s (first epoch, with tracing: "
            f"{r['epoch_base_warmup_s']:.2f} s); 1-minute load average at its start "
            f"{r['load_1min']:.2f}"
        )
    return "\n".join(lines)


# --- main -----------------------------------------------------------------------------
def cache_job(work: str, examples, image_spec: pp.ImageSpec, base: Base, cut_layer: str, batch):
    """The cache job's inputs under `work` (see run_cache): the transform graph for
    `image_spec` (traced on the first train record) and the seeded `base` at its size."""
    pattern = os.path.join(examples.uri, f"Split-{contract.TRAIN_SPLIT}", "*")
    record = next(iter(tf.data.TFRecordDataset(tf.io.gfile.glob(pattern), "GZIP"))).numpy()
    return {
        "examples": examples.uri,
        "split_names": examples.split_names,
        "transform": testing.write_transform(os.path.join(work, "transform"), record, image_spec),
        "base": save_base(os.path.join(work, "base"), image_spec.height, SEED, base),
        "cut_layer": cut_layer,
        "cache_dir": os.path.join(work, "cache"),
        "work": work,
        "batch_size": batch,
    }


def prepare(args, work: str, base: Base = MOBILENET_V2, size: int | None = None) -> dict:
    """Images, Examples artifacts, transform graph and base model under `work`."""
    size = size or args.size
    folder = os.path.join(work, "images")
    write_images(folder, 0, args.images, size)
    examples = ingest(folder, os.path.join(work, "ingest"))
    warmup_folder = os.path.join(work, "images_warmup")
    write_images(warmup_folder, 10**6, WARMUP_IMAGES, size)
    warmup = ingest(warmup_folder, os.path.join(work, "ingest_warmup"))
    image_spec = pp.ImageSpec(height=size, width=size, scaling=base.scaling)
    job = cache_job(work, examples, image_spec, base, base.cut, args.batch_size)
    return {
        "work": work,
        "folder": folder,
        "base": base,
        "size": size,
        "image_spec": image_spec,
        "examples": examples,
        "warmup": warmup,
        "warmup_base": save_base(os.path.join(work, "base_warmup"), size, SEED + 1, base),
        "job": job,
    }


def run_full(args, work: str) -> dict:
    """Every figure (1 to 4) on MobileNetV2, in order; returns the flat result dict."""
    setup = prepare(args, work)
    load = os.getloadavg()[0]
    r = measure_throughput(args, setup)
    r.update(measure_epochs(args, setup, r))
    r.update(base=MOBILENET_V2.name, size=args.size, cut=MOBILENET_V2.cut, load_1min=load)
    r.update(measure_incremental(args, setup, r["cold_s"]))
    if not args.no_multiprocessing:
        r.update(measure_multiprocessing(setup, r["keras_ips"]))
    if not args.no_memory:
        r.update(measure_memory(args, setup))
    return r


def measure_cut(args, setup: dict, cut: str, fresh: bool = False) -> dict:
    """Figure 2 for one base, size and cut: a warm-up Do on another base of the same
    kind, the cold Do (the cache build, as in figure 1), then the two epochs; with
    `fresh`, figure 5 (measure_fresh) too."""
    load = os.getloadavg()[0]
    cache_dir = os.path.join(setup["work"], f"cache_{cut}")
    job = {**setup["job"], "cut_layer": cut, "cache_dir": cache_dir}
    warm_seconds = warm_up(setup, job, f"warmup_{cut}")
    cpu_start = time.process_time()
    cold_seconds, cold = run_cache(job, f"cold_{cut}")
    cold_cpu = time.process_time() - cpu_start
    r = {
        "base": setup["base"].name,
        "size": setup["size"],
        "cut": cut,
        "load_1min": load,
        "images": computed(cold) + reused(cold),
        "warmup_do_s": warm_seconds,
        "cold_s": cold_seconds,
        "cold_cpu_s": cold_cpu,
        "cold_output": cold.uri,
    }
    r.update(measure_epochs(args, setup, r, job))
    if fresh:
        r.update(measure_fresh(args, setup, job))
    return r


def run(args, work: str) -> dict:
    """The selected bases: {"full": figures 1-4 on MobileNetV2 or None, "rows": figure 2
    per (base, size, cut), "limits": figure 5 per base (first cut of each size), "demo":
    figure 6 or None}."""
    full, rows, limits, demo = None, [], [], None
    if args.base in (MOBILENET_V2.key, "both"):
        full = run_full(args, os.path.join(work, f"mobilenet_v2_{args.size}"))
        rows.append(comparison_row(full))
        if "limit_ips" in full:
            limits.append(limit_row(full))
    if args.base in (VGG16.key, "both"):
        for size in args.vgg16_sizes:
            setup = prepare(args, os.path.join(work, f"vgg16_{size}"), VGG16, size)
            for index, cut in enumerate(args.vgg16_cuts):
                fresh = index == 0 and not args.no_memory
                r = measure_cut(args, setup, cut, fresh)
                rows.append(comparison_row(r))
                if fresh:
                    limits.append(limit_row(r))
    if args.demo:
        demo = measure_demo(args, os.path.join(work, "demo"))
    return {"full": full, "rows": rows, "limits": limits, "demo": demo}


def int_list(text: str) -> list[int]:
    """ "128,224" -> [128, 224] (argparse type)."""
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected sizes separated by commas: {text!r}") from None
    if not values or min(values) < 32:
        raise argparse.ArgumentTypeError(f"expected sizes of at least 32 (VGG16's least): {text!r}")
    return values


def cut_list(text: str) -> list[str]:
    """ "block4_pool,block5_pool" -> the names, each one of VGG16_CUTS (argparse type)."""
    values = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [value for value in values if value not in VGG16_CUTS]
    if not values or unknown:
        raise argparse.ArgumentTypeError(f"expected some of {', '.join(VGG16_CUTS)}: {text!r}")
    return values


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--base",
        choices=(MOBILENET_V2.key, VGG16.key, "both"),
        default="both",
        help="mobilenet_v2: figures 1 to 4 on MobileNetV2; vgg16: figure 2 (cache build, "
        "the two epochs, break-even) on VGG16; both (default): the two, figure 2 side by side",
    )
    parser.add_argument("--images", type=int, default=256, help="images at 1x (default 256)")
    parser.add_argument(
        "--size", type=int, default=224, help="MobileNetV2's input side (default 224)"
    )
    parser.add_argument(
        "--vgg16-sizes",
        type=int_list,
        default=[96],
        help="VGG16's input sides, comma-separated (default 96, the photo demo's; 224 is "
        "its native size)",
    )
    parser.add_argument(
        "--vgg16-cuts",
        type=cut_list,
        default=[VGG16.cut],
        help=f"VGG16's cut layers, comma-separated, of {', '.join(VGG16_CUTS)} "
        f"(default {VGG16.cut})",
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--out", help="also write the tables and details (markdown) here")
    parser.add_argument("--workdir", help="keep the artifacts here (default: a temp dir)")
    parser.add_argument(
        "--no-multiprocessing",
        action="store_true",
        help="skip figure 1b (DirectRunner multi_processing, 2 workers: about 1 min)",
    )
    parser.add_argument(
        "--no-memory",
        action="store_true",
        help="skip the fresh-process figures: 4, 5 (the limit) and 1c, 3c, 3d",
    )
    parser.add_argument(
        "--demo",
        metavar="DIR",
        help="also figure 6: the photo demo's cache step in fresh processes, on the class "
        "folders in DIR (demo_data/photos, written by `tfx-transfer demo-data`)",
    )
    parser.add_argument("--cache-job", help=argparse.SUPPRESS)  # internal: memory child
    args = parser.parse_args(argv)
    if args.images < 10:
        parser.error("--images must be at least 10")
    return args


def format_report(args, results: dict, header: str, footer: str) -> str:
    """The whole printed report: figures 1-4 (when run), then figure 2 per base."""
    parts = [header]
    full = results["full"]
    if full is not None:
        parts += [format_table(full), format_details(args, full)]
    parts += [
        "Figure 2 per base, same run: one head epoch through the frozen base vs on cached "
        "vectors; break-even epochs = cache build / (epoch through base - epoch on cache), "
        "from wall times and (in brackets) from this process's CPU times, which other "
        "processes on the machine skew much less",
        format_comparison(results["rows"]),
        format_comparison_details(results["rows"]),
    ]
    if results["limits"]:
        parts += [
            "Figure 5 per base, same run: the cold job (Executor.Do, empty cache) in a fresh "
            f"process against the limit, the forward pass of the cut, pooled base on tensors "
            f"already decoded and resized (same batch size, best of two passes); targets "
            f">= {TARGET_LIMIT_1X} at 1x, >= {TARGET_LIMIT_NX} at {MEMORY_SCALE}x, peak RSS "
            f"{MEMORY_SCALE}x / 1x <= {TARGET_MEMORY} (result: 1x / {MEMORY_SCALE}x / memory)",
            format_limits(results["limits"]),
            format_limit_details(results["limits"]),
        ]
    if results["demo"] is not None:
        parts.append(format_demo(results["demo"]))
    parts.append(footer)
    return "\n\n".join(parts) + "\n"


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.cache_job:
        cache_job_child(json.loads(args.cache_job))
        return
    work = args.workdir or tempfile.mkdtemp(prefix="bottleneck_bench_")
    start, load_before = time.perf_counter(), os.getloadavg()
    try:
        results = run(args, work)
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.python_version()}"
    header = (
        f"BottleneckCache benchmark, {stamp} ({machine}; TF {tf.__version__}, "
        f"Keras {keras.__version__})"
    )
    load_after = os.getloadavg()
    footer = (
        f"total wall time: {time.perf_counter() - start:.0f} s; load average (1, 5, 15 min) "
        f"at start {', '.join(f'{x:.2f}' for x in load_before)}, at end "
        f"{', '.join(f'{x:.2f}' for x in load_after)} (other processes skew timings)"
    )
    report = format_report(args, results, header, footer)
    print("\n" + report)
    if args.out:
        Path(args.out).write_text(report)


if __name__ == "__main__":
    main()
