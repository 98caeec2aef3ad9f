"""`modaltune tile` (one slide, or a batch of slides in one process) and `modaltune tiling-report` (failed-slide table, per-site summary)."""

from __future__ import annotations

import argparse
import json
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    tile = subparsers.add_parser(
        "tile", help="detect tissue on slides and write each one's tile table and QC image"
    )
    # Several slides per call (the demo's batch rules) pay the interpreter start-up once; the lists pair up.
    tile.add_argument("--slide", required=True, nargs="+", help="slide files (anything OpenSlide reads)")
    tile.add_argument("--tiles", required=True, nargs="+", help="output tile tables (.parquet), one per slide")
    tile.add_argument("--qc", required=True, nargs="+", help="output QC thumbnails (.png), one per slide")
    tile.add_argument("--status", nargs="+", help="output status records (.json) for the failed-slide table")
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

    statuses = args.status or [None] * len(args.slide)
    if not len(args.slide) == len(args.tiles) == len(args.qc) == len(statuses):
        raise SystemExit("modaltune tile: give as many --tiles, --qc (and --status) files as --slide files")
    settings = TilingSettings.from_config(json.loads(args.params))
    for slide, tiles, qc, status in zip(args.slide, args.tiles, args.qc, statuses, strict=True):
        try:
            tile_slide(slide, tiles, qc, settings, status_path=status)
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
