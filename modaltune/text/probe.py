"""How much the text targets themselves say (the paper's supplementary Table 7).

Linear probes on the general-prompt embeddings, fitted on the training patients of a split seed and scored on
its test patients: subtype (balanced accuracy, rare set excluded), survival-duration bin (balanced accuracy over
the bins fitted on the training times) and survival (Cox model, C-index), once on the raw text embeddings and
once after the fixed random projector of that seed. The probes are the evaluation stage's
(:mod:`modaltune.evaluation.probes`), so the numbers are comparable with the model's.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from modaltune.text.prompts import DurationBins

METRICS = ("subtype_balanced_accuracy", "duration_bin_balanced_accuracy", "c_index")


def probe_one_seed(
    cohort: pd.DataFrame, splits: pd.DataFrame, embeddings: pd.DataFrame, seed: int, projector_dim: int = 256, n_bins: int = 4
) -> list[dict]:
    """Metrics of one seed, one row per projector setting ("none", "random")."""
    import torch

    from modaltune.evaluation.probes import SubtypeProbe, SurvivalProbe
    from modaltune.text.projector import RandomProjector

    general = embeddings[embeddings["task"] == "general"][["patient", "embedding"]]
    seed_splits = splits.loc[splits["seed"] == seed, ["patient", "split"]]
    table = cohort[["patient", "subtype_class", "time_months", "event"]].merge(seed_splits, on="patient").merge(general, on="patient")
    if table.empty:
        raise ValueError(f"seed {seed}: no patient is in the cohort, the splits and the embeddings at once")
    train, test = table[table["split"] == "train"], table[table["split"] == "test"]
    if train.empty or test.empty:
        raise ValueError(f"seed {seed}: need training and test patients, got {len(train)} and {len(test)}")
    bins = DurationBins(n_bins=n_bins).fit(train["time_months"])
    raw = np.stack([np.asarray(v, dtype=np.float32) for v in table["embedding"]])
    projector = RandomProjector(raw.shape[1], projector_dim, seed=seed)
    features = {"none": raw, "random": projector(torch.from_numpy(raw)).numpy()}

    rows = []
    for setting, x in features.items():
        x_train, x_test = x[table.index.get_indexer(train.index)], x[table.index.get_indexer(test.index)]
        labelled_train = (train["subtype_class"] >= 0).to_numpy()
        labelled_test = (test["subtype_class"] >= 0).to_numpy()
        subtype = SubtypeProbe().fit(x_train[labelled_train], train["subtype_class"].to_numpy()[labelled_train])
        bin_train, bin_test = bins.transform(train["time_months"]), bins.transform(test["time_months"])
        duration = SubtypeProbe().fit(x_train, bin_train)
        survival = SurvivalProbe().fit(x_train, train["time_months"].to_numpy(), train["event"].to_numpy())
        rows.append(
            {
                "seed": seed,
                "projector": setting,
                "dim": x.shape[1],
                "subtype_balanced_accuracy": subtype.score(x_test[labelled_test], test["subtype_class"].to_numpy()[labelled_test]),
                "duration_bin_balanced_accuracy": duration.score(x_test, bin_test),
                "c_index": survival.score(x_test, test["time_months"].to_numpy(), test["event"].to_numpy()),
                "n_train": len(train),
                "n_test": len(test),
            }
        )
    return rows


def text_probe(
    cohort: pd.DataFrame, splits: pd.DataFrame, embeddings_by_seed: Mapping[int, pd.DataFrame], projector_dim: int = 256, n_bins: int = 4
) -> pd.DataFrame:
    """Per-seed metrics of every seed in ``embeddings_by_seed`` (seed -> embeddings table of that seed)."""
    rows = []
    for seed, embeddings in sorted(embeddings_by_seed.items()):
        rows.extend(probe_one_seed(cohort, splits, embeddings, seed, projector_dim, n_bins))
    return pd.DataFrame(rows)


def summarise(results: pd.DataFrame) -> pd.DataFrame:
    """Mean +- sample std over seeds per projector setting, formatted as the paper's tables."""
    out = []
    for setting, group in results.groupby("projector", sort=False):
        row = {"projector": setting, "dim": int(group["dim"].iloc[0]), "seeds": len(group)}
        for metric in METRICS:
            values = group[metric].to_numpy(dtype=np.float64)
            std = values.std(ddof=1) if len(values) > 1 else 0.0
            row[metric] = f"{values.mean():.3f} ± {std:.3f}"
        out.append(row)
    return pd.DataFrame(out)
