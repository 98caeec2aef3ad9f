"""`modaltune tables`: the paper-style result tables from every probe file."""

from __future__ import annotations


def register(subparsers) -> None:
    parser = subparsers.add_parser("tables", help="results tables (CSV, Markdown, HTML) from probe JSON files")
    parser.add_argument("probes", nargs="+", help="results/probes/{experiment}/{site}/seed{seed}.json files")
    parser.add_argument("--out", required=True, help="output stem, e.g. results/tables/results")
    parser.set_defaults(func=run)


def run(args) -> int:
    from modaltune.report.tables import collect_probes, results_table, write_tables

    for path in write_tables(results_table(collect_probes(args.probes)), args.out):
        print(path)
    return 0
