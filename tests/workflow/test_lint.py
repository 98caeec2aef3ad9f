"""`snakemake --lint` finds nothing in the whole workflow, for the demo config and for the real-data template."""

import subprocess
import sys

import pytest
from snakemake_cli import SNAKEFILE, TCGA_CONFIG, placeholder_tcga_config


@pytest.mark.parametrize("config", ["demo", "tcga"])
def test_workflow_lints_clean(tmp_path, config):
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(SNAKEFILE), "--directory", str(tmp_path)]
    command += ["--workflow-profile", "none", "--lint"]
    if config == "tcga":  # rules differ by config (demo rules vanish, CONCH inputs appear)
        command += ["--configfile", str(TCGA_CONFIG), str(placeholder_tcga_config(tmp_path / "inputs"))]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"snakemake --lint ({config}) reports:\n{result.stdout}{result.stderr}"
