"""TF Serving manifests: rendered per model, validated against the Kubernetes schema.

The validator (kubeflow/serving/render.py) walks each manifest against the kubernetes
Python client's models (V1Deployment, V1Service, ...) and then builds the model with
the client's deserializer; the negative tests prove that it fails on a wrong field.
"""

from __future__ import annotations

import copy
import glob
import os

import pytest
import yaml

from kubeflow.serving import render

BASE = "gs://my-bucket/serving/digits"


def _by_kind(docs):
    return {doc["kind"]: doc for doc in docs}


def _container(deployment):
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


@pytest.mark.parametrize("gpu", [False, True])
def test_rendered_manifests_validate(gpu):
    docs = render.render("digits", BASE, gpu=gpu)
    assert [d["kind"] for d in docs] == ["Deployment", "Service"]
    for doc in docs:
        render.validate(doc)  # raises on any schema error


def test_every_template_is_valid_yaml_of_known_kinds():
    files = sorted(glob.glob(os.path.join(render.HERE, "*.yaml")))
    assert [os.path.basename(f) for f in files] == [
        "deployment-gpu.yaml",
        "deployment.yaml",
        "service.yaml",
    ]
    for name in {n for names in render.TEMPLATES.values() for n in names}:
        assert os.path.join(render.HERE, name) in files


def test_ports_model_path_and_readiness_probe():
    deployment, service = render.render("digits", BASE)
    container = _container(deployment)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"grpc": 8500, "http": 8501}
    assert "--port=8500" in container["args"] and "--rest_api_port=8501" in container["args"]
    assert "--model_name=digits" in container["args"]
    assert f"--model_base_path={BASE}" in container["args"]
    probe = container["readinessProbe"]["httpGet"]
    assert probe == {"path": "/v1/models/digits", "port": "http"}  # the model status endpoint
    assert {p["name"]: (p["port"], p["targetPort"]) for p in service["spec"]["ports"]} == {
        "grpc": (8500, "grpc"),
        "http": (8501, "http"),
    }
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert deployment["spec"]["selector"]["matchLabels"] == service["spec"]["selector"]


def test_parameterized_by_model_name():
    deployment, service = render.render("flowers-v2", "gs://b/models/flowers-v2")
    assert deployment["metadata"]["name"] == service["metadata"]["name"] == "tf-serving-flowers-v2"
    container = _container(deployment)
    assert "--model_name=flowers-v2" in container["args"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/v1/models/flowers-v2"
    assert "${" not in yaml.safe_dump_all([deployment, service])


def test_gpu_variant():
    deployment = _by_kind(render.render("digits", BASE, gpu=True, gpu_type="nvidia-l4"))[
        "Deployment"
    ]
    container = _container(deployment)
    assert container["image"].endswith("-gpu")
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    pod = deployment["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"cloud.google.com/gke-accelerator": "nvidia-l4"}
    assert pod["tolerations"][0]["key"] == "nvidia.com/gpu"
    cpu = _container(_by_kind(render.render("digits", BASE))["Deployment"])
    assert "nvidia.com/gpu" not in cpu["resources"]["limits"]
    assert not cpu["image"].endswith("-gpu")


def test_model_base_path_is_the_pusher_layout():
    # Pusher writes <serving_root>/<model_name>/<version>/; TF Serving's base path is
    # the folder of versions.
    with pytest.raises(render.ManifestError, match="must end with /digits"):
        render.render("digits", "gs://my-bucket/serving")
    with pytest.raises(render.ManifestError, match="must end with /digits"):
        render.render("digits", "gs://my-bucket/serving/digits/1700000000")


def _mutate(path, value):
    deployment = copy.deepcopy(render.render("digits", BASE)[0])
    node = deployment
    for key in path[:-1]:
        node = node[key]
    if value is _DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return deployment


_DELETE = object()
_CONTAINER = ["spec", "template", "spec", "containers", 0]


@pytest.mark.parametrize(
    "path, value, message",
    [
        (["spec", "replica"], 1, r"spec\.replica: not a field of V1DeploymentSpec"),
        ([*_CONTAINER, "imagePullPolicyy"], "Always", "not a field of V1Container"),
        (["spec", "replicas"], "1", r"spec\.replicas: expected int"),
        ([*_CONTAINER, "ports", 0, "containerPort"], "8500", "expected int"),
        ([*_CONTAINER, "readinessProbe", "httpGet", "path"], 1, "expected str"),
        (["spec", "template", "spec", "containers"], _DELETE, "containers"),
        (["spec", "selector"], _DELETE, "selector"),
    ],
)
def test_validator_fails_on_wrong_manifests(path, value, message):
    with pytest.raises(render.ManifestError, match=message):
        render.validate(_mutate(path, value))


def test_validator_rejects_unknown_kinds():
    with pytest.raises(render.ManifestError, match="is not one of"):
        render.validate({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}})


def test_a_model_name_kubernetes_does_not_accept_is_served_as_is():
    # digits_layerwise (pipeline/configs/demo_layerwise.yaml): TF Serving takes it,
    # Kubernetes object names do not, so only the object names are derived.
    deployment, service = render.render("Digits_Layerwise", "gs://b/Digits_Layerwise")
    assert deployment["metadata"]["name"] == service["metadata"]["name"]
    assert service["metadata"]["name"] == "tf-serving-digits-layerwise"
    container = _container(deployment)
    assert "--model_name=Digits_Layerwise" in container["args"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/v1/models/Digits_Layerwise"


@pytest.mark.parametrize(
    "name, message",
    [
        ("digits_", "not a DNS-1123 label"),
        ("-digits", "letters, digits"),
        ("x" * 53, "not a DNS-1123 label"),
        ("digits/v2", "letters, digits"),
        ("", "letters, digits"),
    ],
)
def test_model_name_must_fit_tf_serving_and_kubernetes_names(name, message):
    with pytest.raises(render.ManifestError, match=message):
        render.render(name, f"gs://b/{name}")


def test_command_line_prints_valid_yaml(capsys):
    argv = ["--model-name", "digits", "--model-base-path", BASE, "--gpu"]
    assert render.main(argv) == 0
    docs = list(yaml.safe_load_all(capsys.readouterr().out))
    assert [d["kind"] for d in docs] == ["Deployment", "Service"]
    for doc in docs:
        render.validate(doc)
    assert render.main(["--model-name", "digits"]) == 2
    assert "--model-base-path" in capsys.readouterr().err
