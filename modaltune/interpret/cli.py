"""`modaltune interpret`: pathway attributions and attention maps of chosen patients for one experiment, site and seed."""

from __future__ import annotations

SECTIONS = ("interpret", "slides", "training", "features")


def register(subparsers) -> None:
    parser = subparsers.add_parser("interpret", help="integrated-gradient pathway attributions and attention maps")
    parser.add_argument("--model", required=True, help="trained model folder (model.safetensors, config.json)")
    parser.add_argument("--site", required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--results", default="results", help="folder holding cohort/, omics/, features/")
    parser.add_argument("--embeddings", required=True, help="results/embeddings/{experiment}/{site}/seed{seed}.parquet")
    parser.add_argument("--probes", required=True, help="results/probes/{experiment}/{site}/seed{seed}.json")
    parser.add_argument("--slide-status", nargs="*", default=[],
                        help="results/qc/status/{slide}.json of the site's slides (their paths give the thumbnails); "
                             "without them the maps are drawn on the tile grid (features imported without slides)")
    parser.add_argument("--planted-signal", action="store_true",
                        help="synthetic demo: report the ranks of the planted pathways and tiles")
    parser.add_argument("--out", required=True, help="results/figures/interpret/{experiment}/{site}/seed{seed}")
    parser.add_argument("--params", required=True, help=f"JSON with the config sections {', '.join(SECTIONS)}")
    parser.set_defaults(func=run)


def run(args) -> int:
    import json
    from pathlib import Path

    import torch

    from modaltune.config import sections_from_json
    from modaltune.interpret.run import interpret_site
    from modaltune.slides.pipeline import TilingSettings
    from modaltune.training.cli import site_files

    params = sections_from_json(args.params, SECTIONS)
    torch.set_num_threads(params["training"]["threads"])
    tiling = TilingSettings.from_config(params["slides"])
    records = [json.loads(Path(path).read_text()) for path in args.slide_status]
    slide_paths = {record["slide"]: record["path"] for record in records} or None
    site = site_files(Path(args.results), args.site, args.seed, params["features"]["encoder"], None)
    interpret_site(args.model, site, args.seed, args.embeddings, json.loads(Path(args.probes).read_text()), args.out,
                   params["interpret"], detector=tiling.detector, default_mpp=tiling.default_mpp,
                   slide_paths=slide_paths, planted_signal=args.planted_signal,
                   device=params["training"]["device"])
    return 0
