"""Patient-level train/val/test splits, stratified by subtype (ModalTune ``make_dataset.py``).

By default a site is split once, with ``split_seed``, and every training seed uses that split: the paper's protocol,
whose three seeds vary the model, not the split. ``per_seed`` draws a new split for each seed instead (the seed is
then the split's random state). A site may also take the paper's released split (:mod:`.release`), used by every
seed.

Candidates are patients with RNA and a subtype class >= 0. They are split test-first (``test_fraction``), then the
remainder into train/val (``val_fraction / (1 - test_fraction)``), both stratified by class: with the defaults
0.12 / 0.20 this is the paper's 68 / 12 / 20. Rare-set and RNA-less patients are then added to train only.
The candidates are sorted by patient first, so a split depends only on the patient set and the seed.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import pandas as pd

from modaltune.cohort.release import ReleaseSplitError, read_release_splits

SPLIT_COLUMNS = ["patient", "seed", "split"]


@dataclass(frozen=True)
class SplitPlan:
    """How a site is split: the `cohort` config keys, plus the site's release folder (``sites.{site}.splits``)."""

    seeds: tuple[int, ...] = (0, 1, 2)
    val_fraction: float = 0.12
    test_fraction: float = 0.20
    split_seed: int = 0
    per_seed: bool = False
    release: str | os.PathLike | None = None

    @classmethod
    def from_config(cls, cohort_section: Mapping, release: str | os.PathLike | None = None) -> SplitPlan:
        return cls(tuple(cohort_section["seeds"]), cohort_section["val_fraction"], cohort_section["test_fraction"],
                   cohort_section["split_seed"], cohort_section["split_per_seed"], release)


@dataclass
class SiteSplits:
    """The split table (columns patient, seed, split), how it was made, and, for a release split, the mismatches."""

    table: pd.DataFrame
    source: str  # one sentence for the cohort report
    release_missing: list[str] = field(default_factory=list)  # release patients not in the cohort
    not_in_release: list[str] = field(default_factory=list)  # cohort patients not in the release (dropped)
    class_disagreements: list[tuple[str, int, int]] = field(default_factory=list)  # patient, release, cohort


def split_site(cohort: pd.DataFrame, plan: SplitPlan) -> SiteSplits:
    """The site's splits as ``plan`` says: the release folder's, one shared split, or one per seed."""
    if plan.release is not None:
        return splits_from_release(cohort, plan.release, plan.seeds)
    table = make_splits(cohort, plan.seeds, plan.val_fraction, plan.test_fraction,
                        split_seed=None if plan.per_seed else plan.split_seed)
    seeds = ", ".join(map(str, plan.seeds))
    if plan.per_seed:
        return SiteSplits(table, f"One split per seed (seeds {seeds}; cohort.split_per_seed).")
    return SiteSplits(table, f"One split (cohort.split_seed {plan.split_seed}) shared by seeds {seeds}.")


def make_splits(
    cohort: pd.DataFrame,
    seeds: Iterable[int],
    val_fraction: float = 0.12,
    test_fraction: float = 0.20,
    split_seed: int | None = 0,
) -> pd.DataFrame:
    """Columns patient, seed, split ("train"/"val"/"test"); every patient appears once per seed.

    Every seed gets the split drawn with ``split_seed``; ``split_seed=None`` draws each seed's own split.
    """
    if val_fraction + test_fraction >= 1:
        raise ValueError(
            f"cohort.val_fraction + cohort.test_fraction must be < 1, got {val_fraction} + {test_fraction}"
        )
    candidates = cohort.loc[cohort["has_rna"] & (cohort["subtype_class"] >= 0), ["patient", "subtype_class"]]
    candidates = candidates.sort_values("patient")
    train_only = sorted(set(cohort["patient"]) - set(candidates["patient"]))
    _check_stratifiable(candidates, cohort)

    drawn: dict[int, pd.DataFrame] = {}
    frames = []
    for seed in seeds:
        state = int(seed) if split_seed is None else int(split_seed)
        if state not in drawn:
            drawn[state] = _draw(candidates, train_only, state, val_fraction, test_fraction)
        frames.append(drawn[state].assign(seed=int(seed)))
    return pd.concat(frames, ignore_index=True)[SPLIT_COLUMNS]


def _draw(candidates: pd.DataFrame, train_only: list[str], state: int, val_fraction: float,
          test_fraction: float) -> pd.DataFrame:
    """One split (columns patient, split) with random state ``state``."""
    from sklearn.model_selection import train_test_split

    rest, test = train_test_split(
        candidates, test_size=test_fraction, random_state=state, stratify=candidates["subtype_class"]
    )
    train, val = train_test_split(
        rest, test_size=val_fraction / (1 - test_fraction), random_state=state, stratify=rest["subtype_class"]
    )
    frames = [
        pd.DataFrame({"patient": sorted(patients), "split": name})
        for name, patients in (
            ("train", list(train["patient"]) + train_only),
            ("val", list(val["patient"])),
            ("test", list(test["patient"])),
        )
    ]
    return pd.concat(frames, ignore_index=True)


def splits_from_release(cohort: pd.DataFrame, folder: str | os.PathLike, seeds: Iterable[int]) -> SiteSplits:
    """The released split of ``folder`` for the cohort's patients, the same for every seed.

    Cohort patients absent from the release are dropped (listed, not split): putting them in train would change
    the training set the release fixes, and val/test are the paper's exactly. Release patients missing from the
    cohort are listed too, as are patients whose release class differs from the cohort's subtype class.
    """
    release = read_release_splits(folder)
    in_cohort = cohort["patient"].isin(release["patient"])
    if not in_cohort.any():
        raise ReleaseSplitError(
            f"{folder}: the released split shares no patient with the cohort (release e.g. "
            f"{release['patient'].iloc[0]}, cohort e.g. {cohort['patient'].iloc[0] if len(cohort) else 'none'}); "
            "check that sites.<site>.splits names this site's folder"
        )
    matched = cohort.loc[in_cohort, ["patient", "subtype_class"]].merge(release, on="patient")
    one = matched[["patient", "split"]].sort_values(["split", "patient"], key=_split_order, ignore_index=True)
    table = pd.concat([one.assign(seed=int(seed)) for seed in seeds], ignore_index=True)[SPLIT_COLUMNS]
    disagree = matched[matched["subtype_class"] != matched["primary_class"]].sort_values("patient")
    return SiteSplits(
        table,
        f"The paper's released split from {folder}, shared by seeds {', '.join(map(str, seeds))}.",
        release_missing=sorted(set(release["patient"]) - set(cohort["patient"])),
        not_in_release=sorted(cohort.loc[~in_cohort, "patient"]),
        class_disagreements=[
            (row.patient, int(row.primary_class), int(row.subtype_class)) for row in disagree.itertuples()
        ],
    )


def _split_order(column: pd.Series) -> pd.Series:
    return column.map({"train": 0, "val": 1, "test": 2}) if column.name == "split" else column


def _check_stratifiable(candidates: pd.DataFrame, cohort: pd.DataFrame) -> None:
    site = cohort["site"].iloc[0] if len(cohort) else "?"
    counts = candidates["subtype_class"].value_counts().sort_index()
    if len(counts) < 2 or counts.min() < 3:
        raise ValueError(
            f"site {site}: cannot stratify a train/val/test split: patients with RNA per subtype class are "
            f"{counts.to_dict() or 'none'} (need >= 2 classes with >= 3 patients each). Check the RNA files and "
            "the subtype groups (cohort.subtypes_file) of this site"
        )
