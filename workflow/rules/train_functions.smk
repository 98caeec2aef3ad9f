# Helpers of rules/train.smk: experiments, site groups, inputs and targets of the train and embed rules.

from modaltune.training.cli import SECTIONS as TRAIN_SECTIONS

TRAINING = config["training"]
POOLED = "pooled"
try:
    EXPERIMENT_SITES, _skipped = modaltune.config.experiment_sites(config, list(SITES))
except modaltune.config.ConfigError as error:
    raise WorkflowError(str(error)) from None
for _notice in _skipped:
    logger.warning(f"notice: {_notice}")
EXPERIMENTS = {name: config["experiments"][name] for name in EXPERIMENT_SITES}  # the experiments that run


def experiment_sites(experiment):
    return EXPERIMENT_SITES[experiment]


def experiment_seeds(experiment):
    """The model seeds of an experiment: its own `seeds` (e.g. a cheaper ablation), else cohort.seeds."""
    return EXPERIMENTS[experiment].get("seeds") or SEEDS


# Each experiment's config: its model/training/text overrides merged over the top-level sections.
EXPERIMENT_CONFIG = {name: modaltune.config.experiment_sections(config, name) for name in EXPERIMENTS}


def experiment_sections_json(wildcards):
    """The config sections of a train/embed job, with the experiment's overrides."""
    sections = EXPERIMENT_CONFIG[wildcards.experiment]
    return json.dumps({name: sections[name] for name in TRAIN_SECTIONS}, sort_keys=True)


def uses_genes(experiment):
    return EXPERIMENT_CONFIG[experiment]["model"]["transcriptomics"] == "genes"


def model_group(experiment, site):
    """The model folder a site's embeddings come from: the site's own model, or the experiment's pooled one."""
    return POOLED if EXPERIMENTS[experiment]["pooled"] else site


def group_sites(wildcards):
    if wildcards.group == POOLED:
        return experiment_sites(wildcards.experiment)
    return [wildcards.group]


def site_inputs(sites, seed, with_text, with_genes=True):
    inputs = {
        "cohort": [f"results/cohort/{site}.parquet" for site in sites],
        "splits": [f"results/cohort/{site}_splits.parquet" for site in sites],
        "features": [feature_manifest(site) for site in sites],
    }
    if with_genes:  # the Single Modal ablation reads no gene table
        inputs["omics"] = [f"results/omics/{site}.parquet" for site in sites]
    if with_text:
        inputs["text"] = [f"results/text/{site}_seed{seed}_{TEXT_ENCODER}.parquet" for site in sites]
    if config["slide_encoder"]["weights"]:  # every job that builds the slide encoder reads it
        inputs["slide_encoder_weights"] = config["slide_encoder"]["weights"]
    return inputs


def train_inputs(wildcards):
    with_genes = uses_genes(wildcards.experiment)
    inputs = site_inputs(group_sites(wildcards), wildcards.seed, with_text=True, with_genes=with_genes)
    if with_genes:
        inputs["pathways"] = "results/omics/pathways.parquet"
    return inputs


def train_site_names(wildcards):
    return " ".join(group_sites(wildcards))


def trained_model_inputs(site, seed, folder, with_genes=True):
    """Inputs of a job that embeds a site's patients with the trained model in `folder` (embed, embed_ood)."""
    inputs = site_inputs([site], seed, with_text=False, with_genes=with_genes)
    inputs.update(model=f"{folder}/model.safetensors", model_config=f"{folder}/config.json")
    return inputs


def embed_inputs(wildcards):
    return trained_model_inputs(wildcards.site, wildcards.seed, embed_model_folder(wildcards),
                                uses_genes(wildcards.experiment))


def embed_model_folder(wildcards):
    group = model_group(wildcards.experiment, wildcards.site)
    return f"results/models/{wildcards.experiment}/{group}/seed{wildcards.seed}"


def embedding_targets():
    return [
        f"results/embeddings/{experiment}/{site}/seed{seed}.parquet"
        for experiment in EXPERIMENTS
        for site in experiment_sites(experiment)
        for seed in experiment_seeds(experiment)
    ]


TARGETS.append(embedding_targets)
