"""Dry runs of the clinical modality (paper Table 10): the demo trains ModalTune w/ Clinical once (NSCLC, seed 0) in
one job reading the cohort table, and the multimodal table reads the reference experiment's and the clinical run's
probes; the TCGA template's commented `clinical` experiment, uncommented, plans one model per in-domain site and seed."""

import re

import yaml
from snakemake_cli import TCGA_CONFIG, placeholder_tcga_config, planned_jobs, snakemake

TABLE = {f"results/tables/multimodal.{suffix}" for suffix in ("csv", "md", "html")}


def test_the_demo_trains_the_clinical_run_in_one_job_and_plans_the_multimodal_table(tmp_path):
    result = snakemake(tmp_path / "run", "--dry-run", "--printshellcmds")
    jobs = planned_jobs(result.stdout)
    outputs = {path for job in jobs for path in job.outputs}
    assert TABLE <= outputs
    clinical = {p for p in outputs if p.startswith(("results/models/clinical/", "results/probes/clinical/"))}
    assert clinical == {"results/models/clinical/NSCLC/seed0/" + name
                        for name in ("model.safetensors", "config.json", "history.csv")} | {
        "results/probes/clinical/NSCLC/seed0.json"}
    blocks = result.stdout.split("\nrule ")
    train = [b for b in blocks if re.match(r"train(_batch\d+)?:", b) and "models/clinical/" in b]
    assert len(train) == 1
    assert "results/cohort/NSCLC.parquet" in re.search(r"^\s+input: (.*)$", train[0], re.M).group(1)
    assert '"clinical": {"enabled": true' in train[0] and '"epochs": 3' in train[0]
    table = next(b for b in blocks if b.startswith("multimodal_table:"))
    command = table.split("Shell command:")[1]
    probes = re.findall(r"results/probes/(\w+)/(\w+)/seed(\d)\.json", command)
    # the reference on the clinical run's site only, so that every column compares the same sites
    assert probes == [("modaltune", "NSCLC", seed) for seed in "012"] + [("clinical", "NSCLC", "0")]
    assert '"clinical": "ModalTune w/ Clinical (WSI + RNA + clinical)"' in command
    assert '"modaltune": "ModalTune (WSI + RNA)"' in command
    results = next(b for b in blocks if b.startswith("results_table:")).split("Shell command:")[1]
    assert "probes/clinical/" not in results  # a Table 10 row, not a Table 2 row


def test_the_tcga_template_clinical_experiment_plans_a_model_per_site_and_seed(tmp_path):
    placeholders = placeholder_tcga_config(tmp_path / "inputs")
    text = TCGA_CONFIG.read_text()
    line = next(line for line in text.splitlines() if line.startswith("  # clinical:"))
    config = tmp_path / "tcga_clinical.yaml"
    config.write_text(text.replace(line, line.replace("  # ", "  ", 1)))
    outputs = {path for job in planned_jobs(snakemake(tmp_path / "run", "--dry-run", "--configfile", config,
                                                      placeholders).stdout) for path in job.outputs}
    assert TABLE <= outputs
    models = {p for p in outputs if p.startswith("results/models/clinical/") and p.endswith(".safetensors")}
    assert models == {f"results/models/clinical/{site}/seed{seed}/model.safetensors"
                      for site in ("BRCA", "GBMLGG", "NSCLC", "RCC") for seed in (0, 1, 2)}
    assert not [p for p in outputs if p.startswith("results/figures/") and "/clinical/" in p]  # no figures


def test_a_config_without_multimodal_experiments_plans_no_multimodal_table(tmp_path):
    demo = yaml.safe_load((TCGA_CONFIG.parent / "demo.yaml").read_text())
    demo["experiments"] = {name: e for name, e in demo["experiments"].items() if not e.get("multimodal")}
    config = tmp_path / "plain.yaml"
    config.write_text(yaml.safe_dump(demo))
    outputs = {p for job in planned_jobs(snakemake(tmp_path / "run", "--dry-run", "--configfile", config).stdout)
               for p in job.outputs}
    assert "results/tables/results.csv" in outputs and not TABLE & outputs
