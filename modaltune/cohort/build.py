"""One site's cohort: read its clinical tables, harmonise, split, report (the `modaltune cohort` command)."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import pandas as pd
import pyarrow.parquet as pq

from modaltune.cohort.harmonise import DAYS_PER_MONTH, HarmoniseReport, harmonise
from modaltune.cohort.readers import read_clinical
from modaltune.cohort.splits import SiteSplits, SplitPlan, split_site
from modaltune.cohort.subtypes import groups_of, load_subtype_table

log = logging.getLogger(__name__)


@dataclass
class SiteCohort:
    cohort: pd.DataFrame
    splits: SiteSplits
    report: HarmoniseReport
    sources: pd.DataFrame  # one row per clinical file: source, format, records, patients


def read_records(paths: Sequence[str | os.PathLike]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Records of all clinical files in the order given, and a per-file summary."""
    if not paths:
        raise ValueError("no clinical table given")
    parts = [read_clinical(path) for path in paths]
    sources = pd.DataFrame(
        {
            "source": [
                p["source"].iloc[0] if len(p) else str(path) for p, path in zip(parts, paths, strict=True)
            ],
            "format": [p["format"].iloc[0] if len(p) else "?" for p in parts],
            "records": [len(p) for p in parts],
            "patients": [p["patient"].nunique() for p in parts],
        }
    )
    return pd.concat(parts, ignore_index=True), sources


def rna_patients(omics_table: str | os.PathLike) -> list[str]:
    """Patients of a `results/omics/{site}.parquet` table (only its `patient` column is read)."""
    return pq.read_table(omics_table, columns=["patient"]).column("patient").to_pylist()


def build_site_cohort(
    site: str,
    projects: Sequence[str],
    clinical: Sequence[str | os.PathLike],
    slide_ids: Iterable[str],
    rna: Iterable[str],
    split_plan: SplitPlan | None = None,
    subtypes_file: str | os.PathLike | None = None,
    days_per_month: float = DAYS_PER_MONTH,
) -> SiteCohort:
    groups = groups_of(site, load_subtype_table(subtypes_file))
    records, sources = read_records(clinical)
    for row in sources.itertuples():
        log.info("%s: %s, %d rows, %d patients", row.source, row.format, row.records, row.patients)
    cohort, report = harmonise(records, site, projects, groups, slide_ids, rna, days_per_month)
    if cohort.empty:
        raise ValueError(
            f"site {site}: no patient has clinical labels and a slide; see the identifiers of {list(clinical)} "
            "and the slide folder (patient = first 12 characters of a slide's file name)"
        )
    splits = split_site(cohort, split_plan or SplitPlan())  # default: the paper's one shared split
    log.info(
        "site %s: %d patients, %d with RNA, %d contradictions",
        site,
        len(cohort),
        cohort["has_rna"].sum(),
        len(report.contradictions),
    )
    return SiteCohort(cohort, splits, report, sources)
