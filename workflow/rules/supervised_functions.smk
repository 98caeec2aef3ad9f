# Helpers of rules/supervised.smk: the runs of experiments with `objective: supervised` (No Text Embedding).

from typing import NamedTuple

from modaltune.baselines.cli import SUPERVISED_SECTIONS

SUPERVISED = [name for name in EXPERIMENT_SITES if config["experiments"][name]["objective"] == "supervised"]
SUPERVISED_TASKS = config["baselines"]["tasks"]  # one single-task model per task, as the baselines
SUPERVISED_RUN = "results/ablations/{experiment}/{site}/seed{seed}/{task}"


def supervised_sections(experiment):
    """--params of a job: the experiment's merged config sections, of text, features and baselines only the keys the
    runs read (editing another, e.g. a baseline's settings, reruns nothing here)."""
    sections = EXPERIMENT_CONFIG[experiment]
    params = {name: sections[name] for name in SUPERVISED_SECTIONS}
    params.update(text={"projector_dim": sections["text"]["projector_dim"]},
                  features={"encoder": sections["features"]["encoder"]},
                  baselines={"training": sections["baselines"]["training"]})
    return json.dumps(params, sort_keys=True)


def supervised_sections_json(wildcards):
    return supervised_sections(wildcards.experiment)


def supervised_inputs(site):
    """The site's cohort, split, genes, feature manifest and the pathway table (and the slide-encoder weights)."""
    inputs = site_inputs([site], None, with_text=False)
    inputs["pathways"] = "results/omics/pathways.parquet"
    return inputs


def supervised_site_inputs(wildcards):
    return supervised_inputs(wildcards.site)


class SupervisedBatch(NamedTuple):
    """The runs of one demo job: every task of some seeds of one experiment and site."""

    experiment: str
    site: str
    seeds: list

    @property
    def outputs(self):
        return [SUPERVISED_RUN.format(experiment=self.experiment, site=self.site, seed=seed, task=task) + suffix
                for seed in self.seeds for task in SUPERVISED_TASKS for suffix in (".json", ".parquet")]

    @property
    def log(self):
        return f"results/logs/train_supervised/{self.experiment}/{self.site}/seeds{'-'.join(map(str, self.seeds))}.log"


def supervised_batches():
    """`training.seeds_per_job` seeds of one experiment and site per job, every task in it."""
    return [SupervisedBatch(experiment, site, seeds)
            for experiment in SUPERVISED
            for site in experiment_sites(experiment)
            for seeds in seed_batches(experiment_seeds(experiment), TRAINING["seeds_per_job"])]


def supervised_records():
    """Every run's record, in config order (the ablation table reads them)."""
    return [SUPERVISED_RUN.format(experiment=experiment, site=site, seed=seed, task=task) + ".json"
            for experiment in SUPERVISED
            for site in experiment_sites(experiment)
            for seed in experiment_seeds(experiment)
            for task in SUPERVISED_TASKS]


def supervised_targets():
    return [path for record in supervised_records() for path in (record, record.replace(".json", ".parquet"))]
