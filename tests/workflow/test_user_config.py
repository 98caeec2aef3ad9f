"""A user's config file stands alone: a dry run of a minimal real-data config (sites, pathways, weights) plans
exactly what it asks for, and nothing of the demo config (its second experiment, its out-of-distribution runs, its
demo cohort) comes back."""

from pathlib import Path

import yaml
from snakemake_cli import dry_run, placeholder_slide_names, snakemake


def _minimal_config(root: Path) -> Path:
    """One site with placeholder (empty) inputs: only their names matter to a dry run."""
    files = {name: root / name for name in ("clinical.tsv", "HiSeqV2.tsv", "pathways.csv", "tile.bin", "slide.pth")}
    for path in files.values():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    slides = root / "slides"
    slides.mkdir()
    for name in placeholder_slide_names(0, 2):
        (slides / name).touch()
    config = {
        "sites": {"BRCA": {"projects": ["BRCA"], "clinical": [str(files["clinical.tsv"])],
                           "rna": [str(files["HiSeqV2.tsv"])], "slides": str(slides)}},
        "omics": {"pathways": str(files["pathways.csv"])},
        "features": {"weights": str(files["tile.bin"])},
        "slide_encoder": {"weights": str(files["slide.pth"])},
    }  # fmt: skip
    path = root / "my.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_a_minimal_user_config_plans_only_what_it_asks_for(tmp_path):
    user = _minimal_config(tmp_path / "inputs")
    jobs = dry_run(tmp_path / "run", "all", "--configfile", user)
    outputs = {path for job in jobs for path in job.outputs}
    assert not any(job.rule.startswith("demo") for job in jobs)
    assert not any("NSCLC" in path or "RCC" in path or path.startswith("results/demo") for path in outputs)
    models = {path for job in jobs if job.rule == "train" for path in job.outputs if path.endswith("model.safetensors")}
    assert models == {f"results/models/modaltune/BRCA/seed{seed}/model.safetensors" for seed in (0, 1, 2)}
    probed = {Path(path).parts[2] for job in jobs if job.rule == "evaluate" for path in job.outputs}
    assert probed == {"modaltune", "gigapath_lp"}  # the schema's experiment and the frozen baseline; no pancancer
    assert not any(job.rule in ("embed_ood", "evaluate_ood") for job in jobs)
    assert {Path(path).parent.name for path in outputs if path.startswith("results/features/")} == {"gigapath"}


def test_a_pooled_experiment_over_one_site_is_skipped_with_a_notice(tmp_path):
    user = _minimal_config(tmp_path / "inputs")
    pooled = tmp_path / "pooled.yaml"
    pooled.write_text(yaml.safe_dump({"experiments": {"modaltune": {"pooled": False, "sites": "all"},
                                                      "pancancer": {"pooled": True, "sites": "all"}}}))  # fmt: skip
    run = snakemake(tmp_path / "run", "all", "--dry-run", "--configfile", user, pooled)
    assert "notice: experiments.pancancer is pooled over one site (BRCA): skipped" in run.stdout + run.stderr
    assert "pancancer" not in run.stdout.split("Building DAG of jobs", 1)[1]
