"""bench/pipeline_bench.py: its config copy, the fixed-cost probe and the report.

The bench's runs themselves are whole pipeline runs (minutes); here its parts are run
on small inputs: the config copy is loaded by the real config loader, the import probe
really starts interpreters, and the report is checked on figures whose verdict is known.
"""

import os

import pytest
import yaml

from bench import pipeline_bench
from pipeline.config import config_from_dict

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(wall, span, steps, states, lines=20, load=1.0):
    return {
        "imports_wall": 5.0,
        "imports_cpu": 4.5,
        "wall": wall,
        "cpu": wall * 0.8,
        "lines": lines,
        "span": span,
        "steps": steps,
        "states": states,
        "load": load,
    }


def test_the_config_copy_writes_nothing_outside_its_folder(tmp_path):
    source = os.path.join(REPO, "pipeline", "configs", "photos.yaml")
    with open(source, encoding="utf-8") as f:
        user = yaml.safe_load(f)
    user["metadata_path"] = "/home/me/metadata.sqlite"  # a user's own store and cache
    user["cache"]["dir"] = "/home/me/cache"
    (tmp_path / "user.yaml").write_text(yaml.safe_dump(user))
    copy = pipeline_bench.bench_config(str(tmp_path / "user.yaml"), str(tmp_path))
    with open(copy, encoding="utf-8") as f:
        config = config_from_dict(yaml.safe_load(f))
    assert config.metadata_file == str(tmp_path / "runs" / "metadata.sqlite")
    assert config.cache_dir == str(tmp_path / "runs" / "bottleneck_cache")
    assert config.cache.batch_size == user["cache"]["batch_size"]


def test_the_config_copy_moves_only_the_roots(tmp_path):
    source = os.path.join(REPO, "pipeline", "configs", "photos.yaml")
    copy = pipeline_bench.bench_config(source, str(tmp_path))
    with open(source, encoding="utf-8") as f:
        before = yaml.safe_load(f)
    with open(copy, encoding="utf-8") as f:
        after = yaml.safe_load(f)
    assert after["pipeline_root"] == str(tmp_path / "runs")
    assert after["serving"]["root"] == str(tmp_path / "serving")
    for key in ("data", "image", "base_model", "training", "schema"):
        assert after[key] == before[key]


def test_import_probe_times_a_real_interpreter_start():
    wall, cpu = pipeline_bench.import_probe()
    assert 0 < pipeline_bench.interpreter_seconds(repeats=1) < wall
    assert cpu > 0


@pytest.mark.parametrize(("worst", "verdict"), [(9.0, "PASS"), (15.5, "MISS")])
def test_report_verdict_and_per_step_rows(worst, verdict):
    steps = {"ImageExampleGen": 2.5, "Trainer": 30.0}
    first = [_run(80.0, 70.0, steps, {"ImageExampleGen": "COMPLETE", "Trainer": "COMPLETE"})]
    cached_steps = {"ImageExampleGen": 0.01, "Trainer": 0.02}
    states = {"ImageExampleGen": "CACHED", "Trainer": "CACHED"}
    cached = [_run(w, 1.0, cached_steps, states) for w in (8.0, worst, 8.5)]
    text = pipeline_bench.format_report(first, cached, 0.05, "header")
    assert f"target < 15 s: {verdict}" in text
    assert f"{worst:.1f} s worst of 3" in text
    assert "| Trainer | 30.0 | 0.02 [0.02 - 0.02] (cached) |" in text
    # rest = wall - pipeline span - imports: first run 80 - 70 - 5
    assert "| first run (x1) | 80.0 | 64.0 | 70.0 | 5.0 (4.5) | 5.0 | 20 |" in text
