"""The demo workflow, run once per test session: the tests that inspect its outputs share one finished run."""

from __future__ import annotations

from pathlib import Path

import pytest
from snakemake_cli import snakemake


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory) -> Path:
    """The working directory of a finished `snakemake --cores 2 all` run of the demo config (several minutes)."""
    workdir = tmp_path_factory.mktemp("demo_run")
    snakemake(workdir, "--cores", "2", "all", timeout=3600)
    return workdir
