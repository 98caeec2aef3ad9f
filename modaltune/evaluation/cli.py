"""`modaltune evaluate` (the paper's probes on embedding files of one site -> one probe JSON each) and `modaltune embed-frozen` (the
`Gigapath LP` baseline's patient embeddings)."""

from __future__ import annotations

from pathlib import Path

from modaltune.config import sections_from_json

FROZEN_SECTIONS = ("slide_encoder", "training", "features", "evaluation")


def register(subparsers) -> None:
    # Several embedding files of one site per call (the demo's batch rules) pay the sklearn/lifelines import once;
    # --embeddings, --experiment, --seed, --out (and --source) pair up.
    parser = subparsers.add_parser("evaluate", help="linear probes (subtype, survival) on patient embeddings")
    parser.add_argument("--embeddings", required=True, nargs="+",
                        help="results/embeddings/{experiment}/{site}/seed{seed}.parquet files")
    parser.add_argument("--cohort", required=True, help="results/cohort/{site}.parquet (labels)")
    parser.add_argument("--splits", required=True, help="results/cohort/{site}_splits.parquet")
    parser.add_argument("--experiment", required=True, nargs="+", help="one per embedding file")
    parser.add_argument("--site", required=True)
    parser.add_argument("--seed", type=int, required=True, nargs="+", help="one per embedding file")
    parser.add_argument("--task", default="general", help="which task's embedding the probes read (paper: general)")
    parser.add_argument("--source", default=None, nargs="+",
                        help="out-of-distribution runs: the site (or 'pooled') each model was trained on")
    parser.add_argument("--out", required=True, nargs="+", help="probe JSON to write, one per embedding file")
    parser.set_defaults(func=run)

    frozen = subparsers.add_parser("embed-frozen", help="patient embeddings of the frozen slide encoder (Gigapath LP)")
    frozen.add_argument("--site", required=True)
    frozen.add_argument("--seed", type=int, required=True)
    frozen.add_argument("--results", default="results", help="folder holding cohort/, omics/, features/")
    frozen.add_argument("--out", required=True, help="results/embeddings/gigapath_lp/{site}/seed{seed}.parquet")
    frozen.add_argument("--params", required=True, help=f"JSON with the config sections {', '.join(FROZEN_SECTIONS)}")
    frozen.set_defaults(func=run_embed_frozen)


def run(args) -> int:
    import logging

    from modaltune.evaluation.probes import evaluate_embeddings, patient_table
    from modaltune.io import write_json

    runs = len(args.embeddings)
    sources = args.source or [None] * runs
    if not len(args.experiment) == len(args.seed) == len(args.out) == len(sources) == runs:
        raise SystemExit(f"modaltune evaluate: {runs} --embeddings files need as many --experiment, --seed, --out "
                         "(and --source) values")
    for embeddings, experiment, seed, source, out in zip(args.embeddings, args.experiment, args.seed, sources,
                                                         args.out, strict=True):
        patients = patient_table(embeddings, args.cohort, args.splits, seed=seed, task=args.task)
        result = evaluate_embeddings(patients, task=args.task)
        result.update(experiment=experiment, site=args.site, seed=seed)
        if source is not None:
            result["source"] = source
        write_json(result, out)
        logging.getLogger(__name__).info(
            "%s %s seed %d: balanced accuracy %.3f, C-index %.3f", experiment, args.site, seed,
            result["subtype"]["balanced_accuracy"], result["survival"]["c_index"],
        )
    return 0


def run_embed_frozen(args) -> int:
    import torch

    from modaltune.evaluation.frozen import embed_frozen
    from modaltune.training.cli import site_files

    params = sections_from_json(args.params, FROZEN_SECTIONS)
    training = params["training"]
    torch.set_num_threads(training["threads"])
    results = Path(args.results)
    site = site_files(results, args.site, args.seed, params["features"]["encoder"], None)
    embed_frozen(site, args.seed, args.out,
                 slide_encoder=params["slide_encoder"], pool=params["evaluation"]["frozen_baseline"]["pool"],
                 tile_cap=training["tile_cap"], gap_px=training["slide_gap_px"], device=training["device"],
                 precision=training["precision"])
    return 0
