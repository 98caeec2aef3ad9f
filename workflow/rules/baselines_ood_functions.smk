# Helpers of rules/baselines_ood.smk: paper Table 3's baseline rows. OOD_BASELINE and KEPT_WEIGHTS come from
# baselines_functions.smk, OOD_RUNS from evaluate_functions.smk.

from modaltune.baselines.registry import ood_row_label


def _ood_baseline_runs():
    """(source, target) pairs whose source is a site, in `evaluation.ood` order; none without an ood_baseline."""
    pairs = list(dict.fromkeys((source, target) for _, source, target in OOD_RUNS if source != POOLED))
    if not pairs or OOD_BASELINE is None:
        return []
    if OOD_BASELINE not in BASELINE_MODELS:
        raise WorkflowError(f"evaluation.ood_baseline '{OOD_BASELINE}' is not one of baselines.models "
                            f"({BASELINE_MODELS}); add it there or set evaluation.ood_baseline: null")
    for task in BASELINE_TASKS:
        if f"{OOD_BASELINE}_{task}" in EXPERIMENTS:
            raise WorkflowError(f"experiment name '{OOD_BASELINE}_{task}' is taken by the out-of-distribution "
                                "baseline's rows (evaluation.ood_baseline); rename the experiment")
    return pairs


OOD_BASELINE_RUNS = _ood_baseline_runs()
OOD_BASELINE_TARGETS = list(dict.fromkeys(target for _, target in OOD_BASELINE_RUNS))
OOD_BASELINE_FILE = f"results/ood/{{kind}}/{OOD_BASELINE}_{{task}}/{{source}}/{{site}}/seed{{seed}}.{{suffix}}"
# With baselines.group_runs (the demo) one job embeds and probes every run, paying the start-up once; otherwise one
# job per (source, target, seed, task).
OOD_BASELINE_GROUPED = BASELINE_SETTINGS["group_runs"]


def ood_baseline_outputs():
    if not OOD_BASELINE_GROUPED:
        wildcards = {"task": "{task}", "source": "{source}", "site": "{site}", "seed": "{seed}"}
        return {"embeddings": OOD_BASELINE_FILE.format(kind="embeddings", suffix="parquet", **wildcards),
                "probes": OOD_BASELINE_FILE.format(kind="probes", suffix="json", **wildcards)}
    return {"embeddings": ood_baseline_files("embeddings", "parquet"), "probes": ood_baseline_probe_files()}


def ood_baseline_files(kind, suffix):
    """Every run's file, the subtype models' ("Cls.") before the survival models' ("Surv."): the table's row order."""
    return [
        OOD_BASELINE_FILE.format(kind=kind, task=task, source=source, site=target, seed=seed, suffix=suffix)
        for task in BASELINE_TASKS
        for source, target in OOD_BASELINE_RUNS
        for seed in SEEDS
    ]


def ood_baseline_probe_files():
    return ood_baseline_files("probes", "json")


def _job_runs(wildcards):
    """(pairs, seeds, tasks) of a job: its wildcards, or every run when grouped."""
    if OOD_BASELINE_GROUPED:
        return OOD_BASELINE_RUNS, SEEDS, BASELINE_TASKS
    return [(wildcards.source, wildcards.site)], [int(wildcards.seed)], [wildcards.task]


def ood_baseline_inputs(wildcards):
    """The target sites' cohort, split, genes and tiles, the pathway table and the source models' kept weights."""
    pairs, seeds, tasks = _job_runs(wildcards)
    targets = list(dict.fromkeys(target for _, target in pairs))
    files = site_inputs(targets, None, with_text=False)
    files["pathways"] = "results/omics/pathways.parquet"
    files["weights"] = [
        f"{BASELINE_RUN.format(model=OOD_BASELINE, site=source, seed=seed, task=task)}.safetensors"
        for source, _ in pairs
        for seed in seeds
        for task in tasks
    ]
    return files


def ood_baseline_runs_option(wildcards):
    pairs, seeds, tasks = _job_runs(wildcards)
    runs = " ".join(f"{source}:{target}" for source, target in pairs)
    return f"--runs {runs} --seeds {' '.join(map(str, seeds))} --tasks {' '.join(tasks)}"


def ood_baseline_log():
    if OOD_BASELINE_GROUPED:
        return "results/logs/ood_baselines/ood_baselines.log"
    return "results/logs/ood_baseline/{task}/{source}/{site}/seed{seed}.log"


# ---- the out-of-distribution table's baseline rows ----

def ood_supervised_records():
    """The "Sup." rows: the baseline's ordinary runs on each target site (every seed and task)."""
    return [
        f"{BASELINE_RUN.format(model=OOD_BASELINE, site=target, seed=seed, task=task)}.json"
        for target in OOD_BASELINE_TARGETS
        for seed in SEEDS
        for task in BASELINE_TASKS
    ]


def ood_table_labels():
    """evaluation.labels, with the baseline's Table 3 rows: its name is the "Sup." row in this table."""
    labels = dict(EVALUATION["labels"])
    if OOD_BASELINE_RUNS:
        labels[OOD_BASELINE] = ood_row_label(OOD_BASELINE, "supervised")
        labels.update({f"{OOD_BASELINE}_{task}": ood_row_label(OOD_BASELINE, task) for task in BASELINE_TASKS})
    return json.dumps(labels, sort_keys=True)


def ood_table_unranked():
    """The "Sup." row is trained on the target site: the paper leaves it out of the bold best value."""
    return OOD_BASELINE if OOD_BASELINE_RUNS else ""
