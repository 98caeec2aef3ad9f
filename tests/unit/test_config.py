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
    real = config.load([REPO / "config" / "tcga.yaml"])  # stands alone: never merged over the demo
    assert real["demo"]["enabled"] is False and real["sites"]


def test_a_config_file_replaces_the_demo_config():
    """The demo config applies only when no file is given; what a user's file omits takes the schema default."""
    demo = REPO / "config" / "demo.yaml"
    assert config.run_config([], demo) == config.load([demo])
    user = config.run_config([REPO / "config" / "tcga.yaml"], demo)
    defaults = config.validate({})
    assert user["demo"] == defaults["demo"]
    assert user["cohort"]["val_fraction"] == defaults["cohort"]["val_fraction"]  # tcga.yaml omits it
    minimal = {"sites": {"BRCA": {"projects": ["BRCA"], "clinical": ["c.tsv"], "slides": "slides"}}}
    filled = config.validate(minimal)
    assert filled["experiments"] == {"modaltune": {"pooled": False, "sites": "all", "objective": "text"}}
    assert filled["evaluation"]["ood"] == [] and filled["training"]["epochs"] == 30
    assert (filled["features"]["encoder"], filled["slide_encoder"]["name"]) == ("gigapath", "gigapath_slide_enc12l768d")


def test_a_pooled_experiment_over_one_site_is_skipped_with_a_notice():
    experiments = {"modaltune": {"pooled": False, "sites": "all"}, "pancancer": {"pooled": True, "sites": "all"}}
    run = config.validate({"experiments": experiments})
    planned, notices = config.experiment_sites(run, ["A"])
    assert planned == {"modaltune": ["A"]}
    assert len(notices) == 1 and "experiments.pancancer" in notices[0] and "skipped" in notices[0]
    planned, notices = config.experiment_sites(run, ["A", "B"])
    assert planned == {"modaltune": ["A", "B"], "pancancer": ["A", "B"]} and notices == []
    listed = config.validate({"experiments": {"pair": {"pooled": True, "sites": ["A", "B"]}}})
    with pytest.raises(config.ConfigError, match=r"experiments\.pair\.sites: unknown site\(s\) \['B'\]"):
        config.experiment_sites(listed, ["A", "C"])


def test_a_run_without_sites_says_how_to_fix_it():
    with pytest.raises(config.ConfigError, match="no site configured"):
        config.site_inputs(config.validate({}))


def test_dev_overlay_fits_the_tiny_encoders_on_any_site_list():
    """config/dev.yaml over the real-data template: the template's sites and paths stay, the models become the tiny
    random-weight ones on the CPU, and the model sizes fit them (the adapter heads divide the tiny width)."""
    import torch

    from modaltune.features import get_encoder_config
    from modaltune.models.modaltune import build_modaltune
    from modaltune.models.slide_encoder import SLIDE_ENCODERS

    template = load("tcga.yaml")
    merged = config.load([REPO / "config" / "tcga.yaml", REPO / "config" / "dev.yaml"])
    assert merged["sites"] == config.validate({"sites": template["sites"]})["sites"]
    assert merged["omics"]["pathways"] == template["omics"]["pathways"]
    assert (merged["features"]["encoder"], merged["slide_encoder"]["name"]) == ("tiny", "tiny")
    assert merged["features"]["weights"] is None and merged["slide_encoder"]["weights"] is None
    assert merged["text"]["encoder"] == "minilm"
    assert {merged[s]["device"] for s in ("features", "text", "training")} == {"cpu"}
    assert merged["training"]["gpus"] == 0 and merged["training"]["epochs"] <= 5
    assert get_encoder_config("tiny").embed_dim == SLIDE_ENCODERS["tiny"].in_chans
    model_section = dict(merged["model"], output_dim=merged["text"]["projector_dim"])
    pathway_genes = [[0, 1], [1, 2, 3], [4]]
    model = build_modaltune(model_section, merged["slide_encoder"], pathway_genes, n_genes=5)
    assert model.encoder.config.name == "tiny" and isinstance(model, torch.nn.Module)


PAPER_SITES = {  # reference modaltune-method.md section 4: site -> TCGA projects
    "BRCA": ["BRCA"], "GBMLGG": ["GBM", "LGG"], "NSCLC": ["LUAD", "LUSC"], "RCC": ["KICH", "KIRC", "KIRP"],
    "COADREAD": ["COAD", "READ"], "BLCA": ["BLCA"],
}
IN_DOMAIN = ["BRCA", "GBMLGG", "NSCLC", "RCC"]


def test_tcga_template_holds_every_paper_site_and_the_table3_runs():
    merged = config.load([REPO / "config" / "tcga.yaml"])  # a config file replaces the demo config
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


def test_batching_experiments_without_the_batch_jobs_is_refused_in_one_line():
    with pytest.raises(config.ConfigError, match=r"^config error: key 'training\.experiments_per_job'.*seeds_per_job"):
        config.validate({"training": {"seeds_per_job": 1, "experiments_per_job": 4}})


def test_defaults_are_filled():
    filled = config.validate({})
    assert filled["slides"]["tile_px"] == 256 and filled["slides"]["mpp"] == 0.5
    assert filled["sites"] == {}


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
