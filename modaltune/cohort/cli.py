"""`modaltune cohort`: one site's harmonised patient table, its splits and its report."""

from __future__ import annotations

import argparse
import sys


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "cohort", help="clinical tables + slides + RNA -> cohort table, splits, report"
    )
    parser.add_argument("--site", required=True)
    parser.add_argument(
        "--projects", nargs="+", required=True, help="TCGA projects of the site, e.g. LUAD LUSC"
    )
    parser.add_argument(
        "--clinical", nargs="+", required=True, help="clinical tables (any recognised format)"
    )
    parser.add_argument("--omics", required=True, help="results/omics/{site}.parquet (its patients have RNA)")
    parser.add_argument("--slides", nargs="*", default=[], help="slide ids (file stems) of the site")
    parser.add_argument("--release-splits", default=None,
                        help="folder of the paper's released split (json_splits/tcga_<site>), sites.<site>.splits")
    parser.add_argument(
        "--slide-status",
        nargs="*",
        default=[],
        help="tiling status records of the site's slides (results/qc/status/{slide}.json): patients whose every "
        "slide failed tiling or has no tissue are left out before splitting",
    )
    parser.add_argument("--params", required=True, help="the `cohort` config section as JSON")
    parser.add_argument("--output", required=True, help="results/cohort/{site}.parquet")
    parser.add_argument("--splits", required=True, help="results/cohort/{site}_splits.parquet")
    parser.add_argument("--report", required=True, help="results/cohort/{site}_report.md")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from modaltune.cohort.build import CohortError, build_site_cohort, rna_patients, unusable_slides
    from modaltune.cohort.report import render_report, write_report
    from modaltune.cohort.splits import SplitPlan
    from modaltune.config import section_from_json
    from modaltune.io import write_parquet

    params = section_from_json("cohort", args.params)  # defaults filled, as the workflow's config has them
    try:
        result = build_site_cohort(
            site=args.site,
            projects=args.projects,
            clinical=args.clinical,
            slide_ids=args.slides,
            rna=rna_patients(args.omics),
            split_plan=SplitPlan.from_config(params, args.release_splits),
            subtypes_file=params["subtypes_file"],
            days_per_month=params["days_per_month"],
            unusable=unusable_slides(args.slide_status),
        )
    except CohortError as error:
        # The report explains the error, so it is written first: to its path, and to the log (stderr), since
        # Snakemake deletes the outputs of a failed job but keeps its log.
        partial = error.result
        text = render_report(partial.report, partial.sources, partial.cohort, None, problem=str(error))
        write_report(text, args.report)
        print(text, file=sys.stderr)
        print(f"error: {error} (cohort report: {args.report}, also printed above)", file=sys.stderr)
        return 1
    metadata = {"site": args.site, "clinical": args.clinical, "params": params}
    write_parquet(result.cohort, args.output, metadata)
    write_parquet(result.splits.table, args.splits, dict(metadata, release_splits=args.release_splits))
    write_report(render_report(result.report, result.sources, result.cohort, result.splits), args.report)
    return 0
