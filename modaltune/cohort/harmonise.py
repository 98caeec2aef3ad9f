"""Records of all clinical tables of a site -> one row per patient with survival labels, subtype, slides, RNA flag.

Rules (each one documented here, applied in this order):

1. Records of a TCGA project outside the site's ``projects`` are dropped (counted in the report; "TCGA-BRCA" and
   "BRCA" name the same project); records without a project get the site's project when the site has exactly one.
2. Survival times become months: days / ``days_per_month`` (30.44); a source that gives months (cBioPortal's
   OS_MONTHS) keeps its value exactly.
3. Rows of one patient (treatments, diagnoses, samples, slides, several files) are collapsed:
   - event: dead if any row says dead (death is final; an "alive" row is an older follow-up); reported if rows disagree;
   - time to death: the earliest of the recorded values; two different values are a *contradiction*, reported;
     the earliest is kept so that the survival time never extends past a recorded death;
   - time to last follow-up: the latest recorded value;
   - radiation / pharmaceutical therapy: "yes" if any row says yes (a course recorded on any row was given),
     else "no" if any row says no, else missing;
   - every other field: the first non-missing value in file order (files in the order the config lists them);
     two different diagnoses are reported.
4. Labels (ModalTune ``make_dataset.py``): time = time to death if dead, else time to last follow-up. Two silent
   corrections of upstream are kept and listed in the report: a dead patient without a death date gets the
   follow-up time, and a negative time is taken as its absolute value. Patients without vital status, time or
   diagnosis are dropped and listed in the report.
5. Diagnosis: normalised (lower case, trailing ", NOS" removed); subtype and class from the site's groups.
6. Slides: a slide belongs to the patient of its first 12 characters; slides that are not usable (tiling failed,
   or no tissue: the ``unusable_slides`` given) are left out of the patient's slides. Patients without slides and
   patients whose slides are all unusable are dropped (listed), slides without a patient are listed.
   ``has_rna``: the patient has a row in the site's omics table.

Every patient that is dropped is dropped for exactly one reason, the first that applies in this order, so the
report's counts add up to the clinical patients (:meth:`HarmoniseReport.losses`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from modaltune.cohort.readers import RECEPTOR_FIELDS, THERAPY_FIELDS, patient_id, yes_if_any
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
    *THERAPY_FIELDS,
    *RECEPTOR_FIELDS,
    "slides",
    "has_rna",
]

_FIRST_VALUE_FIELDS = ["project", "stage", "t_stage", "n_stage", "m_stage", "age", "sex", *RECEPTOR_FIELDS]

# Reasons of rule 4's drops, in the order they are checked.
NO_VITAL_STATUS = "no vital status"
NO_SURVIVAL_TIME = "no days to death or last follow-up"
NO_DIAGNOSIS = "no diagnosis"
# Rule 4's silent corrections.
DEAD_WITHOUT_DEATH_DATE = "dead without a death date: the last follow-up is taken as the time of death"
NEGATIVE_TIME = "negative survival time: its absolute value is taken"


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
    projects: list[str] = field(default_factory=list)
    clinical_patients: int = 0  # distinct patients in the clinical records
    other_projects: dict[str, int] = field(default_factory=dict)  # project -> patients with records of it
    outside_projects: list[str] = field(default_factory=list)  # patients without a site-project record
    contradictions: list[Contradiction] = field(default_factory=list)
    dropped: dict[str, list[str]] = field(default_factory=dict)  # reason -> patients
    corrections: dict[str, list[str]] = field(default_factory=dict)  # correction -> cohort patients
    without_slides: list[str] = field(default_factory=list)
    without_usable_slides: dict[str, list[str]] = field(default_factory=dict)  # patient -> unusable slides
    unusable_slides: dict[str, str] = field(default_factory=dict)  # slide -> why (clinical patients' slides)
    slides_without_clinical: list[str] = field(default_factory=list)
    rna_without_clinical: list[str] = field(default_factory=list)
    without_rna: list[str] = field(default_factory=list)
    unknown_project: list[str] = field(default_factory=list)

    def losses(self) -> dict[str, list[str]]:
        """Dropped patients by reason (rule order), each patient under one reason; empty reasons left out."""
        losses = {
            "other project": self.outside_projects,
            **self.dropped,
            "no slide": self.without_slides,
            "no usable slide": sorted(self.without_usable_slides),
        }
        return {reason: patients for reason, patients in losses.items() if patients}


def harmonise(
    records: pd.DataFrame,
    site: str,
    projects: Iterable[str],
    groups: list[SubtypeGroup],
    slide_ids: Iterable[str],
    rna_patients: Iterable[str],
    days_per_month: float = DAYS_PER_MONTH,
    unusable_slides: Mapping[str, str] | None = None,
) -> tuple[pd.DataFrame, HarmoniseReport]:
    """The site's cohort table (columns :data:`COHORT_COLUMNS`, sorted by patient) and the report of rule effects.

    ``unusable_slides``: slide id -> why it cannot be used (tiling failed, no tissue), from the tiling status.
    """
    report = HarmoniseReport(site, projects=[_project_code(p) for p in projects])
    report.clinical_patients = records["patient"].nunique()
    records = _filter_projects(records, report)
    records = _times_in_months(records, days_per_month)

    clinical_patients = set(records["patient"])
    table = _collapse(records, report)
    table = _drop_unlabelled(table, report)

    table["time_months"] = _survival_months(table, report)
    table["event"] = table["event"].astype(int)
    subtypes = [
        assign_subtype(d, p, groups) for d, p in zip(table["diagnosis"], table["project"], strict=True)
    ]
    table["subtype"] = [name for name, _ in subtypes]
    table["subtype_class"] = np.array([cls for _, cls in subtypes], dtype=int)
    table["site"] = site
    table["age"] = table["age"].astype(float)

    table = _attach_slides(table, slide_ids, dict(unusable_slides or {}), clinical_patients, report)
    cohort_patients = set(table["patient"])
    report.corrections = {
        correction: [p for p in patients if p in cohort_patients]
        for correction, patients in report.corrections.items()
    }
    rna = set(rna_patients)
    table["has_rna"] = table["patient"].isin(rna)
    report.without_rna = sorted(table.loc[~table["has_rna"], "patient"])
    report.rna_without_clinical = sorted(rna - clinical_patients)
    report.unknown_project = sorted(table.loc[table["project"] == "", "patient"])
    return table[COHORT_COLUMNS].reset_index(drop=True), report


def _project_code(project: str) -> str:
    return str(project).removeprefix("TCGA-")


def _filter_projects(records: pd.DataFrame, report: HarmoniseReport) -> pd.DataFrame:
    records = records.copy()
    if len(report.projects) == 1:
        records["project"] = records["project"].fillna(report.projects[0])
    outside = records["project"].notna() & ~records["project"].isin(report.projects)
    report.other_projects = records.loc[outside].groupby("project")["patient"].nunique().to_dict()
    kept = records.loc[~outside]
    report.outside_projects = sorted(set(records["patient"]) - set(kept["patient"]))
    return kept


def _times_in_months(records: pd.DataFrame, days_per_month: float) -> pd.DataFrame:
    """Rule 2: months columns hold every survival time; a month value of the source is kept as it is."""
    return records.assign(
        months_to_death=records["months_to_death"].fillna(records["days_to_death"] / days_per_month),
        months_to_follow_up=records["months_to_follow_up"].fillna(
            records["days_to_follow_up"] / days_per_month
        ),
    )


def _collapse(records: pd.DataFrame, report: HarmoniseReport) -> pd.DataFrame:
    """One row per patient (sorted) by the rules of the module docstring; contradictions go to the report."""
    records = records.assign(diagnosis=records["diagnosis"].map(normalise_diagnosis, na_action="ignore"))
    by_patient = records.groupby("patient", sort=True)
    table = by_patient[["diagnosis", *_FIRST_VALUE_FIELDS]].first()  # first non-missing value
    table["event"] = by_patient["event"].max()
    for name in THERAPY_FIELDS:
        said = {answer: records[name].eq(answer).groupby(records["patient"]).any().reindex(table.index)
                for answer in ("yes", "no")}
        table[name] = yes_if_any(said["yes"], said["no"])
    table["months_to_death"] = by_patient["months_to_death"].min()
    table["months_to_follow_up"] = by_patient["months_to_follow_up"].max()
    table["project"] = table["project"].fillna("")

    distinct = by_patient[["event", "months_to_death", "diagnosis"]].nunique()
    for patient in distinct.index[distinct["event"] > 1]:
        report.contradictions.append(Contradiction(patient, "vital status", ["alive", "dead"], "dead"))
    for patient in distinct.index[distinct["months_to_death"] > 1]:
        values = sorted(by_patient.get_group(patient)["months_to_death"].dropna().unique())
        report.contradictions.append(
            Contradiction(patient, "months to death", values, f"earliest kept: {values[0]:.2f}")
        )
    for patient in distinct.index[distinct["diagnosis"] > 1]:
        values = list(by_patient.get_group(patient)["diagnosis"].dropna().unique())
        report.contradictions.append(Contradiction(patient, "diagnosis", values, f"first kept: {values[0]}"))
    return table.reset_index()


def _drop_unlabelled(table: pd.DataFrame, report: HarmoniseReport) -> pd.DataFrame:
    problems = {
        NO_VITAL_STATUS: table["event"].isna(),
        NO_SURVIVAL_TIME: table["months_to_death"].isna() & table["months_to_follow_up"].isna(),
        NO_DIAGNOSIS: table["diagnosis"].isna(),
    }
    dropped = pd.Series(False, index=table.index)
    for reason, problem in problems.items():  # each patient is listed under its first problem only
        problem = problem & ~dropped
        if problem.any():
            report.dropped[reason] = sorted(table.loc[problem, "patient"])
        dropped |= problem
    return table.loc[~dropped].reset_index(drop=True)


def _survival_months(table: pd.DataFrame, report: HarmoniseReport) -> pd.Series:
    """Rule 4's time, with its two silent corrections listed in the report."""
    dead = table["event"] == 1
    no_death_date = dead & table["months_to_death"].isna()
    months = table["months_to_follow_up"].where(
        ~dead, table["months_to_death"].fillna(table["months_to_follow_up"])
    )
    negative = months < 0
    report.corrections = {
        DEAD_WITHOUT_DEATH_DATE: sorted(table.loc[no_death_date, "patient"]),
        NEGATIVE_TIME: sorted(table.loc[negative, "patient"]),
    }
    return months.abs().astype(float)


def _attach_slides(
    table: pd.DataFrame,
    slide_ids: Iterable[str],
    unusable_slides: dict[str, str],
    clinical_patients: set[str],
    report: HarmoniseReport,
) -> pd.DataFrame:
    slides_by_patient: dict[str, list[str]] = {}
    for slide in sorted(slide_ids):
        slides_by_patient.setdefault(patient_id(slide), []).append(slide)
    all_slides = pd.Series([slides_by_patient.get(p, []) for p in table["patient"]], index=table.index)
    table["slides"] = [[s for s in slides if s not in unusable_slides] for slides in all_slides]
    has_slides = all_slides.map(len) > 0
    usable = table["slides"].map(len) > 0
    report.without_slides = sorted(table.loc[~has_slides, "patient"])
    report.without_usable_slides = {
        patient: slides
        for patient, slides, ok in zip(table["patient"], all_slides, usable, strict=True)
        if slides and not ok
    }
    report.unusable_slides = {
        slide: why
        for slides in all_slides
        for slide in slides
        if (why := unusable_slides.get(slide)) is not None
    }
    report.slides_without_clinical = sorted(
        slide
        for patient, slides in slides_by_patient.items()
        if patient not in clinical_patients
        for slide in slides
    )
    return table.loc[usable]
