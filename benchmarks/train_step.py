"""Seconds and peak memory of one ModalTune training step (one patient: forward, KL loss, backward, AdamW step).

For each model width (tiny = the demo's encoder; full = Gigapath's 12-layer 768-d LongNet with the paper's omics
encoder, 331 pathways over 4,987 genes) and bag size (1k, 10k, 25k tiles), the three task passes run either as one
batch of three (``batched``) or one after the other (``sequential``); the script prints both and their ratio.
Each measurement runs in a fresh process so that its peak memory is its own: on the GPU
``torch.cuda.max_memory_allocated``, on the CPU the growth of the process's peak resident set during the step.
A configuration whose estimated time (the last measured time of the same width, scaled linearly with the tiles)
exceeds ``--max-seconds`` is skipped and listed.

    python benchmarks/train_step.py [--device cpu|cuda] [--sizes 1000 10000 25000] [--widths tiny full]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import time

WIDTHS = {
    # width: (slide encoder, omics (latent, depth, tokens), adapter heads, pathways, genes)
    "tiny": ("tiny", (32, 1, 8), 4, 60, 300),
    "full": ("gigapath_slide_enc12l768d", (256, 3, 64), 12, 331, 4987),
}


def _rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _pathways(n_pathways: int, n_genes: int, rng) -> list[list[int]]:
    """Random memberships shaped like SurvPath's (1 to 199 genes per pathway, median about 8)."""
    sizes = rng.lognormal(2.1, 1.0, n_pathways).round().clip(1, 199).astype(int)
    return [sorted(rng.choice(n_genes, size, replace=False).tolist()) for size in sizes]


def measure(width: str, tiles: int, batched: bool, device: str, threads: int, queue) -> None:
    import numpy as np
    import torch

    from modaltune.models import create_slide_encoder
    from modaltune.models.modaltune import ModalTune
    from modaltune.models.omics_encoder import OmicsEncoder
    from modaltune.training.objective import kl_to_text

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    encoder_name, (latent, depth, tokens), heads, n_pathways, n_genes = WIDTHS[width]
    encoder = create_slide_encoder(encoder_name, weights="random", checkpointing=False)  # timing only
    omics = OmicsEncoder(_pathways(n_pathways, n_genes, rng), n_genes, out_dim=encoder.config.embed_dim,
                         latent_dim=latent, depth=depth, n_tokens=tokens)
    model = ModalTune(encoder, omics, heads=heads, output_dim=256).to(device).train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    side = int(np.ceil(np.sqrt(tiles)))
    grid = np.stack(np.meshgrid(np.arange(side), np.arange(side)), -1).reshape(-1, 2)[:tiles] * 256
    features = torch.randn(tiles, encoder.config.in_chans, device=device)
    coords = torch.from_numpy(grid).to(device)
    genes = torch.randn(n_genes, device=device)
    targets = torch.nn.functional.normalize(torch.randn(3, 256, device=device), dim=-1)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device == "cuda" else torch.autocast("cpu",
                                                                                                     enabled=False)

    def step():
        with autocast:
            outputs = model(features, coords, genes, batched=batched)
        kl_to_text(outputs.float(), targets).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    queue.put(time_step(step, device))


def time_step(step, device: str) -> tuple[float, int]:
    """Seconds and peak memory (bytes) of one call of ``step``: on the GPU after a warm-up call, the allocator's
    peak; on the CPU, the process's peak resident set above the level before the call."""
    import torch

    if device == "cuda":
        step()  # warm-up: kernels, allocator
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    base = _rss_bytes()
    began = time.perf_counter()
    step()
    if device == "cuda":
        torch.cuda.synchronize()
        return time.perf_counter() - began, torch.cuda.max_memory_allocated()
    return time.perf_counter() - began, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base


def run_isolated(*args) -> tuple[float, int]:
    context = mp.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=measure, args=(*args, queue))
    process.start()
    process.join()
    if process.exitcode != 0:
        raise RuntimeError(f"measurement {args} failed with exit code {process.exitcode}")
    return queue.get()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if _cuda() else "cpu")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 25000])
    parser.add_argument("--widths", nargs="+", default=list(WIDTHS), choices=list(WIDTHS))
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--max-seconds", type=float, default=150.0, help="skip steps estimated to take longer")
    args = parser.parse_args()
    print(f"device {args.device}, {args.threads} threads; one step = forward + KL + backward + AdamW, one patient")
    print(f"{'width':6} {'tiles':>6} {'batched s':>10} {'sequential s':>13} {'ratio':>6} "
          f"{'batched MB':>11} {'sequential MB':>14}")
    skipped = []
    for width in args.widths:
        last = None  # (tiles, seconds) of the slowest mode at the previous size
        for tiles in sorted(args.sizes):
            estimate = None if last is None else last[1] * tiles / last[0]
            if estimate is not None and estimate > args.max_seconds:
                skipped.append(f"{width} at {tiles} tiles (estimated {estimate:.0f} s per mode)")
                continue
            batched = run_isolated(width, tiles, True, args.device, args.threads)
            sequential = run_isolated(width, tiles, False, args.device, args.threads)
            print(f"{width:6} {tiles:>6} {batched[0]:>10.2f} {sequential[0]:>13.2f} "
                  f"{sequential[0] / batched[0]:>6.2f} {batched[1] / 2**20:>11.0f} {sequential[1] / 2**20:>14.0f}",
                  flush=True)
            last = (tiles, max(batched[0], sequential[0]))
    print("ratio = sequential / batched seconds (> 1: the batch of three is faster)")
    for line in skipped:
        print(f"skipped: {line} > --max-seconds {args.max_seconds:.0f}")


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


if __name__ == "__main__":
    main()
