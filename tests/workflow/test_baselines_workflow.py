"""Dry runs of the baseline rules: grouped demo jobs, one GPU job per run on real data, and `--forcerun` of one
baseline that leaves the others alone."""

from pathlib import Path

import pytest
from snakemake_cli import TCGA_CONFIG, create_outputs, dry_run, placeholder_tcga_config, snakemake

import modaltune.config
from modaltune.baselines import BASELINES

REPO = Path(__file__).resolve().parents[2]
DEMO = modaltune.config.load([REPO / "config" / "demo.yaml"])


def baseline_jobs(jobs):
    return [job for job in jobs if job.rule.startswith("baseline")]


def test_demo_trains_every_baseline_with_one_job_per_site(tmp_path):
    jobs = baseline_jobs(dry_run(tmp_path, "all"))
    sites, seeds, tasks = DEMO["demo"]["sites"], DEMO["cohort"]["seeds"], DEMO["baselines"]["tasks"]
    assert [job.rule for job in jobs] == ["baselines"] * len(sites)
    for job in jobs:
        site = next(s for s in sites if f"/{s}/" in job.outputs[0])
        assert set(job.outputs) == {f"results/baselines/{name}/{site}/seed{seed}/{task}.{suffix}" for name in BASELINES
                                    for seed in seeds for task in tasks for suffix in suffixes(name)}


def suffixes(name):
    """A run's files; the out-of-distribution table's baseline (both configs' OOD runs) also keeps its weights."""
    return ("json", "parquet", "safetensors") if name == "gigapath_cat" else ("json", "parquet")


@pytest.fixture(scope="module")
def built_cohort(tmp_path_factory):
    """A placeholder real-data site whose outputs all exist and are up to date (empty files stamped by --touch)."""
    tmp_path = tmp_path_factory.mktemp("cohort")
    configs = ["--configfile", TCGA_CONFIG, placeholder_tcga_config(tmp_path / "inputs", {"NSCLC": 2})]
    workdir = tmp_path / "run"
    jobs = dry_run(workdir, "all", *configs)
    create_outputs(workdir, {path for job in jobs for path in job.outputs})
    snakemake(workdir, "all", "--touch", "--cores", "1", *configs)
    return workdir, configs, jobs


def test_real_cohorts_run_one_gpu_job_per_baseline_site_seed_and_task(built_cohort):
    _, _, jobs = built_cohort
    runs = baseline_jobs(jobs)
    seeds, tasks = [0, 1, 2], ["subtype", "survival"]
    sites = modaltune.config.load([TCGA_CONFIG])["sites"]  # the template's six, the OOD ones included
    assert len(runs) == len(BASELINES) * len(sites) * len(seeds) * len(tasks)
    for job in runs:
        assert len(job.outputs) == len(suffixes(job.rule.removeprefix("baseline_"))) and job.resources["gpu"] == "1"


def test_forcerun_one_baseline_retrains_it_alone(built_cohort):
    workdir, configs, _ = built_cohort
    jobs = dry_run(workdir, "all", "--forcerun", "baseline_abmil", *configs)
    assert {job.rule for job in baseline_jobs(jobs)} == {"baseline_abmil"}
    assert len(baseline_jobs(jobs)) == 6 * len(modaltune.config.load([TCGA_CONFIG])["sites"]) and {job.rule for job in jobs} <= {
        "baseline_abmil", "results_table", "km_baselines", "all"}  # the KM job redraws ABMIL's figures
