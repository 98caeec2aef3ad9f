# Helpers of rules/baselines.smk: the configured baselines in Table 2 order, their jobs, outputs, inputs, settings.

from modaltune.baselines.registry import BASELINES as BASELINE_REGISTRY

BASELINE_SETTINGS = config["baselines"]
BASELINE_MODELS = [name for name in BASELINE_REGISTRY if name in BASELINE_SETTINGS["models"]]  # Table 2 order
BASELINE_TASKS = BASELINE_SETTINGS["tasks"]
BASELINE_RUN = "results/baselines/{model}/{site}/seed{seed}/{task}"
# Models whose selected weights are kept ({task}.safetensors): the out-of-distribution table's baseline
# (evaluation.ood_baseline) when an `evaluation.ood` run has a site as source (rules/baselines_ood.smk reads them).
OOD_BASELINE = config["evaluation"]["ood_baseline"]
KEPT_WEIGHTS = [
    name
    for name in BASELINE_MODELS
    if name == OOD_BASELINE and any(run["source"] != POOLED for run in config["evaluation"]["ood"])
]
# Jobs as (name, models trained): one per baseline, or with `group_runs` one training all of them per site.
if BASELINE_SETTINGS["group_runs"]:
    BASELINE_JOBS = [("baselines", BASELINE_MODELS)] if BASELINE_MODELS else []
else:
    BASELINE_JOBS = [(f"baseline_{name}", [name]) for name in BASELINE_MODELS]


def baseline_resources(models):
    """Threads, memory, runtime and GPUs of a job: the most any of its models asks for (shared protocol with the
    model's own overrides)."""
    settings = [{**BASELINE_SETTINGS["training"], **BASELINE_SETTINGS[name].get("training", {})} for name in models]
    return {key: max(s[key] for s in settings) for key in ("threads", "mem_mb", "runtime", "gpus")}


def baseline_outputs(models):
    """One run per job ({site}, {seed}, {task} wildcards), or with `group_runs` every model, seed and task of a site."""
    if not BASELINE_SETTINGS["group_runs"]:
        stem = BASELINE_RUN.format(model=models[0], site="{site}", seed="{seed}", task="{task}")
        return [f"{stem}{suffix}" for suffix in run_suffixes(models[0])]
    return [
        BASELINE_RUN.format(model=name, site="{site}", seed=seed, task=task) + suffix
        for name in models
        for seed in SEEDS
        for task in BASELINE_TASKS
        for suffix in run_suffixes(name)
    ]


def run_suffixes(name):
    return (".json", ".parquet", ".safetensors") if name in KEPT_WEIGHTS else (".json", ".parquet")


def kept_weights_option(models):
    kept = [name for name in models if name in KEPT_WEIGHTS]
    return f"--keep-weights {' '.join(kept)}" if kept else ""


def baseline_log(rule_name):
    if not BASELINE_SETTINGS["group_runs"]:
        return f"results/logs/{rule_name}/{{site}}/seed{{seed}}_{{task}}.log"
    return f"results/logs/{rule_name}/{{site}}.log"


def baseline_inputs(models):
    """The site's cohort, split, genes and feature manifest (every baseline trains on ModalTune's patients) and the
    pathway table; the slide-encoder weights only for a job that builds the encoder."""

    def inputs(wildcards):
        files = site_inputs([wildcards.site], None, with_text=False)
        files["pathways"] = "results/omics/pathways.parquet"
        if not tunes_slide_encoder(models):
            files.pop("slide_encoder_weights", None)
        return files

    return inputs


def tunes_slide_encoder(models):
    """Whether a job builds and trains the slide encoder (Gigapath tuned and its late fusions)."""
    return any(BASELINE_REGISTRY[name].tunes_slide_encoder for name in models)


def baseline_runs(wildcards):
    """--seeds and --tasks of a job: its wildcards, or every seed and task when runs are grouped."""
    if BASELINE_SETTINGS["group_runs"]:
        return f"--seeds {' '.join(map(str, SEEDS))} --tasks {' '.join(BASELINE_TASKS)}"
    return f"--seeds {wildcards.seed} --tasks {wildcards.task}"


def baseline_params(models):
    """--params of a job: only its models' settings, so editing one model's section reruns only that model. A job
    that tunes no slide encoder reads the encoder's name alone (its grid places a patient's slides)."""
    encoder = config["slide_encoder"] if tunes_slide_encoder(models) else {"name": config["slide_encoder"]["name"]}
    section = {"training": BASELINE_SETTINGS["training"], **{name: BASELINE_SETTINGS[name] for name in models}}
    return json.dumps({"baselines": section, "slide_encoder": encoder}, sort_keys=True)


def baseline_result_files():
    """Every run's record, in Table 2 order (the results table reads them)."""
    return [
        BASELINE_RUN.format(model=name, site=site, seed=seed, task=task) + ".json"
        for name in BASELINE_MODELS
        for site in SITES
        for seed in SEEDS
        for task in BASELINE_TASKS
    ]


def baseline_targets():
    return [
        BASELINE_RUN.format(model=name, site=site, seed=seed, task=task) + suffix
        for name in BASELINE_MODELS
        for site in SITES
        for seed in SEEDS
        for task in BASELINE_TASKS
        for suffix in run_suffixes(name)
    ]


def baseline_km_runs():
    """The survival record of every baseline and site at the figure seed (rule km_baselines draws them)."""
    return [
        BASELINE_RUN.format(model=name, site=site, seed=FIGURE_SEED, task="survival") + ".json"
        for name in BASELINE_MODELS
        for site in SITES
    ]


def baseline_km_targets():
    """With baselines.km: the folder of their Kaplan-Meier figures ({model}/{site}.png; skipped runs have none)."""
    if BASELINE_SETTINGS["km"] and "survival" in BASELINE_TASKS and BASELINE_MODELS:
        return ["results/figures/km/baselines"]
    return []
