"""Runs a compiled Kubeflow Pipelines (KFP v2) pipeline spec here, step by step.

    python -m kubeflow.local_run --package build/kubeflow/digits-transfer.yaml \\
        --pipeline-root /tmp/kfp-root [--param data_root=/data/target] [--epochs 5]
    (or: tfx-transfer kfp-local --package ... --pipeline-root ...)

What KFP's launcher does for each step, done here in dependency order, with this
project's virtual environment standing in for the container image:

1. order the root DAG's tasks by `dependentTasks` and by the tasks whose output
   artifacts and parameters they read;
2. build the step's ExecutorInput: parameter values (constants, the run's parameters
   or the pipeline's defaults, upstream output parameters), input artifacts (the
   upstream steps' output artifacts as the launcher recorded them: name, type schema,
   URI, metadata), output artifacts with fresh URIs
   `<pipeline root>/<pipeline name>-<timestamp>/<task>/<output key>` and the
   executor output file beside them (kfp.local's executor_input_utils);
3. resolve the placeholders of the container's command and args ({{$}} and the like:
   kfp.local's placeholder_utils), replace the image's `python` by this interpreter,
   append the caller's extra args (Beam: the last one wins), and run the command in a
   subprocess, cwd = `workdir` (the image's WORKDIR stand-in), log in the task folder;
4. read the step's executor_output.json as the launcher does: each output artifact
   keeps the URI it was given and takes the metadata the step wrote; output parameters
   (kfp.local's executor_output_utils).

The first failing step stops the run (no new step starts, as Argo's fail-fast DAG);
the result names it with the error line of its log. A spec feature this runner does
not implement is an UnsupportedSpecError before any step runs: conditions, loops,
exit handlers and final-status inputs, retries, sub-DAGs, importer / resolver /
custom-job executors, input artifacts of the pipeline itself, non-Python container
commands, Kubernetes settings that change what a container sees (volumes, secrets,
config maps).

Not done here, unlike open-source KFP on a cluster: the KFP cache (every step runs,
as with an empty cache), ML Metadata lineage (artifacts pass from step to step in
memory; nothing is recorded), GPU scheduling (accelerators, node selectors and
tolerations are ignored: steps see this machine's devices), Kubernetes resources (CPU
and memory limits are not enforced; steps share this machine), and the container image
itself (this virtual environment and this checkout stand in for it, so a missing file
or package in the image is not caught here).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import yaml

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SUCCEEDED = "SUCCEEDED"
FAILED = "FAILED"
NOT_RUN = "NOT_RUN"
EXECUTOR_INPUT_FILE = "executor_input.json"
LOG_FILE = "log.txt"
# Kubernetes executor settings that only place or label the pod: ignored here.
_SCHEDULING_ONLY = {"nodeSelector", "tolerations", "nodeAffinity", "podMetadata"}
_SCHEDULING_ONLY |= {"imagePullSecret", "imagePullPolicy"}
_PYTHON = re.compile(r"^python(\d+(\.\d+)?)?$")
_ERROR_LINE = re.compile(r"^([A-Za-z_][\w.]*)?(Error|Exception|Exit|Failed|Failure)\w*: .+")


class UnsupportedSpecError(ValueError):
    """The spec uses a KFP feature that this runner does not implement."""


class ParameterError(ValueError):
    """A run-time parameter is unknown, missing or not of its declared type."""


class StepFailedError(RuntimeError):
    """A step of the run failed; the message names it and its error."""

    def __init__(self, task: TaskResult):
        super().__init__(task.message)
        self.task = task


@dataclasses.dataclass
class TaskResult:
    """One task of the run: its state, timing, what it got and what it produced."""

    name: str
    state: str = NOT_RUN
    seconds: float = 0.0
    # What the step was started with (None: not run).
    executor_input: dict[str, Any] | None = None
    command: list[str] = dataclasses.field(default_factory=list)
    # Output key -> the RuntimeArtifact dicts (name, type, uri, metadata) passed on.
    artifacts: dict[str, list[dict[str, Any]]] = dataclasses.field(default_factory=dict)
    # Output key -> value: kfp.dsl.Artifact objects and output parameter values.
    outputs: dict[str, Any] = dataclasses.field(default_factory=dict)
    task_root: str = ""
    log_path: str = ""
    exit_code: int | None = None
    message: str = ""

    def artifact(self, key: str) -> dict[str, Any]:
        """The single output artifact `key` (a RuntimeArtifact dict)."""
        return self.artifacts[key][0]


@dataclasses.dataclass
class RunResult:
    """The run: its folder, the parameter values used and every task, in run order."""

    run_name: str
    run_root: str
    parameters: dict[str, Any]
    tasks: dict[str, TaskResult]
    # Spec settings that a cluster would apply and this runner does not (see --help).
    ignored: list[str] = dataclasses.field(default_factory=list)

    @property
    def succeeded(self) -> bool:
        return all(t.state == SUCCEEDED for t in self.tasks.values())

    @property
    def failed(self) -> TaskResult | None:
        """The failed task, if any."""
        return next((t for t in self.tasks.values() if t.state == FAILED), None)

    def raise_for_failure(self) -> RunResult:
        """Raises StepFailedError naming the failed step; returns self otherwise."""
        failed = self.failed
        if failed is not None:
            raise StepFailedError(failed)
        return self


# --- the spec ------------------------------------------------------------------------------
def load_package(package_path: str):
    """(PipelineSpec proto, pipeline spec dict, platform spec dict) of a compiled file.

    The pipeline spec is parsed strictly into KFP's proto, as KFP's client does.

    Raises:
      UnsupportedSpecError: not a KFP v2 pipeline spec (e.g. a PipelineJob JSON).
      FileNotFoundError: no such file.
    """
    from google.protobuf import json_format
    from kfp.pipeline_spec import pipeline_spec_pb2

    if not os.path.isfile(package_path):
        raise FileNotFoundError(
            f"{package_path!r} does not exist; compile it first: "
            "tfx-transfer compile --config kubeflow/configs/<deployment>.yaml --output FILE.yaml"
        )
    with open(package_path, encoding="utf-8") as f:
        documents = [d for d in yaml.safe_load_all(f) if d is not None]
    if not documents or not isinstance(documents[0], dict) or "root" not in documents[0]:
        raise UnsupportedSpecError(
            f"{package_path}: not a compiled KFP v2 pipeline spec (YAML with `root`); "
            "PipelineJob JSON files and component specs are not run here"
        )
    if len(documents) > 2:
        raise UnsupportedSpecError(f"{package_path}: more than two YAML documents")
    spec_dict = documents[0]
    if not str(spec_dict.get("schemaVersion", "")).startswith("2."):
        raise UnsupportedSpecError(
            f"{package_path}: schemaVersion {spec_dict.get('schemaVersion')!r}; "
            "only KFP v2 pipeline specs (2.x) run here"
        )
    spec = pipeline_spec_pb2.PipelineSpec()
    json_format.ParseDict(spec_dict, spec)
    platform = documents[1] if len(documents) == 2 else {}
    return spec, spec_dict, platform


def check_supported(spec, spec_dict: dict[str, Any], platform: dict[str, Any]) -> list[str]:
    """Raises UnsupportedSpecError on a feature not implemented; returns what is ignored."""
    dag = spec.root.dag
    if dag.outputs.ListFields():
        raise UnsupportedSpecError("pipeline outputs (root.dag.outputs) are not implemented")
    if spec.root.input_definitions.artifacts:
        names = ", ".join(sorted(spec.root.input_definitions.artifacts))
        raise UnsupportedSpecError(f"input artifacts of the pipeline ({names}) are not implemented")
    executors = spec_dict.get("deploymentSpec", {}).get("executors", {})
    ignored = []
    for name, task in dag.tasks.items():
        _check_task(name, task)
        component = spec.components[task.component_ref.name]
        if component.HasField("dag"):
            raise UnsupportedSpecError(
                f"task {name}: sub-DAGs (nested pipelines, dsl.ExitHandler, dsl.If/ParallelFor "
                "groups) are not implemented"
            )
        executor = executors.get(component.executor_label)
        if executor is None:
            raise UnsupportedSpecError(f"task {name}: no executor {component.executor_label!r}")
        kinds = sorted(set(executor) - {"container"})
        if kinds:
            raise UnsupportedSpecError(
                f"task {name}: {'/'.join(kinds)} executors (importer, resolver, custom job) "
                "are not implemented; only containers run here"
            )
        container = executor["container"]
        command = list(container.get("command", []))
        if not command:
            raise UnsupportedSpecError(
                f"task {name}: no container command (the image's ENTRYPOINT is not known here)"
            )
        if not _PYTHON.match(os.path.basename(command[0])):
            raise UnsupportedSpecError(
                f"task {name}: container command {command[0]!r} is not a Python entrypoint; "
                "only `python ...` commands run here (this virtualenv stands in for the image)"
            )
        if "lifecycle" in container:
            raise UnsupportedSpecError(f"task {name}: container lifecycle hooks: not implemented")
        for artifact_name, spec_ in component.output_definitions.artifacts.items():
            if spec_.is_artifact_list:
                raise UnsupportedSpecError(
                    f"task {name}: output artifact list {artifact_name!r} is not implemented"
                )
        if container.get("resources"):
            ignored.append(f"{name}: container resources {_compact(container['resources'])}")
        if task.caching_options.enable_cache:
            ignored.append(f"{name}: KFP cache (enableCache: true); the step runs")
    ignored += _check_platform(platform)
    return ignored


def _check_task(name: str, task) -> None:
    if task.HasField("trigger_policy"):
        policy = task.trigger_policy
        if policy.condition:
            raise UnsupportedSpecError(
                f"task {name}: conditions (triggerPolicy.condition {policy.condition!r}, "
                "dsl.If) are not implemented"
            )
        if policy.strategy > 1:  # ALL_UPSTREAM_TASKS_COMPLETED: an exit handler's task
            raise UnsupportedSpecError(
                f"task {name}: trigger strategy {policy.TriggerStrategy.Name(policy.strategy)} "
                "(exit handlers) is not implemented"
            )
    if task.WhichOneof("iterator") or task.HasField("iterator_policy"):
        raise UnsupportedSpecError(f"task {name}: loops (dsl.ParallelFor) are not implemented")
    if task.HasField("retry_policy"):
        raise UnsupportedSpecError(f"task {name}: retries (retryPolicy) are not implemented")
    for key, param in task.inputs.parameters.items():
        kind = param.WhichOneof("kind")
        if param.parameter_expression_selector:
            raise UnsupportedSpecError(
                f"task {name}: input parameter {key!r} uses parameterExpressionSelector, "
                "which is not implemented"
            )
        if kind == "task_final_status":
            raise UnsupportedSpecError(
                f"task {name}: input parameter {key!r} is a task's final status "
                "(exit handlers), which is not implemented"
            )
        if kind == "runtime_value" and param.runtime_value.WhichOneof("value") != "constant":
            raise UnsupportedSpecError(
                f"task {name}: input parameter {key!r} uses a deprecated constantValue"
            )
        if kind not in ("runtime_value", "component_input_parameter", "task_output_parameter"):
            raise UnsupportedSpecError(f"task {name}: input parameter {key!r} has no source")
    for key, artifact in task.inputs.artifacts.items():
        if artifact.WhichOneof("kind") != "task_output_artifact":
            raise UnsupportedSpecError(
                f"task {name}: input artifact {key!r} is not an upstream task's output "
                f"({artifact.WhichOneof('kind')}); only taskOutputArtifact is implemented"
            )


def _check_platform(platform: dict[str, Any]) -> list[str]:
    """Kubernetes settings: scheduling ones are ignored, the rest is unsupported."""
    platforms = dict(platform.get("platforms", {})) if platform else {}
    other = sorted(set(platforms) - {"kubernetes"})
    if other:
        raise UnsupportedSpecError(f"platform spec for {', '.join(other)} is not implemented")
    kubernetes = dict(platforms.get("kubernetes", {}))
    if set(kubernetes) - {"deploymentSpec"}:
        keys = ", ".join(sorted(set(kubernetes) - {"deploymentSpec"}))
        raise UnsupportedSpecError(f"Kubernetes platform settings {keys} are not implemented")
    ignored = []
    for label, settings in kubernetes.get("deploymentSpec", {}).get("executors", {}).items():
        unsupported = sorted(set(settings) - _SCHEDULING_ONLY)
        if unsupported:
            raise UnsupportedSpecError(
                f"executor {label}: Kubernetes settings {', '.join(unsupported)} (volumes, "
                "secrets, config maps, ...) change what the container sees and are not "
                "implemented"
            )
        ignored.append(f"{label}: Kubernetes {_compact(settings)}")
    return ignored


def _compact(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def task_order(spec) -> list[str]:
    """The root DAG's tasks, each after every task it depends on (ties: by name).

    Raises:
      UnsupportedSpecError: a task refers to a task that is not in the DAG, or a cycle.
    """
    tasks = spec.root.dag.tasks
    upstream: dict[str, set[str]] = {}
    for name, task in tasks.items():
        needs = set(task.dependent_tasks)
        needs |= {
            p.task_output_parameter.producer_task
            for p in task.inputs.parameters.values()
            if p.WhichOneof("kind") == "task_output_parameter"
        }
        needs |= {
            a.task_output_artifact.producer_task
            for a in task.inputs.artifacts.values()
            if a.WhichOneof("kind") == "task_output_artifact"
        }
        missing = sorted(needs - set(tasks))
        if missing:
            raise UnsupportedSpecError(f"task {name} depends on {', '.join(missing)}: not tasks")
        upstream[name] = needs
    order: list[str] = []
    while len(order) < len(tasks):
        ready = sorted(n for n in tasks if n not in order and upstream[n] <= set(order))
        if not ready:
            left = sorted(set(tasks) - set(order))
            raise UnsupportedSpecError(f"the DAG has a cycle among {', '.join(left)}")
        order.append(ready[0])
    return order


# --- parameters ------------------------------------------------------------------------------
def resolve_parameters(spec, parameters: Mapping[str, Any] | None) -> dict[str, Any]:
    """The run's parameter values: the given ones (typed), then the spec's defaults.

    Strings are converted to the declared type (NUMBER_INTEGER, NUMBER_DOUBLE, BOOLEAN,
    LIST, STRUCT as JSON), so command-line values can be passed as they are.

    Raises:
      ParameterError: an undeclared name, a value of the wrong type, or a required
        parameter without a value.
    """
    from kfp.local import executor_output_utils

    declared = spec.root.input_definitions.parameters
    given = dict(parameters or {})
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise ParameterError(
            f"parameter(s) {', '.join(unknown)} not declared by the pipeline; "
            f"it declares: {', '.join(sorted(declared)) or 'none'}"
        )
    values = {}
    for name, definition in declared.items():
        if name in given:
            values[name] = _typed(name, given[name], definition.parameter_type)
        elif definition.HasField("default_value"):
            values[name] = executor_output_utils.pb2_value_to_python(definition.default_value)
        elif not definition.is_optional:
            raise ParameterError(f"parameter {name!r} is required: pass --param {name}=VALUE")
    return values


def _typed(name: str, value: Any, parameter_type: int) -> Any:
    from kfp.pipeline_spec import pipeline_spec_pb2

    enum = pipeline_spec_pb2.ParameterType.ParameterTypeEnum
    type_name = enum.Name(parameter_type)
    try:
        if parameter_type == enum.STRING:
            if not isinstance(value, str):
                raise TypeError
            return value
        if isinstance(value, str):
            if parameter_type == enum.BOOLEAN:
                return {"true": True, "false": False}[value.strip().lower()]
            value = {enum.NUMBER_INTEGER: int, enum.NUMBER_DOUBLE: float}.get(
                parameter_type, json.loads
            )(value)
        expected = {
            enum.NUMBER_INTEGER: int,
            enum.NUMBER_DOUBLE: (int, float),
            enum.BOOLEAN: bool,
            enum.LIST: list,
            enum.STRUCT: dict,
        }.get(parameter_type, object)
        if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            raise TypeError
        return value
    except (TypeError, ValueError, KeyError):
        raise ParameterError(f"parameter {name!r}: {value!r} is not a {type_name} value") from None


# --- one step ------------------------------------------------------------------------------
def _task_arguments(name: str, task, component, run_params: dict, done: dict) -> dict[str, Any]:
    """The task's input parameter values, by the component's input names."""
    from kfp.local import executor_output_utils

    arguments = {}
    for key, param in task.inputs.parameters.items():
        kind = param.WhichOneof("kind")
        if kind == "runtime_value":
            arguments[key] = executor_output_utils.pb2_value_to_python(param.runtime_value.constant)
        elif kind == "component_input_parameter":
            if param.component_input_parameter in run_params:
                arguments[key] = run_params[param.component_input_parameter]
        else:  # task_output_parameter
            producer = done[param.task_output_parameter.producer_task]
            output_key = param.task_output_parameter.output_parameter_key
            if output_key not in producer.outputs:
                raise UnsupportedSpecError(
                    f"task {name}: input {key!r} reads output parameter {output_key!r} of "
                    f"{producer.name}, which did not write it"
                )
            arguments[key] = producer.outputs[output_key]
    for key, definition in component.input_definitions.parameters.items():
        if key not in arguments and not (
            definition.is_optional or definition.HasField("default_value")
        ):
            raise ParameterError(f"task {name}: input parameter {key!r} has no value")
    return arguments


def build_executor_input(
    name: str, task, component, arguments: dict, done: dict, task_root: str, run_name: str
):
    """The ExecutorInput the KFP launcher would hand the step (a proto).

    kfp.local builds the parameter values and the outputs (its
    construct_executor_input refuses input artifacts, so they are taken off a copy of
    the component spec and added here from the producers' recorded outputs). Output
    artifacts are named <run>/<task>/<key>, unique in the run: TFX's entrypoint derives
    artifact ids from the names (the Evaluator's blessing records the model's).
    """
    from google.protobuf import json_format
    from kfp.local import executor_input_utils
    from kfp.pipeline_spec import pipeline_spec_pb2

    without_artifacts = pipeline_spec_pb2.ComponentSpec()
    without_artifacts.CopyFrom(component)
    without_artifacts.input_definitions.ClearField("artifacts")
    for key in list(without_artifacts.input_definitions.parameters):
        definition = without_artifacts.input_definitions.parameters[key]
        if key not in arguments and not definition.HasField("default_value"):
            del without_artifacts.input_definitions.parameters[key]  # optional, absent
    executor_input = executor_input_utils.construct_executor_input(
        component_spec=without_artifacts, arguments=arguments, task_root=task_root
    )
    for key, output in executor_input.outputs.artifacts.items():
        output.artifacts[0].name = f"{run_name}/{name}/{key}"
    for key, artifact in task.inputs.artifacts.items():
        source = artifact.task_output_artifact
        producer = done[source.producer_task]
        if source.output_artifact_key not in producer.artifacts:
            raise UnsupportedSpecError(
                f"task {name}: input artifact {key!r} reads {source.output_artifact_key!r} "
                f"of {producer.name}, which has no such output"
            )
        artifact_list = executor_input.inputs.artifacts[key]
        for recorded in producer.artifacts[source.output_artifact_key]:
            json_format.ParseDict(recorded, artifact_list.artifacts.add())
    missing = sorted(set(component.input_definitions.artifacts) - set(task.inputs.artifacts))
    required = [k for k in missing if not component.input_definitions.artifacts[k].is_optional]
    if required:
        raise UnsupportedSpecError(f"task {name}: input artifact(s) {required} have no source")
    return executor_input


def _command(container: dict, executor_input_dict: dict, run_name: str, name: str, root: str):
    """The container's command + args with placeholders resolved (kfp.local's resolver)."""
    from kfp.local import placeholder_utils

    full = list(container.get("command", [])) + list(container.get("args", []))
    resolved = placeholder_utils.replace_placeholders(
        full_command=full,
        executor_input_dict=executor_input_dict,
        pipeline_resource_name=run_name,
        task_resource_name=name,
        pipeline_root=root,
    )
    # The image's interpreter -> this one. Only the program is replaced (kfp.local's
    # replace_python_executable edits "python3" inside every argument, JSON included).
    return [sys.executable, *resolved[1:]]


def _read_outputs(result: TaskResult, executor_input, component) -> None:
    """The launcher's part after the step: executor output -> recorded outputs."""
    from google.protobuf import json_format
    from kfp.local import executor_output_utils

    path = executor_input.outputs.output_file
    if not os.path.isfile(path):
        raise _StepError(f"exited 0 but wrote no {os.path.basename(path)} ({path})")
    executor_output = executor_output_utils.load_executor_output(path)
    extra = sorted(set(executor_output.artifacts) - set(executor_input.outputs.artifacts))
    if extra:
        raise _StepError(f"wrote output artifact(s) {extra} that the component does not declare")
    # As KFP's launcher: each output keeps the URI it was given and takes the metadata
    # (and custom properties) the step wrote for it.
    for key, given in executor_input.outputs.artifacts.items():
        merged = type(given)()
        merged.CopyFrom(given)
        written = []
        if key in executor_output.artifacts:
            written = executor_output.artifacts[key].artifacts
        for target, source in zip(merged.artifacts, written, strict=False):
            for field, value in source.metadata.fields.items():
                target.metadata.fields[field].CopyFrom(value)
            for prop, value in source.custom_properties.items():
                target.custom_properties[prop].CopyFrom(value)
        executor_output.artifacts[key].CopyFrom(merged)
        result.artifacts[key] = [json_format.MessageToDict(a) for a in merged.artifacts]
    result.outputs = executor_output_utils.get_outputs_from_executor_output(
        executor_output=executor_output,
        executor_input=executor_input,
        component_spec=component,
    )


class _StepError(Exception):
    """A step ran but its outputs cannot be read."""


def _run_process(command, cwd, env, log_path, stream, timeout) -> int:
    """Runs the step with its output in log_path (and on stderr when streaming)."""
    with open(log_path, "w", encoding="utf-8") as log:
        process = subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE if stream else log,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            if stream:
                for line in process.stdout:
                    log.write(line)
                    sys.stderr.write(line)
            return process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            log.write(f"\nkubeflow.local_run: killed after {timeout} s\n")
            return -9


def error_line(log_path: str) -> str:
    """The last exception line of a step's log ("ValueError: ..."), else its last line."""
    try:
        with open(log_path, encoding="utf-8", errors="replace") as f:
            lines = [line.strip() for line in f if line.strip()]
    except OSError:
        return ""
    errors = [line for line in lines if _ERROR_LINE.match(line)]
    return (errors or lines or [""])[-1][:2000]


# --- the run -------------------------------------------------------------------------------
def run_compiled(
    package_path: str,
    pipeline_root: str,
    parameters: Mapping[str, Any] | None = None,
    workdir: str = REPO_ROOT,
    env: Mapping[str, str] | None = None,
    extra_args: Sequence[str] = (),
    stream_logs: bool = False,
    step_timeout: float | None = None,
    on_task_done: Callable[[TaskResult], None] | None = None,
) -> RunResult:
    """Runs every task of a compiled KFP v2 pipeline, in dependency order, here.

    Args:
      package_path: the YAML that `tfx-transfer compile` writes.
      pipeline_root: a local folder (or file:// URI); the run writes
        <pipeline_root>/<pipeline name>-<timestamp>/<task>/<output key>.
      parameters: run-time parameter values by name (strings are converted to the
        declared type); the others take the spec's defaults.
      workdir: the steps' working directory, standing in for the image's WORKDIR (the
        compiled spec holds paths resolved against the deployment's `workdir`).
      env: environment variables for the steps, over this process's (PYTHONPATH gets
        this checkout first, as the image's PYTHONPATH=/app).
      extra_args: appended to every step's args after the compiled ones (Beam's parser:
        the last one wins), e.g. ["--direct_running_mode=in_memory"].
      stream_logs: also copy each step's output to stderr.
      step_timeout: seconds before a step is killed (None: no limit).
      on_task_done: called with each TaskResult when its step ends.

    Returns:
      Every task's state (SUCCEEDED, FAILED, NOT_RUN), seconds, executor input, command,
      outputs and log. A failed step does not raise: see RunResult.raise_for_failure.

    Raises:
      UnsupportedSpecError: the spec uses a feature this runner does not implement.
      ParameterError: a bad run-time parameter.
    """
    from google.protobuf import json_format
    from kfp.local import executor_input_utils

    spec, spec_dict, platform = load_package(package_path)
    ignored = check_supported(spec, spec_dict, platform)
    order = task_order(spec)
    run_params = resolve_parameters(spec, parameters)
    root = _local_root(pipeline_root)
    if not os.path.isdir(workdir):
        raise ParameterError(f"workdir {workdir!r} is not a folder (the steps' working directory)")
    run_name = executor_input_utils.get_local_pipeline_resource_name(spec.pipeline_info.name)
    result = RunResult(
        run_name=run_name,
        run_root=os.path.join(root, run_name),
        parameters=run_params,
        tasks={name: TaskResult(name=name) for name in order},
        ignored=ignored,
    )
    step_env = _environment(env)
    executors = spec_dict["deploymentSpec"]["executors"]
    done: dict[str, TaskResult] = {}
    for name in order:
        task = spec.root.dag.tasks[name]
        component = spec.components[task.component_ref.name]
        task_result = result.tasks[name]
        task_result.task_root = executor_input_utils.construct_local_task_root(
            pipeline_root=root, pipeline_resource_name=run_name, task_resource_name=name
        )
        arguments = _task_arguments(name, task, component, run_params, done)
        executor_input = build_executor_input(
            name, task, component, arguments, done, task_result.task_root, run_name
        )
        executor_input_dict = executor_input_utils.executor_input_to_dict(
            executor_input=executor_input, component_spec=component
        )
        container = executors[component.executor_label]["container"]
        command = _command(container, executor_input_dict, run_name, name, root)
        command += list(extra_args)
        task_result.executor_input = executor_input_dict
        task_result.command = command
        os.makedirs(task_result.task_root)  # the launcher makes the outputs' parent folder
        with open(os.path.join(task_result.task_root, EXECUTOR_INPUT_FILE), "w") as f:
            json.dump(executor_input_dict, f, indent=1)
        task_result.log_path = os.path.join(task_result.task_root, LOG_FILE)
        own_env = {**step_env, **{e["name"]: e["value"] for e in container.get("env", [])}}
        start = time.monotonic()
        code = _run_process(
            command, workdir, own_env, task_result.log_path, stream_logs, step_timeout
        )
        task_result.exit_code = code
        try:
            if code != 0:
                raise _StepError(f"exit status {code}: {error_line(task_result.log_path)}")
            _read_outputs(task_result, executor_input, component)
            task_result.state = SUCCEEDED
        except _StepError as e:
            task_result.state = FAILED
            task_result.message = (
                f"step {name} failed, {e} ({_parameters_read(task, run_params)}"
                f"log: {task_result.log_path})"
            )
        except json_format.ParseError as e:
            task_result.state = FAILED
            task_result.message = (
                f"step {name} wrote an unreadable executor output: {e} "
                f"(log: {task_result.log_path})"
            )
        task_result.seconds = time.monotonic() - start
        if on_task_done is not None:
            on_task_done(task_result)
        if task_result.state == FAILED:
            for other in order[order.index(name) + 1 :]:
                result.tasks[other].message = f"not run: {name} failed"
            break
        done[name] = task_result
    return result


def _parameters_read(task, run_params: dict[str, Any]) -> str:
    """ "run-time parameters it read: data_root='...'; " (values cut at 120 characters)."""
    names = sorted(
        p.component_input_parameter
        for p in task.inputs.parameters.values()
        if p.WhichOneof("kind") == "component_input_parameter"
    )
    shown = [f"{n}={_shorten(run_params[n])}" for n in names if n in run_params]
    return f"run-time parameters it read: {', '.join(shown)}; " if shown else ""


def _shorten(value: Any, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _local_root(pipeline_root: str) -> str:
    if pipeline_root.startswith("file://"):
        pipeline_root = pipeline_root[len("file://") :]
    if "://" in pipeline_root:
        raise ParameterError(
            f"pipeline root {pipeline_root!r}: a local folder is needed here (the launcher's "
            "upload to remote storage is not implemented)"
        )
    return os.path.abspath(pipeline_root)


def _environment(env: Mapping[str, str] | None) -> dict[str, str]:
    merged = dict(os.environ)
    merged["PYTHONUNBUFFERED"] = "1"
    merged["PYTHONPATH"] = os.pathsep.join(
        p for p in (REPO_ROOT, merged.get("PYTHONPATH", "")) if p
    )
    merged.update(env or {})
    return merged


# --- command line -----------------------------------------------------------------------------
def _file_uri(path: str, base: str) -> str:
    return "file://" + os.path.abspath(os.path.join(base, path))


def _pipeline_value(raw: dict, dotted: str):
    """The value of a dotted field in a parsed pipeline config (None when absent)."""
    value = raw
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def compile_locally(deployment_path: str, pipeline_root: str, workdir: str = REPO_ROOT) -> str:
    """Compiles a deployment config with local paths; returns the package path.

    workdir becomes the checkout (where the pipeline config's relative paths resolve,
    as /app does in the image); the pipeline root and the cache go under
    `pipeline_root`; the data root, the serving root and every gs:// override of a
    pipeline config path take the pipeline config's own local value (file:// URIs,
    which the deployment's shared-storage check accepts).

    Raises:
        ConfigError: the deployment or pipeline config is invalid, or an override has
            no local value in the pipeline config.
    """
    import yaml

    from kubeflow import compile as kubeflow_compile
    from kubeflow import config as kubeflow_config
    from pipeline.config import ConfigError

    root = os.path.abspath(pipeline_root)
    os.makedirs(root, exist_ok=True)
    with open(deployment_path, encoding="utf-8") as f:
        raw = yaml.safe_load(f) or {}
    pipeline_config = os.path.join(workdir, raw.get("pipeline_config", ""))
    with open(pipeline_config, encoding="utf-8") as f:
        pipeline_raw = yaml.safe_load(f) or {}
    raw.update(
        image="tfx-transfer:local",
        workdir=os.path.abspath(workdir),
        pipeline_config=os.path.abspath(pipeline_config),
        pipeline_root=f"file://{root}/pipeline_root",
    )
    parameters = dict(raw.get("parameters") or {})
    parameters["data_root"] = _file_uri(str(_pipeline_value(pipeline_raw, "data.root")), workdir)
    serving = _pipeline_value(pipeline_raw, "serving.root") or "serving"
    parameters["serving_root"] = _file_uri(str(serving), workdir)
    raw["parameters"] = parameters
    overrides = dict(raw.get("pipeline_overrides") or {})
    for dotted, value in list(overrides.items()):
        if not (isinstance(value, str) and "://" in value):
            continue
        if dotted == "cache.dir":
            overrides[dotted] = f"file://{root}/bottleneck_cache"
            continue
        local = _pipeline_value(pipeline_raw, dotted)
        if not local:
            raise ConfigError(
                f"pipeline_overrides.{dotted}: {value} has no local counterpart in "
                f"{pipeline_config}; compile a deployment with file:// paths instead"
            )
        overrides[dotted] = _file_uri(str(local), workdir)
    raw["pipeline_overrides"] = overrides
    local_deployment = os.path.join(root, "deployment.local.yaml")
    with open(local_deployment, "w", encoding="utf-8") as f:
        yaml.safe_dump(raw, f, sort_keys=False)
    package = os.path.join(root, "pipeline.local.yaml")
    kubeflow_compile.compile_pipeline(kubeflow_config.load_config(local_deployment), package)
    return package


def build_parser(prog: str) -> argparse.ArgumentParser:
    doc = __doc__.split("\n\n")
    parser = argparse.ArgumentParser(
        prog=prog,
        description=doc[0],
        epilog="\n\n".join(doc[2:]),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--package", help="the YAML `tfx-transfer compile` wrote")
    source.add_argument(
        "--config",
        help="a deployment config (kubeflow/configs/*.yaml): compiled here for local paths "
        "first (workdir: this checkout; gs:// roots become folders under --pipeline-root, "
        "the data and source folders the pipeline config's own)",
    )
    parser.add_argument(
        "--pipeline-root",
        required=True,
        help="a local folder; the run writes <root>/<pipeline>-<timestamp>/<task>/<output>",
    )
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a run-time parameter (repeatable); the others take the compiled defaults",
    )
    parser.add_argument("--data-root", default="", help="sets data_root (as submit does)")
    parser.add_argument(
        "--serving-root", default="", help="sets push_destination to <root>/<model_name>"
    )
    parser.add_argument(
        "--epochs", type=int, default=None, help="sets epochs inside trainer_config"
    )
    parser.add_argument(
        "--workdir",
        default=REPO_ROOT,
        help="the steps' working directory, for the image's WORKDIR (default: this checkout)",
    )
    parser.add_argument(
        "--extra-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="appended to every step's args, e.g. --extra-arg=--direct_running_mode=in_memory "
        "(repeatable; Beam: the last one wins)",
    )
    parser.add_argument("--step-timeout", type=float, default=None, help="seconds per step")
    parser.add_argument("--verbose", action="store_true", help="stream every step's log")
    return parser


def main(argv: list[str] | None = None, prog: str = "kubeflow.local_run") -> int:
    """Command line: one line per task; 0 all succeeded, 1 a step failed, 2 bad input."""
    from kubeflow import submit

    args = build_parser(prog).parse_args(argv)

    def report(task: TaskResult) -> None:
        print(f"{task.name:<20} {task.state:<9} {task.seconds:7.1f} s", flush=True)

    try:
        if args.config:
            args.package = compile_locally(args.config, args.pipeline_root, args.workdir)
            print(f"compiled {args.config} for local paths: {args.package}", flush=True)
        spec_dict = submit.read_package(args.package)
        parameters = submit.run_arguments(spec_dict, args)
        result = run_compiled(
            args.package,
            args.pipeline_root,
            parameters,
            workdir=args.workdir,
            extra_args=args.extra_arg,
            stream_logs=args.verbose,
            step_timeout=args.step_timeout,
            on_task_done=report,
        )
    except (
        submit.SubmitError,
        UnsupportedSpecError,
        ParameterError,
        FileNotFoundError,
        ValueError,  # ConfigError of --config
    ) as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    for task in result.tasks.values():
        if task.state == NOT_RUN:
            report(task)
    if args.verbose:
        for line in result.ignored:
            print(f"  ignored here: {line}")
    print(f"run folder: {result.run_root}")
    if result.failed is not None:
        print(f"{prog}: error: {result.failed.message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
