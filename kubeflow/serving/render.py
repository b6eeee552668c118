"""Renders the TensorFlow Serving manifests for one model, and validates them.

    python -m kubeflow.serving.render --config kubeflow/configs/demo.yaml [--gpu] > tfs.yaml
    python -m kubeflow.serving.render --model-name digits \\
        --model-base-path gs://my-bucket/serving/digits [--gpu] > tfs.yaml
    kubectl apply -f tfs.yaml

With --config the model name and base path come from the deployment (the pipeline
config's serving.model_name, parameters.serving_root): exactly the folder Pusher
writes, <serving_root>/<model_name>/<version>/.

Every rendered object is checked against the Kubernetes object schema of the
kubernetes Python client's models (V1Deployment, V1Service, ...): unknown fields,
wrong types and missing required fields are errors.
"""

from __future__ import annotations

import argparse
import json
import os
import posixpath
import re
import string
import sys
from typing import Any

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
TEMPLATES = {
    "cpu": ("deployment.yaml", "service.yaml"),
    "gpu": ("deployment-gpu.yaml", "service.yaml"),
}
# Kubernetes kind -> the kubernetes client's model of it.
MODELS = {("apps/v1", "Deployment"): "V1Deployment", ("v1", "Service"): "V1Service"}
# The served name (TF Serving's --model_name, the URL path /v1/models/<name>).
_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
# "tf-serving-" + resource_name(model name) must be a DNS-1123 label (63 at most).
_RESOURCE_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,50}[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$")


class ManifestError(ValueError):
    """A manifest does not match the Kubernetes object schema, or a value is invalid."""


def render(
    model_name: str,
    model_base_path: str,
    gpu: bool = False,
    gpu_type: str = "nvidia-tesla-t4",
    gpu_node_label: str = "cloud.google.com/gke-accelerator",
    service_account: str = "default",
) -> list[dict[str, Any]]:
    """The Deployment and Service for one model, validated.

    Args:
      model_name: the served model's name (URL path /v1/models/<name>).
      model_base_path: the folder of numbered versions, <serving_root>/<model_name>.
      gpu: the GPU variant (tensorflow/serving:*-gpu, one nvidia.com/gpu).
      gpu_type: the GPU model, as the value of `gpu_node_label` on GPU nodes.
      gpu_node_label: the node label that names the GPU model.
      service_account: the Kubernetes service account that may read the base path.

    Returns:
      The manifests as dicts (Deployment, then Service).

    Raises:
      ManifestError: a value is invalid, or a manifest fails the schema.
    """
    if not _MODEL_NAME.match(model_name):
        raise ManifestError(
            f"model name {model_name!r}: use letters, digits, '_', '.' and '-' (it is a "
            "URL path segment of TF Serving's REST API)"
        )
    if not _RESOURCE_NAME.match(resource_name(model_name)):
        raise ManifestError(
            f"model name {model_name!r} gives the Kubernetes name "
            f"{resource_name(model_name)!r}, not a DNS-1123 label: at most 52 characters, "
            "starting and ending with a letter or digit"
        )
    if posixpath.basename(model_base_path.rstrip("/")) != model_name:
        raise ManifestError(
            f"model base path {model_base_path!r} must end with /{model_name}: Pusher writes "
            "<serving_root>/<model_name>/<version>/"
        )
    if gpu and not _LABEL_VALUE.match(gpu_type):
        raise ManifestError(f"GPU type {gpu_type!r} is not a node label value")
    values = {
        "MODEL_NAME": model_name,
        "RESOURCE_NAME": resource_name(model_name),
        "MODEL_BASE_PATH": model_base_path.rstrip("/"),
        "SERVICE_ACCOUNT": service_account,
        "GPU_TYPE": gpu_type,
        "GPU_NODE_LABEL": gpu_node_label,
    }
    docs = []
    for name in TEMPLATES["gpu" if gpu else "cpu"]:
        with open(os.path.join(HERE, name), encoding="utf-8") as f:
            text = string.Template(f.read()).substitute(values)
        docs.extend(d for d in yaml.safe_load_all(text) if d is not None)
    for doc in docs:
        validate(doc)
    return docs


def resource_name(model_name: str) -> str:
    """The Deployment/Service name part for a model: lowercase, '_' and '.' -> '-'."""
    return re.sub(r"[_.]", "-", model_name.lower())


def validate(doc: Any) -> None:
    """Checks one manifest against the kubernetes client's model of its kind.

    Raises:
      ManifestError: unknown kind, unknown field, wrong type or missing required field.
    """
    from kubernetes import client

    if not isinstance(doc, dict):
        raise ManifestError(f"a manifest must be a mapping, got {type(doc).__name__}")
    key = (doc.get("apiVersion"), doc.get("kind"))
    if key not in MODELS:
        raise ManifestError(f"apiVersion/kind {key} is not one of {sorted(MODELS)}")
    _check(doc, MODELS[key], doc["kind"])

    class _Response:  # what ApiClient.deserialize reads
        data = json.dumps(doc)

    try:  # builds the model: required fields and enum checks of the client
        client.ApiClient().deserialize(_Response(), MODELS[key])
    except ValueError as e:
        raise ManifestError(f"{doc['kind']} {doc.get('metadata', {}).get('name')}: {e}") from e


def _check(value: Any, type_name: str, where: str) -> None:
    """Recursively checks `value` against a kubernetes client type name."""
    from kubernetes import client

    if type_name.startswith("list["):
        if not isinstance(value, list):
            raise ManifestError(f"{where}: expected a list, got {value!r}")
        for i, item in enumerate(value):
            _check(item, type_name[5:-1], f"{where}[{i}]")
    elif type_name.startswith("dict("):
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise ManifestError(f"{where}: expected a mapping, got {value!r}")
        inner = type_name[type_name.index(",") + 1 : -1].strip()
        for k, v in value.items():
            _check(v, inner, f"{where}.{k}")
    elif type_name in _PRIMITIVES:
        if not _PRIMITIVES[type_name](value):
            raise ManifestError(f"{where}: expected {type_name}, got {value!r}")
    else:
        model = getattr(client.models, type_name)
        if not isinstance(value, dict):
            raise ManifestError(f"{where}: expected a {type_name} mapping, got {value!r}")
        fields = {json_name: attr for attr, json_name in model.attribute_map.items()}
        for k, v in value.items():
            if k not in fields:
                raise ManifestError(
                    f"{where}.{k}: not a field of {type_name}; fields: {', '.join(sorted(fields))}"
                )
            _check(v, model.openapi_types[fields[k]], f"{where}.{k}")


_PRIMITIVES = {
    "str": lambda v: isinstance(v, str),
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "float": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "bool": lambda v: isinstance(v, bool),
    "datetime": lambda v: isinstance(v, str),
    "date": lambda v: isinstance(v, str),
    # IntOrString (ports, probe ports) and free-form fields.
    "object": lambda v: isinstance(v, int | str) and not isinstance(v, bool),
}


def serving_paths(config_path: str) -> tuple[str, str]:
    """(model name, model base path) of a deployment config: where its Pusher writes."""
    from kubeflow import config as kubeflow_config

    kf = kubeflow_config.load_config(config_path)
    pipeline = kubeflow_config.cluster_pipeline_config(kf)
    model_name = pipeline.serving.model_name
    return model_name, posixpath.join(kf.parameters.serving_root.rstrip("/"), model_name)


def main(argv: list[str] | None = None, prog: str = "kubeflow.serving.render") -> int:
    """Command line: print the manifests as one multi-document YAML."""
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="", help="a deployment config (kubeflow/configs/)")
    parser.add_argument("--model-name", default="")
    parser.add_argument("--model-base-path", default="", help="<serving_root>/<model_name>")
    parser.add_argument("--gpu", action="store_true", help="the GPU variant")
    parser.add_argument("--gpu-type", default="nvidia-tesla-t4")
    parser.add_argument("--gpu-node-label", default="cloud.google.com/gke-accelerator")
    parser.add_argument("--service-account", default="default")
    args = parser.parse_args(argv)
    try:
        if args.config:
            name, base = serving_paths(args.config)
        elif args.model_name and args.model_base_path:
            name, base = args.model_name, args.model_base_path
        else:
            raise ManifestError("give --config, or both --model-name and --model-base-path")
        docs = render(
            name, base, args.gpu, args.gpu_type, args.gpu_node_label, args.service_account
        )
    except ValueError as e:  # ManifestError, or pipeline.config.ConfigError from --config
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    yaml.safe_dump_all(docs, sys.stdout, sort_keys=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
