"""The run summary's counts say whether this run did the work or TFX's cache did."""

from pipeline import cli


def test_counts_of_a_cached_component_are_not_reported_as_this_runs_work(capsys):
    counts = {"vectors_computed": 250, "vectors_reused": 0}
    cli._print_counts("bottleneck cache", counts, "COMPLETE")
    cli._print_counts("bottleneck cache", counts, "CACHED")
    cli._print_counts("ingest", {}, "COMPLETE")
    ran, cached = capsys.readouterr().out.splitlines()
    assert ran == "  bottleneck cache: vectors_computed 250, vectors_reused 0"
    assert cached.startswith("  bottleneck cache: nothing done this run (TFX's cache; when it ran")
    assert "vectors_computed 250" in cached
