"""The demo workflow, run once per test session: the tests that inspect its outputs share one finished run."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest
from snakemake_cli import snakemake

# Set to the folder of a finished `make demo`-style run to inspect that run instead of starting a new one.
REUSE = "MODALTUNE_TEST_DEMO_RUN"


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory) -> Path:
    """The working directory of a finished `snakemake --cores 2 all` run of the demo config (several minutes)."""
    if os.environ.get(REUSE):
        workdir = Path(os.environ[REUSE])
        plan = snakemake(workdir, "--dry-run", "all")
        if "Nothing to be done" not in plan.stdout + plan.stderr:
            pytest.fail(f"{REUSE}={workdir}: not a finished demo run of this checkout (`snakemake all` has jobs to do)")
        return workdir
    workdir = tmp_path_factory.mktemp("demo_run")
    # as a user who never activated the venv: every rule must reach the library through the workflow's own
    # interpreter (the shell prefix of common.smk), not through a `modaltune` command on PATH
    path = _path_without(Path(sys.executable).parent)
    assert shutil.which("modaltune", path=path) is None, f"a `modaltune` command is on PATH {path}"
    snakemake(workdir, "--cores", "2", "all", env={"PATH": path}, timeout=3600)
    return workdir


def _path_without(folder: Path) -> str:
    kept = [entry for entry in os.environ.get("PATH", "").split(os.pathsep)
            if entry and Path(entry).resolve() != folder.resolve()]
    return os.pathsep.join(kept)
