"""`modaltune extract` (tile features of one slide), `modaltune import-features` (bring CLAM/TRIDENT files) and
`modaltune feature-manifest` (list a site's feature files for training)."""

from __future__ import annotations

import argparse
import logging

from modaltune.config import section_from_json

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    extract = subparsers.add_parser(
        "extract", help="encode the tiles of one slide into results/features/...h5"
    )
    extract.add_argument("--slide", required=True, nargs="+", help="whole-slide images (any format OpenSlide reads)")
    extract.add_argument("--tiles", required=True, nargs="+", help="tiles tables results/tiles/{slide}.parquet")
    extract.add_argument("--out", required=True, nargs="+", help="feature files to write (h5), one per slide")
    extract.add_argument(
        "--threads", type=int, default=None, help="CPU threads of the job (workers + compute)"
    )
    extract.add_argument("--params", required=True, help="the config's `features` section as JSON")
    extract.set_defaults(func=run_extract)

    imported = subparsers.add_parser(
        "import-features",
        help="validate a precomputed CLAM/TRIDENT feature file and copy it into results/features",
    )
    imported.add_argument("--source", required=True, help="precomputed h5 with datasets features and coords")
    imported.add_argument("--out", required=True, help="feature file to write (h5)")
    imported.add_argument("--params", required=True, help="the config's `features` section as JSON")
    imported.set_defaults(func=run_import)

    manifest = subparsers.add_parser(
        "feature-manifest", help="list a site's feature files with their tile counts (results/features/...manifest)"
    )
    manifest.add_argument("--features", required=True, nargs="+", help="the site's feature files {slide}.h5")
    manifest.add_argument("--encoder", required=True, help="the tile encoder the files come from")
    manifest.add_argument("--out", required=True, help="manifest to write (.parquet)")
    manifest.set_defaults(func=run_manifest)


def run_extract(args: argparse.Namespace) -> int:
    params = section_from_json("features", args.params)
    if not len(args.slide) == len(args.tiles) == len(args.out):
        raise SystemExit("modaltune extract: give as many --tiles and --out files as --slide files")
    import torch

    from .encoders import create_encoder
    from .extract import extract_slide

    if args.threads is not None:
        # the workers read tiles in their own processes; the rest of the job's threads compute
        torch.set_num_threads(max(1, args.threads - params["workers"]))
    encoder = create_encoder(
        params["encoder"], weights=params["weights"], device=params["device"], precision=params["precision"]
    )
    for slide, tiles, out in zip(args.slide, args.tiles, args.out, strict=True):
        result = extract_slide(slide, tiles, out, encoder, batch_size=params["batch_size"], workers=params["workers"])
        rate = result.tiles / result.seconds if result.seconds > 0 else 0.0
        log.info("%s: %d tiles in %.1f s (%.1f tiles/s) -> %s", slide, result.tiles, result.seconds, rate, out)
    return 0


def run_import(args: argparse.Namespace) -> int:
    from .files import import_features

    params = section_from_json("features", args.params)
    tiles = import_features(
        args.source, args.out, encoder=params["encoder"], tile_px_level0=params["precomputed_tile_px_level0"]
    )
    log.info("%s: %d tiles imported -> %s", args.source, tiles, args.out)
    return 0


def run_manifest(args: argparse.Namespace) -> int:
    from .manifest import write_manifest

    manifest = write_manifest(args.features, args.out, args.encoder)
    log.info("%d slides, %d tiles -> %s", len(manifest), manifest["n_tiles"].sum(), args.out)
    return 0
