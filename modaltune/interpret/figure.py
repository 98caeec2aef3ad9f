"""One patient's figure (paper Fig. 3): top pathway attributions, then per slide the thumbnail and the attention maps.

Layout: a signed bar chart of the ``top`` pathways by |attribution| (red raises the risk, blue lowers it) with the
risk with baseline vs. the patient's genes in its title; then, per slide of the patient, one row per attention map
with the thumbnail first and one panel per adapter block. Each map has one colour scale shared by all its panels
(every block and slide of the patient), with its colour bar at the row's end; the tissue outline is drawn on every
panel.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from modaltune.interpret.attention import MAPS, AttentionMaps
from modaltune.interpret.attributions import PathwayAttribution
from modaltune.interpret.heatmaps import SlideView, paint

TITLES = {
    "image_image": "image-image (CLS -> tiles)",
    "image_transcriptomics": "image-transcriptomics (pathways -> tiles)",
    "image_task": "image-task prompt (tiles -> prompt)",
}


def draw_patient(path: str | Path, patient: str, attribution: PathwayAttribution, maps: AttentionMaps,
                 tiles: pd.DataFrame, views: dict[str, SlideView], top: int = 15, subtitle: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from modaltune.io import atomic_path

    slides = list(dict.fromkeys(tiles["slide"]))
    blocks = len(maps.maps[MAPS[0]])
    rows = len(slides) * len(MAPS)
    figure = plt.figure(figsize=(3.2 * (blocks + 1) + 0.6, 0.28 * min(top, len(attribution.table)) + 2.5 + 2.6 * rows))
    grid = figure.add_gridspec(rows + 1, blocks + 2, width_ratios=[1] * (blocks + 1) + [0.06],
                               height_ratios=[max(2.0, 0.11 * top)] + [1] * rows)
    _bars(figure.add_subplot(grid[0, :-1]), patient, attribution, top, subtitle)

    scales = {name: _range(np.concatenate(maps.maps[name])) for name in MAPS}
    for s, slide in enumerate(slides):
        on_slide = (tiles["slide"] == slide).to_numpy()
        view = views[slide]
        for m, name in enumerate(MAPS):
            row = 1 + s * len(MAPS) + m
            thumb = figure.add_subplot(grid[row, 0])
            thumb.imshow(view.image)
            _outline(thumb, view)
            thumb.set_ylabel(f"{TITLES[name]}\n{slide[:23]}", fontsize=7)
            _bare(thumb)
            for block in range(blocks):
                axis = figure.add_subplot(grid[row, block + 1])
                axis.imshow(view.image.mean(axis=2), cmap="gray", vmin=0, vmax=255)
                image = axis.imshow(paint(maps.maps[name][block][on_slide], tiles[on_slide], view),
                                    cmap="inferno", vmin=scales[name][0], vmax=scales[name][1], alpha=0.85,
                                    interpolation="nearest")
                _outline(axis, view)
                _bare(axis)
                if s == 0 and m == 0:
                    axis.set_title(f"adapter block {block + 1}", fontsize=9)
            figure.colorbar(image, cax=figure.add_subplot(grid[row, -1]))
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=90)
    plt.close(figure)


def _bars(axis, patient: str, attribution: PathwayAttribution, top: int, subtitle: str) -> None:
    shown = attribution.table.head(top).iloc[::-1]
    colours = ["#c0392b" if value > 0 else "#2e6fb5" for value in shown["attribution"]]
    axis.barh(shown["pathway"], shown["attribution"], color=colours)
    axis.axvline(0, color="black", linewidth=0.8)
    axis.tick_params(axis="y", labelsize=7)
    axis.set_xlabel("integrated-gradient attribution to log risk (red raises risk, blue lowers it)")
    axis.set_title(
        f"{patient}{subtitle}: risk {attribution.risk_baseline:.3g} with baseline genes (training mean) -> "
        f"{attribution.risk:.3g} with the patient's genes; IG convergence delta {attribution.delta:.2g}",
        fontsize=9)


def _range(values: np.ndarray) -> tuple[float, float]:
    low, high = float(np.nanmin(values)), float(np.nanmax(values))
    return (low, high) if high > low else (low, low + 1e-12)


def _outline(axis, view: SlideView) -> None:
    if view.mask.any():
        axis.contour(view.mask.astype(float), levels=[0.5], colors="lime", linewidths=0.7)


def _bare(axis) -> None:
    axis.set_xticks([])
    axis.set_yticks([])


def attention_table(maps: AttentionMaps, tiles: pd.DataFrame, blocks: Sequence[int] | None = None) -> pd.DataFrame:
    """Long table of the maps: slide, x, y, map, block (1-based), value (one row per tile, map and block)."""
    frames = []
    for name in MAPS:
        for block, values in enumerate(maps.maps[name]):
            if blocks is not None and block not in blocks:
                continue
            frame = tiles[["slide", "x", "y"]].copy()
            frame["map"], frame["block"], frame["value"] = name, block + 1, values
            frames.append(frame)
    return pd.concat(frames, ignore_index=True)
