"""Whole-slide images: open them (OpenSlide), detect tissue (HSV), lay a tile grid, draw QC thumbnails.

>>> from modaltune.slides import TileGrid, TissueDetector, open_slide
>>> with open_slide("slide.svs") as slide:
...     mask = TissueDetector().detect(slide)
...     tiles = TileGrid(tile_px=256, mpp=0.5, min_tissue=0.5).tiles(mask, slide)
"""

from modaltune.slides.grid import TileGeometry, TileGrid, grid_tissue_fraction
from modaltune.slides.pipeline import (
    SlideStatus,
    TilingSettings,
    tile_slide,
    write_failed_slides,
    write_tiling_summary,
)
from modaltune.slides.reader import Level, Slide, SlideError, open_slide
from modaltune.slides.tissue import TissueDetector, TissueMask

__all__ = [
    "Level",
    "Slide",
    "SlideError",
    "SlideStatus",
    "TileGeometry",
    "TileGrid",
    "TilingSettings",
    "TissueDetector",
    "TissueMask",
    "grid_tissue_fraction",
    "open_slide",
    "tile_slide",
    "write_failed_slides",
    "write_tiling_summary",
]
