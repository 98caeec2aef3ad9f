"""benchmarks/gpu_check.py at toy sizes on the CPU: every section runs and the JSON holds what the GPU run reports."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))

from features import bf16_peak_entry  # noqa: E402


@pytest.mark.parametrize(
    ("name", "expected"),
    [("NVIDIA H200", ("H200", 989.0)), ("NVIDIA H100 80GB HBM3", ("H100", 989.0)),
     ("NVIDIA H100 PCIe", ("H100 PCIe", 756.0)), ("Tesla T4", None)],
)
def test_bf16_peak_table_is_keyed_by_device_name(name, expected):
    assert bf16_peak_entry(name) == expected


@pytest.fixture(scope="module")
def toy_check(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu_check") / "toy.json"
    subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--toy", "--out", str(out)],
                   check=True, capture_output=True, text=True, timeout=600)
    return json.loads(out.read_text())


def test_toy_run_measures_the_tile_encoder_sweep(toy_check):
    assert toy_check["mode"] == "toy" and toy_check["device"] == "cpu"
    assert toy_check["bf16_peak_tflops"] == "unknown"
    tiles = toy_check["tile_encoder"]
    assert tiles["weights"].startswith("random") and tiles["architecture"] == "vit_giant_patch14_dinov2"
    assert tiles["gflop_per_tile"] > 0
    assert [row["batch"] for row in tiles["sweep"]] == toy_check["sizes"]["batches"]
    for row in tiles["sweep"]:
        assert row["model_only_tiles_per_s"] > 0 and row["pipeline_tiles_per_s"] > 0
        assert row["pipeline_over_model"] == pytest.approx(
            row["pipeline_tiles_per_s"] / row["model_only_tiles_per_s"], rel=0.05)


def test_toy_run_times_longnet_and_the_training_steps(toy_check):
    runs = toy_check["longnet"]["runs"]
    assert [run["tiles"] for run in runs] == toy_check["sizes"]["longnet_tiles"]
    assert all(run["forward_backward_s"] > 0 for run in runs) and toy_check["longnet"]["checkpointing"]
    assert toy_check["modaltune_step"]["step_s"] > 0
    assert toy_check["modaltune_step"]["tiles"] == toy_check["sizes"]["step_tiles"]
    baselines = toy_check["baseline_steps"]
    if importlib.util.find_spec("modaltune.baselines") is None:
        assert "modaltune.baselines is not importable" in baselines["skipped"]
    else:
        from modaltune.baselines import BASELINES

        assert set(baselines["models"]) == set(BASELINES)
        assert all(step["step_s"] > 0 for step in baselines["models"].values())


def test_toy_run_reports_the_attention_kernels(toy_check):
    flash = toy_check["flash_attention"]
    # on the CPU PyTorch's flash kernel serves both encoders' attention
    assert "aten::_scaled_dot_product_flash_attention_for_cpu" in flash["attention_ops_and_kernels"]["longnet"]
    assert flash["flash_used"] == {"longnet": True, "tile_encoder": True}
    assert set(toy_check["sections_seconds"]) == {"tile_encoder", "flash_attention", "longnet", "modaltune_step",
                                                  "baseline_steps"}
