"""Tiles of a patient's bag back on their slides, and per-tile values painted at thumbnail resolution.

The model sees a patient's slides as one bag: each slide's tiles row-major, slides stacked on one grid, capped to
evenly spaced tiles (:mod:`modaltune.training.bags`). :func:`bag_tiles` rebuilds, for every bag position, the slide
and the tile's own level-0 coordinates, and checks them against the bag the model was fed (a slide's tiles must
differ from their bag coordinates by one constant offset), so a map value is drawn on the tile it belongs to.

Thumbnails come from the tissue detector's read (about ``slides.detection.seg_mpp`` um/px, a coarse pyramid level,
never level 0 of a large slide); the tissue outline is that detector's mask.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from modaltune.training.bags import cap_indices, row_major


def bag_tiles(data, patient: str) -> pd.DataFrame:
    """One row per bag position: slide, x, y (the slide's level-0 coordinates), tile_px_level0, bag_x, bag_y."""
    from modaltune.features import read_features

    bag = data.bag(patient)
    rows = []
    for slide in bag.slides:
        _, coords, attrs = read_features(data.feature_path(slide))
        coords = np.asarray(coords, dtype=np.int64).reshape(-1, 2)[row_major(np.asarray(coords).reshape(-1, 2))]
        frame = pd.DataFrame({"slide": slide, "x": coords[:, 0], "y": coords[:, 1]})
        frame["tile_px_level0"] = int(attrs.get("tile_px_level0", 0))
        rows.append(frame)
    tiles = pd.concat(rows, ignore_index=True)
    tiles = tiles.iloc[cap_indices(len(tiles), data.bag_options.tile_cap, None)].reset_index(drop=True)
    if len(tiles) != len(bag):
        raise RuntimeError(f"patient {patient}: {len(tiles)} tiles rebuilt but the bag has {len(bag)}")
    tiles["bag_x"], tiles["bag_y"] = bag.coords[:, 0], bag.coords[:, 1]
    offsets = (tiles["bag_x"] - tiles["x"]).astype(str) + "," + (tiles["bag_y"] - tiles["y"]).astype(str)
    if (offsets.groupby(tiles["slide"]).nunique() > 1).any():
        raise RuntimeError(f"patient {patient}: rebuilt tile order does not match the bag's coordinates")
    return tiles


@dataclass
class SlideView:
    """A slide's thumbnail (RGB), tissue mask of the same size, level-0 pixels per thumbnail pixel, level-0 size."""

    image: np.ndarray
    mask: np.ndarray
    downsample_x: float
    downsample_y: float
    level0_size: tuple[int, int]


def read_view(slide_path: str | Path, detector, default_mpp: float | None = None) -> SlideView:
    from modaltune.slides.reader import open_slide

    with open_slide(slide_path, default_mpp=default_mpp) as slide:
        tissue = detector.detect(slide)
        size = slide.dimensions
    return SlideView(tissue.image, tissue.mask, tissue.downsample_x, tissue.downsample_y, size)


def grid_view(tiles: pd.DataFrame) -> SlideView:
    """A blank view spanning the tiles, for feature files imported without their slides (8 px per tile)."""
    size = int(tiles["tile_px_level0"].max()) or 1
    width = int((tiles["x"].max() + size) / size * 8)
    height = int((tiles["y"].max() + size) / size * 8)
    return SlideView(np.full((height, width, 3), 255, np.uint8), np.zeros((height, width), bool), size / 8, size / 8,
                     (int(width * size / 8), int(height * size / 8)))


def paint(values: np.ndarray, tiles: pd.DataFrame, view: SlideView) -> np.ndarray:
    """(H, W) float image of the view: each tile's value over its footprint, NaN elsewhere."""
    out = np.full(view.mask.shape, np.nan)
    height, width = out.shape
    for value, x, y, size in zip(values, tiles["x"], tiles["y"], tiles["tile_px_level0"], strict=True):
        left, top = int(x / view.downsample_x), int(y / view.downsample_y)
        right = max(left + 1, int(round((x + size) / view.downsample_x)))
        bottom = max(top + 1, int(round((y + size) / view.downsample_y)))
        out[top:min(bottom, height), left:min(right, width)] = value
    return out


def mask_coverage(tiles: pd.DataFrame, mask: np.ndarray, level0_size: tuple[int, int]) -> np.ndarray:
    """Fraction of each tile's footprint that a mask (any resolution of the whole slide) marks as foreground."""
    scale_x, scale_y = mask.shape[1] / level0_size[0], mask.shape[0] / level0_size[1]
    coverage = []
    for x, y, size in zip(tiles["x"], tiles["y"], tiles["tile_px_level0"], strict=True):
        patch = mask[int(y * scale_y):max(int(y * scale_y) + 1, int((y + size) * scale_y)),
                     int(x * scale_x):max(int(x * scale_x) + 1, int((x + size) * scale_x))]
        coverage.append(float((patch > 0).mean()) if patch.size else 0.0)
    return np.asarray(coverage)


def percentile_of(values: np.ndarray, selected: np.ndarray) -> float:
    """Mean rank fraction of the selected tiles when tiles are sorted by descending value (0 = top, 0.5 = chance);
    NaN when all or none are selected."""
    if selected.all() or not selected.any():
        return float("nan")
    order = np.argsort(-values, kind="stable")
    rank = np.empty(len(values))
    rank[order] = np.arange(len(values)) / (len(values) - 1)
    return float(rank[selected].mean())
