# Helpers of rules/train.smk: experiments, site groups, inputs and targets of the train and embed rules.

from typing import NamedTuple

from modaltune.training.cli import job_sections

TRAINING = config["training"]
POOLED = "pooled"
try:
    EXPERIMENT_SITES, _skipped = modaltune.config.experiment_sites(config, list(SITES))
except modaltune.config.ConfigError as error:
    raise WorkflowError(str(error)) from None
for _notice in _skipped:
    logger.warning(f"notice: {_notice}")
# The experiments that run with the text objective (models, embeddings, probes); those with `objective: supervised`
# (No Text Embedding) train single-task heads instead (rules/supervised.smk).
EXPERIMENTS = {name: config["experiments"][name] for name in EXPERIMENT_SITES
               if config["experiments"][name]["objective"] == "text"}


def experiment_sites(experiment):
    return EXPERIMENT_SITES[experiment]


def experiment_seeds(experiment):
    """The model seeds of an experiment: its own `seeds` (e.g. a cheaper ablation), else cohort.seeds."""
    return config["experiments"][experiment].get("seeds") or SEEDS


# Each experiment's config: its model/training/text overrides merged over the top-level sections.
EXPERIMENT_CONFIG = {name: modaltune.config.experiment_sections(config, name) for name in EXPERIMENT_SITES}


def experiment_sections(experiment):
    """The config sections of a train/embed job of `experiment` as JSON, with the experiment's overrides."""
    return json.dumps(job_sections(EXPERIMENT_CONFIG[experiment]), sort_keys=True)


def experiment_sections_json(wildcards):
    return experiment_sections(wildcards.experiment)


def uses_genes(experiment):
    return EXPERIMENT_CONFIG[experiment]["model"]["transcriptomics"] == "genes"


def uses_slide_encoder(experiment):
    """False for a model on a registered baseline (ABMIL (cat) w/ text emb.): it reads no slide encoder weights."""
    return EXPERIMENT_CONFIG[experiment]["model"]["architecture"] == "modaltune"


def model_group(experiment, site):
    """The model folder a site's embeddings come from: the site's own model, or the experiment's pooled one."""
    return POOLED if EXPERIMENTS[experiment]["pooled"] else site


def group_sites(wildcards):
    if wildcards.group == POOLED:
        return experiment_sites(wildcards.experiment)
    return [wildcards.group]


def site_inputs(sites, seed, with_text, with_genes=True, with_slide_encoder=True):
    inputs = {
        "cohort": [f"results/cohort/{site}.parquet" for site in sites],
        "splits": [f"results/cohort/{site}_splits.parquet" for site in sites],
        "features": [feature_manifest(site) for site in sites],
    }
    if with_genes:  # the Single Modal ablation reads no gene table
        inputs["omics"] = [f"results/omics/{site}.parquet" for site in sites]
    if with_text:
        inputs["text"] = [f"results/text/{site}_seed{seed}_{TEXT_ENCODER}.parquet" for site in sites]
    if with_slide_encoder and config["slide_encoder"]["weights"]:  # every job that builds the slide encoder reads it
        inputs["slide_encoder_weights"] = config["slide_encoder"]["weights"]
    return inputs


def train_inputs(wildcards):
    with_genes = uses_genes(wildcards.experiment)
    inputs = site_inputs(group_sites(wildcards), wildcards.seed, with_text=True, with_genes=with_genes,
                         with_slide_encoder=uses_slide_encoder(wildcards.experiment))
    if with_genes:
        inputs["pathways"] = "results/omics/pathways.parquet"
    return inputs


def train_site_names(wildcards):
    return " ".join(group_sites(wildcards))


def trained_model_inputs(site, seed, folder, with_genes=True, with_slide_encoder=True):
    """Inputs of a job that embeds a site's patients with the trained model in `folder` (embed, embed_ood)."""
    inputs = site_inputs([site], seed, with_text=False, with_genes=with_genes, with_slide_encoder=with_slide_encoder)
    inputs.update(model=f"{folder}/model.safetensors", model_config=f"{folder}/config.json")
    return inputs


def embed_inputs(wildcards):
    return trained_model_inputs(wildcards.site, wildcards.seed, embed_model_folder(wildcards),
                                uses_genes(wildcards.experiment), uses_slide_encoder(wildcards.experiment))


def embed_model_folder(wildcards):
    group = model_group(wildcards.experiment, wildcards.site)
    return f"results/models/{wildcards.experiment}/{group}/seed{wildcards.seed}"


MODEL_FILES = ("model.safetensors", "config.json", "history.csv")


class TrainBatch(NamedTuple):
    """The runs of one demo training job: some seeds of one or more experiments (`training.experiments_per_job`)
    that train on the same site group; each run embeds its sites."""

    experiments: list
    group: str
    sites: list
    seeds: list

    @property
    def runs(self):
        """(experiment, seed) of each run, in the order `modaltune train --out` expects."""
        return [(experiment, seed) for experiment in self.experiments for seed in self.seeds]

    @property
    def folders(self):
        return [f"results/models/{experiment}/{self.group}/seed{seed}" for experiment, seed in self.runs]

    @property
    def embedding_files(self):
        """For each run in turn, one file per site (the order `modaltune train --embeddings` expects)."""
        return [f"results/embeddings/{experiment}/{site}/seed{seed}.parquet"
                for experiment, seed in self.runs for site in self.sites]

    @property
    def log(self):
        return (f"results/logs/train/{'+'.join(self.experiments)}/{self.group}/"
                f"seeds{'-'.join(map(str, self.seeds))}.log")


def seed_batches(seeds, size):
    """`seeds` in batches of `size`, for the demo's batch rules."""
    return [seeds[start : start + size] for start in range(0, len(seeds), size)]


def train_batches():
    """Every training run in batches: `training.seeds_per_job` seeds of one site group, and up to
    `training.experiments_per_job` experiments (in config order) that train those seeds on that group."""
    experiments = {}  # (group, sites, seeds) -> the experiments that train them
    for experiment in EXPERIMENTS:
        sites = experiment_sites(experiment)
        groups = {POOLED: sites} if EXPERIMENTS[experiment]["pooled"] else {site: [site] for site in sites}
        for group, trained_on in groups.items():
            for seeds in seed_batches(experiment_seeds(experiment), TRAINING["seeds_per_job"]):
                experiments.setdefault((group, tuple(trained_on), tuple(seeds)), []).append(experiment)
    return [TrainBatch(chunk, group, list(sites), list(seeds))
            for (group, sites, seeds), names in experiments.items()
            for chunk in seed_batches(names, TRAINING["experiments_per_job"])]


def model_folders(wildcards, output):
    """A batch job's model folders, one per seed in order, read off its outputs."""
    return " ".join(dict.fromkeys(os.path.dirname(path) for path in output.models))


def train_batch_inputs(job):
    """Inputs of a batch job: each run's training inputs, without repeats."""
    parts = [site_inputs(job.sites, seed, with_text=True, with_genes=uses_genes(experiment),
                         with_slide_encoder=uses_slide_encoder(experiment)) for experiment, seed in job.runs]
    with_genes = any(uses_genes(experiment) for experiment in job.experiments)
    inputs = {"pathways": ["results/omics/pathways.parquet"]} if with_genes else {}
    for part in parts:
        for key, value in part.items():
            inputs.setdefault(key, [])
            inputs[key] += [path for path in ([value] if isinstance(value, str) else value) if path not in inputs[key]]
    return inputs


def embedding_targets():
    return [
        f"results/embeddings/{experiment}/{site}/seed{seed}.parquet"
        for experiment in EXPERIMENTS
        for site in experiment_sites(experiment)
        for seed in experiment_seeds(experiment)
    ]


TARGETS.append(embedding_targets)
