"""Tile-feature extraction: whole-pipeline tiles/s against model-forward-only tiles/s at the same batch size.

pipeline: :func:`modaltune.features.extract_slide` on a synthetic Aperio-style slide at 0.25 um/px (a TCGA 40x
scan): OpenSlide reads of 512 level-0 px in the DataLoader workers, bicubic resize to 256 px at 0.5 um/px, centre
crop 224, host-to-device copy, normalisation, forward, float16 h5 write. forward: ``Encoder.encode`` on the same
batches already in device memory. ratio = pipeline / forward; >= 0.9 means reading and decoding hide behind compute
(the target wherever compute dominates: a GPU, or a CPU with a model as large as dinov2_vits14).

Weights are random (throughput does not depend on them). With ``--device cuda`` it also prints the fraction of the
GPU's dense bf16 peak that the forward and the pipeline reach, at ``--gflop-per-tile`` (456 for ViT-g/16 at 224 px).

    python benchmarks/features.py                                    # CPU: tiny and dinov2_vits14, about 2 minutes
    python benchmarks/features.py --encoder gigapath --device cuda   # GPU check
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from modaltune.features import create_encoder, extract_slide
from modaltune.io import write_parquet
from modaltune.synth import write_slide

SLIDE_MPP = 0.25
TILE_META = dict(mpp=0.5, tile_px=256, tile_px_level0=512, level=0)

# dense bf16 tensor-core peaks (TFLOP/s, no sparsity) by a substring of torch.cuda.get_device_name(), the first
# match wins: H100/H200 SXM 989 (NVIDIA data sheets), H100 PCIe 756, H100 NVL 835
BF16_PEAK_TFLOPS = {
    "H200": 989.0,
    "H100 PCIe": 756.0,
    "H100 NVL": 835.0,
    "H100": 989.0,
    "A100": 312.0,
    "L40S": 362.0,
    "A10": 125.0,
    "L4": 121.0,
    "4090": 165.0,
}

# per encoder on the CPU: (tiles, batch size)
CPU_RUNS = {"tiny": (256, 32), "dinov2_vits14": (96, 16)}


def make_slide(folder: Path, tiles: int) -> tuple[Path, Path]:
    """A slide holding a square grid of at least ``tiles`` distinct 512-px tiles, and its tile table."""
    side = math.ceil(math.sqrt(tiles))
    slide = folder / f"bench_{side}.svs"
    if not slide.exists():
        write_slide(slide, seed=0, width=side * 512, height=side * 512, mpp=SLIDE_MPP, tissue_fraction=0.9)
    xs, ys = np.meshgrid(np.arange(side) * 512, np.arange(side) * 512)
    table = pd.DataFrame({"x": xs.ravel()[:tiles], "y": ys.ravel()[:tiles], "tissue": 1.0})
    tiles_path = folder / f"bench_{tiles}.parquet"
    write_parquet(table, tiles_path, metadata=TILE_META)
    return slide, tiles_path


def forward_rate(encoder, batch: torch.Tensor, tiles: int) -> float:
    """Tiles/s of ``encoder.encode`` alone on a device-resident uint8 batch, over ``tiles`` tiles."""
    batch = batch.to(encoder.device)
    steps = max(1, tiles // len(batch))
    encoder.encode(batch)  # warm-up: kernels, allocator, thread pools
    _sync(encoder.device)
    start = time.perf_counter()
    for _ in range(steps):
        encoder.encode(batch)
    _sync(encoder.device)
    return steps * len(batch) / (time.perf_counter() - start)


def pipeline_rate(encoder, slide: Path, tiles_path: Path, out: Path, batch_size: int, workers: int) -> float:
    start = time.perf_counter()
    result = extract_slide(
        slide, tiles_path, out, encoder, batch_size=batch_size, workers=workers, progress=False
    )
    _sync(encoder.device)
    return result.tiles / (time.perf_counter() - start)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def bf16_peak_entry(device_name: str) -> tuple[str, float] | None:
    """(table key, dense bf16 TFLOP/s) of the first key of :data:`BF16_PEAK_TFLOPS` in ``device_name``, or None."""
    return next(((key, peak) for key, peak in BF16_PEAK_TFLOPS.items() if key in device_name), None)


def bf16_peak_tflops(override: float | None) -> float | None:
    if override is not None:
        return override
    entry = bf16_peak_entry(torch.cuda.get_device_name())
    return None if entry is None else entry[1]


def run(args, encoder_name: str, tiles: int, batch_size: int, folder: Path) -> None:
    encoder = create_encoder(encoder_name, weights="random", device=args.device, precision=args.precision)
    slide, tiles_path = make_slide(folder, tiles)
    warm_slide, warm_tiles = make_slide(
        folder, batch_size
    )  # warm-up on other tiles: no OpenSlide cache hits later
    pipeline_rate(encoder, warm_slide, warm_tiles, folder / "warm.h5", batch_size, args.workers)
    pipeline = pipeline_rate(encoder, slide, tiles_path, folder / "out.h5", batch_size, args.workers)
    batch = torch.randint(0, 256, (batch_size, 3, 224, 224), dtype=torch.uint8)
    forward = forward_rate(encoder, batch, tiles)
    line = (
        f"{encoder_name:<14} {encoder.device.type:<5} {encoder.precision:<5} tiles {tiles:>5}  batch {batch_size:>4}  "
        f"workers {args.workers:>2}  threads {torch.get_num_threads()}  |  pipeline {pipeline:8.1f} tiles/s  "
        f"forward {forward:8.1f} tiles/s  ratio {pipeline / forward:.2f}"
    )
    if encoder.device.type == "cuda":
        peak = bf16_peak_tflops(args.peak_tflops)
        if peak is None:
            line += f"  | {torch.cuda.get_device_name()}: unknown bf16 peak, pass --peak-tflops"
        else:
            to_fraction = args.gflop_per_tile * 1e9 / (peak * 1e12)
            line += (
                f"  | {torch.cuda.get_device_name()} bf16 peak {peak:.0f} TFLOP/s: forward {forward * to_fraction:.1%}"
                f", pipeline {pipeline * to_fraction:.1%}"
            )
    print(line, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", help="one encoder (default: tiny and dinov2_vits14 on the CPU)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="auto")
    parser.add_argument(
        "--tiles", type=int, help="tiles in the timed run (default: per encoder on CPU, 2048 on GPU)"
    )
    parser.add_argument("--batch-size", type=int, help="default: per encoder on CPU, 256 on GPU")
    parser.add_argument(
        "--workers", type=int, help="DataLoader workers reading tiles (default: 1 on CPU, cores - 2 on GPU)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        help="torch compute threads (default: the CPUs the workers leave, as `modaltune extract`)",
    )
    parser.add_argument(
        "--gflop-per-tile", type=float, default=456.0, help="model cost per tile (ViT-g/16: 456)"
    )
    parser.add_argument(
        "--peak-tflops", type=float, help="the GPU's dense bf16 peak, if not in the built-in table"
    )
    parser.add_argument(
        "--cache", type=Path, default=Path(tempfile.gettempdir()) / "modaltune-bench-features"
    )
    args = parser.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    if args.workers is None:
        args.workers = 1 if args.device == "cpu" else max(1, (os.cpu_count() or 4) - 2)
    torch.set_num_threads(args.threads or max(1, (os.cpu_count() or 2) - args.workers))
    if args.encoder:
        default_tiles, default_batch = CPU_RUNS.get(args.encoder, (2048, 256))
        runs = {args.encoder: (args.tiles or default_tiles, args.batch_size or default_batch)}
    else:
        runs = {name: (args.tiles or t, args.batch_size or b) for name, (t, b) in CPU_RUNS.items()}
    load = os.getloadavg()[0]
    print(
        f"{os.cpu_count()} CPUs, load average {load:.1f} at the start (other processes slow the CPU numbers)"
    )
    for name, (tiles, batch_size) in runs.items():
        run(args, name, tiles, batch_size, args.cache)


if __name__ == "__main__":
    main()
