"""Compiles the demo deployment once (through the CLI) and checks the KFP v2 spec.

Everything is read back from the written YAML: the components and their
dependencies, GPUs on exactly the configured steps, CPU/memory, the image, the
run-time parameters, caching, Beam args, and that the KFP SDK loads the file.
"""

from __future__ import annotations

import json
import math

import pytest
import yaml

from components.common import artifacts
from kubeflow import artifact_types
from kubeflow import compile as kubeflow_compile
from kubeflow import config as kubeflow_config
from pipeline import cli
from pipeline import dag as pipeline_lib
from pipeline.config import ConfigError

DEMO = "kubeflow/configs/demo.yaml"
SECRET = "s3cr3t-token-that-must-never-be-compiled"
GPU_STEPS = {"BottleneckCache", "SourceTrainer", "Trainer"}
EXTERNAL_INPUT_STEPS = {"ImageExampleGen", "SourceExampleGen", "BaseModelGen"}


@pytest.fixture(scope="module")
def deployment():
    return kubeflow_config.load_config(DEMO)


@pytest.fixture(scope="module")
def cluster_config(deployment):
    return kubeflow_config.cluster_pipeline_config(deployment)


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    """(path, pipeline spec, platform spec), compiled by `tfx-transfer compile`."""
    path = str(tmp_path_factory.mktemp("kfp") / "pipeline.yaml")
    with pytest.MonkeyPatch.context() as mp:  # credentials in the environment ...
        mp.setenv("KFP_TOKEN", SECRET)
        mp.setenv("KF_PIPELINES_APP_OAUTH2_CLIENT_SECRET", SECRET)
        assert cli.main(["compile", "--config", DEMO, "--output", path]) == 0
    with open(path, encoding="utf-8") as f:
        docs = list(yaml.safe_load_all(f))
    assert len(docs) == 2
    return path, docs[0], docs[1]


@pytest.fixture(scope="module")
def expected_pipeline(deployment, cluster_config):
    """The logical pipeline that the compile wraps (the same create_pipeline)."""
    params = kubeflow_compile.runtime_parameters(deployment, cluster_config)
    return pipeline_lib.create_pipeline(
        cluster_config, runtime_parameters=params, resolve_baseline=False
    )


def _tasks(spec):
    return spec["root"]["dag"]["tasks"]


def _container(spec, task_id):
    label = spec["components"][_tasks(spec)[task_id]["componentRef"]["name"]]["executorLabel"]
    return spec["deploymentSpec"]["executors"][label]["container"]


def test_every_component_present_with_its_dependencies(compiled, expected_pipeline):
    _, spec, _ = compiled
    expected = {c.id: sorted(u.id for u in c.upstream_nodes) for c in expected_pipeline.components}
    assert set(_tasks(spec)) == set(expected)
    for task_id, upstream in expected.items():
        assert sorted(_tasks(spec)[task_id].get("dependentTasks", [])) == upstream, task_id
    # Spot checks of the wiring named in the design.
    assert _tasks(spec)["Transform"]["dependentTasks"] == [
        "AnomalyGate",
        "ImageExampleGen",
        "ImportSchemaGen",
    ]
    assert set(_tasks(spec)["Pusher"]["dependentTasks"]) == {"Evaluator", "ServingCheck", "Trainer"}
    assert set(_tasks(spec)["ServingCheck"]["dependentTasks"]) == {"ImageExampleGen", "Trainer"}


def test_only_executors_open_source_kfp_runs(compiled):
    _, spec, _ = compiled
    executors = spec["deploymentSpec"]["executors"]
    assert all(set(e) == {"container"} for e in executors.values())
    assert not any("resolver" in task_id for task_id in _tasks(spec))
    assert "baseline_model" not in _tasks(spec)["Evaluator"]["inputs"].get("artifacts", {})


def test_gpus_on_exactly_the_configured_steps(compiled, deployment):
    _, spec, platform = compiled
    with_gpu = {
        task_id
        for task_id in _tasks(spec)
        if "accelerator" in _container(spec, task_id).get("resources", {})
    }
    assert with_gpu == GPU_STEPS
    selectors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert set(selectors) == {f"{task_id}_executor" for task_id in GPU_STEPS}
    for task_id in GPU_STEPS:
        gpu = deployment.component(task_id).gpu
        accelerator = _container(spec, task_id)["resources"]["accelerator"]
        assert accelerator == {"type": "nvidia.com/gpu", "count": str(gpu.count)}
        executor = selectors[f"{task_id}_executor"]
        assert executor["nodeSelector"]["labels"] == {"cloud.google.com/gke-accelerator": gpu.type}
        assert executor["tolerations"] == [kubeflow_compile.TOLERATION]


def test_cpu_and_memory_limits_of_every_step(compiled, deployment):
    _, spec, _ = compiled
    for task_id in _tasks(spec):
        resources = _container(spec, task_id)["resources"]
        expected = deployment.resources_of(task_id)
        assert resources["cpuLimit"] == expected.cpu, task_id
        assert resources["memoryLimit"] == expected.memory, task_id
    assert _container(spec, "BottleneckCache")["resources"]["cpuLimit"] == 4.0
    assert _container(spec, "StatisticsGen")["resources"]["memoryLimit"] == 4.0


def test_every_step_runs_the_configured_image(compiled, deployment):
    _, spec, _ = compiled
    images = {e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values()}
    assert images == {deployment.image}
    command = _container(spec, "Trainer")["command"]
    assert command[-1] == "tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor"


def test_runtime_parameters_exposed_not_baked_in(compiled, deployment, cluster_config):
    path, spec, _ = compiled
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert set(params) == set(pipeline_lib.RUNTIME_NAMES)
    assert all(p["parameterType"] == "STRING" and p["isOptional"] for p in params.values())
    inputs = {t: _tasks(spec)[t]["inputs"].get("parameters", {}) for t in _tasks(spec)}
    assert inputs["ImageExampleGen"]["input_base"] == {"componentInputParameter": "data_root"}
    assert inputs["Trainer"]["custom_config"] == {"componentInputParameter": "trainer_config"}
    assert inputs["Pusher"]["push_destination"] == {"componentInputParameter": "push_destination"}
    # Defaults: the deployment's data root; epochs and the rest of the Trainer config;
    # Pusher's folder <serving_root>/<model_name>.
    assert params["data_root"]["defaultValue"] == deployment.parameters.data_root
    trainer = json.loads(params["trainer_config"]["defaultValue"])
    assert trainer == pipeline_lib.trainer_config(cluster_config).to_dict()
    assert trainer["epochs"] == cluster_config.training.epochs
    destination = json.loads(params["push_destination"]["defaultValue"])
    assert destination == {"filesystem": {"baseDirectory": "gs://my-bucket/serving/digits"}}
    # The pipeline root is KFP's own: a default that each run may replace.
    assert spec["defaultPipelineRoot"] == deployment.pipeline_root
    # Nothing else holds the run-time values.
    with open(path, encoding="utf-8") as f:
        text = f.read()
    assert text.count(deployment.parameters.data_root) == 1
    assert text.count("gs://my-bucket/serving") == 1


def test_epochs_default_from_the_deployment(deployment, cluster_config):
    kf = kubeflow_config.config_from_dict(
        {**_raw(DEMO), "parameters": {**_raw(DEMO)["parameters"], "epochs": 7}}
    )
    params = kubeflow_compile.runtime_parameters(kf, cluster_config)
    assert json.loads(params["trainer_config"].default)["epochs"] == 7


def test_caching_off_for_steps_with_outside_inputs(compiled):
    _, spec, _ = compiled
    for task_id, task in _tasks(spec).items():
        enabled = task["cachingOptions"]["enableCache"]
        assert enabled == (task_id not in EXTERNAL_INPUT_STEPS), task_id


def test_beam_args_per_component(compiled, deployment):
    _, spec, _ = compiled
    cache_args = _container(spec, "BottleneckCache")["args"]
    # The pipeline config's args, then the deployment's, then the component's own
    # (Beam's parser: the last one wins).
    # --direct_num_workers=0 (Beam: the node's core count) becomes the step's CPU limit.
    shared = list(deployment.beam_pipeline_args)
    assert "--direct_num_workers=0" in shared
    cache_cpu = deployment.resources_of("BottleneckCache").cpu
    assert cache_args[-3:] == [
        *kubeflow_compile.pin_direct_workers(shared, cache_cpu),
        "--direct_num_workers=1",
    ]
    evaluator_args = _container(spec, "Evaluator")["args"]
    evaluator_cpu = deployment.resources_of("Evaluator").cpu
    assert evaluator_args[-2:] == kubeflow_compile.pin_direct_workers(shared, evaluator_cpu)
    assert f"--direct_num_workers={math.ceil(evaluator_cpu)}" in evaluator_args
    for name in ("Evaluator", "Transform", "StatisticsGen", "BottleneckCache"):
        assert "--direct_num_workers=0" not in _container(spec, name)["args"]
    assert "--direct_running_mode=multi_processing" not in _container(spec, "Trainer")["args"]


def test_kfp_sdk_loads_the_compiled_spec(compiled, tmp_path):
    from google.protobuf import json_format
    from kfp import compiler, components, dsl
    from kfp.client import client as kfp_client
    from kfp.pipeline_spec import pipeline_spec_pb2

    path, spec, _ = compiled
    # What kfp.Client.create_run_from_pipeline_package parses (strict proto parsing
    # of both documents: pipeline spec and Kubernetes platform spec).
    doc = kfp_client._extract_pipeline_yaml(path)
    assert set(doc.pipeline_spec.root.dag.tasks) == set(_tasks(spec))
    assert "kubernetes" in doc.platform_spec.platforms
    json_format.ParseDict(spec, pipeline_spec_pb2.PipelineSpec())
    # The SDK's own loader builds a component from it, with the run-time inputs ...
    component = components.load_component_from_file(path)
    assert component.name == "digits-transfer"
    assert set(component.component_spec.inputs) == set(pipeline_lib.RUNTIME_NAMES)

    # ... and KFP's compiler takes it as a step of a pipeline.
    @dsl.pipeline(name="wrapper")
    def wrapper():
        component(data_root="gs://bucket/other-data")

    wrapped = str(tmp_path / "wrapper.yaml")
    compiler.Compiler().compile(wrapper, wrapped)
    assert set(kfp_client._extract_pipeline_yaml(wrapped).pipeline_spec.root.dag.tasks) == {
        "digits-transfer"
    }


def test_custom_artifact_titles_import_in_the_container(compiled):
    from tfx.utils import import_utils

    _, spec, _ = compiled
    titles = set()
    for component in spec["components"].values():
        for side in ("inputDefinitions", "outputDefinitions"):
            for artifact in component.get(side, {}).get("artifacts", {}).values():
                titles.add(yaml.safe_load(artifact["artifactType"]["instanceSchema"])["title"])
    custom = {t for t in titles if not t.startswith("tfx.")}
    assert custom == {"kubeflow.ClassVocabulary", "kubeflow.IngestReport"}
    # The step entrypoint imports the class by its title (_retrieve_class_path).
    assert import_utils.import_class_by_path("kubeflow.ClassVocabulary") is (
        artifacts.ClassVocabulary
    )
    assert import_utils.import_class_by_path("kubeflow.IngestReport") is artifacts.IngestReport
    # ... and the local type names (in local ML Metadata stores) are unchanged.
    assert artifacts.ClassVocabulary.TYPE_NAME == "ClassVocabulary"
    assert artifacts.IngestReport.TYPE_NAME == "IngestReport"


def test_unregistered_custom_artifact_type_is_an_error():
    from tfx import types

    class Unregistered(types.Artifact):
        TYPE_NAME = "Unregistered"

    with pytest.raises(ConfigError, match="ARTIFACT_CLASSES"):
        with artifact_types.kfp_titles([Unregistered]):
            pass
    assert Unregistered.TYPE_NAME == "Unregistered"


def test_no_secret_in_the_compiled_pipeline(compiled):
    path, _, _ = compiled
    with open(path, encoding="utf-8") as f:
        text = f.read()
    assert SECRET not in text
    for word in ("token", "password", "secret"):
        assert word not in text.lower()


def test_serving_manifest_reads_where_pusher_writes(compiled):
    from kubeflow.serving import render

    _, spec, _ = compiled
    destination = json.loads(
        spec["root"]["inputDefinitions"]["parameters"]["push_destination"]["defaultValue"]
    )
    name, base_path = render.serving_paths(DEMO)
    deployment, _ = render.render(name, base_path)
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert f"--model_base_path={destination['filesystem']['baseDirectory']}" in args
    assert f"--model_name={name}" in args


def _raw(path):
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


@pytest.mark.parametrize(
    "components, message",
    [
        ({"Trainerr": {"cpu": 2}}, "Trainerr not in pipeline digits-transfer"),
        ({"Trainer": {"beam_pipeline_args": ["--x"]}}, "Trainer is not a Beam-based"),
    ],
)
def test_component_settings_checked_against_the_dag(
    cluster_config, deployment, components, message
):
    kf = kubeflow_config.config_from_dict({**_raw(DEMO), "components": components})
    params = kubeflow_compile.runtime_parameters(deployment, cluster_config)
    pipeline = pipeline_lib.create_pipeline(cluster_config, runtime_parameters=params)
    with pytest.raises(ConfigError, match=message):
        kubeflow_compile.configure_components(pipeline, kf)


def test_output_must_be_yaml(deployment, tmp_path):
    with pytest.raises(ConfigError, match=r"\.yaml"):
        kubeflow_compile.compile_pipeline(deployment, str(tmp_path / "p.json"))


def test_layerwise_deployment_puts_a_gpu_on_the_pretrainer(tmp_path):
    path = str(tmp_path / "layerwise.yaml")
    kf = kubeflow_config.load_config("kubeflow/configs/layerwise.yaml")
    spec = kubeflow_compile.compile_pipeline(kf, path).pipeline_spec
    with_gpu = {
        task_id: _container(spec, task_id)["resources"]["accelerator"]
        for task_id in _tasks(spec)
        if "accelerator" in _container(spec, task_id)["resources"]
    }
    assert set(with_gpu) == {"LayerwisePretrainer", "BottleneckCache", "Trainer"}
    assert with_gpu["LayerwisePretrainer"] == {"type": "nvidia.com/gpu", "count": "1"}
    uncached = {t for t, task in _tasks(spec).items() if not task["cachingOptions"]["enableCache"]}
    assert uncached == {"ImageExampleGen", "UnlabelledExampleGen"}
    with open(path, encoding="utf-8") as f:
        platform = list(yaml.safe_load_all(f))[1]
    executor = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert executor["LayerwisePretrainer_executor"]["nodeSelector"]["labels"] == {
        "cloud.google.com/gke-accelerator": "nvidia-l4"
    }


def _executor_input(spec, task_id, parameter_values, out_dir):
    """The ExecutorInput that KFP's launcher hands a step: its parameters and outputs."""
    component = spec["components"][_tasks(spec)[task_id]["componentRef"]["name"]]
    outputs = {}
    for key, artifact in component["outputDefinitions"]["artifacts"].items():
        uri = str(out_dir / key)
        entry = {"name": f"{task_id}-{key}", "uri": uri, "type": artifact["artifactType"]}
        outputs[key] = {"artifacts": [entry]}
    return {
        "inputs": {"parameterValues": parameter_values},
        "outputs": {"artifacts": outputs, "outputFile": str(out_dir / "executor_output.json")},
    }


def test_image_example_gen_step_runs_in_the_kfp_entrypoint(compiled, tmp_path):
    """Runs the compiled ImageExampleGen step the way its container does (in process).

    Proves that the step's command line, the run-time parameter and the custom
    artifact titles (kubeflow.ClassVocabulary) work in TFX's KFP entrypoint. Beam runs
    in memory here (the deployment asks for multi-processing on the cluster).
    """
    from PIL import Image
    from tfx.orchestration.kubeflow.v2.container import kubeflow_v2_run_executor as entry

    _, spec, _ = compiled
    data = tmp_path / "data"
    for label, colour in (("cat", (200, 30, 30)), ("dog", (30, 30, 200))):
        (data / label).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (8 + i, 8), colour).save(data / label / f"{i}.png")
    task = _tasks(spec)["ImageExampleGen"]
    values = {
        name: (str(data) if "componentInputParameter" in p else p["runtimeValue"]["constant"])
        for name, p in task["inputs"]["parameters"].items()
    }
    out = tmp_path / "out"
    invocation = json.dumps(_executor_input(spec, "ImageExampleGen", values, out))
    argv = [invocation if a == "{{$}}" else a for a in _container(spec, "ImageExampleGen")["args"]]
    argv += ["--direct_running_mode=in_memory", "--direct_num_workers=1"]
    entry.main(entry._parse_flags(["kubeflow_v2_run_executor", *argv]))

    with open(out / "executor_output.json", encoding="utf-8") as f:
        executor_output = json.load(f)
    assert set(executor_output["artifacts"]) == {"examples", "vocabulary", "report"}
    assert (out / "vocabulary" / "labels.txt").read_text().split() == ["cat", "dog"]
    with open(out / "report" / "counts.json", encoding="utf-8") as f:
        assert json.load(f)["ingested"] == 6
    assert sorted(p.name for p in (out / "examples").iterdir()) == ["Split-eval", "Split-train"]
