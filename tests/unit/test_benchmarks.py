"""benchmarks/gradients.py: one table row per parameter group and loss reduction, from real backward passes."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_gradient_benchmark_prints_every_group_and_sum_x10_is_thirty_times_the_mean():
    command = [sys.executable, str(REPO / "benchmarks" / "gradients.py"), "--config", str(REPO / "config" / "demo.yaml"),
               "--pathways", "60", "--genes", "300", "--tiles", "16", "--patients", "1", "--threads", "1"]
    output = subprocess.run(command, capture_output=True, text=True, check=True, cwd=REPO).stdout
    rows = re.findall(r"^(mean|sum_x10)\s+(omics encoder|adapter|prompts|head)\s+([\d,]+)\s+(\S+)\s+([\d.]+)%\s+"
                      r"([\d.]+)%\s+([\d.]+)%$", output, flags=re.M)
    medians = {(reduction, group): float(median) for reduction, group, _, median, *_ in rows}
    assert len(rows) == 8 and len(medians) == 8, output
    # With 3 tasks and temperature 1, 10 x sum = 30 x mean: the same dropout masks give gradients exactly 30x larger.
    for group in ("omics encoder", "adapter", "prompts", "head"):
        assert medians[("sum_x10", group)] / medians[("mean", group)] == pytest.approx(30, rel=0.01), group
    for reduction, group, _, _, zero, below_large, below_small in rows:
        assert float(zero) <= float(below_small) <= float(below_large) <= 100, (reduction, group)
