"""The demo end to end: `snakemake all` in a temporary directory (once per test session, tests/workflow/conftest.py),
then its tables, figures, the planted signal and the Snakemake report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image
from snakemake_cli import snakemake

from modaltune.evaluation import summarise_seeds
from modaltune.io import read_parquet

REPO = Path(__file__).resolve().parents[2]
DEMO = yaml.safe_load((REPO / "config" / "demo.yaml").read_text())
SITES = DEMO["demo"]["sites"]
SEEDS = DEMO["cohort"]["seeds"]
EXPERIMENTS = list(DEMO["experiments"])
BASELINE = DEMO["evaluation"]["frozen_baseline"]["name"]
# Every seed shares one split per site (cohort.split_per_seed: false), so the frozen encoder is probed once, with the
# figure seed (evaluation.figure_seed null: the first seed).
assert not DEMO["cohort"]["split_per_seed"] and DEMO["evaluation"]["figure_seed"] is None
BASELINE_SEEDS = SEEDS[:1]
METRICS = {"subtype": "balanced_accuracy", "survival": "c_index"}

pytestmark = pytest.mark.workflow


@pytest.fixture(scope="module")
def demo(demo_run) -> Path:
    """The working directory of a finished `all` run of the demo config (tests/workflow/conftest.py)."""
    return demo_run


def probe(demo: Path, *parts: str) -> dict:
    return json.loads((demo / "results" / Path(*parts)).read_text())


def n_classes(demo: Path, site: str) -> int:
    cohort = pd.read_parquet(demo / "results" / "cohort" / f"{site}.parquet")
    return int(cohort.loc[cohort["subtype_class"] >= 0, "subtype_class"].nunique())


def test_results_table_has_every_method_site_and_task(demo):
    table = pd.read_csv(demo / "results" / "tables" / "results.csv")
    for experiment in [BASELINE, *EXPERIMENTS]:
        for site in SITES:
            for task in METRICS:
                rows = table[(table.experiment == experiment) & (table.site == site) & (table.task == task)]
                assert len(rows) == 1, (experiment, site, task)
                assert rows.iloc[0]["seeds"] == len(BASELINE_SEEDS if experiment == BASELINE else SEEDS)
    markdown = (demo / "results" / "tables" / "results.md").read_text()
    rows = [line for line in markdown.splitlines() if line.startswith("| Gigapath LP") or line.startswith("| ModalTune ")]
    assert rows and all(("±" in row) == row.startswith("| ModalTune") for row in rows), rows


def test_every_seed_uses_the_one_split_of_its_site(demo):
    for site in SITES:
        splits = pd.read_parquet(demo / "results" / "cohort" / f"{site}_splits.parquet")
        assert set(splits["seed"]) == set(SEEDS)
        by_seed = [splits[splits.seed == seed].set_index("patient")["split"].sort_index() for seed in SEEDS]
        assert all(split.equals(by_seed[0]) for split in by_seed[1:]), site


@pytest.mark.parametrize("name", ["results", "ood"])
def test_table_cells_equal_the_probe_files(demo, name):
    table = pd.read_csv(demo / "results" / "tables" / f"{name}.csv", keep_default_na=False)
    assert len(table)
    for row in table.itertuples():
        if row.source:  # out-of-distribution run: results/ood/probes/{experiment}/{source}/{site}/
            files = [
                probe(demo, "ood", "probes", row.experiment, row.source, row.site, f"seed{s}.json")
                for s in SEEDS
            ]
        else:
            seeds = BASELINE_SEEDS if row.experiment == BASELINE else SEEDS
            files = [probe(demo, "probes", row.experiment, row.site, f"seed{s}.json") for s in seeds]
        mean, std = summarise_seeds([f[row.task][METRICS[row.task]] for f in files])
        assert float(row.mean) == pytest.approx(mean, abs=1e-6)
        if len(files) > 1:
            assert float(row.std) == pytest.approx(std, abs=1e-6)
        else:  # a single run (the frozen encoder) has no std
            assert row.std == ""
        assert all(f["site"] == row.site and f["experiment"] == row.experiment for f in files)


def test_ood_table_holds_each_configured_run(demo):
    table = pd.read_csv(demo / "results" / "tables" / "ood.csv", keep_default_na=False)
    runs = {
        (run["experiment"], run["source"], target)
        for run in DEMO["evaluation"]["ood"]
        for target in run["targets"]
    }
    assert (
        set(zip(table.experiment, table.source, table.site, strict=True))
        - {("gigapath_lp", "", s) for s in SITES}
        == runs
    )
    # the target's own split: train and test patients of the target site
    first = probe(demo, "ood", "probes", "modaltune", "NSCLC", "RCC", f"seed{SEEDS[0]}.json")
    splits = pd.read_parquet(demo / "results" / "cohort" / "RCC_splits.parquet")
    test = set(splits[(splits.seed == SEEDS[0]) & (splits.split == "test")].patient)
    assert {p["patient"] for p in first["predictions"]} <= test


def test_figures_are_nonempty_pngs(demo):
    expected = [f"km/{e}/{site}.png" for e in [BASELINE, *EXPERIMENTS] for site in SITES]
    expected += [f"tsne/{e}.png" for e in [BASELINE, *EXPERIMENTS]]
    for name in expected:
        path = demo / "results" / "figures" / name
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        image = np.asarray(Image.open(path).convert("L"))
        assert min(image.shape) > 100 and image.std() > 5, name


def test_modaltune_is_above_chance_on_both_tasks(demo):
    """The planted signal: on average over sites and seeds, better than chance on subtype and survival."""
    margins, c_indices = [], []
    for site in SITES:
        for seed in SEEDS:
            result = probe(demo, "probes", "modaltune", site, f"seed{seed}.json")
            margins.append(result["subtype"]["balanced_accuracy"] - 1 / n_classes(demo, site))
            c_indices.append(result["survival"]["c_index"])
    assert np.mean(margins) > 0, margins
    assert np.mean(c_indices) > 0.5, c_indices


def test_gigapath_lp_probes_modaltunes_starting_encoder(demo):
    """Random demo weights: the baseline's encoder is bit for bit the frozen encoder of that seed's trained model."""
    for site in SITES:
        assert sorted((demo / "results" / "embeddings" / BASELINE / site).glob("seed*.parquet")) == [
            demo / "results" / "embeddings" / BASELINE / site / f"seed{seed}.parquet" for seed in BASELINE_SEEDS
        ]
        for seed in BASELINE_SEEDS:
            _, meta = read_parquet(demo / "results" / "embeddings" / BASELINE / site / f"seed{seed}.parquet")
            config = json.loads(
                (demo / "results" / "models" / "modaltune" / site / f"seed{seed}" / "config.json").read_text()
            )
            assert meta["encoder_sha256"] == config["encoder_sha256"], (site, seed)


def test_report_gathers_tables_and_figures(demo):
    snakemake(demo, "--report", "results/report.html")
    html = (demo / "results" / "report.html").read_text(errors="replace")
    assert len(html) > 10_000
    for name in ["results.html", "ood.html", "tsne", "km"]:
        assert name in html, name
