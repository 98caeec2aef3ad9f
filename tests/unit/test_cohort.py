"""modaltune.cohort: format detection and readers on the real GDC/Xena/SurvPath tables (values checked by hand
against the files), synthetic 2024+ GDC and cBioPortal fixtures, harmonising rules, splits, report, CLI."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from modaltune.cli import main
from modaltune.cohort import (
    ClinicalFormatError,
    detect_format,
    harmonise,
    load_subtype_table,
    make_splits,
    read_clinical,
)
from modaltune.cohort.build import CohortError, build_site_cohort, read_records, unusable_slides
from modaltune.cohort.harmonise import DEAD_WITHOUT_DEATH_DATE, NEGATIVE_TIME
from modaltune.cohort.readers import normalise_stage
from modaltune.cohort.report import render_report
from modaltune.cohort.splits import SplitPlan, split_site
from modaltune.config import validate
from modaltune.io import read_parquet, write_parquet

SUBTYPES = load_subtype_table()


def _cohort(paths, site, projects, slides=None, rna=()):
    """Harmonised table of real files; every clinical patient gets one slide unless `slides` is given."""
    records, _ = read_records(paths)
    if slides is None:
        slides = [f"{p}-01Z-00-DX1" for p in records["patient"].unique()]
    table, report = harmonise(records, site, projects, SUBTYPES[site], slides, rna)
    return table.set_index("patient"), report


def _months(days):
    return days / 30.44


# ------------------------------------------------------------------------------------------------ real tables


def test_gdc_2019_kirc(real_data):
    path = real_data / "gdc_clinical_kirc_2019" / "clinical.tsv"
    assert detect_format(path).name == "gdc_2019"
    table, report = _cohort([path], "RCC", ["KIRC", "KIRP", "KICH"])
    assert len(table) == 537 and not report.dropped
    dead = table.loc["TCGA-B0-4706"]  # dead, days_to_death 65.0, follow-up 26.0, "stage iii"
    assert dead.event == 1 and dead.time_months == pytest.approx(_months(65))
    assert dead.stage == "Stage III" and dead.t_stage is None
    assert dead.diagnosis == "clear cell adenocarcinoma" and dead.subtype_class == 1
    assert dead.age == pytest.approx(22331 / 365.25) and dead.sex == "male" and dead.project == "KIRC"
    alive = table.loc["TCGA-A3-A6NI"]  # alive, follow-up 1018.0, "Renal cell carcinoma, NOS" -> clear cell
    assert alive.event == 0 and alive.time_months == pytest.approx(_months(1018))
    assert alive.diagnosis == "renal cell carcinoma" and alive.subtype == "clear cell renal cell carcinoma"
    assert table.loc["TCGA-BP-4798"].stage is None  # "not reported"
    assert table.loc["TCGA-BP-4798"].time_months == pytest.approx(_months(334))


def test_gdc_classic_lusc(real_data):
    path = real_data / "gdc_clinical_lusc" / "clinical.tsv"
    assert detect_format(path).name == "gdc_classic"
    table, report = _cohort([path], "NSCLC", ["LUAD", "LUSC"])
    # 504 cases with 2 rows each; 6 have neither days to death nor follow-up (5 dead, 1 alive)
    assert len(table) == 498
    assert sorted(report.dropped["no days to death or last follow-up"]) == [
        "TCGA-56-6546", "TCGA-63-5128", "TCGA-63-5131", "TCGA-63-A5MU", "TCGA-6A-AB49", "TCGA-79-5596",
    ]  # fmt: skip
    assert not report.contradictions
    p = table.loc["TCGA-85-A4JC"]  # Dead, days_to_death 604, follow-up 455
    assert (p.event, p.stage, p.t_stage, p.n_stage, p.m_stage) == (1, "Stage IIA", "T2b", "N0", "M0")
    assert p.time_months == pytest.approx(_months(604)) and p.age == 84
    assert p.diagnosis == "squamous cell carcinoma" and p.subtype == "lung squamous cell carcinoma"
    p = table.loc["TCGA-18-3409"]  # Alive, follow-up 3747, basaloid: rare set
    assert p.event == 0 and p.time_months == pytest.approx(_months(3747))
    assert p.diagnosis == "basaloid squamous cell carcinoma" and (p.subtype, p.subtype_class) == ("", -1)
    assert table.loc["TCGA-33-AAS8"].m_stage == "MX"
    assert table.loc["TCGA-22-5473"].stage is None and table.loc["TCGA-22-5473"].event == 1  # stage '--
    assert (table["subtype_class"] == 1).sum() == 498 - table["diagnosis"].str.contains(
        "basaloid|papillary|small"
    ).sum()


def test_xena_clinical_matrix_luad(real_data):
    path = real_data / "xena_luad_clinical" / "TCGA.LUAD.sampleMap" / "LUAD_clinicalMatrix.gz"
    assert detect_format(path).name == "xena_clinical_matrix"
    table, report = _cohort([path], "NSCLC", ["LUAD", "LUSC"])
    assert set(table["project"]) == {"LUAD"}  # from _cohort "TCGA Lung Adenocarcinoma (LUAD)"
    assert len(report.dropped["no vital status"]) == 64  # sample rows without any clinical data
    p = table.loc["TCGA-05-4250"]  # DECEASED, days_to_death 121
    assert (p.event, p.stage, p.t_stage, p.n_stage, p.m_stage) == (1, "Stage IIIA", "T3", "N1", "M0")
    assert p.time_months == pytest.approx(_months(121)) and p.sex == "female" and p.age == 79
    assert p.diagnosis == "lung adenocarcinoma- not otherwise specified (nos)" and p.subtype_class == 0
    p = table.loc["TCGA-05-4382"]  # LIVING, follow-up 607, mixed subtype
    assert (
        p.event == 0 and p.time_months == pytest.approx(_months(607)) and p.subtype == "lung adenocarcinoma"
    )
    p = table.loc["TCGA-44-2655"]  # a tumour (-01) and a normal (-11) sample row: one patient
    assert p.event == 0 and p.time_months == pytest.approx(_months(1324)) and p.stage == "Stage IA"


def test_survpath_labels_and_clinical(real_data):
    root = real_data / "survpath" / "datasets_csv"
    labels, clinical = root / "metadata" / "tcga_brca.csv", root / "clinical_data" / "tcga_brca_clinical.csv"
    assert detect_format(labels).name == "survpath_labels"
    assert detect_format(clinical).name == "survpath_clinical"
    table, _ = _cohort([labels, clinical], "BRCA", ["BRCA"], slides=[])
    assert table.empty  # no slide given: every patient is set aside
    table, report = _cohort([labels, clinical], "BRCA", ["BRCA"])
    p = table.loc["TCGA-3C-AALI"]  # 133.5 SurvPath months (days / 30), censorship 1, two slides, stage II
    assert p.event == 0 and p.time_months == pytest.approx(131.57, abs=0.005)  # data-formats.md table
    assert (p.stage, p.diagnosis, p.subtype_class, p.sex, p.age) == ("Stage II", "idc", 0, "female", 50)
    assert (
        "TCGA-3C-AAAU" in report.dropped["no vital status"]
    )  # stage 0 in clinical_data, not in the label file
    # clinical_data has more cases than the label file; those lack survival and are reported
    assert len(table) == 871 and len(report.dropped["no vital status"]) == 1101 - 871


@pytest.mark.parametrize("study", ["blca", "brca", "coadread", "hnsc", "stad", "gbmlgg"])
def test_every_survpath_table_parses(real_data, study):
    root = real_data / "survpath" / "datasets_csv"
    paths = [root / "clinical_data" / f"tcga_{study}_clinical.csv"]
    if study != "gbmlgg":
        paths.append(root / "metadata" / f"tcga_{study}.csv")
    records, sources = read_records(paths)
    assert records["patient"].notna().all() and (sources["patients"] > 250).all()


def test_survpath_blca_metadata(real_data):
    root = real_data / "survpath" / "datasets_csv"
    records, _ = read_records(
        [root / "metadata" / "tcga_blca.csv", root / "clinical_data" / "tcga_blca_clinical.csv"]
    )
    labelled = records.loc[records["event"].notna(), "patient"].unique()
    assert len(labelled) == 359  # 423 slides
    table, _ = _cohort([root / "metadata" / "tcga_blca.csv", root / "clinical_data" / "tcga_blca_clinical.csv"],
                       "BLCA", ["BLCA"])  # fmt: skip
    p = table.loc["TCGA-2F-A9KO"]  # 24.4667 months x 30 = 734 days, censorship 0 -> died; stage III
    assert p.event == 1 and p.time_months == pytest.approx(_months(734)) and p.stage == "Stage III"
    assert (p.age, p.sex, p.diagnosis) == (63, "male", "blca")
    p = table.loc["TCGA-G2-AA3F"]  # 9 slides of one patient, censorship 1
    assert p.event == 0 and p.time_months == pytest.approx(_months(29.766666666666666 * 30))


def test_gbmlgg_subtypes(real_data):
    path = real_data / "survpath" / "datasets_csv" / "clinical_data" / "tcga_gbmlgg_clinical.csv"
    records, _ = read_records([path])
    assert records["patient"].nunique() == 1122  # 1,149 rows, some cases listed twice
    groups = SUBTYPES["GBMLGG"]
    from modaltune.cohort.subtypes import assign_subtype

    assert assign_subtype("gbm", None, groups) == ("glioblastoma", 0)
    assert assign_subtype("aoast", None, groups) == ("lower-grade glioma", 1)
    assert assign_subtype("difg", None, groups) == ("", -1)


# ------------------------------------------------------------------------------------- synthetic formats


def _write_tsv(path, rows, comment_lines=()):
    text = "".join(f"{line}\n" for line in comment_lines)
    columns = list(rows[0])
    text += "\t".join(columns) + "\n" + "".join("\t".join(str(r[c]) for c in columns) + "\n" for r in rows)
    path.write_text(text)
    return path


def _dotted_row(case, primary, diagnosis, stage, treatment, vital="Dead", death="300", follow="'--"):
    return {
        "project.project_id": "TCGA-LUSC", "cases.case_id": f"uuid-{case}", "cases.submitter_id": case,
        "demographic.vital_status": vital, "demographic.days_to_death": death, "demographic.age_at_index": "61",
        "demographic.gender": "female", "diagnoses.diagnosis_is_primary_disease": primary,
        "diagnoses.primary_diagnosis": diagnosis, "diagnoses.ajcc_pathologic_stage": stage,
        "diagnoses.ajcc_pathologic_t": "T2a" if primary == "true" else "T4", "diagnoses.ajcc_pathologic_n": "N1",
        "diagnoses.ajcc_pathologic_m": "M0", "diagnoses.days_to_last_follow_up": follow,
        "treatments.treatment_type": treatment,
    }  # fmt: skip


def test_gdc_dotted_chooses_primary_diagnosis(tmp_path):
    rows = [
        _dotted_row(
            "TCGA-AA-0001", "false", "Adenocarcinoma, NOS", "Stage IV", "Radiation Therapy, NOS", follow="40"
        ),
        _dotted_row(
            "TCGA-AA-0001", "false", "Adenocarcinoma, NOS", "Stage IV", "Pharmaceutical Therapy, NOS"
        ),
        _dotted_row(
            "TCGA-AA-0001", "true", "Squamous cell carcinoma, NOS", "Stage IB", "Radiation Therapy, NOS"
        ),
        _dotted_row(
            "TCGA-AA-0001", "true", "Squamous cell carcinoma, NOS", "Stage IB", "Pharmaceutical Therapy, NOS"
        ),
        _dotted_row(
            "TCGA-AA-0002",
            "true",
            "Adenocarcinoma, NOS",
            "'--",
            "'--",
            vital="Alive",
            death="'--",
            follow="812",
        ),
    ]
    path = _write_tsv(tmp_path / "clinical.tsv", rows)
    assert detect_format(path).name == "gdc_dotted"
    table, report = _cohort([path], "NSCLC", ["LUAD", "LUSC"])
    first = table.loc["TCGA-AA-0001"]
    assert (first.diagnosis, first.stage, first.t_stage, first.subtype_class) == (
        "squamous cell carcinoma",
        "Stage IB",
        "T2a",
        1,
    )
    assert first.event == 1 and first.time_months == pytest.approx(_months(300)) and first.age == 61
    second = table.loc["TCGA-AA-0002"]
    assert second.event == 0 and second.time_months == pytest.approx(_months(812)) and second.stage is None
    assert not report.contradictions


def test_cbioportal_patient_table(tmp_path):
    header = ["#Patient Identifier\tDiagnosis\tStage\tT\tStatus\tMonths\tAcronym\tAge\tSex"] * 4
    rows = [
        {"PATIENT_ID": "TCGA-3C-AALI", "CANCER_TYPE_DETAILED": "Breast Invasive Ductal Carcinoma",
         "AJCC_PATHOLOGIC_TUMOR_STAGE": "STAGE IIB", "PATH_T_STAGE": "T2", "OS_STATUS": "0:LIVING",
         "OS_MONTHS": "131.67", "CANCER_TYPE_ACRONYM": "BRCA", "AGE": "50", "SEX": "Female"},
        {"PATIENT_ID": "TCGA-3C-AALJ", "CANCER_TYPE_DETAILED": "Breast Invasive Lobular Carcinoma",
         "AJCC_PATHOLOGIC_TUMOR_STAGE": "[Not Available]", "PATH_T_STAGE": "T1c", "OS_STATUS": "1:DECEASED",
         "OS_MONTHS": "10.00", "CANCER_TYPE_ACRONYM": "BRCA", "AGE": "62", "SEX": "Female"},
    ]  # fmt: skip
    path = _write_tsv(tmp_path / "data_clinical_patient.txt", rows, header)
    assert detect_format(path).name == "cbioportal_patient"
    table, _ = _cohort([path], "BRCA", ["BRCA"])
    alive = table.loc[
        "TCGA-3C-AALI"
    ]  # OS_MONTHS is carried exactly (not to days with 30.417 and back with 30.44)
    assert alive.event == 0 and alive.time_months == 131.67
    assert (alive.stage, alive.t_stage, alive.sex, alive.diagnosis) == (
        "Stage IIB",
        "T2",
        "female",
        "breast invasive ductal carcinoma",
    )
    dead = table.loc["TCGA-3C-AALJ"]
    assert dead.event == 1 and dead.time_months == 10.0 and dead.stage is None


def _os_months(path):
    """OS_MONTHS and OS_STATUS per patient, read with pandas alone: the reference for the cBioPortal reader."""
    table = pd.read_csv(path, sep="\t", comment="#", dtype=str).set_index("PATIENT_ID")
    return table["OS_MONTHS"].astype(float), table["OS_STATUS"].str.startswith("1:").astype(int)


def _paad_subtypes(tmp_path):
    user = tmp_path / "subtypes.yaml"
    user.write_text("PAAD:\n  - name: ductal\n    diagnoses: [PAAD, pancreatic adenocarcinoma]\n"
                    "  - name: neuroendocrine\n    diagnoses: [PANET, pancreatic neuroendocrine tumor]\n")  # fmt: skip
    return load_subtype_table(user)["PAAD"]


@pytest.mark.parametrize("sample_first", [False, True])
def test_cbioportal_patient_and_sample_tables(real_data, tmp_path, sample_first):
    """The real TCGA-PAAD study: survival from the patient table, the diagnosis from the sample table (joined on
    PATIENT_ID, in either file order), OS_MONTHS carried exactly."""
    folder = real_data / "cbioportal_paad"
    patients, samples = folder / "data_clinical_patient.txt", folder / "data_clinical_sample.txt"
    assert detect_format(patients).name == "cbioportal_patient"
    assert detect_format(samples).name == "cbioportal_sample"
    records, _ = read_records([samples, patients] if sample_first else [patients, samples])
    slides = [f"{p}-01Z-00-DX1" for p in records["patient"].unique()]
    table, report = harmonise(records, "PAAD", ["PAAD"], _paad_subtypes(tmp_path), slides, [])
    table = table.set_index("patient")
    assert len(table) == 185 and not report.losses() and not report.contradictions
    assert table["diagnosis"].value_counts().to_dict() == {
        "pancreatic adenocarcinoma": 176, "pancreatic neuroendocrine tumor": 8,
        "undifferentiated carcinoma of the pancreas": 1,
    }  # fmt: skip
    assert table["subtype_class"].value_counts().to_dict() == {0: 176, 1: 8, -1: 1}
    # TCGA-HZ-A9TJ has a primary tumour (-01, PAAD) and a metastasis (-06, "Pancreas"): the primary one counts
    assert table.loc["TCGA-HZ-A9TJ"].diagnosis == "pancreatic adenocarcinoma"
    months, events = _os_months(patients)
    assert (table["time_months"] == months.loc[table.index]).all()  # exactly, not to 0.2 months
    assert (table["event"] == events.loc[table.index]).all() and table["event"].sum() == 100
    first = table.loc["TCGA-2J-AAB1"]  # 1:DECEASED, 2.17 months, Stage IIB, T3 N1 M0, 65, male
    assert (first.time_months, first.stage, first.t_stage, first.n_stage, first.m_stage) == (
        2.17,
        "Stage IIB",
        "T3",
        "N1",
        "M0",
    )
    assert (first.age, first.sex, first.project) == (65, "male", "PAAD")


def test_cbioportal_patient_table_alone_keeps_its_own_diagnosis_column(real_data, tmp_path):
    records, _ = read_records([real_data / "cbioportal_paad" / "data_clinical_patient.txt"])
    diagnoses = records.set_index("patient")["diagnosis"]
    assert diagnoses.loc["TCGA-2J-AAB6"] == "Pancreas-Adenocarcinoma Ductal Type"  # HISTOLOGICAL_DIAGNOSIS


def _cbioportal_pair(tmp_path, with_samples=True):
    """A BRCA study like brca_tcga_pan_can_atlas_2018: the patient table has no diagnosis column."""
    header = ["#Patient Identifier\tStatus\tMonths\tAcronym"] * 4
    patients = [
        {"PATIENT_ID": f"TCGA-A2-{i:04d}", "OS_STATUS": "1:DECEASED" if i % 4 == 0 else "0:LIVING",
         "OS_MONTHS": f"{3.1 * i + 0.07:.2f}", "CANCER_TYPE_ACRONYM": "BRCA"}
        for i in range(12)
    ]  # fmt: skip
    paths = [_write_tsv(tmp_path / "data_clinical_patient.txt", patients, header)]
    if with_samples:
        samples = [
            {"PATIENT_ID": p["PATIENT_ID"], "SAMPLE_ID": f"{p['PATIENT_ID']}-01", "ONCOTREE_CODE": code,
             "CANCER_TYPE_DETAILED": detailed}
            for i, p in enumerate(patients)
            for code, detailed in [("ILC", "Breast Invasive Lobular Carcinoma") if i % 3 == 0
                                   else ("IDC", "Breast Invasive Ductal Carcinoma")]
        ]  # fmt: skip
        samples[5]["CANCER_TYPE_DETAILED"] = "NA"  # the OncoTree code is the diagnosis then
        paths.append(_write_tsv(tmp_path / "data_clinical_sample.txt", samples, header))
    return paths


def test_cbioportal_oncotree_types_map_to_the_subtype_groups(tmp_path):
    slides = [f"TCGA-A2-{i:04d}-01Z-00-DX1" for i in range(12)]
    result = build_site_cohort("BRCA", ["BRCA"], _cbioportal_pair(tmp_path), slides, [s[:12] for s in slides])
    cohort = result.cohort.set_index("patient")
    assert (cohort["subtype_class"] == [1 if i % 3 == 0 else 0 for i in range(12)]).all()
    assert cohort.loc["TCGA-A2-0005"].diagnosis == "idc" and cohort.loc["TCGA-A2-0005"].subtype_class == 0
    assert cohort.loc["TCGA-A2-0003"].diagnosis == "breast invasive lobular carcinoma"
    assert cohort.loc["TCGA-A2-0011"].time_months == 34.17


@pytest.mark.parametrize("sample_type_column", [True, False])
def test_cbioportal_sample_table_prefers_a_diagnosed_primary_tumour(tmp_path, sample_type_column):
    """A metastasis listed before the primary tumour does not give the diagnosis; a primary tumour without one
    does not hide a diagnosed metastasis. Without SAMPLE_TYPE the TCGA sample-type code (-01, -06) decides."""
    rows = [
        ("TCGA-A2-0001", "06", "Metastasis", "ILC", "Breast Invasive Lobular Carcinoma"),
        ("TCGA-A2-0001", "01", "Primary", "IDC", "Breast Invasive Ductal Carcinoma"),
        ("TCGA-A2-0002", "01", "Primary", "NA", "NA"),
        ("TCGA-A2-0002", "06", "Metastasis", "ILC", "Breast Invasive Lobular Carcinoma"),
    ]
    samples = [
        {"PATIENT_ID": patient, "SAMPLE_ID": f"{patient}-{code}", "SAMPLE_TYPE": kind, "ONCOTREE_CODE": oncotree,
         "CANCER_TYPE_DETAILED": detailed}
        for patient, code, kind, oncotree, detailed in rows
    ]  # fmt: skip
    if not sample_type_column:
        for sample in samples:
            del sample["SAMPLE_TYPE"]
    path = _write_tsv(tmp_path / "data_clinical_sample.txt", samples, ["#Patient\tSample"] * 4)
    records = read_clinical(path).set_index("patient")
    assert records["diagnosis"].to_dict() == {
        "TCGA-A2-0001": "Breast Invasive Ductal Carcinoma",
        "TCGA-A2-0002": "Breast Invasive Lobular Carcinoma",
    }


def test_a_cbioportal_patient_table_without_its_sample_table_is_a_named_error(tmp_path):
    slides = [f"TCGA-A2-{i:04d}-01Z-00-DX1" for i in range(12)]
    with pytest.raises(CohortError) as error:
        build_site_cohort("BRCA", ["BRCA"], _cbioportal_pair(tmp_path, with_samples=False), slides, [])
    assert (
        "12 of 12 clinical patients have no diagnosis: a cBioPortal patient table needs its sample table "
        "(add the study's data_clinical_sample.txt to sites.BRCA.clinical)"
    ) in str(error.value)
    assert error.value.result.report.dropped["no diagnosis"] == [s[:12] for s in slides]


def test_oncotree_codes_and_names_share_a_subtype_group(real_data):
    """Every OncoTree code in modaltune/data/subtypes.yaml has its OncoTree name (release 2021_11_02, the
    CANCER_TYPE_DETAILED of cBioPortal) in the same group, so a study gives one subtype whichever it states."""
    tree = json.loads((real_data / "oncotree" / "oncotree_2021_11_02.json").read_text())
    names, stack = {}, [tree["TISSUE"]]
    while stack:
        node = stack.pop()
        names[node["code"].lower()] = node["name"].lower()
        stack.extend(node["children"].values())
    checked = 0
    for site, groups in SUBTYPES.items():
        for group in groups:
            for code in group.diagnoses & set(names):
                assert names[code] in group.diagnoses, (site, group.name, code, names[code])
                checked += 1
    assert checked >= 16  # IDC ILC, GBM + 6 glioma codes, LUAD LUSC, PRCC CCRCC CHRCC, COAD READ


def test_unknown_format_lists_recognised_formats(tmp_path):
    path = tmp_path / "mystery.tsv"
    path.write_text("patient\tos_days\nTCGA-AA-0001\t30\n")
    with pytest.raises(ClinicalFormatError) as error:
        detect_format(path)
    message = str(error.value)
    assert str(path) in message
    for name in ("gdc_2019", "gdc_classic", "gdc_dotted", "xena_clinical_matrix", "cbioportal_patient"):
        assert name in message


def test_stage_normalisation():
    assert normalise_stage("stage iiia") == "Stage IIIA"
    assert normalise_stage("STAGE IV") == "Stage IV"
    assert normalise_stage("II") == "Stage II"
    assert normalise_stage("0") == "Stage 0"
    assert normalise_stage("Stage IB") == "Stage IB"
    assert normalise_stage(None) is None


# ------------------------------------------------------------------------- harmonising rules and report


def _classic_row(
    case, vital="Alive", death="'--", follow="100", diagnosis="Adenocarcinoma, NOS", project="TCGA-LUAD"
):
    return {
        "case_id": f"uuid-{case}", "case_submitter_id": case, "project_id": project, "age_at_index": "60",
        "age_at_diagnosis": "'--", "gender": "male", "vital_status": vital, "days_to_death": death,
        "days_to_last_follow_up": follow, "primary_diagnosis": diagnosis, "ajcc_pathologic_stage": "Stage IA",
        "ajcc_pathologic_t": "T1", "ajcc_pathologic_n": "N0", "ajcc_pathologic_m": "M0",
    }  # fmt: skip


def test_contradictory_rows_are_reported_and_resolved(tmp_path):
    rows = [
        _classic_row("TCGA-AA-0001", vital="Dead", death="500", follow="20"),
        _classic_row("TCGA-AA-0001", vital="Dead", death="420", follow="60"),
        _classic_row("TCGA-AA-0002", vital="Alive", follow="900"),
        _classic_row("TCGA-AA-0002", vital="Dead", death="950", follow="900"),
        _classic_row("TCGA-AA-0003", vital="Dead", death="'--", follow="77"),
        _classic_row("TCGA-AA-0004", project="TCGA-BRCA"),
        _classic_row("TCGA-AA-0005", vital="Alive", follow="-31"),
    ]
    path = _write_tsv(tmp_path / "clinical.tsv", rows)
    table, report = _cohort([path], "NSCLC", ["LUAD", "LUSC"])
    assert table.loc["TCGA-AA-0005"].time_months == pytest.approx(_months(31))
    assert report.corrections == {  # upstream's silent corrections, listed
        DEAD_WITHOUT_DEATH_DATE: ["TCGA-AA-0003"],
        NEGATIVE_TIME: ["TCGA-AA-0005"],
    }
    text = render_report(
        report, pd.DataFrame(columns=["source", "format", "records", "patients"]), table, None
    )
    assert f"**{DEAD_WITHOUT_DEATH_DATE}**: 1\n\n`TCGA-AA-0003`" in text
    assert f"**{NEGATIVE_TIME}**: 1\n\n`TCGA-AA-0005`" in text
    assert table.loc["TCGA-AA-0001"].time_months == pytest.approx(_months(420))  # the earliest death date
    assert table.loc["TCGA-AA-0002"].event == 1 and table.loc["TCGA-AA-0002"].time_months == pytest.approx(
        _months(950)
    )
    assert table.loc["TCGA-AA-0003"].event == 1 and table.loc["TCGA-AA-0003"].time_months == pytest.approx(
        _months(77)
    )
    assert "TCGA-AA-0004" not in table.index and report.other_projects == {"BRCA": 1}
    found = {(c.patient, c.field) for c in report.contradictions}
    assert found == {("TCGA-AA-0001", "months to death"), ("TCGA-AA-0002", "vital status")}


def _synthetic_site(tmp_path, n=60):
    """n patients alternating adenocarcinoma / squamous, plus two rare-set ones; slide, RNA and clinical sets that
    overlap only partly, so every kind of identifier mismatch occurs."""
    patients = [f"TCGA-AA-{i:04d}" for i in range(n)]
    rows = [
        _classic_row(p, vital="Dead" if i % 3 == 0 else "Alive", death=str(100 + i), follow=str(200 + i),
                     diagnosis="Squamous cell carcinoma, NOS" if i % 2 else "Adenocarcinoma, NOS",
                     project="TCGA-LUSC" if i % 2 else "TCGA-LUAD")
        for i, p in enumerate(patients)
    ]  # fmt: skip
    rows[0]["primary_diagnosis"] = rows[1]["primary_diagnosis"] = "Basaloid squamous cell carcinoma"
    clinical = _write_tsv(tmp_path / "clinical.tsv", rows)
    slides = [f"{p}-01Z-00-DX1.UUID" for p in patients[:-1]] + [
        f"{patients[5]}-01Z-00-DX2",
        "TCGA-ZZ-9999-01Z-00-DX1",
    ]
    rna = patients[:-4] + ["TCGA-YY-8888"]
    omics = tmp_path / "omics.parquet"
    write_parquet(pd.DataFrame({"patient": rna, "TP53": np.zeros(len(rna), dtype="float32")}), omics)
    return clinical, slides, omics, patients


def test_cli_writes_cohort_splits_and_mismatch_report(tmp_path):
    clinical, slides, omics, patients = _synthetic_site(tmp_path)
    params = {
        "seeds": [0, 1],
        "val_fraction": 0.12,
        "test_fraction": 0.2,
        "subtypes_file": None,
        "days_per_month": 30.44,
    }
    out = tmp_path / "cohort"
    main(["cohort", "--site", "NSCLC", "--projects", "LUAD", "LUSC", "--clinical", str(clinical),
          "--omics", str(omics), "--slides", *slides, "--params", json.dumps(params),
          "--output", str(out / "NSCLC.parquet"), "--splits", str(out / "NSCLC_splits.parquet"),
          "--report", str(out / "NSCLC_report.md")])  # fmt: skip
    cohort, metadata = read_parquet(out / "NSCLC.parquet")
    assert list(cohort.columns) == [
        "patient", "site", "project", "diagnosis", "subtype", "subtype_class", "time_months", "event", "stage",
        "t_stage", "n_stage", "m_stage", "age", "sex", "radiation_therapy", "pharmaceutical_therapy", "er_status",
        "pr_status", "her2_status", "slides", "has_rna",
    ]  # fmt: skip
    assert metadata["site"] == "NSCLC" and len(cohort) == len(patients) - 1
    row = cohort.set_index("patient").loc[patients[5]]
    assert list(row.slides) == [f"{patients[5]}-01Z-00-DX1.UUID", f"{patients[5]}-01Z-00-DX2"]
    assert set(cohort.loc[~cohort["has_rna"], "patient"]) == set(patients[-4:-1])
    assert cohort["event"].dtype == np.int64 and cohort["subtype_class"].dtype == np.int64

    report = (out / "NSCLC_report.md").read_text()
    mismatch = report.split("## Identifier mismatches")[1].split("## Patients dropped")[0]
    assert f"Clinical patients without any slide (not in the cohort)**: 1\n\n`{patients[-1]}`" in mismatch
    assert (
        "Slides whose patient has no clinical record (not used)**: 1\n\n`TCGA-ZZ-9999-01Z-00-DX1`" in mismatch
    )
    assert "RNA patients without a clinical record (not used)**: 1\n\n`TCGA-YY-8888`" in mismatch
    assert "Cohort patients without RNA (train split only)**: 3" in mismatch

    splits, _ = read_parquet(out / "NSCLC_splits.parquet")
    assert set(splits["seed"]) == {0, 1}
    by_seed = [splits[splits["seed"] == seed].set_index("patient")["split"].sort_index() for seed in (0, 1)]
    pd.testing.assert_series_equal(by_seed[0], by_seed[1])  # cohort.split_per_seed defaults to false
    assert "One split (cohort.split_seed 0) shared by seeds 0, 1." in report
    train_only = set(patients[:2]) | set(patients[-4:-1])  # rare set + no RNA
    assert set(splits.loc[splits["patient"].isin(train_only), "split"]) == {"train"}


def _cohort_cli(tmp_path, clinical, slides, omics, projects=("LUAD", "LUSC"), status=()):
    params = {
        "seeds": [0],
        "val_fraction": 0.12,
        "test_fraction": 0.2,
        "subtypes_file": None,
        "days_per_month": 30.44,
    }
    out = tmp_path / "cohort"
    code = main(["cohort", "--site", "NSCLC", "--projects", *projects, "--clinical", str(clinical),
                 "--omics", str(omics), "--slides", *slides, "--slide-status", *map(str, status),
                 "--params", json.dumps(params), "--output", str(out / "NSCLC.parquet"),
                 "--splits", str(out / "NSCLC_splits.parquet"), "--report", str(out / "NSCLC_report.md")])  # fmt: skip
    return code, out


def test_a_wrong_project_fails_naming_it_after_writing_the_report(tmp_path, capsys):
    clinical, slides, omics, patients = _synthetic_site(tmp_path)
    code, out = _cohort_cli(tmp_path, clinical, slides, omics, projects=["HOLD"])
    assert code == 1
    message = "60 of 60 clinical patients dropped: project LUAD, LUSC are not in sites.NSCLC.projects [HOLD]"
    error = capsys.readouterr().err
    assert message in error.splitlines()[-1] and "error: site NSCLC: no patient left" in error
    report = (out / "NSCLC_report.md").read_text()  # written before failing, and printed into the log
    assert message in report and "## Error: the cohort was not built" in report and report in error
    assert not (out / "NSCLC.parquet").exists() and not (out / "NSCLC_splits.parquet").exists()
    # GDC writes projects as TCGA-LUAD: the config may too
    assert _cohort_cli(tmp_path, clinical, slides, omics, projects=["TCGA-LUAD", "TCGA-LUSC"])[0] == 0


def test_slide_and_rna_identifier_mismatches_are_named_errors(tmp_path):
    clinical, slides, omics, patients = _synthetic_site(tmp_path)
    other_slides = [f"TCGA-BB-{i:04d}-01Z-00-DX1" for i in range(60)]
    with pytest.raises(CohortError) as error:
        build_site_cohort("NSCLC", ["LUAD", "LUSC"], [clinical], other_slides, patients)
    assert (
        "60 of 60 clinical patients have no slide: no slide file name starts with their 12-character barcode "
        "(clinical patients e.g. TCGA-AA-0000, TCGA-AA-0001; slides e.g. TCGA-BB-0000-01Z-00-DX1, "
        "TCGA-BB-0001-01Z-00-DX1); check sites.NSCLC.slides and sites.NSCLC.slide_glob"
    ) in str(error.value)
    with pytest.raises(CohortError) as error:  # RNA sample ids of another naming scheme
        build_site_cohort(
            "NSCLC", ["LUAD", "LUSC"], [clinical], slides, [p.replace("TCGA", "tcga_") for p in patients]
        )
    assert (
        "none of the 59 cohort patients has RNA: the 60 patients of the omics table (e.g. tcga_-AA-0000"
        in str(error.value)
    )
    assert "check sites.NSCLC.rna" in str(error.value)
    # a dominant reason with others: 40 patients lack slides, 20 are of another project
    rows = [
        _classic_row(f"TCGA-AA-{i:04d}", project="TCGA-BRCA" if i < 20 else "TCGA-LUAD") for i in range(60)
    ]
    path = _write_tsv(tmp_path / "mixed.tsv", rows)
    with pytest.raises(
        CohortError, match=r"40 of 60 clinical patients have no slide: .*; also dropped: 20 other project$"
    ):
        build_site_cohort("NSCLC", ["LUAD", "LUSC"], [path], other_slides, [])


def _status(folder, slide, status, n_tiles, reason=""):
    path = folder / f"{slide}.json"
    path.write_text(json.dumps({"slide": slide, "path": f"/slides/{slide}.svs", "status": status,
                                "n_tiles": n_tiles, "reason": reason}))  # fmt: skip
    return path


def test_patients_without_usable_slides_leave_cohort_and_splits(tmp_path):
    """Tiling status: a patient whose only slide failed, one whose only slide has no tissue, and one with a usable
    and a blank slide. The first two are not in the cohort nor in any split; the third keeps its usable slide."""
    clinical, slides, omics, patients = _synthetic_site(tmp_path)
    folder = tmp_path / "status"
    folder.mkdir()
    failed, blank = f"{patients[10]}-01Z-00-DX1.UUID", f"{patients[11]}-01Z-00-DX1.UUID"
    second = f"{patients[5]}-01Z-00-DX2"
    reasons = {failed: ("failed", 0, "no MPP in /slides/x.svs"), blank: ("no_tissue", 0, "no tile reaches 0.5"),
               second: ("no_tissue", 0, "")}  # fmt: skip
    status = [_status(folder, slide, *reasons.get(slide, ("ok", 40))) for slide in slides]
    code, out = _cohort_cli(tmp_path, clinical, slides, omics, status=status)
    assert code == 0
    cohort, _ = read_parquet(out / "NSCLC.parquet")
    splits, _ = read_parquet(out / "NSCLC_splits.parquet")
    assert not {patients[10], patients[11]} & (set(cohort["patient"]) | set(splits["patient"]))
    assert len(cohort) == len(patients) - 3 and set(splits["patient"]) == set(cohort["patient"])
    assert list(cohort.set_index("patient").loc[patients[5], "slides"]) == [f"{patients[5]}-01Z-00-DX1.UUID"]
    report = (out / "NSCLC_report.md").read_text()
    assert (
        "**Patients whose every slide is unusable (not in the cohort, not in the splits)**: 2\n\n"
        f"`{patients[10]}`, `{patients[11]}`"
    ) in report
    assert f"| {failed} | tiling failed: no MPP in /slides/x.svs |" in report
    assert f"| {blank} | no tissue: no tile reaches 0.5 |" in report and f"| {second} | no tissue |" in report
    # every slide of every patient unusable: the error says so
    status = [_status(folder, slide, "no_tissue", 0) for slide in slides]
    with pytest.raises(CohortError, match="59 of 60 clinical patients have slides, but every one failed tiling or "
                                          "has no tissue"):  # fmt: skip
        build_site_cohort("NSCLC", ["LUAD", "LUSC"], [clinical], slides, patients,
                          unusable=unusable_slides(status))  # fmt: skip


def test_unknown_site_needs_a_subtype_entry(tmp_path):
    clinical, slides, omics, _ = _synthetic_site(tmp_path)
    with pytest.raises(KeyError, match="cohort.subtypes_file"):
        build_site_cohort("LUNG", ["LUAD"], [clinical], slides, [])
    user = tmp_path / "subtypes.yaml"
    user.write_text("LUNG:\n  - name: adeno\n    diagnoses: [Adenocarcinoma, NOS]\n  - name: squamous\n"
                    "    diagnoses: [squamous cell carcinoma]\n")  # fmt: skip
    result = build_site_cohort("LUNG", ["LUAD", "LUSC"], [clinical], slides, [f"TCGA-AA-{i:04d}" for i in range(60)],
                               subtypes_file=user)  # fmt: skip
    assert set(result.cohort["subtype"]) == {"adeno", "squamous", ""}
    assert "NSCLC" in load_subtype_table(user)  # the shipped sites stay


# ----------------------------------------------------------------------------------------------- splits


def _split_candidates(n0=150, n1=100, rare=20, no_rna=12):
    rng = np.random.default_rng(5)
    classes = [0] * n0 + [1] * n1 + [-1] * rare + list(rng.integers(0, 2, no_rna))
    has_rna = [True] * (n0 + n1 + rare) + [False] * no_rna
    patients = [f"TCGA-AB-{i:04d}" for i in rng.permutation(len(classes))]
    return pd.DataFrame({"patient": patients, "site": "X", "subtype_class": classes, "has_rna": has_rna})


def test_splits_proportions_stratification_disjoint():
    cohort = _split_candidates()
    splits = make_splits(cohort, seeds=[0, 1, 2], split_seed=None)  # a new split per seed
    candidates = cohort[cohort["has_rna"] & (cohort["subtype_class"] >= 0)]
    labelled = splits.merge(cohort, on="patient")
    for seed, per_seed in labelled.groupby("seed"):
        assert per_seed["patient"].is_unique and set(per_seed["patient"]) == set(cohort["patient"])
        among = per_seed[per_seed["patient"].isin(candidates["patient"])]
        fractions = among["split"].value_counts(normalize=True)
        assert fractions["train"] == pytest.approx(0.68, abs=0.01)
        assert fractions["val"] == pytest.approx(0.12, abs=0.01)
        assert fractions["test"] == pytest.approx(0.20, abs=0.01)
        for split in ("train", "val", "test"):  # class ratio 150:100 kept in every split
            share = (among.loc[among["split"] == split, "subtype_class"] == 0).mean()
            assert share == pytest.approx(0.6, abs=0.04), (seed, split)
        outside = per_seed[~per_seed["patient"].isin(candidates["patient"])]
        assert len(outside) == 32 and set(outside["split"]) == {"train"}
    tests = [set(labelled.query("seed == @s and split == 'test'")["patient"]) for s in (0, 1, 2)]
    assert tests[0] != tests[1] != tests[2]


def test_seeds_share_one_split_by_default_and_per_seed_splits_stay_an_option():
    cohort = _split_candidates()
    shared = make_splits(cohort, seeds=[0, 1, 2])
    per_seed = make_splits(cohort, seeds=[0, 1, 2], split_seed=None)
    other = make_splits(cohort, seeds=[0, 1, 2], split_seed=7)

    def assignment(table, seed):
        return table[table["seed"] == seed].set_index("patient")["split"].sort_index()

    for seed in (1, 2):
        pd.testing.assert_series_equal(assignment(shared, seed), assignment(shared, 0))
        assert not assignment(per_seed, seed).equals(assignment(per_seed, 0))
    # the shared split is the one a per-seed run draws for seed == split_seed
    pd.testing.assert_series_equal(assignment(shared, 0), assignment(per_seed, 0))
    pd.testing.assert_series_equal(assignment(other, 2), assignment(make_splits(cohort, [7], split_seed=None), 7))
    assert not assignment(other, 0).equals(assignment(shared, 0))

    plan = SplitPlan.from_config(validate({"cohort": {"seeds": [3, 4]}})["cohort"])
    assert (plan.split_seed, plan.per_seed, plan.release) == (0, False, None)
    result = split_site(cohort, plan)
    assert set(result.table["seed"]) == {3, 4} and "shared by seeds 3, 4" in result.source
    pd.testing.assert_series_equal(assignment(result.table, 4), assignment(shared, 0))
    per_seed_plan = SplitPlan.from_config(validate({"cohort": {"seeds": [0, 1], "split_per_seed": True}})["cohort"])
    assert split_site(cohort, per_seed_plan).source.startswith("One split per seed")


def test_splits_are_deterministic_and_order_independent():
    cohort = _split_candidates()
    first = make_splits(cohort, seeds=[0])
    again = make_splits(cohort.sample(frac=1, random_state=3), seeds=[0])
    pd.testing.assert_frame_equal(first, again)


def test_splits_need_enough_patients_per_class():
    cohort = _split_candidates(n0=40, n1=2)
    with pytest.raises(ValueError, match="cannot stratify"):
        make_splits(cohort, seeds=[0])
