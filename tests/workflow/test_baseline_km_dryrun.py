"""Dry runs of the survival baselines' Kaplan-Meier figures: `baselines.km` adds one job drawing every baseline and
site at the figure seed; without it (the demo's default) none is planned."""

from pathlib import Path

import yaml
from snakemake_cli import TCGA_CONFIG, dry_run, placeholder_tcga_config, planned_jobs, snakemake

import modaltune.config

REPO = Path(__file__).resolve().parents[2]
DEMO = modaltune.config.load([REPO / "config" / "demo.yaml"])


def test_the_demo_plans_no_baseline_km_figures_by_default(tmp_path):
    assert DEMO["baselines"]["km"] is False
    jobs = dry_run(tmp_path, "all")
    assert not [job for job in jobs if job.rule == "km_baselines"]
    assert [job.rule for job in jobs].count("km") > 0  # ModalTune's own figures stay


def test_the_flag_adds_one_job_drawing_every_survival_baseline_at_the_figure_seed(tmp_path):
    override = tmp_path / "km.yaml"
    override.write_text(yaml.safe_dump({"baselines": {"km": True}}))
    result = snakemake(tmp_path / "run", "--dry-run", "--printshellcmds", "all",
                       "--configfile", REPO / "config" / "demo.yaml", override)
    km = [job for job in planned_jobs(result.stdout) if job.rule == "km_baselines"]
    assert len(km) == 1 and km[0].outputs == ("results/figures/km/baselines",)
    evaluation, seeds = DEMO["evaluation"], DEMO["cohort"]["seeds"]
    seed = seeds[0] if evaluation["figure_seed"] is None else evaluation["figure_seed"]
    command = next(line for line in result.stdout.splitlines() if "modaltune km --baseline-runs" in line)
    runs = command.split("--baseline-runs ")[1].split(" --out-dir")[0].split()
    assert runs == [f"results/baselines/{model}/{site}/seed{seed}/survival.json"
                    for model in DEMO["baselines"]["models"] for site in DEMO["demo"]["sites"]]


def test_the_tcga_template_draws_them(tmp_path):
    configs = ["--configfile", TCGA_CONFIG, placeholder_tcga_config(tmp_path / "inputs", {"BRCA": 2})]
    jobs = dry_run(tmp_path / "run", "all", *configs)
    assert [job.rule for job in jobs].count("km_baselines") == 1
