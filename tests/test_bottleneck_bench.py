"""bench/bottleneck_bench.py: its options and the heavy-base path (figure 2 on VGG16).

Not a timed test: the run uses 10 images at 32x32 only to check that the path runs
end to end and reports what docs/PERFORMANCE.md quotes.
"""

import re

import pytest

from bench import bottleneck_bench as bench


def test_defaults_run_both_bases_with_the_demo_cut_and_size():
    args = bench.parse_args([])
    assert (args.base, args.size, args.images) == ("both", 224, 256)
    assert (args.vgg16_sizes, args.vgg16_cuts) == ([96], ["block4_pool"])


def test_vgg16_lists_are_parsed_and_checked():
    args = bench.parse_args(["--vgg16-sizes", "128,224", "--vgg16-cuts", "block4_pool,block5_pool"])
    assert (args.vgg16_sizes, args.vgg16_cuts) == ([128, 224], ["block4_pool", "block5_pool"])
    for argv in (
        ["--vgg16-sizes", "16"],  # below VGG16's least input
        ["--vgg16-sizes", "large"],
        ["--vgg16-cuts", "block4_conv3"],
        ["--base", "resnet50"],
    ):
        with pytest.raises(SystemExit):
            bench.parse_args(argv)


def test_vgg16_figure_2_runs_and_reports_break_even(tmp_path, capsys):
    out = tmp_path / "snippet.md"
    argv = ["--base", "vgg16", "--images", "10", "--vgg16-sizes", "32", "--out", str(out)]
    bench.main([*argv, "--workdir", str(tmp_path / "work")])
    report = out.read_text()
    assert report in capsys.readouterr().out
    assert "| # | figure |" not in report  # figures 1, 3, 4 are MobileNetV2's only
    row = re.search(r"^\| VGG16 \| 32x32 \| block4_pool \(512-d\) \|(.*)\|$", report, re.M)
    assert row, report
    cells = [cell.strip() for cell in row.group(1).split("|")]
    assert cells[0].endswith(", 10 images")  # the cache build covers both splits
    wall, cpu = re.fullmatch(r"(-?[\d.]+) \((-?[\d.]+)\)", cells[-1]).groups()
    assert float(wall) > 0 and float(cpu) > 0  # break-even epochs
    assert "load average (1, 5, 15 min)" in report
    # Figure 5: the limit and the cold job in fresh processes at 1x and 4x, memory.
    row = re.search(r"^\| VGG16 \| 32x32 \| block4_pool \| ([\d.]+) img/s \|(.*)\|$", report, re.M)
    assert row and float(row.group(1)) > 0, report
    cells = [cell.strip() for cell in row.group(2).split("|")]
    assert re.fullmatch(r"[\d.]+ \([\d.]+\)", cells[0])  # decode + forward (/ limit)
    assert cells[1].endswith(", 10 images") and cells[2].endswith(", 40 images")
    ratios = [float(re.search(r"\(([\d.]+)\)", cell).group(1)) for cell in cells[:3]]
    assert all(0 < ratio < 10 for ratio in ratios)  # img/s over the limit
    assert re.fullmatch(r"(PASS|MISS) / (PASS|MISS) / (PASS|MISS)", cells[-1])


def test_demo_option_names_a_folder():
    assert bench.parse_args(["--demo", "demo_data/photos"]).demo == "demo_data/photos"
    assert bench.parse_args([]).demo is None
