"""One slide in, its tile table, QC image and status record out; and the cohort-level failure table.

Outputs of :func:`tile_slide` (paths chosen by the caller, the workflow uses the data contract):

- tile table (parquet, :func:`modaltune.io.write_parquet`): columns x, y, tissue; metadata ``status``
  (``ok``, ``no_tissue`` or ``failed``), ``error``, the :class:`~modaltune.slides.grid.TileGeometry` fields (``mpp``,
  ``tile_px``, ``tile_px_level0``, ``level``, ``level_px``, ...), ``mpp_source`` and ``detection`` parameters;
- QC PNG;
- status JSON (slide, path, status, n_tiles, reason), which the aggregate rule turns into failed_slides.tsv, and
  which the cohort rule reads to leave out patients without a usable slide.

A slide that cannot be read raises :class:`~modaltune.slides.reader.SlideError` with ``on_error: fail``; with
``on_error: skip`` it gets an empty tile table (geometry fields ``None``), a QC image stating the error and a
``failed`` status. A slide without tissue gets an empty tile table and a logged warning.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from modaltune.io import atomic_path, write_json, write_parquet
from modaltune.slides.grid import TileGeometry, TileGrid
from modaltune.slides.qc import render_message, render_qc, write_png
from modaltune.slides.reader import SlideError, open_slide
from modaltune.slides.tissue import TissueDetector

log = logging.getLogger(__name__)

TILE_COLUMNS = {"x": "int64", "y": "int64", "tissue": "float32"}


@dataclass(frozen=True)
class TilingSettings:
    """The `slides:` config section as objects."""

    grid: TileGrid
    detector: TissueDetector
    default_mpp: float | None = None
    on_error: str = "fail"
    qc_max_px: int = 1200

    @classmethod
    def from_config(cls, section: Mapping[str, Any]) -> TilingSettings:
        """Validate the `slides:` section against its schema (filling defaults) and build the objects."""
        from modaltune.config import validate

        section = validate({"slides": json.loads(json.dumps(section))})["slides"]
        return cls(
            grid=TileGrid(tile_px=section["tile_px"], mpp=section["mpp"], min_tissue=section["min_tissue"]),
            detector=TissueDetector(**section["detection"]),
            default_mpp=section["default_mpp"],
            on_error=section["on_error"],
            qc_max_px=section["qc_max_px"],
        )


@dataclass(frozen=True)
class SlideStatus:
    """What happened to one slide (``status``: ok, no_tissue or failed); written as JSON per slide."""

    slide: str
    path: str
    status: str
    n_tiles: int
    reason: str = ""


def tile_slide(
    slide_path: str | os.PathLike,
    tiles_path: str | os.PathLike,
    qc_path: str | os.PathLike,
    settings: TilingSettings,
    status_path: str | os.PathLike | None = None,
) -> SlideStatus:
    """Detect tissue, build the grid and write the tile table, QC image and (optionally) status JSON."""
    slide_path = Path(slide_path)
    try:
        status = _tile(slide_path, tiles_path, qc_path, settings)
    except SlideError as error:
        if settings.on_error == "fail":
            raise SlideError(f"{error} -- to skip unreadable slides set `slides.on_error: skip`") from error
        log.error("skipping slide %s: %s", slide_path.stem, error)
        status = SlideStatus(slide_path.stem, str(slide_path), "failed", 0, str(error))
        write_parquet(_empty_tiles(), tiles_path, metadata=_failed_metadata(settings, str(error)))
        write_png(render_message(f"FAILED {slide_path.name}: {error}"), qc_path)
    if status_path is not None:
        write_json(asdict(status), status_path)
    return status


def _tile(slide_path: Path, tiles_path, qc_path, settings: TilingSettings) -> SlideStatus:
    with open_slide(slide_path, default_mpp=settings.default_mpp) as slide:
        tissue = settings.detector.detect(slide)
        geometry = settings.grid.geometry(slide)
        tiles = settings.grid.tiles(tissue, slide)
        mpp_source = slide.mpp_source
    status = "ok" if len(tiles) else "no_tissue"
    reason = ""
    if not len(tiles):
        reason = (
            f"no tile reaches min_tissue={settings.grid.min_tissue} "
            f"(tissue mask covers {tissue.tissue_fraction:.1%} of the slide)"
        )
        log.warning("slide %s: %s; writing an empty tile table", slide_path.stem, reason)
    metadata = {
        **asdict(geometry),
        "min_tissue": settings.grid.min_tissue,
        "mpp_source": mpp_source,
        "detection": settings.detector.params(),
        "status": status,
        "error": None,
    }
    write_parquet(tiles.astype(TILE_COLUMNS), tiles_path, metadata=metadata)
    write_png(render_qc(tissue, tiles, geometry, max_px=settings.qc_max_px), qc_path)
    log.info(
        "slide %s: %d tiles (tissue %.1f%% of the slide)",
        slide_path.stem,
        len(tiles),
        100 * tissue.tissue_fraction,
    )
    return SlideStatus(slide_path.stem, str(slide_path), status, len(tiles), reason)


def _empty_tiles() -> pd.DataFrame:
    return pd.DataFrame({name: pd.Series([], dtype=dtype) for name, dtype in TILE_COLUMNS.items()})


def _failed_metadata(settings: TilingSettings, error: str) -> dict[str, Any]:
    unknown = {name: None for name in TileGeometry.__dataclass_fields__}
    return {
        **unknown,
        "mpp": settings.grid.mpp,
        "tile_px": settings.grid.tile_px,
        "min_tissue": settings.grid.min_tissue,
        "mpp_source": None,
        "detection": settings.detector.params(),
        "status": "failed",
        "error": error,
    }


# Status words of the failed-slide table: the slides that give no tile, so no feature.
UNUSABLE_STATUS_WORDS = {"failed": "failed", "no_tissue": "no tissue"}


def write_failed_slides(
    status_paths: Iterable[str | os.PathLike], out_path: str | os.PathLike
) -> pd.DataFrame:
    """Collect the status records of slides without tiles, unreadable (``failed``) or blank (``no tissue``), into a
    TSV with columns slide, status, reason (empty table if none)."""
    records = [json.loads(Path(path).read_text()) for path in status_paths]
    failed = pd.DataFrame(
        [(r["slide"], UNUSABLE_STATUS_WORDS[r["status"]], r["reason"]) for r in records if r["status"] != "ok"],
        columns=["slide", "status", "reason"],
    )
    _write_tsv(failed, out_path)
    return failed


def write_tiling_summary(
    status_paths: Iterable[str | os.PathLike], out_path: str | os.PathLike
) -> pd.DataFrame:
    """One row per slide: slide, status, n_tiles, reason, path."""
    records = [json.loads(Path(path).read_text()) for path in status_paths]
    summary = pd.DataFrame(records, columns=["slide", "status", "n_tiles", "reason", "path"])
    _write_tsv(summary, out_path)
    return summary


def _write_tsv(frame: pd.DataFrame, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, sep="\t", index=False)
