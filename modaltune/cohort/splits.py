"""Patient-level train/val/test splits, stratified by subtype, one per seed (ModalTune ``make_dataset.py``).

Candidates are patients with RNA and a subtype class >= 0. They are split test-first (``test_fraction``), then the
remainder into train/val (``val_fraction / (1 - test_fraction)``), both stratified by class: with the defaults
0.12 / 0.20 this is the paper's 68 / 12 / 20. Rare-set and RNA-less patients are then added to train only.
The candidates are sorted by patient first, so a split depends only on the patient set and the seed.
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

SPLIT_COLUMNS = ["patient", "seed", "split"]


def make_splits(
    cohort: pd.DataFrame, seeds: Iterable[int], val_fraction: float = 0.12, test_fraction: float = 0.20
) -> pd.DataFrame:
    """Columns patient, seed, split ("train"/"val"/"test"); every patient appears once per seed."""
    from sklearn.model_selection import train_test_split

    if val_fraction + test_fraction >= 1:
        raise ValueError(
            f"cohort.val_fraction + cohort.test_fraction must be < 1, got {val_fraction} + {test_fraction}"
        )
    candidates = cohort.loc[cohort["has_rna"] & (cohort["subtype_class"] >= 0), ["patient", "subtype_class"]]
    candidates = candidates.sort_values("patient")
    train_only = sorted(set(cohort["patient"]) - set(candidates["patient"]))
    _check_stratifiable(candidates, cohort)

    frames = []
    for seed in seeds:
        rest, test = train_test_split(
            candidates, test_size=test_fraction, random_state=seed, stratify=candidates["subtype_class"]
        )
        train, val = train_test_split(
            rest,
            test_size=val_fraction / (1 - test_fraction),
            random_state=seed,
            stratify=rest["subtype_class"],
        )
        for name, patients in (
            ("train", list(train["patient"]) + train_only),
            ("val", val["patient"]),
            ("test", test["patient"]),
        ):
            frames.append(pd.DataFrame({"patient": sorted(patients), "seed": int(seed), "split": name}))
    return pd.concat(frames, ignore_index=True)[SPLIT_COLUMNS]


def _check_stratifiable(candidates: pd.DataFrame, cohort: pd.DataFrame) -> None:
    site = cohort["site"].iloc[0] if len(cohort) else "?"
    counts = candidates["subtype_class"].value_counts().sort_index()
    if len(counts) < 2 or counts.min() < 3:
        raise ValueError(
            f"site {site}: cannot stratify a train/val/test split: patients with RNA per subtype class are "
            f"{counts.to_dict() or 'none'} (need >= 2 classes with >= 3 patients each). Check the RNA files and "
            "the subtype groups (cohort.subtypes_file) of this site"
        )
