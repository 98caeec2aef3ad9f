"""One site's cohort: read its clinical tables, harmonise, split, report (the `modaltune cohort` command)."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from modaltune.cohort.harmonise import DAYS_PER_MONTH, HarmoniseReport, harmonise
from modaltune.cohort.readers import join_cbioportal_samples, read_clinical
from modaltune.cohort.report import empty_cohort_reason, no_rna_reason
from modaltune.cohort.splits import SiteSplits, SplitPlan, split_site
from modaltune.cohort.subtypes import groups_of, load_subtype_table

log = logging.getLogger(__name__)

# Words of the tiling status records (modaltune.slides.pipeline.SlideStatus) for slides that cannot be used.
UNUSABLE_STATUS = {"failed": "tiling failed", "no_tissue": "no tissue"}


@dataclass
class SiteCohort:
    cohort: pd.DataFrame
    splits: SiteSplits | None  # None when the cohort could not be split (see CohortError)
    report: HarmoniseReport
    sources: pd.DataFrame  # one row per clinical file: source, format, records, patients


class CohortError(ValueError):
    """A site's cohort cannot be built; ``result`` holds what was built so far, for the cohort report."""

    def __init__(self, message: str, result: SiteCohort):
        super().__init__(message)
        self.result = result


def read_records(paths: Sequence[str | os.PathLike]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Records of all clinical files in the order given (cBioPortal sample tables joined to their patient tables),
    and a per-file summary."""
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
    if "cbioportal_patient" in set(sources["format"]) and "cbioportal_sample" not in set(sources["format"]):
        log.warning(
            "a cBioPortal patient table without its sample table: diagnoses come from the patient table's own "
            "columns, if any; add the study's data_clinical_sample.txt to the site's clinical files for OncoTree types"
        )
    return pd.concat(join_cbioportal_samples(parts), ignore_index=True), sources


def rna_patients(omics_table: str | os.PathLike) -> list[str]:
    """Patients of a `results/omics/{site}.parquet` table (only its `patient` column is read)."""
    return pq.read_table(omics_table, columns=["patient"]).column("patient").to_pylist()


def unusable_slides(status_files: Iterable[str | os.PathLike]) -> dict[str, str]:
    """Slide -> why it cannot be used, from the status records `modaltune tile` writes
    (results/qc/status/{slide}.json): slides whose tiling failed (unreadable, no MPP) or that have no tissue."""
    unusable = {}
    for path in status_files:
        record = json.loads(Path(path).read_text())
        if record["status"] in UNUSABLE_STATUS:
            reason = UNUSABLE_STATUS[record["status"]]
            unusable[record["slide"]] = f"{reason}: {record['reason']}" if record.get("reason") else reason
    return unusable


def build_site_cohort(
    site: str,
    projects: Sequence[str],
    clinical: Sequence[str | os.PathLike],
    slide_ids: Iterable[str],
    rna: Iterable[str],
    split_plan: SplitPlan | None = None,
    subtypes_file: str | os.PathLike | None = None,
    days_per_month: float = DAYS_PER_MONTH,
    unusable: Mapping[str, str] | None = None,
) -> SiteCohort:
    """The site's cohort and splits; raises :class:`CohortError` naming the dominant cause when no usable cohort
    is left (the error carries the partial result, so the report can still be written)."""
    groups = groups_of(site, load_subtype_table(subtypes_file))
    records, sources = read_records(clinical)
    for row in sources.itertuples():
        log.info("%s: %s, %d rows, %d patients", row.source, row.format, row.records, row.patients)
    rna = list(rna)
    cohort, report = harmonise(records, site, projects, groups, slide_ids, rna, days_per_month, unusable)
    for reason, patients in report.losses().items():
        log.warning("site %s: %d patients dropped (%s)", site, len(patients), reason)
    for correction, patients in report.corrections.items():
        if patients:
            log.warning("site %s: %d patients corrected (%s)", site, len(patients), correction)
    partial = SiteCohort(cohort, None, report, sources)
    if cohort.empty:
        raise CohortError(
            f"site {site}: no patient left for the cohort: {empty_cohort_reason(report, sources)}", partial
        )
    if not cohort["has_rna"].any():
        raise CohortError(f"site {site}: {no_rna_reason(report, rna, cohort)}", partial)
    try:
        splits = split_site(cohort, split_plan or SplitPlan())  # default: the paper's one shared split
    except ValueError as error:
        raise CohortError(str(error), partial) from error
    log.info(
        "site %s: %d patients, %d with RNA, %d contradictions",
        site,
        len(cohort),
        cohort["has_rna"].sum(),
        len(report.contradictions),
    )
    return SiteCohort(cohort, splits, report, sources)
