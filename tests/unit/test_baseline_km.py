"""Kaplan-Meier figures of the survival baselines: the same cut and log-rank test as ModalTune's, from a run record."""

import json

import numpy as np
import pandas as pd
import pytest
from lifelines.statistics import logrank_test
from PIL import Image

from modaltune.io import write_json, write_parquet
from modaltune.plots.km import baseline_km_input, plot_kaplan_meier


def write_run(root, model, site, status="ok", train_median_risk=None, predictions=None):
    """A baseline run record as modaltune.baselines.train writes it (the fields the figure reads)."""
    stem = root / model / site / "seed0" / "survival"
    stem.parent.mkdir(parents=True)
    record = {"model": model, "label": model.upper(), "site": site, "seed": 0, "task": "survival", "status": status}
    if status == "ok":
        record["survival"] = {"train_median_risk": train_median_risk}
    write_parquet(predictions if predictions is not None else pd.DataFrame({"patient": pd.Series(dtype=str)}),
                  stem.with_suffix(".parquet"))
    write_json(record, stem.with_suffix(".json"))
    return stem.with_suffix(".json")


def synthetic_test_patients(n=60, seed=3):
    rng = np.random.default_rng(seed)
    risk = rng.normal(size=n)
    time = rng.exponential(40 * np.exp(-risk))  # higher risk, shorter survival
    return pd.DataFrame({"patient": [f"P{i}" for i in range(n)], "time_months": time,
                         "event": (rng.random(n) < 0.7).astype(float), "bin": 0, "risk": risk})


def test_baseline_figure_splits_at_the_recorded_training_median_like_lifelines(tmp_path):
    predictions = synthetic_test_patients()
    train_median = 0.4  # not the test patients' own median: the cut must come from the record
    path = write_run(tmp_path / "baselines", "abmil", "RCC", train_median_risk=train_median, predictions=predictions)
    data, threshold, title = baseline_km_input(path)
    assert threshold == train_median and "ABMIL RCC seed 0" in title
    p_value = plot_kaplan_meier(data, threshold, tmp_path / "km.png", title)

    high = predictions.risk > train_median
    expected = logrank_test(predictions.time_months[high], predictions.time_months[~high],
                            predictions.event[high], predictions.event[~high])
    assert p_value == pytest.approx(expected.p_value, rel=1e-9)
    own = predictions.risk > predictions.risk.median()
    other = logrank_test(predictions.time_months[own], predictions.time_months[~own],
                         predictions.event[own], predictions.event[~own])
    assert other.p_value != pytest.approx(expected.p_value, rel=0.1)  # the fixture tells the two cuts apart


def test_the_command_draws_each_run_and_skips_skipped_runs_with_a_log_line(tmp_path, caplog):
    from modaltune.cli import main

    root = tmp_path / "baselines"
    runs = [write_run(root, "abmil", "RCC", train_median_risk=0.0, predictions=synthetic_test_patients()),
            write_run(root, "mlp", "NSCLC", train_median_risk=0.1, predictions=synthetic_test_patients(seed=4)),
            write_run(root, "snn", "RCC", status="skipped")]
    out = tmp_path / "figures"
    with caplog.at_level("INFO"):
        assert main(["km", "--baseline-runs", *map(str, runs), "--out-dir", str(out)]) == 0
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png")) == ["abmil/RCC.png", "mlp/NSCLC.png"]
    image = np.asarray(Image.open(out / "abmil" / "RCC.png").convert("L"))
    assert image.shape[0] > 100 and image.std() > 5
    assert "run skipped, no Kaplan-Meier figure for snn RCC" in caplog.text


def test_a_record_without_the_training_median_names_the_file_and_the_fix(tmp_path):
    path = write_run(tmp_path, "abmil", "RCC", train_median_risk=0.0, predictions=synthetic_test_patients())
    record = json.loads(path.read_text())
    del record["survival"]
    path.write_text(json.dumps(record))
    with pytest.raises(ValueError, match=r"survival\.json: no survival.train_median_risk .*rerun the baseline"):
        baseline_km_input(path)
