"""Whole-pipeline wall time: a first run and fully cached reruns, broken down by step.

Each run is `python -m pipeline.cli run --config C` in a fresh process, as a user (or a
scheduler) starts it, on a copy of the config whose pipeline_root and serving root are
in a temporary folder (so the first run really is a first run, and the user's own runs
are not touched). The bench measures, side by side in one invocation:

- per run: the wall time of the whole process and its CPU time (user + system, the
  process and its children), the lines it printed, and the span of the pipeline itself
  (ML Metadata: the run's first execution created to its last one updated);
- per step: the seconds ML Metadata recorded for each node's execution
  (``RunSummary.seconds``), for the first run and the median of the cached reruns;
- the fixed cost of a process: a fresh interpreter making the imports the run path
  makes and nothing else (``python -c "import ..."``), right after each run so that both
  see the same load, so that process wall = imports + the pipeline's span + the rest
  (config load and preflight checks, the runner's set-up, the summary and the report).

Target (issue 17): a fully cached rerun of the demo under 15 s wall.

    PYTHONPATH=. .venv/bin/python -m bench.pipeline_bench --config pipeline/configs/photos.yaml \
        [--first-runs 1] [--cached-runs 3] [--out results.md]

Run it from the repository (the config's relative paths resolve against the working
directory, as for `tfx-transfer run`), after `tfx-transfer demo-data`.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CACHED_TARGET_SECONDS = 15.0
# What `tfx-transfer run` imports before its first step (pipeline/cli.py's _run and
# pipeline/local_runner.py's run_local), timed alone in a fresh interpreter.
RUN_PATH_IMPORTS = (
    "import pipeline.cli, pipeline.config, pipeline.preflight, pipeline.dag, "
    "pipeline.local_runner, pipeline.run_summary, pipeline.report; "
    "from tfx.orchestration.local.local_dag_runner import LocalDagRunner"
)


def bench_config(config_path: str, work: str) -> str:
    """A copy of the config with everything a run writes under `work`: the pipeline
    root, and with it ML Metadata's file and the bottleneck cache (a config's own
    metadata_path or cache.dir would make the "first" run reuse the user's), and the
    serving root."""
    with open(config_path, encoding="utf-8") as f:
        raw = yaml.safe_load(f)
    raw["pipeline_root"] = os.path.join(work, "runs")
    raw.pop("metadata_path", None)
    if isinstance(raw.get("cache"), dict):
        raw["cache"].pop("dir", None)
    raw.setdefault("serving", {})["root"] = os.path.join(work, "serving")
    path = os.path.join(work, "config.yaml")
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(raw, f, sort_keys=False)
    return path


def child_env() -> dict[str, str]:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (REPO, env.get("PYTHONPATH")) if p)
    return env


def timed(command: list[str]) -> tuple[float, float, subprocess.CompletedProcess]:
    """(wall seconds, CPU seconds of the children, the finished process)."""
    before = os.times()
    start = time.perf_counter()
    done = subprocess.run(command, cwd=os.getcwd(), env=child_env(), capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = os.times()
    cpu = (after.children_user - before.children_user) + (
        after.children_system - before.children_system
    )
    return wall, cpu, done


def interpreter_seconds(repeats: int = 3) -> float:
    """Median wall of a bare interpreter start."""
    return statistics.median(timed([sys.executable, "-c", "pass"])[0] for _ in range(repeats))


def import_probe() -> tuple[float, float]:
    """(wall, CPU) of a fresh interpreter making the run path's imports and nothing else."""
    wall, cpu, done = timed([sys.executable, "-c", RUN_PATH_IMPORTS])
    if done.returncode:
        raise RuntimeError(f"the run path's imports failed:\n{done.stderr[-2000:]}")
    return wall, cpu


def one_run(config: str, metadata_file: str, pipeline_name: str) -> dict:
    """Runs the pipeline in a fresh process; its times and ML Metadata's per-step seconds."""
    from pipeline.run_summary import latest_run

    load = os.getloadavg()[0]
    wall, cpu, done = timed([sys.executable, "-m", "pipeline.cli", "run", "--config", config])
    if done.returncode:
        raise RuntimeError(
            f"tfx-transfer run failed (exit {done.returncode}):\n{done.stdout[-3000:]}"
            f"\n{done.stderr[-3000:]}"
        )
    summary = latest_run(metadata_file, pipeline_name)
    order = sorted(summary.states, key=lambda node: summary.times.get(node, (0.0, 0.0))[0])
    steps = {node: summary.seconds(node) or 0.0 for node in order}  # in the order they ran
    # Right after the run, so that both see the same machine (it is shared and noisy).
    imports_wall, imports_cpu = import_probe()
    return {
        "imports_wall": imports_wall,
        "imports_cpu": imports_cpu,
        "wall": wall,
        "cpu": cpu,
        "lines": len(done.stdout.splitlines()),
        "span": max(0.0, summary.finished - summary.started),
        "steps": steps,
        "states": dict(summary.states),
        "load": load,
    }


def spread(values: list[float], fmt: str = "{:.1f}") -> str:
    """'median [min - max]' (just the value for one)."""
    if len(values) == 1:
        return fmt.format(values[0])
    low, mid, high = min(values), statistics.median(values), max(values)
    return f"{fmt.format(mid)} [{fmt.format(low)} - {fmt.format(high)}]"


def format_report(first: list[dict], cached: list[dict], interpreter: float, header: str) -> str:
    lines = [header, ""]
    lines += [
        "| run | wall, s | CPU, s | pipeline span, s | imports: wall (CPU), s | rest, s | lines |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, group in (("first run", first), ("fully cached rerun", cached)):
        if not group:
            continue
        rest = [r["wall"] - r["span"] - r["imports_wall"] for r in group]
        imports_cpu = spread([r["imports_cpu"] for r in group])
        imports = f"{spread([r['imports_wall'] for r in group])} ({imports_cpu})"
        lines.append(
            f"| {name} (x{len(group)}) | {spread([r['wall'] for r in group])} | "
            f"{spread([r['cpu'] for r in group])} | {spread([r['span'] for r in group])} | "
            f"{imports} | {spread(rest)} | "
            f"{spread([float(r['lines']) for r in group], '{:.0f}')} |"
        )
    if cached:
        walls = [r["wall"] for r in cached]
        worst = max(walls)
        verdict = "PASS" if worst < CACHED_TARGET_SECONDS else "MISS"
        lines += [
            "",
            f"fully cached rerun: {statistics.median(walls):.1f} s median, {worst:.1f} s worst "
            f"of {len(walls)}; target < {CACHED_TARGET_SECONDS:.0f} s: {verdict}",
        ]
    lines += [
        f"interpreter start alone: {interpreter:.2f} s; imports: a fresh interpreter making the "
        "run path's imports and nothing else, right after each run; rest = wall - span - imports",
        "",
        "| step | first run, s | fully cached rerun, s |",
        "|---|---|---|",
    ]
    nodes = list((first or cached)[0]["steps"])
    for node in nodes:
        firsts = [r["steps"].get(node, 0.0) for r in first]
        caches = [r["steps"].get(node, 0.0) for r in cached]
        state = cached[0]["states"].get(node, "").lower() if cached else ""
        again = f"{spread(caches, '{:.2f}')} ({state})" if caches else "-"
        lines.append(f"| {node} | {spread(firsts) if firsts else '-'} | {again} |")
    loads = [r["load"] for r in first + cached]
    lines += ["", f"1-minute load average at the runs' starts: {min(loads):.2f}-{max(loads):.2f}"]
    return "\n".join(lines)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="pipeline/configs/photos.yaml")
    parser.add_argument(
        "--first-runs", type=int, default=1, help="first runs, each on a fresh root (default 1)"
    )
    parser.add_argument(
        "--cached-runs", type=int, default=3, help="fully cached reruns after each first run"
    )
    parser.add_argument("--out", help="also write the report (markdown) here")
    parser.add_argument(
        "--workdir", help="keep the runs in a new folder here (default: a temp dir, removed)"
    )
    args = parser.parse_args(argv)
    if args.first_runs < 1 or args.cached_runs < 0:
        parser.error("--first-runs must be at least 1 and --cached-runs at least 0")
    if not os.path.isfile(args.config):
        parser.error(f"--config {args.config!r} is not a file")
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    from pipeline import config as config_lib

    started = time.time()
    interpreter = interpreter_seconds()
    first, cached = [], []
    with contextlib.ExitStack() as stack:
        if args.workdir:  # kept: a new folder under it
            os.makedirs(args.workdir, exist_ok=True)
            tmp = tempfile.mkdtemp(prefix="pipeline_bench_", dir=args.workdir)
        else:
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="pipeline_bench_"))
        for i in range(args.first_runs):
            work = os.path.join(tmp, f"root{i}")
            os.makedirs(work)
            config_path = bench_config(args.config, work)
            config = config_lib.load_config(config_path)
            where = (config_path, config.metadata_file, config.pipeline_name)
            first.append(one_run(*where))
            print(f"first run {i + 1}: {first[-1]['wall']:.1f} s wall", flush=True)
            for j in range(args.cached_runs):
                cached.append(one_run(*where))
                print(f"  cached rerun {j + 1}: {cached[-1]['wall']:.1f} s wall", flush=True)
    header = (
        f"Whole-pipeline benchmark ({args.config}), "
        f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC "
        f"({platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}); "
        f"bench wall time {time.time() - started:.0f} s"
    )
    report = format_report(first, cached, interpreter, header)
    print(report)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(report + "\n")


if __name__ == "__main__":
    main()
