"""`modaltune baseline`: train baselines on one site for the given tasks and seeds (one run each).

``--params`` is a JSON object {"baselines": {"training": ..., "<model>": ...}, "slide_encoder": ...}: the shared
protocol, each model's own section, and the slide encoder (its grid places a patient's slides; gigapath_tuned also
builds it). One process trains every (model, seed, task) it is given, reading each patient's tiles once, so the demo
pays the start-up once per site; real cohorts call it with one model, one seed and one task per job.
"""

from __future__ import annotations

from pathlib import Path

from modaltune.config import sections_from_json

SECTIONS = ("baselines", "slide_encoder")


def register(subparsers) -> None:
    parser = subparsers.add_parser("baseline", help="train supervised baselines on one site (models x seeds x tasks)")
    parser.add_argument("--models", nargs="+", required=True, help="registered baseline names (baselines.models)")
    parser.add_argument("--site", required=True)
    parser.add_argument("--seeds", type=int, nargs="+", required=True)
    parser.add_argument("--tasks", nargs="+", required=True, choices=["subtype", "survival"])
    parser.add_argument("--tile-encoder", required=True, help="features.encoder: the feature folder under --results")
    parser.add_argument("--gap-px", type=int, required=True, help="training.slide_gap_px: pixels between slides")
    parser.add_argument("--results", default="results", help="folder holding cohort/, omics/, features/")
    parser.add_argument("--out", default="results/baselines", help="writes {out}/{model}/{site}/seed{seed}/{task}.*")
    parser.add_argument("--params", required=True, help=f"JSON with the config sections {', '.join(SECTIONS)}")
    parser.set_defaults(func=run)


def run(args) -> int:
    import pandas as pd
    import torch

    from modaltune.baselines.data import BagCache, SiteData
    from modaltune.baselines.train import run_settings, train_baseline
    from modaltune.config import validate
    from modaltune.devices import resolve_device
    from modaltune.models.omics_encoder import pathway_gene_indices
    from modaltune.models.slide_encoder import SLIDE_ENCODERS
    from modaltune.training.cli import site_files
    from modaltune.training.data import BagOptions, ExperimentData

    params = sections_from_json(args.params, SECTIONS)
    section = params["baselines"]
    # Per-model overrides of the shared protocol are validated when the run starts (the schema checks their names).
    training = {name: validate({"baselines": {"training": run_settings(section, name)[2]}})["baselines"]["training"]
                for name in args.models}
    torch.set_num_threads(max(t["threads"] for t in training.values()))
    results = Path(args.results)
    files = site_files(results, args.site, args.seeds[0], args.tile_encoder, None)
    grid = SLIDE_ENCODERS[params["slide_encoder"]["name"]]
    bags = BagOptions.for_encoder(grid, None, args.gap_px)  # whole bags; the runs cap them
    cohort = pd.read_parquet(files.cohort, columns=["patient", "subtype_class", "time_months", "event"])
    memberships = pd.read_parquet(results / "omics" / "pathways.parquet")
    cache = BagCache(max(t["bag_cache_mb"] for t in training.values()))
    for seed in args.seeds:
        data = SiteData(ExperimentData([files], seed, bags), cohort, cache)
        _, pathway_genes = pathway_gene_indices(data.experiment.gene_names,
                                                list(zip(memberships["pathway"], memberships["gene"], strict=True)))
        inputs = data.inputs(pathway_genes, params["slide_encoder"])
        for name in args.models:
            device = resolve_device(training[name]["device"])
            for task in args.tasks:
                out = Path(args.out) / name / args.site / f"seed{seed}" / task
                train_baseline(name, data, task, section, inputs, device=device, seed=seed, out_stem=out,
                               run_info={"tile_encoder": args.tile_encoder})
    return 0
