import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from modaltune import config

REPO = Path(__file__).resolve().parents[2]


def load(name):
    return yaml.safe_load((REPO / "config" / name).read_text())


def test_shipped_configs_validate():
    assert config.load([REPO / "config" / "demo.yaml"])["demo"]["enabled"] is True
    merged = config.load([REPO / "config" / "demo.yaml", REPO / "config" / "tcga.yaml"])
    assert merged["demo"]["enabled"] is False and "NSCLC" in merged["sites"]


PAPER_SITES = {  # reference modaltune-method.md section 4: site -> TCGA projects
    "BRCA": ["BRCA"], "GBMLGG": ["GBM", "LGG"], "NSCLC": ["LUAD", "LUSC"], "RCC": ["KICH", "KIRC", "KIRP"],
    "COADREAD": ["COAD", "READ"], "BLCA": ["BLCA"],
}
IN_DOMAIN = ["BRCA", "GBMLGG", "NSCLC", "RCC"]


def test_tcga_template_holds_every_paper_site_and_the_table3_runs():
    merged = config.load([REPO / "config" / "demo.yaml", REPO / "config" / "tcga.yaml"])
    assert {site: inputs["projects"] for site, inputs in merged["sites"].items()} == PAPER_SITES
    subtype_groups = yaml.safe_load((REPO / "modaltune" / "data" / "subtypes.yaml").read_text())
    assert set(PAPER_SITES) <= set(subtype_groups)
    assert {name: run["sites"] for name, run in merged["experiments"].items()} == {
        "modaltune": IN_DOMAIN, "pancancer": IN_DOMAIN}
    assert merged["evaluation"]["ood"] == [
        {"experiment": "modaltune", "source": "BRCA", "targets": ["COADREAD", "BLCA"]},
        {"experiment": "pancancer", "source": "pooled", "targets": ["COADREAD", "BLCA"]},
    ]
    assert merged["slides"]["min_tissue"] == 0.95  # the official tiling's foreground_threshold
    assert Path(merged["omics"]["pathways"]).name == "gene_pathway_processed_v2.csv"  # Xena symbols


def test_unknown_key_names_the_key_in_one_line():
    with pytest.raises(config.ConfigError) as error:
        config.validate({"demo": {"enabled": True}, "slides": {"tile_pxx": 256}})
    message = str(error.value)
    assert "slides.tile_pxx" in message and "\n" not in message


def test_wrong_type_names_the_key():
    with pytest.raises(config.ConfigError, match=r"'slides\.tile_px'.*not of type 'integer'"):
        config.validate({"slides": {"tile_px": "big"}})


def test_defaults_are_filled():
    filled = config.validate({})
    assert filled["slides"]["tile_px"] == 256 and filled["slides"]["mpp"] == 0.5
    assert filled["sites"] == {}


def _leaves(tree, prefix=()):
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            yield from _leaves(value, prefix + (key,))
        else:
            yield prefix + (key,), value


def _lookup(tree, path):
    for key in path:
        if not isinstance(tree, dict) or key not in tree:
            raise KeyError(".".join(path))
        tree = tree[key]
    return tree


def test_no_demo_setting_leaks_into_a_real_data_run():
    """Snakemake merges --configfile over demo.yaml key by key: every demo value that is not the schema's default
    must be set again by the real-data template, or a TCGA run would silently inherit it."""
    demo, tcga, defaults = load("demo.yaml"), load("tcga.yaml"), config.validate({})
    leaks = []
    for path, value in _leaves({k: v for k, v in demo.items() if k != "demo"}):
        try:
            _lookup(tcga, path)
        except KeyError:
            if value != _lookup(defaults, path):
                leaks.append(".".join(path))
    assert leaks == [], f"config/tcga.yaml must set {leaks}"


def test_snakemake_stops_on_a_bad_key_with_one_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("slides:\n  tile_pxx: 3\n")
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(REPO / "workflow" / "Snakefile"), "--directory", str(tmp_path),
         "-n", "--configfile", str(bad)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode != 0
    assert "config error: unknown key 'slides.tile_pxx'" in result.stdout + result.stderr
