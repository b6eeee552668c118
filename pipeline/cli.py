"""The `tfx-transfer` command line.

    tfx-transfer demo-data --out demo_data      write the bundled demo image folders
    tfx-transfer run --config CONFIG.yaml       run the pipeline locally
    tfx-transfer schema --data-root DIR --out schemas/NAME.pbtxt
                                                write the schema for a dataset

Config errors and bad input exit with status 2 and one clear message, not a traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time

from pipeline import config as config_lib

DEFAULT_CONFIG = "pipeline/configs/demo.yaml"


def _cmd_demo_data(args: argparse.Namespace) -> None:
    from pipeline.demo_data import write_demo_data

    counts = write_demo_data(args.out, target_per_class=args.target_per_class, seed=args.seed)
    print(f"demo data written to {args.out}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))


def _cmd_schema(args: argparse.Namespace) -> None:
    from pipeline import schema

    classes = None if args.unlabelled else schema.class_names_in(args.data_root)
    if classes is not None and not classes:
        raise ValueError(f"{args.data_root!r} has no class sub-folders; use --unlabelled")
    schema.write_schema(schema.build_schema(classes), args.out)
    print(f"schema for {len(classes or [])} classes written to {args.out}; review and commit it")


def _cmd_run(args: argparse.Namespace) -> None:
    config = config_lib.load_config(args.config)
    from pipeline.local_runner import run_local
    from pipeline.run_summary import latest_run

    start = time.time()
    run_local(config)
    summary = latest_run(config.metadata_file, config.pipeline_name)
    print(f"\npipeline {config.pipeline_name} finished in {time.time() - start:.0f}s")
    print(f"  ran:    {', '.join(summary.ran()) or '-'}")
    print(f"  cached: {', '.join(summary.cached()) or '-'}")
    if summary.ingest_counts:
        print("  ingest: " + ", ".join(f"{k} {v}" for k, v in summary.ingest_counts.items()))
    print(f"  artifacts under {config.pipeline_dir}")


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
    run.set_defaults(func=_cmd_run)

    schema = sub.add_parser("schema", help="write the tf.Example schema for an image folder")
    schema.add_argument("--data-root", required=True)
    schema.add_argument("--out", required=True)
    schema.add_argument("--unlabelled", action="store_true")
    schema.set_defaults(func=_cmd_schema)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        args.func(args)
    except (config_lib.ConfigError, FileNotFoundError, FileExistsError, ValueError) as e:
        print(f"tfx-transfer {args.command}: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
