"""`modaltune synth-site` and `modaltune synth-pathways`: write the synthetic demo cohort."""

from __future__ import annotations

from modaltune.config import section_from_json


def register(subparsers) -> None:
    site = subparsers.add_parser(
        "synth-site", help="write one demo site: clinical.tsv, Xena matrix, slides, masks"
    )
    site.add_argument("--site", required=True, help="demo site, e.g. NSCLC or RCC")
    site.add_argument("--clinical", required=True, help="GDC-style clinical.tsv to write")
    site.add_argument("--rna", required=True, help="Xena HiSeqV2-style matrix to write")
    site.add_argument("--truth", required=True, help="table of the generator's hidden truth to write")
    site.add_argument("--slides", nargs="+", required=True, help="the planned slide files, in plan order")
    site.add_argument("--params", required=True, help="the config's `demo` section as JSON")
    site.set_defaults(func=_site)
    pathways = subparsers.add_parser("synth-pathways", help="write the demo's SurvPath-style pathways.csv")
    pathways.add_argument(
        "--output", required=True, help="pathway CSV to write, e.g. results/demo/pathways.csv"
    )
    pathways.add_argument("--params", required=True, help="the config's `demo` section as JSON")
    pathways.set_defaults(func=_pathways)


def _site(args) -> None:
    from modaltune.synth.generate import build_site

    tables = {"clinical": args.clinical, "rna": args.rna, "truth": args.truth}
    build_site(args.site, section_from_json("demo", args.params), tables, args.slides)


def _pathways(args) -> None:
    from modaltune.synth.tables import write_pathways

    write_pathways(args.output, section_from_json("demo", args.params))
