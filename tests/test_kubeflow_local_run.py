"""The compiled Kubeflow pipeline, run here step by step as KFP's launcher runs it.

Two specs: a tiny hand-written KFP v2 spec whose steps are `python -c` one-liners
(the DAG walk, parameter and artifact wiring, placeholders, failures and every
unsupported feature, in about a second each), and the demo deployment compiled by
kubeflow/compile.py with local paths (file:// URIs where the deployment config wants
shared storage), run once end to end through TFX's container entrypoint: every step
succeeds, the pushed model answers through TF Serving's loader, the Trainer got the
run's trainer_config, and a data_root that does not exist stops the run at
ImageExampleGen with the component's own message.
"""

from __future__ import annotations

import copy
import json
import os
import sys

import numpy as np
import pytest
import yaml

from components.common import model_io
from kubeflow import compile as kubeflow_compile
from kubeflow import config as kubeflow_config
from kubeflow import local_run

pytestmark = pytest.mark.e2e

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IN_MEMORY = ["--direct_running_mode=in_memory", "--direct_num_workers=1"]
COMPILED_EPOCHS = 30  # the deployment's default (parameters.epochs)
RUN_EPOCHS = 2  # the run's trainer_config
SOURCE_PER_CLASS = 30

# --- a tiny spec ---------------------------------------------------------------------------
# One script for both steps: `produce` writes an artifact and an output parameter;
# `consume` reads them (from the ExecutorInput that the runner built) and echoes what
# it saw, its cwd, an env var from the spec and its extra args.
SCRIPT = """
import json, os, sys
ei = json.loads(sys.argv[1])
params = ei["inputs"].get("parameterValues", {})
out = {"parameterValues": {}, "artifacts": {}}
if "word" in params:
    if params["word"] == "fail":
        raise ValueError("the word may not be fail")
    artifact = ei["outputs"]["artifacts"]["data"]["artifacts"][0]
    os.makedirs(artifact["uri"])
    with open(os.path.join(artifact["uri"], "f.txt"), "w") as f:
        f.write(sys.argv[2])
    shout = " ".join([params["word"].upper() + params["suffix"]] * params["times"])
    out["parameterValues"]["shout"] = shout
    out["artifacts"]["data"] = {"artifacts": [{"uri": artifact["uri"], "metadata": {"n": 3}}]}
else:
    artifact = ei["inputs"]["artifacts"]["data"]["artifacts"][0]
    with open(os.path.join(artifact["uri"], "f.txt")) as f:
        content = f.read()
    seen = [params["text"], content, artifact["metadata"]["n"], artifact["name"],
            os.getcwd(), os.environ["TINY_ENV"], sys.argv[2:]]
    out["parameterValues"]["echo"] = json.dumps(seen)
with open(ei["outputs"]["outputFile"], "w") as f:
    json.dump(out, f)
"""
DATASET = {"artifactType": {"schemaTitle": "system.Dataset", "schemaVersion": "0.0.1"}}


def _container(args):
    return {
        "container": {
            "image": "python:3.10",
            "command": ["python", "-c", SCRIPT],
            "args": ["{{$}}", *args],
            "env": [{"name": "TINY_ENV", "value": "from-spec"}],
        }
    }


def tiny_spec():
    return {
        "pipelineInfo": {"name": "tiny"},
        "schemaVersion": "2.1.0",
        "sdkVersion": "hand-written",
        "root": {
            "inputDefinitions": {
                "parameters": {
                    "word": {
                        "parameterType": "STRING",
                        "defaultValue": "hello",
                        "isOptional": True,
                    },
                    "times": {"parameterType": "NUMBER_INTEGER", "defaultValue": 2.0},
                }
            },
            "dag": {
                "tasks": {
                    # Named so that alphabetical order would run the consumer first; it
                    # has no dependentTasks: the order comes from what it reads.
                    "a-consume": {
                        "componentRef": {"name": "comp-consume"},
                        "taskInfo": {"name": "a-consume"},
                        "inputs": {
                            "parameters": {
                                "text": {
                                    "taskOutputParameter": {
                                        "producerTask": "b-produce",
                                        "outputParameterKey": "shout",
                                    }
                                }
                            },
                            "artifacts": {
                                "data": {
                                    "taskOutputArtifact": {
                                        "producerTask": "b-produce",
                                        "outputArtifactKey": "data",
                                    }
                                }
                            },
                        },
                    },
                    "b-produce": {
                        "componentRef": {"name": "comp-produce"},
                        "taskInfo": {"name": "b-produce"},
                        "cachingOptions": {"enableCache": True},
                        "inputs": {
                            "parameters": {
                                "word": {"componentInputParameter": "word"},
                                "times": {"componentInputParameter": "times"},
                                "suffix": {"runtimeValue": {"constant": "!"}},
                            }
                        },
                    },
                }
            },
        },
        "components": {
            "comp-produce": {
                "executorLabel": "exec-produce",
                "inputDefinitions": {
                    "parameters": {
                        "word": {"parameterType": "STRING"},
                        "times": {"parameterType": "NUMBER_INTEGER"},
                        "suffix": {"parameterType": "STRING"},
                    }
                },
                "outputDefinitions": {
                    "parameters": {"shout": {"parameterType": "STRING"}},
                    "artifacts": {"data": DATASET},
                },
            },
            "comp-consume": {
                "executorLabel": "exec-consume",
                "inputDefinitions": {
                    "parameters": {"text": {"parameterType": "STRING"}},
                    "artifacts": {"data": DATASET},
                },
                "outputDefinitions": {"parameters": {"echo": {"parameterType": "STRING"}}},
            },
        },
        "deploymentSpec": {
            "executors": {
                "exec-produce": _container(["{{$.inputs.parameters['word']}}"]),
                "exec-consume": _container([]),
            }
        },
    }


def _write(path, *documents):
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump_all(list(documents), f)
    return str(path)


def test_tiny_spec_runs_in_dependency_order_with_its_wiring(tmp_path):
    package = _write(tmp_path / "tiny.yaml", tiny_spec())
    workdir = tmp_path / "work"
    workdir.mkdir()
    result = local_run.run_compiled(
        package,
        str(tmp_path / "root"),
        {"times": "3"},  # a string, as from the command line: typed by the spec
        workdir=str(workdir),
        extra_args=["--extra=1"],
    )
    assert list(result.tasks) == ["b-produce", "a-consume"]
    assert result.succeeded and result.failed is None
    produce, consume = result.tasks["b-produce"], result.tasks["a-consume"]
    data = produce.artifact("data")
    assert data["uri"] == os.path.join(result.run_root, "b-produce", "data")
    assert data["metadata"] == {"n": 3}
    assert data["name"] == f"{result.run_name}/b-produce/data"
    assert produce.outputs["shout"] == "HELLO! HELLO! HELLO!"
    text, content, n, name, cwd, env, argv = json.loads(consume.outputs["echo"])
    assert text == "HELLO! HELLO! HELLO!"  # the upstream output parameter
    assert content == "hello"  # {{$.inputs.parameters['word']}}, resolved by kfp.local
    assert (n, name) == (3, data["name"])  # the artifact as the launcher recorded it
    assert cwd == str(workdir)
    assert env == "from-spec"
    assert argv == ["--extra=1"]
    assert produce.command[0] == sys.executable and produce.command[-1] == "--extra=1"
    assert produce.executor_input["inputs"]["parameterValues"] == {
        "word": "hello",
        "times": 3,
        "suffix": "!",
    }
    assert os.path.isfile(os.path.join(produce.task_root, local_run.EXECUTOR_INPUT_FILE))
    assert any("KFP cache" in line and "b-produce" in line for line in result.ignored)


def test_tiny_spec_failure_names_the_step_and_stops_the_run(tmp_path):
    package = _write(tmp_path / "tiny.yaml", tiny_spec())
    result = local_run.run_compiled(package, str(tmp_path / "root"), {"word": "fail"})
    failed = result.failed
    assert failed is not None and failed.name == "b-produce" and failed.exit_code == 1
    assert "step b-produce failed" in failed.message
    assert "ValueError: the word may not be fail" in failed.message
    assert "word='fail'" in failed.message  # the run-time parameter it read
    assert result.tasks["a-consume"].state == local_run.NOT_RUN
    assert result.tasks["a-consume"].message == "not run: b-produce failed"
    with pytest.raises(local_run.StepFailedError, match="b-produce"):
        result.raise_for_failure()


def test_command_line_prints_one_line_per_task(tmp_path, capsys):
    package = _write(tmp_path / "tiny.yaml", tiny_spec())
    argv = ["--package", package, "--pipeline-root", str(tmp_path / "root")]
    assert local_run.main([*argv, "--param", "word=hey", "--extra-arg=--x"], prog="kfp-local") == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[:2] for line in lines[:2]] == [
        ["b-produce", "SUCCEEDED"],
        ["a-consume", "SUCCEEDED"],
    ]
    assert lines[0].endswith(" s") and lines[2].startswith("run folder: ")

    assert local_run.main([*argv, "--param", "word=fail"], prog="kfp-local") == 1
    captured = capsys.readouterr()
    assert [line.split()[:2] for line in captured.out.splitlines()[:2]] == [
        ["b-produce", "FAILED"],
        ["a-consume", "NOT_RUN"],
    ]
    assert "kfp-local: error: step b-produce failed" in captured.err

    assert local_run.main([*argv, "--param", "colour=red"], prog="kfp-local") == 2
    assert "colour not declared by the pipeline" in capsys.readouterr().err


def test_help_says_what_the_cluster_does_that_this_does_not(capsys):
    with pytest.raises(SystemExit) as exit_:
        local_run.main(["--help"], prog="tfx-transfer kfp-local")
    assert exit_.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert text.startswith("usage: tfx-transfer kfp-local")
    for words in (
        "KFP cache",
        "ML Metadata lineage",
        "GPU scheduling",
        "Kubernetes resources",
        "the container image itself",
    ):
        assert words in text, words


@pytest.mark.parametrize(
    "parameters, message",
    [
        ({"colour": "red"}, r"colour not declared by the pipeline; it declares: times, word"),
        ({"times": "two"}, r"parameter 'times': 'two' is not a NUMBER_INTEGER value"),
        ({"word": 3}, r"parameter 'word': 3 is not a STRING value"),
    ],
)
def test_bad_parameters_fail_before_any_step(tmp_path, parameters, message):
    package = _write(tmp_path / "tiny.yaml", tiny_spec())
    with pytest.raises(local_run.ParameterError, match=message):
        local_run.run_compiled(package, str(tmp_path / "root"), parameters)
    assert not (tmp_path / "root").exists()


def _with_condition(spec):
    spec["root"]["dag"]["tasks"]["a-consume"]["triggerPolicy"] = {
        "condition": "inputs.parameter_values['text'] == 'x'"
    }


def _with_exit_handler(spec):
    spec["root"]["dag"]["tasks"]["a-consume"]["triggerPolicy"] = {
        "strategy": "ALL_UPSTREAM_TASKS_COMPLETED"
    }


def _with_loop(spec):
    spec["root"]["dag"]["tasks"]["b-produce"]["parameterIterator"] = {
        "itemInput": "word",
        "items": {"raw": '["a", "b"]'},
    }


def _with_retries(spec):
    spec["root"]["dag"]["tasks"]["b-produce"]["retryPolicy"] = {"maxRetryCount": 2}


def _with_importer(spec):
    spec["deploymentSpec"]["executors"]["exec-produce"] = {
        "importer": {"artifactUri": {"constant": "gs://b/x"}, "typeSchema": DATASET["artifactType"]}
    }


def _with_sub_dag(spec):
    component = spec["components"]["comp-produce"]
    del component["executorLabel"]
    component["dag"] = {"tasks": {}}


def _with_shell_command(spec):
    spec["deploymentSpec"]["executors"]["exec-produce"]["container"]["command"] = ["sh", "-c"]


def _with_final_status(spec):
    spec["root"]["dag"]["tasks"]["a-consume"]["inputs"]["parameters"]["status"] = {
        "taskFinalStatus": {"producerTask": "b-produce"}
    }


def _with_pipeline_input_artifact(spec):
    spec["root"]["inputDefinitions"]["artifacts"] = {"seed": DATASET}


@pytest.mark.parametrize(
    "mutate, message",
    [
        (_with_condition, r"conditions \(triggerPolicy.condition"),
        (_with_exit_handler, r"ALL_UPSTREAM_TASKS_COMPLETED \(exit handlers\)"),
        (_with_loop, r"loops \(dsl.ParallelFor\)"),
        (_with_retries, r"retries \(retryPolicy\)"),
        (_with_importer, r"importer executors"),
        (_with_sub_dag, r"sub-DAGs"),
        (_with_shell_command, r"'sh' is not a Python entrypoint"),
        (_with_final_status, r"final status \(exit handlers\)"),
        (_with_pipeline_input_artifact, r"input artifacts of the pipeline \(seed\)"),
    ],
)
def test_unsupported_features_fail_loudly_before_any_step(tmp_path, mutate, message):
    spec = copy.deepcopy(tiny_spec())
    mutate(spec)
    package = _write(tmp_path / "tiny.yaml", spec)
    with pytest.raises(local_run.UnsupportedSpecError, match=message):
        local_run.run_compiled(package, str(tmp_path / "root"))
    assert not (tmp_path / "root").exists()


def test_kubernetes_settings_that_change_the_container_fail_loudly(tmp_path):
    scheduling = {"nodeSelector": {"labels": {"gpu": "t4"}}, "tolerations": [{"key": "x"}]}
    volumes = {"pvcMount": [{"mountPath": "/data", "constant": "my-pvc"}]}
    for settings, ok in ((scheduling, True), (volumes, False)):
        platform = {
            "platforms": {
                "kubernetes": {"deploymentSpec": {"executors": {"exec-produce": settings}}}
            }
        }
        package = _write(tmp_path / "tiny.yaml", tiny_spec(), platform)
        spec, spec_dict, platform_spec = local_run.load_package(package)
        if ok:
            ignored = local_run.check_supported(spec, spec_dict, platform_spec)
            assert any(line.startswith("exec-produce: Kubernetes") for line in ignored)
        else:
            with pytest.raises(local_run.UnsupportedSpecError, match=r"pvcMount \(volumes"):
                local_run.check_supported(spec, spec_dict, platform_spec)


# --- the compiled demo pipeline ---------------------------------------------------------------
def _write_inputs(root):
    """Small demo data, and an 'image' folder (workdir) holding the schemas the steps read."""
    from pipeline import schema as schema_lib
    from pipeline.demo_data import write_demo_data

    write_demo_data(str(root / "demo"), target_per_class=10)
    for folder in sorted((root / "demo" / "source").iterdir()):
        if folder.is_dir():
            for extra in sorted(folder.iterdir())[SOURCE_PER_CLASS:]:
                extra.unlink()
    app = root / "app"
    (app / "schemas").mkdir(parents=True)
    for name, folder in (("digits_target", "target"), ("digits_source", "source")):
        classes = schema_lib.class_names_in(str(root / "demo" / folder))
        schema_lib.write_schema(
            schema_lib.build_schema(classes), str(app / "schemas" / f"{name}.pbtxt")
        )
    return app


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    """The demo deployment with local paths, compiled: (root, workdir, path, spec)."""
    root = tmp_path_factory.mktemp("kfp_local")
    app = _write_inputs(root)
    with open(os.path.join(REPO, "kubeflow", "configs", "demo.yaml"), encoding="utf-8") as f:
        raw = yaml.safe_load(f)
    raw.update(
        pipeline_config=os.path.join(REPO, "pipeline", "configs", "demo.yaml"),
        image="tfx-transfer:local-test",
        workdir=str(app),
        pipeline_root=f"file://{root}/unused-default-root",
    )
    raw["parameters"] = {
        "data_root": f"file://{root}/demo/target",
        "serving_root": f"file://{root}/unused-default-serving",
        "epochs": COMPILED_EPOCHS,
    }
    raw["pipeline_overrides"] = {
        "base_model.source_task.data_root": f"file://{root}/demo/source",
        "base_model.source_task.epochs": 1,
        "cache.dir": f"file://{root}/bottleneck_cache",
        "image.height": 16,
        "image.width": 16,
        "data.train_ratio": 0.5,
        "data.min_train_per_class": 2,
        "training.fine_tune": "off",
        "evaluation.min_accuracy": 0.0,  # the runner is under test here, not the model
    }
    deployment = _write(root / "deployment.yaml", raw)
    path = str(root / "pipeline.yaml")
    spec = kubeflow_compile.compile_pipeline(kubeflow_config.load_config(deployment), path)
    return root, app, path, spec.pipeline_spec


def _trainer_config(spec, **changes):
    default = spec["root"]["inputDefinitions"]["parameters"]["trainer_config"]["defaultValue"]
    return json.dumps({**json.loads(default), **changes}, sort_keys=True)


@pytest.fixture(scope="module")
def run(compiled):
    """One run of the compiled spec, with run-time parameters for every input."""
    root, app, path, spec = compiled
    parameters = {
        "data_root": str(root / "demo" / "target"),
        "push_destination": json.dumps(
            {"filesystem": {"baseDirectory": str(root / "serving" / "digits")}}
        ),
        "trainer_config": _trainer_config(spec, epochs=RUN_EPOCHS),
    }
    return local_run.run_compiled(
        path, str(root / "runs"), parameters, workdir=str(app), extra_args=IN_MEMORY
    )


def test_every_compiled_step_succeeds_in_dependency_order(run, compiled):
    _, _, _, spec = compiled
    tasks = spec["root"]["dag"]["tasks"]
    assert set(run.tasks) == set(tasks) and len(tasks) == 15
    assert run.succeeded, {t.name: t.message for t in run.tasks.values() if t.message}
    order = list(run.tasks)
    for name, task in tasks.items():
        for upstream in task.get("dependentTasks", []):
            assert order.index(upstream) < order.index(name), (upstream, name)
    for task in run.tasks.values():
        for key, artifacts in task.artifacts.items():
            assert artifacts[0]["uri"] == os.path.join(run.run_root, task.name, key)


def test_each_step_gets_its_producers_recorded_outputs(run, compiled):
    _, _, _, spec = compiled
    for name, task in spec["root"]["dag"]["tasks"].items():
        received = run.tasks[name].executor_input["inputs"].get("artifacts", {})
        assert set(received) == set(task["inputs"].get("artifacts", {})), name
        for key, source in task["inputs"].get("artifacts", {}).items():
            producer = source["taskOutputArtifact"]
            sent = run.tasks[producer["producerTask"]].artifact(producer["outputArtifactKey"])
            assert received[key]["artifacts"] == [sent], (name, key)
    # The metadata the launcher passes on: TFX reads the splits from it.
    examples = run.tasks["StatisticsGen"].executor_input["inputs"]["artifacts"]["examples"]
    metadata = examples["artifacts"][0]["metadata"]
    assert json.loads(metadata["split_names"]) == ["train", "eval"]
    assert metadata["ingested"] == 50
    title = yaml.safe_load(examples["artifacts"][0]["type"]["instanceSchema"])["title"]
    assert title == "tfx.Examples"


def test_beam_args_pass_through_and_the_callers_come_last(run, compiled):
    _, app, _, spec = compiled
    command = run.tasks["BottleneckCache"].command
    assert command[0] == sys.executable
    label = spec["components"]["BottleneckCache"]["executorLabel"]
    compiled_args = spec["deploymentSpec"]["executors"][label]["container"]["args"]
    beam = [a for a in compiled_args if a.startswith("--direct_")]
    assert "--direct_running_mode=multi_processing" in beam
    assert command[-len(beam) - len(IN_MEMORY) :] == [*beam, *IN_MEMORY]
    # The compiled paths resolve under the deployment's workdir, the steps' cwd.
    schema_file = run.tasks["ImportSchemaGen"].executor_input["inputs"]["parameterValues"]
    assert schema_file["schema_file"] == str(app / "schemas" / "digits_target.pbtxt")
    ignored = "\n".join(run.ignored)
    assert "Trainer: container resources" in ignored and "nvidia.com/gpu" in ignored
    assert "Trainer_executor: Kubernetes" in ignored  # node selector, toleration


def test_pushed_model_answers_through_tf_serving(run, compiled, tf_serving):
    root, _, _, _ = compiled
    pushed = run.tasks["Pusher"].artifact("pushed_model")["metadata"]
    assert pushed["pushed"] == 1
    destination = pushed["pushed_destination"]
    assert os.path.dirname(destination) == str(root / "serving" / "digits")
    assert os.path.basename(destination).isdigit()
    folder = root / "demo" / "target" / "7"
    images = [p.read_bytes() for p in sorted(folder.iterdir())[:3]]
    answer = tf_serving(destination, model_io.IMAGES_SIGNATURE, {model_io.IMAGES_INPUT: images})
    probabilities = answer[model_io.PROBABILITIES_OUTPUT]
    assert probabilities.shape == (3, 5)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    blessing = run.tasks["Evaluator"].artifact("blessing")["metadata"]
    assert blessing["blessed"] == 1


def test_trainer_receives_the_runs_trainer_config(run, compiled):
    _, _, _, spec = compiled
    default = spec["root"]["inputDefinitions"]["parameters"]["trainer_config"]["defaultValue"]
    assert json.loads(default)["epochs"] == COMPILED_EPOCHS
    trainer = run.tasks["Trainer"]
    received = json.loads(trainer.executor_input["inputs"]["parameterValues"]["custom_config"])
    assert received["epochs"] == RUN_EPOCHS
    model_dir = trainer.artifact("model")["uri"]
    with open(os.path.join(model_dir, "reports", "metrics.json"), encoding="utf-8") as f:
        metrics = json.load(f)
    assert metrics["config"]["epochs"] == RUN_EPOCHS
    assert 1 <= metrics["phases"]["head"]["epochs_run"] <= RUN_EPOCHS


def test_a_data_root_that_does_not_exist_stops_at_image_example_gen(compiled, tmp_path):
    root, app, path, _ = compiled
    missing = str(tmp_path / "no-such-folder")
    result = local_run.run_compiled(
        path, str(tmp_path / "runs"), {"data_root": missing}, workdir=str(app), extra_args=IN_MEMORY
    )
    failed = result.failed
    assert failed is not None and failed.name == "ImageExampleGen", failed
    assert f"ValueError: input_base {missing} does not exist" in failed.message
    assert f"data_root={missing!r}" in failed.message
    assert failed.log_path in failed.message
    after = [t for t in result.tasks.values() if t.state == local_run.NOT_RUN]
    assert {"StatisticsGen", "Transform", "Trainer", "Pusher"} <= {t.name for t in after}
    assert all(t.message == "not run: ImageExampleGen failed" for t in after)
    with pytest.raises(local_run.StepFailedError, match="step ImageExampleGen failed"):
        result.raise_for_failure()


def test_a_deployment_compiles_for_local_paths_in_one_step(tmp_path):
    """`tfx-transfer kfp-local --config kubeflow/configs/demo.yaml`: gs:// roots become
    local folders, the data and source folders the pipeline config's own."""
    package = local_run.compile_locally(
        os.path.join(REPO, "kubeflow", "configs", "demo.yaml"), str(tmp_path)
    )
    with open(tmp_path / "deployment.local.yaml", encoding="utf-8") as f:
        deployment = yaml.safe_load(f)
    assert deployment["workdir"] == REPO
    assert deployment["pipeline_root"] == f"file://{tmp_path}/pipeline_root"
    assert deployment["parameters"]["data_root"] == f"file://{REPO}/demo_data/target"
    overrides = deployment["pipeline_overrides"]
    assert overrides["cache.dir"] == f"file://{tmp_path}/bottleneck_cache"
    assert overrides["base_model.source_task.data_root"] == f"file://{REPO}/demo_data/source"
    with open(package, encoding="utf-8") as f:
        spec = next(yaml.safe_load_all(f))
    defaults = spec["root"]["inputDefinitions"]["parameters"]
    assert defaults["data_root"]["defaultValue"] == f"file://{REPO}/demo_data/target"
    assert "gs://" not in json.dumps(spec)
    # An override with no local counterpart in the pipeline config is refused by name.
    with open(os.path.join(REPO, "kubeflow", "configs", "demo.yaml"), encoding="utf-8") as f:
        raw = yaml.safe_load(f)
    raw["pipeline_overrides"]["base_model.layerwise.data_root"] = "gs://bucket/unlabelled"
    bad = _write(tmp_path / "bad.yaml", raw)
    with pytest.raises(ValueError, match="base_model.layerwise.data_root: gs://bucket/unlabelled"):
        local_run.compile_locally(bad, str(tmp_path / "bad"))
