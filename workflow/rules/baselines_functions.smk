# Helpers of rules/baselines.smk: the configured baselines in Table 2 order, their outputs, inputs and settings.

from modaltune.baselines.registry import BASELINES as BASELINE_REGISTRY

BASELINE_SETTINGS = config["baselines"]
BASELINE_MODELS = [name for name in BASELINE_REGISTRY if name in BASELINE_SETTINGS["models"]]  # Table 2 order
BASELINE_TASKS = BASELINE_SETTINGS["tasks"]
BASELINE_RUN = "results/baselines/{model}/{site}/seed{seed}/{task}"


def baseline_training(name):
    """The shared protocol with the model's own overrides (resources of its jobs)."""
    return {**BASELINE_SETTINGS["training"], **BASELINE_SETTINGS[name].get("training", {})}


def baseline_outputs(name):
    """A job's outputs: one run ({site}, {seed}, {task} wildcards), or with `group_runs` every seed and task of
    the site."""
    if not BASELINE_SETTINGS["group_runs"]:
        stem = BASELINE_RUN.format(model=name, site="{site}", seed="{seed}", task="{task}")
        return [f"{stem}.json", f"{stem}.parquet"]
    return [
        BASELINE_RUN.format(model=name, site="{site}", seed=seed, task=task) + suffix
        for seed in SEEDS
        for task in BASELINE_TASKS
        for suffix in (".json", ".parquet")
    ]


def baseline_log(name):
    if not BASELINE_SETTINGS["group_runs"]:
        return f"results/logs/baselines/{name}/{{site}}/seed{{seed}}_{{task}}.log"
    return f"results/logs/baselines/{name}/{{site}}.log"


def baseline_inputs(name):
    """The site's cohort, split, genes and feature manifest (every baseline trains on ModalTune's patients) and the
    pathway table; the slide-encoder weights only for the model that builds the encoder."""

    def inputs(wildcards):
        files = site_inputs([wildcards.site], None, with_text=False)
        files["pathways"] = "results/omics/pathways.parquet"
        if name != "gigapath_tuned":
            files.pop("slide_encoder_weights", None)
        return files

    return inputs


def baseline_runs(wildcards):
    """--seeds and --tasks of a job: its wildcards, or every seed and task when runs are grouped."""
    if BASELINE_SETTINGS["group_runs"]:
        return f"--seeds {' '.join(map(str, SEEDS))} --tasks {' '.join(BASELINE_TASKS)}"
    return f"--seeds {wildcards.seed} --tasks {wildcards.task}"


def baseline_params(name):
    """--params of a model's jobs: only its own settings, so editing one model's section reruns only that model.
    Other models read the slide encoder's name alone (its grid places a patient's slides)."""
    encoder = config["slide_encoder"] if name == "gigapath_tuned" else {"name": config["slide_encoder"]["name"]}
    section = {"training": BASELINE_SETTINGS["training"], name: BASELINE_SETTINGS[name]}
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
    runs = baseline_result_files()
    return runs + [path.removesuffix(".json") + ".parquet" for path in runs]
