"""`modaltune train` and `modaltune embed`: training runs (experiment, sites, seed) and their patient embeddings.

`train` takes several seeds, and several experiments that train on the same sites, so that the demo pays the torch
start-up once for all of them, and it can write the runs' embeddings itself (`--embed-site`), so the demo needs no
separate embedding job per model; `embed` takes several seeds' models for the same reason. Real cohorts run one
resumable job per run and per embedding file.

Input paths follow the data contracts under ``--results``; ``--params`` is, per experiment, a JSON object holding the
config sections model, slide_encoder, training, text and features (:func:`job_sections`), and for a model on a
registered baseline (``model.architecture`` other than modaltune) that baseline's entry of ``baselines``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from modaltune.config import sections_from_json

SECTIONS = ("model", "slide_encoder", "training", "text", "features")


def job_sections(config: Mapping[str, Any]) -> dict[str, Any]:
    """The config sections a train or embed job of an experiment reads (its merged config): :data:`SECTIONS`, and of
    ``baselines`` only the entry a baseline architecture is built from, so that no other baseline setting reruns it."""
    sections = {name: config[name] for name in SECTIONS}
    architecture = config["model"]["architecture"]
    if architecture != "modaltune":
        sections["baselines"] = {architecture: config["baselines"][architecture]}
    return sections


def baseline_settings(raw_params: str, model: Mapping[str, Any]) -> dict[str, Any] | None:
    """The architecture settings of a model on a registered baseline from ``--params`` (None for ModalTune)."""
    architecture = model["architecture"]
    if architecture == "modaltune":
        return None
    from modaltune.baselines.train import run_settings
    from modaltune.config import ConfigError, section_from_json

    baselines = json.loads(raw_params).get("baselines", {})
    if architecture not in baselines:
        raise ConfigError(f"--params lacks baselines.{architecture}, the settings of model.architecture {architecture}")
    return run_settings(section_from_json("baselines", json.dumps(baselines)), architecture)[0]


def register(subparsers) -> None:
    train = subparsers.add_parser("train", help="train ModalTune models (experiments on one site group, some seeds)")
    train.add_argument("--experiment", required=True, nargs="+", help="experiments, each trained for every --seed")
    train.add_argument("--sites", nargs="+", required=True, help="sites trained on (several = pooled)")
    train.add_argument("--seed", type=int, nargs="+", required=True, help="split seeds, one run each, in turn")
    train.add_argument("--results", default="results", help="folder holding cohort/, omics/, text/, features/")
    train.add_argument("--out", required=True, nargs="+",
                       help="results/models/{experiment}/{site or pooled}/seed{seed}: for each --experiment in turn, "
                            "one per --seed")
    train.add_argument("--embed-site", nargs="*", default=[],
                       help="sites whose patients each trained run embeds (the workflow: the sites trained on)")
    train.add_argument("--embeddings", nargs="*", default=[],
                       help="embedding files to write: for each run (as --out) in turn, one per --embed-site")
    train.add_argument("--params", required=True, nargs="+",
                       help=f"per --experiment, JSON with the config sections {', '.join(SECTIONS)} "
                            "(and baselines.<model.architecture>)")
    train.set_defaults(func=run_train)

    embed = subparsers.add_parser("embed", help="patient embeddings of one site from trained models")
    embed.add_argument("--model", required=True, nargs="+",
                       help="trained model folders (model.safetensors, config.json), one per --seed")
    embed.add_argument("--site", required=True)
    embed.add_argument("--seed", type=int, required=True, nargs="+", help="the models' split seeds")
    embed.add_argument("--results", default="results")
    embed.add_argument("--out", required=True, nargs="+",
                       help="results/embeddings/{experiment}/{site}/seed{seed}.parquet, one per --seed")
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

    runs = [(experiment, seed) for experiment in args.experiment for seed in args.seed]
    if len(args.params) != len(args.experiment):
        raise SystemExit(f"modaltune train: {len(args.experiment)} --experiment but {len(args.params)} --params; "
                         "give one each")
    if len(args.out) != len(runs):
        raise SystemExit(f"modaltune train: {len(args.experiment)} --experiment x {len(args.seed)} --seed runs but "
                         f"{len(args.out)} --out folders; give one each")
    if len(args.embeddings) != len(runs) * len(args.embed_site):
        raise SystemExit(f"modaltune train: --embeddings needs {len(runs) * len(args.embed_site)} files "
                         "(for each run, one per --embed-site)")
    raw_params = dict(zip(args.experiment, args.params, strict=True))
    params = {experiment: sections_from_json(raw, SECTIONS) for experiment, raw in raw_params.items()}
    torch.set_num_threads(params[args.experiment[0]]["training"]["threads"])  # a job resource: the same for all
    embeddings = iter(args.embeddings)
    for (experiment, seed), out in zip(runs, args.out, strict=True):
        train_run(experiment, seed, args.sites, Path(args.results), out, params[experiment],
                  baseline_settings(raw_params[experiment], params[experiment]["model"]))
        for site in args.embed_site:
            embed_with(out, Path(args.results), site, seed, next(embeddings), params[experiment])
    return 0


def train_run(experiment: str, seed: int, sites: list[str], results: Path, out: str | Path, params: dict,
              baseline: dict | None) -> None:
    """One training run of `train`: the experiment's data on ``sites`` with split seed ``seed``, into ``out``."""
    from modaltune.models.slide_encoder import SLIDE_ENCODERS
    from modaltune.training.data import BagOptions, ExperimentData
    from modaltune.training.loop import train_model

    training = params["training"]
    grid = SLIDE_ENCODERS[params["slide_encoder"]["name"]]
    bags = BagOptions.for_encoder(grid, training["tile_cap"], training["slide_gap_px"])
    with_genes = params["model"]["transcriptomics"] == "genes"  # Single Modal never reads the gene table
    clinical = params["model"]["clinical"]
    clinical_fields = clinical["fields"] if clinical["enabled"] else ()
    files = [site_files(results, site, seed, params["features"]["encoder"], params["text"]["encoder"])
             for site in sites]
    train_model(
        ExperimentData(files, seed, bags, with_genes=with_genes, clinical_fields=clinical_fields),
        [site.text for site in files],
        results / "omics" / "pathways.parquet",
        model_section=params["model"], slide_encoder_section=params["slide_encoder"], training=training,
        projector_dim=params["text"]["projector_dim"], seed=seed, out_dir=out,
        run_info={"experiment": experiment, "text_encoder": params["text"]["encoder"],
                  "tile_encoder": params["features"]["encoder"]},
        baseline=baseline,
    )


def run_embed(args) -> int:
    import torch

    if not len(args.model) == len(args.seed) == len(args.out):
        raise SystemExit("modaltune embed: give as many --model folders and --out files as --seed values")
    params = sections_from_json(args.params, SECTIONS)
    torch.set_num_threads(params["training"]["threads"])
    for model, seed, out in zip(args.model, args.seed, args.out, strict=True):
        embed_with(model, Path(args.results), args.site, seed, out, params, args.gene_scaling)
    return 0


def embed_with(model: str | Path, results: Path, site: str, seed: int, out: str | Path, params: dict,
               gene_scaling: str = "model") -> None:
    """Embed one site's patients with a trained model: the `embed` command, and `train --embed-site`."""
    from modaltune.training.embed import embed_site

    embed_site(model, site_files(results, site, seed, params["features"]["encoder"], None), seed, out,
               gene_scaling=gene_scaling, device=params["training"]["device"],
               precision=params["training"]["precision"])
