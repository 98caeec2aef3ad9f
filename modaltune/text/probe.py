"""How much the text targets themselves say (the paper's supplementary Table 7).

Per site, split seed and prompt (general, subtype, stage, survival): linear probes on that prompt's text embeddings,
fitted on the training patients and scored on the test patients: subtype (balanced accuracy, rare set excluded)
and survival-duration bin (balanced accuracy over the bins fitted on the training times), once on the raw text
embeddings and once after the fixed random projector of that seed. The probe is the evaluation stage's logistic
regression (:class:`modaltune.evaluation.probes.SubtypeProbe`) on features z-scored with the training patients'
statistics: liblinear penalises the intercept, and text vectors share a large common component (the projected ones
most: ReLU then L2 norm), so without centring a probe predicts the majority class even where the classes are
linearly separable (BRCA general prompt through the projector, 60 training patients of the official release: 0.50
balanced accuracy uncentred, 1.00 z-scored).
No Cox model here: on 384/512-d text embeddings one fit takes about 20 s on a CPU, and the duration-bin probe already
reads what the prompts say about survival.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from modaltune.text.prompts import TASKS, DurationBins

METRICS = ("subtype_balanced_accuracy", "duration_bin_balanced_accuracy")
KEYS = ("site", "prompt", "projector")


def probe_one_seed(
    cohort: pd.DataFrame, splits: pd.DataFrame, embeddings: pd.DataFrame, seed: int, projector_dim: int = 256,
    n_bins: int = 4,
) -> list[dict]:
    """Metrics of one seed: one row per prompt of ``embeddings`` (TASKS order) and projector ("none", "random")."""
    import torch
    from sklearn.preprocessing import StandardScaler

    from modaltune.evaluation.probes import SubtypeProbe
    from modaltune.text.projector import RandomProjector

    seed_splits = splits.loc[splits["seed"] == seed, ["patient", "split"]]
    patients = cohort[["patient", "subtype_class", "time_months"]].merge(seed_splits, on="patient")
    prompts = [task for task in TASKS if task in set(embeddings["task"])]
    rows = []
    for prompt in prompts:
        vectors = embeddings.loc[embeddings["task"] == prompt, ["patient", "embedding"]]
        table = patients.merge(vectors, on="patient")
        train, test = table[table["split"] == "train"], table[table["split"] == "test"]
        if train.empty or test.empty:
            raise ValueError(f"seed {seed}, prompt {prompt}: need training and test patients in the cohort, the "
                             f"splits and the embeddings at once, got {len(train)} and {len(test)}")
        bins = DurationBins(n_bins=n_bins).fit(train["time_months"])
        raw = np.stack([np.asarray(v, dtype=np.float32) for v in table["embedding"]])
        projector = RandomProjector(raw.shape[1], projector_dim, seed=seed)
        features = {"none": raw, "random": projector(torch.from_numpy(raw)).numpy()}
        labelled_train = (train["subtype_class"] >= 0).to_numpy()
        labelled_test = (test["subtype_class"] >= 0).to_numpy()
        bin_train, bin_test = bins.transform(train["time_months"]), bins.transform(test["time_months"])
        for setting, x in features.items():
            x_train, x_test = x[table.index.get_indexer(train.index)], x[table.index.get_indexer(test.index)]
            scaler = StandardScaler().fit(x_train)
            x_train, x_test = scaler.transform(x_train), scaler.transform(x_test)
            subtype = SubtypeProbe().fit(x_train[labelled_train], train["subtype_class"].to_numpy()[labelled_train])
            duration = SubtypeProbe().fit(x_train, bin_train)
            rows.append({
                "seed": seed,
                "prompt": prompt,
                "projector": setting,
                "dim": x.shape[1],
                "subtype_balanced_accuracy": subtype.score(x_test[labelled_test],
                                                           test["subtype_class"].to_numpy()[labelled_test]),
                "duration_bin_balanced_accuracy": duration.score(x_test, bin_test),
                "n_train": len(train),
                "n_test": len(test),
            })
    return rows


def text_probe(
    cohort: pd.DataFrame, splits: pd.DataFrame, embeddings_by_seed: Mapping[int, pd.DataFrame], projector_dim: int = 256,
    n_bins: int = 4,
) -> pd.DataFrame:
    """Per-seed metrics of one site for every seed in ``embeddings_by_seed`` (seed -> embeddings table of that seed)."""
    rows = []
    for seed, embeddings in sorted(embeddings_by_seed.items()):
        rows.extend(probe_one_seed(cohort, splits, embeddings, seed, projector_dim, n_bins))
    return pd.DataFrame(rows)


def summarise(results: pd.DataFrame) -> pd.DataFrame:
    """Mean +- sample std over seeds per site, prompt and projector, formatted as the paper's tables."""
    out = []
    for (site, prompt, setting), group in results.groupby(list(KEYS), sort=False):
        row = {"site": site, "prompt": prompt, "projector": setting, "dim": int(group["dim"].iloc[0]),
               "seeds": len(group)}
        for metric in METRICS:
            values = group[metric].to_numpy(dtype=np.float64)
            std = values.std(ddof=1) if len(values) > 1 else 0.0
            row[metric] = f"{values.mean():.3f} ± {std:.3f}"
        out.append(row)
    return pd.DataFrame(out)
