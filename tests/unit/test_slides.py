"""Tissue detection and tiling against synthetic slides with known tissue masks (modaltune.synth)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import tifffile
import yaml

from modaltune.cli import main
from modaltune.config import load
from modaltune.io import read_parquet
from modaltune.slides import (
    SlideError,
    TileGrid,
    TilingSettings,
    TissueDetector,
    grid_tissue_fraction,
    open_slide,
    tile_slide,
    write_failed_slides,
)
from modaltune.synth.cohort import plan_site
from modaltune.synth.slides import BACKGROUND_RGB

REPO = Path(__file__).resolve().parents[2]

# Demo-cohort slides (config/demo.yaml plan), chosen to cover the hard cases: (site, kind, level-0 um/px, subtype)
# with subtype None = any. KIRC and KICH render pale at low resolution, LUSC dark and saturated.
DEMO_SLIDES = {
    "kirc_40x": ("RCC", "tissue", 0.25, "KIRC"),
    "kirc_20x": ("RCC", "tissue", 0.5, "KIRC"),
    "lusc_40x": ("NSCLC", "tissue", 0.25, "LUSC"),
    "pen_40x": ("NSCLC", "pen", 0.25, None),
    "pen_pale": ("RCC", "pen", None, None),  # pen ink on pale renal tissue
    "empty": ("NSCLC", "empty", None, None),
    "corrupt": ("NSCLC", "corrupt", None, None),
}


@pytest.fixture(scope="module")
def slides(tmp_path_factory):
    """{name: (slide path, true mask path)}: demo slides written once for the module with the demo's writer."""
    demo = load([REPO / "config" / "demo.yaml"])["demo"]
    plans = {site: plan_site(site, demo).slides for site in demo["sites"]}
    folder = tmp_path_factory.mktemp("slides")
    written = {}
    for name, (site, kind, mpp, subtype) in DEMO_SLIDES.items():
        plan = next(
            slide
            for slide in plans[site]
            if slide.kind == kind and mpp in (None, slide.mpp) and subtype in (None, slide.appearance)
        )
        path = folder / f"{name}.svs"
        mask = plan.write(path)
        written[name] = (path, mask)
    return written


def _true_mask(mask_path):
    return cv2.imread(str(mask_path), cv2.IMREAD_GRAYSCALE) > 0


def _at(mask, shape):
    return cv2.resize(mask.astype(np.uint8), (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST) > 0


def _glass_marks(slide, true):
    """Pen and dust pixels, found independently of the detector: on bare glass yet far from the glass colour.

    Read at the lowest pyramid level, which is the true mask's pixel grid; tissue borders (JPEG chroma bleed) are
    kept out by a 2-pixel margin around the true tissue.
    """
    image = slide.read_level(slide.levels[-1]).astype(np.int16)
    near_tissue = cv2.dilate(true.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    return (np.abs(image - np.array(BACKGROUND_RGB, np.int16)).max(axis=-1) > 60) & ~near_tissue


@pytest.mark.parametrize("name", ["kirc_40x", "kirc_20x", "lusc_40x", "pen_40x", "pen_pale"])
def test_detection_matches_true_mask_and_excludes_pen_and_dust(slides, name):
    path, mask_path = slides[name]
    true = _true_mask(mask_path)
    with open_slide(path) as slide:
        detected = _at(TissueDetector().detect(slide).mask, true.shape)
        marks = _glass_marks(slide, true)
    iou = (detected & true).sum() / (detected | true).sum()
    assert iou >= 0.9, f"{name}: IoU {iou:.3f}"
    assert marks.sum() > (500 if name.startswith("pen") else 10)  # the stroke / the specks are there
    assert (detected & marks).sum() == 0


def test_detection_reads_a_coarser_level_when_the_usual_one_is_too_large(slides):
    path, _ = slides["kirc_20x"]  # 0.5 um/px, levels at 0.5, 2 and 8 um/px
    with open_slide(path) as slide:
        assert TissueDetector().detection_level(slide).index == 1  # 2 um/px, downscaled to 4
        capped = TissueDetector(max_read_mpx=0.1)
        assert capped.detection_level(slide).index == 2
        tissue = capped.detect(slide)
        assert tissue.mpp == pytest.approx(8.0, rel=0.01)
        assert len(TileGrid().tiles(tissue, slide)) > 10


def test_pen_marks_are_detected_without_the_artefact_rules(slides):
    """The exclusion above is the artefact rules' doing: without them most of the pen stroke counts as tissue."""
    path, mask_path = slides["pen_40x"]
    true = _true_mask(mask_path)
    naive = TissueDetector(min_value=0, grey_max_saturation=0, pen_hues=[], min_object_mm2=0.0)
    with open_slide(path) as slide:
        detected = _at(naive.detect(slide).mask, true.shape)
        marks = _glass_marks(slide, true)
    assert (detected & marks).sum() > 0.5 * marks.sum()


@pytest.mark.parametrize(("name", "tile_px_level0"), [("kirc_40x", 512), ("kirc_20x", 256)])
def test_tiles_lie_on_the_level0_grid_and_inside_tissue(slides, name, tile_px_level0):
    path, mask_path = slides[name]
    true = _true_mask(mask_path)
    grid = TileGrid(tile_px=256, mpp=0.5, min_tissue=0.5)
    with open_slide(path) as slide:
        tissue = TissueDetector().detect(slide)
        geometry = grid.geometry(slide)
        tiles = grid.tiles(tissue, slide)
        width, height = slide.dimensions
    assert geometry.tile_px_level0 == tile_px_level0
    assert len(tiles) > 10
    assert (tiles["x"] % tile_px_level0 == 0).all() and (tiles["y"] % tile_px_level0 == 0).all()
    assert (tiles["x"] + tile_px_level0 <= width).all() and (tiles["y"] + tile_px_level0 <= height).all()
    assert (tiles["tissue"] >= 0.5).all()
    assert list(zip(tiles["y"], tiles["x"], strict=True)) == sorted(zip(tiles["y"], tiles["x"], strict=True))
    # against the true mask: every tile is mostly tissue (0.5 kept, minus the detector's boundary error)
    scale_x, scale_y = true.shape[1] / width, true.shape[0] / height
    for x, y in zip(tiles["x"], tiles["y"], strict=True):
        window = true[
            round(y * scale_y) : round((y + tile_px_level0) * scale_y),
            round(x * scale_x) : round((x + tile_px_level0) * scale_x),
        ]
        assert window.mean() >= 0.35, (x, y, window.mean())


def test_grid_tissue_fraction_equals_per_tile_reference():
    rng = np.random.default_rng(0)
    mask = cv2.resize(
        (rng.random((30, 40)) > 0.5).astype(np.uint8), (403, 301), interpolation=cv2.INTER_NEAREST
    )
    width0, height0, tile = 12900, 9650, 512  # mask px per level-0 px differs per axis, not an integer ratio
    x, y, fraction = grid_tissue_fraction(mask.astype(bool), tile, width0, height0)
    n_x, n_y = width0 // tile, height0 // tile
    assert len(x) == n_x * n_y
    sx, sy = mask.shape[1] / width0, mask.shape[0] / height0
    for i in range(len(x)):
        window = mask[
            round(y[i] * sy) : round((y[i] + tile) * sy), round(x[i] * sx) : round((x[i] + tile) * sx)
        ]
        assert fraction[i] == pytest.approx(window.mean())


def test_grid_refuses_a_mask_coarser_than_the_tiles():
    with pytest.raises(ValueError, match="seg_mpp"):
        grid_tissue_fraction(np.ones((10, 10), bool), 512, 100_000, 100_000)


def test_tile_slide_writes_the_data_contract(slides, tmp_path):
    path, _ = slides["lusc_40x"]
    settings = TilingSettings.from_config({})
    status = tile_slide(
        path, tmp_path / "t.parquet", tmp_path / "t.png", settings, status_path=tmp_path / "s.json"
    )
    tiles, meta = read_parquet(tmp_path / "t.parquet")
    assert list(tiles.columns) == ["x", "y", "tissue"] and str(tiles["x"].dtype) == "int64"
    assert status.status == "ok" and status.n_tiles == len(tiles) > 0
    assert meta["mpp"] == 0.5 and meta["tile_px"] == 256 and meta["tile_px_level0"] == 512
    # level 0 is the only level not coarser than 0.5 um/px on a 0.25 um/px slide with downsamples 1, 4, 16
    assert meta["level"] == 0 and meta["level_px"] == 512 and meta["slide_mpp"] == 0.25
    assert meta["mpp_source"] == "openslide.mpp-x" and meta["detection"]["sthresh"] == 15
    qc = cv2.imread(str(tmp_path / "t.png"))
    assert max(qc.shape[:2]) <= settings.qc_max_px and qc.shape[2] == 3
    assert json.loads((tmp_path / "s.json").read_text())["n_tiles"] == len(tiles)


def test_corrupt_slide_fails_naming_the_file(slides, tmp_path):
    path, _ = slides["corrupt"]
    with pytest.raises(SlideError, match=str(path)):
        open_slide(path)
    with pytest.raises(SlideError, match="on_error: skip"):
        tile_slide(path, tmp_path / "t.parquet", tmp_path / "t.png", TilingSettings.from_config({}))
    assert not (tmp_path / "t.parquet").exists()


def test_skip_mode_records_the_corrupt_slide(slides, tmp_path):
    path, _ = slides["corrupt"]
    settings = TilingSettings.from_config({"on_error": "skip"})
    status = tile_slide(
        path, tmp_path / "t.parquet", tmp_path / "t.png", settings, status_path=tmp_path / "c.json"
    )
    assert status.status == "failed" and str(path) in status.reason
    tiles, meta = read_parquet(tmp_path / "t.parquet")
    assert len(tiles) == 0 and meta["status"] == "failed" and str(path) in meta["error"]
    assert cv2.imread(str(tmp_path / "t.png")) is not None

    ok = tile_slide(
        slides["kirc_20x"][0], tmp_path / "o.parquet", tmp_path / "o.png", settings, tmp_path / "o.json"
    )
    assert ok.status == "ok"
    empty = tile_slide(
        slides["empty"][0], tmp_path / "e.parquet", tmp_path / "e.png", settings, tmp_path / "e.json"
    )
    assert empty.status == "no_tissue"
    failed = write_failed_slides(
        [tmp_path / "c.json", tmp_path / "o.json", tmp_path / "e.json"], tmp_path / "failed.tsv"
    )
    assert failed["slide"].tolist() == ["corrupt", "empty"]
    lines = (tmp_path / "failed.tsv").read_text().splitlines()
    assert lines[0] == "slide\tstatus\treason" and lines[1].startswith("corrupt\tfailed\t") and len(lines) == 3
    assert lines[2].startswith("empty\tno tissue\tno tile reaches min_tissue=")


def test_empty_slide_gives_an_empty_table_and_a_warning(slides, tmp_path, caplog):
    path, _ = slides["empty"]
    with caplog.at_level(logging.WARNING, logger="modaltune.slides"):
        status = tile_slide(path, tmp_path / "e.parquet", tmp_path / "e.png", TilingSettings.from_config({}))
    tiles, meta = read_parquet(tmp_path / "e.parquet")
    assert len(tiles) == 0 and list(tiles.columns) == ["x", "y", "tissue"]
    assert status.status == meta["status"] == "no_tissue"
    assert meta["tile_px_level0"] == round(256 * 0.5 / meta["slide_mpp"])  # 256 px at 0.5 um/px
    assert any("no tile reaches" in record.getMessage() for record in caplog.records)


def test_missing_mpp_stops_unless_default_mpp_is_set(tmp_path):
    image = np.full((1024, 1536, 3), 240, np.uint8)
    cv2.circle(image, (700, 500), 300, (200, 120, 170), -1)
    path = tmp_path / "nompp.tif"
    tifffile.imwrite(path, image, tile=(256, 256), photometric="rgb")  # generic TIFF: no resolution metadata
    with pytest.raises(SlideError, match=r"nompp\.tif.*slides\.default_mpp"):
        open_slide(path)
    with open_slide(path, default_mpp=0.5) as slide:
        assert slide.mpp == 0.5 and slide.mpp_source == "default_mpp"
        tiles = TileGrid().tiles(TissueDetector().detect(slide), slide)
    assert len(tiles) > 0 and (tiles["x"] % 256 == 0).all()


def test_schema_defaults_are_the_library_defaults():
    from importlib import resources

    schema = yaml.safe_load(resources.files("modaltune.schema").joinpath("slides.yaml").read_text())
    detection = {k: v["default"] for k, v in schema["properties"]["detection"]["properties"].items()}
    assert TissueDetector(**detection) == TissueDetector()
    grid = {k: schema["properties"][k]["default"] for k in ("tile_px", "mpp", "min_tissue")}
    assert TileGrid(**grid) == TileGrid()


def test_bad_detection_settings_are_rejected():
    with pytest.raises(ValueError, match="close"):
        TissueDetector(close=4)
    with pytest.raises(Exception, match="on_error"):
        TilingSettings.from_config({"on_error": "ignore"})


def test_cli_tile_and_report(slides, tmp_path):
    params = json.dumps({"on_error": "skip"})
    for name in ("pen_40x", "corrupt"):
        code = main(
            [
                "tile",
                "--slide",
                str(slides[name][0]),
                "--tiles",
                str(tmp_path / f"{name}.parquet"),
                "--qc",
                str(tmp_path / f"{name}.png"),
                "--status",
                str(tmp_path / f"{name}.json"),
                "--params",
                params,
            ]
        )
        assert code == 0
    statuses = [str(tmp_path / "pen_40x.json"), str(tmp_path / "corrupt.json")]
    assert (
        main(
            [
                "tiling-report",
                "--status",
                *statuses,
                "--failed",
                str(tmp_path / "f.tsv"),
                "--summary",
                str(tmp_path / "s.tsv"),
            ]
        )
        == 0
    )
    summary = (tmp_path / "s.tsv").read_text().splitlines()
    assert [line.split("\t")[:2] for line in summary[1:]] == [["pen_40x", "ok"], ["corrupt", "failed"]]
    # fail mode: exit status 1 and the file named on stderr
    code = main(
        [
            "tile",
            "--slide",
            str(slides["corrupt"][0]),
            "--tiles",
            str(tmp_path / "x.parquet"),
            "--qc",
            str(tmp_path / "x.png"),
            "--params",
            "{}",
        ]
    )
    assert code == 1


def test_cli_tile_batch_writes_the_same_files_as_one_call_per_slide(slides, tmp_path):
    """The demo's batch rule tiles several slides in one process: same tables, QC images and status records."""
    names = ["pen_40x", "corrupt"]
    params = json.dumps({"on_error": "skip"})

    def outputs(folder, name):
        return [str(folder / f"{name}.{suffix}") for suffix in ("parquet", "png", "json")]

    single, batch = tmp_path / "single", tmp_path / "batch"
    single.mkdir(), batch.mkdir()
    for name in names:
        tiles, qc, status = outputs(single, name)
        argv = ["tile", "--slide", str(slides[name][0]), "--tiles", tiles, "--qc", qc, "--status", status]
        assert main([*argv, "--params", params]) == 0
    paired = [outputs(batch, name) for name in names]
    argv = ["tile", "--slide", *[str(slides[name][0]) for name in names], "--tiles", *[p[0] for p in paired],
            "--qc", *[p[1] for p in paired], "--status", *[p[2] for p in paired], "--params", params]
    assert main(argv) == 0
    for name in names:
        for one, many in zip(outputs(single, name), outputs(batch, name), strict=True):
            if one.endswith(".parquet"):
                pd.testing.assert_frame_equal(pd.read_parquet(one), pd.read_parquet(many))
            elif one.endswith(".json"):
                assert json.loads(Path(one).read_text()) == json.loads(Path(many).read_text())
            else:
                assert Path(one).read_bytes() == Path(many).read_bytes()
    with pytest.raises(SystemExit, match="as many"):
        main(["tile", "--slide", *[str(slides[name][0]) for name in names], "--tiles", paired[0][0],
              "--qc", paired[0][1], "--params", params])
