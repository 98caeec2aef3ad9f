"""`modaltune train` and `modaltune embed`: one training run (experiment, sites, seed) and its patient embeddings.

Input paths follow the data contracts under ``--results``; ``--params`` is a JSON object holding the config
sections model, slide_encoder, training, text and features.
"""

from __future__ import annotations

from pathlib import Path

from modaltune.config import sections_from_json

SECTIONS = ("model", "slide_encoder", "training", "text", "features")


def register(subparsers) -> None:
    train = subparsers.add_parser("train", help="train one ModalTune model (one experiment, site group and seed)")
    train.add_argument("--experiment", required=True)
    train.add_argument("--sites", nargs="+", required=True, help="sites trained on (several = pooled)")
    train.add_argument("--seed", type=int, required=True)
    train.add_argument("--results", default="results", help="folder holding cohort/, omics/, text/, features/")
    train.add_argument("--out", required=True, help="results/models/{experiment}/{site or pooled}/seed{seed}")
    train.add_argument("--params", required=True, help=f"JSON with the config sections {', '.join(SECTIONS)}")
    train.set_defaults(func=run_train)

    embed = subparsers.add_parser("embed", help="patient embeddings of one site from a trained model")
    embed.add_argument("--model", required=True, help="trained model folder (model.safetensors, config.json)")
    embed.add_argument("--site", required=True)
    embed.add_argument("--seed", type=int, required=True)
    embed.add_argument("--results", default="results")
    embed.add_argument("--out", required=True, help="results/embeddings/{experiment}/{site}/seed{seed}.parquet")
    embed.add_argument("--gene-scaling", choices=("model", "target-train"), default="model",
                       help="z-score genes with the model's training statistics, or fit them on this site's training "
                            "split (out-of-distribution runs)")
    embed.add_argument("--params", required=True, help=f"JSON with the config sections {', '.join(SECTIONS)}")
    embed.set_defaults(func=run_embed)


def site_files(results: Path, site: str, seed: int, tile_encoder: str, text_encoder: str | None):
    """A site's input files under `results`, named as the workflow's data contracts name them."""
    from modaltune.training.data import SiteFiles

    return SiteFiles(
        site=site,
        cohort=results / "cohort" / f"{site}.parquet",
        splits=results / "cohort" / f"{site}_splits.parquet",
        omics=results / "omics" / f"{site}.parquet",
        features=results / "features" / tile_encoder / f"{site}.manifest.parquet",
        text=results / "text" / f"{site}_seed{seed}_{text_encoder}.parquet" if text_encoder else None,
    )


def run_train(args) -> int:
    import torch

    from modaltune.models.slide_encoder import SLIDE_ENCODERS
    from modaltune.training.data import BagOptions, ExperimentData
    from modaltune.training.loop import train_model

    params = sections_from_json(args.params, SECTIONS)
    training = params["training"]
    torch.set_num_threads(training["threads"])
    results = Path(args.results)
    sites = [site_files(results, site, args.seed, params["features"]["encoder"], params["text"]["encoder"])
             for site in args.sites]
    grid = SLIDE_ENCODERS[params["slide_encoder"]["name"]]
    bags = BagOptions.for_encoder(grid, training["tile_cap"], training["slide_gap_px"])
    data = ExperimentData(sites, args.seed, bags, with_genes=params["model"]["transcriptomics"] == "genes")
    train_model(
        data, [files.text for files in sites], results / "omics" / "pathways.parquet",
        model_section=params["model"], slide_encoder_section=params["slide_encoder"], training=training,
        projector_dim=params["text"]["projector_dim"], seed=args.seed, out_dir=args.out,
        run_info={"experiment": args.experiment, "text_encoder": params["text"]["encoder"],
                  "tile_encoder": params["features"]["encoder"]},
    )
    return 0


def run_embed(args) -> int:
    import torch

    from modaltune.training.embed import embed_site

    params = sections_from_json(args.params, SECTIONS)
    training = params["training"]
    torch.set_num_threads(training["threads"])
    results = Path(args.results)
    embed_site(args.model, site_files(results, args.site, args.seed, params["features"]["encoder"], None),
               args.seed, args.out, gene_scaling=args.gene_scaling,
               device=training["device"], precision=training["precision"])
    return 0
