"""The demo's tiling stage: tile tables, QC images and status records of every slide, the failed-slide table and
its logs, read from the session's demo run (tests/workflow/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from snakemake_cli import snakemake

from modaltune.config import load
from modaltune.io import read_parquet
from modaltune.synth.cohort import plan_site

REPO = Path(__file__).resolve().parents[2]
DEMO = load([REPO / "config" / "demo.yaml"])["demo"]

pytestmark = pytest.mark.workflow


@pytest.fixture(scope="module")
def tiled(demo_run):
    """A finished demo run: (working directory, {slide: kind} of the demo plan of every site)."""
    kinds = {slide.slide_id: slide.kind for site in DEMO["sites"] for slide in plan_site(site, DEMO).slides}
    return demo_run, kinds


def test_every_slide_gets_tiles_qc_and_status(tiled):
    workdir, kinds = tiled
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
    workdir, kinds = tiled
    expected = {slide: {"corrupt": "failed", "empty": "no tissue"}[kind]
                for slide, kind in kinds.items() if kind in ("corrupt", "empty")}  # fmt: skip
    assert len(expected) == 2 * len(DEMO["sites"])  # one of each per site
    lines = (workdir / "results" / "qc" / "failed_slides.tsv").read_text().splitlines()
    assert lines[0] == "slide\tstatus\treason"
    rows = [line.split("\t") for line in lines[1:]]
    assert {slide: status for slide, status, _ in rows} == expected
    assert all(".svs" in reason for _, status, reason in rows if status == "failed")  # the reason names the file
    # the demo tiles in batches: the empty slide's warning is in its batch's log
    empty = next(slide for slide, kind in kinds.items() if kind == "empty")
    logs = [path.read_text() for path in (workdir / "results" / "logs" / "tile").glob("*.log")]
    assert any(f"slide {empty}: no tile reaches" in log for log in logs)


def test_rerun_has_nothing_to_do(tiled):
    workdir, _ = tiled
    run = snakemake(workdir, "--cores", "1", "--dry-run", "all")
    assert "Nothing to be done" in run.stdout + run.stderr
