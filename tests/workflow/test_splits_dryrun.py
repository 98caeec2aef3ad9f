"""Dry runs of the split settings: the frozen-encoder baseline once per site when every seed shares the split, per
seed with `cohort.split_per_seed`; a released split folder as the cohort job's input, and a bad one stopping the
run in one line."""

import re
import subprocess
import sys
from pathlib import Path

import yaml
from snakemake_cli import SNAKEFILE, TCGA_CONFIG, dry_run, placeholder_tcga_config, planned_jobs, snakemake

REPO = Path(__file__).resolve().parents[2]
DEMO = yaml.safe_load((REPO / "config" / "demo.yaml").read_text())
SITES, SEEDS = DEMO["demo"]["sites"], DEMO["cohort"]["seeds"]
FROZEN = DEMO["evaluation"]["frozen_baseline"]["name"]


def outputs(jobs, rule):
    """The outputs of `rule`'s jobs, or of the demo's batch rules `<rule>_batch<N>` that stand for it."""
    return {path for job in jobs if job.rule == rule or job.rule.startswith(f"{rule}_batch") for path in job.outputs}


def per_seed_override(tmp_path):
    path = tmp_path / "per_seed.yaml"
    path.write_text(yaml.safe_dump({"cohort": {"split_per_seed": True}}))
    return path


def test_frozen_baseline_runs_once_per_site_unless_splits_are_drawn_per_seed(tmp_path):
    shared = dry_run(tmp_path / "shared", "all")
    assert outputs(shared, "embed_frozen") == {f"results/embeddings/{FROZEN}/{s}/seed{SEEDS[0]}.parquet" for s in SITES}
    probes = outputs(shared, "evaluate")
    assert {p for p in probes if f"/{FROZEN}/" in p} == {f"results/probes/{FROZEN}/{s}/seed{SEEDS[0]}.json" for s in SITES}
    assert {f"results/probes/modaltune/{s}/seed{seed}.json" for s in SITES for seed in SEEDS} <= probes

    per_seed = dry_run(tmp_path / "per_seed", "all", "--configfile", REPO / "config" / "demo.yaml",
                       per_seed_override(tmp_path))
    assert outputs(per_seed, "embed_frozen") == {
        f"results/embeddings/{FROZEN}/{s}/seed{seed}.parquet" for s in SITES for seed in SEEDS
    }


def test_a_released_split_is_the_cohort_jobs_input_and_shared_by_every_seed(tmp_path, real_data):
    folder = real_data / "modaltune_release" / "json_splits" / "tcga_nsclc"
    placeholders = placeholder_tcga_config(tmp_path / "inputs", {"NSCLC": 2, "BRCA": 2})
    release = tmp_path / "release.yaml"
    release.write_text(yaml.safe_dump({"sites": {"NSCLC": {"splits": str(folder)}}}))
    output = snakemake(tmp_path / "run", "--dry-run", "--configfile", TCGA_CONFIG, placeholders, release,
                       per_seed_override(tmp_path)).stdout
    cohort_jobs = re.findall(r"rule cohort:\n\s+input: (.*)\n\s+output: (.*)\n", output)
    [inputs] = [inputs.split(", ") for inputs, outputs in cohort_jobs if "cohort/NSCLC.parquet" in outputs]
    assert {str(folder / f"{split}_nsclc_cls_feat.json") for split in ("train", "val", "test")} <= set(inputs)
    frozen = outputs(planned_jobs(output), "embed_frozen")
    # NSCLC takes the release (one split), BRCA draws one per seed (split_per_seed).
    assert {p for p in frozen if "/NSCLC/" in p} == {f"results/embeddings/{FROZEN}/NSCLC/seed0.parquet"}
    assert {p for p in frozen if "/BRCA/" in p} == {f"results/embeddings/{FROZEN}/BRCA/seed{s}.parquet" for s in SEEDS}


def test_a_missing_release_folder_stops_the_run_in_one_line(tmp_path):
    placeholders = placeholder_tcga_config(tmp_path / "inputs", {"NSCLC": 2})
    release = tmp_path / "release.yaml"
    release.write_text(yaml.safe_dump({"sites": {"NSCLC": {"splits": str(tmp_path / "json_splits" / "tcga_nsclc")}}}))
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(SNAKEFILE), "--directory", str(tmp_path / "run"),
         "--workflow-profile", "none", "-n", "--configfile", str(TCGA_CONFIG), str(placeholders), str(release)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode != 0
    assert f"{tmp_path / 'json_splits' / 'tcga_nsclc'}: release split folder not found" in result.stdout + result.stderr
