"""Open whole-slide images with OpenSlide and answer resolution questions (microns per pixel, pyramid levels).

Every failure to open or read a slide is raised as :class:`SlideError` whose message starts with the slide's path,
so a workflow log says which file to look at.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np


class SlideError(RuntimeError):
    """A slide cannot be opened, read, or has no usable resolution; the message names the file."""


@dataclass(frozen=True)
class Level:
    """One pyramid level: its index, size in pixels and resolution."""

    index: int
    width: int
    height: int
    downsample: float
    mpp: float


class Slide:
    """An opened slide: OpenSlide handle plus the level-0 resolution in microns per pixel.

    Use as a context manager or call :meth:`close`. ``mpp_source`` records where the resolution came from
    (``openslide.mpp-x`` or ``default_mpp``), so outputs can say when a default was assumed.
    """

    def __init__(self, path: str | os.PathLike, default_mpp: float | None = None):
        import openslide

        self.path = Path(path)
        if not self.path.is_file():
            raise SlideError(f"{self.path}: slide file not found")
        try:
            self._handle = openslide.OpenSlide(str(self.path))
        except Exception as error:  # OpenSlideError, OpenSlideUnsupportedFormatError, PIL errors
            raise SlideError(f"{self.path}: cannot open slide ({type(error).__name__}: {error})") from error
        self.mpp, self.mpp_source = self._resolution(default_mpp)
        self.levels = [
            Level(i, w, h, float(ds), self.mpp * float(ds))
            for i, ((w, h), ds) in enumerate(
                zip(self._handle.level_dimensions, self._handle.level_downsamples, strict=True)
            )
        ]

    def _resolution(self, default_mpp: float | None) -> tuple[float, str]:
        raw = self._handle.properties.get("openslide.mpp-x")
        if raw is not None:
            try:
                mpp = float(raw)
            except ValueError:
                mpp = math.nan
            if math.isfinite(mpp) and mpp > 0:
                return mpp, "openslide.mpp-x"
        if default_mpp is None:
            self.close()
            raise SlideError(
                f"{self.path}: no microns-per-pixel metadata (openslide.mpp-x is {raw!r}); set "
                "`slides.default_mpp` in the config to the level-0 resolution of such slides "
                "(0.25 for 40x, 0.5 for 20x scans)"
            )
        return float(default_mpp), "default_mpp"

    @property
    def name(self) -> str:
        """The slide identifier: the file name without its last suffix."""
        return self.path.stem

    @property
    def dimensions(self) -> tuple[int, int]:
        """Level-0 (width, height) in pixels."""
        return self.levels[0].width, self.levels[0].height

    def best_level(self, target_mpp: float, tolerance: float = 0.05) -> Level:
        """The coarsest level that is not coarser than ``target_mpp`` (within ``tolerance``, relative).

        Reading from it and downscaling never upsamples; a 40x slide (0.25 um/px, downsamples 1, 4, 16) gives
        level 0 for 0.5 um/px and level 1 (1 um/px) for 8 um/px.
        """
        usable = [level for level in self.levels if level.mpp <= target_mpp * (1 + tolerance)]
        if not usable:
            raise SlideError(
                f"{self.path}: level 0 is {self.mpp} um/px, coarser than the requested {target_mpp} um/px"
            )
        return usable[-1]

    def read_level(self, level: Level) -> np.ndarray:
        """The whole level as an RGB uint8 array (H, W, 3); transparent (unscanned) areas become white."""
        try:
            region = self._handle.read_region((0, 0), level.index, (level.width, level.height))
        except Exception as error:
            raise SlideError(
                f"{self.path}: cannot read level {level.index} ({level.width}x{level.height}) "
                f"({type(error).__name__}: {error}); the file may be truncated or corrupt"
            ) from error
        import cv2

        rgba = np.asarray(region)
        rgb = cv2.cvtColor(rgba, cv2.COLOR_RGBA2RGB)
        if rgba[..., 3].min() < 255:  # only slides with unscanned (transparent) areas pay for this
            rgb[rgba[..., 3] == 0] = 255
        return rgb

    def close(self) -> None:
        handle = getattr(self, "_handle", None)
        if handle is not None:
            handle.close()
            self._handle = None

    def __enter__(self) -> Slide:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        w, h = self.dimensions
        return f"Slide({self.name!r}, {w}x{h} px, {self.mpp} um/px, {len(self.levels)} levels)"


def open_slide(path: str | os.PathLike, default_mpp: float | None = None) -> Slide:
    """Open ``path``; ``default_mpp`` is used only when the slide has no ``openslide.mpp-x``."""
    return Slide(path, default_mpp=default_mpp)
