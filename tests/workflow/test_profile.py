"""The SLURM profile refers to real rules and groups, and no other profile layer can silently override it."""

import re
from pathlib import Path

import pytest
import yaml
from snakemake_cli import SLURM_PROFILE, snakemake

REPO = Path(__file__).resolve().parents[2]
RULE_FILES = sorted((REPO / "workflow" / "rules").glob("*.smk")) + [REPO / "workflow" / "Snakefile"]
PROFILE = yaml.safe_load((SLURM_PROFILE / "config.yaml").read_text())


def rule_blocks():
    """{rule name: its source text}, from the rule files (names as written, `rule x:` or `name: f"..."`)."""
    blocks = {}
    for path in RULE_FILES:
        for match in re.finditer(r"^( *)rule (\w+):\n((?:\1 .*\n|\s*\n)*)", path.read_text(), re.M):
            blocks[match.group(2)] = match.group(3)
    return blocks


@pytest.fixture(scope="module")
def workflow_rules(tmp_path_factory):
    """The rules Snakemake itself sees for the demo config."""
    listing = snakemake(tmp_path_factory.mktemp("rules"), "--list-rules").stdout
    return {line.strip() for line in listing.splitlines() if line.strip()}


def test_set_resources_name_existing_rules(workflow_rules):
    """Snakemake ignores set-resources for an unknown rule: a renamed rule would silently lose its GPU."""
    assert set(PROFILE["set-resources"]) <= workflow_rules | set(rule_blocks())


def test_group_components_name_existing_groups():
    groups = {group for block in rule_blocks().values() for group in re.findall(r'group:\s*"(\w+)"', block)}
    assert set(PROFILE["group-components"]) <= groups, "group-components names a group no rule declares"
    assert {"tile", "extract_features"} <= groups, "the per-slide rules are grouped for submission"


def test_every_rule_that_can_use_a_gpu_gets_one_on_slurm():
    """A rule asking for a `gpu` resource runs on the GPU partition with one GPU under the profile."""
    gpu_rules = {name for name, block in rule_blocks().items() if re.search(r"^\s+gpu=", block, re.M)}
    assert gpu_rules, "no rule asks for a GPU"
    for rule in gpu_rules:
        resources = PROFILE["set-resources"].get(rule, {})
        assert resources.get("gpu") == 1, f"{rule}: no gpu in the SLURM profile"
        assert resources.get("slurm_partition") == "$MODALTUNE_SLURM_GPU_PARTITION", rule


def test_profile_never_sets_threads_through_cpus_per_task():
    """cpus_per_task overrides `threads:` (--cpus-per-task); rules size their CPUs with threads."""
    resources = [PROFILE["default-resources"], *PROFILE["set-resources"].values()]
    assert not any("cpus_per_task" in entry for entry in resources)


def test_workflow_profile_cannot_override_the_slurm_profile():
    """Snakemake loads workflow/profiles/default by itself and its keys replace the cluster profile's whole."""
    default = REPO / "workflow" / "profiles" / "default"
    if not default.exists():
        return
    files = [p for p in (default / "profile.yaml", default / "config.yaml") if p.exists()]
    assert files, f"{default} exists without profile.yaml: Snakemake aborts every run"
    shared = set(yaml.safe_load(files[0].read_text()) or {}) & set(PROFILE)
    assert not shared, f"{files[0]} overrides the SLURM profile's {sorted(shared)}"
