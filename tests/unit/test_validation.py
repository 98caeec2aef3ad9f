"""The validation report: known answers from the generator's truth table, against a direct lifelines computation."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from lifelines.utils import concordance_index

from modaltune.cli import main
from modaltune.report.validation import known_answers, ordering_checks, validation_markdown
from modaltune.synth import plan_site
from modaltune.synth.cohort import MODALITY_RISK
from modaltune.synth.tables import truth_table

REPO = Path(__file__).resolve().parents[2]
DEMO = yaml.safe_load((REPO / "config" / "demo.yaml").read_text())["demo"]
SETTINGS = {"multimodal": ["modaltune"], "single_modality": ["gigapath_lp"], "above": [["modaltune", "gigapath_lp"]]}


@pytest.fixture(scope="module")
def truth():
    return truth_table(plan_site("RCC", dict(DEMO, patients_per_site=80)))


@pytest.fixture()
def site_files(tmp_path, truth):
    """truth.tsv as the generator writes it, a cohort table (one patient without survival) and a split per seed."""
    truth_path = tmp_path / "truth.tsv"
    truth.to_csv(truth_path, sep="\t", index=False)
    cohort = pd.DataFrame({"patient": truth["patient"], "time_months": truth["time_days"] / 30.44,
                           "event": truth["event"].astype(float)})
    cohort.loc[3, ["time_months", "event"]] = np.nan
    cohort_path = tmp_path / "cohort.parquet"
    cohort.to_parquet(cohort_path)
    rng = np.random.default_rng(0)
    splits = pd.concat([
        pd.DataFrame({"patient": truth["patient"], "seed": seed,
                      "split": rng.choice(["train", "val", "test"], len(truth), p=[0.6, 0.1, 0.3])})
        for seed in (0, 1)
    ])
    splits.loc[(splits["seed"] == 0) & (splits["patient"] == truth["patient"][3]), "split"] = "test"
    splits_path = tmp_path / "splits.parquet"
    splits.to_parquet(splits_path)
    return truth_path, cohort_path, splits_path, cohort, splits


def test_truth_table_risk_is_the_sum_of_its_terms_and_modalities_carry_their_parts(truth):
    terms = truth[["risk_stage", "risk_subtype", "risk_pathways"]].sum(axis=1)
    np.testing.assert_allclose(truth["risk"], terms, atol=1e-5)
    for modality, parts in MODALITY_RISK.items():
        np.testing.assert_allclose(truth[f"risk_{modality}"], truth[[f"risk_{p}" for p in parts]].sum(axis=1),
                                   atol=1e-5)
    # each modality misses a term: neither carries all of the risk
    assert not np.allclose(truth["risk_slides"], truth["risk"])
    assert not np.allclose(truth["risk_expression"], truth["risk"])


def test_known_answers_match_lifelines_on_the_probe_test_patients(site_files, truth):
    truth_path, cohort_path, splits_path, cohort, splits = site_files
    known = known_answers("RCC", truth_path, cohort_path, splits_path, seeds=[0, 1])
    assert len(known) == 2 * 3
    risks = truth.set_index("patient")
    for seed in (0, 1):
        test = splits[(splits["seed"] == seed) & (splits["split"] == "test")]["patient"]
        patients = cohort[cohort["patient"].isin(test)].dropna()
        for answer, column in [("Oracle (true risk)", "risk"), ("Slides only (reachable)", "risk_slides"),
                               ("Expression only (reachable)", "risk_expression")]:
            expected = concordance_index(patients["time_months"], -risks.loc[patients["patient"], column],
                                         patients["event"])
            row = known[(known["seed"] == seed) & (known["answer"] == answer)].iloc[0]
            assert row["c_index"] == pytest.approx(expected, abs=1e-12)
            assert row["n_test"] == len(patients)  # the patient without survival is left out, as the probe does
    oracle = known[known["answer"] == "Oracle (true risk)"]["c_index"]
    single = known[known["answer"] != "Oracle (true risk)"]["c_index"]
    assert oracle.min() > 0.6 and oracle.mean() > single.mean()


def test_a_test_patient_missing_from_the_truth_is_named(site_files, truth, tmp_path):
    truth_path, cohort_path, splits_path, cohort, splits = site_files
    test = splits[(splits["seed"] == 0) & (splits["split"] == "test")]["patient"]
    missing = cohort[cohort["patient"].isin(test)].dropna()["patient"].iloc[0]
    truth[truth["patient"] != missing].to_csv(truth_path, sep="\t", index=False)
    with pytest.raises(ValueError, match=f"test patient {missing}"):
        known_answers("RCC", truth_path, cohort_path, splits_path, seeds=[0])


def _known(site, oracle, slides, expression):
    return pd.DataFrame([
        {"site": site, "seed": 0, "answer": answer, "c_index": value, "n_test": 60}
        for answer, value in [("Oracle (true risk)", oracle), ("Slides only (reachable)", slides),
                              ("Expression only (reachable)", expression)]
    ])


def _results(rows):
    return pd.DataFrame([{"task": task, "experiment": experiment, "source": np.nan, "site": site, "mean": mean,
                          "std": 0.01, "seeds": 3, "overall": mean} for task, experiment, site, mean in rows])


def test_ordering_checks_compare_site_means_and_name_absent_rows():
    known = pd.concat([_known("NSCLC", 0.80, 0.66, 0.70), _known("RCC", 0.82, 0.72, 0.68)])
    results = _results([("survival", "gigapath_lp", "NSCLC", 0.62), ("survival", "gigapath_lp", "RCC", 0.64),
                        ("survival", "modaltune", "NSCLC", 0.73), ("survival", "modaltune", "RCC", 0.70),
                        ("subtype", "modaltune", "NSCLC", 0.9), ("subtype", "abmil", "RCC", 0.8)])
    settings = dict(SETTINGS, multimodal=["modaltune", "pancancer"])
    checks = {statement: (holds, figures) for statement, holds, figures in
              ordering_checks(results, known, settings, {"modaltune": "ModalTune", "gigapath_lp": "Gigapath LP"})}
    # best single modality: NSCLC 0.70 (expression), RCC 0.72 (slides): mean 0.71 vs ModalTune's 0.715
    assert checks["ModalTune above the best single modality's reachable C-index"] == (
        True, "mean 0.715 vs 0.710 (NSCLC 0.730 vs 0.700, RCC 0.700 vs 0.720)")
    assert checks["ModalTune above the best single-modality method (Gigapath LP)"][0] is True
    assert checks["ModalTune above Gigapath LP"][0] is True
    assert checks["pancancer above the best single modality's reachable C-index"] == (
        None, "not in results.csv: pancancer")
    markdown = validation_markdown(results, known, settings, {"modaltune": "ModalTune"})
    assert "| Oracle (true risk) | 0.800 | 0.820 | 0.810 |" in markdown
    assert "| ModalTune | 0.730 ± 0.010 | 0.700 ± 0.010 | 0.715 |" in markdown
    assert "**not checked**: not in results.csv: pancancer" in markdown
    assert "| abmil | – | 0.800 ± 0.010 | 0.800 |" in markdown  # any row of results.csv, e.g. a baseline


def test_rows_join_the_groups_by_the_modality_column_of_results():
    known = _known("RCC", 0.80, 0.70, 0.68)
    results = _results([("survival", "gigapath_lp", "RCC", 0.60), ("survival", "modaltune", "RCC", 0.66),
                        ("survival", "abmil", "RCC", 0.67), ("survival", "snn", "RCC", 0.65),
                        ("survival", "mcat", "RCC", 0.71)])
    results["modality"] = results["experiment"].map(
        {"gigapath_lp": "wsi", "modaltune": "multimodal", "abmil": "wsi", "snn": "genomics", "mcat": "multimodal"})
    checks = {statement: (holds, figures) for statement, holds, figures in
              ordering_checks(results, known, SETTINGS, {"abmil": "ABMIL"})}
    assert checks["modaltune above the best single-modality method (ABMIL)"] == (
        False, "mean 0.660 vs 0.670 (RCC 0.660 vs 0.670)")
    assert checks["mcat above the best single modality's reachable C-index"][0] is True
    assert checks["modaltune above gigapath_lp"][0] is True


def test_validation_report_command_writes_the_report(site_files, tmp_path):
    truth_path, cohort_path, splits_path, _, _ = site_files
    results = tmp_path / "results.csv"
    _results([("survival", "modaltune", "RCC", 0.5), ("survival", "gigapath_lp", "RCC", 0.55)]).to_csv(
        results, index=False)
    out = tmp_path / "tables" / "validation.md"
    out.parent.mkdir()
    main(["validation-report", "--results", str(results), "--sites", "RCC", "--truth", str(truth_path),
          "--cohort", str(cohort_path), "--splits", str(splits_path), "--seeds", "0", "1",
          "--params", '{"report": true}', "--out", str(out)])
    text = out.read_text()
    assert "ModalTune above Gigapath LP" not in text  # no labels given: rows keep their experiment names
    assert "- modaltune above gigapath_lp: **does NOT hold**: mean 0.500 vs 0.550" in text
    known = pd.read_csv(out.with_suffix(".csv"))
    assert set(known["seed"]) == {0, 1} and set(known["site"]) == {"RCC"}


def test_only_the_generator_and_the_validation_report_refer_to_the_truth():
    """Training and evaluation cannot read the truth by path either: no other module or rule file names it."""
    allowed = {"modaltune/synth", "modaltune/report/validation.py", "modaltune/report/cli.py",
               "modaltune/schema/validation.yaml", "workflow/rules/demo.smk", "workflow/rules/validation.smk"}
    files = [*REPO.glob("modaltune/**/*.py"), *REPO.glob("modaltune/**/*.yaml"), *REPO.glob("workflow/**/*.smk"),
             *REPO.glob("workflow/**/*.py"), REPO / "workflow" / "Snakefile"]
    mentions = {str(path.relative_to(REPO)) for path in files if "truth" in path.read_text().lower()}
    assert mentions and all(any(m == a or m.startswith(a + "/") for a in allowed) for m in mentions), mentions
