"""Does the KL loss reach every trainable part of ModalTune? Gradient sizes per parameter group at initialisation.

Builds the full-size model (Gigapath's 12-layer 768-d LongNet with random weights, the paper's transcriptomics
encoder over ``--pathways`` random pathways of SurvPath-like sizes, the paper's adapter and head, all from the
config schema's defaults), runs ``--patients`` random patients (``--tiles`` tiles of 1536-d features, z-scored
genes, CONCH-sized random text through the fixed random projector) in training mode, and prints per parameter group
the median |grad|, the share of entries with no gradient, and the share whose |grad| is below each AdamW eps, for
each loss reduction.

Why it matters: Adam's update is m / (sqrt(v) + eps); for a gradient g much smaller than eps the step shrinks by
about g / eps (on the first step exactly g / (g + eps)), so entries below eps barely move. Each patient is one
optimiser step (batch size 1), so the entries of every patient's gradient are pooled.

    python benchmarks/gradients.py [--tiles 64] [--pathways 331] [--patients 2] [--eps 1e-8 1e-10]
    python benchmarks/gradients.py --config config/demo.yaml --pathways 60 --genes 300   # the demo's model
"""

from __future__ import annotations

import argparse
import os
import time

GROUPS = {  # parameter-name prefix -> group
    "omics_encoder.": "omics encoder",
    "adapter.": "adapter",
    "modal_pos": "adapter",
    "task_prompts": "prompts",
    "task_norm.": "prompts",
    "final_norm.": "head",
    "final_project.": "head",
}
TEXT_DIM = 512  # CONCH's text embedding


def group_of(name: str) -> str:
    for prefix, group in GROUPS.items():
        if name.startswith(prefix):
            return group
    raise KeyError(f"parameter {name} belongs to no group of {sorted(set(GROUPS.values()))}")


def random_pathways(n_pathways: int, n_genes: int, rng) -> list[list[int]]:
    """Memberships shaped like SurvPath's (1 to 199 genes per pathway, median about 8, about 9,700 in all)."""
    sizes = rng.lognormal(2.1, 1.0, n_pathways).round().clip(1, 199).astype(int)
    return [sorted(rng.choice(n_genes, size, replace=False).tolist()) for size in sizes]


def build(config_files: list[str], n_pathways: int, n_genes: int, seed: int):
    """The model of the config (schema defaults: the paper's full width) and its training section."""
    import numpy as np
    import torch

    from modaltune.config import load
    from modaltune.models.modaltune import build_modaltune

    torch.manual_seed(seed)
    config = load(config_files)
    pathways = random_pathways(n_pathways, n_genes, np.random.default_rng(seed))
    model_section = dict(config["model"], output_dim=config["text"]["projector_dim"])
    model = build_modaltune(model_section, config["slide_encoder"], pathways, n_genes)
    return model.train(), config["training"]


def gradients(model, n_genes: int, reduction: str, patients: int, tiles: int, temperature: float,
              seed: int) -> dict:
    """Group -> 1-d tensor of |grad| entries pooled over the patients (one backward pass each)."""
    import torch

    from modaltune.text.projector import RandomProjector
    from modaltune.training.objective import kl_to_text

    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)  # the same dropout masks for every reduction
    projector = RandomProjector(TEXT_DIM, model.final_project.out_features, seed=seed)
    side = int(tiles ** 0.5 + 0.999)
    grid = torch.stack(torch.meshgrid(torch.arange(side), torch.arange(side), indexing="ij"), -1).reshape(-1, 2)
    coords = grid[:tiles] * 256
    pooled: dict[str, list] = {}
    for _ in range(patients):
        features = torch.randn(tiles, model.encoder.config.in_chans, generator=generator)
        genes = torch.randn(n_genes, generator=generator)
        targets = projector(torch.randn(len(model.tasks), TEXT_DIM, generator=generator))
        model.zero_grad(set_to_none=True)
        kl_to_text(model(features, coords, genes), targets, temperature, reduction).backward()
        for name, parameter in model.named_parameters():
            if parameter.requires_grad:
                grad = parameter.grad if parameter.grad is not None else torch.zeros_like(parameter)
                pooled.setdefault(group_of(name), []).append(grad.detach().abs().flatten())
    return {group: torch.cat(parts) for group, parts in pooled.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiles", type=int, default=64)
    parser.add_argument("--pathways", type=int, default=331)
    parser.add_argument("--genes", type=int, default=4987, help="the paper's: Xena symbols of its 331 pathways")
    parser.add_argument("--config", nargs="*", default=[],
                        help="config files for the model and training sections (none: the schema's, full width)")
    parser.add_argument("--patients", type=int, default=2, help="random patients (optimiser steps) pooled")
    parser.add_argument("--reductions", nargs="+", default=["mean", "sum_x10"])
    parser.add_argument("--eps", type=float, nargs="+", default=[1e-8, 1e-10], help="AdamW eps values to compare")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import torch

    from modaltune.training.objective import LOSS_REDUCTIONS

    unknown = sorted(set(args.reductions) - set(LOSS_REDUCTIONS))
    if unknown:
        parser.error(f"unknown loss reduction(s) {unknown}; choose from {LOSS_REDUCTIONS}")
    torch.set_num_threads(args.threads)
    began = time.perf_counter()
    model, training = build(args.config, args.pathways, args.genes, args.seed)
    print(f"{model.encoder.config.embed_dim}-d slide encoder ({' + '.join(args.config) or 'schema defaults'}), "
          f"{args.pathways} random pathways over {args.genes} genes, {args.tiles} tiles, {args.patients} random "
          f"patient(s), temperature {training['temperature']}; configured: loss_reduction "
          f"{training['loss_reduction']}, eps {training['eps']:g}")
    eps_columns = "".join(f" {'<' + format(eps, 'g'):>8}" for eps in args.eps)
    print(f"{'reduction':10} {'group':14} {'entries':>11} {'median |g|':>11} {'zero':>6}{eps_columns}")
    for reduction in args.reductions:
        by_group = gradients(model, args.genes, reduction, args.patients, args.tiles, training["temperature"],
                             args.seed)
        for group, values in by_group.items():
            zero = (values == 0).double().mean().item()
            shares = "".join(f" {100 * (values < eps).double().mean().item():>7.1f}%" for eps in args.eps)
            print(f"{reduction:10} {group:14} {values.numel() // args.patients:>11,} "
                  f"{values.median().item():>11.2e} {100 * zero:>5.1f}%{shares}")
    print("zero: entries with no gradient in this step (dropped-out units; the injectors' attention while its gamma "
          "is 0); <eps: entries (zeros included) below that AdamW eps, whose Adam step is damped by more than half; "
          f"{time.perf_counter() - began:.0f} s")

if __name__ == "__main__":
    main()
