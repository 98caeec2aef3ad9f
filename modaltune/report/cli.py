"""`modaltune tables`: the paper-style result tables from every probe file and baseline-run file."""

from __future__ import annotations


def register(subparsers) -> None:
    parser = subparsers.add_parser("tables", help="results tables (CSV, Markdown, HTML) from probe JSON files")
    parser.add_argument("probes", nargs="+", help="results/probes/{experiment}/{site}/seed{seed}.json files")
    parser.add_argument("--baselines", nargs="*", default=[],
                        help="results/baselines/{model}/{site}/seed{seed}/{task}.json files (single-task runs)")
    parser.add_argument("--out", required=True, help="output stem or any of its files, e.g. results/tables/results(.csv)")
    parser.add_argument("--labels", default="{}", help="JSON object: experiment name -> row label (evaluation.labels)")
    parser.add_argument("--modalities", default="{}",
                        help="JSON object: probed experiment -> wsi, genomics or multimodal (default multimodal)")
    parser.set_defaults(func=run)


def run(args) -> int:
    import json

    import pandas as pd

    from modaltune.baselines.registry import BASELINES
    from modaltune.report.tables import collect_baselines, collect_probes, results_table, write_tables

    long = pd.concat([collect_probes(args.probes, json.loads(args.modalities)), collect_baselines(args.baselines)],
                     ignore_index=True)
    labels = {name: spec.label for name, spec in BASELINES.items()} | json.loads(args.labels)
    for path in write_tables(results_table(long), args.out, labels):
        print(path)
    return 0
