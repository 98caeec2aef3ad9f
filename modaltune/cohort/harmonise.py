"""Records of all clinical tables of a site -> one row per patient with survival labels, subtype, slides, RNA flag.

Rules (each one documented here, applied in this order):

1. Records of a TCGA project outside the site's ``projects`` are dropped (counted in the report); records without
   a project get the site's project when the site has exactly one.
2. Rows of one patient (treatments, diagnoses, samples, slides, several files) are collapsed:
   - event: dead if any row says dead (death is final; an "alive" row is an older follow-up); reported if rows disagree;
   - days to death: the earliest of the recorded values; two different values are a *contradiction*, reported;
     the earliest is kept so that the survival time never extends past a recorded death;
   - days to last follow-up: the latest recorded value;
   - every other field: the first non-missing value in file order (files in the order the config lists them);
     two different diagnoses are reported.
3. Labels (ModalTune ``make_dataset.py``): time = days to death if dead, else days to last follow-up; a dead
   patient without a death date falls back to the follow-up; negative days are taken as absolute values;
   months = days / ``days_per_month`` (30.44). Patients without vital status, time or diagnosis are dropped and
   listed in the report.
4. Diagnosis: normalised (lower case, trailing ", NOS" removed); subtype and class from the site's groups.
5. Slides: a slide belongs to the patient of its first 12 characters; patients without slides are dropped
   (listed), slides without a patient are listed. ``has_rna``: the patient has a row in the site's omics table.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from modaltune.cohort.readers import patient_id
from modaltune.cohort.subtypes import SubtypeGroup, assign_subtype, normalise_diagnosis

DAYS_PER_MONTH = 30.44

COHORT_COLUMNS = [
    "patient",
    "site",
    "project",
    "diagnosis",
    "subtype",
    "subtype_class",
    "time_months",
    "event",
    "stage",
    "t_stage",
    "n_stage",
    "m_stage",
    "age",
    "sex",
    "slides",
    "has_rna",
]

_FIRST_VALUE_FIELDS = ["project", "stage", "t_stage", "n_stage", "m_stage", "age", "sex"]


@dataclass
class Contradiction:
    patient: str
    field: str
    values: list
    resolution: str


@dataclass
class HarmoniseReport:
    """What happened to every patient and slide that did not make it unchanged into the cohort table."""

    site: str
    other_projects: dict[str, int] = field(default_factory=dict)
    contradictions: list[Contradiction] = field(default_factory=list)
    dropped: dict[str, list[str]] = field(default_factory=dict)  # reason -> patients
    without_slides: list[str] = field(default_factory=list)
    slides_without_clinical: list[str] = field(default_factory=list)
    rna_without_clinical: list[str] = field(default_factory=list)
    without_rna: list[str] = field(default_factory=list)
    unknown_project: list[str] = field(default_factory=list)


def harmonise(
    records: pd.DataFrame,
    site: str,
    projects: Iterable[str],
    groups: list[SubtypeGroup],
    slide_ids: Iterable[str],
    rna_patients: Iterable[str],
    days_per_month: float = DAYS_PER_MONTH,
) -> tuple[pd.DataFrame, HarmoniseReport]:
    """The site's cohort table (columns :data:`COHORT_COLUMNS`, sorted by patient) and the report of rule effects."""
    report = HarmoniseReport(site)
    projects = list(projects)
    records = _filter_projects(records, projects, report)

    clinical_patients = set(records["patient"])
    table = _collapse(records, report)
    table = _drop_unlabelled(table, report)

    table["time_months"] = _survival_days(table) / days_per_month
    table["event"] = table["event"].astype(int)
    subtypes = [
        assign_subtype(d, p, groups) for d, p in zip(table["diagnosis"], table["project"], strict=True)
    ]
    table["subtype"] = [name for name, _ in subtypes]
    table["subtype_class"] = np.array([cls for _, cls in subtypes], dtype=int)
    table["site"] = site
    table["age"] = table["age"].astype(float)

    table = _attach_slides(table, slide_ids, clinical_patients, report)
    rna = set(rna_patients)
    table["has_rna"] = table["patient"].isin(rna)
    report.without_rna = sorted(table.loc[~table["has_rna"], "patient"])
    report.rna_without_clinical = sorted(rna - clinical_patients)
    report.unknown_project = sorted(table.loc[table["project"] == "", "patient"])
    return table[COHORT_COLUMNS].reset_index(drop=True), report


def _filter_projects(records: pd.DataFrame, projects: list[str], report: HarmoniseReport) -> pd.DataFrame:
    records = records.copy()
    if len(projects) == 1:
        records["project"] = records["project"].fillna(projects[0])
    outside = records["project"].notna() & ~records["project"].isin(projects)
    report.other_projects = records.loc[outside].groupby("project")["patient"].nunique().to_dict()
    return records.loc[~outside]


def _collapse(records: pd.DataFrame, report: HarmoniseReport) -> pd.DataFrame:
    """One row per patient (sorted) by the rules of the module docstring; contradictions go to the report."""
    records = records.assign(diagnosis=records["diagnosis"].map(normalise_diagnosis, na_action="ignore"))
    by_patient = records.groupby("patient", sort=True)
    table = by_patient[["diagnosis", *_FIRST_VALUE_FIELDS]].first()  # first non-missing value
    table["event"] = by_patient["event"].max()
    table["days_to_death"] = by_patient["days_to_death"].min()
    table["days_to_follow_up"] = by_patient["days_to_follow_up"].max()
    table["project"] = table["project"].fillna("")

    distinct = by_patient[["event", "days_to_death", "diagnosis"]].nunique()
    for patient in distinct.index[distinct["event"] > 1]:
        report.contradictions.append(Contradiction(patient, "vital status", ["alive", "dead"], "dead"))
    for patient in distinct.index[distinct["days_to_death"] > 1]:
        values = sorted(by_patient.get_group(patient)["days_to_death"].dropna().unique())
        report.contradictions.append(
            Contradiction(patient, "days to death", values, f"earliest kept: {values[0]:g}")
        )
    for patient in distinct.index[distinct["diagnosis"] > 1]:
        values = list(by_patient.get_group(patient)["diagnosis"].dropna().unique())
        report.contradictions.append(Contradiction(patient, "diagnosis", values, f"first kept: {values[0]}"))
    return table.reset_index()


def _drop_unlabelled(table: pd.DataFrame, report: HarmoniseReport) -> pd.DataFrame:
    problems = {
        "no vital status": table["event"].isna(),
        "no days to death or last follow-up": table["days_to_death"].isna()
        & table["days_to_follow_up"].isna(),
        "no diagnosis": table["diagnosis"].isna(),
    }
    dropped = pd.Series(False, index=table.index)
    for reason, problem in problems.items():  # each patient is listed under its first problem only
        problem = problem & ~dropped
        if problem.any():
            report.dropped[reason] = sorted(table.loc[problem, "patient"])
        dropped |= problem
    return table.loc[~dropped].reset_index(drop=True)


def _survival_days(table: pd.DataFrame) -> pd.Series:
    dead = table["event"] == 1
    days = table["days_to_follow_up"].where(~dead, table["days_to_death"].fillna(table["days_to_follow_up"]))
    return days.abs().astype(float)


def _attach_slides(
    table: pd.DataFrame, slide_ids: Iterable[str], clinical_patients: set[str], report: HarmoniseReport
) -> pd.DataFrame:
    slides_by_patient: dict[str, list[str]] = {}
    for slide in sorted(slide_ids):
        slides_by_patient.setdefault(patient_id(slide), []).append(slide)
    table["slides"] = [slides_by_patient.get(p, []) for p in table["patient"]]
    has_slides = table["slides"].map(len) > 0
    report.without_slides = sorted(table.loc[~has_slides, "patient"])
    report.slides_without_clinical = sorted(
        slide
        for patient, slides in slides_by_patient.items()
        if patient not in clinical_patients
        for slide in slides
    )
    return table.loc[has_slides]
