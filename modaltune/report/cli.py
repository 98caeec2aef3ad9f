"""`modaltune tables`: the paper-style result tables from every probe file and baseline-run file."""

from __future__ import annotations


def register(subparsers) -> None:
    parser = subparsers.add_parser("tables", help="results tables (CSV, Markdown, HTML) from probe JSON files")
    parser.add_argument("probes", nargs="*", help="results/probes/{experiment}/{site}/seed{seed}.json files")
    parser.add_argument("--baselines", nargs="*", default=[],
                        help="results/baselines/{model}/{site}/seed{seed}/{task}.json files (single-task runs)")
    parser.add_argument("--out", required=True, help="output stem or any of its files, e.g. results/tables/results(.csv)")
    parser.add_argument("--labels", default="{}", help="JSON object: experiment name -> row label (evaluation.labels)")
    parser.add_argument("--modalities", default="{}",
                        help="JSON object: probed experiment -> wsi, genomics or multimodal (default multimodal)")
    parser.add_argument("--order", nargs="*", default=[],
                        help="experiments in row order (probed and single-task alike), the others after them")
    parser.add_argument("--not-run", default="{}",
                        help="JSON object: row label -> why this run cannot fill it (evaluation.ablation_not_run)")
    parser.add_argument("--unranked", nargs="*", default=[],
                        help="experiments left out of the bold best value (Table 3's model supervised on the target)")
    parser.set_defaults(func=run)
    register_validation(subparsers)


def run(args) -> int:
    import json

    import pandas as pd

    from modaltune.baselines.registry import BASELINES
    from modaltune.report.tables import (
        collect_baselines,
        collect_probes,
        in_row_order,
        results_table,
        write_tables,
    )

    if not args.probes and not args.baselines:
        raise SystemExit("modaltune tables: give probe files, --baselines run files, or both")
    long = pd.concat([collect_probes(args.probes, json.loads(args.modalities)), collect_baselines(args.baselines)],
                     ignore_index=True)
    long = in_row_order(long, args.order)
    labels = {name: spec.label for name, spec in BASELINES.items()} | json.loads(args.labels)
    for path in write_tables(results_table(long), args.out, labels, args.unranked, json.loads(args.not_run)):
        print(path)
    return 0


def register_validation(subparsers) -> None:
    parser = subparsers.add_parser(
        "validation-report", help="results.csv beside the synthetic cohort's known answers (validation study)"
    )
    parser.add_argument("--results", required=True, help="results/tables/results.csv")
    parser.add_argument("--sites", nargs="+", required=True, help="the sites, in the order of the files below")
    parser.add_argument("--truth", nargs="+", required=True, help="per site: the generator's truth.tsv")
    parser.add_argument("--cohort", nargs="+", required=True, help="per site: results/cohort/{site}.parquet")
    parser.add_argument("--splits", nargs="+", required=True, help="per site: results/cohort/{site}_splits.parquet")
    parser.add_argument("--seeds", nargs="+", type=int, required=True, help="cohort.seeds")
    parser.add_argument("--params", required=True, help="the config's `validation` section as JSON")
    parser.add_argument("--labels", default="{}", help="JSON object: experiment name -> row label (evaluation.labels)")
    parser.add_argument("--out", required=True, help="Markdown report to write; the known answers go beside it (.csv)")
    parser.set_defaults(func=run_validation)


def run_validation(args) -> int:
    import json

    import pandas as pd

    from modaltune.config import section_from_json
    from modaltune.report.validation import known_answers, write_validation_report

    per_site = (args.truth, args.cohort, args.splits)
    if any(len(files) != len(args.sites) for files in per_site):
        raise SystemExit(f"validation-report: give one --truth, --cohort and --splits file per site ({args.sites}); "
                         f"got {[len(files) for files in per_site]}")
    known = pd.concat([known_answers(site, truth, cohort, splits, args.seeds)
                       for site, truth, cohort, splits in zip(args.sites, *per_site, strict=True)])
    settings = section_from_json("validation", args.params)
    for path in write_validation_report(args.results, known, settings, json.loads(args.labels), args.out):
        print(path)
    return 0
