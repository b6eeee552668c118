"""create_pipeline(config): the one place where the DAG is wired.

The same function serves the local runner (pipeline/local_runner.py: LocalDagRunner,
SQLite metadata, Beam DirectRunner) and the Kubeflow compile (kubeflow/compile.py, with
RuntimeParameters under the RUNTIME_* names and resolve_baseline=False): runners only
differ in what they wrap around the returned `tfx.dsl.Pipeline`. `trainer_config`,
`eval_config` and `push_destination` turn the YAML config into the Trainer's
custom_config, the Evaluator's gate and Pusher's destination. The picture:
docs/ARCHITECTURE.md, "Data flow".
"""

from __future__ import annotations

import os

import tensorflow_model_analysis as tfma

# Not `from tfx import v1 as tfx`: importing tfx.v1 imports every extension with it,
# Google Cloud AI Platform's client included (about 4 s of every run's start, for a
# module no run here uses). The same classes from their own modules:
from tfx.components import (
    Evaluator,
    ExampleValidator,
    Pusher,
    StatisticsGen,
    Trainer,
    Transform,
)
from tfx.components.schema_gen.import_schema_gen.component import ImportSchemaGen
from tfx.dsl.components.base import executor_spec
from tfx.dsl.components.common.resolver import Resolver
from tfx.orchestration import pipeline as tfx_pipeline
from tfx.proto import pusher_pb2, trainer_pb2
from tfx.types import standard_artifacts
from tfx.types.channel import Channel

from components.anomaly_gate.component import AnomalyGate
from components.base_model_gen.component import BaseModelGen
from components.baseline_resolver.strategy import LatestBlessedOtherModelStrategy
from components.bottleneck_cache.component import BottleneckCache
from components.common import model_io
from components.idempotent_pusher.executor import Executor as IdempotentPusherExecutor
from components.image_example_gen.component import ImageExampleGen
from components.layerwise_pretrainer.component import LayerwisePretrainer
from components.serving_check.component import ServingCheck
from components.trainer.config import MODE_FULL, TrainerConfig
from pipeline.config import KIND_LAYERWISE, PipelineConfig

# Transform calls this function by its dotted path: no user-module wheel is built, and
# the Kubeflow image (where the package is installed) resolves it the same way.
PREPROCESSING_FN = "components.common.preprocessing.preprocessing_fn"
RUN_FN = "components.trainer.train.run_fn"

# Values a runner may supply at run time instead of the config's (the Kubeflow compile
# passes RuntimeParameters under these names; local runs pass none): the image folder,
# the Trainer's custom_config (JSON: epochs and the rest) and Pusher's PushDestination.
RUNTIME_DATA_ROOT = "data_root"
RUNTIME_TRAINER_CONFIG = "trainer_config"
RUNTIME_PUSH_DESTINATION = "push_destination"
RUNTIME_NAMES = (RUNTIME_DATA_ROOT, RUNTIME_TRAINER_CONFIG, RUNTIME_PUSH_DESTINATION)


# Fields of the YAML `training` section that the Trainer takes as they are.
_TRAINING_FIELDS = (
    "hidden_units",
    "dropout",
    "learning_rate",
    "batch_size",
    "epochs",
    "early_stopping_patience",
    "fine_tune_epochs",
    "fine_tune_lr_factor",
    "fine_tune_budget_seconds",
    "seed",
)


def trainer_config(config: PipelineConfig) -> TrainerConfig:
    """The Trainer's custom_config, from the pipeline config's base_model and training."""
    base, training = config.base_model, config.training
    fine_tune = training.fine_tune
    if fine_tune == "layers":
        fine_tune = training.fine_tune_layers
    return TrainerConfig(
        image=config.image.image_spec(),
        cut_layer=base.cut_layer,
        cut_candidates=tuple(base.cut_candidates),
        drop_top_layers=base.drop_top_layers,
        pooling=base.pooling,
        fine_tune=fine_tune,
        **{name: getattr(training, name) for name in _TRAINING_FIELDS},
    )


def eval_config(config: PipelineConfig) -> tfma.EvalConfig:
    """Accuracy on the eval split: at least min_accuracy, and no regression beyond
    max_regression against the last blessed model (ignored on the first run)."""
    return tfma.EvalConfig(
        model_specs=[
            tfma.ModelSpec(
                signature_name=model_io.SERVING_SIGNATURE,
                label_key="label",
                prediction_key=model_io.PROBABILITIES_OUTPUT,
            )
        ],
        slicing_specs=[tfma.SlicingSpec()],
        metrics_specs=[
            tfma.MetricsSpec(
                metrics=[
                    tfma.MetricConfig(
                        class_name="SparseCategoricalAccuracy",
                        threshold=tfma.MetricThreshold(
                            value_threshold=tfma.GenericValueThreshold(
                                lower_bound={"value": config.evaluation.min_accuracy}
                            ),
                            change_threshold=tfma.GenericChangeThreshold(
                                direction=tfma.MetricDirection.HIGHER_IS_BETTER,
                                absolute={"value": -config.evaluation.max_regression - 1e-10},
                            ),
                        ),
                    )
                ]
            )
        ],
    )


def push_destination(config: PipelineConfig) -> pusher_pb2.PushDestination:
    """Pusher's destination: <serving root>/<model_name>/ (Pusher adds <version>/)."""
    return pusher_pb2.PushDestination(
        filesystem=pusher_pb2.PushDestination.Filesystem(
            base_directory=os.path.join(config.serving.root, config.serving.model_name)
        )
    )


def create_components(
    config: PipelineConfig, runtime_parameters=None, resolve_baseline: bool = True
) -> list:
    """Returns the pipeline's components, wired, in topological order.

    Args:
      config: the validated pipeline config.
      runtime_parameters: optional mapping from the RUNTIME_* names to values (such as
        tfx.dsl.experimental.RuntimeParameter) that replace the config's.
      resolve_baseline: False leaves out the resolver of the last blessed model, so
        Evaluator checks the absolute floor only (open-source Kubeflow Pipelines
        cannot run resolver nodes).
    """
    runtime = dict(runtime_parameters or {})
    unknown = sorted(set(runtime) - set(RUNTIME_NAMES))
    if unknown:
        raise ValueError(
            f"unknown runtime parameter(s) {', '.join(unknown)}; "
            f"allowed: {', '.join(RUNTIME_NAMES)}"
        )
    # Image folders -> train/eval tf.Examples, class vocabulary, quarantine report.
    example_gen = ImageExampleGen(
        input_base=runtime.get(RUNTIME_DATA_ROOT, config.data.root),
        train_ratio=config.data.train_ratio,
        max_pixels=config.data.max_pixels,
        max_side=config.data.max_side,
        labelled=config.data.labelled,
    )
    # Per-split statistics of the ingested examples.
    statistics_gen = StatisticsGen(examples=example_gen.outputs["examples"])
    # The reviewed, checked-in schema (label vocabulary, required image bytes).
    schema_gen = ImportSchemaGen(schema_file=config.schema)
    # Statistics vs schema -> anomalies ...
    example_validator = ExampleValidator(
        statistics=statistics_gen.outputs["statistics"],
        schema=schema_gen.outputs["schema"],
    )
    # ... and any anomaly stops the run here, with a message naming it; so do, when a
    # model will be trained, class folders that are not the schema's classes and a
    # class with too few labelled images in a split.
    gate_classes = config.base_model is not None and config.data.labelled
    anomaly_gate = AnomalyGate(
        anomalies=example_validator.outputs["anomalies"],
        schema=schema_gen.outputs["schema"] if gate_classes else None,
        vocabulary=example_gen.outputs["vocabulary"] if gate_classes else None,
        min_train_per_class=config.data.min_train_per_class if gate_classes else 0,
        min_eval_per_class=config.data.min_eval_per_class if gate_classes else 0,
    )
    # Decode -> RGB -> resize -> the base network's scaling: the transform graph that
    # the bottleneck cache and the served model reuse. Nothing is materialized: image
    # tensors are large, and every consumer applies the graph itself.
    transform = Transform(
        examples=example_gen.outputs["examples"],
        schema=schema_gen.outputs["schema"],
        preprocessing_fn=PREPROCESSING_FN,
        custom_config=config.image.image_spec().to_dict(),
        materialize=False,
        disable_statistics=True,
    )
    transform.add_upstream_node(anomaly_gate)
    components = [
        example_gen,
        statistics_gen,
        schema_gen,
        example_validator,
        anomaly_gate,
        transform,
    ]
    if config.base_model is None:
        return components

    base = config.base_model
    if base.kind == KIND_LAYERWISE:
        # No pretrained network: an encoder trained without labels, layer by layer.
        base_components = _layerwise(config, example_gen, transform)
    else:
        # The base network as a Model artifact (model.keras), whatever its source.
        base_components = [
            BaseModelGen(
                kind=base.kind,
                height=config.image.height,
                width=config.image.width,
                name=base.name,
                weights=base.weights,
                path=base.path,
                seed=base.seed,
            )
        ]
        if base.source_task is not None:
            base_components += _source_task(config, base_components[0].outputs["model"])
    base_channel = base_components[-1].outputs["model"]
    # Frozen layers over every image once: content-addressed, incremental, persistent
    # across runs under cache_dir; outputs Examples carrying the bottleneck vectors.
    bottleneck_cache = BottleneckCache(
        examples=example_gen.outputs["examples"],
        transform_graph=transform.outputs["transform_graph"],
        base_model=base_channel,
        cache_dir=config.cache_dir,
        cut_layer=base.cut_layer,
        drop_top_layers=base.drop_top_layers,
        pooling=base.pooling,
        batch_size=config.cache.batch_size,
        cut_candidates=tuple(base.cut_candidates),
    )
    if config.cache.beam_pipeline_args:
        bottleneck_cache = bottleneck_cache.with_beam_pipeline_args(
            list(config.cache.beam_pipeline_args)
        )
    # Phase 1: a new head on the cached vectors; phase 2 (optional): fine-tune the top
    # of the base on images at learning_rate * fine_tune_lr_factor. Exports ONE serving model:
    # preprocessing + frozen base + head, for tf.Examples and for raw image bytes.
    trainer = _trainer(
        bottleneck_cache.outputs["bottlenecks"],
        schema_gen.outputs["schema"],
        base_channel,
        runtime.get(RUNTIME_TRAINER_CONFIG, trainer_config(config).to_dict()),
    )
    # The model now in service, to compare against.
    baseline = None
    if resolve_baseline:
        # (not the candidate itself: an unchanged rerun then keeps the same baseline
        # and Evaluator is served from TFX's cache; components/baseline_resolver/strategy.py).
        baseline = Resolver(
            strategy_class=LatestBlessedOtherModelStrategy,
            model=Channel(type=standard_artifacts.Model),
            model_blessing=Channel(type=standard_artifacts.ModelBlessing),
            candidate=trainer.outputs["model"],
        ).with_id("latest_blessed_model_resolver")
    # TFMA on the raw eval images through the exported signature: the gate.
    evaluator = Evaluator(
        examples=example_gen.outputs["examples"],
        model=trainer.outputs["model"],
        baseline_model=baseline.outputs["model"] if baseline else None,
        eval_config=eval_config(config),
    )
    # The candidate loaded the way TF Serving loads it (TF1 session, signature_def
    # names), in a fresh process, answering real eval images through both signatures:
    # InfraValidator's role, without a model server (it runs under Kubeflow V2 too).
    serving_check = ServingCheck(
        model=trainer.outputs["model"], examples=example_gen.outputs["examples"]
    )
    # Only a blessed, servable model reaches <serving root>/<model_name>/<version>/, and
    # a model that is already served there is not published again.
    pusher = Pusher(
        model=trainer.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        infra_blessing=serving_check.outputs["blessing"],
        push_destination=runtime.get(RUNTIME_PUSH_DESTINATION, push_destination(config)),
        custom_executor_spec=executor_spec.ExecutorClassSpec(IdempotentPusherExecutor),
    )
    return components + [
        *base_components,
        bottleneck_cache,
        trainer,
        *([baseline] if baseline else []),
        evaluator,
        serving_check,
        pusher,
    ]


def _trainer(examples, schema, base_model, custom_config) -> Trainer:
    """The standard Trainer running this project's run_fn (components/trainer/)."""
    return Trainer(
        run_fn=RUN_FN,
        examples=examples,
        schema=schema,
        base_model=base_model,
        train_args=trainer_pb2.TrainArgs(),
        eval_args=trainer_pb2.EvalArgs(),
        custom_config=custom_config,
    )


def _layerwise(config: PipelineConfig, example_gen, transform) -> list:
    """Components that pretrain the base without labels (greedy layer-wise autoencoders).

    The images come from base_model.layerwise.data_root (an unlabelled folder, with its
    own ImageExampleGen) or, when that is empty, from the target's examples with their
    labels ignored. Either way they go through the target's Transform graph: the
    encoder learns on exactly the pixels it will later see.
    """
    layerwise = config.base_model.layerwise
    components = []
    examples = example_gen.outputs["examples"]
    if layerwise.data_root:
        unlabelled_gen = ImageExampleGen(
            input_base=layerwise.data_root,
            train_ratio=layerwise.train_ratio,
            max_pixels=config.data.max_pixels,
            max_side=config.data.max_side,
            labelled=False,
        ).with_id("UnlabelledExampleGen")
        components.append(unlabelled_gen)
        examples = unlabelled_gen.outputs["examples"]
    pretrainer = LayerwisePretrainer(
        examples=examples,
        transform_graph=transform.outputs["transform_graph"],
        conv_blocks=layerwise.conv_block_dicts(),
        dense_units=layerwise.dense_units,
        epochs_per_layer=layerwise.epochs_per_layer,
        batch_size=layerwise.batch_size,
        learning_rate=layerwise.learning_rate,
        noise=layerwise.noise,
        noise_level=layerwise.noise_level,
        seed=config.base_model.seed,
    )
    return [*components, pretrainer]


def _source_task(config: PipelineConfig, base_channel) -> list:
    """Components that train the base on a labelled source task (every layer).

    The source Trainer's Model (its model.keras keeps the base's layer names) is the
    base that the target task then cuts, freezes and caches.
    """
    source = config.base_model.source_task
    source_gen = ImageExampleGen(
        input_base=source.data_root,
        train_ratio=source.train_ratio,
        max_pixels=config.data.max_pixels,
        max_side=config.data.max_side,
    ).with_id("SourceExampleGen")
    source_schema = ImportSchemaGen(schema_file=source.schema).with_id("SourceSchemaGen")
    source_config = TrainerConfig(
        image=config.image.image_spec(),
        mode=MODE_FULL,
        learning_rate=source.learning_rate,
        batch_size=source.batch_size,
        epochs=source.epochs,
        seed=config.base_model.seed,
    )
    source_trainer = _trainer(
        source_gen.outputs["examples"],
        source_schema.outputs["schema"],
        base_channel,
        source_config.to_dict(),
    ).with_id("SourceTrainer")
    return [source_gen, source_schema, source_trainer]


def create_pipeline(
    config: PipelineConfig,
    metadata_connection_config=None,
    runtime_parameters=None,
    resolve_baseline: bool = True,
) -> tfx_pipeline.Pipeline:
    """Builds the TFX pipeline for a validated config.

    Args:
      config: the validated pipeline config.
      metadata_connection_config: ML Metadata connection; None lets the runner
        choose (Kubeflow supplies its own).
      runtime_parameters: optional values supplied at run time instead of the
        config's, by the RUNTIME_* names (see create_components).
      resolve_baseline: False: no comparison with the last blessed model (see
        create_components).

    Returns:
      The logical pipeline, ready for a runner.
    """
    return tfx_pipeline.Pipeline(
        pipeline_name=config.pipeline_name,
        pipeline_root=config.pipeline_dir,
        components=create_components(config, runtime_parameters, resolve_baseline),
        enable_cache=config.enable_cache,
        metadata_connection_config=metadata_connection_config,
        beam_pipeline_args=list(config.beam_pipeline_args),
    )
