"""Submits a compiled pipeline to Kubeflow Pipelines: one run, or a recurring run.

    python -m kubeflow.submit run --package build/kubeflow/digits-transfer.yaml \\
        [--data-root gs://...] [--epochs N] [--serving-root gs://...] [--param k=v]
    python -m kubeflow.submit schedule --package ... --name nightly-retrain \\
        --cron "0 3 * * *"

The KFP endpoint and credentials come from the environment or flags, never from the
compiled pipeline: --host or KFP_HOST (kfp's own KF_PIPELINES_ENDPOINT also works), a
bearer token from --token-file or KFP_TOKEN, --namespace or KFP_NAMESPACE for
multi-user clusters. `schedule` creates the recurring run, or replaces the one of the
same name in the experiment: creates the new one, then deletes the old (KFP has no
update call for recurring runs).

Run-time parameters: --data-root sets `data_root`; --serving-root sets
`push_destination` (<root>/<model_name>); --epochs sets `epochs` inside
`trainer_config` (the Trainer's custom_config JSON, starting from the compiled
default); --param NAME=VALUE sets any parameter the pipeline declares.

Caching: a run may turn KFP's cache off (--no-cache) but never on. KFP's client would
apply enable_caching=True to every step, including ImageExampleGen and BaseModelGen,
which read files from outside the pipeline and are compiled uncached on purpose.
"""

from __future__ import annotations

import argparse
import json
import os
import posixpath
import re
import sys
from collections.abc import Callable
from typing import Any

import yaml

ENV_HOST = "KFP_HOST"
ENV_TOKEN = "KFP_TOKEN"
ENV_NAMESPACE = "KFP_NAMESPACE"
DATA_ROOT = "data_root"
TRAINER_CONFIG = "trainer_config"
PUSH_DESTINATION = "push_destination"
_CRON_FIELD = re.compile(r"^[0-9A-Za-z*/,?LW#-]+$")


class SubmitError(ValueError):
    """The package, a parameter or a flag is invalid; the message says how to fix it."""


def read_package(path: str) -> dict[str, Any]:
    """The pipeline spec (first YAML document) of a compiled package."""
    if not os.path.isfile(path):
        raise SubmitError(
            f"--package {path!r} does not exist; compile it first: "
            "tfx-transfer compile --config kubeflow/configs/<deployment>.yaml"
        )
    with open(path, encoding="utf-8") as f:
        spec = next(yaml.safe_load_all(f), None)
    if not isinstance(spec, dict) or "root" not in spec:
        raise SubmitError(f"--package {path!r} is not a compiled KFP pipeline spec")
    return spec


def declared_parameters(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The pipeline's run-time parameters, by name (type and default)."""
    return dict(spec["root"].get("inputDefinitions", {}).get("parameters", {}))


def _default_json(declared: dict[str, dict[str, Any]], name: str, flag: str) -> dict:
    if name not in declared or "defaultValue" not in declared[name]:
        raise SubmitError(f"{flag}: the pipeline has no parameter {name!r} with a default")
    return json.loads(declared[name]["defaultValue"])


def parse_cron(expression: str) -> str:
    """KFP's 6-field cron (seconds first) from a 5- or 6-field cron expression.

    Raises:
      SubmitError: not 5 or 6 fields, or a field with characters cron does not use.
    """
    fields = expression.split()
    if len(fields) not in (5, 6) or not all(_CRON_FIELD.match(f) for f in fields):
        raise SubmitError(
            f"--cron {expression!r} is not a cron expression; give 5 fields "
            "(minute hour day-of-month month day-of-week, e.g. '0 3 * * *' for 03:00 daily) "
            "or KFP's 6 (seconds first)"
        )
    return " ".join(["0", *fields] if len(fields) == 5 else fields)


def run_arguments(spec: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """The run-time parameter values of a run, from the flags.

    Raises:
      SubmitError: a parameter the pipeline does not declare, or a bad value.
    """
    declared = declared_parameters(spec)
    values: dict[str, Any] = {}
    for item in args.param or []:
        name, eq, value = item.partition("=")
        if not eq or not name:
            raise SubmitError(f"--param {item!r}: expected NAME=VALUE")
        values[name] = value
    if args.data_root:
        values[DATA_ROOT] = args.data_root
    if args.serving_root:
        destination = _default_json(declared, PUSH_DESTINATION, "--serving-root")
        model_name = posixpath.basename(destination["filesystem"]["baseDirectory"].rstrip("/"))
        base = posixpath.join(args.serving_root.rstrip("/"), model_name)
        values[PUSH_DESTINATION] = json.dumps({"filesystem": {"baseDirectory": base}})
    if args.epochs is not None:
        if args.epochs < 1:
            raise SubmitError(f"--epochs {args.epochs}: must be an integer >= 1")
        trainer = json.loads(values.get(TRAINER_CONFIG, "null")) or _default_json(
            declared, TRAINER_CONFIG, "--epochs"
        )
        trainer["epochs"] = args.epochs
        values[TRAINER_CONFIG] = json.dumps(trainer, sort_keys=True)
    unknown = sorted(set(values) - set(declared))
    if unknown:
        raise SubmitError(
            f"parameter(s) {', '.join(unknown)} not declared by the pipeline; "
            f"it declares: {', '.join(sorted(declared)) or 'none'}"
        )
    return values


def client_kwargs(args: argparse.Namespace, environ: dict[str, str]) -> dict[str, Any]:
    """kfp.Client's arguments: endpoint, token and namespace from flags or environment.

    Raises:
      SubmitError: no endpoint, or an unreadable token file.
    """
    host = args.host or environ.get(ENV_HOST) or environ.get("KF_PIPELINES_ENDPOINT")
    if not host:
        raise SubmitError(
            f"no KFP endpoint: pass --host https://... or set {ENV_HOST} "
            "(e.g. a port-forward: http://localhost:8080)"
        )
    token = environ.get(ENV_TOKEN) or None
    if args.token_file:
        try:
            with open(args.token_file, encoding="utf-8") as f:
                token = f.read().strip()
        except OSError as e:
            raise SubmitError(f"--token-file {args.token_file!r}: {e.strerror}") from e
    kwargs: dict[str, Any] = {"host": host, "existing_token": token}
    namespace = args.namespace or environ.get(ENV_NAMESPACE)
    if namespace:
        kwargs["namespace"] = namespace
    return kwargs


def _experiment_id(client, name: str, namespace: str | None) -> str:
    return client.create_experiment(name=name, namespace=namespace).experiment_id


def submit_run(client, args: argparse.Namespace, spec: dict[str, Any]) -> str:
    """Creates one run; returns its id."""
    result = client.create_run_from_pipeline_package(
        pipeline_file=args.package,
        arguments=run_arguments(spec, args),
        run_name=args.run_name or None,
        experiment_name=args.experiment,
        namespace=args.namespace or None,
        pipeline_root=args.pipeline_root or None,
        enable_caching=False if args.no_cache else None,
        service_account=args.service_account or None,
    )
    return result.run_id


def _recurring_runs(client, experiment_id: str) -> list:
    """Every recurring run of the experiment (all pages)."""
    found, token = [], ""
    while True:
        page = client.list_recurring_runs(
            experiment_id=experiment_id, page_token=token, page_size=100
        )
        found += page.recurring_runs or []
        token = page.next_page_token
        if not token:
            return found


def schedule(client, args: argparse.Namespace, spec: dict[str, Any]) -> str:
    """Creates the recurring run, replacing one of the same name; returns its id."""
    cron = parse_cron(args.cron)
    arguments = run_arguments(spec, args)
    experiment_id = _experiment_id(client, args.experiment, args.namespace or None)
    # Found before the new one exists, deleted after it does: a failed create leaves
    # the old schedule in place.
    replaced = [r for r in _recurring_runs(client, experiment_id) if r.display_name == args.name]
    created = client.create_recurring_run(
        experiment_id=experiment_id,
        job_name=args.name,
        description=f"scheduled retraining: {args.package} at '{cron}'",
        cron_expression=cron,
        max_concurrency=1,
        no_catchup=True,
        params=arguments,
        pipeline_package_path=args.package,
        pipeline_root=args.pipeline_root or None,
        enable_caching=False if args.no_cache else None,
        service_account=args.service_account or None,
    )
    for old in replaced:
        client.delete_recurring_run(old.recurring_run_id)
    return created.recurring_run_id


def build_parser(prog: str = "kubeflow.submit") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_ in (("run", "submit one run"), ("schedule", "create/replace a recurring run")):
        p = sub.add_parser(name, help=help_)
        p.add_argument("--package", required=True, help="the compiled pipeline .yaml")
        p.add_argument("--host", default="", help=f"KFP endpoint (default ${ENV_HOST})")
        p.add_argument("--token-file", default="", help=f"bearer token file (or ${ENV_TOKEN})")
        p.add_argument("--namespace", default="", help=f"multi-user namespace (${ENV_NAMESPACE})")
        p.add_argument("--experiment", default="tfx-transfer")
        p.add_argument("--pipeline-root", default="", help="instead of the compiled default")
        p.add_argument("--data-root", default="", help="image folder URI for this run")
        p.add_argument("--serving-root", default="", help="Pusher writes <root>/<model_name>")
        p.add_argument("--epochs", type=int, default=None, help="head-phase epochs")
        p.add_argument("--param", action="append", metavar="NAME=VALUE")
        p.add_argument("--service-account", default="")
        p.add_argument("--no-cache", action="store_true", help="turn KFP's cache off")
        if name == "run":
            p.add_argument("--run-name", default="")
        else:
            p.add_argument("--name", required=True, help="the recurring run's name")
            p.add_argument("--cron", required=True, help="e.g. '0 3 * * *' (03:00 daily)")
    return parser


def _default_client_factory(**kwargs):
    import kfp

    return kfp.Client(**kwargs)


def main(
    argv: list[str] | None = None,
    client_factory: Callable[..., Any] = _default_client_factory,
    environ: dict[str, str] | None = None,
    prog: str = "kubeflow.submit",
) -> int:
    """Command line; `client_factory` builds the kfp.Client (tests pass a fake)."""
    args = build_parser(prog).parse_args(argv)
    environ = dict(os.environ if environ is None else environ)
    try:
        spec = read_package(args.package)
        run_arguments(spec, args)  # every flag checked before any connection
        if args.command == "schedule":
            parse_cron(args.cron)
        client = client_factory(**client_kwargs(args, environ))
        if args.command == "run":
            print(f"run {submit_run(client, args, spec)} submitted")
        else:
            print(f"recurring run {schedule(client, args, spec)} scheduled")
    except SubmitError as e:
        label = prog if prog != "kubeflow.submit" else f"{prog} {args.command}"
        print(f"{label}: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
