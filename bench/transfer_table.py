"""The photo demo's closing table: what the pretrained lower layers buy, measured.

Five arms over several seeds, each trained by the pipeline's own Trainer code
(``components.trainer.train.train``) on the same few train labels, with the config's
head settings (seed replaced), and scored the same way on the same held-out images:

- **pretrained, generic cut**: the frozen pretrained base cut at the config's
  ``cut_layer`` (a generic block), a new head on the pipeline's own BottleneckCache
  records (what the pipeline's Trainer trains, fine-tuning off);
- **pretrained, top cut**: the same pretrained base cut at ``--top-cut`` (its last
  block, the one retrained for the original task), a new head;
- **random frozen**: the same architecture and cut with seeded random weights (one base
  per seed), a new head: what the architecture alone gives;
- **scratch**: ``--scratch-base`` (default the project's ``small_cnn``) at the same input
  size, every layer trained on the train images: the largest from-scratch network that
  trains in the demo's time on 2 CPU cores (a from-scratch VGG16 does not);
- **fine-tuned**: the generic-cut arm, then its top ``--fine-tune-layers`` weighted
  layers unfrozen and trained with the head at a tenth of the learning rate
  (``fine_tune_lr_factor``), BatchNormalization in inference mode;
- **fine_tune_auto**: the generic-cut arm with ``fine_tune: auto``: the Trainer measures
  off against the top 1 and 2 layers on a fold of the train split and fine-tunes only
  when that wins beyond one standard error (``components.trainer.fine_tune_selection``).
  ``--also-depths 1,2`` adds one fixed-depth arm per k (``fine_tune_k<k>``) to compare
  it with every hand-picked depth.

The other arms' bottleneck records come from BottleneckCache's own executor (a Beam
job, as in the pipeline) into a temporary cache.

Third split: the pipeline's eval split is divided once more by content hash (other
digits of the image id than the train/eval rule's) into **val** (``--val-share``, used
by every arm for early stopping) and **test** (the rest; the only split reported). No
arm trains or early-stops on the test images.

Run after the photo demo's pipeline (``make demo`` runs it)::

    python -m bench.transfer_table --config pipeline/configs/photos.yaml --seeds 5 \
        [--out table.md] [--out table.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time

from pipeline.cli import quiet_third_party

# The CLI's known third-party noise (TensorFlow's C++ start-up lines, the Google
# clients' Python 3.10 FutureWarning), hidden before the imports below print it.
quiet_third_party()
from collections.abc import Callable, Sequence  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import logging as absl_logging  # noqa: E402

from bench.transfer_vs_scratch import (  # noqa: E402
    _MAKE_DEMO,
    MissingArtifactsError,
    evaluate_accuracy,
    finished_uri,
    latest_finished_run,
)
from components.base_model_gen import bases  # noqa: E402
from components.common import model_io  # noqa: E402
from components.common.artifact_io import COMPRESSION, join, read_records, split_files  # noqa: E402
from components.common.examples import IMAGE_ID_KEY  # noqa: E402
from components.common.model_surgery import CUT_AUTO  # noqa: E402
from components.common.schema import class_names_from_schema  # noqa: E402
from components.trainer import data  # noqa: E402
from components.trainer import train as trainer  # noqa: E402
from components.trainer.config import (  # noqa: E402
    FINE_TUNE_AUTO,
    FINE_TUNE_OFF,
    MODE_FULL,
    TrainerConfig,
)

GENERIC, AUTO, TOP, RANDOM, SCRATCH, FINE_TUNED, DEPTH_AUTO = (
    "pretrained_cut",
    "pretrained_auto",
    "pretrained_top",
    "random_frozen",
    "scratch",
    "fine_tuned",
    "fine_tune_auto",
)
ARMS = (GENERIC, AUTO, TOP, RANDOM, SCRATCH, FINE_TUNED, DEPTH_AUTO)
VAL, TEST = "val", "test"
_BEAM_ARGS = ["--direct_running_mode=in_memory", "--direct_num_workers=1"]


# --- inputs --------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Run:
    """The latest pipeline run's artifacts the table needs (uris)."""

    examples: str
    transform: str
    base_model: str  # BaseModelGen's (or SourceTrainer's) Model artifact
    bottlenecks: str
    class_names: tuple[str, ...]


def find_run(metadata_file: str, pipeline_name: str, schema_path: str) -> Run:
    run = latest_finished_run(metadata_file, pipeline_name)

    def uri(node: str, type_name: str) -> str | None:
        return finished_uri(run, node, type_name)

    found = {
        "examples": uri("ImageExampleGen", "Examples"),
        "transform": uri("Transform", "TransformGraph"),
        "base_model": uri("SourceTrainer", "Model") or uri("BaseModelGen", "Model"),
        "bottlenecks": uri("BottleneckCache", "Examples"),
    }
    missing = [name for name, value in found.items() if value is None]
    if missing:
        raise MissingArtifactsError(
            f"the latest run of {pipeline_name!r} ({run.run_id}) lacks {', '.join(missing)} "
            f"(states {run.states}): {_MAKE_DEMO}"
        )
    schema_dir = uri("ImportSchemaGen", "Schema")
    schema = join(schema_dir, "schema.pbtxt") if schema_dir else schema_path
    return Run(**found, class_names=tuple(class_names_from_schema(schema)))


# --- the third split -------------------------------------------------------------------------
def val_or_test(image_id: bytes, val_share: float) -> str:
    """VAL or TEST from digits 8-15 of the content id (the train/eval rule reads 0-7)."""
    return VAL if int(image_id[8:16], 16) % 10000 < round(val_share * 10000) else TEST


def split_eval(examples_uri: str, out_dir: str, val_share: float) -> dict[str, list[str]]:
    """Writes the eval split's records into ``out_dir/{val,test}.gz``; train stays as is.

    Returns:
        {"train": files, "val": [file], "test": [file]}.
    """
    os.makedirs(out_dir, exist_ok=True)
    paths = {part: os.path.join(out_dir, f"{part}.gz") for part in (VAL, TEST)}
    options = tf.io.TFRecordOptions(compression_type=COMPRESSION)
    writers = {part: tf.io.TFRecordWriter(path, options) for part, path in paths.items()}
    with writers[VAL], writers[TEST]:
        for record in read_records(split_files(join(examples_uri, "Split-eval"))):
            serialized = record.numpy()
            example = tf.train.Example.FromString(serialized)
            image_id = example.features.feature[IMAGE_ID_KEY].bytes_list.value[0]
            writers[val_or_test(image_id, val_share)].write(serialized)
    return {
        "train": split_files(join(examples_uri, "Split-train")),
        VAL: [paths[VAL]],
        TEST: [paths[TEST]],
    }


def cache_records(
    run: Run, base_dir: str, cut_layer: str, pooling: str, workdir: str, name: str
) -> str:
    """BottleneckCache's executor (a Beam job) for another base or cut; its output uri."""
    from tfx.types import standard_artifacts  # only for the executor's artifacts

    from components.bottleneck_cache.testing import run_executor
    from components.common.testing import artifact

    examples = artifact(standard_artifacts.Examples, run.examples, '["train", "eval"]')
    output = run_executor(
        examples,
        artifact(standard_artifacts.TransformGraph, run.transform),
        artifact(standard_artifacts.Model, base_dir),
        os.path.join(workdir, "bottlenecks", name),
        cache_dir=os.path.join(workdir, "cache"),
        tmp_dir=os.path.join(workdir, "tmp", name),
        unique_id=name,
        beam_args=_BEAM_ARGS,
        cut_layer=cut_layer,
        pooling=pooling,
    )
    return output.uri


# --- arms -------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Result:
    arm: str
    seed: int
    accuracy: float  # on the test images
    epochs: tuple[int, ...]  # per phase
    seconds: float
    cut: str = ""  # the cut trained (the selected one for cut_layer auto)
    depth: int = 0  # the layers fine-tuned (the measured choice for fine_tune auto)
    selection_seconds: float = 0.0  # fine_tune auto: what measuring the depth took


def train_and_score(
    arm: str,
    config: TrainerConfig,
    run: Run,
    base_dir: str,
    files: dict[str, list[str]],
    test_images: Sequence[str],
) -> Result:
    start = time.perf_counter()
    result = trainer.train(config, run.class_names, base_dir, files["train"], files[VAL])
    accuracy = evaluate_accuracy(result.classifier, config.image, test_images)
    measured = result.fine_tune_selection
    return Result(
        arm,
        config.seed,
        accuracy,
        tuple(phase.epochs_run for phase in result.phases),
        time.perf_counter() - start,
        result.cut_layer,
        result.fine_tune.layers,
        measured.seconds if measured is not None else 0.0,
    )


def run_arms(
    settings: TrainerConfig,
    run: Run,
    seeds: Sequence[int],
    workdir: str,
    *,
    generic_cut: str,
    top_cut: str,
    fine_tune_layers: int,
    scratch_base: str,
    val_share: float,
    random_base: Callable[[int], keras.Model],
    arms: Sequence[str] = ARMS,
    extra_cuts: Sequence[str] = (),
    extra_depths: Sequence[int] = (),
) -> dict[str, list[Result]]:
    """Every arm for every seed (seed-major, so a stopped run still has paired seeds).

    The AUTO arm (the pipeline's Trainer as configured, on the pipeline's records) runs
    only when the config's cut_layer is "auto"; the fixed-cut arms use `generic_cut`.
    Each of `extra_cuts` adds an arm "cut_<layer>": the pretrained base frozen at that
    layer + a new head (to compare the automatic choice with every hand-picked one).
    Each of `extra_depths` adds an arm "fine_tune_k<k>": the generic cut fine-tuned at
    depth k (to compare fine_tune auto with every hand-picked depth).
    """
    auto = settings.cut_layer == CUT_AUTO
    arms = [arm for arm in arms if arm != AUTO or auto]
    head = dataclasses.replace(
        settings, fine_tune=FINE_TUNE_OFF, cut_layer=generic_cut, cut_candidates=()
    )
    examples = split_eval(run.examples, os.path.join(workdir, "examples"), val_share)
    test_images = examples[TEST]
    pretrained_dir = data.resolve_base_model(run.base_model)
    own = split_eval(run.bottlenecks, os.path.join(workdir, "split", "pipeline"), val_share)
    prepared: dict[str, dict[str, list[str]]] = {AUTO: own}
    if auto:
        uri = cache_records(run, run.base_model, generic_cut, settings.pooling, workdir, GENERIC)
        prepared[GENERIC] = split_eval(uri, os.path.join(workdir, "split", GENERIC), val_share)
    else:
        prepared[GENERIC] = own
    if TOP in arms:
        uri = cache_records(run, run.base_model, top_cut, settings.pooling, workdir, TOP)
        prepared[TOP] = split_eval(uri, os.path.join(workdir, "split", TOP), val_share)
    for layer in extra_cuts:
        uri = cache_records(run, run.base_model, layer, settings.pooling, workdir, f"cut_{layer}")
        prepared[f"cut_{layer}"] = split_eval(
            uri, os.path.join(workdir, "split", f"cut_{layer}"), val_share
        )
    results: dict[str, list[Result]] = {arm: [] for arm in arms}
    results.update({f"cut_{layer}": [] for layer in extra_cuts})
    results.update({f"fine_tune_k{k}": [] for k in extra_depths})
    for seed in seeds:
        plan: list[tuple[str, TrainerConfig, str, dict[str, list[str]]]] = [
            (GENERIC, dataclasses.replace(head, seed=seed), pretrained_dir, prepared[GENERIC])
        ]
        if AUTO in arms:
            configured = dataclasses.replace(settings, fine_tune=FINE_TUNE_OFF, seed=seed)
            plan.append((AUTO, configured, pretrained_dir, prepared[AUTO]))
        if TOP in arms:
            top = dataclasses.replace(head, seed=seed, cut_layer=top_cut)
            plan.append((TOP, top, pretrained_dir, prepared[TOP]))
        if RANDOM in arms:
            base_dir = os.path.join(workdir, "bases", f"random_{seed}")
            model_io.save_keras(random_base(seed), base_dir)
            name = f"{RANDOM}_{seed}"
            uri = cache_records(run, base_dir, generic_cut, settings.pooling, workdir, name)
            files = split_eval(uri, os.path.join(workdir, "split", name), val_share)
            plan.append((RANDOM, dataclasses.replace(head, seed=seed), base_dir, files))
        if SCRATCH in arms:
            base_dir = os.path.join(workdir, "bases", f"scratch_{seed}")
            image = settings.image
            model_io.save_keras(
                bases.build_builtin(scratch_base, image.height, image.width, seed), base_dir
            )
            scratch = dataclasses.replace(
                head, seed=seed, mode=MODE_FULL, cut_layer="", drop_top_layers=0
            )
            plan.append((SCRATCH, scratch, base_dir, examples))
        if FINE_TUNED in arms:
            tuned = dataclasses.replace(head, seed=seed, fine_tune=fine_tune_layers)
            plan.append((FINE_TUNED, tuned, pretrained_dir, prepared[GENERIC]))
        if DEPTH_AUTO in arms:
            measured = dataclasses.replace(head, seed=seed, fine_tune=FINE_TUNE_AUTO)
            plan.append((DEPTH_AUTO, measured, pretrained_dir, prepared[GENERIC]))
        for k in extra_depths:
            tuned = dataclasses.replace(head, seed=seed, fine_tune=k)
            plan.append((f"fine_tune_k{k}", tuned, pretrained_dir, prepared[GENERIC]))
        for layer in extra_cuts:
            fixed = dataclasses.replace(head, seed=seed, cut_layer=layer)
            plan.append((f"cut_{layer}", fixed, pretrained_dir, prepared[f"cut_{layer}"]))
        for arm, config, base_dir, files in plan:
            result = train_and_score(arm, config, run, base_dir, files, test_images)
            print(
                f"  seed {seed} {arm:<15} {result.accuracy:.4f} ({result.seconds:.0f} s, "
                f"cut {result.cut}, fine-tuned layers {result.depth})",
                flush=True,
            )
            results[arm].append(result)
    return results


# --- the table -------------------------------------------------------------------------------
DESCRIPTIONS = {
    GENERIC: "pretrained, frozen, cut at {cut} (a generic block, hand-picked) + new head",
    AUTO: "the pipeline's Trainer as configured: cut_layer auto (5-fold CV on train)",
    TOP: "pretrained, frozen, cut at {top_cut} (the top of the base) + new head",
    RANDOM: "same architecture, random frozen weights, cut at {cut} + new head",
    SCRATCH: "{scratch_base} at {size}, every layer trained from scratch on the images",
    FINE_TUNED: "{cut} arm, then its top {k} weighted layers + head at lr x {factor:g}",
    DEPTH_AUTO: "{cut} arm with fine_tune auto (off vs top 1, 2 on a fold of train)",
}


def _stats(values: np.ndarray) -> tuple[float, float]:
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def summarize(results: dict[str, list[Result]], descriptions: dict[str, str]) -> dict:
    """Mean, spread and paired differences against the generic cut, per arm."""
    reference = np.array([r.accuracy for r in results[GENERIC]])
    arms = {}
    for arm, runs in results.items():
        accuracies = np.array([r.accuracy for r in runs])
        mean, std = _stats(accuracies)
        entry = {
            "description": descriptions[arm],
            "accuracies": accuracies.tolist(),
            "seeds": [r.seed for r in runs],
            "mean": mean,
            "std": std,
            "min": float(accuracies.min()),
            "max": float(accuracies.max()),
            "epochs": [list(r.epochs) for r in runs],
            "seconds": float(sum(r.seconds for r in runs)),
            "cuts": [r.cut for r in runs],
            "depths": [r.depth for r in runs],
            "selection_seconds": [r.selection_seconds for r in runs],
        }
        if arm != GENERIC:
            paired = accuracies - reference[: len(accuracies)]
            diff_mean, diff_std = _stats(paired)
            entry["minus_generic"] = {
                "per_seed": paired.tolist(),
                "mean": diff_mean,
                "std": diff_std,
                "higher_in": int(np.sum(paired > 0)),
                "lower_in": int(np.sum(paired < 0)),
            }
        arms[arm] = entry
    return arms


def format_table(arms: dict, counts: dict[str, int], seeds: Sequence[int]) -> str:
    lines = [
        f"| arm | test accuracy, mean +- std over {len(seeds)} seeds | min | max "
        "| minus pretrained_cut, paired (higher/lower in) |",
        "|---|---:|---:|---:|---:|",
    ]
    for arm, entry in arms.items():
        diff = entry.get("minus_generic")
        paired = (
            f"{diff['mean']:+.4f} +- {diff['std']:.4f} ({diff['higher_in']}/{diff['lower_in']})"
            if diff
            else "-"
        )
        lines.append(
            f"| {arm} | {entry['mean']:.4f} +- {entry['std']:.4f} | {entry['min']:.4f} "
            f"| {entry['max']:.4f} | {paired} |"
        )
    lines.append("")
    lines += [f"- {arm}: {entry['description']}" for arm, entry in arms.items()]
    if AUTO in arms:
        lines.append(f"- {AUTO} chose, per seed: {', '.join(arms[AUTO]['cuts'])}")
    if DEPTH_AUTO in arms:
        entry = arms[DEPTH_AUTO]
        depths = ", ".join(f"k={d}" if d else "off" for d in entry["depths"])
        seconds = ", ".join(f"{s:.0f}" for s in entry["selection_seconds"])
        lines.append(f"- {DEPTH_AUTO} chose, per seed: {depths} (measuring took {seconds} s)")
    lines.append(
        f"- images: {counts['train']} train (the few labels), {counts[VAL]} val (early "
        f"stopping, every arm), {counts[TEST]} test (reported; never trained or stopped on)"
    )
    return "\n".join(lines)


def _count(files: Sequence[str]) -> int:
    return sum(1 for _ in read_records(files))


# --- command line --------------------------------------------------------------------------------
def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.transfer_table",
        description=(
            "The photo demo's closing table: pretrained cut at a generic block vs at the "
            "top block vs random frozen weights vs from scratch vs fine-tuned, over seeds, "
            "on a test split no arm trains or early-stops on (needs a finished run)."
        ),
    )
    parser.add_argument("--config", required=True, help="the pipeline config (YAML)")
    parser.add_argument("--seeds", type=int, default=5, help="number of seeds (default 5)")
    parser.add_argument(
        "--generic-cut",
        default="",
        help="the hand-picked generic cut (default: the config's cut_layer; block4_pool "
        "when that is auto)",
    )
    parser.add_argument("--top-cut", default="block5_pool", help="the top block's cut layer")
    parser.add_argument(
        "--fine-tune-layers", type=int, default=3, help="weighted layers unfrozen (default 3)"
    )
    parser.add_argument(
        "--scratch-base", default="small_cnn", help="builtin trained from scratch (small_cnn)"
    )
    parser.add_argument(
        "--val-share", type=float, default=0.4, help="share of the eval images used as val"
    )
    parser.add_argument("--arms", default=",".join(ARMS), help=f"subset of {','.join(ARMS)}")
    parser.add_argument(
        "--also-cuts",
        default="",
        help="comma-separated layers: one more arm per layer, the pretrained base frozen "
        "there + a new head (e.g. every candidate of cut_layer auto)",
    )
    parser.add_argument(
        "--also-depths",
        default="",
        help="comma-separated k: one more arm per k, the generic cut fine-tuned at depth k "
        "(e.g. 1,2: the depths fine_tune auto measures)",
    )
    parser.add_argument("--out", action="append", default=[], help=".json or markdown")
    parser.add_argument("--verbose", action="store_true", help="show Keras' epoch lines")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the table; 0 on success, 2 when the run's artifacts are missing."""
    parser = _parser()
    args = parser.parse_args(argv)
    arms = [arm.strip() for arm in args.arms.split(",") if arm.strip()]
    unknown = sorted(set(arms) - set(ARMS))
    if unknown or GENERIC not in arms:
        parser.error(
            f"--arms: {unknown or arms} ; choose from {', '.join(ARMS)} ({GENERIC} required)"
        )
    if args.seeds < 1 or not 0 < args.val_share < 1 or args.fine_tune_layers < 1:
        parser.error("--seeds >= 1, 0 < --val-share < 1 and --fine-tune-layers >= 1")
    from pipeline.config import load_config
    from pipeline.dag import trainer_config  # tfx: only needed here

    config = load_config(args.config)
    base = config.base_model
    if base is None or base.kind not in ("keras_application", "builtin"):
        print(
            f"{args.config}: the table needs base_model.kind keras_application or builtin "
            "(its random_frozen arm rebuilds the architecture)",
            file=sys.stderr,
        )
        return 2
    try:
        run = find_run(config.metadata_file, config.pipeline_name, config.schema)
    except MissingArtifactsError as error:
        print(f"transfer_table: {error}", file=sys.stderr)
        return 2
    if not args.verbose:
        keras.config.disable_interactive_logging()
        absl_logging.set_verbosity(absl_logging.WARNING)
    settings = trainer_config(config)
    image = settings.image
    generic_cut = args.generic_cut or (
        "block4_pool" if settings.cut_layer == CUT_AUTO else settings.cut_layer
    )
    seeds = [settings.seed + i for i in range(args.seeds)]
    descriptions = {
        arm: DESCRIPTIONS[arm].format(
            cut=generic_cut,
            top_cut=args.top_cut,
            scratch_base=args.scratch_base,
            size=f"{image.height}x{image.width}",
            k=args.fine_tune_layers,
            factor=settings.fine_tune_lr_factor,
        )
        for arm in arms
    }
    extra_cuts = [layer.strip() for layer in args.also_cuts.split(",") if layer.strip()]
    try:
        extra_depths = [int(k) for k in args.also_depths.split(",") if k.strip()]
    except ValueError:
        parser.error(f"--also-depths: {args.also_depths!r} is not a list of integers")
    if any(k < 1 for k in extra_depths):
        parser.error("--also-depths: every k must be >= 1")
    descriptions.update(
        {
            f"cut_{layer}": f"pretrained, frozen, cut at {layer} (hand-picked) + new head"
            for layer in extra_cuts
        }
    )
    descriptions.update(
        {
            f"fine_tune_k{k}": f"{generic_cut} arm, then its top {k} weighted layers + head "
            f"at lr x {settings.fine_tune_lr_factor:g} (hand-picked depth)"
            for k in extra_depths
        }
    )
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="transfer_table_") as workdir:
        results = run_arms(
            settings,
            run,
            seeds,
            workdir,
            generic_cut=generic_cut,
            top_cut=args.top_cut,
            fine_tune_layers=args.fine_tune_layers,
            scratch_base=args.scratch_base,
            val_share=args.val_share,
            random_base=lambda seed: (
                bases.build_application(base.name, image.height, image.width, "", seed)
                if base.kind == "keras_application"
                else bases.build_builtin(base.name, image.height, image.width, seed)
            ),
            arms=arms,
            extra_cuts=extra_cuts,
            extra_depths=extra_depths,
        )
        split = split_eval(run.examples, os.path.join(workdir, "count"), args.val_share)
        counts = {part: _count(files) for part, files in split.items()}
    wall = time.perf_counter() - start
    summary = summarize(results, descriptions)
    table = format_table(summary, counts, seeds)
    print(table)
    print(f"- wall time: {wall:.0f} s ({len(seeds)} seeds x {len(arms)} arms)")
    for path in args.out:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "w", encoding="utf-8") as out:
            if path.endswith(".json"):
                facts = {"arms": summary, "images": counts, "seeds": seeds, "wall_seconds": wall}
                json.dump(facts, out, indent=2)
            else:
                out.write(f"# Transfer table\n\n{table}\n- wall time: {wall:.0f} s\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
