"""Tiling speed: modaltune's vectorised grid against CLAM's contour-based patching, on the same slides.

For every demo slide and for one large synthetic slide (about 100k x 80k px at 0.25 um/px, written with the demo's
slide writer into a temporary folder) it times, each on a freshly opened slide:

- modaltune: ``TissueDetector.detect`` (read + HSV mask) and ``TileGrid.tiles`` (integral image, no tile loop);
- CLAM: ``segmentTissue`` (saturation median + threshold + closing + contours, CLI defaults) and patching with
  ``isInContourV3_Easy`` (``four_pt``: 4 ``pointPolygonTest`` calls per candidate, then the hole test), one
  Python call per candidate as in CLAM's ``process_contour`` -- here in one process (CLAM spreads the candidates
  over a pool of min(cpu, 4) workers, which on this 2-core machine would gain at most 2x).

It prints seconds per slide for detection and for grid building separately, tiles per second, and the speed
ratios, plus the IoU of the demo masks against the synthetic truth. Usage:

    python benchmarks/tiling.py [--demo-root results/demo] [--max-demo-slides 40] [--large-size 100000 80000]
                                [--large-slide existing.svs]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from modaltune.config import load
from modaltune.slides import TileGrid, TissueDetector, open_slide
from modaltune.synth.cohort import plan_site
from modaltune.synth.slides import mask_path_of, write_slide

REPO = Path(__file__).resolve().parents[1]
TILE_PX, TILE_MPP = 256, 0.5


# ---------------------------------------------------------------------------------------------------------------
# CLAM (mahmoodlab/CLAM wsi_core/WholeSlideImage.py), transcribed for the comparison; reference section E.3.
@dataclass
class ClamSegmentation:
    contours: list[np.ndarray]  # level-0 outer contours
    holes: list[list[np.ndarray]]  # level-0 holes per contour


# CLAM's presets/*.csv: `tcga` for resections; `bwh_biopsy` keeps fragments down to one 512-px patch of area, the
# only preset that keeps anything on the demo's 1.2 x 1 mm slides (the CLI default a_t = 100 patches drops them all).
CLAM_PRESETS = {
    "tcga": {"sthresh": 8, "mthresh": 7, "close": 4, "a_t": 16, "a_h": 4, "max_n_holes": 8},
    "bwh_biopsy": {"sthresh": 15, "mthresh": 11, "close": 2, "a_t": 1, "a_h": 1, "max_n_holes": 2},
}


def clam_segment(handle, sthresh, mthresh, close, a_t, a_h, max_n_holes, ref_patch_size=512):
    """``segmentTissue`` (seg_level -1 = best level for downsample 64, use_otsu False)."""
    seg_level = handle.get_best_level_for_downsample(64)
    size = handle.level_dimensions[seg_level]
    rgb = np.asarray(handle.read_region((0, 0), seg_level, size).convert("RGB"))
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
    blurred = cv2.medianBlur(hsv[:, :, 1], mthresh)
    _, binary = cv2.threshold(blurred, sthresh, 255, cv2.THRESH_BINARY)
    if close > 0:
        binary = cv2.morphologyEx(binary, cv2.MORPH_CLOSE, np.ones((close, close), np.uint8))
    downsample = handle.level_downsamples[seg_level]
    scaled_ref_patch_area = int(ref_patch_size**2 / (downsample * downsample))
    a_t, a_h = a_t * scaled_ref_patch_area, a_h * scaled_ref_patch_area
    contours, hierarchy = cv2.findContours(binary, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_NONE)
    if hierarchy is None:
        return ClamSegmentation([], [])
    hierarchy = np.squeeze(hierarchy, axis=(0,))[:, 2:]
    kept, kept_holes = [], []
    for index in np.flatnonzero(hierarchy[:, 1] == -1):
        hole_ids = np.flatnonzero(hierarchy[:, 1] == index)
        area = cv2.contourArea(contours[index]) - sum(cv2.contourArea(contours[h]) for h in hole_ids)
        if area == 0 or area <= a_t:
            continue
        holes = sorted((contours[h] for h in hole_ids), key=cv2.contourArea, reverse=True)[:max_n_holes]
        kept.append(contours[index])
        kept_holes.append([hole for hole in holes if cv2.contourArea(hole) > a_h])
    scale = np.array([downsample, downsample])
    return ClamSegmentation(
        [np.array(c * scale, dtype="int32") for c in kept],
        [[np.array(h * scale, dtype="int32") for h in holes] for holes in kept_holes],
    )


class IsInContourV3Easy:
    """CLAM's ``four_pt`` check: any of 4 points a quarter tile from the centre inside (or on) the contour."""

    def __init__(self, contour, patch_size, center_shift=0.5):
        self.cont, self.patch_size = contour, patch_size
        self.shift = int(patch_size // 2 * center_shift)

    def __call__(self, pt):
        cx, cy = pt[0] + self.patch_size // 2, pt[1] + self.patch_size // 2
        s = self.shift
        for point in ((cx - s, cy - s), (cx + s, cy + s), (cx + s, cy - s), (cx - s, cy + s)):
            if cv2.pointPolygonTest(self.cont, (float(point[0]), float(point[1])), False) >= 0:
                return 1
        return 0


def _in_holes(holes, pt, patch_size):
    centre = (float(pt[0] + patch_size / 2), float(pt[1] + patch_size / 2))
    return any(cv2.pointPolygonTest(hole, centre, False) > 0 for hole in holes)


def clam_patch(segmentation: ClamSegmentation, patch_size: int) -> np.ndarray:
    """``process_contours`` with use_padding=True, step = patch size, candidates x-major per contour."""
    coords = []
    for contour, holes in zip(segmentation.contours, segmentation.holes, strict=True):
        start_x, start_y, w, h = cv2.boundingRect(contour)
        check = IsInContourV3Easy(contour, patch_size)
        xs, ys = np.meshgrid(
            np.arange(start_x, start_x + w, patch_size),
            np.arange(start_y, start_y + h, patch_size),
            indexing="ij",
        )
        for pt in np.stack(
            [xs.ravel(), ys.ravel()], axis=1
        ):  # CLAM: pool.starmap(process_coord_candidate, ...)
            if check(pt) and not _in_holes(holes, pt, patch_size):
                coords.append(pt)
    return np.array(coords, dtype=np.int64).reshape(-1, 2)


# ---------------------------------------------------------------------------------------------------------------
@dataclass
class Timing:
    detect_s: float
    grid_s: float
    tiles: int
    clam_segment_s: float
    clam_patch_s: float
    clam_tiles: int
    iou: float | None


def time_slide(path: Path, detector: TissueDetector, grid: TileGrid, clam_preset: str) -> Timing:
    with open_slide(path) as slide:
        start = time.perf_counter()
        tissue = detector.detect(slide)
        detect_s = time.perf_counter() - start
        start = time.perf_counter()
        tiles = grid.tiles(tissue, slide)
        grid_s = time.perf_counter() - start
        patch_size = grid.geometry(slide).tile_px_level0
    import openslide

    handle = openslide.OpenSlide(str(path))
    start = time.perf_counter()
    segmentation = clam_segment(handle, **CLAM_PRESETS[clam_preset])
    clam_segment_s = time.perf_counter() - start
    start = time.perf_counter()
    clam_coords = clam_patch(segmentation, patch_size)
    clam_patch_s = time.perf_counter() - start
    handle.close()
    return Timing(
        detect_s, grid_s, len(tiles), clam_segment_s, clam_patch_s, len(clam_coords), _iou(path, tissue)
    )


def _iou(path: Path, tissue) -> float | None:
    mask_path = mask_path_of(path)
    if not mask_path.exists():
        return None
    true = cv2.imread(str(mask_path), cv2.IMREAD_GRAYSCALE) > 0
    if not true.any():
        return None
    mine = cv2.resize(tissue.mask.astype(np.uint8), true.shape[::-1], interpolation=cv2.INTER_NEAREST) > 0
    return float((mine & true).sum() / (mine | true).sum())


def demo_slides(demo_root: Path, scratch: Path, limit: int) -> list[Path]:
    """The readable tissue slides of the demo cohort: from ``demo_root`` if `make demo` wrote it, else written now."""
    demo = load([REPO / "config" / "demo.yaml"])["demo"]
    plans = [
        (site, slide)
        for site in demo["sites"]
        for slide in plan_site(site, demo).slides
        if slide.kind in ("tissue", "pen")
    ][:limit]
    paths = []
    for site, plan in tqdm(plans, desc="demo slides", unit="slide"):
        existing = demo_root / site / "slides" / f"{plan.slide_id}.svs"
        if existing.exists():
            paths.append(existing)
            continue
        path = scratch / f"{plan.slide_id}.svs"
        write_slide(
            path, seed=plan.seed, width=plan.width, height=plan.height, mpp=plan.mpp, kind=plan.kind,
            subtype=plan.appearance, tissue_fraction=plan.tissue_fraction, severity=plan.severity,
        )  # fmt: skip
        paths.append(path)
    return paths


def report(name: str, timings: list[Timing]) -> None:
    def mean(attr):
        return float(np.mean([getattr(t, attr) for t in timings]))

    ours = mean("detect_s") + mean("grid_s")
    clam = mean("clam_segment_s") + mean("clam_patch_s")
    tiles, clam_tiles = sum(t.tiles for t in timings), sum(t.clam_tiles for t in timings)
    print(f"\n== {name}: {len(timings)} slide(s), {tiles} tiles (CLAM four_pt: {clam_tiles})")
    print(f"  modaltune  detection {mean('detect_s'):8.4f} s/slide   grid {mean('grid_s'):8.4f} s/slide")
    print(
        f"  CLAM       segmentation {mean('clam_segment_s'):5.4f} s/slide   patching {mean('clam_patch_s'):8.4f} s/slide"
    )
    print(
        f"  tiles/s    modaltune {tiles / (ours * len(timings)):12.0f}   CLAM {clam_tiles / (clam * len(timings)):12.0f}"
    )
    print(
        f"  speed-up   grid vs patching {mean('clam_patch_s') / mean('grid_s'):8.1f}x   whole {clam / ours:6.1f}x"
    )
    ious = [t.iou for t in timings if t.iou is not None]
    if ious:
        print(
            f"  IoU vs true mask: min {min(ious):.3f}  median {np.median(ious):.3f}  (< 0.9: {sum(i < 0.9 for i in ious)})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo-root", type=Path, default=REPO / "results" / "demo")
    parser.add_argument("--max-demo-slides", type=int, default=1000)
    parser.add_argument("--large-size", type=int, nargs=2, default=(100_000, 80_000), metavar=("W", "H"))
    parser.add_argument("--large-slide", type=Path, help="reuse this large slide instead of writing one")
    args = parser.parse_args()
    detector, grid = TissueDetector(), TileGrid(tile_px=TILE_PX, mpp=TILE_MPP)
    with tempfile.TemporaryDirectory(prefix="tiling-bench-") as scratch:
        scratch = Path(scratch)
        slides = demo_slides(args.demo_root, scratch, args.max_demo_slides)
        if slides:
            timings = [
                time_slide(path, detector, grid, "bwh_biopsy")
                for path in tqdm(slides, desc="timing", unit="slide")
            ]
            report("demo slides (CLAM preset bwh_biopsy)", timings)

        large = args.large_slide
        if large is None:
            width, height = args.large_size
            large = scratch / "large.svs"
            start = time.perf_counter()
            write_slide(large, seed=7, width=width, height=height, mpp=0.25, kind="pen", subtype="LUAD")
            print(f"\n(large slide {width} x {height} px written in {time.perf_counter() - start:.0f} s)")
        with open_slide(large) as slide:
            width, height = slide.dimensions
        timings = [time_slide(large, detector, grid, "tcga")]
        report(f"large slide {width} x {height} px at 0.25 um/px (CLAM preset tcga)", timings)


if __name__ == "__main__":
    main()
