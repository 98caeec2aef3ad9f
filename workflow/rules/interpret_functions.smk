# Helpers of rules/interpret.smk: which experiments and seeds are interpreted, and each job's inputs.

import modaltune.models
from modaltune.interpret.cli import SECTIONS as INTERPRET_SECTIONS

INTERPRET = config["interpret"]


def interpreted_experiments():
    """The experiments of `interpret.experiments`; "all" is those of the results table (an ablation may lack the
    genes or the survival task that the attributions explain)."""
    chosen = list(probed_sites()) if INTERPRET["experiments"] == "all" else INTERPRET["experiments"]
    chosen = [name for name in chosen if name != FROZEN["name"]]
    unknown = [name for name in chosen if name not in EXPERIMENTS]
    if unknown:
        raise WorkflowError(f"interpret.experiments: unknown experiment(s) {unknown} (experiments: {list(EXPERIMENTS)})")
    # The attributions and attention maps read the Modal Adapter's attention and the slide encoder.
    other = [name for name in chosen if modaltune.models.family_member(EXPERIMENT_CONFIG[name]["model"]) != "modaltune"]
    if other:
        raise WorkflowError(f"interpret.experiments: {other} are not ModalTune models with the Modal Adapter "
                            "(model.architecture modaltune, model.finetuning adapter); remove them from the list")
    clinical = [name for name in chosen if EXPERIMENT_CONFIG[name]["model"]["clinical"]["enabled"]]
    if clinical:  # the attributions explain the genes of a model without clinical tokens
        raise WorkflowError(f"interpret.experiments: {clinical} have clinical tokens, which the gene attributions do "
                            "not cover; remove them from interpret.experiments")
    return chosen


def interpret_inputs(wildcards):
    folder = embed_model_folder(wildcards)
    inputs = trained_model_inputs(wildcards.site, wildcards.seed, folder)
    run = f"{wildcards.experiment}/{wildcards.site}/seed{wildcards.seed}"
    inputs.update(embeddings=f"results/embeddings/{run}.parquet", probes=f"results/probes/{run}.json")
    if not config["features"]["precomputed_dir"]:  # slides were tiled here: their status records give the paths
        inputs["slide_status"] = [f"results/qc/status/{slide}.json" for slide in slides_of(wildcards.site)]
    return inputs


def interpret_argv(wildcards, input, output):
    """The `modaltune interpret` arguments (a list: a TCGA site's slide records exceed a shell command line)."""
    argv = ["interpret", "--model", embed_model_folder(wildcards), "--site", wildcards.site, "--seed", wildcards.seed,
            "--embeddings", input.embeddings, "--probes", input.probes, "--out", str(Path(output.summary).parent),
            "--params", sections_json(INTERPRET_SECTIONS)]
    if "slide_status" in input.keys():
        argv += ["--slide-status", *input.slide_status]
    return argv + (["--planted-signal"] if config["demo"]["enabled"] else [])


def interpret_targets():
    if not INTERPRET["enabled"]:
        return []
    seeds = SEEDS if INTERPRET["seeds"] == "all" else [FIGURE_SEED]
    return [
        f"results/figures/interpret/{experiment}/{site}/seed{seed}/index.html"
        for experiment in interpreted_experiments()
        for site in experiment_sites(experiment)
        for seed in seeds
    ]
