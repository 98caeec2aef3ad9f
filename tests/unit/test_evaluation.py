import json

import numpy as np
import pandas as pd
import pytest
from lifelines import CoxPHFitter
from lifelines.statistics import logrank_test
from lifelines.utils import concordance_index
from PIL import Image
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.multiclass import OneVsRestClassifier

from modaltune.evaluation import evaluate_embeddings, summarise_seeds
from modaltune.plots import plot_kaplan_meier, plot_tsne
from modaltune.report import collect_probes, results_table, write_tables


def synthetic_patients(n=90, dim=6, seed=0):
    rng = np.random.default_rng(seed)
    classes = rng.integers(0, 3, n)
    x = rng.normal(size=(n, dim)) + classes[:, None] * 0.8
    hazard = np.exp(0.7 * x[:, 0])
    time = rng.exponential(30 / hazard)
    event = (rng.random(n) < 0.7).astype(int)
    classes[:4] = -1  # rare set
    split = np.where(np.arange(n) % 5 == 0, "test", "train")
    return pd.DataFrame(
        {"patient": [f"TCGA-AA-{i:04d}" for i in range(n)], "split": split, "subtype_class": classes,
         "time_months": time, "event": event, "embedding": list(x)}
    )


def test_probe_metrics_equal_sklearn_and_lifelines():
    patients = synthetic_patients()
    result = evaluate_embeddings(patients)
    train, test = patients[patients.split == "train"], patients[patients.split == "test"]
    lab_train, lab_test = train[train.subtype_class >= 0], test[test.subtype_class >= 0]
    clf = OneVsRestClassifier(LogisticRegression(solver="liblinear", max_iter=200, random_state=0))
    clf.fit(np.stack(lab_train.embedding), lab_train.subtype_class)
    expected_bacc = balanced_accuracy_score(lab_test.subtype_class, clf.predict(np.stack(lab_test.embedding)))
    assert result["subtype"]["balanced_accuracy"] == pytest.approx(expected_bacc, abs=1e-12)
    assert result["subtype"]["n_test"] == len(lab_test)

    columns = [f"c{i}" for i in range(6)]
    frame = pd.DataFrame(np.stack(train.embedding), columns=columns).assign(
        t=train.time_months.to_numpy(), e=train.event.to_numpy())
    cox = CoxPHFitter(penalizer=0.1).fit(frame, duration_col="t", event_col="e")
    risk = cox.predict_partial_hazard(pd.DataFrame(np.stack(test.embedding), columns=columns))
    expected_c = concordance_index(test.time_months, -risk, test.event)
    assert result["survival"]["c_index"] == pytest.approx(expected_c, abs=1e-9)
    assert result["subtype"]["balanced_accuracy"] > 0.5 and result["survival"]["c_index"] > 0.5


def test_seed_summary_is_mean_and_sample_std():
    assert summarise_seeds([0.6, 0.7, 0.8]) == pytest.approx((0.7, np.std([0.6, 0.7, 0.8], ddof=1)))
    assert summarise_seeds([0.5]) == (0.5, 0.0)


def test_table_cells_equal_probe_files(tmp_path):
    values = {}
    paths = []
    for experiment, seeds in [("modaltune", 3), ("gigapath_lp", 1)]:  # the frozen encoder: one run per site
        for site in ["NSCLC", "RCC"]:
            for seed in range(seeds):
                bacc, cidx = 0.5 + 0.1 * seed + (site == "RCC") * 0.05, 0.6 + 0.01 * seed
                values[(experiment, site, seed)] = (bacc, cidx)
                path = tmp_path / f"{experiment}_{site}_{seed}.json"
                path.write_text(json.dumps({"experiment": experiment, "site": site, "seed": seed,
                                            "subtype": {"balanced_accuracy": bacc},
                                            "survival": {"c_index": cidx}}))
                paths.append(path)
    table = results_table(collect_probes(paths))
    cell = table[(table.task == "subtype") & (table.experiment == "modaltune") & (table.site == "RCC")].iloc[0]
    expected = [values[("modaltune", "RCC", s)][0] for s in range(3)]
    assert cell["mean"] == pytest.approx(np.mean(expected))
    assert cell["std"] == pytest.approx(np.std(expected, ddof=1))
    nsclc = np.mean([values[("modaltune", "NSCLC", s)][0] for s in range(3)])
    assert cell["overall"] == pytest.approx((nsclc + np.mean(expected)) / 2)
    written = write_tables(table, tmp_path / "tables" / "results")
    markdown = written[1].read_text()
    assert f"{np.mean(expected):.3f} ± {np.std(expected, ddof=1):.3f}" in markdown
    frozen = table[(table.task == "subtype") & (table.experiment == "gigapath_lp") & (table.site == "RCC")].iloc[0]
    assert frozen["mean"] == values[("gigapath_lp", "RCC", 0)][0] and np.isnan(frozen["std"]) and frozen["seeds"] == 1
    frozen_row = next(line for line in markdown.splitlines() if line.startswith("| gigapath_lp"))
    assert "±" not in frozen_row and f"{values[('gigapath_lp', 'RCC', 0)][0]:.3f}" in frozen_row
    assert "Survival prediction (C-index)" in written[2].read_text()
    assert pd.read_csv(written[0]).shape[0] == len(table)


def test_kaplan_meier_splits_test_patients_at_the_training_median_risk(tmp_path):
    """Risk from a Cox model fitted on the training patients; the cut is the training patients' median risk; the
    p-value is lifelines' log-rank test between the test patients above and at-or-below it."""
    patients = synthetic_patients()
    result = evaluate_embeddings(patients)
    train, test = patients[patients.split == "train"], patients[patients.split == "test"]
    columns = [f"c{i}" for i in range(6)]
    frame = pd.DataFrame(np.stack(train.embedding), columns=columns).assign(
        t=train.time_months.to_numpy(), e=train.event.to_numpy())
    cox = CoxPHFitter(penalizer=0.1).fit(frame, duration_col="t", event_col="e")
    train_median = float(np.median(cox.predict_partial_hazard(frame[columns])))
    assert result["survival"]["train_median_risk"] == pytest.approx(train_median, rel=1e-9)

    risk = np.asarray(cox.predict_partial_hazard(pd.DataFrame(np.stack(test.embedding), columns=columns)))
    high = risk > train_median
    expected = logrank_test(test.time_months[high], test.time_months[~high], test.event[high], test.event[~high])
    p_value = plot_kaplan_meier(pd.DataFrame(result["predictions"]), result["survival"]["train_median_risk"],
                                tmp_path / "km.png", "demo")
    assert p_value == pytest.approx(expected.p_value, rel=1e-9)
    # The fixture can tell the rule from another cut: the test patients' own median gives a different p-value.
    own = risk > np.median(risk)
    other = logrank_test(test.time_months[own], test.time_months[~own], test.event[own], test.event[~own])
    assert abs(other.p_value - expected.p_value) > 1e-3


def test_figures_are_nonempty_images(tmp_path):
    patients = synthetic_patients()
    result = evaluate_embeddings(patients)
    predictions = pd.DataFrame(result["predictions"])
    p_value = plot_kaplan_meier(predictions, result["survival"]["train_median_risk"], tmp_path / "km.png", "demo")
    assert 0.0 <= p_value <= 1.0
    points = patients.assign(subtype=patients.subtype_class.astype(str), site="NSCLC", source="patient")
    coords = plot_tsne(points, tmp_path / "tsne.png", "demo")
    assert coords.shape == (len(points), 2)
    for name in ["km.png", "tsne.png"]:
        image = np.asarray(Image.open(tmp_path / name).convert("L"))
        assert image.shape[0] > 100 and image.std() > 5  # something is drawn


def test_evaluate_command_probes_several_embedding_files_like_separate_calls(tmp_path):
    """The demo's batch rule probes all of a site's embedding files in one call; each JSON is the probe of its file."""
    from modaltune.cli import main

    first = synthetic_patients(seed=0)
    second = first.assign(embedding=list(synthetic_patients(seed=1).embedding))  # same labels, other embeddings
    cohort = first.drop(columns=["embedding", "split"]).assign(subtype="X")
    cohort.to_parquet(tmp_path / "cohort.parquet")
    pd.concat([first[["patient", "split"]].assign(seed=s) for s in (0, 1)]).to_parquet(tmp_path / "splits.parquet")
    for name, patients in (("a", first), ("b", second)):
        patients[["patient", "split"]].assign(task="general", embedding=[list(e) for e in patients.embedding]) \
            .to_parquet(tmp_path / f"{name}.parquet")
    outs = [str(tmp_path / "a.json"), str(tmp_path / "b.json")]
    argv = ["evaluate", "--embeddings", str(tmp_path / "a.parquet"), str(tmp_path / "b.parquet"),
            "--cohort", str(tmp_path / "cohort.parquet"), "--splits", str(tmp_path / "splits.parquet"),
            "--experiment", "exp_a", "exp_b", "--site", "S1", "--seed", "0", "1", "--out", *outs]
    assert main([*argv, "--source", "S2", "pooled"]) == 0
    for out, patients, experiment, seed, source in zip(outs, (first, second), ("exp_a", "exp_b"), (0, 1),
                                                       ("S2", "pooled"), strict=True):
        result = json.loads(open(out).read())
        expected = evaluate_embeddings(patients)
        assert result["subtype"]["balanced_accuracy"] == pytest.approx(expected["subtype"]["balanced_accuracy"])
        assert result["survival"]["c_index"] == pytest.approx(expected["survival"]["c_index"])
        assert (result["experiment"], result["seed"], result["site"], result["source"]) == (experiment, seed, "S1",
                                                                                             source)
    assert main(argv) == 0 and "source" not in json.loads(open(outs[0]).read())
    with pytest.raises(SystemExit, match="as many"):
        main([*argv[:-1], "--source", "S2"])
def test_tables_bold_the_best_value_per_column_ties_included_and_leave_the_csv_plain(tmp_path):
    # per (experiment, site): subtype values of two seeds; survival = subtype / 2
    values = {("a", "NSCLC"): [0.80, 0.90], ("b", "NSCLC"): [0.85, 0.85], ("c", "NSCLC"): [0.70, 0.70],
              ("a", "RCC"): [0.60, 0.60], ("b", "RCC"): [0.50, 0.50], ("c", "RCC"): [0.6001, 0.5999],
              ("sup", "NSCLC"): [0.99, 0.99], ("sup", "RCC"): [0.99, 0.99]}
    paths = []
    for (experiment, site), seeds in values.items():
        for seed, value in enumerate(seeds):
            paths.append(tmp_path / f"{experiment}_{site}_{seed}.json")
            paths[-1].write_text(json.dumps({"experiment": experiment, "site": site, "seed": seed,
                                             "subtype": {"balanced_accuracy": value},
                                             "survival": {"c_index": value / 2}}))
    table = results_table(collect_probes(paths))
    csv, markdown, html = write_tables(table, tmp_path / "results", {"a": "A<1>"}, unranked=["sup"])
    subtype = markdown.read_text().split("### Survival")[0]
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
            for line in subtype.splitlines() if line.startswith("| ") and "Method" not in line}
    # NSCLC: a and b tie at 0.850 (both bold); RCC: a and c tie as shown (0.600); Mean: a 0.725 beats b 0.675
    assert rows["A<1>"] == ["**0.850 ± 0.071**", "**0.600 ± 0.000**", "**0.725**"]
    assert rows["b"] == ["**0.850 ± 0.000**", "0.500 ± 0.000", "0.675"]
    assert rows["c"] == ["0.700 ± 0.000", "**0.600 ± 0.000**", "0.650"]
    assert rows["sup"] == ["0.990 ± 0.000", "0.990 ± 0.000", "0.990"]  # unranked: never bold, never compared
    survival = markdown.read_text().split("### Survival")[1]
    assert "**0.425 ± 0.035**" in survival and "**0.363**" in survival  # higher C-index is better too
    page = html.read_text()
    assert "<td>A&lt;1&gt;</td>" in page and "<td><strong>0.725</strong></td>" in page and "**" not in page
    assert page.count("<strong>") == markdown.read_text().count("**") // 2
    assert "**" not in csv.read_text() and pd.read_csv(csv)["mean"].max() == pytest.approx(0.99)


def test_survival_probe_leaves_out_columns_constant_over_training_patients():
    """A dead ReLU unit (zero for every patient) would make lifelines divide by zero; it carries no information, so
    the probe fitted with it equals the probe fitted without it."""
    from modaltune.evaluation import SurvivalProbe

    rng = np.random.default_rng(3)
    x = rng.normal(size=(40, 3))
    time, event = np.exp(1 + x[:, 0] + rng.normal(0, 0.5, 40)), (rng.random(40) < 0.8).astype(int)
    with_dead = np.column_stack([x[:, :1], np.zeros(40), x[:, 1:]])
    probe = SurvivalProbe().fit(with_dead, time, event)
    np.testing.assert_allclose(probe.predict_risk(with_dead), SurvivalProbe().fit(x, time, event).predict_risk(x))
    with pytest.raises(ValueError, match="every embedding column is constant"):
        SurvivalProbe().fit(np.ones((40, 2)), time, event)
