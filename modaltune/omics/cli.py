"""`modaltune pathways` (membership used by every site) and `modaltune omics` (one site's patient x gene table)."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    pathways = subparsers.add_parser(
        "pathways", help="pathway file + all RNA files -> results/omics/pathways.parquet"
    )
    pathways.add_argument("--pathways", required=True, help="GMT, SurvPath *_comps.csv or *_signatures.csv")
    pathways.add_argument("--rna", nargs="*", default=[], help="every site's expression tables")
    pathways.add_argument("--aliases", help="gene alias table, CSV with columns old,new (config omics.gene_aliases)")
    pathways.add_argument("--output", required=True, help="results/omics/pathways.parquet")
    pathways.set_defaults(func=run_pathways)

    omics = subparsers.add_parser(
        "omics", help="one site's expression tables -> results/omics/{site}.parquet"
    )
    omics.add_argument("--site", required=True)
    omics.add_argument(
        "--rna", nargs="*", default=[], help="the site's expression tables (none: empty table)"
    )
    omics.add_argument("--membership", required=True, help="results/omics/pathways.parquet")
    omics.add_argument("--aliases", help="the gene alias table `modaltune pathways` used")
    omics.add_argument("--output", required=True, help="results/omics/{site}.parquet")
    omics.set_defaults(func=run_omics)


def run_pathways(args: argparse.Namespace) -> None:
    from modaltune.io import write_parquet
    from modaltune.omics.build import build_pathways
    from modaltune.omics.symbols import read_gene_aliases

    match = build_pathways(args.pathways, args.rna, read_gene_aliases(args.aliases))
    write_parquet(match.membership, args.output,
                  {"pathway_file": args.pathways, "gene_aliases": args.aliases, **match.summary()})


def run_omics(args: argparse.Namespace) -> None:
    from modaltune.io import read_parquet, write_parquet
    from modaltune.omics.build import build_site_genes
    from modaltune.omics.symbols import read_gene_aliases

    membership, _ = read_parquet(args.membership)
    table, summary = build_site_genes(args.rna, membership, read_gene_aliases(args.aliases))
    write_parquet(table, args.output, {"site": args.site, **summary})
