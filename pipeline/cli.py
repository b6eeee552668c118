"""The `tfx-transfer` command line.

    tfx-transfer demo-data --out demo_data      write the bundled demo image folders
    tfx-transfer run --config CONFIG.yaml       run the pipeline locally
    tfx-transfer schema --data-root DIR --out schemas/NAME.pbtxt
                                                write the schema for a dataset
    tfx-transfer runs [--config C]              past local runs, one line each
    tfx-transfer report [--config C] [--run RUN_ID] [--out FILE]
                                                a run's report: one self-contained HTML file
    tfx-transfer predict IMAGE... [--config C | --model-dir D] [--server H:P|URL]
                                                top-k classes from the pushed model
    tfx-transfer compile [--config kubeflow/configs/demo.yaml] [--output FILE.yaml]
                                                compile for Kubeflow Pipelines (KFP v2)
    tfx-transfer submit --package FILE.yaml ... submit one run to Kubeflow Pipelines
    tfx-transfer schedule --package FILE.yaml --name N --cron '0 3 * * *' ...
                                                create or replace a recurring run
    tfx-transfer serving-manifests --config kubeflow/configs/demo.yaml
                                                TF Serving Kubernetes manifests
    tfx-transfer kfp-local --package FILE.yaml --pipeline-root DIR [--param N=V ...]
                                                run a compiled pipeline here, step by step

Nothing heavy (TensorFlow, TFX, Kubeflow code) is imported before a subcommand needs
it, so `--help` answers at once.

Every failure is one message on stderr (no traceback) and an exit status:

    0  done
    1  the run finished but a step FAILED (listed in the summary)
    2  bad config, bad arguments or bad input files (the message names the fix)
    3  another run is using the same pipeline root (`run --wait` waits for it)
    4  a pipeline step stopped the run (data that does not match the schema, too few
       labelled images, an error inside a component); the message says which
    5  TF Serving could not be reached, or answered with an error (`predict --server`)
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
import warnings

from pipeline.errors import RunInProgressError, ServerError, StepFailedError

DEFAULT_CONFIG = "pipeline/configs/photos.yaml"  # the demo that `make demo` runs
# Bad config (ConfigError is a ValueError), arguments or input files: exit status 2.
_USER_ERRORS = (ValueError, OSError)


def _cmd_demo_data(args: argparse.Namespace) -> None:
    from pipeline.demo_data import write_demo_data

    counts = write_demo_data(args.out, target_per_class=args.target_per_class, seed=args.seed)
    print(f"demo data written to {args.out}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))


def _cmd_schema(args: argparse.Namespace) -> None:
    from pipeline import schema

    classes = None if args.unlabelled else schema.class_names_in(args.data_root)
    if classes is not None and not classes:
        raise ValueError(f"{args.data_root!r} has no class sub-folders; use --unlabelled")
    if classes is not None and len(classes) < 2:
        raise ValueError(
            f"{args.data_root!r} has one class folder ({classes[0]!r}); a classifier needs at "
            "least 2: add a sub-folder of images for each other class, then run this again "
            "(or --unlabelled for images without labels)"
        )
    schema.write_schema(schema.build_schema(classes), args.out)
    print(f"schema for {len(classes or [])} classes written to {args.out}; review and commit it")


def _cmd_run(args: argparse.Namespace) -> int:
    if args.verbose:
        return _run(args, None, None)
    from pipeline import console

    log_path = _log_path(args.config)
    print(f"run: full log in {log_path}", flush=True)
    # From here on (TensorFlow's import included) every log line goes to the file.
    with console.quiet_run(log_path) as (_, progress):
        return _run(args, log_path, progress)


def _run(args: argparse.Namespace, log_path: str | None, progress) -> int:
    """Loads and checks the config, runs the pipeline, prints the summary."""
    from pipeline import config as config_lib
    from pipeline import preflight
    from pipeline.local_runner import run_local
    from pipeline.run_summary import latest_run

    config = config_lib.load_config(args.config)
    preflight.check(config)
    start = time.time()
    try:
        run_local(config, wait=args.wait)
    except RunInProgressError:
        raise
    except Exception as error:  # noqa: BLE001 - a step failed: one message, status 4
        step = progress.failed_step() if progress else None
        where = f" (full log: {log_path})" if log_path else ""
        prefix = f"step {step}: " if step else ""
        raise StepFailedError(prefix + _step_message(error) + where) from error
    summary = latest_run(config.metadata_file, config.pipeline_name)
    out = progress.console.print if progress else print
    status = print_summary(config, summary, time.time() - start, out)
    report_path = _write_report(config, summary, log_path)
    if report_path:
        out(f"  report: {report_path}")
    if log_path:
        out(f"  full log: {log_path}")
    return status


def _write_report(config, summary, log_path: str | None) -> str | None:
    """The run's HTML report in <pipeline_root>/reports/; None (and a warning) when it
    cannot be written: the report never changes how the run ended."""
    try:
        from pipeline import report

        return report.write_report(config, summary, log_path=log_path or "")
    except Exception as error:  # noqa: BLE001 - any failure: the run's status stands
        logging.warning(
            "the run report was not written: %s: %s", type(error).__name__, error, exc_info=True
        )
        return None


def _log_path(config_path: str) -> str:
    """<pipeline_root>/logs/<pipeline>-<time>.log, read from the YAML without the heavy
    config module (./tfx_transfer_runs/logs when the file cannot be read: the loader
    reports that error itself)."""
    import yaml

    try:
        with open(config_path, encoding="utf-8") as f:
            raw = yaml.safe_load(f) or {}
    except (OSError, yaml.YAMLError):
        raw = {}
    raw = raw if isinstance(raw, dict) else {}
    root = str(raw.get("pipeline_root") or "tfx_transfer_runs")
    if "://" in root:
        root = "tfx_transfer_runs"
    name = str(raw.get("pipeline_name") or "pipeline")
    return os.path.join(root, "logs", f"{name}-{time.strftime('%Y%m%d-%H%M%S')}.log")


def print_summary(config, summary, seconds: float, print=print) -> int:  # noqa: A002
    """Prints what the run did (read back from ML Metadata); 1 when a step FAILED."""
    print(f"\npipeline {config.pipeline_name} finished in {seconds:.0f}s")
    print(f"  ran:    {', '.join(summary.ran()) or '-'}")
    print(f"  cached: {', '.join(summary.cached()) or '-'}")
    failed = sorted(node for node, state in summary.states.items() if state == "FAILED")
    if failed:  # e.g. a resolver: TFX goes on without its output (a gate without baseline)
        print(f"  FAILED: {', '.join(failed)} (see the errors logged above)")
    states = summary.states
    _print_counts("ingest", summary.ingest_counts, states.get("ImageExampleGen"), print)
    _print_counts("bottleneck cache", summary.cache_counts, states.get("BottleneckCache"), print)
    selection = summary.cut_selection if "Trainer" in states else None
    if selection is not None:
        print(
            f"  cut: {selection['chosen']} (cut_layer auto: mean +- std of the head's "
            f"{selection['folds']}-fold accuracy on the train split, {selection['seconds']:.0f}s)"
        )
        for candidate in selection["candidates"]:
            mark = "  <- chosen" if candidate["layer"] == selection["chosen"] else ""
            print(
                f"    {candidate['layer']:<24} {candidate['dim']:>6}-d  "
                f"{candidate['mean']:.3f} +- {candidate['std']:.3f}{mark}"
            )
    depth = summary.fine_tune_selection if "Trainer" in states else None
    if depth is not None:
        from pipeline.run_summary import fine_tune_line

        print(fine_tune_line(depth))
    verdict = summary.evaluation_verdict()
    if verdict is not None:
        print(f"  evaluation: {verdict}")
    serving = summary.serving_verdict()
    if serving is not None:
        print(f"  serving check: {serving}")
    pushed = summary.push_verdict()
    if pushed is not None:
        print(f"  pushed: {pushed}")
    print(f"  artifacts under {config.pipeline_dir}")
    return 1 if failed else 0


def _step_message(error: Exception) -> str:
    from components.anomaly_gate.gate import DataAnomalyError

    if isinstance(error, DataAnomalyError):
        return f"the data check stopped the run: {error}"
    if isinstance(error, (ValueError, FileNotFoundError)):  # our steps name the fix
        return f"a pipeline step failed: {error}"
    logging.error("the pipeline failed", exc_info=error)  # a bug report needs the trace
    return f"a pipeline step failed: {type(error).__name__}: {error} (traceback logged above)"


def _print_counts(
    what: str,
    counts: dict[str, int],
    state: str | None,
    print=print,  # noqa: A002
) -> None:
    if not counts:
        return
    text = ", ".join(f"{k} {v}" for k, v in counts.items())
    if state == "CACHED":  # the counts are those of the run that made the artifact
        text = f"nothing done this run (TFX's cache; when it ran: {text})"
    print(f"  {what}: {text}")


def _cmd_runs(args: argparse.Namespace) -> None:
    """One line per past run: id, start, duration, state, eval accuracy, pushed version."""
    from pipeline import config as config_lib
    from pipeline import run_summary

    config = config_lib.load_config(args.config)
    if not os.path.exists(config.metadata_file):
        raise FileNotFoundError(
            f"no runs yet: {config.metadata_file} does not exist (tfx-transfer run first)"
        )
    found = run_summary.runs(config.metadata_file, config.pipeline_name, newest=args.last)
    print(f"{'run':<28} {'started':<19} {'took':>6}  {'state':<8} {'eval acc':>8}  pushed")
    for run in found:
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(run.started))
        accuracy = run.eval_accuracy
        shown = f"{accuracy:.4f}" if accuracy is not None else "-"
        pushed = run.pushed_version or "-"
        if run.pushed_version and run.states.get("Pusher") == "CACHED":
            pushed += " (unchanged)"
        took = f"{run.finished - run.started:.0f}s"
        print(f"{run.run_id:<28} {started:<19} {took:>6}  {run.state:<8} {shown:>8}  {pushed}")
    if not found:
        print(f"no run of {config.pipeline_name} in {config.metadata_file}")


def _cmd_report(args: argparse.Namespace) -> None:
    """Writes the HTML report of one run (the newest, or --run) and prints its path."""
    from pipeline import config as config_lib
    from pipeline import report, run_summary

    config = config_lib.load_config(args.config)
    if not os.path.exists(config.metadata_file):
        raise FileNotFoundError(
            f"no runs yet: {config.metadata_file} does not exist (tfx-transfer run first)"
        )
    found = run_summary.runs(config.metadata_file, config.pipeline_name)
    chosen = [r for r in found if r.run_id == args.run] if args.run else found[-1:]
    if not chosen:
        recent = ", ".join(r.run_id for r in found[-5:]) or "none"
        what = f"run {args.run!r}" if args.run else "a run"
        raise ValueError(
            f"no {what} of {config.pipeline_name} in {config.metadata_file} "
            f"(the newest: {recent}; `tfx-transfer runs` lists them)"
        )
    path = report.write_report(config, chosen[-1], out=args.out)
    print(f"report of run {chosen[-1].run_id} written to {path}")


def _cmd_predict(args: argparse.Namespace) -> None:
    from pipeline import config as config_lib
    from pipeline import predict

    if args.server:
        name = args.model_name or config_lib.load_config(args.config).serving.model_name
        if args.protocol == "rest":  # ServerError (exit status 5) when it fails
            results = predict.predict_rest(args.server, name, args.images, args.top_k)
        else:
            results = predict.predict_grpc(args.server, name, args.images, args.top_k)
    else:
        model_dir = args.model_dir
        if not model_dir:
            serving = config_lib.load_config(args.config).serving
            model_dir = predict.latest_version_dir(serving.root, serving.model_name)
        import tensorflow as tf

        try:
            results = predict.predict_local(model_dir, args.images, args.top_k)
        except tf.errors.InvalidArgumentError as e:
            raise ValueError(f"one of {args.images} is not a decodable image: {e.message}") from e
    for result in results:
        print(result.format())


def _cmd_compile(args: argparse.Namespace) -> None:
    from kubeflow import compile as kubeflow_compile
    from kubeflow import config as kubeflow_config

    deployment = kubeflow_config.load_config(args.config)
    compiled = kubeflow_compile.compile_pipeline(deployment, args.output or None)
    steps = len(compiled.pipeline_spec["root"]["dag"]["tasks"])
    print(f"compiled {steps} steps to {compiled.path} (image {deployment.image})")
    print(f"  submit: tfx-transfer submit --package {compiled.path}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tfx-transfer", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo-data", help="write the demo image folders (sklearn digits)")
    demo.add_argument("--out", default="demo_data")
    demo.add_argument("--target-per-class", type=int, default=50)
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(func=_cmd_demo_data)

    run = sub.add_parser("run", help="run the pipeline locally (LocalDagRunner)")
    run.add_argument("--config", default=DEFAULT_CONFIG)
    run.add_argument(
        "--wait", action="store_true", help="wait for a run holding the pipeline root to end"
    )
    run.add_argument(
        "--verbose",
        action="store_true",
        help="stream every log line (absl, Beam, TensorFlow, Keras) instead of one line per step",
    )
    run.set_defaults(func=_cmd_run)

    schema = sub.add_parser("schema", help="write the tf.Example schema for an image folder")
    schema.add_argument("--data-root", required=True)
    schema.add_argument("--out", required=True)
    schema.add_argument("--unlabelled", action="store_true")
    schema.set_defaults(func=_cmd_schema)

    past = sub.add_parser("runs", help="past local runs of the pipeline, one line each")
    past.add_argument("--config", default=DEFAULT_CONFIG)
    past.add_argument("--last", type=int, default=20, help="how many of the newest runs")
    past.set_defaults(func=_cmd_runs)

    rep = sub.add_parser("report", help="write a run's report: one self-contained HTML file")
    rep.add_argument("--config", default=DEFAULT_CONFIG)
    rep.add_argument(
        "--run", default="", help="a run id (`tfx-transfer runs`); default: the newest"
    )
    rep.add_argument(
        "--out", default="", help="default <pipeline_root>/reports/<pipeline>-<run id>.html"
    )
    rep.set_defaults(func=_cmd_report)

    pred = sub.add_parser("predict", help="top-k classes of images from the pushed model")
    pred.add_argument("images", nargs="+", help="image files (any accepted format and size)")
    pred.add_argument("--config", default=DEFAULT_CONFIG, help="finds serving.root/model_name")
    pred.add_argument("--model-dir", default="", help="a SavedModel dir instead of the config")
    pred.add_argument("--server", default="", help="TF Serving: host:port (gRPC) or URL (REST)")
    pred.add_argument("--protocol", choices=("grpc", "rest"), default="grpc")
    pred.add_argument("--model-name", default="", help="the served name (default: config's)")
    pred.add_argument("--top-k", type=int, default=3)
    pred.set_defaults(func=_cmd_predict)

    comp = sub.add_parser("compile", help="compile for Kubeflow Pipelines (KFP v2 YAML)")
    comp.add_argument("--config", default="kubeflow/configs/demo.yaml", help="a deployment config")
    comp.add_argument("--output", default="", help="default build/kubeflow/<name>.yaml")
    comp.set_defaults(func=_cmd_compile)

    # Kubeflow's own command lines, under one name; their arguments pass through.
    for name, help_ in (
        ("submit", "submit one run of a compiled pipeline to Kubeflow Pipelines"),
        ("schedule", "create or replace a recurring run on Kubeflow Pipelines"),
        ("serving-manifests", "render TF Serving's Kubernetes manifests for the pushed model"),
        ("kfp-local", "run a compiled Kubeflow pipeline here, step by step, as KFP's launcher"),
    ):
        passthrough = sub.add_parser(name, help=help_, add_help=False)
        passthrough.add_argument("arguments", nargs=argparse.REMAINDER)
        passthrough.set_defaults(func=_cmd_kubeflow)
    return parser


def quiet_third_party() -> None:
    """Known third-party noise, hidden at command-line entry points only (this CLI and
    the benches' mains; components never do this, so a Kubeflow pod keeps its logs)."""
    # TensorFlow's C++ start-up lines (CUDA probing, CPU features, TensorRT, and the
    # "Unable to register cuFFT factory" ERROR lines TF 2.16 prints at every import):
    # they describe how TensorFlow was built, not the user's data or model; an op that
    # fails still raises a Python error with its message.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    # TensorFlow's Python deprecation notices (e.g. the TF1 SavedModel loader that the
    # TF Serving check uses on purpose).
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    # google-api-core's FutureWarning, once per Google package, that Python 3.10 is past
    # its support: about the interpreter this project pins, nothing a user can act on.
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"google\.")
    # absl's INFO lines (e.g. "MetadataStore with DB connection initialized").
    from absl import logging as absl_logging

    absl_logging.set_verbosity(absl_logging.WARNING)


def _cmd_kubeflow(args: argparse.Namespace) -> int:
    """submit / schedule / serving-manifests / kfp-local: the kubeflow/ command lines."""
    if args.command == "kfp-local":
        from kubeflow import local_run

        return local_run.main(args.arguments, prog="tfx-transfer kfp-local")
    if args.command == "serving-manifests":
        from kubeflow.serving import render

        return render.main(args.arguments, prog="tfx-transfer serving-manifests")
    from kubeflow import submit

    verb = "run" if args.command == "submit" else "schedule"
    return submit.main([verb, *args.arguments], prog=f"tfx-transfer {args.command}")


def main(argv: list[str] | None = None) -> int:
    args, unknown = build_parser().parse_known_args(argv)
    if unknown and args.command not in ("submit", "schedule", "serving-manifests", "kfp-local"):
        build_parser().parse_args(argv)  # argparse's own error for unknown arguments
    if unknown:
        args.arguments = [*unknown, *args.arguments]
    if args.command != "run":  # `run` sends these to its log file instead
        quiet_third_party()
    level = logging.INFO if args.command == "run" else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    statuses = ((RunInProgressError, 3), (StepFailedError, 4), (ServerError, 5))
    try:
        status = args.func(args)
    except _USER_ERRORS as e:
        print(f"tfx-transfer {args.command}: error: {e}", file=sys.stderr)
        return 2
    except tuple(kind for kind, _ in statuses) as e:
        print(f"tfx-transfer {args.command}: error: {e}", file=sys.stderr)
        return next(code for kind, code in statuses if isinstance(e, kind))
    return status or 0


if __name__ == "__main__":
    sys.exit(main())
