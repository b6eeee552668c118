"""Compiles the pipeline for Kubeflow Pipelines (KFP v2): config -> YAML pipeline spec.

    python -m kubeflow.compile --config kubeflow/configs/demo.yaml [--output FILE]
    (or: tfx-transfer compile --config kubeflow/configs/demo.yaml)

Thin on purpose: the deployment config (kubeflow/config.py) -> the pipeline config as
the cluster sees it -> the same `create_pipeline` as local runs, with RuntimeParameters
for the values that change per run -> TFX's KubeflowV2DagRunner -> a few settings that
TFX's compiler has no hook for -> one YAML file that `kfp.Client` submits.

What the compile sets, and where:
- CPU, memory and GPUs per step: TFX's own hook, `component.with_platform_config(
  ResourceSpec)`, which KubeflowV2 writes to deploymentSpec.executors.<id>_executor.
  container.resources. On open-source KFP the accelerator type is the container's
  resource limit name (nvidia.com/gpu); the GPU model is chosen by a node selector
  (below).
- Beam args per component: `with_beam_pipeline_args` (after the pipeline's; last wins).
- Run-time parameters (root.inputDefinitions): data_root, trainer_config (the
  Trainer's whole custom_config as JSON: KFP has no way to substitute a parameter
  inside another parameter's string, and the Trainer takes its epochs from
  custom_config), push_destination (PushDestination JSON). TFX writes their types but
  puts their defaults only in a Vertex PipelineJob's runtimeConfig, so the compile
  writes them as the parameters' defaultValue. The pipeline root is KFP's own
  (defaultPipelineRoot here; a run may set another).
- Post-processing of the spec, because TFX's compiler has no hook for it:
  defaultPipelineRoot; parameter defaults; caching off for the steps whose inputs are
  outside the pipeline (ImageExampleGen, BaseModelGen: their fingerprint drivers,
  which re-run them when files change, do not run on Kubeflow, so KFP's cache would
  serve stale outputs); and a second YAML document, the Kubernetes platform spec, with
  a node selector (GPU model) and a GPU toleration for each GPU step.
- The baseline resolver is left out (resolve_baseline=False): the KFP v2 backend
  rejects resolver executors ("resolver executors not implemented"), so on Kubeflow
  Evaluator gates on the absolute accuracy floor only.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
from typing import Any

import yaml

from kubeflow import artifact_types
from kubeflow import config as kubeflow_config
from kubeflow.config import KubeflowConfig
from pipeline.config import ConfigError, PipelineConfig

DEFAULT_OUTPUT_DIR = os.path.join("build", "kubeflow")
TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
NO_NODE_LABEL = "none"


@dataclasses.dataclass(frozen=True)
class CompiledPipeline:
    """The compiled YAML file and what it holds."""

    path: str
    pipeline_spec: dict[str, Any]
    platform_spec: dict[str, Any]


def pin_direct_workers(beam_args: list[str], cpu: float | None) -> list[str]:
    """Replaces --direct_num_workers=0 with the step's CPU limit (rounded up, >= 1).

    Beam reads 0 as multiprocessing.cpu_count(): the *node's* cores, not the
    container's limit, so a 1-CPU step on a 32-core node would start 32 workers (each
    importing TensorFlow) and be OOM-killed. The last --direct_num_workers wins, as in
    Beam's own parsing.
    """
    workers = max(1, math.ceil(cpu)) if cpu else 1
    return [
        f"--direct_num_workers={workers}" if arg == "--direct_num_workers=0" else arg
        for arg in beam_args
    ]


def runtime_parameters(kf: KubeflowConfig, config: PipelineConfig) -> dict[str, Any]:
    """RuntimeParameters by create_pipeline's RUNTIME_* names, with their defaults."""
    from google.protobuf import json_format
    from tfx import v1 as tfx

    from pipeline import dag as pipeline_lib

    def parameter(name: str, default: str):
        return tfx.dsl.experimental.RuntimeParameter(name=name, ptype=str, default=default)

    params = {
        pipeline_lib.RUNTIME_DATA_ROOT: parameter(
            pipeline_lib.RUNTIME_DATA_ROOT, kf.parameters.data_root
        )
    }
    if config.base_model is None:  # no Trainer, no Pusher
        return params
    if kf.parameters.epochs:
        training = dataclasses.replace(config.training, epochs=kf.parameters.epochs)
        config = dataclasses.replace(config, training=training)
    trainer = pipeline_lib.trainer_config(config).to_dict()
    params[pipeline_lib.RUNTIME_TRAINER_CONFIG] = parameter(
        pipeline_lib.RUNTIME_TRAINER_CONFIG, json.dumps(trainer, sort_keys=True)
    )
    serving = dataclasses.replace(config.serving, root=kf.parameters.serving_root)
    destination = pipeline_lib.push_destination(dataclasses.replace(config, serving=serving))
    params[pipeline_lib.RUNTIME_PUSH_DESTINATION] = parameter(
        pipeline_lib.RUNTIME_PUSH_DESTINATION,
        json.dumps(json_format.MessageToDict(destination), sort_keys=True),
    )
    return params


def configure_components(pipeline, kf: KubeflowConfig) -> None:
    """Sets each component's resources and Beam args from the deployment config.

    Raises:
      ConfigError: a component id in the config is not in the pipeline, or Beam args
        are given to a component that is not Beam-based.
    """
    from kfp.pipeline_spec import pipeline_spec_pb2
    from tfx.dsl.components.base import base_beam_component, base_component

    resource_spec = pipeline_spec_pb2.PipelineDeploymentConfig.PipelineContainerSpec.ResourceSpec
    containers = {
        c.id: c for c in pipeline.components if isinstance(c, base_component.BaseComponent)
    }
    unknown = sorted(set(kf.components) - set(containers))
    if unknown:
        raise ConfigError(
            f"components: {', '.join(unknown)} not in pipeline "
            f"{pipeline.pipeline_info.pipeline_name}; its components: "
            f"{', '.join(sorted(containers))}"
        )
    for component_id, component in containers.items():
        own = kf.component(component_id)
        is_beam = isinstance(component, base_beam_component.BaseBeamComponent)
        if own.beam_pipeline_args and not is_beam:
            raise ConfigError(
                f"components.{component_id}.beam_pipeline_args: {component_id} is not a "
                "Beam-based component; remove them"
            )
        res = kf.resources_of(component_id)
        if is_beam and (kf.beam_pipeline_args or own.beam_pipeline_args):
            component.with_beam_pipeline_args(
                pin_direct_workers([*kf.beam_pipeline_args, *own.beam_pipeline_args], res.cpu)
            )
        spec = resource_spec(
            cpu_limit=res.cpu,
            memory_limit=res.memory,
            cpu_request=res.cpu_request,
            memory_request=res.memory_request,
        )
        if own.gpu is not None:
            spec.accelerator.type = kf.gpu_resource
            spec.accelerator.count = own.gpu.count
        if spec.ByteSize():
            component.with_platform_config(spec)


def _external_input_components(pipeline) -> list[str]:
    """Ids of components whose fingerprint driver keys the cache on outside files."""
    from components.common.fingerprint_driver import FingerprintDriver

    return sorted(
        c.id
        for c in pipeline.components
        if isinstance(getattr(c, "driver_class", None), type)
        and issubclass(c.driver_class, FingerprintDriver)
    )


def _artifact_types(pipeline) -> set[type]:
    types = set()
    for component in pipeline.components:
        for channel in [*component.inputs.values(), *component.outputs.values()]:
            types.add(channel.type)
    return types


def _post_process(spec: dict, kf: KubeflowConfig, params: dict, no_cache: list[str]) -> dict:
    """Writes what TFX's compiler has no hook for; returns the platform spec."""
    spec["defaultPipelineRoot"] = kf.pipeline_root
    inputs = spec["root"].setdefault("inputDefinitions", {}).setdefault("parameters", {})
    for name, param in params.items():
        if name in inputs:
            inputs[name]["defaultValue"] = param.default
            inputs[name]["isOptional"] = True
    executors = {}
    for task_id, task in spec["root"]["dag"]["tasks"].items():
        if not kf.enable_cache or task_id in no_cache:
            task["cachingOptions"] = {"enableCache": False}
        gpu = kf.component(task_id).gpu
        if gpu is None:
            continue
        label = spec["components"][task["componentRef"]["name"]]["executorLabel"]
        executor: dict[str, Any] = {"tolerations": [dict(TOLERATION)]}
        if kf.gpu_node_label != NO_NODE_LABEL:
            executor["nodeSelector"] = {"labels": {kf.gpu_node_label: gpu.type}}
        executors[label] = executor
    if not executors:
        return {}
    return {"platforms": {"kubernetes": {"deploymentSpec": {"executors": executors}}}}


def compile_pipeline(kf: KubeflowConfig, output: str | None = None) -> CompiledPipeline:
    """Compiles the deployment's pipeline to a KFP v2 YAML file.

    Args:
      kf: the validated deployment config.
      output: the YAML file to write (default build/kubeflow/<pipeline name>.yaml).

    Returns:
      The written file's path and its two documents.

    Raises:
      ConfigError: the deployment or the pipeline config it names is invalid.
    """
    from tfx.orchestration.kubeflow.v2 import kubeflow_v2_dag_runner as runner_lib

    from pipeline.dag import create_pipeline

    config = kubeflow_config.cluster_pipeline_config(kf)
    output = output or os.path.join(DEFAULT_OUTPUT_DIR, f"{config.pipeline_name}.yaml")
    if not output.endswith((".yaml", ".yml")):
        raise ConfigError(f"--output {output!r}: KFP's client takes .yaml pipeline files")
    params = runtime_parameters(kf, config)
    pipeline = create_pipeline(config, runtime_parameters=params, resolve_baseline=False)
    configure_components(pipeline, kf)
    runner = runner_lib.KubeflowV2DagRunner(
        runner_lib.KubeflowV2DagRunnerConfig(default_image=kf.image, use_pipeline_spec_2_1=True)
    )
    with artifact_types.kfp_titles(_artifact_types(pipeline)):
        job = runner.run(pipeline, write_out=False)
    spec = job["pipelineSpec"]
    platform = _post_process(spec, kf, params, _external_input_components(pipeline))
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    header = (
        f"# {config.pipeline_name}: compiled by kubeflow/compile.py from "
        f"{os.path.relpath(kf.pipeline_config)} (TFX {spec.get('sdkVersion', '?')}).\n"
        "# Submit with kubeflow/submit.py; do not edit by hand.\n"
    )
    with open(output, "w", encoding="utf-8") as f:
        f.write(header)
        yaml.safe_dump_all([spec, platform] if platform else [spec], f, sort_keys=True)
    return CompiledPipeline(path=output, pipeline_spec=spec, platform_spec=platform)


def main(argv: list[str] | None = None) -> int:
    """Command line: compile a deployment config; exit 2 with one line on bad config."""
    parser = argparse.ArgumentParser(prog="kubeflow.compile", description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="kubeflow/configs/demo.yaml")
    parser.add_argument("--output", default=None, help="default build/kubeflow/<name>.yaml")
    args = parser.parse_args(argv)
    try:
        compiled = compile_pipeline(kubeflow_config.load_config(args.config), args.output)
    except (ConfigError, ValueError) as e:
        print(f"kubeflow.compile: error: {e}", file=sys.stderr)
        return 2
    tasks = compiled.pipeline_spec["root"]["dag"]["tasks"]
    print(f"compiled {len(tasks)} steps to {compiled.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
