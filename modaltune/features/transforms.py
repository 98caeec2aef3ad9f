"""The CPU half of an encoder's input transform, run in the DataLoader workers.

Resize and centre crop follow torchvision (`Resize(resize_px, bicubic)` on a PIL image, then `CenterCrop`), so
results match the reference pipelines pixel for pixel. The output stays uint8 (a quarter of the bytes of float32
through pinned memory and the host-to-device copy); scaling to [0, 1] and the mean/std normalisation run on the
device, batched, in :meth:`modaltune.features.encoders.Encoder.encode`.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from .registry import TransformConfig


class TilePreprocess:
    def __init__(self, config: TransformConfig):
        if config.resize_px < config.crop_px:
            raise ValueError(f"resize_px {config.resize_px} is smaller than crop_px {config.crop_px}")
        self.config = config

    def __call__(self, image: Image.Image) -> np.ndarray:
        """RGB PIL image -> uint8 array (3, crop_px, crop_px)."""
        image = self.resize(image)
        width, height = image.size
        crop = self.config.crop_px
        # torchvision's centre crop rounds the offset the same way
        left = int(round((width - crop) / 2.0))
        top = int(round((height - crop) / 2.0))
        image = image.crop((left, top, left + crop, top + crop))
        return np.ascontiguousarray(np.asarray(image, dtype=np.uint8).transpose(2, 0, 1))

    def resize(self, image: Image.Image) -> Image.Image:
        """Shorter side to ``resize_px`` keeping the aspect ratio; a no-op when it already has that size."""
        width, height = image.size
        target = self.config.resize_px
        short, long = min(width, height), max(width, height)
        if short == target:
            return image
        long_target = int(target * long / short)
        size = (target, long_target) if width <= height else (long_target, target)
        return image.resize(size, Image.Resampling.BICUBIC)
