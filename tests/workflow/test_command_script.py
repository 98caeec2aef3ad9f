"""workflow/scripts/modaltune_command.py: a `modaltune` command run by a `script:` rule, its output in the rule's log."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from modaltune.features import read_manifest, write_features

SCRIPT = Path(__file__).resolve().parents[2] / "workflow" / "scripts" / "modaltune_command.py"
SNAKEFILE = """
rule manifest:
    input: {features!r}
    output: "manifest.parquet"
    log: "manifest.log"
    params: argv=lambda wildcards, input, output: ["feature-manifest", "--features", *input, "--encoder", "tiny", "--out", output[0]]
    script: {script!r}
"""

pytestmark = pytest.mark.workflow


def run_manifest_rule(workdir: Path, features: list[str]) -> subprocess.CompletedProcess:
    (workdir / "Snakefile").write_text(SNAKEFILE.format(features=features, script=str(SCRIPT)))
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "1", "--workflow-profile", "none"],
        cwd=workdir, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_the_command_runs_and_logs(tmp_path):
    write_features(tmp_path / "S-1.h5", np.ones((3, 8)), np.zeros((3, 2)), {"encoder": "tiny", "mpp": 0.5,
                                                                            "tile_px_level0": 256})
    run = run_manifest_rule(tmp_path, ["S-1.h5"])
    assert run.returncode == 0, run.stderr[-3000:]
    assert read_manifest(tmp_path / "manifest.parquet")["n_tiles"].to_dict() == {"S-1": 3}
    assert "1 slides, 3 tiles" in (tmp_path / "manifest.log").read_text()


def test_a_failing_command_fails_the_job_and_its_error_is_in_the_log(tmp_path):
    (tmp_path / "broken.h5").write_bytes(b"not hdf5")
    run = run_manifest_rule(tmp_path, ["broken.h5"])
    assert run.returncode != 0
    assert not (tmp_path / "manifest.parquet").exists()
    assert "broken.h5: not a readable HDF5 feature file" in (tmp_path / "manifest.log").read_text()
