"""Transfer vs scratch: does the source-pretrained base help on the demo's few labels?

Trains two arms over several seeds and prints their target accuracy side by side:

- **transfer**: exactly what the pipeline's Trainer does. ``components.trainer.train.train``
  with the TrainerConfig the pipeline builds (``pipeline.dag.trainer_config``),
  only the seed replaced, on BottleneckCache's records, with the SourceTrainer's model
  (BaseModelGen's when the config has no source task) as the base: a new head on the
  frozen, source-pretrained layers (plus fine-tuning when the config's policy asks).
- **scratch**: the same network (the base architecture up to the same cut, the same
  pooling, the same head), freshly initialized with a seed-dependent init
  (``bases.build_builtin(name, h, w, seed)``), every layer trained on the images
  (``TrainerConfig`` mode "full") of the same train split, with the same epochs, early
  stopping, batch size, and by default the same learning rate.

Fairness:

- Same labels: the scratch arm reads ImageExampleGen's examples; their train/eval
  membership (image_id and label of every labelled record) is checked to equal the
  bottleneck records' (both come from the content-hash split).
- Same measure: both classifiers (preprocessed image -> probabilities, what
  ``export`` serves) are scored on ImageExampleGen's eval split, through
  ``ImageSpec.preprocess`` and ``classifier(images, training=False)``: the same
  computation as the exported model's ``predict_images``, without the export.
- Same network: the two classifiers' weight shapes are checked to be identical.
- Same hyperparameters: one learning rate for both by default. A from-scratch CNN is
  usually trained at a rate of the same order as a linear head with Adam (the demo's
  source task, which trains the same CNN from scratch, uses 0.002 against the head's
  0.003), and early stopping restores the best epoch, so a too-high rate cannot
  silently ruin a run; ``--scratch-learning-rate`` runs the scratch arm at another
  rate to check that the verdict does not hinge on it.
- Caveat (both arms alike): the Trainer early-stops on the eval split's loss and keeps
  the best epoch's weights, so the eval accuracy is slightly optimistic for both; the
  demo has no third split.

Run after the demo pipeline (``make demo``)::

    python -m bench.transfer_vs_scratch --config pipeline/configs/demo.yaml --seeds 5 \
        [--out results.md] [--out results.json] [--scratch-learning-rate 0.001]

Seeds are ``training.seed + i`` for i < --seeds, so the transfer arm's first seed
reproduces the pipeline's own Trainer run.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import tempfile
import time

from pipeline.cli import quiet_third_party

# The CLI's known third-party noise (TensorFlow's C++ start-up lines, the Google
# clients' Python 3.10 FutureWarning), hidden before the imports below print it.
quiet_third_party()
from collections.abc import Callable, Sequence  # noqa: E402
from typing import Any  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import logging as absl_logging  # noqa: E402

from components.base_model_gen import bases  # noqa: E402
from components.base_model_gen import spec as base_spec  # noqa: E402
from components.common import model_io  # noqa: E402
from components.common.artifact_io import COMPRESSION, join  # noqa: E402
from components.common.examples import IMAGE_ID_KEY, LABEL_KEY  # noqa: E402
from components.common.preprocessing import ImageSpec  # noqa: E402
from components.common.schema import class_names_from_schema  # noqa: E402
from components.trainer import data  # noqa: E402
from components.trainer import train as trainer  # noqa: E402
from components.trainer.config import MODE_FULL, TrainerConfig  # noqa: E402

TRANSFER = "transfer"
SCRATCH = "scratch"
ARM_DESCRIPTIONS = {
    TRANSFER: "frozen source-pretrained base + new head (the pipeline's Trainer)",
    SCRATCH: "same network, fresh seeded init, every layer trained on the images",
}
SCHEMA_FILE = "schema.pbtxt"
EVAL_BATCH = 256
_MAKE_DEMO = "run `make demo` (or `tfx-transfer run --config <config>`) first"

BaseBuilder = Callable[[int], keras.Model]


class MissingArtifactsError(LookupError):
    """The latest pipeline run lacks an artifact the experiment needs."""


# --- inputs ------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Inputs:
    """What both arms train and are scored on (file patterns as the Trainer takes them)."""

    base_model: str  # directory holding the pretrained model.keras
    bottleneck_train: tuple[str, ...]
    bottleneck_eval: tuple[str, ...]
    examples_train: tuple[str, ...]
    examples_eval: tuple[str, ...]
    class_names: tuple[str, ...]


def _split_pattern(uri: str, split: str) -> tuple[str, ...]:
    return (join(join(uri, f"Split-{split}"), "*"),)


def latest_finished_run(metadata_file: str, pipeline_name: str):
    """The newest run of the pipeline (run_summary.RunSummary).

    Raises:
        MissingArtifactsError: no metadata or no run; the message says to run the demo.
    """
    if not os.path.exists(metadata_file):
        raise MissingArtifactsError(f"no ML Metadata at {metadata_file}: {_MAKE_DEMO}")
    from pipeline.run_summary import latest_run  # ml_metadata: only needed here

    try:
        return latest_run(metadata_file, pipeline_name)
    except LookupError as error:
        raise MissingArtifactsError(f"{error}: {_MAKE_DEMO}") from error


def finished_uri(run, node: str, type_name: str) -> str | None:
    """The uri of the node's output of that type, if the node ran or came from cache."""
    if run.states.get(node) not in ("COMPLETE", "CACHED"):
        return None
    return run.artifact_uri(node, type_name)


def find_inputs(metadata_file: str, pipeline_name: str, schema_path: str = "") -> Inputs:
    """The latest run's base model, bottleneck records, examples and class names.

    Args:
        metadata_file: the local runner's ML Metadata SQLite file.
        pipeline_name: the pipeline whose newest run is read.
        schema_path: the schema to take class names from when the run has no
            ImportSchemaGen output (the config's ``schema``).

    Raises:
        MissingArtifactsError: no metadata, no run, or the run lacks an artifact; the
            message says to run the demo first.
    """
    run = latest_finished_run(metadata_file, pipeline_name)

    def uri(node: str, type_name: str) -> str | None:
        return finished_uri(run, node, type_name)

    base = uri("SourceTrainer", "Model") or uri("BaseModelGen", "Model")
    bottlenecks = uri("BottleneckCache", "Examples")
    examples = uri("ImageExampleGen", "Examples")
    schema_dir = uri("ImportSchemaGen", "Schema")
    missing = [
        name
        for name, value in (
            ("the base model (SourceTrainer or BaseModelGen Model)", base),
            ("BottleneckCache's bottlenecks", bottlenecks),
            ("ImageExampleGen's examples", examples),
        )
        if value is None
    ]
    if missing:
        raise MissingArtifactsError(
            f"the latest run of {pipeline_name!r} ({run.run_id}, states {run.states}) lacks "
            f"{', '.join(missing)}: {_MAKE_DEMO}"
        )
    schema = join(schema_dir, SCHEMA_FILE) if schema_dir else schema_path
    return Inputs(
        base_model=data.resolve_base_model(base),
        bottleneck_train=_split_pattern(bottlenecks, "train"),
        bottleneck_eval=_split_pattern(bottlenecks, "eval"),
        examples_train=_split_pattern(examples, "train"),
        examples_eval=_split_pattern(examples, "eval"),
        class_names=tuple(class_names_from_schema(schema)),
    )


def _labelled_ids(patterns: Sequence[str], split: str) -> dict[bytes, int]:
    """image_id -> label of every labelled record of the split's files."""
    spec = {
        IMAGE_ID_KEY: tf.io.FixedLenFeature([], tf.string),
        LABEL_KEY: tf.io.FixedLenFeature([], tf.int64),
    }
    files = data.record_files(patterns, split)
    records = tf.data.TFRecordDataset(files, compression_type=COMPRESSION)
    ids: dict[bytes, int] = {}
    for batch in records.batch(1024).map(lambda r: tf.io.parse_example(r, spec)):
        for image_id, label in zip(
            batch[IMAGE_ID_KEY].numpy(), batch[LABEL_KEY].numpy(), strict=True
        ):
            if label >= 0:
                ids[bytes(image_id)] = int(label)
    return ids


def check_same_split(
    bottleneck_files: Sequence[str], example_files: Sequence[str], split: str
) -> int:
    """Checks that both record sets hold the same labelled images with the same labels.

    Returns:
        The number of labelled images of the split.

    Raises:
        ValueError: the sets differ (counts of the differences in the message).
    """
    cached = _labelled_ids(bottleneck_files, split)
    raw = _labelled_ids(example_files, split)
    if cached != raw:
        only_cached = len(cached.keys() - raw.keys())
        only_raw = len(raw.keys() - cached.keys())
        relabelled = sum(1 for key in cached.keys() & raw.keys() if cached[key] != raw[key])
        raise ValueError(
            f"{split} split: the bottleneck records and the examples differ ({only_cached} "
            f"images only in the bottlenecks, {only_raw} only in the examples, {relabelled} "
            "with another label); both arms must train on the same labels: re-run the "
            "pipeline so that BottleneckCache reads this ImageExampleGen output"
        )
    return len(raw)


def scratch_builder(kind: str, name: str, height: int, width: int) -> BaseBuilder:
    """seed -> a freshly initialized base of the config's architecture.

    Raises:
        ValueError: kind "file" (a user's model has no architecture to rebuild here).
    """
    if kind == base_spec.KIND_BUILTIN:
        return lambda seed: bases.build_builtin(name, height, width, seed)
    if kind == base_spec.KIND_APPLICATION:
        return lambda seed: bases.build_application(name, height, width, "", seed)
    raise ValueError(
        f"base_model.kind {kind!r}: the scratch arm rebuilds the architecture with a "
        f"fresh init, which needs kind {base_spec.KIND_BUILTIN!r} or "
        f"{base_spec.KIND_APPLICATION!r}"
    )


# --- the two arms ------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class RunResult:
    """One arm, one seed."""

    arm: str
    seed: int
    accuracy: float  # on the eval split, the classifier as exported
    epochs_run: int  # all phases
    best_epoch: int  # of the last phase (1-based; its weights are kept)
    learning_rate: float
    phases: tuple[str, ...]
    train_counts: tuple[int, ...]
    eval_counts: tuple[int, ...]
    weight_shapes: tuple[tuple[int, ...], ...]
    seconds: float
    cut_layer: str = ""  # the cut trained (for cut_layer auto: the one selected)

    def to_dict(self) -> dict[str, Any]:
        values = dataclasses.asdict(self)
        values.pop("weight_shapes")
        return values


def evaluate_accuracy(
    classifier: keras.Model,
    image_spec: ImageSpec,
    eval_files: Sequence[str],
    batch_size: int = EVAL_BATCH,
) -> float:
    """Accuracy of the classifier on the labelled records' encoded images.

    The same computation as the exported model's predict_images: ``image_spec``'s
    preprocessing, the classifier in inference mode, argmax.
    """
    correct = total = 0
    files = data.record_files(eval_files, "eval")
    for encoded, labels in data.encoded_eval_batches(files, batch_size):
        images = image_spec.preprocess(tf.constant(encoded))
        probabilities = keras.ops.convert_to_numpy(classifier(images, training=False))
        correct += int(np.sum(np.argmax(probabilities, axis=-1) == labels))
        total += len(labels)
    if not total:
        raise ValueError(f"no labelled eval record in {list(eval_files)}")
    return correct / total


def _run(
    arm: str,
    config: TrainerConfig,
    class_names: Sequence[str],
    base_model: str,
    splits: tuple[Sequence[str], Sequence[str]],
    score_files: Sequence[str],
) -> RunResult:
    start = time.perf_counter()
    result = trainer.train(config, class_names, base_model, splits[0], splits[1])
    accuracy = evaluate_accuracy(result.classifier, config.image, score_files)
    return RunResult(
        arm=arm,
        seed=config.seed,
        accuracy=accuracy,
        epochs_run=sum(phase.epochs_run for phase in result.phases),
        best_epoch=result.phases[-1].best_epoch,
        learning_rate=config.learning_rate,
        phases=tuple(phase.name for phase in result.phases),
        train_counts=tuple(int(c) for c in result.train_counts),
        eval_counts=tuple(int(c) for c in result.eval_counts),
        weight_shapes=tuple(tuple(w.shape) for w in result.classifier.weights),
        seconds=time.perf_counter() - start,
        cut_layer=result.cut_layer,
    )


def run_transfer(config: TrainerConfig, inputs: Inputs, seed: int) -> RunResult:
    """The pipeline's Trainer (config as given, seed replaced) on the bottleneck records."""
    return _run(
        TRANSFER,
        dataclasses.replace(config, seed=seed),
        inputs.class_names,
        inputs.base_model,
        (inputs.bottleneck_train, inputs.bottleneck_eval),
        inputs.examples_eval,
    )


def scratch_base_dir(workdir: str, seed: int) -> str:
    """Where run_scratch saves the fresh base it trains from (model.keras)."""
    return os.path.join(workdir, f"scratch_base_seed{seed}")


def run_scratch(
    config: TrainerConfig,
    inputs: Inputs,
    seed: int,
    build_base: BaseBuilder,
    workdir: str,
    learning_rate: float | None = None,
    cut_layer: str | None = None,
) -> RunResult:
    """The same network from a fresh init, every layer trained on the train images.

    Args:
        config: the transfer arm's config; mode becomes "full", seed is replaced, and
            learning_rate when given.
        inputs: the example files are trained on, the eval examples scored.
        seed: the seed of the base's init, the head's init and the shuffling.
        build_base: seed -> a fresh base (scratch_builder).
        workdir: the fresh base is saved under ``scratch_base_dir(workdir, seed)``.
        learning_rate: None: the config's (the transfer arm's).
        cut_layer: the cut the transfer arm trained (required when the config's
            cut_layer is "auto": the scratch network is cut at the same layer).
    """
    base_dir = scratch_base_dir(workdir, seed)
    model_io.save_keras(build_base(seed), base_dir)
    fixed_cut = {} if cut_layer is None else {"cut_layer": cut_layer, "cut_candidates": ()}
    scratch_config = dataclasses.replace(
        config,
        **fixed_cut,
        mode=MODE_FULL,
        seed=seed,
        learning_rate=config.learning_rate if learning_rate is None else learning_rate,
    )
    return _run(
        SCRATCH,
        scratch_config,
        inputs.class_names,
        base_dir,
        (inputs.examples_train, inputs.examples_eval),
        inputs.examples_eval,
    )


# --- the comparison ----------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class ArmSummary:
    """One arm over the seeds."""

    arm: str
    runs: tuple[RunResult, ...]

    @property
    def accuracies(self) -> np.ndarray:
        return np.array([run.accuracy for run in self.runs])

    @property
    def mean(self) -> float:
        return float(np.mean(self.accuracies))

    @property
    def std(self) -> float:
        """Sample standard deviation over the seeds (ddof=1; 0 for one seed)."""
        values = self.accuracies
        return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0

    @property
    def min(self) -> float:
        return float(np.min(self.accuracies))

    @property
    def max(self) -> float:
        return float(np.max(self.accuracies))

    def to_dict(self) -> dict[str, Any]:
        return {
            "arm": self.arm,
            "description": ARM_DESCRIPTIONS.get(self.arm, ""),
            "accuracies": self.accuracies.tolist(),
            "mean": self.mean,
            "std": self.std,
            "min": self.min,
            "max": self.max,
            "runs": [run.to_dict() for run in self.runs],
        }


@dataclasses.dataclass(frozen=True)
class Comparison:
    """Both arms over the same seeds, and what they trained on."""

    transfer: ArmSummary
    scratch: ArmSummary
    class_names: tuple[str, ...]
    train_counts: tuple[int, ...]
    eval_counts: tuple[int, ...]
    settings: dict[str, Any]

    @property
    def seeds(self) -> list[int]:
        return [run.seed for run in self.transfer.runs]

    @property
    def differences(self) -> np.ndarray:
        """transfer - scratch accuracy, per seed."""
        return self.transfer.accuracies - self.scratch.accuracies

    def to_dict(self) -> dict[str, Any]:
        diff = self.differences
        return {
            "seeds": self.seeds,
            "class_names": list(self.class_names),
            "train_labels_per_class": dict(zip(self.class_names, self.train_counts, strict=True)),
            "eval_images_per_class": dict(zip(self.class_names, self.eval_counts, strict=True)),
            "arms": {arm.arm: arm.to_dict() for arm in (self.transfer, self.scratch)},
            "difference": {
                "per_seed": diff.tolist(),
                "mean": float(np.mean(diff)),
                "std": float(np.std(diff, ddof=1)) if len(diff) > 1 else 0.0,
                "transfer_higher_in": int(np.sum(diff > 0)),
            },
            "transfer_beats_scratch_every_seed": bool(np.all(diff > 0)),
            "settings": self.settings,
        }


def compare(
    config: TrainerConfig,
    inputs: Inputs,
    seeds: Sequence[int],
    build_base: BaseBuilder,
    workdir: str,
    scratch_learning_rate: float | None = None,
) -> Comparison:
    """Both arms for every seed.

    Raises:
        ValueError: the arms trained different networks or on different label counts.
    """
    transfer_runs, scratch_runs = [], []
    for seed in seeds:
        transfer_run = run_transfer(config, inputs, seed)
        logging.info("transfer seed %d: %.4f", seed, transfer_run.accuracy)
        scratch_run = run_scratch(
            config,
            inputs,
            seed,
            build_base,
            workdir,
            scratch_learning_rate,
            cut_layer=transfer_run.cut_layer,  # the same network (auto: this seed's choice)
        )
        logging.info("scratch seed %d: %.4f", seed, scratch_run.accuracy)
        if transfer_run.weight_shapes != scratch_run.weight_shapes:
            raise ValueError(
                "the arms did not train the same network: weight shapes "
                f"{transfer_run.weight_shapes} (transfer) vs {scratch_run.weight_shapes} (scratch)"
            )
        for field in ("train_counts", "eval_counts"):
            if getattr(transfer_run, field) != getattr(scratch_run, field):
                raise ValueError(
                    f"the arms saw different {field}: {getattr(transfer_run, field)} (transfer) "
                    f"vs {getattr(scratch_run, field)} (scratch)"
                )
        transfer_runs.append(transfer_run)
        scratch_runs.append(scratch_run)
    first = transfer_runs[0]
    settings = {
        "cut_layer": config.cut_layer,
        "cut_per_seed": [run.cut_layer for run in transfer_runs],
        "drop_top_layers": config.drop_top_layers,
        "pooling": config.pooling,
        "hidden_units": list(config.hidden_units),
        "dropout": config.dropout,
        "batch_size": config.batch_size,
        "epochs": config.epochs,
        "early_stopping_patience": config.early_stopping_patience,
        "fine_tune": config.fine_tune,
        "transfer_learning_rate": config.learning_rate,
        "scratch_learning_rate": scratch_runs[0].learning_rate,
        "base_model": inputs.base_model,
    }
    return Comparison(
        transfer=ArmSummary(TRANSFER, tuple(transfer_runs)),
        scratch=ArmSummary(SCRATCH, tuple(scratch_runs)),
        class_names=tuple(inputs.class_names),
        train_counts=first.train_counts,
        eval_counts=first.eval_counts,
        settings=settings,
    )


# --- output --------------------------------------------------------------------------------
def format_table(comparison: Comparison) -> str:
    """The result as markdown: accuracy per seed, mean, std, min, max; then the context."""
    seeds = comparison.seeds
    header = ["arm", *(f"seed {s}" for s in seeds), "mean", "std", "min", "max"]
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|",
    ]
    for arm in (comparison.transfer, comparison.scratch):
        cells = [arm.arm, *(f"{a:.4f}" for a in arm.accuracies)]
        cells += [f"{arm.mean:.4f}", f"{arm.std:.4f}", f"{arm.min:.4f}", f"{arm.max:.4f}"]
        lines.append("| " + " | ".join(cells) + " |")
    epochs = [
        "| " + " | ".join(["epochs run (best)", *(f"seed {s}" for s in seeds)]) + " |",
        "|" + "|".join(["---"] + ["---:"] * len(seeds)) + "|",
    ]
    for arm in (comparison.transfer, comparison.scratch):
        cells = [arm.arm, *(f"{run.epochs_run} ({run.best_epoch})" for run in arm.runs)]
        epochs.append("| " + " | ".join(cells) + " |")
    facts = comparison.to_dict()
    diff = facts["difference"]
    settings = comparison.settings

    def per_class(counts) -> str:
        items = ", ".join(
            f"{name}: {count}" for name, count in zip(comparison.class_names, counts, strict=True)
        )
        return f"{items} ({sum(counts)} in all)"

    notes = [
        f"- train labels per class: {per_class(comparison.train_counts)}",
        f"- eval images per class: {per_class(comparison.eval_counts)}",
        f"- transfer - scratch: mean {diff['mean']:+.4f} (std {diff['std']:.4f} over paired "
        f"seeds); transfer higher in {diff['transfer_higher_in']} of {len(seeds)} seeds",
        f"- {TRANSFER}: {ARM_DESCRIPTIONS[TRANSFER]}, learning rate "
        f"{settings['transfer_learning_rate']:g}",
        f"- {SCRATCH}: {ARM_DESCRIPTIONS[SCRATCH]}, learning rate "
        f"{settings['scratch_learning_rate']:g}",
        f"- both: cut {settings['cut_layer'] or settings['drop_top_layers']!s} (per seed: "
        f"{', '.join(settings['cut_per_seed'])}), pooling "
        f"{settings['pooling']}, head hidden units {settings['hidden_units']}, dropout "
        f"{settings['dropout']:g}, batch {settings['batch_size']}, at most "
        f"{settings['epochs']} epochs, early stopping patience "
        f"{settings['early_stopping_patience']} on the eval loss (best weights kept); "
        "accuracy of the classifier on the eval images (std: sample std over seeds)",
    ]
    return "\n".join(lines + [""] + epochs + [""] + notes)


def write_outputs(comparison: Comparison, paths: Sequence[str], wall_seconds: float) -> None:
    """Writes the result to each path: JSON for ``.json``, markdown otherwise."""
    for path in paths:
        directory = os.path.dirname(os.path.abspath(path))
        os.makedirs(directory, exist_ok=True)
        with open(path, "w", encoding="utf-8") as out:
            if path.endswith(".json"):
                facts = comparison.to_dict()
                facts["wall_seconds"] = wall_seconds
                json.dump(facts, out, indent=2)
                out.write("\n")
            else:
                out.write("# Transfer vs scratch\n\n")
                out.write(format_table(comparison))
                out.write(f"\n- wall time: {wall_seconds:.0f} s\n")


# --- command line ----------------------------------------------------------------------------
def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.transfer_vs_scratch",
        description=(
            "Target accuracy of the transfer model next to the same network trained from "
            "scratch on the same labels, over several seeds (needs a finished demo run)."
        ),
    )
    parser.add_argument("--config", required=True, help="the pipeline config (YAML)")
    parser.add_argument("--seeds", type=int, default=5, help="number of seeds (default 5)")
    parser.add_argument(
        "--out",
        action="append",
        default=[],
        help="also write the result here (.json: JSON, else markdown); may be repeated",
    )
    parser.add_argument(
        "--scratch-learning-rate",
        type=float,
        default=None,
        help="the scratch arm's learning rate (default: the transfer arm's, from the config)",
    )
    parser.add_argument(
        "--verbose", action="store_true", help="show Keras' per-epoch training logs"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the experiment; 0 on success, 2 when the demo's artifacts are missing."""
    args = _parser().parse_args(argv)
    if args.seeds < 1:
        _parser().error("--seeds must be >= 1")
    if args.scratch_learning_rate is not None and args.scratch_learning_rate <= 0:
        _parser().error("--scratch-learning-rate must be > 0")
    from pipeline.config import load_config
    from pipeline.dag import trainer_config  # tfx: only needed here

    config = load_config(args.config)
    if config.base_model is None:
        print(f"{args.config}: no base_model, nothing to transfer", file=sys.stderr)
        return 2
    try:
        inputs = find_inputs(config.metadata_file, config.pipeline_name, config.schema)
    except MissingArtifactsError as error:
        print(f"transfer_vs_scratch: {error}", file=sys.stderr)
        return 2
    for split, cached, raw in (
        ("train", inputs.bottleneck_train, inputs.examples_train),
        ("eval", inputs.bottleneck_eval, inputs.examples_eval),
    ):
        check_same_split(cached, raw, split)
    if not args.verbose:
        # Keras then sends its per-epoch lines to absl's logger, which this silences.
        keras.config.disable_interactive_logging()
        absl_logging.set_verbosity(absl_logging.WARNING)
    base = config.base_model
    build_base = scratch_builder(base.kind, base.name, config.image.height, config.image.width)
    trainer_settings = trainer_config(config)
    seeds = [trainer_settings.seed + i for i in range(args.seeds)]
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="transfer_vs_scratch_") as workdir:
        comparison = compare(
            trainer_settings, inputs, seeds, build_base, workdir, args.scratch_learning_rate
        )
    wall = time.perf_counter() - start
    print(format_table(comparison))
    print(f"- wall time: {wall:.0f} s ({len(seeds)} seeds x 2 arms)")
    write_outputs(comparison, args.out, wall)
    return 0


if __name__ == "__main__":
    sys.exit(main())
