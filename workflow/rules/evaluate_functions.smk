# Functions and settings of the evaluation, figure and report rules (evaluate.smk, figures.smk, report.smk),
# kept apart from the rules as the linter asks.

from typing import NamedTuple

from modaltune.evaluation.cli import FROZEN_SECTIONS

EVALUATION = config["evaluation"]
FROZEN = EVALUATION["frozen_baseline"]
FIGURE_SEED = SEEDS[0] if EVALUATION["figure_seed"] is None else EVALUATION["figure_seed"]

if FROZEN["name"] in EXPERIMENTS:
    raise WorkflowError(
        f"evaluation.frozen_baseline.name '{FROZEN['name']}' is also an experiment name; rename one of them"
    )
if FIGURE_SEED not in SEEDS:
    raise WorkflowError(f"evaluation.figure_seed {FIGURE_SEED} is not one of cohort.seeds {SEEDS}")


ABLATIONS = [name for name, experiment in EXPERIMENTS.items() if experiment.get("ablation", False)]  # probed
# Every row of the ablation table in config order: the probed ablations and the single-task ones (No Text Embedding).
ABLATION_ROWS = [name for name in EXPERIMENT_SITES if config["experiments"][name].get("ablation", False)]
MULTIMODAL = [name for name, experiment in EXPERIMENTS.items() if experiment.get("multimodal", False)]


def table_reference(key, rows):
    """The reference row of a table of `rows` (evaluation.<key>) as a list: empty without rows, without a reference
    or when it is one of the rows; stops the plan when it names no experiment."""
    reference = EVALUATION[key]
    if not rows or reference is None:
        return []
    if reference not in EXPERIMENTS:
        raise WorkflowError(f"evaluation.{key} '{reference}' is not an experiment ({list(EXPERIMENTS)}); name the "
                            "ModalTune experiment or set it to null")
    return [] if reference in rows else [reference]


ABLATION_REFERENCE = table_reference("ablation_reference", ABLATION_ROWS)
MULTIMODAL_REFERENCE = table_reference("multimodal_reference", MULTIMODAL)


def probed_sites(ablations=False, multimodal=False):
    """{experiment: sites} of every in-domain probe of the results table, the frozen baseline first (the table's
    first row); with `ablations`, those of the ablation table: the ablations, then the reference experiment; with
    `multimodal`, those of the multimodal table (Table 10): the reference experiment, then the multimodal ones. The
    reference row of those two tables keeps the sites its rows ran on, so that every column and mean compares the
    same sites."""
    if ablations:
        return {**{name: experiment_sites(name) for name in ABLATIONS},
                **reference_sites(ABLATION_REFERENCE, ABLATION_ROWS)}
    if multimodal:
        return {**reference_sites(MULTIMODAL_REFERENCE, MULTIMODAL),
                **{name: experiment_sites(name) for name in MULTIMODAL}}
    probed = {FROZEN["name"]: list(SITES)} if FROZEN["enabled"] else {}
    probed.update({name: experiment_sites(name) for name in EXPERIMENTS if name not in ABLATIONS + MULTIMODAL})
    return probed


def reference_sites(reference, rows):
    """{reference experiment: its sites that one of `rows` (experiments) also ran on} for the `reference` list of
    :func:`table_reference` ({} when it is empty)."""
    covered = {site for name in rows for site in experiment_sites(name)}
    return {name: [site for site in experiment_sites(name) if site in covered] for name in reference}


def _ood_runs():
    """(experiment, source, target) of every out-of-distribution run, checked against the experiments."""
    runs = []
    for index, run in enumerate(EVALUATION["ood"]):
        where = f"evaluation.ood[{index}]"
        experiment, source = run["experiment"], run["source"]
        if experiment not in EXPERIMENTS:
            raise WorkflowError(f"{where}: unknown experiment '{experiment}' (experiments: {list(EXPERIMENTS)})")
        trained_on = experiment_sites(experiment)
        expected = [POOLED] if EXPERIMENTS[experiment]["pooled"] else trained_on
        if source not in expected:
            raise WorkflowError(f"{where}: source '{source}' is not a model of experiment '{experiment}' "
                                f"(its models: {expected})")
        for target in run["targets"]:
            if target not in SITES:
                raise WorkflowError(f"{where}: target '{target}' is not a configured site ({list(SITES)})")
            if target in (trained_on if source == POOLED else [source]):
                raise WorkflowError(f"{where}: the model of '{experiment}' ({source}) was trained on '{target}'; "
                                    "an out-of-distribution target must be a site it has not seen")
            runs.append((experiment, source, target))
    return runs


OOD_RUNS = _ood_runs()


def frozen_inputs(wildcards):
    return site_inputs([wildcards.site], wildcards.seed, with_text=False)


def ood_inputs(wildcards):
    return trained_model_inputs(wildcards.site, wildcards.seed, ood_model_folder(wildcards),
                                uses_genes(wildcards.experiment))


def ood_embed_batches():
    """(experiment, source, target, seeds) of the demo's out-of-distribution embedding jobs."""
    runs = dict.fromkeys(OOD_RUNS)
    return [(*run, seeds) for run in runs
            for seeds in seed_batches(experiment_seeds(run[0]), TRAINING["seeds_per_job"])]


def ood_batch_inputs(experiment, source, target, seeds):
    inputs = site_inputs([target], seeds[0], with_text=False, with_genes=uses_genes(experiment))
    folders = [f"results/models/{experiment}/{source}/seed{seed}" for seed in seeds]
    inputs.update(model=[f"{folder}/model.safetensors" for folder in folders],
                  model_config=[f"{folder}/config.json" for folder in folders])
    return inputs


def ood_model_folder(wildcards):
    return f"results/models/{wildcards.experiment}/{wildcards.source}/seed{wildcards.seed}"


def frozen_seeds(site):
    """The seeds the frozen baseline is embedded and probed for. With a split shared by every seed, once (the figure
    seed): the frozen encoder does not depend on the model seed, so the paper reports it without std."""
    return [FIGURE_SEED] if split_is_shared(site) else SEEDS


def probe_seeds(experiment, site):
    return frozen_seeds(site) if experiment == FROZEN["name"] else experiment_seeds(experiment)


def probe_files(ablations=False, multimodal=False):
    """In-domain probe files of the results table (frozen baseline first, then the experiments in config order), of
    the ablation table or of the multimodal table."""
    return [
        f"results/probes/{experiment}/{site}/seed{seed}.json"
        for experiment, sites in probed_sites(ablations, multimodal).items()
        for site in sites
        for seed in probe_seeds(experiment, site)
    ]


def all_probe_files():
    return list(dict.fromkeys(probe_files() + probe_files(ablations=True) + probe_files(multimodal=True)))


def ood_probe_files():
    return [
        f"results/ood/probes/{experiment}/{source}/{target}/seed{seed}.json"
        for experiment, source, target in OOD_RUNS
        for seed in experiment_seeds(experiment)
    ]


class ProbeBatch(NamedTuple):
    """The probes of one demo evaluation job: embedding files of one site, in-domain or out-of-distribution."""

    site: str
    experiments: list
    seeds: list
    sources: list  # the models' training sites for out-of-distribution probes; empty for in-domain ones
    name: str  # "in_domain", "pooled" or "ood"

    def _paths(self, kind, suffix):
        if self.sources:
            return [f"results/ood/{kind}/{e}/{source}/{self.site}/seed{seed}.{suffix}"
                    for e, source, seed in zip(self.experiments, self.sources, self.seeds, strict=True)]
        return [f"results/{kind}/{e}/{self.site}/seed{seed}.{suffix}"
                for e, seed in zip(self.experiments, self.seeds, strict=True)]

    @property
    def embedding_files(self):
        return self._paths("embeddings", "parquet")

    @property
    def probe_files(self):
        return self._paths("probes", "json")

    @property
    def log(self):
        return f"results/logs/evaluate/{self.site}/{self.name}_{self.experiments[0]}_seed{self.seeds[0]}.log"


def all_probed_sites():
    """{experiment: sites} over the results, ablation and multimodal tables (a reference experiment is in several)."""
    probed = {}
    for table in (probed_sites(), probed_sites(ablations=True), probed_sites(multimodal=True)):
        for experiment, sites in table.items():
            probed[experiment] = list(dict.fromkeys([*probed.get(experiment, []), *sites]))
    return probed


def probe_batches():
    """Every probe file, `evaluation.probes_per_job` of one site per batch (in-domain, pooled and OOD apart)."""
    size = EVALUATION["probes_per_job"]
    batches = []
    for site in SITES:
        # a pooled model's probes stay apart, so a site's target (results/sites/{site}.done) trains no pooled model
        in_domain, pooled = [], []
        for experiment, sites in all_probed_sites().items():
            if site in sites:
                runs = pooled if EXPERIMENTS.get(experiment, {}).get("pooled") else in_domain
                runs += [(experiment, seed, None) for seed in probe_seeds(experiment, site)]
        ood = [(e, seed, source) for e, source, target in OOD_RUNS if target == site for seed in experiment_seeds(e)]
        for name, runs in (("in_domain", in_domain), ("pooled", pooled), ("ood", ood)):
            for start in range(0, len(runs), size):
                chunk = runs[start : start + size]
                experiments, seeds, sources = (list(column) for column in zip(*chunk, strict=True))
                batches.append(ProbeBatch(site, experiments, seeds, sources if name == "ood" else [], name))
    return batches


# ---- figures ----

def tsne_inputs(wildcards):
    experiment = wildcards.experiment
    sites = probed_sites()[experiment]
    inputs = {
        "embeddings": [f"results/embeddings/{experiment}/{site}/seed{FIGURE_SEED}.parquet" for site in sites],
        "cohort": [f"results/cohort/{site}.parquet" for site in sites],
    }
    # Trained models' outputs share the projected text's space; the frozen encoder's do not.
    with_text = experiment in EXPERIMENTS
    inputs["text"] = [f"results/text/{s}_seed{FIGURE_SEED}_{TEXT_ENCODER}.parquet" for s in sites if with_text]
    return inputs


def tsne_title(wildcards):
    label = EVALUATION["labels"].get(wildcards.experiment, wildcards.experiment)
    with_text = " with projected text" if wildcards.experiment in EXPERIMENTS else ""
    return f"{label}: patient embeddings{with_text} (seed {FIGURE_SEED})"


def figure_targets():
    probed = probed_sites()  # the ablations have no figures
    return [f"results/figures/km/{e}/{site}.png" for e, sites in probed.items() for site in sites] + [
        f"results/figures/tsne/{e}.png" for e in probed
    ]


# ---- tables ----

def table_labels():
    return json.dumps(EVALUATION["labels"], sort_keys=True)


def ablation_order():
    """The ablation table's rows: the ablations in config order, the reference experiment last."""
    return " ".join(ABLATION_ROWS + ABLATION_REFERENCE)


def ablation_not_run():
    """The rows this run cannot fill (evaluation.ablation_not_run), listed before the reference row; none without
    one, since they would have no place in Table 8's order."""
    return json.dumps(EVALUATION["ablation_not_run"] if ABLATION_REFERENCE else {}, sort_keys=True)


def table_modalities():
    """The frozen encoder is an image-only row; the experiments (ModalTune) default to multi-modal."""
    return json.dumps({FROZEN["name"]: "wsi"})


def multimodal_labels():
    """Table 10's row labels: each experiment's label and the modalities its model reads."""
    labels = {}
    for name in probed_sites(multimodal=True):
        model = EXPERIMENT_CONFIG[name]["model"]
        inputs = ["WSI"] + (["RNA"] if model["transcriptomics"] == "genes" else []) + (
            ["clinical"] if model["clinical"]["enabled"] else [])
        labels[name] = f"{EVALUATION['labels'].get(name, name)} ({' + '.join(inputs)})"
    return json.dumps(labels, sort_keys=True)


def ood_table_probes():
    """The frozen baseline on each target site (paper Table 3's `LP` row), then the out-of-distribution runs."""
    targets = list(dict.fromkeys(target for _, _, target in OOD_RUNS))
    baseline = [
        f"results/probes/{FROZEN['name']}/{target}/seed{seed}.json"
        for target in targets
        for seed in frozen_seeds(target)
        if FROZEN["enabled"]
    ]
    return baseline + ood_probe_files()


def table_targets():
    tables = [f"results/tables/results.{suffix}" for suffix in ("csv", "md", "html")]
    if OOD_RUNS:
        tables += [f"results/tables/ood.{suffix}" for suffix in ("csv", "md", "html")]
    if ABLATION_ROWS:
        tables += [f"results/tables/ablations.{suffix}" for suffix in ("csv", "md", "html")]
    if MULTIMODAL:
        tables += [f"results/tables/multimodal.{suffix}" for suffix in ("csv", "md", "html")]
    return tables
