"""`modaltune baseline`: train one baseline on one site for the given tasks and seeds (one run each).

``--params`` is a JSON object {"baselines": {"training": ..., "<model>": ...}, "slide_encoder": ...}: the shared
protocol, the model's own section, and the slide encoder (its grid places a patient's slides; gigapath_tuned also
builds it). One process trains every (task, seed) it is given, so the demo pays the start-up once per baseline and
site; real cohorts call it with one task and one seed per job.
"""

from __future__ import annotations

from pathlib import Path

from modaltune.config import sections_from_json

SECTIONS = ("baselines", "slide_encoder")


def register(subparsers) -> None:
    parser = subparsers.add_parser("baseline", help="train one supervised baseline on one site (tasks x seeds)")
    parser.add_argument("--model", required=True, help="registered baseline name (config baselines.models)")
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
    _, _, training = run_settings(section, args.model)
    training = validate({"baselines": {"training": training}})["baselines"]["training"]  # per-model overrides
    torch.set_num_threads(training["threads"])
    device = resolve_device(training["device"])
    results = Path(args.results)
    files = site_files(results, args.site, args.seeds[0], args.tile_encoder, None)
    grid = SLIDE_ENCODERS[params["slide_encoder"]["name"]]
    bags = BagOptions.for_encoder(grid, None, args.gap_px)  # whole bags; the runs cap them
    cohort = pd.read_parquet(files.cohort, columns=["patient", "subtype_class", "time_months", "event"])
    memberships = pd.read_parquet(results / "omics" / "pathways.parquet")
    cache = BagCache(training["bag_cache_mb"])
    for seed in args.seeds:
        data = SiteData(ExperimentData([files], seed, bags), cohort, cache, tile_cap=training["tile_cap"],
                        eval_tile_cap=training["eval_tile_cap"])
        _, pathway_genes = pathway_gene_indices(data.experiment.gene_names,
                                                list(zip(memberships["pathway"], memberships["gene"], strict=True)))
        inputs = data.inputs(pathway_genes, params["slide_encoder"])
        for task in args.tasks:
            out = Path(args.out) / args.model / args.site / f"seed{seed}" / task
            train_baseline(args.model, data, task, section, inputs, device=device, seed=seed, out_stem=out,
                           run_info={"tile_encoder": args.tile_encoder})
    return 0
