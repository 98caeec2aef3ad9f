"""The demo tiling stage through Snakemake, in a temporary working directory, for one small demo site."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from modaltune.config import load
from modaltune.io import read_parquet
from modaltune.synth.cohort import plan_site

REPO = Path(__file__).resolve().parents[2]
SNAKEMAKE = Path(sys.executable).parent / "snakemake"
DEMO_CONFIG = REPO / "config" / "demo.yaml"
SITE = "NSCLC"
# One site, the schema's minimum of patients: about a dozen slides including the empty and the corrupt one; no
# out-of-distribution pairs (the demo config runs NSCLC <-> RCC). A config file replaces the demo config instead of
# being merged over it, so this overlay is passed after demo.yaml.
DEMO_OVERRIDE = {"demo": {"sites": [SITE], "patients_per_site": 10}, "evaluation": {"ood": []}}

pytestmark = pytest.mark.workflow


def _path_without_the_venv() -> str:
    """PATH without the folder of this interpreter (the venv's bin), as for a user who never activated the venv."""
    kept = [
        folder for folder in os.environ.get("PATH", "").split(os.pathsep)
        if folder and Path(folder).resolve() != SNAKEMAKE.parent.resolve()
    ]  # fmt: skip
    return os.pathsep.join(kept)


def _snakemake(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """`.venv/bin/snakemake` called by its path with the venv NOT on PATH: every rule must find the library through
    the workflow's own interpreter ({MODALTUNE} in common.smk), not a `modaltune` command on PATH."""
    path = _path_without_the_venv()
    assert shutil.which("modaltune", path=path) is None, f"a `modaltune` command is on PATH {path}"
    return subprocess.run(
        [str(SNAKEMAKE), "-s", str(REPO / "workflow" / "Snakefile"), *args],
        cwd=cwd,
        env=dict(os.environ, PATH=path),
        capture_output=True,
        text=True,
        timeout=900,
    )


@pytest.fixture(scope="module")
def tiled(tmp_path_factory):
    """A finished tiling run: (working directory, the demo plan of its site)."""
    workdir = tmp_path_factory.mktemp("tiling_run")
    config_file = workdir / "small.yaml"
    config_file.write_text(yaml.safe_dump(DEMO_OVERRIDE))
    run = _snakemake(
        "--directory", str(workdir), "--configfile", str(DEMO_CONFIG), str(config_file), "--cores", "2",
        "results/qc/failed_slides.tsv", "results/qc/tiling_summary.tsv",
        cwd=workdir,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-4000:]
    demo = load([DEMO_CONFIG, config_file])["demo"]
    return workdir, plan_site(SITE, demo)


def test_every_slide_gets_tiles_qc_and_status(tiled):
    workdir, plan = tiled
    kinds = {slide.slide_id: slide.kind for slide in plan.slides}
    assert {"empty", "corrupt", "pen"} <= set(kinds.values())
    for slide, kind in kinds.items():
        tiles, meta = read_parquet(workdir / "results" / "tiles" / f"{slide}.parquet")
        assert (workdir / "results" / "qc" / f"{slide}.png").stat().st_size > 0
        expected = {"corrupt": "failed", "empty": "no_tissue"}.get(kind, "ok")
        assert meta["status"] == expected, slide
        assert (len(tiles) > 0) == (expected == "ok"), slide
        if expected == "ok":
            assert (tiles["x"] % meta["tile_px_level0"] == 0).all()
            assert meta["tile_px_level0"] == {0.25: 512, 0.5: 256}[meta["slide_mpp"]]


def test_failed_slides_table_lists_the_corrupt_and_the_blank_slides(tiled):
    workdir, plan = tiled
    expected = {slide.slide_id: {"corrupt": "failed", "empty": "no tissue"}[slide.kind]
                for slide in plan.slides if slide.kind in ("corrupt", "empty")}  # fmt: skip
    lines = (workdir / "results" / "qc" / "failed_slides.tsv").read_text().splitlines()
    assert lines[0] == "slide\tstatus\treason"
    rows = [line.split("\t") for line in lines[1:]]
    assert {slide: status for slide, status, _ in rows} == expected
    assert all(".svs" in reason for _, status, reason in rows if status == "failed")  # the reason names the file
    empty = next(slide.slide_id for slide in plan.slides if slide.kind == "empty")
    assert "no tile reaches" in (workdir / "results" / "logs" / "tile" / f"{empty}.log").read_text()


def test_rerun_has_nothing_to_do(tiled):
    workdir, _ = tiled
    run = _snakemake(
        "--directory", str(workdir), "--configfile", str(DEMO_CONFIG), str(workdir / "small.yaml"), "--cores", "1",
        "-n",
        "results/qc/failed_slides.tsv", "results/qc/tiling_summary.tsv",
        cwd=workdir,
    )  # fmt: skip
    assert run.returncode == 0 and "Nothing to be done" in run.stdout + run.stderr

