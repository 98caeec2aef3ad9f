"""A non-overlapping tile grid at a target resolution, kept where the tissue mask covers enough of each tile.

The grid is anchored at level-0 pixel (0, 0) with step ``tile_px_level0 = round(tile_px * mpp / slide_mpp)``
(512 on a 0.25 um/px slide for 256 px at 0.5 um/px), and only tiles lying fully inside the image are considered.
The tissue fraction of every tile comes from one integral image of the mask: four lookups per tile, vectorised over
the whole grid, no Python loop over tiles. Tiles are returned in row-major order (by y, then x), the order the
slide encoder expects (reference H.2).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from modaltune.slides.reader import Slide
from modaltune.slides.tissue import TissueMask


@dataclass(frozen=True)
class TileGeometry:
    """Where and how to read the tiles of one slide.

    Tiles are ``tile_px_level0`` level-0 pixels wide; a reader takes ``level_px`` pixels at pyramid ``level``
    (the coarsest level not coarser than ``mpp``) and resizes them to ``tile_px``.
    """

    mpp: float
    tile_px: int
    tile_px_level0: int
    level: int
    level_downsample: float
    level_px: int
    slide_mpp: float
    slide_width: int
    slide_height: int


@dataclass(frozen=True)
class TileGrid:
    """Tiles of ``tile_px`` pixels at ``mpp`` um/px with at least ``min_tissue`` of their area on tissue."""

    tile_px: int = 256
    mpp: float = 0.5
    min_tissue: float = 0.5

    def __post_init__(self):
        if self.tile_px < 1 or self.mpp <= 0:
            raise ValueError(f"tile_px and mpp must be positive, got {self.tile_px} and {self.mpp}")
        if not 0.0 < self.min_tissue <= 1.0:
            raise ValueError(f"min_tissue is a fraction in (0, 1], got {self.min_tissue}")

    def params(self) -> dict:
        return asdict(self)

    def geometry(self, slide: Slide) -> TileGeometry:
        tile_px_level0 = max(1, round(self.tile_px * self.mpp / slide.mpp))
        level = slide.best_level(self.mpp)
        width, height = slide.dimensions
        return TileGeometry(
            mpp=self.mpp,
            tile_px=self.tile_px,
            tile_px_level0=tile_px_level0,
            level=level.index,
            level_downsample=level.downsample,
            level_px=max(1, round(tile_px_level0 / level.downsample)),
            slide_mpp=slide.mpp,
            slide_width=width,
            slide_height=height,
        )

    def tiles(self, tissue: TissueMask, slide: Slide) -> pd.DataFrame:
        """Columns x, y (int64, level-0 top-left) and tissue (float32 fraction of the tile on the mask)."""
        geometry = self.geometry(slide)
        x, y, fraction = grid_tissue_fraction(
            tissue.mask, geometry.tile_px_level0, geometry.slide_width, geometry.slide_height
        )
        keep = fraction >= self.min_tissue
        return pd.DataFrame(
            {"x": x[keep], "y": y[keep], "tissue": fraction[keep].astype(np.float32)},
        )


def grid_tissue_fraction(
    mask: np.ndarray, tile_px_level0: int, width0: int, height0: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every full tile of the level-0 grid with its mask coverage, flattened row-major.

    ``mask`` covers the whole level-0 image (``width0`` x ``height0``) at any resolution. Tile edges are mapped
    to the nearest mask pixel edge; a tile must span at least 2 mask pixels per side.
    """
    import cv2

    mask_h, mask_w = mask.shape
    scale_x, scale_y = mask_w / width0, mask_h / height0
    if tile_px_level0 * min(scale_x, scale_y) < 2:
        raise ValueError(
            f"the tissue mask ({mask_w}x{mask_h} px for {width0}x{height0}) is too coarse for "
            f"{tile_px_level0}-px tiles; lower slides.detection.seg_mpp"
        )
    n_x, n_y = width0 // tile_px_level0, height0 // tile_px_level0
    edges_x = np.minimum(np.rint(np.arange(n_x + 1) * tile_px_level0 * scale_x).astype(np.int64), mask_w)
    edges_y = np.minimum(np.rint(np.arange(n_y + 1) * tile_px_level0 * scale_y).astype(np.int64), mask_h)
    integral = cv2.integral(mask.astype(np.uint8), sdepth=cv2.CV_64F)  # (h + 1, w + 1), integral[0, :] = 0
    corners = integral[edges_y][:, edges_x]
    covered = corners[1:, 1:] - corners[:-1, 1:] - corners[1:, :-1] + corners[:-1, :-1]
    area = np.outer(np.diff(edges_y), np.diff(edges_x))
    fraction = covered / area
    grid_y, grid_x = np.meshgrid(np.arange(n_y), np.arange(n_x), indexing="ij")
    return (
        (grid_x * tile_px_level0).ravel().astype(np.int64),
        (grid_y * tile_px_level0).ravel().astype(np.int64),
        fraction.ravel(),
    )
