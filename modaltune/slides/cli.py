"""`modaltune tile` (one slide) and `modaltune tiling-report` (failed-slide table, per-site summary)."""

from __future__ import annotations

import argparse
import json
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    tile = subparsers.add_parser(
        "tile", help="detect tissue on one slide and write its tile table and QC image"
    )
    tile.add_argument("--slide", required=True, help="slide file (anything OpenSlide reads)")
    tile.add_argument("--tiles", required=True, help="output tile table (.parquet)")
    tile.add_argument("--qc", required=True, help="output QC thumbnail (.png)")
    tile.add_argument("--status", help="output status record (.json) for the failed-slide table")
    tile.add_argument("--params", default="{}", help="the `slides:` config section as JSON")
    tile.set_defaults(func=_tile)

    report = subparsers.add_parser(
        "tiling-report", help="collect per-slide status records into failed_slides.tsv and/or a summary table"
    )
    report.add_argument(
        "--status", nargs="+", required=True, help="status records written by `modaltune tile`"
    )
    report.add_argument("--failed", help="output TSV with columns slide, reason")
    report.add_argument("--summary", help="output TSV with columns slide, status, n_tiles, reason, path")
    report.set_defaults(func=_report)


def _tile(args: argparse.Namespace) -> int:
    from modaltune.slides import SlideError, TilingSettings, tile_slide

    settings = TilingSettings.from_config(json.loads(args.params))
    try:
        tile_slide(args.slide, args.tiles, args.qc, settings, status_path=args.status)
    except SlideError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


def _report(args: argparse.Namespace) -> int:
    from modaltune.slides import write_failed_slides, write_tiling_summary

    if not (args.failed or args.summary):
        raise SystemExit("tiling-report: give --failed and/or --summary")
    if args.failed:
        failed = write_failed_slides(args.status, args.failed)
        print(f"{len(failed)} of {len(args.status)} slides failed", file=sys.stderr)
    if args.summary:
        write_tiling_summary(args.status, args.summary)
    return 0
