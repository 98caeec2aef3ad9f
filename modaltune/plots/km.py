"""Kaplan-Meier curves of the test split, split into high and low risk at the training patients' median risk."""

from __future__ import annotations

import os

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
