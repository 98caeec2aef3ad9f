"""QC thumbnails: the detection image with the tissue outline (green) and the kept tiles (blue tint and grid).

Drawn with OpenCV and numpy only (no per-tile loop): kept tiles are painted from a tile-index map, so a slide with
100k tiles renders as fast as one with ten.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from modaltune.io import atomic_path
from modaltune.slides.grid import TileGeometry
from modaltune.slides.tissue import TissueMask

OUTLINE_RGB = (0, 200, 0)
TILE_RGB = np.array([40, 90, 255], dtype=np.float32)
TILE_ALPHA = 0.3


def render_qc(
    tissue: TissueMask, tiles: pd.DataFrame, geometry: TileGeometry, max_px: int = 1200
) -> np.ndarray:
    """An RGB uint8 image of at most ``max_px`` on its longer side."""
    import cv2

    image, mask = tissue.image, tissue.mask.astype(np.uint8)
    scale = min(1.0, max_px / max(image.shape[:2]))
    if scale < 1.0:
        size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        mask = cv2.resize(mask, size, interpolation=cv2.INTER_NEAREST)
    out = image.astype(np.float32)
    height, width = out.shape[:2]

    # Tile index of every thumbnail pixel, then a lookup in the kept-tile table.
    n_x = geometry.slide_width // geometry.tile_px_level0
    n_y = geometry.slide_height // geometry.tile_px_level0
    col = np.floor((np.arange(width) + 0.5) * geometry.slide_width / width / geometry.tile_px_level0).astype(
        int
    )
    row = np.floor(
        (np.arange(height) + 0.5) * geometry.slide_height / height / geometry.tile_px_level0
    ).astype(int)
    kept = np.zeros((n_y + 1, n_x + 1), dtype=bool)
    kept[
        tiles["y"].to_numpy() // geometry.tile_px_level0, tiles["x"].to_numpy() // geometry.tile_px_level0
    ] = True
    on_tile = kept[np.minimum(row, n_y)[:, None], np.minimum(col, n_x)[None, :]]
    edge = np.zeros_like(on_tile)
    edge[:, 1:] |= col[1:] != col[:-1]
    edge[1:, :] |= (row[1:] != row[:-1])[:, None]
    out[on_tile] = (1 - TILE_ALPHA) * out[on_tile] + TILE_ALPHA * TILE_RGB
    out[on_tile & edge] = TILE_RGB

    result = np.ascontiguousarray(out.round().astype(np.uint8))
    contours, _ = cv2.findContours(mask, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(result, contours, -1, OUTLINE_RGB, thickness=max(1, round(max(height, width) / 600)))
    return result


def render_message(text: str, width: int = 800, height: int = 200) -> np.ndarray:
    """A white image carrying ``text`` (used when a slide could not be read), wrapped to fit."""
    import textwrap

    import cv2

    image = np.full((height, width, 3), 255, np.uint8)
    for i, line in enumerate(textwrap.wrap(text, width=70)[: (height - 20) // 22]):
        cv2.putText(
            image, line, (10, 30 + 22 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (200, 0, 0), 1, cv2.LINE_AA
        )
    return image


def write_png(image: np.ndarray, path: str | os.PathLike) -> None:
    """Write an RGB uint8 image atomically as PNG."""
    import cv2

    ok, encoded = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError(f"PNG encoding failed for {path}")
    with atomic_path(path) as tmp:
        encoded.tofile(tmp)
