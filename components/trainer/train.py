"""The TFX Trainer's run_fn: a new head on cached bottlenecks, optional fine-tuning, export.

Used as ``tfx.components.Trainer(run_fn="components.trainer.train.run_fn", ...)`` (a dotted
path of the installed package, no module_file), with BottleneckCache's output as
``examples``, the checked-in schema as ``schema``, the base network's Model artifact
(a directory holding model.keras) as ``base_model`` and ``TrainerConfig.to_dict()`` as
``custom_config``. It takes no ``transform_graph``: images (fine-tuning, export) are
preprocessed by ``components.common.preprocessing`` from the config's ImageSpec, the
same code Transform ran.

1. Head phase: ``model_surgery.feature_extractor`` rebuilds the frozen part of the base
   (same cut and pooling as the cache) to know the bottleneck shape; the head
   (``model_surgery.build_head``) trains on the cached vectors with Adam, early
   stopping on the eval split's loss (best weights restored), TensorBoard logs in
   ``model_run_dir/head``.
2. Fine-tuning (optional): ``fine_tune`` "auto" measures it first
   (``measure_fine_tune``, rule in ``components.trainer.fine_tune_selection``: off
   against the top 1 and 2 layers on a validation fold of the train split, both
   phases below run on the rest, within ``fine_tune_budget_seconds``);
   with K > 0 the top K weighted layers are unfrozen (``model_surgery.unfreeze_top``,
   BatchNormalization stays frozen) and extractor + head train on the images of the
   same records at learning_rate * fine_tune_lr_factor. The extractor is called with
   ``training=False`` (BatchNormalization and any dropout in inference mode) through
   ``FineTuneModel``: in a Keras 3 functional model the outer ``training`` flag
   overrides a nested model's ``training=False``.
3. Export: the classifier (preprocessed image -> extractor -> head -> probabilities) as
   the serving SavedModel (``model_io.export_serving_model``, with TF Serving warm-up
   requests from the first eval images) in serving_model_dir, as
   ``<model dir>/model.keras`` (so the artifact can be another pipeline's base), and
   the reports in ``<model dir>/reports/`` (``components.trainer.reports``), where
   ``<model dir>`` is the parent of serving_model_dir (the Model artifact's uri under TFX).

With ``mode`` "full" (the source task's Trainer, whose ``examples`` are
ImageExampleGen's: no bottlenecks needed) phases 1 and 2 are replaced by one phase that
trains every layer of the cut base and the head on the images; export is the same.
"""

from __future__ import annotations

import dataclasses
import logging
import posixpath
import random
import time
from collections.abc import Sequence
from typing import Any, NamedTuple

import keras
import numpy as np
import tensorflow as tf

from components.common import model_io, model_surgery, progress
from components.common.artifact_io import join
from components.common.examples import BOTTLENECK_KEY, candidate_key
from components.common.schema import class_names_from_schema
from components.trainer import cut_selection as cut_selection_lib
from components.trainer import data, reports
from components.trainer import fine_tune_selection as fine_tune_lib
from components.trainer.config import MODE_FULL, TrainerConfig

__all__ = ["ExportResult", "TrainResult", "TrainerConfig", "export", "run_fn", "train"]

HEAD_PHASE = "head"
FINE_TUNE_PHASE = "fine_tune"
FULL_PHASE = "full"
WARMUP_IMAGES = 4  # eval images in TF Serving's warm-up requests (per signature)
# The task of each phase's progress records (components.common.progress: one per epoch).
PROGRESS_TASKS = {HEAD_PHASE: "head", FINE_TUNE_PHASE: "fine-tune", FULL_PHASE: "full model"}


@dataclasses.dataclass(frozen=True)
class PhaseResult:
    """One training phase: its Keras history and where early stopping ended it."""

    name: str
    history: dict[str, list[float]]
    epochs_run: int
    best_epoch: int  # 1-based; the weights kept are this epoch's
    learning_rate: float
    trainable_layers: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class FineTuneChoice:
    """How many top layers of the extractor were unfrozen, and why."""

    layers: int
    reason: str
    layer_names: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """What `train` produced; `classifier` is the model `export` writes."""

    classifier: keras.Model  # preprocessed images -> class probabilities
    extractor: keras.Model
    head: keras.Model
    bottleneck_shape: tuple[int, ...]
    train_counts: np.ndarray  # labelled examples per class
    eval_counts: np.ndarray
    fine_tune: FineTuneChoice
    phases: tuple[PhaseResult, ...]
    cut_layer: str = ""  # the cut trained (cut_layer "auto": the one selected)
    cut_selection: cut_selection_lib.CutSelection | None = None
    fine_tune_selection: fine_tune_lib.FineTuneSelection | None = None


@dataclasses.dataclass(frozen=True)
class ExportResult:
    """Where `export` wrote the model and reports, and the exported model's accuracy."""

    serving_model_dir: str
    keras_path: str
    reports: dict[str, str]
    eval_accuracy: float


def run_fn(fn_args) -> None:
    """The TFX Trainer's entry point: train the head (and fine-tune), export.

    Args:
        fn_args: tfx.components.trainer.fn_args_utils.FnArgs. Reads train_files,
            eval_files (BottleneckCache records), schema_path, base_model,
            custom_config (``TrainerConfig.to_dict()``), serving_model_dir and
            model_run_dir.

    Raises:
        ValueError: invalid custom_config (the message names the field and the allowed
            values), a schema without class names, records that do not match the cut.
        FileNotFoundError: no records, or no model.keras for base_model.
    """
    config = TrainerConfig.from_dict(fn_args.custom_config)
    class_names = class_names_from_schema(fn_args.schema_path or fn_args.schema_file)
    base_model = data.resolve_base_model(fn_args.base_model)
    result = train(
        config,
        class_names,
        base_model,
        fn_args.train_files,
        fn_args.eval_files,
        log_dir=fn_args.model_run_dir,
    )
    exported = export(result, config, class_names, fn_args.serving_model_dir, fn_args.eval_files)
    logging.info(
        "trainer: exported %s (eval accuracy %.4f), %s, reports %s",
        exported.serving_model_dir,
        exported.eval_accuracy,
        exported.keras_path,
        exported.reports,
    )


def train(
    config: TrainerConfig,
    class_names: Sequence[str],
    base_model: str,
    train_files: Sequence[str],
    eval_files: Sequence[str],
    log_dir: str | None = None,
) -> TrainResult:
    """Trains the head on the bottlenecks, then fine-tunes when the config asks.

    Args:
        config: the validated Trainer config.
        class_names: class names in label-index order.
        base_model: a directory holding model.keras (or the .keras file).
        train_files: patterns of the train split's gzipped TFRecords.
        eval_files: patterns of the eval split's gzipped TFRecords.
        log_dir: TensorBoard logs go to ``<log_dir>/<phase>``; None: no logs.

    Returns:
        The trained models, counts, the fine-tuning choice and each phase's history.
    """
    keras.utils.set_random_seed(config.seed)
    train_files = data.record_files(train_files, "train")
    eval_files = data.record_files(eval_files, "eval")
    full = config.mode == MODE_FULL
    base = model_io.load_keras(base_model)
    selection, key = None, BOTTLENECK_KEY
    if config.cut_layer == model_surgery.CUT_AUTO:
        if full:
            raise ValueError(
                "trainer.cut_layer 'auto' selects among cached candidates: it needs mode "
                "'transfer' (a full-mode Trainer trains on images); set a cut_layer"
            )
        selection = cut_selection_lib.choose_cut(
            base,
            config.cut_candidates,
            train_files,
            model_surgery.HeadSpec(len(class_names), config.hidden_units, config.dropout),
            learning_rate=config.learning_rate,
            batch_size=config.batch_size,
            seed=config.seed,
        )
        config = dataclasses.replace(config, cut_layer=selection.chosen, cut_candidates=())
        key = candidate_key(selection.chosen)
        keras.utils.set_random_seed(config.seed)  # the head starts as with a fixed cut
    extractor = build_extractor(config, base)
    shape = tuple(int(d) for d in extractor.output_shape[1:])
    if not full:
        shape = _bottleneck_shape(config, extractor, train_files, key)
    train_counts = data.count_labels(train_files, len(class_names), "train")
    eval_counts = data.count_labels(eval_files, len(class_names), "eval")
    head_spec = model_surgery.HeadSpec(len(class_names), config.hidden_units, config.dropout)
    measured = None
    if full:
        choice = FineTuneChoice(0, "mode full: every layer is trained")
    elif config.fixed_unfreeze is None:  # auto: measured on the train split only
        # Python's and NumPy's generators (Keras draws initial weights and dropout seeds
        # from them) are put back: the real head starts as with a fixed setting.
        states = random.getstate(), np.random.get_state()
        measured = measure_fine_tune(extractor, config, shape, head_spec, train_files, key)
        random.setstate(states[0])
        np.random.set_state(states[1])
        choice = FineTuneChoice(measured.chosen, f"auto, measured: {measured.reason}")
    else:
        choice = choose_fine_tune(config, extractor)
    head = model_surgery.build_head(shape, head_spec)
    splits = _Splits(train_files, eval_files, int(train_counts.sum()), int(eval_counts.sum()), key)
    if full:
        phases = [_train_full(extractor, head, config, splits, log_dir)]
    else:
        phases = [_train_head(head, config, shape, splits, log_dir)]
    if choice.layers:
        phase = _fine_tune(extractor, head, config, choice.layers, splits, log_dir)
        phases.append(phase)
        choice = dataclasses.replace(choice, layer_names=phase.trainable_layers)
    return TrainResult(
        classifier=build_classifier(extractor, head),
        extractor=extractor,
        head=head,
        bottleneck_shape=shape,
        train_counts=train_counts,
        eval_counts=eval_counts,
        fine_tune=choice,
        phases=tuple(phases),
        cut_layer=model_surgery.resolve_cut_layer(base, config.cut_layer, config.drop_top_layers),
        cut_selection=selection,
        fine_tune_selection=measured,
    )


def build_extractor(config: TrainerConfig, base: keras.Model) -> keras.Model:
    """The frozen extractor of the base (model_surgery), checked against the ImageSpec."""
    extractor = model_surgery.feature_extractor(
        base, config.cut_layer, config.drop_top_layers, config.pooling
    )
    model_surgery.check_input_size(
        base,
        config.image.height,
        config.image.width,
        source="trainer.image (the ImageSpec)",
        fix="set image height/width to the base's input size",
    )
    if any(d is None for d in extractor.output_shape[1:]):
        raise ValueError(
            f"the extractor's output shape {extractor.output_shape[1:]} is not static; use "
            "pooling 'avg', 'max' or 'flatten', or a base with a fixed input size"
        )
    return extractor


def _bottleneck_shape(
    config: TrainerConfig, extractor: keras.Model, files, key: str = BOTTLENECK_KEY
) -> tuple[int, ...]:
    """The extractor's output shape, checked against the records' vector length."""
    shape = tuple(int(d) for d in extractor.output_shape[1:])
    dim = data.bottleneck_dim(files, key)
    if dim != int(np.prod(shape)):
        raise ValueError(
            f"the bottleneck records hold {dim} values per example but the extractor "
            f"(cut_layer={config.cut_layer!r}, drop_top_layers={config.drop_top_layers}, "
            f"pooling={config.pooling!r}) outputs {shape}: set trainer.cut_layer, "
            "trainer.drop_top_layers and trainer.pooling to BottleneckCache's values"
        )
    return shape


def unfreezable_layers(extractor: keras.Model) -> int:
    """How many layers fine-tuning can unfreeze: weighted, not BatchNormalization."""
    return len(
        [
            layer
            for layer in model_surgery.weighted_layers(extractor)
            if not isinstance(layer, keras.layers.BatchNormalization)
        ]
    )


def choose_fine_tune(config: TrainerConfig, extractor: keras.Model) -> FineTuneChoice:
    """K (top weighted layers to unfreeze) as the config fixes it ("off" or K), and why;
    "auto" is measured by `measure_fine_tune`.

    Raises:
        ValueError: a fixed K larger than the extractor's unfreezable layers, or "auto".
    """
    unfreezable = unfreezable_layers(extractor)
    fixed = config.fixed_unfreeze
    if fixed is None:
        raise ValueError("fine_tune 'auto' is measured: call measure_fine_tune")
    if fixed == 0:
        return FineTuneChoice(0, "fine_tune is 'off': the head alone is trained")
    if fixed > unfreezable:
        raise ValueError(
            f"trainer.fine_tune: {fixed} is more than the {unfreezable} weighted "
            f"(non-BatchNormalization) layers of the extractor; choose 'off', 'auto' or "
            f"an integer K between 1 and {unfreezable}"
        )
    return FineTuneChoice(fixed, f"fine_tune is {fixed}: set in the config")


SELECTION_HEAD = "fine-tune auto: head"


def measure_fine_tune(
    extractor: keras.Model,
    config: TrainerConfig,
    shape: tuple[int, ...],
    head_spec: model_surgery.HeadSpec,
    train_files: Sequence[str],
    key: str = BOTTLENECK_KEY,
    depths: Sequence[int] = fine_tune_lib.CANDIDATE_DEPTHS,
) -> fine_tune_lib.FineTuneSelection:
    """fine_tune "auto": off against the top k layers, on a fold of the TRAIN split.

    The validation fold (``fine_tune_selection.validation_fold``, seeded) plays the part
    the eval split plays in the real training: the head phase (``_train_head``) and each
    k's fine-tuning phase (``_fine_tune``) train on the rest and early-stop on the fold,
    and every setting is scored on the fold's images. The eval split is not read. The
    extractor's weights are restored after every k and at the end.

    Args:
        extractor: the frozen extractor at the cut (its weights are restored).
        config: the Trainer's config (head, fine-tuning and budget settings, seed).
        shape: the bottleneck shape; head_spec: the head.
        train_files: the train split's records; key: the bottleneck feature.
        depths: the k compared with off (capped at the unfreezable layers).
    """
    start = time.perf_counter()
    labels = data.record_labels(train_files)
    if len(labels) < fine_tune_lib.VALIDATION_FOLDS:
        return fine_tune_lib.not_measured(
            f"{len(labels)} labelled train examples are too few to carve a validation "
            f"fold (at least {fine_tune_lib.VALIDATION_FOLDS}): fine-tuning off",
            len(labels),
            config.fine_tune_budget_seconds,
            time.perf_counter() - start,
        )
    val = fine_tune_lib.validation_fold(labels, config.seed)
    splits = _Splits(train_files, train_files, int((~val).sum()), int(val.sum()), key, ~val, val)
    keras.utils.set_random_seed(config.seed)
    head = model_surgery.build_head(shape, head_spec)
    _train_head(head, config, shape, splits, None, phase=SELECTION_HEAD)
    fold_images = _images_of(config)(train_files, splits.eval_size, keep=val)
    trained_head = _snapshot(head)
    base_weights = _snapshot(extractor)
    off = fine_tune_lib.Trial(0, _correct(extractor, head, fold_images))
    head_seconds = time.perf_counter() - start
    off = dataclasses.replace(off, seconds=head_seconds)

    def trial(k: int) -> fine_tune_lib.Trial:
        _restore(trained_head)
        _restore(base_weights)
        phase = _fine_tune(extractor, head, config, k, splits, None, f"fine-tune auto: k={k}")
        return fine_tune_lib.Trial(
            k, _correct(extractor, head, fold_images), layer_names=phase.trainable_layers
        )

    unfreezable = unfreezable_layers(extractor)
    trials = fine_tune_lib.run_trials(
        [k for k in depths if k <= unfreezable], trial, config.fine_tune_budget_seconds, start
    )
    trials += [  # listed, not dropped: the table says why a depth is missing
        fine_tune_lib.Trial(k, skipped=f"the base has {unfreezable} weighted layer(s) to unfreeze")
        for k in depths
        if k > unfreezable
    ]
    _restore(base_weights)
    extractor.trainable = False
    chosen, reason = fine_tune_lib.decide(off, trials)
    seconds = time.perf_counter() - start
    reason += f" ({seconds:.0f} s, budget {config.fine_tune_budget_seconds:g} s)"
    selection = fine_tune_lib.FineTuneSelection(
        off,
        tuple(trials),
        chosen,
        reason,
        int(val.sum()),
        int((~val).sum()),
        config.fine_tune_budget_seconds,
        seconds,
        head_seconds,
    )
    logging.info("trainer: fine_tune auto: %s\n%s", reason, fine_tune_lib.table(selection))
    return selection


def _snapshot(model: keras.Model) -> list[tuple[Any, np.ndarray]]:
    """Every variable of `model` (seed states included) with its current value."""
    return [(variable, keras.ops.convert_to_numpy(variable)) for variable in model.variables]


def _restore(snapshot: list[tuple[Any, np.ndarray]]) -> None:
    for variable, value in snapshot:
        variable.assign(value)


def _correct(extractor, head, images: tf.data.Dataset) -> tuple[bool, ...]:
    """Per example of `images` (in order): does the classifier predict its label?"""
    correct = []
    for batch, labels in images:
        probabilities = head(extractor(batch, training=False), training=False)
        predicted = np.argmax(keras.ops.convert_to_numpy(probabilities), axis=-1)
        correct += (predicted == labels.numpy()).tolist()
    return tuple(bool(c) for c in correct)


def _compile(model: keras.Model, learning_rate: float) -> None:
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(),
        metrics=["accuracy"],
    )


class _Splits(NamedTuple):
    """The record files of both splits and their labelled example counts."""

    train_files: list[str]
    eval_files: list[str]
    train_size: int
    eval_size: int
    key: str = BOTTLENECK_KEY  # the bottleneck feature (a candidate's for cut auto)
    # Masks over the labelled records (data.record_labels order); None: every record.
    # fine_tune auto's fold: both "splits" are the train files, the masks complementary.
    train_keep: np.ndarray | None = None
    eval_keep: np.ndarray | None = None

    def datasets(self, read, seed: int) -> tuple[tf.data.Dataset, tf.data.Dataset]:
        """(train, eval) datasets: `read(files, size, shuffle_seed=, keep=)` on each split,
        the train split shuffled with `seed`."""
        train = read(self.train_files, self.train_size, shuffle_seed=seed, keep=self.train_keep)
        return train, read(self.eval_files, self.eval_size, keep=self.eval_keep)


def _train_head(head, config, shape, splits: _Splits, log_dir, phase=HEAD_PHASE) -> PhaseResult:
    """Phase 1: the head on the cached bottleneck vectors."""
    datasets = splits.datasets(
        lambda files, size, **kw: data.bottleneck_dataset(
            files, shape, config.batch_size, size, key=splits.key, **kw
        ),
        config.seed,
    )
    _compile(head, config.learning_rate)
    return _fit(phase, head, datasets, config.epochs, config.learning_rate, config, log_dir)


def _train_full(extractor, head, config, splits: _Splits, log_dir) -> PhaseResult:
    """Mode full: every layer of the extractor (BatchNorm in training mode) and the head
    on the images at the full learning rate."""
    extractor.trainable = True
    for layer in extractor.layers:
        layer.trainable = True
    model = build_classifier(extractor, head)
    _compile(model, config.learning_rate)
    datasets = splits.datasets(_images_of(config), config.seed)
    phase = _fit(FULL_PHASE, model, datasets, config.epochs, config.learning_rate, config, log_dir)
    extractor.trainable = False
    return dataclasses.replace(
        phase, trainable_layers=tuple(layer.name for layer in extractor.layers)
    )


def _images_of(config: TrainerConfig):
    """The reader of preprocessed images (data.image_dataset) for _Splits.datasets."""

    def read(files, size, **kw):
        return data.image_dataset(files, config.image, config.batch_size, size, **kw)

    return read


class FineTuneModel(keras.Model):
    """Training wrapper: extractor in inference mode, head in the caller's mode.

    Not exported or saved; it shares the extractor's and head's layers (and weights)
    with the classifier that is.
    """

    def __init__(self, extractor: keras.Model, head: keras.Model, **kwargs):
        super().__init__(**kwargs)
        self.extractor = extractor
        self.head = head

    def call(self, images, training=None):
        return self.head(self.extractor(images, training=False), training=training)


def _fine_tune(
    extractor, head, config, k, splits: _Splits, log_dir, phase=FINE_TUNE_PHASE
) -> PhaseResult:
    """Phase 2: the top k weighted layers + head on the images, at a lower rate."""
    names = model_surgery.unfreeze_top(extractor, k)
    logging.info("trainer: fine-tuning %s", names)
    model = FineTuneModel(extractor, head, name="fine_tune")
    learning_rate = config.learning_rate * config.fine_tune_lr_factor
    _compile(model, learning_rate)
    datasets = splits.datasets(_images_of(config), config.seed)
    epochs = config.fine_tune_epochs
    result = _fit(phase, model, datasets, epochs, learning_rate, config, log_dir)
    extractor.trainable = False  # back to the frozen extractor feature_extractor returns
    return dataclasses.replace(result, trainable_layers=tuple(names))


class EpochProgress(keras.callbacks.Callback):
    """Logs one progress record per epoch (components.common.progress, unit epochs,
    detail 'val_loss 0.41', plus 'stopped early' when early stopping ends the phase
    there). Keras' own epoch lines (verbose=2) are unchanged."""

    def __init__(self, task: str, epochs: int):
        super().__init__()
        self._task = task
        self._epochs = epochs
        self._progress: progress.Progress | None = None

    def on_train_begin(self, logs=None):
        self._progress = progress.Progress(self._task, progress.EPOCHS, self._epochs, interval=0)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        parts = [f"val_loss {float(logs['val_loss']):.3g}"] if "val_loss" in logs else []
        if getattr(self.model, "stop_training", False) and epoch + 1 < self._epochs:
            parts.append("stopped early")
        if self._progress is not None:
            self._progress.update(epoch + 1, ", ".join(parts))


def _fit(phase, model, datasets, epochs, learning_rate, config, log_dir) -> PhaseResult:
    """model.fit on (train, eval) datasets, early stopping on the eval loss, TensorBoard,
    a progress record per epoch."""
    train_ds, eval_ds = datasets
    callbacks = []
    stopper = None
    if config.early_stopping_patience:
        stopper = keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=config.early_stopping_patience, restore_best_weights=True
        )
        callbacks.append(stopper)
    if log_dir:
        callbacks.append(
            keras.callbacks.TensorBoard(log_dir=join(log_dir, phase), write_graph=False)
        )
    callbacks.append(EpochProgress(PROGRESS_TASKS.get(phase, phase), epochs))  # after the stopper
    fitted = model.fit(
        train_ds, validation_data=eval_ds, epochs=epochs, callbacks=callbacks, verbose=2
    )
    history = {key: [float(v) for v in values] for key, values in fitted.history.items()}
    epochs_run = len(history.get("loss", ()))
    best = stopper.best_epoch + 1 if stopper is not None else epochs_run
    return PhaseResult(phase, history, epochs_run, best, learning_rate)


def build_classifier(extractor: keras.Model, head: keras.Model) -> keras.Model:
    """Preprocessed images -> extractor -> head -> probabilities (layers shared).

    The graph is the base's own layers up to the cut, the pooling, then the head as
    a nested model, so the saved model.keras can be cut by layer name when it is used
    as another pipeline's base.
    """
    return keras.Model(extractor.inputs, head(extractor.outputs[0]), name="classifier")


def export(
    result: TrainResult,
    config: TrainerConfig,
    class_names: Sequence[str],
    serving_model_dir: str,
    eval_files: Sequence[str],
) -> ExportResult:
    """Writes the serving SavedModel, model.keras beside it, and the reports.

    Args:
        result: what `train` returned.
        config: the config it was trained with (its ImageSpec goes into the model).
        class_names: class names in label-index order.
        serving_model_dir: the SavedModel directory (fn_args.serving_model_dir).
        eval_files: patterns of the eval split, to score the exported model.

    Returns:
        The paths written and the exported model's eval accuracy.
    """
    first = next(
        data.encoded_eval_batches(data.record_files(eval_files, "eval"), WARMUP_IMAGES), None
    )
    model_io.export_serving_model(
        result.classifier,
        config.image,
        class_names,
        serving_model_dir,
        warmup_images=list(first[0]) if first is not None else (),
    )
    model_dir = posixpath.dirname(serving_model_dir.rstrip("/"))
    keras_path = model_io.save_keras(result.classifier, model_dir)
    labels, probabilities = predict_exported(
        serving_model_dir, data.record_files(eval_files, "eval"), config.batch_size
    )
    predicted = np.argmax(probabilities, axis=-1)
    accuracy = float(np.mean(predicted == labels))
    matrix = reports.confusion_matrix(labels, predicted, len(class_names))
    metrics = _metrics(result, config, class_names, accuracy, matrix)
    paths = reports.write_reports(
        join(model_dir, reports.REPORTS_DIR),
        [(phase.name, phase.history) for phase in result.phases],
        matrix,
        class_names,
        metrics,
    )
    if result.cut_selection is not None:
        written = cut_selection_lib.write_selection(
            result.cut_selection, join(model_dir, reports.REPORTS_DIR)
        )
        paths.update({"cut_selection": written["json"], "cut_selection_png": written["png"]})
    if result.fine_tune_selection is not None:
        written = fine_tune_lib.write_selection(
            result.fine_tune_selection, join(model_dir, reports.REPORTS_DIR)
        )
        paths.update(
            {"fine_tune_selection": written["json"], "fine_tune_selection_png": written["png"]}
        )
    return ExportResult(serving_model_dir, keras_path, paths, accuracy)


def predict_exported(
    serving_model_dir: str, eval_files: Sequence[str], batch_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """(labels, probabilities) of the exported SavedModel's predict_images on the files."""
    predict = tf.saved_model.load(serving_model_dir).signatures[model_io.IMAGES_SIGNATURE]
    labels, probabilities = [], []
    for encoded, batch_labels in data.encoded_eval_batches(eval_files, batch_size):
        outputs = predict(**{model_io.IMAGES_INPUT: tf.constant(encoded)})
        probabilities.append(outputs[model_io.PROBABILITIES_OUTPUT].numpy())
        labels.append(batch_labels)
    return np.concatenate(labels), np.concatenate(probabilities)


def _metrics(result, config, class_names, accuracy, matrix) -> dict[str, Any]:
    """The content of metrics.json."""
    return {
        "eval_accuracy": accuracy,
        "num_train_examples": int(result.train_counts.sum()),
        "num_eval_examples": int(result.eval_counts.sum()),
        "examples_per_class": {
            split: dict(zip(class_names, counts.tolist(), strict=True))
            for split, counts in (("train", result.train_counts), ("eval", result.eval_counts))
        },
        "class_names": list(class_names),
        "bottleneck_shape": list(result.bottleneck_shape),
        "cut_layer": result.cut_layer,
        "cut_selection": result.cut_selection.to_dict() if result.cut_selection else None,
        "fine_tune": {
            "setting": config.fine_tune,
            "unfrozen_layers": result.fine_tune.layers,
            "layer_names": list(result.fine_tune.layer_names),
            "reason": result.fine_tune.reason,
            "selection": (
                result.fine_tune_selection.to_dict() if result.fine_tune_selection else None
            ),
        },
        "phases": {phase.name: phase.to_dict() for phase in result.phases},
        "confusion_matrix": matrix,
        "config": config.to_dict(),
    }
