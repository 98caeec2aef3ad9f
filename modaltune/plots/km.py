"""Kaplan-Meier curves of the test split, split into high and low risk at the training patients' median risk.

Two sources draw the same figure: a probe file (``results/probes/...json``, predictions inside) and a survival
baseline's run record (``results/baselines/{model}/{site}/seed{seed}/survival.json`` with its ``.parquet``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from modaltune.io import atomic_path


def plot_kaplan_meier(predictions: pd.DataFrame, threshold: float, path: str | os.PathLike, title: str) -> float:
    """Draw both groups' curves with the log-rank p-value; returns the p-value.

    ``predictions`` has columns time_months, event, risk (test patients). ``threshold`` is the median risk of
    the training patients, so the cut is fixed before looking at the test set.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from lifelines import KaplanMeierFitter
    from lifelines.statistics import logrank_test

    data = predictions.dropna(subset=["time_months", "event", "risk"])
    high = data["risk"].to_numpy() > threshold
    groups = {"high risk": data[high], "low risk": data[~high]}
    fig, ax = plt.subplots(figsize=(5, 4), dpi=120)
    for (label, group), colour in zip(groups.items(), ["tab:red", "tab:blue"], strict=True):
        if len(group):
            KaplanMeierFitter(label=f"{label} (n={len(group)})").fit(
                group["time_months"], group["event"]
            ).plot_survival_function(ax=ax, color=colour, ci_show=False)
    if all(len(g) for g in groups.values()):
        p_value = float(
            logrank_test(
                groups["high risk"]["time_months"], groups["low risk"]["time_months"],
                groups["high risk"]["event"], groups["low risk"]["event"],
            ).p_value
        )
    else:
        p_value = float("nan")
    ax.set_title(f"{title}\nlog-rank p = {p_value:.3g}")
    ax.set_xlabel("months")
    ax.set_ylabel("survival probability")
    ax.set_ylim(0, 1.05)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return p_value if np.isfinite(p_value) else float("nan")


def baseline_km_input(record_path: str | os.PathLike) -> tuple[pd.DataFrame, float, str] | None:
    """Test predictions, training median risk and title of a survival baseline run; None for a skipped run."""
    record_path = Path(record_path)
    record = json.loads(record_path.read_text())
    if record.get("task") != "survival":
        raise ValueError(f"{record_path}: task {record.get('task')!r}, a Kaplan-Meier figure needs a survival run")
    if record["status"] == "skipped":
        return None
    if "survival" not in record:
        raise ValueError(f"{record_path}: no survival.train_median_risk (written before the KM figures existed); "
                         f"rerun the baseline (--forcerun) to record it")
    predictions = pd.read_parquet(record_path.with_suffix(".parquet"))
    title = f"{record['label']} {record['site']} seed {record['seed']} (test split)"
    return predictions, record["survival"]["train_median_risk"], title
