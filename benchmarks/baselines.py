"""Seconds per training epoch and peak memory of each supervised baseline, next to ModalTune's training step.

Every baseline runs at its configured (schema default) width on the paper's inputs: 1536-d Gigapath tile features,
Gigapath's 12-layer 768-d LongNet for gigapath_tuned (random weights; activation checkpointing on the GPU, as
config/tcga.yaml), 4,987 genes in 331 pathways for the genomics models; the multimodal ones (MCAT, SurvPath, the
late-fusion (cat) and (KP) models) read both. One training step = forward, cross-entropy over 4 classes, backward
and an AdamW step for one patient whose bag holds all N tiles (no tile cap, so that the cost at N is visible;
training caps bags at baselines.training.tile_cap); an epoch = ``--patients`` such steps. The
genomics baselines read no tiles and are measured once. ModalTune's step is benchmarks/train_step.py's (full width,
the three task passes batched) on a bag of the same size. Each measurement runs in a fresh process, so its peak
memory is its own: ``torch.cuda.max_memory_allocated`` on the GPU, on the CPU the growth of the peak resident set.
A configuration whose estimated step time (the previous size's, scaled linearly) exceeds ``--max-seconds`` is skipped.

    python benchmarks/baselines.py [--device cpu|cuda] [--tiles 1000 10000 25000] [--models abmil ...]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os

from train_step import _cuda, _pathways, time_step
from train_step import measure as measure_modaltune

from modaltune.baselines.registry import BASELINES

FEATURE_DIM, N_GENES, N_PATHWAYS = 1536, 4987, 331
MODALTUNE = "modaltune"


def measure(name: str, tiles: int, device: str, threads: int, queue) -> None:
    import numpy as np
    import torch
    import torch.nn.functional as F

    from modaltune.baselines import create_baseline
    from modaltune.baselines.base import BaselineInputs, PatientInput
    from modaltune.baselines.train import run_settings
    from modaltune.config import validate

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    architecture, optimiser, _ = run_settings(validate({"baselines": {}})["baselines"], name)
    encoder = {"name": "gigapath_slide_enc12l768d", "weights": "random", "checkpointing": device == "cuda"}
    inputs = BaselineInputs(FEATURE_DIM, N_GENES, _pathways(N_PATHWAYS, N_GENES, rng), encoder)
    model = create_baseline(name, 4, inputs, **architecture).to(device).train()
    optimizer = torch.optim.AdamW(model.param_groups(optimiser["weight_decay"]), lr=optimiser["lr"])
    side = int(np.ceil(np.sqrt(tiles)))
    grid = np.stack(np.meshgrid(np.arange(side), np.arange(side)), -1).reshape(-1, 2)[:tiles] * 256
    patient = PatientInput(torch.randn(tiles, FEATURE_DIM), torch.from_numpy(grid), torch.randn(N_GENES)).to(device)
    target = torch.tensor([1], device=device)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device == "cuda" else torch.autocast("cpu",
                                                                                                     enabled=False)

    def step():
        with autocast:
            logits = model(patient)
        F.cross_entropy(logits.float().unsqueeze(0), target).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    queue.put(time_step(step, device))


def run_isolated(name: str, tiles: int, device: str, threads: int) -> tuple[float, int]:
    context = mp.get_context("spawn")
    queue = context.Queue()
    if name == MODALTUNE:
        process = context.Process(target=measure_modaltune, args=("full", tiles, True, device, threads, queue))
    else:
        process = context.Process(target=measure, args=(name, tiles, device, threads, queue))
    process.start()
    process.join()
    if process.exitcode != 0:
        raise RuntimeError(f"measurement {name} at {tiles} tiles failed with exit code {process.exitcode}")
    return queue.get()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if _cuda() else "cpu")
    parser.add_argument("--tiles", type=int, nargs="+", default=[1000, 10000, 25000])
    parser.add_argument("--models", nargs="+", default=[*BASELINES, MODALTUNE], choices=[*BASELINES, MODALTUNE])
    parser.add_argument("--patients", type=int, default=100, help="training patients per epoch")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--max-seconds", type=float, default=60.0, help="skip steps estimated to take longer")
    args = parser.parse_args()
    print(f"device {args.device}, {args.threads} threads; step = forward + loss + backward + AdamW for one patient; "
          f"epoch = {args.patients} steps")
    print(f"{'model':15} {'tiles':>6} {'step s':>8} {'epoch s':>9} {'peak MB':>8}")
    skipped = []
    for name in args.models:
        sizes = sorted(args.tiles)
        if name in BASELINES and BASELINES[name].modality == "genomics":
            sizes = sizes[:1]  # reads genes only: the bag size does not matter
        last = None  # (tiles, seconds) at the previous size
        for tiles in sizes:
            estimate = None if last is None else last[1] * tiles / last[0]
            if estimate is not None and estimate > args.max_seconds:
                skipped.append(f"{name} at {tiles} tiles (estimated {estimate:.0f} s per step)")
                continue
            seconds, peak = run_isolated(name, tiles, args.device, args.threads)
            shown = "-" if name in BASELINES and BASELINES[name].modality == "genomics" else str(tiles)
            print(f"{name:15} {shown:>6} {seconds:>8.3f} {seconds * args.patients:>9.1f} {peak / 2**20:>8.0f}",
                  flush=True)
            last = (tiles, seconds)
    for line in skipped:
        print(f"skipped: {line} > --max-seconds {args.max_seconds:.0f}")


if __name__ == "__main__":
    main()
