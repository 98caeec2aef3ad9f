"""Synthetic Aperio-style whole-slide images with a known tissue mask.

A slide is a BigTIFF with one tiled, JPEG-compressed page per pyramid level (downsamples 1, 4, 16, ...; top-level
pages, not SubIFDs) and an Aperio ``ImageDescription`` carrying ``AppMag`` and ``MPP``, so OpenSlide opens it as
vendor ``aperio``. Tiles are produced by a generator, level by level, so a 100k x 80k slide never sits in memory.

Geometry: the tissue is the positive part of a smooth random field defined on the grid of the lowest pyramid level
(blobs with irregular borders, placed away from the slide border). Every level renders from that field: a
level pixel is tissue where the bilinearly interpolated field is positive. The true mask written beside the slide
(``{slide}.mask.png``, 8-bit PNG, 255 = tissue, 0 = not tissue) is that field thresholded at zero, so it has exactly
the pixel size of the lowest pyramid level (OpenSlide ``level_dimensions[-1]``; its downsample is
``level_downsamples[-1]``). Pen strokes and dust specks are drawn on the glass, never on tissue, and are 0 in the
mask.

Appearance: tissue is an H&E-like texture (eosin-pink cytoplasm, pale "clear" spaces, purple nuclei) whose
colours, nuclei density/size and fraction of clear space depend on the subtype (see ``APPEARANCE``); a per-slide
stain jitter keeps slides of one subtype from being identical. Tiles fully inside tissue are drawn from a small
per-slide bank of pre-encoded textures (this keeps huge slides fast); tiles crossing a tissue border, a pen
stroke or a speck are rendered individually.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import imagecodecs
import numpy as np
import tifffile

from modaltune.io import atomic_path

TIFF_TILE = 256
JPEG_QUALITY = 80
LEVEL_FACTOR = 4
MIN_LEVELS = 3
MAX_LOWEST_LEVEL_PX = 2048
TISSUE_BANK_SIZE = 6
GLASS_BANK_SIZE = 4
BACKGROUND_RGB = (241.0, 240.0, 238.0)
SLIDE_KINDS = ("tissue", "pen", "empty", "corrupt")
MIN_FRAGMENT_MM2 = 0.03  # smaller tissue crumbs are dropped: no detector should be asked to keep them


@dataclass(frozen=True)
class Appearance:
    """Stain colours (RGB) and micro-anatomy of one subtype's tissue.

    Hematoxylin stays purple (OpenCV hue >= 125 even after the per-slide jitter) so that stained tissue never has
    the hue of blue or green marker ink (<= 115), as on real slides.
    """

    eosin: tuple[float, float, float]
    hematoxylin: tuple[float, float, float]
    clear: tuple[float, float, float]
    nuclei_per_1000_um2: float
    nucleus_radius_um: float
    clear_fraction: float


APPEARANCE: dict[str, Appearance] = {
    # lung adenocarcinoma: glandular, airy (much clear space), moderate nuclei
    "LUAD": Appearance((232, 168, 198), (95, 62, 150), (246, 232, 238), 4.0, 4.5, 0.30),
    # lung squamous cell carcinoma: solid sheets, dense eosinophilic cytoplasm, crowded large nuclei
    "LUSC": Appearance((214, 128, 165), (72, 40, 118), (240, 215, 225), 8.0, 5.5, 0.05),
    # clear cell RCC: pale cytoplasm, many clear cells, small nuclei
    "KIRC": Appearance((236, 186, 206), (88, 55, 135), (247, 230, 240), 3.5, 3.5, 0.40),
    # papillary RCC: basophilic (purple) papillae, dense nuclei
    "KIRP": Appearance((196, 128, 182), (78, 42, 140), (236, 214, 232), 9.0, 4.5, 0.10),
    # chromophobe RCC: pale grey-pink, large nuclei with perinuclear halos
    "KICH": Appearance((222, 190, 200), (100, 70, 120), (244, 236, 236), 5.0, 5.5, 0.25),
    # rare-set diagnoses and slides of unknown subtype
    "other": Appearance((226, 158, 188), (85, 52, 132), (244, 228, 234), 6.0, 4.5, 0.15),
}


@dataclass(frozen=True)
class Stroke:
    """A pen stroke or dust speck: a polyline (one point for a speck) in level-0 pixels, drawn with ``width``."""

    points: np.ndarray  # (n, 2) float x, y
    width: float
    rgb: tuple[int, int, int]

    def bbox(self) -> tuple[float, float, float, float]:
        half = self.width / 2
        x, y = self.points[:, 0], self.points[:, 1]
        return x.min() - half, y.min() - half, x.max() + half, y.max() + half


def mask_path_of(slide_path: str | os.PathLike) -> Path:
    """``{folder}/{slide}.mask.png`` for ``{folder}/{slide}.svs``."""
    slide_path = Path(slide_path)
    return slide_path.with_name(slide_path.stem + ".mask.png")


def level_sizes(width: int, height: int) -> list[tuple[int, int]]:
    """Pyramid level sizes: factor 4 per level, at least 3 levels, lowest level at most 2048 px on its long side."""
    sizes = [(width, height)]
    while len(sizes) < MIN_LEVELS or max(sizes[-1]) > MAX_LOWEST_LEVEL_PX:
        w, h = sizes[-1]
        if min(w, h) < LEVEL_FACTOR:
            break
        sizes.append((math.ceil(w / LEVEL_FACTOR), math.ceil(h / LEVEL_FACTOR)))
    return sizes


def aperio_description(width: int, height: int, mpp: float, level_size: tuple[int, int] | None = None) -> str:
    """The ImageDescription Aperio scanners write; OpenSlide keys its vendor detection on the first words."""
    app_mag = round(10.0 / mpp)
    if level_size is None:
        return (
            f"Aperio Image Library v12.0.15 \r\n{width}x{height} [0,0 {width}x{height}] ({TIFF_TILE}x{TIFF_TILE}) "
            f"JPEG/RGB Q={JPEG_QUALITY}|AppMag = {app_mag}|StripeWidth = 2040|ScanScope ID = SS0000|"
            f"Filename = synthetic|Date = 01/01/26|Time = 00:00:00|MPP = {mpp:.4f}|Left = 0.0|Top = 0.0"
        )
    return (
        f"Aperio Image Library v12.0.15 \r\n{width}x{height} [0,0 {width}x{height}] ({TIFF_TILE}x{TIFF_TILE}) "
        f"-> {level_size[0]}x{level_size[1]} JPEG/RGB Q={JPEG_QUALITY}"
    )


def write_slide(
    path: str | os.PathLike,
    *,
    seed: int,
    width: int,
    height: int,
    mpp: float = 0.25,
    kind: str = "tissue",
    subtype: str = "other",
    tissue_fraction: float = 0.4,
    severity: float = 0.0,
) -> Path:
    """Write one synthetic slide to ``path`` and its true tissue mask beside it; return the mask path.

    ``kind``: ``tissue`` (tissue blobs and a few dust specks), ``pen`` (the same plus a pen stroke on the glass),
    ``empty`` (glass with specks, no tissue: an all-zero mask) or ``corrupt`` (a tissue slide truncated after
    its header and part of level 0, as an interrupted download leaves it; OpenSlide refuses to open it; its mask is
    that of the intact slide). ``subtype`` is a key of :data:`APPEARANCE`; ``tissue_fraction`` is the approximate
    share of the slide area covered by tissue; ``severity`` (about -1 to 1, e.g. from the tumour stage) makes nuclei
    denser and larger (+30 % and +10 % at 1). Same arguments, same bytes.
    """
    if kind not in SLIDE_KINDS:
        raise ValueError(f"unknown slide kind {kind!r} for {path}; choose one of {', '.join(SLIDE_KINDS)}")
    if subtype not in APPEARANCE:
        raise ValueError(
            f"unknown subtype appearance {subtype!r} for {path}; choose one of {', '.join(APPEARANCE)}"
        )
    if width < 64 or height < 64:
        raise ValueError(f"slide {path} is too small ({width}x{height}); use at least 64x64 pixels")
    rng = np.random.default_rng(seed)
    sizes = level_sizes(width, height)
    low_w, low_h = sizes[-1]
    field = (
        np.full((low_h, low_w), -1.0, np.float32)
        if kind == "empty"
        else _tissue_field(rng, low_w, low_h, tissue_fraction)
    )
    scale = width / low_w, height / low_h  # level-0 pixels per field pixel
    _drop_fragments(field, min_pixels=MIN_FRAGMENT_MM2 * 1e6 / (scale[0] * scale[1] * mpp**2))
    strokes = _dust_specks(rng, field, scale, mpp)
    if kind == "pen":
        strokes.append(_pen_stroke(rng, field, scale, mpp))
    for stroke in strokes:  # glass marks never cover tissue: clear the field beneath them
        _carve(field, stroke, scale)
    painter = _Painter(rng, field, scale, mpp, APPEARANCE[subtype], strokes, severity)

    path = Path(path)
    with atomic_path(path) as tmp:
        with tifffile.TiffWriter(tmp, bigtiff=True) as tif:
            for level, (w, h) in enumerate(sizes):
                description = aperio_description(width, height, mpp, None if level == 0 else (w, h))
                tif.write(
                    painter.encoded_tiles(w, h),
                    shape=(h, w, 3),
                    dtype=np.uint8,
                    tile=(TIFF_TILE, TIFF_TILE),
                    photometric="rgb",
                    compression="jpeg",
                    compressionargs={"level": JPEG_QUALITY},
                    subfiletype=0 if level == 0 else 1,
                    description=description,
                    metadata=None,
                )
        if kind == "corrupt":
            _truncate(tmp)
    mask = np.where(field > 0, 255, 0).astype(np.uint8)
    mask_path = mask_path_of(path)
    ok, png = cv2.imencode(".png", mask)
    if not ok:
        raise RuntimeError(f"could not encode the tissue mask of {path}")
    with atomic_path(mask_path) as tmp:
        tmp.write_bytes(png.tobytes())
    return mask_path


def _truncate(path: Path) -> None:
    """Cut the file inside level 0's tile data: the header survives, the directory chain does not."""
    size = path.stat().st_size
    with open(path, "r+b") as handle:
        handle.truncate(max(1024, size // 3))


def _smooth_noise(rng: np.random.Generator, w: int, h: int, cells: float) -> np.ndarray:
    """Zero-mean, unit-std noise with features about ``cells`` pixels wide."""
    gw, gh = max(2, round(w / cells) + 2), max(2, round(h / cells) + 2)
    coarse = rng.standard_normal((gh, gw)).astype(np.float32)
    noise = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
    return (noise - noise.mean()) / (noise.std() + 1e-6)


def _tissue_field(rng: np.random.Generator, w: int, h: int, tissue_fraction: float) -> np.ndarray:
    """A signed field on the lowest level's grid; tissue where positive. 1-4 blobs with irregular borders."""
    blobs = np.zeros((h, w), np.float32)
    for _ in range(int(rng.integers(1, 5))):
        centre = (float(rng.uniform(0.3, 0.7) * w), float(rng.uniform(0.3, 0.7) * h))
        axes = (float(rng.uniform(0.12, 0.3) * w), float(rng.uniform(0.12, 0.3) * h))
        cv2.ellipse(blobs, (centre, (2 * axes[0], 2 * axes[1]), float(rng.uniform(0, 180))), 1.0, -1)
    sigma = 0.04 * min(w, h)
    smooth = cv2.GaussianBlur(blobs, (0, 0), sigma) + 0.15 * _smooth_noise(rng, w, h, 0.1 * min(w, h))
    margin = max(2, int(0.06 * min(w, h)))  # keep tissue off the slide border, as on a real glass slide
    inside = np.zeros_like(smooth, dtype=bool)
    inside[margin:-margin, margin:-margin] = True
    smooth[~inside] = smooth.min()
    threshold = np.quantile(smooth, 1.0 - tissue_fraction)
    return (smooth - threshold).astype(np.float32)


def _drop_fragments(field: np.ndarray, min_pixels: float) -> None:
    """Turn tissue components smaller than ``min_pixels`` field pixels into glass."""
    _, labels, stats, _ = cv2.connectedComponentsWithStats((field > 0).astype(np.uint8), connectivity=8)
    small = np.flatnonzero(stats[:, cv2.CC_STAT_AREA] < min_pixels)
    small = small[small > 0]  # label 0 is the background
    if len(small):
        field[np.isin(labels, small)] = -1.0


def _free_glass(field: np.ndarray, scale: tuple[float, float], clearance: float) -> np.ndarray:
    """Field pixels at least ``clearance`` level-0 px from tissue and the border: where glass marks may go."""
    tissue = (field > 0).astype(np.uint8)
    if not tissue.any():
        free = np.ones(field.shape, bool)
    else:
        free = cv2.distanceTransform(1 - tissue, cv2.DIST_L2, 3) * min(scale) > clearance
    border = max(1, int(clearance / min(scale)))
    free[:border, :] = free[-border:, :] = False
    free[:, :border] = free[:, -border:] = False
    return free


def _dust_specks(rng: np.random.Generator, field: np.ndarray, scale, mpp: float) -> list[Stroke]:
    """2-6 grey-black specks (15-50 um) on empty glass."""
    specks = []
    for _ in range(int(rng.integers(2, 7))):
        width = float(rng.uniform(15, 50)) / mpp
        free = np.argwhere(_free_glass(field, scale, width))
        if len(free) == 0:
            break
        y, x = free[rng.integers(len(free))]
        grey = int(rng.integers(40, 100))
        centre = np.array([[(x + 0.5) * scale[0], (y + 0.5) * scale[1]]])
        specks.append(Stroke(centre, width, (grey, grey, grey + 3)))
    return specks


def _pen_stroke(rng: np.random.Generator, field: np.ndarray, scale, mpp: float) -> Stroke:
    """A marker stroke (blue, green or black, ~100 um wide) running along the emptiest slide border."""
    h, w = field.shape
    width = float(rng.uniform(80, 140)) / mpp
    free = _free_glass(field, scale, width)
    # the border band (top, bottom, left or right eighth) with the most free glass takes the stroke
    bands = {
        "top": free[: h // 8, :],
        "bottom": free[-(h // 8) :, :],
        "left": free[:, : w // 8],
        "right": free[:, -(w // 8) :],
    }
    side = max(bands, key=lambda name: bands[name].mean())
    t = np.linspace(0.2, 0.8, 6) + rng.uniform(-0.05, 0.05, 6)
    offset = np.clip(0.06 + 0.02 * rng.standard_normal(6), 0.03, 0.09)
    if side in ("top", "bottom"):
        xs, ys = t * w, (offset if side == "top" else 1 - offset) * h
    else:
        xs, ys = (offset if side == "left" else 1 - offset) * w, t * h
    points = np.stack([xs * scale[0], ys * scale[1]], axis=1)
    colour = [(30, 80, 170), (30, 120, 75), (35, 35, 40)][int(rng.integers(3))]
    return Stroke(points, width, colour)


def _carve(field: np.ndarray, stroke: Stroke, scale) -> None:
    """Make the field negative under a glass mark (a margin of 2 field pixels keeps tissue clear of it)."""
    canvas = np.zeros(field.shape, np.uint8)
    points = np.round(stroke.points / np.array(scale)).astype(np.int32)
    thickness = max(1, round(stroke.width / min(scale))) + 4
    if len(points) == 1:
        cv2.circle(canvas, tuple(int(v) for v in points[0]), thickness // 2, 1, -1)
    else:
        cv2.polylines(canvas, [points], False, 1, thickness)
    field[canvas > 0] = np.minimum(field[canvas > 0], -1.0)


def _bilinear_axis(
    n_out: int, start: float, step: float, n_in: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Neighbour indices and weight of the upper one for outputs at grid coordinates ``start + i * step``."""
    coords = np.clip(start + step * np.arange(n_out), 0, n_in - 1)
    lower = np.floor(coords).astype(int)
    upper = np.minimum(lower + 1, n_in - 1)
    return lower, upper, (coords - lower).astype(np.float32)


class _Painter:
    """Renders and JPEG-encodes the tiles of every pyramid level of one slide."""

    def __init__(
        self, rng, field, scale, mpp, appearance: Appearance, strokes: list[Stroke], severity: float
    ):
        self.rng = rng
        self.field = field
        self.scale = scale
        self.mpp = mpp
        self.strokes = strokes
        jitter = rng.uniform(0.94, 1.06, size=3)  # per-slide stain variation
        self.eosin = np.clip(np.array(appearance.eosin) * jitter, 0, 255).astype(np.float32)
        self.hematoxylin = np.clip(np.array(appearance.hematoxylin) * jitter, 0, 255).astype(np.float32)
        self.clear = np.clip(np.array(appearance.clear) * jitter, 0, 255).astype(np.float32)
        self.density = (
            appearance.nuclei_per_1000_um2 / 1000.0 * float(rng.uniform(0.9, 1.1)) * (1 + 0.3 * severity)
        )
        self.radius_um = appearance.nucleus_radius_um * (1 + 0.1 * severity)
        self.clear_fraction = appearance.clear_fraction
        # bare glass looks the same at every magnification: one bank serves all levels
        self.glass_bank = [_to_uint8(self._glass()) for _ in range(GLASS_BANK_SIZE)]
        self.glass_jpeg = [self._encode(tile) for tile in self.glass_bank]

    def encoded_tiles(self, w: int, h: int) -> Iterator[bytes]:
        """JPEG tiles of the level of size ``w`` x ``h`` in row-major order."""
        level0_w = self.field.shape[1] * self.scale[0]
        downsample = level0_w / w
        field_step = downsample / self.scale[0], downsample / self.scale[1]
        um_per_px = self.mpp * downsample
        n_x, n_y = math.ceil(w / TIFF_TILE), math.ceil(h / TIFF_TILE)
        bank_size = min(TISSUE_BANK_SIZE, max(1, n_x * n_y // 8))  # small levels need little variety
        tissue_bank = [_to_uint8(self._tissue_texture(um_per_px)) for _ in range(bank_size)]
        glass_bank = self.glass_bank
        tissue_jpeg = [self._encode(tile) for tile in tissue_bank]
        glass_jpeg = self.glass_jpeg
        tissue_choice = self.rng.integers(len(tissue_bank), size=(n_y, n_x))
        glass_choice = self.rng.integers(len(glass_bank), size=(n_y, n_x))
        for ty in range(n_y):
            for tx in range(n_x):
                x0, y0 = tx * TIFF_TILE, ty * TIFF_TILE
                alpha = self._tissue_alpha(x0, y0, field_step)
                marked = self._strokes_in(x0 * downsample, y0 * downsample, TIFF_TILE * downsample)
                if not marked and alpha is True:
                    yield tissue_jpeg[tissue_choice[ty, tx]]
                elif not marked and alpha is False:
                    yield glass_jpeg[glass_choice[ty, tx]]
                else:
                    tissue, glass = tissue_bank[tissue_choice[ty, tx]], glass_bank[glass_choice[ty, tx]]
                    if alpha is True or alpha is False:
                        tile = (tissue if alpha else glass).copy()
                    else:
                        tile = np.where(alpha, tissue, glass)
                    for stroke in marked:
                        _draw(tile, stroke, x0 * downsample, y0 * downsample, downsample)
                    yield self._encode(tile)

    def _strokes_in(self, x: float, y: float, size: float) -> list[Stroke]:
        hits = []
        for stroke in self.strokes:
            left, top, right, bottom = stroke.bbox()
            if left < x + size and right > x and top < y + size and bottom > y:
                hits.append(stroke)
        return hits

    def _tissue_alpha(self, x0: int, y0: int, step: tuple[float, float]) -> np.ndarray | bool:
        """Tissue indicator of the tile at level pixel (x0, y0): True/False when uniform, else a (256, 256, 1) bool array.

        A bilinear interpolant lies between its grid values, so the sign of the field crop under the tile decides
        uniform tiles without interpolating.
        """
        fx0, fy0 = (
            (x0 + 0.5) * step[0] - 0.5,
            (y0 + 0.5) * step[1] - 0.5,
        )  # field coords of the first pixel centre
        fx1, fy1 = fx0 + (TIFF_TILE - 1) * step[0], fy0 + (TIFF_TILE - 1) * step[1]
        left, top = max(0, math.floor(fx0)), max(0, math.floor(fy0))
        crop = self.field[top : math.floor(fy1) + 2, left : math.floor(fx1) + 2]
        if crop.size == 0 or crop.max() <= 0:
            return False
        if crop.min() > 0:
            return True
        # separable bilinear interpolation (elementwise: tiny matrix products are slow on a busy BLAS pool)
        top_row, bottom_row, wy = _bilinear_axis(TIFF_TILE, fy0 - top, step[1], crop.shape[0])
        left_col, right_col, wx = _bilinear_axis(TIFF_TILE, fx0 - left, step[0], crop.shape[1])
        rows = crop[top_row] * (1 - wy[:, None]) + crop[bottom_row] * wy[:, None]
        values = rows[:, left_col] * (1 - wx) + rows[:, right_col] * wx
        return (values > 0)[..., None]

    def _glass(self) -> np.ndarray:
        noise = self.rng.standard_normal((TIFF_TILE, TIFF_TILE, 1), dtype=np.float32)
        return np.array(BACKGROUND_RGB, np.float32) + 1.2 * noise

    def _tissue_texture(self, um_per_px: float) -> np.ndarray:
        """One tile of H&E-like texture at ``um_per_px``: cytoplasm, clear spaces, nuclei, stain noise."""
        size = TIFF_TILE
        cell_px = max(2.0, 12.0 / um_per_px)  # cells are ~12 um across
        clear_noise = _smooth_noise(self.rng, size, size, cell_px)
        clear = (clear_noise > np.quantile(clear_noise, 1 - self.clear_fraction)).astype(np.float32)
        clear = cv2.GaussianBlur(clear, (0, 0), max(0.5, 0.15 * cell_px))[..., None]
        image = self.eosin * (1 - clear) + self.clear * clear
        radius_px = self.radius_um / um_per_px
        area_um2 = (size * um_per_px) ** 2
        if radius_px >= 1.5:
            nuclei = np.zeros((size, size), np.float32)
            count = self.rng.poisson(self.density * area_um2)
            centres = self.rng.uniform(0, size, size=(count, 2))
            radii = radius_px * self.rng.uniform(0.75, 1.25, size=count)
            for (cx, cy), r in zip(centres, radii, strict=True):
                cv2.circle(nuclei, (int(cx), int(cy)), max(1, int(round(r))), 1.0, -1, lineType=cv2.LINE_AA)
            nuclei = nuclei[..., None]
        else:  # nuclei are below a pixel: their share of the area tints the pixel
            coverage = min(0.9, self.density * math.pi * self.radius_um**2)
            nuclei = np.clip(coverage * (1 + 0.5 * _smooth_noise(self.rng, size, size, 3.0)), 0, 1)[..., None]
        image = image * (1 - nuclei) + self.hematoxylin * nuclei
        shade = 1 + 0.05 * _smooth_noise(self.rng, size, size, size / 3)[..., None]
        grain = 4.0 * self.rng.standard_normal((size, size, 1), dtype=np.float32)
        return image * shade + grain

    @staticmethod
    def _encode(tile: np.ndarray) -> bytes:
        """The JPEG tifffile itself would write for an RGB tile (YCbCr, 2x2 chroma subsampling)."""
        return imagecodecs.jpeg8_encode(
            tile, level=JPEG_QUALITY, colorspace="RGB", outcolorspace="YCBCR", subsampling=(2, 2)
        )


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(image, 0, 255).astype(np.uint8)


def _draw(tile: np.ndarray, stroke: Stroke, x0: float, y0: float, downsample: float) -> None:
    """Paint a glass mark into a tile whose top-left is (x0, y0) in level-0 pixels."""
    points = np.round((stroke.points - [x0, y0]) / downsample * 16).astype(np.int32)  # 4 fractional bits
    thickness = max(1, round(stroke.width / downsample))
    if len(points) == 1:
        cv2.circle(
            tile,
            tuple(int(v) for v in points[0]),
            16 * max(1, thickness // 2),
            stroke.rgb,
            -1,
            cv2.LINE_AA,
            4,
        )
    else:
        cv2.polylines(tile, [points], False, stroke.rgb, thickness, cv2.LINE_AA, 4)
