"""`modaltune tables`: the paper-style result tables from every probe file."""

from __future__ import annotations


def register(subparsers) -> None:
    parser = subparsers.add_parser("tables", help="results tables (CSV, Markdown, HTML) from probe JSON files")
    parser.add_argument("probes", nargs="+", help="results/probes/{experiment}/{site}/seed{seed}.json files")
    parser.add_argument("--out", required=True, help="output stem or any of its files, e.g. results/tables/results(.csv)")
    parser.add_argument("--labels", default="{}", help="JSON object: experiment name -> row label (evaluation.labels)")
    parser.set_defaults(func=run)


def run(args) -> int:
    import json

    from modaltune.report.tables import collect_probes, results_table, write_tables

    for path in write_tables(results_table(collect_probes(args.probes)), args.out, json.loads(args.labels)):
        print(path)
    return 0
