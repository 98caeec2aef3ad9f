"""Patient bags: all slides of a patient on one LongNet grid, and the tile cap.

The slide encoder turns level-0 coordinates into grid cells, cell = floor(coord / grid_px), and only knows
``grid_cells`` cells per axis (1000 for Gigapath): a y cell >= 1000 silently aliases into the next x column and an x
cell >= 1000 indexes past the position table (reference: gigapath-and-tiling.md B.3, modaltune-method.md section 3).

Slides are stacked along y as upstream, each starting ``gap_px`` below the lowest tile placed so far (a cumulative
offset; upstream's offset is not cumulative, so its third slide can land on the second). A slide that would cross
the bottom of the grid starts a new column to the right of everything placed so far, so tall bags (GBMLGG has
patients with 17 slides) stay on the grid; a bag that does not fit at all raises an error naming the patient.
Within a slide tiles are ordered row-major (y, then x): LongNet's segments and dilation are positional, so the
order is part of the model input.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

GAP_PX = 1500


@dataclass
class Bag:
    """One patient's tiles: ``features`` (N, D), ``coords`` (N, 2) level-0 (x, y) after the slide offsets."""

    patient: str
    features: np.ndarray
    coords: np.ndarray
    slides: list[str]

    def __len__(self) -> int:
        return len(self.features)


def place_slides(coords: Sequence[np.ndarray], *, patient: str = "?", gap_px: int = GAP_PX, grid_px: int = 256,
                 grid_cells: int = 1000) -> list[np.ndarray]:
    """Shift each slide's (x, y) tile coordinates so that no two slides share a grid cell.

    Returns the shifted coordinates, one array per slide, in input order. Raises ValueError when a coordinate is
    negative or when the bag needs more than ``grid_cells`` cells along x.
    """
    limit = grid_px * grid_cells  # first level-0 coordinate that falls off the grid
    placed: list[np.ndarray] = []
    column_x = 0  # left edge of the current column
    next_y = 0  # where the next slide of the current column starts
    right_edge = -1  # largest x placed so far (any column)
    for k, xy in enumerate(coords):
        xy = np.asarray(xy, dtype=np.int64).reshape(-1, 2)
        if len(xy) == 0:
            placed.append(xy)
            continue
        if xy.min() < 0:
            raise ValueError(f"patient {patient}: slide {k} has negative tile coordinates")
        height = int(xy[:, 1].max()) + grid_px  # the tile's bottom edge
        if placed and next_y + height > limit and next_y > 0:
            column_x, next_y = right_edge + gap_px, 0
        if next_y + height > limit:
            raise ValueError(f"patient {patient}: slide {k} is {height} px tall, more than the grid's {limit} px")
        shifted = xy + np.array([column_x, next_y], dtype=np.int64)
        if int(shifted[:, 0].max()) >= limit:
            raise ValueError(
                f"patient {patient}: {len(coords)} slides do not fit on the {grid_cells} x {grid_cells} grid of "
                f"{grid_px}-px cells; cap the slides per patient or the tiles per slide")
        placed.append(shifted)
        next_y = int(shifted[:, 1].max()) + gap_px
        right_edge = max(right_edge, int(shifted[:, 0].max()))
    return placed


def row_major(coords: np.ndarray) -> np.ndarray:
    """Indices that sort tiles by y, then x."""
    return np.lexsort((coords[:, 0], coords[:, 1]))


def build_bag(patient: str, slides: Sequence[tuple[str, np.ndarray, np.ndarray]], *, gap_px: int = GAP_PX,
              grid_px: int = 256, grid_cells: int = 1000) -> Bag:
    """Concatenate (slide, features, coords) triples in the given order, each slide row-major and placed on the grid."""
    names = [name for name, _, _ in slides]
    coords = [np.asarray(xy, dtype=np.int64).reshape(-1, 2) for _, _, xy in slides]
    orders = [row_major(xy) for xy in coords]
    placed = place_slides([xy[order] for xy, order in zip(coords, orders, strict=True)],
                          patient=patient, gap_px=gap_px, grid_px=grid_px, grid_cells=grid_cells)
    dims = {np.asarray(f).shape[1] for _, f, _ in slides if len(f)}
    if len(dims) > 1:
        raise ValueError(f"patient {patient}: slides {names} have features of different widths {sorted(dims)}")
    width = dims.pop() if dims else 0
    features = [np.asarray(f, dtype=np.float32).reshape(-1, width)[order]
                for (_, f, _), order in zip(slides, orders, strict=True)]
    return Bag(patient, np.concatenate(features) if features else np.zeros((0, width), np.float32),
               np.concatenate(placed) if placed else np.zeros((0, 2), np.int64), names)


def cap_indices(n: int, cap: int | None, generator: np.random.Generator | None = None) -> np.ndarray:
    """Indices of at most ``cap`` tiles, in bag order.

    Training (``generator`` given): a random subset, as upstream (permutation, first ``cap``, sorted).
    Evaluation (``generator`` None): evenly spaced tiles, so that embeddings are reproducible.
    """
    if cap is None or n <= cap:
        return np.arange(n)
    if generator is None:
        return np.linspace(0, n - 1, cap).round().astype(np.int64)
    return np.sort(generator.permutation(n)[:cap])
