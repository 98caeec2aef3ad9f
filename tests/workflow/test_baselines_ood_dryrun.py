"""Dry runs of paper Table 3's baseline rows: the out-of-distribution configs plan the source runs' kept weights, the
baseline's embed-and-probe jobs (one grouped job on the demo, one GPU job per run on real data) and the ood table."""

from pathlib import Path

import pytest
import yaml
from snakemake_cli import TCGA_CONFIG, dry_run, placeholder_tcga_config

import modaltune.config

REPO = Path(__file__).resolve().parents[2]
DEMO = modaltune.config.load([REPO / "config" / "demo.yaml"])


def expected_ood_files(pairs, seeds, tasks, model="gigapath_cat"):
    return {f"results/ood/{kind}/{model}_{task}/{source}/{target}/seed{seed}.{suffix}"
            for kind, suffix in (("embeddings", "parquet"), ("probes", "json"))
            for source, target in pairs for seed in seeds for task in tasks}


def test_demo_plans_one_grouped_job_for_the_baseline_rows_of_the_ood_table(tmp_path):
    jobs = dry_run(tmp_path, "all")
    seeds, tasks = DEMO["cohort"]["seeds"], DEMO["baselines"]["tasks"]
    pairs = [(run["source"], target) for run in DEMO["evaluation"]["ood"] for target in run["targets"]]
    assert pairs == [("NSCLC", "RCC"), ("RCC", "NSCLC")]
    ood = [job for job in jobs if job.rule == "ood_baselines"]
    assert len(ood) == 1 and set(ood[0].outputs) == expected_ood_files(pairs, seeds, tasks)
    # the source runs keep their selected weights: gigapath_cat only
    kept = {path for job in jobs if job.rule == "baselines" for path in job.outputs if path.endswith(".safetensors")}
    assert kept == {f"results/baselines/gigapath_cat/{site}/seed{seed}/{task}.safetensors"
                    for site in DEMO["demo"]["sites"] for seed in seeds for task in tasks}
    assert [job.rule for job in jobs].count("ood_table") == 1


def test_real_data_plans_one_gpu_job_per_source_target_seed_and_task(tmp_path):
    configs = ["--configfile", TCGA_CONFIG, placeholder_tcga_config(tmp_path / "inputs", {"BRCA": 2})]
    jobs = dry_run(tmp_path / "run", "all", *configs)
    ood = [job for job in jobs if job.rule == "ood_baseline"]
    pairs = [("BRCA", "COADREAD"), ("BRCA", "BLCA")]  # the pooled model has no baseline counterpart
    assert {path for job in ood for path in job.outputs} == expected_ood_files(pairs, [0, 1, 2],
                                                                                ["subtype", "survival"])
    assert len(ood) == 12 and all(len(job.outputs) == 2 and job.resources["gpu"] == "1" for job in ood)


def test_without_an_ood_baseline_nothing_is_kept_or_planned(tmp_path):
    override = tmp_path / "no_ood_baseline.yaml"
    override.write_text(yaml.safe_dump({"evaluation": {"ood_baseline": None}}))
    jobs = dry_run(tmp_path / "run", "all", "--configfile", REPO / "config" / "demo.yaml", override)
    assert not [job for job in jobs if job.rule.startswith("ood_baseline")]
    assert not [path for job in jobs for path in job.outputs if path.endswith(".safetensors")
                and "/baselines/" in path]


def test_an_ood_baseline_that_is_not_trained_is_refused_with_the_fix(tmp_path):
    override = tmp_path / "untrained.yaml"
    override.write_text(yaml.safe_dump({"baselines": {"models": ["abmil"]}}))
    with pytest.raises(AssertionError, match=r"evaluation.ood_baseline 'gigapath_cat' is not one of baselines.models"):
        dry_run(tmp_path / "run", "all", "--configfile", REPO / "config" / "demo.yaml", override)
