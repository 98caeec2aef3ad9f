"""Clinical-table readers: one function per download format, and detection of the format from the header.

Every reader returns *records*: a frame with exactly :data:`RECORD_COLUMNS`, possibly several rows per patient
(GDC exports repeat a case once per treatment or diagnosis, Xena once per sample, SurvPath once per slide).
:mod:`modaltune.cohort.harmonise` collapses them into one row per patient with documented rules.

Survival times are kept in the unit of the source: days (GDC, Xena; SurvPath's months, which are days / 30, are
turned back into days) or months (cBioPortal's OS_MONTHS), so a month value is carried to the cohort table exactly,
never through days and back with two different day-per-month divisors. :mod:`modaltune.cohort.harmonise` turns
days into months once, with ``cohort.days_per_month``.

Treatment and hormone-receptor fields (for the clinical modality, :mod:`modaltune.cohort.clinical_encoding`) are
kept as words: ``radiation_therapy`` and ``pharmaceutical_therapy`` "yes"/"no" (the patient received that kind of
therapy in any recorded course), ``er_status``/``pr_status``/``her2_status`` "positive"/"negative" (equivocal and
indeterminate results count as missing). Where each format carries them (:data:`THERAPY_COLUMNS`,
:data:`RECEPTOR_COLUMNS`):

* GDC classic and 2.0 exports: one row per treatment, ``treatment_type`` (``Radiation Therapy, NOS``,
  ``Pharmaceutical Therapy, NOS``, or a finer pharmaceutical kind: chemotherapy, hormone, targeted molecular,
  immunotherapy) with ``treatment_or_therapy`` yes/no; each row fills the field of its kind only. Other kinds
  (surgery, ...) are not read. GDC exports carry no receptor status;
* Xena clinicalMatrix: ``radiation_therapy``/``additional_radiation_therapy`` and
  ``targeted_molecular_therapy``/``additional_pharmaceutical_therapy`` (YES/NO); BRCA's
  ``breast_carcinoma_{estrogen,progesterone}_receptor_status`` and ``lab_proc_her2_neu_immunohistochemistry_receptor_status``;
* cBioPortal patient table: ``RADIATION_TREATMENT_ADJUVANT``/``RADIATION_THERAPY`` and ``TARGETED_MOLECULAR_THERAPY``
  (YES/NO); BRCA's ``ER_STATUS_BY_IHC``, ``PR_STATUS_BY_IHC``, ``IHC_HER2``.

Several columns or rows of one field are collapsed by :mod:`modaltune.cohort.harmonise`: therapy "yes" if any says
yes, else "no" if any says no; receptor status the first recorded value.

cBioPortal studies come as a pair: the patient table (survival, stage) and the sample table (the diagnosis:
``CANCER_TYPE_DETAILED``, ``ONCOTREE_CODE``). :func:`join_cbioportal_samples` gives each patient-table record the
diagnosis of the patient's sample table row.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from modaltune.omics.tables import TableFormatError, patient_id, read_header, sample_type

THERAPY_FIELDS = ["radiation_therapy", "pharmaceutical_therapy"]  # "yes" / "no"
RECEPTOR_FIELDS = ["er_status", "pr_status", "her2_status"]  # "positive" / "negative"

RECORD_COLUMNS = [
    "patient",
    "project",
    "event",  # 1.0 dead, 0.0 alive, NaN unknown
    "days_to_death",
    "days_to_follow_up",
    "months_to_death",  # sources that give months (cBioPortal); the day columns are then empty
    "months_to_follow_up",
    "diagnosis",
    "stage",
    "t_stage",
    "n_stage",
    "m_stage",
    "age",  # years
    "sex",
    *THERAPY_FIELDS,
    *RECEPTOR_FIELDS,
]

TIME_COLUMNS = ["days_to_death", "days_to_follow_up", "months_to_death", "months_to_follow_up"]

# Tokens the different exports use for "no value" (GDC old/new, Xena, cBioPortal, SurvPath).
MISSING_TOKENS = {
    "",
    "'--",
    "--",
    "na",
    "n/a",
    "nan",
    "not reported",
    "unknown",
    "[not available]",
    "[not applicable]",
    "[not evaluated]",
    "[unknown]",
    "[discrepancy]",
}

DAYS_PER_MONTH_SURVPATH = 30.0  # SurvPath survival_months = days / 30


class ClinicalFormatError(TableFormatError):
    """A clinical table whose format is not recognised."""


def normalise_stage(value: str | None) -> str | None:
    """'stage iiia' (GDC 2019), 'STAGE IIIA' (cBioPortal), 'III' (SurvPath) -> 'Stage IIIA'; 'Stage IIIA' unchanged."""
    if value is None:
        return None
    text = value.strip()
    text = re.sub(r"^stage\s*", "", text, flags=re.IGNORECASE)
    return f"Stage {text.upper()}" if text else None


# ---------------------------------------------------------------------------------------------------------------
# Parsing helpers


def _read_table(path: Path) -> pd.DataFrame:
    """All cells as str, every missing-value token as None."""
    _, delimiter, comment_lines = read_header(path)
    frame = pd.read_csv(path, sep=delimiter, dtype=str, keep_default_na=False, skiprows=comment_lines)
    return frame.apply(lambda column: column.map(_clean_cell))


def _clean_cell(value: str) -> str | None:
    value = value.strip()
    return None if value.lower() in MISSING_TOKENS else value


def _numbers(column: pd.Series) -> pd.Series:
    return pd.to_numeric(column, errors="coerce").astype(float)


def _vital_event(column: pd.Series, dead: set[str], alive: set[str]) -> pd.Series:
    lowered = column.str.lower()
    return pd.Series(
        np.select([lowered.isin(dead), lowered.isin(alive)], [1.0, 0.0], default=np.nan), index=column.index
    )


def _records(**columns) -> pd.DataFrame:
    frame = pd.DataFrame(columns)
    for name in RECORD_COLUMNS:
        if name not in frame:
            frame[name] = None
    frame["patient"] = frame["patient"].map(patient_id, na_action="ignore")
    return (
        frame[RECORD_COLUMNS]
        .replace({np.nan: None})
        .astype({name: float for name in ("event", *TIME_COLUMNS, "age")})
    )


YES_NO = {"yes": "yes", "no": "no"}
POSITIVE_NEGATIVE = {"positive": "positive", "negative": "negative"}  # equivocal, indeterminate: missing

# Columns of one field in the formats that have them; a record's value is "yes" if any of them says yes.
THERAPY_COLUMNS = {
    "xena_clinical_matrix": {
        "radiation_therapy": ["radiation_therapy", "additional_radiation_therapy"],
        "pharmaceutical_therapy": ["targeted_molecular_therapy", "additional_pharmaceutical_therapy"],
    },
    "cbioportal_patient": {
        "radiation_therapy": ["RADIATION_TREATMENT_ADJUVANT", "RADIATION_THERAPY"],
        "pharmaceutical_therapy": ["TARGETED_MOLECULAR_THERAPY"],
    },
}
RECEPTOR_COLUMNS = {
    "xena_clinical_matrix": {
        "er_status": "breast_carcinoma_estrogen_receptor_status",
        "pr_status": "breast_carcinoma_progesterone_receptor_status",
        "her2_status": "lab_proc_her2_neu_immunohistochemistry_receptor_status",
    },
    "cbioportal_patient": {"er_status": "ER_STATUS_BY_IHC", "pr_status": "PR_STATUS_BY_IHC", "her2_status": "IHC_HER2"},
}
# GDC treatment_type -> field: radiation, or one of the pharmaceutical kinds.
GDC_TREATMENT_KINDS = {
    "radiation therapy, nos": "radiation_therapy",
    "pharmaceutical therapy, nos": "pharmaceutical_therapy",
    "chemotherapy": "pharmaceutical_therapy",
    "hormone therapy": "pharmaceutical_therapy",
    "targeted molecular therapy": "pharmaceutical_therapy",
    "immunotherapy (including vaccines)": "pharmaceutical_therapy",
}


def _words(column: pd.Series | None, mapping: dict[str, str]) -> pd.Series | None:
    """Lower-cased values mapped by ``mapping``; any other value (equivocal, indeterminate) is missing."""
    return None if column is None else column.str.lower().map(mapping).replace({np.nan: None})


def yes_if_any(said_yes: pd.Series, said_no: pd.Series) -> pd.Series:
    """The therapy rule over several answers: "yes" where any says yes, else "no" where any says no, else missing
    (flags per row or per patient, aligned)."""
    return pd.Series(np.select([said_yes, said_no], ["yes", "no"], default=None), index=said_yes.index).replace(
        {np.nan: None})


def _any_yes(frame: pd.DataFrame, columns: list[str]) -> pd.Series | None:
    """Per row: the therapy rule (:func:`yes_if_any`) over the present columns; None when none is present."""
    present = [_words(frame[name], YES_NO) for name in columns if name in frame]
    if not present:
        return None
    answers = pd.concat(present, axis=1)
    return yes_if_any(answers.eq("yes").any(axis=1), answers.eq("no").any(axis=1))


def _table_fields(frame: pd.DataFrame, fmt: str) -> dict[str, pd.Series | None]:
    """Therapy and receptor fields of a format that has them in columns (Xena, cBioPortal)."""
    fields = {name: _any_yes(frame, columns) for name, columns in THERAPY_COLUMNS[fmt].items()}
    fields.update({name: _words(frame.get(column), POSITIVE_NEGATIVE)
                   for name, column in RECEPTOR_COLUMNS[fmt].items()})
    return fields


def _gdc_treatments(treatment_type: pd.Series | None, answer: pd.Series | None) -> dict[str, pd.Series]:
    """GDC's one row per treatment: the row's yes/no answer goes to the field of its treatment kind only."""
    if treatment_type is None or answer is None:
        return {}
    kind = treatment_type.str.lower().map(GDC_TREATMENT_KINDS)
    said = _words(answer, YES_NO)
    return {field: said.where(kind == field, None) for field in THERAPY_FIELDS}


def _strip_tcga(project: pd.Series) -> pd.Series:
    return project.str.replace(r"^TCGA-", "", regex=True)


def _lower(column: pd.Series) -> pd.Series:
    return column.str.lower()


# ---------------------------------------------------------------------------------------------------------------
# One reader per format


def read_gdc_2019(frame: pd.DataFrame) -> pd.DataFrame:
    """GDC export of 2019: one row per case, `submitter_id`, lower-case `tumor_stage`, age in days."""
    return _records(
        patient=frame["submitter_id"],
        project=_strip_tcga(frame["project_id"]),
        event=_vital_event(frame["vital_status"], dead={"dead"}, alive={"alive"}),
        days_to_death=_numbers(frame["days_to_death"]),
        days_to_follow_up=_numbers(frame["days_to_last_follow_up"]),
        diagnosis=frame["primary_diagnosis"],
        stage=frame["tumor_stage"].map(normalise_stage),
        age=_numbers(frame["age_at_diagnosis"]) / 365.25,
        sex=_lower(frame["gender"]),
    )


def read_gdc_classic(frame: pd.DataFrame) -> pd.DataFrame:
    """GDC export of 2020-2023: `case_submitter_id`, `'--` for missing, one row per treatment."""
    age = _numbers(frame["age_at_index"]).fillna(_numbers(frame["age_at_diagnosis"]) / 365.25)
    return _records(
        patient=frame["case_submitter_id"],
        project=_strip_tcga(frame["project_id"]),
        event=_vital_event(frame["vital_status"], dead={"dead"}, alive={"alive"}),
        days_to_death=_numbers(frame["days_to_death"]),
        days_to_follow_up=_numbers(frame["days_to_last_follow_up"]),
        diagnosis=frame["primary_diagnosis"],
        stage=frame["ajcc_pathologic_stage"].map(normalise_stage),
        t_stage=frame["ajcc_pathologic_t"],
        n_stage=frame["ajcc_pathologic_n"],
        m_stage=frame["ajcc_pathologic_m"],
        age=age,
        sex=_lower(frame["gender"]),
        **_gdc_treatments(frame.get("treatment_type"), frame.get("treatment_or_therapy")),
    )


DIAGNOSIS_FIELDS = ["diagnosis", "stage", "t_stage", "n_stage", "m_stage"]


def read_gdc_dotted(frame: pd.DataFrame) -> pd.DataFrame:
    """GDC portal 2.0 export (2024+): dotted columns, one row per case x diagnosis x treatment.

    Diagnosis fields are taken from the diagnosis flagged `diagnoses.diagnosis_is_primary_disease == true`;
    a case without such a flag keeps all its diagnoses (the first non-missing value then wins). Follow-up is
    kept from every row, since a later diagnosis's follow-up is still follow-up of the patient.
    """
    records = _records(
        patient=frame["cases.submitter_id"],
        project=_strip_tcga(frame["project.project_id"]),
        event=_vital_event(frame["demographic.vital_status"], dead={"dead"}, alive={"alive"}),
        days_to_death=_numbers(frame["demographic.days_to_death"]),
        days_to_follow_up=_numbers(frame["diagnoses.days_to_last_follow_up"]),
        diagnosis=frame["diagnoses.primary_diagnosis"],
        stage=frame["diagnoses.ajcc_pathologic_stage"].map(normalise_stage),
        t_stage=frame.get("diagnoses.ajcc_pathologic_t"),
        n_stage=frame.get("diagnoses.ajcc_pathologic_n"),
        m_stage=frame.get("diagnoses.ajcc_pathologic_m"),
        age=_numbers(frame["demographic.age_at_index"]),
        sex=_lower(frame["demographic.gender"]),
        **_gdc_treatments(frame.get("treatments.treatment_type"), frame.get("treatments.treatment_or_therapy")),
    )
    is_primary = frame["diagnoses.diagnosis_is_primary_disease"].str.lower().eq("true")
    case_has_primary = is_primary.groupby(records["patient"]).transform("any")
    records.loc[case_has_primary & ~is_primary, DIAGNOSIS_FIELDS] = None
    return records


def read_xena_clinical_matrix(frame: pd.DataFrame) -> pd.DataFrame:
    """UCSC Xena TCGA hub `<COHORT>_clinicalMatrix`: one row per sample, `_PATIENT`, days, `LIVING`/`DECEASED`."""
    project = frame["_cohort"].str.extract(r"\(([A-Z]+)\)\s*$", expand=False) if "_cohort" in frame else None
    return _records(
        patient=frame["_PATIENT"],
        project=project,
        event=_vital_event(frame["vital_status"], dead={"deceased", "dead"}, alive={"living", "alive"}),
        days_to_death=_numbers(frame["days_to_death"]),
        days_to_follow_up=_numbers(frame["days_to_last_followup"]),
        diagnosis=frame["histological_type"],
        stage=frame["pathologic_stage"].map(normalise_stage),
        t_stage=frame.get("pathologic_T"),
        n_stage=frame.get("pathologic_N"),
        m_stage=frame.get("pathologic_M"),
        age=_numbers(frame["age_at_initial_pathologic_diagnosis"]),
        sex=_lower(frame["gender"]),
        **_table_fields(frame, "xena_clinical_matrix"),
    )


# Diagnosis columns of a cBioPortal patient table, first present wins; used only for patients that have no row in
# a sample table (which is where cBioPortal keeps the diagnosis).
CBIOPORTAL_PATIENT_DIAGNOSIS_COLUMNS = ["CANCER_TYPE_DETAILED", "HISTOLOGICAL_TYPE", "HISTOLOGICAL_DIAGNOSIS"]


def read_cbioportal_patients(frame: pd.DataFrame) -> pd.DataFrame:
    """cBioPortal `data_clinical_patient.txt`: `#` header lines, `OS_STATUS` `1:DECEASED`, `OS_MONTHS` kept in months.

    Patient tables often carry no diagnosis: it is in the study's sample table (:func:`read_cbioportal_samples`),
    which the site lists as a second clinical file; else the first of :data:`CBIOPORTAL_PATIENT_DIAGNOSIS_COLUMNS`
    present is used.
    """
    status = frame["OS_STATUS"].str.replace(r"^\d:", "", regex=True)
    event = _vital_event(status, dead={"deceased", "dead"}, alive={"living", "alive"})
    months = _numbers(frame["OS_MONTHS"])
    return _records(
        patient=frame["PATIENT_ID"],
        project=frame.get("CANCER_TYPE_ACRONYM"),
        event=event,
        months_to_death=months.where(event == 1.0),
        months_to_follow_up=months.where(event == 0.0),
        diagnosis=_first_column(frame, CBIOPORTAL_PATIENT_DIAGNOSIS_COLUMNS),
        stage=frame["AJCC_PATHOLOGIC_TUMOR_STAGE"].map(normalise_stage)
        if "AJCC_PATHOLOGIC_TUMOR_STAGE" in frame
        else None,
        t_stage=_first_column(frame, ["PATH_T_STAGE", "AJCC_TUMOR_PATHOLOGIC_PT"]),
        n_stage=_first_column(frame, ["PATH_N_STAGE", "AJCC_NODES_PATHOLOGIC_PN"]),
        m_stage=_first_column(frame, ["PATH_M_STAGE", "AJCC_METASTASIS_PATHOLOGIC_PM"]),
        age=_numbers(frame["AGE"]) if "AGE" in frame else None,
        sex=_lower(frame["SEX"]) if "SEX" in frame else None,
        **_table_fields(frame, "cbioportal_patient"),
    )


def _first_column(frame: pd.DataFrame, names: list[str]) -> pd.Series | None:
    """The first of ``names`` that the table has (studies of different years name a field differently)."""
    return next((frame[name] for name in names if name in frame), None)


# TCGA sample-type codes of primary tumours: solid tumour, blood cancer, new primary, bone marrow.
TCGA_PRIMARY_SAMPLE_TYPES = {1, 3, 5, 9}


def read_cbioportal_samples(frame: pd.DataFrame) -> pd.DataFrame:
    """cBioPortal `data_clinical_sample.txt`: one record per patient holding the diagnosis of one of its samples.

    The diagnosis is `CANCER_TYPE_DETAILED` (the OncoTree name, e.g. "Breast Invasive Ductal Carcinoma"), else the
    `ONCOTREE_CODE`; modaltune/data/subtypes.yaml lists both forms. Of a patient's samples, those with a diagnosis
    come first, then primary tumours (`SAMPLE_TYPE` "Primary..."; without that column, TCGA sample-type codes 01,
    03, 05, 09 of `SAMPLE_ID`), then file order: a metastasis (-06) never overrides the primary tumour (-01).
    """
    diagnosis = frame["ONCOTREE_CODE"]
    if "CANCER_TYPE_DETAILED" in frame:
        diagnosis = frame["CANCER_TYPE_DETAILED"].fillna(diagnosis)
    if "SAMPLE_TYPE" in frame:
        primary = frame["SAMPLE_TYPE"].str.lower().str.startswith("primary", na=False)
    else:
        primary = frame["SAMPLE_ID"].map(sample_type, na_action="ignore").isin(TCGA_PRIMARY_SAMPLE_TYPES)
    order = pd.DataFrame({"undiagnosed": diagnosis.isna(), "secondary": ~primary})
    chosen = order.sort_values(["undiagnosed", "secondary"], kind="stable").index
    records = _records(patient=frame.loc[chosen, "PATIENT_ID"], diagnosis=diagnosis.loc[chosen])
    return records.drop_duplicates("patient").sort_index()


def join_cbioportal_samples(parts: list[pd.DataFrame]) -> list[pd.DataFrame]:
    """Records of several clinical files, with every cBioPortal patient-table record given the diagnosis of its
    patient in the sample tables among them (joined on `PATIENT_ID`; the patient table's own diagnosis columns
    only where the sample tables have none). The sample records stay, so sample-table patients without a patient
    row are still counted (and dropped for lack of survival data, listed in the cohort report)."""
    samples = [part for part in parts if len(part) and part["format"].iloc[0] == "cbioportal_sample"]
    if not samples:
        return parts
    diagnoses = pd.concat(samples).dropna(subset="diagnosis").drop_duplicates("patient")
    by_patient = diagnoses.set_index("patient")["diagnosis"]
    joined = []
    for part in parts:
        if len(part) and part["format"].iloc[0] == "cbioportal_patient":
            diagnosis = part["patient"].map(by_patient).fillna(part["diagnosis"])
            part = part.assign(diagnosis=diagnosis.where(diagnosis.notna(), None))
        joined.append(part)
    return joined


def read_survpath_labels(frame: pd.DataFrame) -> pd.DataFrame:
    """SurvPath `metadata/tcga_<study>.csv`: one row per slide, `survival_months` (days / 30), `censorship` (1 = alive)."""
    event = 1.0 - _numbers(frame["censorship"])
    days = _numbers(frame["survival_months"]) * DAYS_PER_MONTH_SURVPATH
    sex = _numbers(frame["is_female"]).map({1.0: "female", 0.0: "male"})
    return _records(
        patient=frame["case_id"],
        event=event,
        days_to_death=days.where(event == 1.0),
        days_to_follow_up=days.where(event == 0.0),
        diagnosis=frame["oncotree_code"],
        age=_numbers(frame["age"]),
        sex=sex,
    )


def read_survpath_clinical(frame: pd.DataFrame) -> pd.DataFrame:
    """SurvPath `clinical_data/tcga_<study>_clinical.csv`: stage (roman numeral) and OncoTree subtype, no survival."""
    return _records(
        patient=frame["case_id"],
        diagnosis=frame["subtype"],
        stage=frame["stage"].map(normalise_stage),
    )


# ---------------------------------------------------------------------------------------------------------------
# Detection


@dataclass(frozen=True)
class ClinicalFormat:
    name: str
    description: str
    required: tuple[str, ...]  # header columns that identify the format
    reader: Callable[[pd.DataFrame], pd.DataFrame]


# Checked in order: the first format whose identifying columns are all in the header wins.
FORMATS = [
    ClinicalFormat(
        "gdc_dotted",
        "GDC clinical.tsv, portal 2.0 export (2024+)",
        ("cases.submitter_id", "diagnoses.primary_diagnosis", "diagnoses.diagnosis_is_primary_disease"),
        read_gdc_dotted,
    ),
    ClinicalFormat(
        "gdc_classic",
        "GDC clinical.tsv, classic export (2020-2023)",
        ("case_submitter_id", "vital_status", "ajcc_pathologic_stage", "primary_diagnosis"),
        read_gdc_classic,
    ),
    ClinicalFormat(
        "gdc_2019",
        "GDC clinical.tsv, 2019 export",
        ("submitter_id", "vital_status", "tumor_stage", "primary_diagnosis", "days_to_last_follow_up"),
        read_gdc_2019,
    ),
    ClinicalFormat(
        "xena_clinical_matrix",
        "UCSC Xena TCGA hub clinicalMatrix",
        (
            "sampleID",
            "_PATIENT",
            "vital_status",
            "days_to_death",
            "days_to_last_followup",
            "histological_type",
        ),
        read_xena_clinical_matrix,
    ),
    ClinicalFormat(
        "cbioportal_patient",
        "cBioPortal data_clinical_patient.txt",
        ("PATIENT_ID", "OS_STATUS", "OS_MONTHS"),
        read_cbioportal_patients,
    ),
    ClinicalFormat(
        "cbioportal_sample",
        "cBioPortal data_clinical_sample.txt (the diagnosis of a cBioPortal study)",
        ("PATIENT_ID", "SAMPLE_ID", "ONCOTREE_CODE"),
        read_cbioportal_samples,
    ),
    ClinicalFormat(
        "survpath_labels",
        "SurvPath metadata/tcga_<study>.csv",
        ("case_id", "slide_id", "survival_months", "censorship", "oncotree_code"),
        read_survpath_labels,
    ),
    ClinicalFormat(
        "survpath_clinical",
        "SurvPath clinical_data/tcga_<study>_clinical.csv",
        ("case_id", "stage", "subtype"),
        read_survpath_clinical,
    ),
]


def detect_format(path: str | os.PathLike) -> ClinicalFormat:
    """The format of a clinical table, from its header; an unknown header lists every recognised format."""
    header, _, _ = read_header(path)
    columns = set(header)
    for candidate in FORMATS:
        if columns.issuperset(candidate.required):
            return candidate
    recognised = "\n".join(
        f"  - {f.name}: {f.description} (columns {', '.join(f.required)})" for f in FORMATS
    )
    raise ClinicalFormatError(
        f"{path}: unknown clinical table format (header starts {header[:6]}). Recognised formats:\n{recognised}"
    )


def read_clinical(path: str | os.PathLike) -> pd.DataFrame:
    """Records of one clinical table (any recognised format) plus `source` (the file) and `format` columns."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"clinical table not found: {path}")
    fmt = detect_format(path)
    records = fmt.reader(_read_table(path))
    records = records[records["patient"].notna()].reset_index(drop=True)
    return records.assign(source=str(path), format=fmt.name)
