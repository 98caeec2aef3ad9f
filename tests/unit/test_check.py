"""`modaltune check`: the preflight on a generated demo site (counts against the files themselves, weight files of
the right architecture, the job plan) and on a broken config (every problem reported, in one line each)."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from modaltune import config
from modaltune.check import run_preflight
from modaltune.cli import main as cli_main
from modaltune.features import create_encoder
from modaltune.models.slide_encoder import build_slide_encoder
from modaltune.synth import demo_pathways_file, demo_site_inputs
from modaltune.synth.cohort import site_paths
from modaltune.synth.generate import build_site
from modaltune.synth.tables import write_pathways

REPO = Path(__file__).resolve().parents[2]
SNAKEFILE = REPO / "workflow" / "Snakefile"
DEMO = REPO / "config" / "demo.yaml"
SITE = "NSCLC"


def _tiny_weights(folder: Path) -> dict[str, Path]:
    """Weight files of the tiny encoders in the formats of the real ones: a flat state dict (tile encoder) and
    Gigapath's slide_encoder.pth layout (tensors under "model")."""
    folder.mkdir(parents=True, exist_ok=True)
    tile, slide = folder / "tile.bin", folder / "slide_encoder.pth"
    torch.save(create_encoder("tiny", device="cpu").model.state_dict(), tile)
    torch.save({"model": build_slide_encoder("tiny").state_dict()}, slide)
    return {"tile": tile, "slide": slide}


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """A working directory holding one generated demo site, and config files for it: (workdir, files)."""
    workdir = tmp_path_factory.mktemp("check_demo")
    weights = _tiny_weights(workdir / "weights")
    overlay = {
        "demo": {"sites": [SITE], "patients_per_site": 10},
        "evaluation": {"ood": []},
        "features": {"weights": str(weights["tile"])},
        "slide_encoder": {"weights": str(weights["slide"])},
    }
    (workdir / "small.yaml").write_text(yaml.safe_dump(overlay))
    files = [DEMO, workdir / "small.yaml"]
    demo = config.load(files)["demo"]
    root = workdir / config.DEMO_ROOT
    inputs = demo_site_inputs(demo, root=str(root))[SITE]
    tables = {"clinical": inputs["clinical"][0], "rna": inputs["rna"][0], "truth": site_paths(root, SITE)["truth"]}
    build_site(SITE, demo, tables, inputs["slide_files"])
    write_pathways(demo_pathways_file(root), demo)
    return workdir, files


def planned(report, rule: str) -> int:
    """Jobs of `rule`: one per item, or the demo's batch rules `<rule>_batch<N>` of several items."""
    return sum(count for name, count in report.jobs.items() if name == rule or name.startswith(f"{rule}_batch"))


def test_check_counts_the_demo_sites_patients_and_plans_its_jobs(demo_run):
    workdir, files = demo_run
    report = run_preflight(files, SNAKEFILE, workdir)
    text = report.render()
    assert report.ok, text
    site = workdir / config.DEMO_ROOT / SITE
    clinical = set(pd.read_csv(site / "clinical.tsv", sep="\t", dtype=str)["case_submitter_id"])
    samples = pd.read_csv(site / "HiSeqV2.tsv", sep="\t", nrows=0).columns[1:]
    rna = {sample[:12] for sample in samples if 1 <= int(sample[13:15]) <= 9}
    slides = {path.name[:12] for path in (site / "slides").glob("*.svs")}
    assert report.patients[SITE] == {
        "clinical": len(clinical), "rna": len(rna), "slides": len(slides),
        "clinical_and_slides": len(clinical & slides), "clinical_slides_and_rna": len(clinical & slides & rna),
    }  # fmt: skip
    assert len(rna) < len(clinical)  # the demo leaves some patients without a tumour sample
    assert "GDC clinical.tsv, classic export (2020-2023) (gdc_classic)" in text
    assert "(xena_genes_by_samples)" in text
    assert "tile encoder tiny: weights" in text and "match the architecture" in text
    assert "slide encoder tiny: weights" in text
    assert "notice: experiments.pancancer is pooled over one site (NSCLC): skipped" in text
    loaded = config.load(files)
    running, _ = config.experiment_sites(loaded, [SITE])  # pancancer skipped: pooled over one site
    per_job = loaded["training"]["seeds_per_job"]
    experiments = loaded["experiments"]
    runs = {name: experiments[name].get("seeds") or loaded["cohort"]["seeds"] for name in running}
    supervised = [name for name in runs if experiments[name].get("objective") == "supervised"]  # No Text Embedding
    assert supervised
    # one job for modaltune's seeds, one for every experiment that trains seed 0 alone (the ablations, clinical)
    single_seed = [name for name, seeds in runs.items() if name not in supervised and len(seeds) == 1]
    assert len(single_seed) <= loaded["training"]["experiments_per_job"]
    assert planned(report, "train") == math.ceil(len(runs["modaltune"]) / per_job) + 1
    assert planned(report, "train_supervised") == len(supervised)  # the demo: a site's task runs in one job
    slide_files = len(list((site / "slides").glob("*.svs")))
    assert planned(report, "tile") == math.ceil(slide_files / loaded["slides"]["slides_per_job"])
    assert report.jobs["total"] == sum(count for rule, count in report.jobs.items() if rule != "total")


def test_check_reports_every_problem_of_a_broken_config(demo_run, tmp_path):
    workdir, _ = demo_run
    demo_site = workdir / config.DEMO_ROOT / SITE
    unknown_table = tmp_path / "unknown.tsv"
    unknown_table.write_text("foo\tbar\n1\t2\n")
    no_barcodes = tmp_path / "expression.tsv"
    no_barcodes.write_text("gene\tsample_a\tsample_b\nTP53\t1.0\t2.0\n")
    (tmp_path / "no_slides").mkdir()
    weights = _tiny_weights(tmp_path / "weights")
    broken_slide = tmp_path / "weights" / "broken_slide_encoder.pth"
    state = torch.load(weights["slide"], weights_only=True)["model"]
    dropped = sorted(state)[0]
    torch.save({"model": {k: v for k, v in state.items() if k != dropped}}, broken_slide)
    other = tmp_path / "weights" / "other.bin"
    torch.save({"head.weight": torch.zeros(2, 2)}, other)
    broken = {
        "sites": {
            "BRCA": {"projects": ["BRCA"], "clinical": [str(demo_site / "clinical.tsv")],
                     "rna": [str(demo_site / "HiSeqV2.tsv")], "slides": str(demo_site / "slides")},
            "LUAD": {"projects": ["LUAD"], "clinical": [str(tmp_path / "missing.tsv"), str(unknown_table)],
                     "rna": [str(no_barcodes)], "slides": str(tmp_path / "no_slides")},
        },
        "omics": {"pathways": str(tmp_path / "missing_pathways.csv")},
        "features": {"encoder": "tiny", "weights": str(other)},
        "slide_encoder": {"name": "tiny", "weights": str(broken_slide)},
        "model": {"adapter": {"heads": 12}},  # the template's 12 heads do not divide the tiny adapter width 16
    }  # fmt: skip
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(broken))
    report = run_preflight([path], SNAKEFILE, workdir, count_jobs=False)
    expected = [
        "site BRCA: ",  # the demo's NSCLC table holds LUAD and LUSC patients only
        "holds no patient of projects ['BRCA']",
        f"site LUAD: clinical table not found: {tmp_path / 'missing.tsv'}",
        f"site LUAD: {unknown_table}: unknown clinical table format",
        f"site LUAD: {no_barcodes}: TCGA barcodes found neither in the header nor in the first column",
        f"site LUAD: no slide in {tmp_path / 'no_slides'} matches slide_glob '*.svs'",
        f"pathway file not found: {tmp_path / 'missing_pathways.csv'}",
        f"features.weights: {other} is not a 'tiny' checkpoint",
        f"slide_encoder.weights: {broken_slide} does not match slide encoder 'tiny': missing keys: {dropped}",
        "model.adapter.heads 12 does not divide the adapter width 16",
    ]
    text = "\n".join(report.errors)
    missing = [fragment for fragment in expected if fragment not in text]
    assert not missing, f"not reported: {missing}\nreport:\n{report.render()}"
    assert all("\n" not in error for error in report.errors)
    assert not report.ok and len(report.errors) == 9


def test_check_stops_at_an_invalid_config_with_exit_status_1(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("slides:\n  tile_pxx: 3\n")
    assert cli_main(["check", "--configfile", str(bad), "--directory", str(tmp_path), "--no-jobs"]) == 1
    out = capsys.readouterr().out
    assert "config error: unknown key 'slides.tile_pxx'" in out and "1 problem(s) would stop the run" in out


def test_check_names_the_weights_a_real_encoder_lacks(tmp_path):
    user = {
        "sites": {"BRCA": {"projects": ["BRCA"], "clinical": ["c.tsv"], "slides": "slides"}},
        "features": {"encoder": "gigapath"},
        "slide_encoder": {"name": "tiny"},
    }  # fmt: skip
    path = tmp_path / "user.yaml"
    path.write_text(yaml.safe_dump(user))
    report = run_preflight([path], SNAKEFILE, tmp_path, count_jobs=False)
    text = "\n".join(report.errors)
    assert "features.weights: tile encoder 'gigapath' needs pretrained weights but features.weights is not set" in text
    assert "features.encoder 'gigapath' writes 1536-d tile features, but slide_encoder 'tiny' reads 96-d" in text
    assert "config error: set omics.pathways to a pathway file" in text


def test_weights_of_the_legacy_torch_format_are_checked_too(tmp_path):
    """Names and shapes come from a memory-mapped file where torch can map it (its zip format); a file of the legacy
    format is read instead of failing."""
    from modaltune.features import check_weights

    state = create_encoder("tiny", device="cpu").model.state_dict()
    legacy = tmp_path / "legacy.bin"
    torch.save(state, legacy, _use_new_zipfile_serialization=False)
    assert check_weights("tiny", legacy) == str(legacy)
    assert check_weights("tiny", None) == "random"


def test_a_user_config_with_the_dev_overlay_passes_the_check(demo_run, tmp_path):
    """The demo's generated files as a user's own cohort (no demo mode), under config/dev.yaml: the preflight finds
    the same patients as in demo mode, no weights are needed, and only what the user's file asks for is planned."""
    workdir, files = demo_run
    site = workdir / config.DEMO_ROOT / SITE
    user = {
        "sites": {SITE: {"projects": ["LUAD", "LUSC"], "clinical": [str(site / "clinical.tsv")],
                         "rna": [str(site / "HiSeqV2.tsv")], "slides": str(site / "slides")}},
        "omics": {"pathways": str(workdir / config.DEMO_ROOT / "pathways.csv")},
        "slides": {"on_error": "skip"},  # the demo cohort holds a truncated slide
    }  # fmt: skip
    path = tmp_path / "my.yaml"
    path.write_text(yaml.safe_dump(user))
    report = run_preflight([path, REPO / "config" / "dev.yaml"], SNAKEFILE, tmp_path / "run")
    assert report.ok, report.render()
    assert report.patients[SITE] == run_preflight(files, SNAKEFILE, workdir, count_jobs=False).patients[SITE]
    assert "tile encoder tiny: random weights" in report.render()
    assert not any(rule.startswith("demo") for rule in report.jobs)
    assert report.jobs["train"] == len(config.validate({})["cohort"]["seeds"])  # modaltune on one site, per seed


def test_check_reads_a_real_cbioportal_pair_and_warns_about_a_lone_patient_table(real_data, tmp_path):
    study = real_data / "cbioportal_paad"
    patients = set(pd.read_csv(study / "data_clinical_patient.txt", sep="\t", comment="#", dtype=str)["PATIENT_ID"])
    (tmp_path / "slides").mkdir()
    reports = {}
    for name, tables in {"pair": ["data_clinical_patient.txt", "data_clinical_sample.txt"],
                         "alone": ["data_clinical_patient.txt"]}.items():  # fmt: skip
        site = {"projects": ["PAAD"], "clinical": [str(study / table) for table in tables], "slides": "slides"}
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump({"sites": {"PAAD": site}}))
        reports[name] = run_preflight([path], SNAKEFILE, tmp_path, count_jobs=False)
    assert reports["pair"].patients["PAAD"]["clinical"] == len(patients)
    assert "(cbioportal_patient)" in reports["pair"].render() and "(cbioportal_sample)" in reports["pair"].render()
    assert "without its sample table" not in reports["pair"].render()
    assert "warning: site PAAD lists a cBioPortal patient table without its sample table" in reports["alone"].render()
