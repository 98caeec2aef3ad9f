"""Dry runs of the ablation experiments (paper Table 8): the TCGA template's commented rows, uncommented, plan one
model per in-domain site and seed (No Text Embedding: one single-task job per site, seed and task; Single Modal: no
gene input) and the ablation table; the demo trains its text-trained ablations in one job and the No Text Embedding
runs in another, and the ABMIL (cat) w/ text emb. runs read no slide encoder weights and get their baselines.abmil_cat
settings."""

import json
import re
import shlex

import pytest
import yaml
from snakemake_cli import TCGA_CONFIG, placeholder_tcga_config, planned_jobs, snakemake

# the probed ablations (text-trained models) and the single-task one, in the demo's (Table 8's) order
PROBED = ["single_modal", "single_task_prompt", "abmil_text", "lora", "no_projector", "trainable_projector",
          "model_side_projector"]
NO_TEXT = "no_text_embedding"
ABLATIONS = [*PROBED, NO_TEXT]
TABLE_ORDER = ["single_modal", NO_TEXT, "single_task_prompt", "abmil_text", "lora", "no_projector",
               "trainable_projector", "model_side_projector", "modaltune"]
TASKS = ("subtype", "survival")
TABLE = {f"results/tables/ablations.{suffix}" for suffix in ("csv", "md", "html")}


def uncommented_template(path):
    """config/tcga.yaml with its ablation experiments switched on (their lines and continuation lines)."""
    lines, inside = [], False
    for line in TCGA_CONFIG.read_text().splitlines():
        start = re.match(rf"^  # ({'|'.join(ABLATIONS)}):", line)
        inside = bool(start) or (inside and re.match(r"^  # {10,}\S", line) is not None)
        lines.append(line.replace("  # ", "  ", 1) if inside else line)
    path.write_text("\n".join(lines) + "\n")
    return path


def test_the_tcga_template_ablations_plan_a_model_per_site_and_seed_and_the_ablation_table(tmp_path):
    placeholders = placeholder_tcga_config(tmp_path / "inputs")
    config = uncommented_template(tmp_path / "tcga_ablations.yaml")
    result = snakemake(tmp_path / "run", "--dry-run", "--printshellcmds", "--configfile", config, placeholders)
    jobs = planned_jobs(result.stdout)
    outputs = {path for job in jobs for path in job.outputs}
    assert TABLE <= outputs
    sites = ("BRCA", "GBMLGG", "NSCLC", "RCC")
    for experiment in PROBED:
        models = {p for p in outputs if p.startswith(f"results/models/{experiment}/") and p.endswith(".safetensors")}
        assert models == {f"results/models/{experiment}/{site}/seed{seed}/model.safetensors"
                          for site in sites for seed in (0, 1, 2)}, experiment
        assert not [p for p in outputs if p.startswith("results/figures/") and experiment in p]  # no figures
    # No Text Embedding: one resumable job per run, and no model, embedding, probe or figure of the text pipeline
    no_text = [job for job in jobs if job.rule == "train_supervised"]
    assert sorted(job.outputs for job in no_text) == sorted(
        (f"results/ablations/{NO_TEXT}/{site}/seed{seed}/{task}.json",
         f"results/ablations/{NO_TEXT}/{site}/seed{seed}/{task}.parquet")
        for site in sites for seed in (0, 1, 2) for task in TASKS)
    assert not [p for p in outputs if NO_TEXT in p and not p.startswith("results/ablations/")]
    weights = yaml.safe_load(placeholders.read_text())["slide_encoder"]["weights"]
    train = {name: [b for b in result.stdout.split("\nrule ") if b.startswith("train:") and f"models/{name}/" in b]
             for name in ("abmil_text", "modaltune", "single_modal")}
    inputs = {name: [re.search(r"^\s+input: (.*)$", b, re.M).group(1) for b in blocks] for name, blocks in train.items()}
    # Single Modal's runs never read a gene table; the others do
    assert len(inputs["single_modal"]) == 12 and not [line for line in inputs["single_modal"] if "results/omics/" in line]
    assert all("results/omics/" in line for line in inputs["modaltune"])
    assert len(inputs["abmil_text"]) == 12 and all(weights in line for line in inputs["modaltune"])
    assert not [line for line in inputs["abmil_text"] if weights in line]
    for block in train["abmil_text"]:
        assert '"architecture": "abmil_cat"' in block
        assert '"baselines": {"abmil_cat": {' in block and '"abmil_kp"' not in block  # only its own settings


def test_the_demo_runs_every_ablation_once_and_the_text_trained_ones_in_one_job(tmp_path):
    result = snakemake(tmp_path / "run", "--dry-run", "--printshellcmds")
    jobs = planned_jobs(result.stdout)
    outputs = {path for job in jobs for path in job.outputs}
    assert TABLE <= outputs
    for experiment in PROBED:
        assert f"results/probes/{experiment}/NSCLC/seed0.json" in outputs
        assert not [p for p in outputs if p.startswith(f"results/probes/{experiment}/") and "seed0" not in p]
    blocks = result.stdout.split("\nrule ")
    # the text-trained ablations and the clinical run (NSCLC, seed 0) share one job (training.experiments_per_job)
    batch = [b for b in blocks if re.match(r"train_batch\d+:", b) and "models/single_modal/" in b]
    assert len(batch) == 1
    assert f"--experiment {' '.join([*PROBED, 'clinical'])} --sites NSCLC --seed 0 " in batch[0]
    params = re.search(r"--params (.*) > ", batch[0]).group(1)
    sections = [json.loads(raw) for raw in shlex.split(params)]
    # each experiment's merged model section reaches the job, in --experiment order
    assert [s["model"]["transcriptomics"] for s in sections] == ["learned"] + ["genes"] * len(PROBED)
    assert [s["model"]["architecture"] for s in sections].index("abmil_cat") == PROBED.index("abmil_text")
    # No Text Embedding: both NSCLC runs of seed 0 in one job, nothing else of that experiment
    no_text = [job for job in jobs if NO_TEXT in " ".join(job.outputs)]
    assert len(no_text) == 1 and no_text[0].rule.startswith("train_supervised")
    assert set(no_text[0].outputs) == {f"results/ablations/{NO_TEXT}/NSCLC/seed0/{task}.{suffix}"
                                       for task in TASKS for suffix in ("json", "parquet")}
    command = next(b for b in blocks if b.startswith(no_text[0].rule + ":"))
    assert "--tasks subtype survival" in command and '"epochs": 3' in command and "results/text/" not in re.search(
        r"^\s+input: (.*)$", command, re.M).group(1)
    table = next(b for b in blocks if b.startswith("ablation_table:"))
    assert f"--order {' '.join(TABLE_ORDER)} " in table
    assert f"--baselines results/ablations/{NO_TEXT}/NSCLC/seed0/subtype.json " in table


def test_a_config_without_ablations_or_a_modaltune_experiment_plans_no_ablation_table(tmp_path):
    demo = yaml.safe_load((TCGA_CONFIG.parent / "demo.yaml").read_text())
    demo["experiments"] = {"mine": {"pooled": False, "sites": "all"}}  # no `modaltune`, the default reference
    demo["evaluation"]["ood"] = []
    demo["interpret"]["experiments"] = ["mine"]
    config = tmp_path / "mine.yaml"
    config.write_text(yaml.safe_dump(demo))
    outputs = {p for job in planned_jobs(snakemake(tmp_path / "run", "--dry-run", "--configfile", config).stdout)
               for p in job.outputs}
    assert "results/tables/results.csv" in outputs and not TABLE & outputs


def test_interpreting_a_model_without_the_modal_adapter_stops_the_plan_with_one_line(tmp_path):
    demo = yaml.safe_load((TCGA_CONFIG.parent / "demo.yaml").read_text())
    demo["interpret"]["experiments"] = ["modaltune", "abmil_text"]
    config = tmp_path / "interpret_abmil.yaml"
    config.write_text(yaml.safe_dump(demo))
    with pytest.raises(AssertionError, match=r"interpret\.experiments: \['abmil_text'\] are not ModalTune models"):
        snakemake(tmp_path / "run", "--dry-run", "--configfile", config)
