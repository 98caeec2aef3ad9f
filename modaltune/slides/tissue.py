"""HSV tissue detection on a low-resolution copy of the slide (CLAM-like, see reference E.3).

Steps, all at ``seg_mpp`` microns per pixel (read from the coarsest pyramid level at least that fine and
downscaled; on huge slides a coarser level when that one exceeds ``max_read_mpx`` megapixels):

1. median blur of the RGB image (kernel ``mthresh``) so that single noisy pixels and JPEG ringing do not count;
2. RGB -> HSV (OpenCV 8-bit: hue 0-180, saturation and value 0-255);
3. artefacts are flagged first, so that they bias no threshold and no morphology glues them to tissue:
   - dark pixels (value < ``min_value``): black ink and dirt are darker than any stained tissue;
   - grey pixels (saturation < ``grey_max_saturation`` and value < ``grey_max_value``): dust and debris are dark
     without colour, whereas tissue that dark is always strongly stained;
   - pen ink: pixels with saturation >= ``pen_min_saturation`` whose hue lies in one of ``pen_hues`` (default green
     to blue, OpenCV 35-120); haematoxylin is blue-purple (hue ~125-140) and eosin pink (~150-180);
   the artefact mask is dilated by ``artefact_margin_px`` so the anti-aliased rim of a stroke or speck goes too;
4. foreground = saturation above a threshold: ``fixed`` (``sthresh``, CLAM's rule), ``otsu`` (Otsu on the
   saturation of the non-artefact pixels, never below ``sthresh`` so a blank slide stays blank) or ``mean_ratio``
   (> ``mean_ratio`` x mean saturation, dplabtools' HSV mode used by ModalTune's official code);
   plus, unless ``glass_distance`` is 0, every pixel whose colour differs from the bare glass by more than
   ``glass_distance`` in some RGB channel (the glass colour is estimated per slide). This catches pale tissue
   (clear-cell carcinoma, faint eosin) that a saturation threshold high enough to ignore JPEG chroma bleed misses;
5. morphological closing with a ``close`` x ``close`` square (bridges thin gaps inside tissue; odd, so the mask
   does not shift);
6. connected components smaller than ``min_object_mm2`` are dropped (dust specks, stray pen dots, lint), and
   background holes smaller than ``min_hole_mm2`` that do not touch the border are filled.

The defaults were chosen on the synthetic demo cohort (IoU against the true masks, reported by
tests/unit/test_slides.py and benchmarks/tiling.py); they follow CLAM's order of magnitude (CLAM's bwh presets:
saturation > 15, median 11, closing 2-4) at CLAM's segmentation resolution for 40x TCGA slides (level 2, 4 um/px).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from modaltune.slides.reader import Level, Slide, SlideError

THRESHOLD_METHODS = ("fixed", "otsu", "mean_ratio")
# CLAM refuses to segment on a level larger than this; only a slide without coarser pyramid levels gets here.
MAX_DETECTION_READ_PIXELS = 100_000_000


@dataclass(frozen=True)
class TissueMask:
    """A boolean tissue mask and the RGB image it was computed from, both at ``mpp`` microns per pixel.

    ``downsample_x``/``downsample_y`` are level-0 pixels per mask pixel along each axis (the mask size is rounded,
    so the two can differ slightly).
    """

    mask: np.ndarray
    image: np.ndarray
    mpp: float
    downsample_x: float
    downsample_y: float

    @property
    def tissue_fraction(self) -> float:
        return float(self.mask.mean()) if self.mask.size else 0.0


@dataclass(frozen=True)
class TissueDetector:
    """HSV saturation thresholding with artefact removal; every parameter is a config key under slides.detection."""

    seg_mpp: float = 4.0
    max_read_mpx: float = 16.0
    threshold: str = "fixed"
    sthresh: int = 15
    mean_ratio: float = 1.1
    mthresh: int = 5
    close: int = 3
    min_value: int = 60
    grey_max_saturation: int = 30
    grey_max_value: int = 140
    glass_distance: int = 8
    pen_hues: list[list[int]] = field(default_factory=lambda: [[35, 120]])
    pen_min_saturation: int = 40
    artefact_margin_px: int = 2
    min_object_mm2: float = 0.01
    min_hole_mm2: float = 0.005

    def __post_init__(self):
        if self.threshold not in THRESHOLD_METHODS:
            raise ValueError(f"threshold must be one of {THRESHOLD_METHODS}, got {self.threshold!r}")
        if self.mthresh < 1 or self.mthresh % 2 == 0:
            raise ValueError(
                f"mthresh (median blur kernel) must be a positive odd number, got {self.mthresh}"
            )
        if self.close > 1 and self.close % 2 == 0:
            # an even kernel has no centre, so OpenCV's closing would shift the mask by a pixel
            raise ValueError(f"close (closing kernel) must be 0, 1 or odd, got {self.close}")
        for band in self.pen_hues:
            if len(band) != 2 or not 0 <= band[0] <= band[1] <= 180:
                raise ValueError(f"pen_hues entries are [low, high] within 0-180 (OpenCV hue), got {band}")

    def params(self) -> dict:
        return asdict(self)

    def detect(self, slide: Slide) -> TissueMask:
        """Read the slide at (about) ``seg_mpp`` and return its tissue mask."""
        import cv2

        level = self.detection_level(slide)
        image = slide.read_level(level)
        width0, height0 = slide.dimensions
        scale = level.mpp / self.seg_mpp
        if scale < 0.99:  # the level is finer than needed: downscale (never upscale a capped, coarser level)
            size = (max(1, round(level.width * scale)), max(1, round(level.height * scale)))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        mask_mpp = width0 / image.shape[1] * slide.mpp
        return TissueMask(
            mask=self.mask_from_rgb(image, mask_mpp),
            image=image,
            mpp=mask_mpp,
            downsample_x=width0 / image.shape[1],
            downsample_y=height0 / image.shape[0],
        )

    def detection_level(self, slide: Slide) -> Level:
        """The coarsest level at least as fine as ``seg_mpp``; while it has more than ``max_read_mpx`` megapixels
        and a coarser level exists, the next coarser one (bounds the cost on huge slides, as CLAM's level choice)."""
        level = slide.best_level(self.seg_mpp)
        coarser = slide.levels[level.index + 1 :]
        while level.width * level.height > self.max_read_mpx * 1e6 and coarser:
            level, coarser = coarser[0], coarser[1:]
        if level.width * level.height > MAX_DETECTION_READ_PIXELS:
            raise SlideError(
                f"{slide.path}: the coarsest pyramid level usable for tissue detection is "
                f"{level.width}x{level.height} px (level {level.index}); the slide needs more pyramid levels "
                "(e.g. `vips tiffsave in out.tif --tile --pyramid --compression jpeg`)"
            )
        return level

    def mask_from_rgb(self, rgb: np.ndarray, mask_mpp: float) -> np.ndarray:
        """The tissue mask (bool, same height and width) of an RGB uint8 image at ``mask_mpp`` um/px.

        Masks are uint8 0/255 images handled by OpenCV (a 31-Mpx detection image costs well under a second).
        """
        import cv2

        blurred = cv2.medianBlur(np.ascontiguousarray(rgb), self.mthresh) if self.mthresh > 1 else rgb
        hsv = cv2.cvtColor(blurred, cv2.COLOR_RGB2HSV)
        _, saturation, value = cv2.split(hsv)

        artefact = np.zeros(value.shape, np.uint8)
        if self.min_value > 0:
            artefact |= cv2.inRange(value, 0, self.min_value - 1)
        if self.grey_max_saturation > 0 and self.grey_max_value > 0:
            artefact |= cv2.inRange(
                hsv, (0, 0, 0), (255, self.grey_max_saturation - 1, self.grey_max_value - 1)
            )
        for low, high in self.pen_hues:
            artefact |= cv2.inRange(hsv, (low, self.pen_min_saturation, 0), (high, 255, 255))
        if self.artefact_margin_px > 0:
            size = 2 * self.artefact_margin_px + 1
            artefact = cv2.dilate(artefact, np.ones((size, size), np.uint8))
        clean = cv2.bitwise_not(artefact)

        threshold = self._saturation_threshold(saturation, clean)
        tissue = cv2.threshold(saturation, threshold, 255, cv2.THRESH_BINARY)[1]  # saturation > threshold
        if self.glass_distance > 0:
            tissue |= self._differs_from_glass(
                blurred, value, cv2.bitwise_and(cv2.bitwise_not(tissue), clean)
            )
        mask = cv2.bitwise_and(tissue, clean) // 255

        if self.close > 1:
            mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((self.close, self.close), np.uint8))
        pixel_mm2 = (mask_mpp / 1000.0) ** 2
        mask = _drop_small_components(mask, min_area=self.min_object_mm2 / pixel_mm2)
        mask = 1 - _drop_small_components(1 - mask, min_area=self.min_hole_mm2 / pixel_mm2, keep_border=True)
        return mask.astype(bool)

    def _differs_from_glass(self, rgb: np.ndarray, value: np.ndarray, unsaturated: np.ndarray) -> np.ndarray:
        """Pixels (0/255) whose colour is more than ``glass_distance`` away from the bare glass in some channel.

        The glass colour is the mean colour of the unsaturated pixels whose brightness is within 2 of the most
        common one. This catches pale tissue (clear cells, faint eosin) that is darker, brighter or differently
        tinted than the glass without being saturated enough for the saturation threshold.
        """
        import cv2

        histogram = cv2.calcHist([value], [0], unsaturated, [256], [0, 256]).ravel()
        if not histogram.any():
            return np.zeros(value.shape, np.uint8)
        mode = int(histogram.argmax())
        near_mode = cv2.bitwise_and(cv2.inRange(value, max(0, mode - 2), min(255, mode + 2)), unsaturated)
        glass = np.array(cv2.mean(rgb, mask=near_mode)[:3])
        low = tuple(np.clip(glass - self.glass_distance, 0, 255).tolist())
        high = tuple(np.clip(glass + self.glass_distance, 0, 255).tolist())
        return cv2.bitwise_not(cv2.inRange(rgb, low, high))

    def _saturation_threshold(self, saturation: np.ndarray, clean: np.ndarray) -> float:
        """The threshold, from the artefact-free (``clean``) pixels only, so a pen stroke cannot pull Otsu up."""
        import cv2

        if self.threshold == "fixed" or not clean.any():
            return float(self.sthresh)
        saturation = saturation[clean > 0]
        if self.threshold == "otsu":
            otsu, _ = cv2.threshold(saturation.reshape(1, -1), 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
            return max(float(otsu), float(self.sthresh))
        return self.mean_ratio * float(saturation.mean())


def _drop_small_components(mask: np.ndarray, min_area: float, keep_border: bool = False) -> np.ndarray:
    """``mask`` (uint8 0/1) without the 8-connected components smaller than ``min_area`` pixels.

    With ``keep_border`` components touching the image border are always kept (used for holes: the background
    around the tissue touches the border and must never be "filled").
    """
    import cv2

    if min_area <= 1 or not mask.any():
        return mask
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    keep = stats[:, cv2.CC_STAT_AREA] >= min_area
    if keep_border:
        h, w = mask.shape
        left, top = stats[:, cv2.CC_STAT_LEFT], stats[:, cv2.CC_STAT_TOP]
        right = left + stats[:, cv2.CC_STAT_WIDTH]
        bottom = top + stats[:, cv2.CC_STAT_HEIGHT]
        keep |= (left == 0) | (top == 0) | (right == w) | (bottom == h)
    keep[0] = False  # label 0 is the complement of mask
    return keep[labels].astype(np.uint8)
