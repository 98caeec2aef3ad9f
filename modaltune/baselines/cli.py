"""`modaltune baseline`: train baselines on one site for the given tasks and seeds (one run each).

``--params`` is a JSON object {"baselines": {"training": ..., "<model>": ...}, "slide_encoder": ...}: the shared
protocol, each model's own section, and the slide encoder (its grid places a patient's slides; gigapath_tuned also
builds it). One process trains every (model, seed, task) it is given, reading each patient's tiles once, so the demo
pays the start-up once per site; real cohorts call it with one model, one seed and one task per job.

`modaltune train-supervised`: the No Text Embedding ablation (paper Table 8): ModalTune with one task prompt and a
task head, trained per task like a baseline (:mod:`modaltune.baselines.no_text`), for one experiment and site.

`modaltune baseline-ood`: trained baselines (weights kept with ``--keep-weights``) as feature extractors on sites
they were not trained on, each embedding probed on the target's own split (paper Table 3's `Cls.`/`Surv.` rows).
"""

from __future__ import annotations

from pathlib import Path

from modaltune.config import sections_from_json

SECTIONS = ("baselines", "slide_encoder")
SUPERVISED_SECTIONS = ("model", "slide_encoder", "training", "text", "features", "baselines")


def register(subparsers) -> None:
    parser = subparsers.add_parser("baseline", help="train supervised baselines on one site (models x seeds x tasks)")
    parser.add_argument("--models", nargs="+", required=True, help="registered baseline names (baselines.models)")
    parser.add_argument("--site", required=True)
    parser.add_argument("--seeds", type=int, nargs="+", required=True)
    parser.add_argument("--tasks", nargs="+", required=True, choices=["subtype", "survival"])
    parser.add_argument("--tile-encoder", required=True, help="features.encoder: the feature folder under --results")
    parser.add_argument("--gap-px", type=int, required=True, help="training.slide_gap_px: pixels between slides")
    parser.add_argument("--results", default="results", help="folder holding cohort/, omics/, features/")
    parser.add_argument("--out", default="results/baselines", help="writes {out}/{model}/{site}/seed{seed}/{task}.*")
    parser.add_argument("--params", required=True, help=f"JSON with the config sections {', '.join(SECTIONS)}")
    parser.add_argument("--keep-weights", nargs="*", default=[], metavar="MODEL",
                        help="models whose selected weights are kept as {task}.safetensors (out-of-distribution use)")
    parser.set_defaults(func=run)
    register_supervised(subparsers)
    register_ood(subparsers)


def run(args) -> int:
    import torch

    from modaltune.baselines.train import run_settings, train_baseline
    from modaltune.config import validate
    from modaltune.devices import resolve_device

    params = sections_from_json(args.params, SECTIONS)
    section = params["baselines"]
    # Per-model overrides of the shared protocol are validated when the run starts (the schema checks their names).
    training = {name: validate({"baselines": {"training": run_settings(section, name)[2]}})["baselines"]["training"]
                for name in args.models}
    torch.set_num_threads(max(t["threads"] for t in training.values()))
    runs = seed_data(Path(args.results), args.site, args.seeds, args.tile_encoder, args.gap_px,
                     params["slide_encoder"], max(t["bag_cache_mb"] for t in training.values()))
    for seed, data, inputs in runs:
        for name in args.models:
            device = resolve_device(training[name]["device"])
            for task in args.tasks:
                out = Path(args.out) / name / args.site / f"seed{seed}" / task
                train_baseline(name, data, task, section, inputs, device=device, seed=seed, out_stem=out,
                               run_info={"tile_encoder": args.tile_encoder}, keep_weights=name in args.keep_weights)
    return 0


def seed_data(results: Path, site: str, seeds, tile_encoder: str, gap_px: int, slide_encoder: dict, cache_mb: int):
    """Per seed in turn: (seed, SiteData, BaselineInputs) of one site; whole bags, cached across seeds and runs."""
    import pandas as pd

    from modaltune.baselines.data import BagCache, SiteData
    from modaltune.models.omics_encoder import pathway_gene_indices
    from modaltune.models.slide_encoder import SLIDE_ENCODERS
    from modaltune.training.cli import site_files
    from modaltune.training.data import BagOptions, ExperimentData

    files = site_files(results, site, seeds[0], tile_encoder, None)
    bags = BagOptions.for_encoder(SLIDE_ENCODERS[slide_encoder["name"]], None, gap_px)  # whole bags; runs cap them
    cohort = pd.read_parquet(files.cohort, columns=["patient", "subtype_class", "time_months", "event"])
    memberships = pd.read_parquet(results / "omics" / "pathways.parquet")
    cache = BagCache(cache_mb)
    for seed in seeds:
        data = SiteData(ExperimentData([files], seed, bags), cohort, cache)
        _, pathway_genes = pathway_gene_indices(data.experiment.gene_names,
                                                list(zip(memberships["pathway"], memberships["gene"], strict=True)))
        yield seed, data, data.inputs(pathway_genes, slide_encoder)


def register_supervised(subparsers) -> None:
    parser = subparsers.add_parser(
        "train-supervised", help="No Text Embedding: ModalTune with a task head per task, no text (one site)")
    parser.add_argument("--experiment", required=True, help="the experiment (objective: supervised)")
    parser.add_argument("--site", required=True)
    parser.add_argument("--seeds", type=int, nargs="+", required=True)
    parser.add_argument("--tasks", nargs="+", required=True, choices=["subtype", "survival"])
    parser.add_argument("--results", default="results", help="folder holding cohort/, omics/, features/")
    parser.add_argument("--out", default="results/ablations",
                        help="writes {out}/{experiment}/{site}/seed{seed}/{task}.json and .parquet")
    parser.add_argument("--params", required=True,
                        help=f"JSON with the experiment's merged config sections {', '.join(SUPERVISED_SECTIONS)}")
    parser.set_defaults(func=run_supervised)


def run_supervised(args) -> int:
    import torch

    from modaltune.baselines.no_text import no_text_model
    from modaltune.baselines.train import train_single_task
    from modaltune.devices import resolve_device

    params = sections_from_json(args.params, SUPERVISED_SECTIONS)
    training = params["training"]
    torch.set_num_threads(training["threads"])
    device = resolve_device(training["device"])
    runs = seed_data(Path(args.results), args.site, args.seeds, params["features"]["encoder"],
                     training["slide_gap_px"], params["slide_encoder"], params["baselines"]["training"]["bag_cache_mb"])
    for seed, data, inputs in runs:
        for task in args.tasks:
            out = Path(args.out) / args.experiment / args.site / f"seed{seed}" / task
            train_single_task(no_text_model(args.experiment, params, task, inputs), data, task, device=device,
                              seed=seed, out_stem=out, run_info={"experiment": args.experiment,
                                                                 "tile_encoder": params["features"]["encoder"]})
    return 0


def register_ood(subparsers) -> None:
    parser = subparsers.add_parser(
        "baseline-ood", help="trained baselines embed other sites (prediction layer removed); linear probes there")
    parser.add_argument("--model", required=True, help="registered baseline name (evaluation.ood_baseline)")
    parser.add_argument("--runs", nargs="+", required=True, metavar="SOURCE:TARGET",
                        help="the model trained on SOURCE embeds TARGET's patients")
    parser.add_argument("--seeds", type=int, nargs="+", required=True)
    parser.add_argument("--tasks", nargs="+", required=True, choices=["subtype", "survival"],
                        help="the single-task models to use (each embeds; the probes score both tasks)")
    parser.add_argument("--tile-encoder", required=True, help="features.encoder: the feature folder under --results")
    parser.add_argument("--gap-px", type=int, required=True, help="training.slide_gap_px: pixels between slides")
    parser.add_argument("--results", default="results", help="folder holding cohort/, omics/, features/, baselines/")
    parser.add_argument("--out", default="results/ood",
                        help="writes {out}/embeddings|probes/{model}_{task}/{source}/{target}/seed{seed}.*")
    parser.add_argument("--params", required=True, help=f"JSON with the config sections {', '.join(SECTIONS)}")
    parser.set_defaults(func=run_ood)


def run_ood(args) -> int:
    import logging

    import pandas as pd
    import torch

    from modaltune.baselines.data import BagCache, SiteData
    from modaltune.baselines.train import run_settings
    from modaltune.baselines.transfer import embed_with_trained
    from modaltune.config import validate
    from modaltune.devices import resolve_device
    from modaltune.evaluation.probes import evaluate_embeddings, patient_table
    from modaltune.io import write_json
    from modaltune.models.omics_encoder import pathway_gene_indices
    from modaltune.models.slide_encoder import SLIDE_ENCODERS
    from modaltune.training.cli import site_files
    from modaltune.training.data import BagOptions, ExperimentData

    runs = [run.split(":") for run in args.runs]
    if any(len(run) != 2 for run in runs):
        raise SystemExit(f"baseline-ood: --runs takes SOURCE:TARGET pairs, got {args.runs}")
    params = sections_from_json(args.params, SECTIONS)
    section = params["baselines"]
    training = validate({"baselines": {"training": run_settings(section, args.model)[2]}})["baselines"]["training"]
    torch.set_num_threads(training["threads"])
    device = resolve_device(training["device"])
    results, out = Path(args.results), Path(args.out)
    bags = BagOptions.for_encoder(SLIDE_ENCODERS[params["slide_encoder"]["name"]], None, args.gap_px)
    memberships = pd.read_parquet(results / "omics" / "pathways.parquet")
    cache = BagCache(training["bag_cache_mb"])
    for target in dict.fromkeys(target for _, target in runs):
        for seed in args.seeds:
            files = site_files(results, target, seed, args.tile_encoder, None)
            cohort = pd.read_parquet(files.cohort, columns=["patient", "subtype_class", "time_months", "event"])
            data = SiteData(ExperimentData([files], seed, bags), cohort, cache)  # genes scaled on target-train
            _, pathway_genes = pathway_gene_indices(
                data.experiment.gene_names, list(zip(memberships["pathway"], memberships["gene"], strict=True)))
            inputs = data.inputs(pathway_genes, params["slide_encoder"])
            for source in [source for source, to in runs if to == target]:
                for task in args.tasks:
                    experiment = f"{args.model}_{task}"
                    where = f"{experiment}/{source}/{target}/seed{seed}"
                    weights = results / "baselines" / args.model / source / f"seed{seed}" / f"{task}.safetensors"
                    embeddings = out / "embeddings" / f"{where}.parquet"
                    embed_with_trained(weights, data, inputs, embeddings, tile_cap=training["eval_tile_cap"],
                                       device=device, precision=training["precision"])
                    probe = evaluate_embeddings(patient_table(embeddings, files.cohort, files.splits, seed=seed))
                    probe.update(experiment=experiment, source=source, site=target, seed=seed)
                    write_json(probe, out / "probes" / f"{where}.json")
                    logging.getLogger(__name__).info(
                        "%s: balanced accuracy %.3f, C-index %.3f", where, probe["subtype"]["balanced_accuracy"],
                        probe["survival"]["c_index"])
    return 0
