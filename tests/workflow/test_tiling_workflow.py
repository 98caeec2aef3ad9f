"""The demo tiling stage through Snakemake, in a temporary working directory, for one small demo site."""

from __future__ import annotations

import os
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
SITE = "NSCLC"
# One site, the schema's minimum of patients: about a dozen slides including the empty and the corrupt one.
# one site: no out-of-distribution pairs (the demo config runs NSCLC <-> RCC)
DEMO_OVERRIDE = {"demo": {"sites": [SITE], "patients_per_site": 10}, "evaluation": {"ood": []}}

pytestmark = pytest.mark.workflow


def _snakemake(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{SNAKEMAKE.parent}{os.pathsep}{os.environ['PATH']}")
    return subprocess.run(
        [str(SNAKEMAKE), "-s", str(REPO / "workflow" / "Snakefile"), *args],
        cwd=cwd,
        env=env,
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
        "--directory", str(workdir), "--configfile", str(config_file), "--cores", "2",
        "results/qc/failed_slides.tsv", "results/qc/tiling_summary.tsv",
        cwd=workdir,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-4000:]
    demo = load([REPO / "config" / "demo.yaml", config_file])["demo"]
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


def test_failed_slides_table_lists_only_the_corrupt_slide(tiled):
    workdir, plan = tiled
    corrupt = sorted(slide.slide_id for slide in plan.slides if slide.kind == "corrupt")
    lines = (workdir / "results" / "qc" / "failed_slides.tsv").read_text().splitlines()
    assert lines[0] == "slide\treason"
    assert sorted(line.split("\t")[0] for line in lines[1:]) == corrupt
    assert all(".svs" in line.split("\t")[1] for line in lines[1:])  # the reason names the file
    empty = next(slide.slide_id for slide in plan.slides if slide.kind == "empty")
    assert "no tile reaches" in (workdir / "results" / "logs" / "tile" / f"{empty}.log").read_text()


def test_rerun_has_nothing_to_do(tiled):
    workdir, _ = tiled
    run = _snakemake(
        "--directory", str(workdir), "--configfile", str(workdir / "small.yaml"), "--cores", "1", "-n",
        "results/qc/failed_slides.tsv", "results/qc/tiling_summary.tsv",
        cwd=workdir,
    )  # fmt: skip
    assert run.returncode == 0 and "Nothing to be done" in run.stdout + run.stderr

