"""Batched tile-feature extraction for one slide: OpenSlide reads in DataLoader workers, the encoder on the device."""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import openslide
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from modaltune.io import read_parquet

from .encoders import Encoder
from .files import write_features
from .transforms import TilePreprocess

log = logging.getLogger(__name__)

# level downsamples of real slides are not exact (4.0002); a level counts as matching within this relative error
LEVEL_TOLERANCE = 1e-3


@dataclass(frozen=True)
class ReadPlan:
    """How to read one tile: a ``read_px`` square at pyramid ``level``, resampled to ``tile_px`` if they differ."""

    level: int
    read_px: int
    tile_px: int


def plan_reads(level_downsamples: tuple[float, ...], tile_px: int, tile_px_level0: int) -> ReadPlan:
    """The coarsest pyramid level that is at least as fine as the target resolution.

    Reading from a finer level and downsampling never loses detail; a coarser level would have to be upsampled.
    """
    target = tile_px_level0 / tile_px
    level = max(
        (i for i, downsample in enumerate(level_downsamples) if downsample <= target * (1 + LEVEL_TOLERANCE)),
        key=lambda i: level_downsamples[i],
        default=0,
    )
    return ReadPlan(level=level, read_px=round(tile_px_level0 / level_downsamples[level]), tile_px=tile_px)


class TileDataset(Dataset):
    """Tiles of one slide as uint8 tensors (3, crop, crop), in the order of ``coords``.

    The OpenSlide handle is opened lazily on first access, so each DataLoader worker opens its own (handles are
    not safe to share across processes) and the parent process holds none when the workers fork.
    """

    def __init__(
        self, slide_path: str | os.PathLike, coords: np.ndarray, plan: ReadPlan, preprocess: TilePreprocess
    ):
        self.slide_path = str(slide_path)
        self.coords = np.asarray(coords, dtype=np.int64)
        self.plan = plan
        self.preprocess = preprocess
        self._slide: openslide.OpenSlide | None = None

    def __len__(self) -> int:
        return len(self.coords)

    def __getitem__(self, index: int) -> torch.Tensor:
        if self._slide is None:
            self._slide = openslide.OpenSlide(self.slide_path)
        x, y = (int(v) for v in self.coords[index])
        size = (self.plan.read_px, self.plan.read_px)
        tile = self._slide.read_region((x, y), self.plan.level, size).convert("RGB")
        if self.plan.read_px != self.plan.tile_px:
            tile = tile.resize((self.plan.tile_px, self.plan.tile_px), Image.Resampling.BICUBIC)
        return torch.from_numpy(self.preprocess(tile))

    def __getstate__(self):  # spawn-started workers get a copy without the parent's handle
        return dict(self.__dict__, _slide=None)


@dataclass(frozen=True)
class ExtractionResult:
    tiles: int
    seconds: float
    plan: ReadPlan | None


def encode_tiles(
    encoder: Encoder, dataset: Dataset, batch_size: int, workers: int, progress: bool = True
) -> np.ndarray:
    """Features (N, D) float16 for every item of ``dataset``, in order."""
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        pin_memory=encoder.device.type == "cuda",
        prefetch_factor=4 if workers > 0 else None,
    )
    features = np.empty((len(dataset), encoder.embed_dim), dtype=np.float16)
    start = 0
    with tqdm(total=len(dataset), unit="tile", disable=not progress, mininterval=2.0) as bar:
        for batch in loader:
            out = encoder.encode(batch)
            features[start : start + len(batch)] = out.to(torch.float16).cpu().numpy()
            start += len(batch)
            bar.update(len(batch))
    if not np.isfinite(features).all():
        raise FloatingPointError(
            f"encoder '{encoder.name}' produced non-finite features at precision {encoder.precision}; "
            "try features.precision: bf16 or fp32"
        )
    return features


def extract_slide(
    slide_path: str | os.PathLike,
    tiles_path: str | os.PathLike,
    out_path: str | os.PathLike,
    encoder: Encoder,
    batch_size: int = 64,
    workers: int = 2,
    progress: bool = True,
) -> ExtractionResult:
    """Encode every tile listed in ``tiles_path`` (results/tiles/{slide}.parquet) and write ``out_path``."""
    started = time.perf_counter()
    tiles, meta = read_parquet(tiles_path)
    if not {"x", "y"} <= set(tiles.columns) or not {"tile_px", "tile_px_level0", "mpp"} <= set(meta):
        raise ValueError(
            f"{tiles_path}: not a tiles table (needs columns x, y and metadata tile_px, tile_px_level0, mpp; "
            f"columns {list(tiles.columns)}, metadata {sorted(meta)}); re-run the tiling step"
        )
    coords = tiles[["x", "y"]].to_numpy(dtype=np.int64)
    plan = None
    if len(coords) == 0:
        # a slide without tissue, or one the tiler could not read (its geometry is then unknown: None)
        log.warning(
            "%s: no tiles in %s (tiling status %s); writing an empty feature file",
            Path(slide_path).name,
            tiles_path,
            meta.get("status", "unknown"),
        )
        features = np.empty((0, encoder.embed_dim), dtype=np.float16)
    else:
        with openslide.OpenSlide(str(slide_path)) as slide:
            plan = plan_reads(slide.level_downsamples, int(meta["tile_px"]), int(meta["tile_px_level0"]))
        log.info(
            "%s: %d tiles, reading %d px at level %d -> %d px",
            Path(slide_path).name,
            len(coords),
            plan.read_px,
            plan.level,
            plan.tile_px,
        )
        dataset = TileDataset(slide_path, coords, plan, encoder.preprocess)
        features = encode_tiles(encoder, dataset, batch_size, workers, progress)
    write_features(
        out_path,
        features,
        coords,
        {
            "encoder": encoder.name,
            "mpp": math.nan if meta["mpp"] is None else float(meta["mpp"]),
            "tile_px": -1 if meta["tile_px"] is None else int(meta["tile_px"]),
            "tile_px_level0": -1 if meta["tile_px_level0"] is None else int(meta["tile_px_level0"]),
            "weights": encoder.weights,
            "precision": encoder.precision,
            "slide": Path(slide_path).name,
        },
    )
    return ExtractionResult(tiles=len(coords), seconds=time.perf_counter() - started, plan=plan)
