"""`modaltune evaluate`: fit the paper's probes on one embedding file and write the probe JSON."""

from __future__ import annotations


def register(subparsers) -> None:
    parser = subparsers.add_parser("evaluate", help="linear probes (subtype, survival) on patient embeddings")
    parser.add_argument("--embeddings", required=True, help="results/embeddings/{experiment}/{site}/seed{seed}.parquet")
    parser.add_argument("--cohort", required=True, help="results/cohort/{site}.parquet (labels)")
    parser.add_argument("--splits", required=True, help="results/cohort/{site}_splits.parquet")
    parser.add_argument("--experiment", required=True)
    parser.add_argument("--site", required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--task", default="general", help="which task's embedding the probes read (paper: general)")
    parser.add_argument("--out", required=True, help="probe JSON to write")
    parser.set_defaults(func=run)


def run(args) -> int:
    import logging

    from modaltune.evaluation.probes import evaluate_embeddings, patient_table
    from modaltune.io import write_json

    patients = patient_table(args.embeddings, args.cohort, args.splits, seed=args.seed, task=args.task)
    result = evaluate_embeddings(patients, task=args.task)
    result.update(experiment=args.experiment, site=args.site, seed=args.seed)
    write_json(result, args.out)
    logging.getLogger(__name__).info(
        "%s %s seed %d: balanced accuracy %.3f, C-index %.3f", args.experiment, args.site, args.seed,
        result["subtype"]["balanced_accuracy"], result["survival"]["c_index"],
    )
    return 0
