"""The paper's released splits (json_splits/tcga_<site>): the reader on the six real sites, their use as a site's
split, the report of mismatches, and one-line errors for bad folders."""

from __future__ import annotations

import json
import shutil
from collections import defaultdict

import pandas as pd
import pytest

from modaltune.cli import main
from modaltune.cohort.release import ReleaseSplitError, read_release_splits
from modaltune.cohort.splits import SplitPlan, split_site, splits_from_release
from modaltune.cohort.subtypes import assign_subtype, load_subtype_table, normalise_diagnosis
from modaltune.io import read_parquet

SITES = ["brca", "gbmlgg", "nsclc", "rcc", "blca", "coadread"]
# Patients per split as PROVENANCE.md lists them (counted there from the files).
PATIENTS = {
    "brca": (749, 113, 188), "gbmlgg": (688, 71, 118), "nsclc": (674, 100, 167), "rcc": (621, 102, 170),
    "blca": (263, 46, 76), "coadread": (497, 38, 64),
}  # fmt: skip


def folder_of(real_data, site):
    return real_data / "modaltune_release" / "json_splits" / f"tcga_{site}"


def raw_patients(folder, site):
    """{split: set of case_submitter_id}, straight from the JSON."""
    return {
        split: {r["case_submitter_id"] for r in json.loads((folder / f"{split}_{site}_cls_feat.json").read_text())["data"]}
        for split in ("train", "val", "test")
    }


@pytest.mark.parametrize("site", SITES)
def test_reader_keeps_every_patient_of_each_split_once(real_data, site):
    folder = folder_of(real_data, site)
    release = read_release_splits(folder)
    raw = raw_patients(folder, site)
    assert release["patient"].is_unique
    for split, expected in zip(("train", "val", "test"), PATIENTS[site], strict=True):
        patients = set(release.loc[release["split"] == split, "patient"])
        assert patients == raw[split] and len(patients) == expected, split
    # as a site's split: every seed gets the files' patients, split by split
    cohort = pd.DataFrame({"patient": release["patient"], "site": site.upper(), "subtype_class": release["primary_class"],
                           "has_rna": True})
    result = splits_from_release(cohort, folder, seeds=[0, 1, 2])
    counts = result.table.groupby(["seed", "split"]).size().unstack()
    assert (counts[["train", "val", "test"]].to_numpy() == [PATIENTS[site]] * 3).all()
    assert not result.release_missing and not result.not_in_release and not result.class_disagreements


@pytest.mark.parametrize("site", SITES)
def test_release_classes_agree_with_our_subtype_groups(real_data, site):
    """Every slide record's primary_class equals the class our subtype table gives its diagnosis and project.
    NSCLC's (and COADREAD's) release diagnoses are already our group names; the others are GDC diagnoses."""
    groups = load_subtype_table()[site.upper()]
    by_name = {group.name: index for index, group in enumerate(groups)}
    disagreements = defaultdict(int)
    folder = folder_of(real_data, site)
    for split in ("train", "val", "test"):
        for record in json.loads((folder / f"{split}_{site}_cls_feat.json").read_text())["data"]:
            diagnosis = normalise_diagnosis(record["primary_diagnosis"])
            project = record["project_id"].removeprefix("TCGA-")
            ours = by_name[diagnosis] if diagnosis in by_name else assign_subtype(diagnosis, project, groups)[1]
            if ours != record["primary_class"]:
                disagreements[(diagnosis, project, record["primary_class"], ours)] += 1
    assert not disagreements, dict(disagreements)
    assert set(read_release_splits(folder)["primary_class"]) == set(range(len(groups))) | (
        {-1} if site not in ("gbmlgg", "rcc") else set())  # GBMLGG and RCC have no rare set


def test_cohort_patients_absent_from_the_release_are_dropped_and_reported(real_data):
    folder = folder_of(real_data, "rcc")
    release = read_release_splits(folder)
    kept = release.iloc[5:]  # 5 release patients missing from our data
    cohort = pd.DataFrame({
        "patient": [*kept["patient"], "TCGA-ZZ-0001", "TCGA-ZZ-0002"],
        "site": "RCC",
        "subtype_class": [*kept["primary_class"], 0, 1],
        "has_rna": True,
    })
    cohort.loc[0, "subtype_class"] = (kept.iloc[0]["primary_class"] + 1) % 3  # our table disagrees on one patient
    result = split_site(cohort, SplitPlan(seeds=(0, 1), release=folder))
    assert result.release_missing == sorted(release["patient"].iloc[:5])
    assert result.not_in_release == ["TCGA-ZZ-0001", "TCGA-ZZ-0002"]
    assert not result.table["patient"].isin(result.not_in_release).any()
    expected = kept.set_index("patient")["split"].sort_index()
    for seed in (0, 1):
        got = result.table[result.table["seed"] == seed].set_index("patient")["split"].sort_index()
        pd.testing.assert_series_equal(got, expected)
    first = kept.iloc[0]
    assert result.class_disagreements == [(first["patient"], int(first["primary_class"]),
                                           int(cohort.loc[0, "subtype_class"]))]
    assert str(folder) in result.source


def test_cli_takes_the_released_split_and_reports_mismatches(real_data, tmp_path):
    """The real 2019 KIRC clinical table against the released RCC split (KIRC patients only, so the KIRP and KICH
    release patients are reported missing)."""
    from modaltune.io import write_parquet

    clinical = real_data / "gdc_clinical_kirc_2019" / "clinical.tsv"
    folder = folder_of(real_data, "rcc")
    release = read_release_splits(folder)
    patients = pd.read_csv(clinical, sep="\t")["submitter_id"].unique().tolist()
    slides = [f"{p}-01Z-00-DX1" for p in patients]
    omics = tmp_path / "omics.parquet"
    write_parquet(pd.DataFrame({"patient": patients, "TP53": 0.0}), omics)
    out = tmp_path / "cohort"
    main(["cohort", "--site", "RCC", "--projects", "KIRC", "KIRP", "KICH", "--clinical", str(clinical),
          "--omics", str(omics), "--slides", *slides, "--release-splits", str(folder), "--params", "{}",
          "--output", str(out / "RCC.parquet"), "--splits", str(out / "RCC_splits.parquet"),
          "--report", str(out / "RCC_report.md")])  # fmt: skip
    cohort, _ = read_parquet(out / "RCC.parquet")
    splits, metadata = read_parquet(out / "RCC_splits.parquet")
    assert metadata["release_splits"] == str(folder)
    assert set(splits["seed"]) == {0, 1, 2}
    shared = set(cohort["patient"]) & set(release["patient"])
    assert set(splits["patient"]) == shared and len(shared) > 400
    expected = release.set_index("patient").loc[sorted(shared), "split"]
    got = splits[splits["seed"] == 1].set_index("patient")["split"].sort_index()
    assert (got == expected).all()
    report = (out / "RCC_report.md").read_text()
    missing = sorted(set(release["patient"]) - set(cohort["patient"]))
    assert f"**Release patients missing from this cohort (no clinical record or slide here)**: {len(missing)}" in report
    assert missing[0] in report and missing[-1] in report
    absent = sorted(set(cohort["patient"]) - set(release["patient"]))
    assert f"absent from the release (dropped: the release fixes the training set)**: {len(absent)}" in report
    # The 2019 table's KIRC diagnoses give every shared patient the release's class (clear cell, 1).
    kirc = cohort.set_index("patient").loc[sorted(shared), "subtype_class"]
    assert (kirc == release.set_index("patient").loc[sorted(shared), "primary_class"]).all()
    assert "**Patients whose release class differs from the cohort's subtype class**: 0" in report


# ---------------------------------------------------------------------------------------------- bad folders


@pytest.fixture
def copy_of_brca(real_data, tmp_path):
    folder = tmp_path / "tcga_brca"
    shutil.copytree(folder_of(real_data, "brca"), folder)
    for path in folder.iterdir():
        path.chmod(0o644)
    return folder


def _cohort_of(folder):
    release = read_release_splits(folder)
    return pd.DataFrame({"patient": release["patient"], "site": "BRCA", "subtype_class": release["primary_class"],
                         "has_rna": True})


def _one_line_error(folder, match):
    with pytest.raises(ReleaseSplitError) as error:
        cohort = pd.DataFrame({"patient": ["TCGA-ZZ-0001"], "site": "BRCA", "subtype_class": [0], "has_rna": True})
        splits_from_release(cohort, folder, seeds=[0])
    message = str(error.value)
    assert "\n" not in message and str(folder) in message and match in message, message


def test_bad_release_folders_stop_with_one_line_naming_the_folder(copy_of_brca, tmp_path):
    folder = copy_of_brca
    _one_line_error(tmp_path / "nowhere", "release split folder not found")
    _one_line_error(folder, "shares no patient with the cohort")  # a valid folder, another site's patients

    val = folder / "val_brca_cls_feat.json"
    original = val.read_text()
    val.write_text(original[:1000])
    _one_line_error(folder, "val_brca_cls_feat.json: not valid JSON")
    val.write_text(json.dumps({"records": []}))
    _one_line_error(folder, "expected an object with a 'data' list")
    val.write_text(json.dumps({"data": []}))
    _one_line_error(folder, "'data' holds no slide record")
    records = json.loads(original)["data"]
    val.write_text(json.dumps({"data": [{k: v for k, v in records[0].items() if k != "primary_class"}]}))
    _one_line_error(folder, "record 0 lacks ['primary_class']")
    val.write_text(json.dumps({"data": [dict(records[0], case_submitter_id="TCGA-BH-A0AY-01")]}))
    _one_line_error(folder, "is not a 12-character TCGA barcode")
    train = json.loads((folder / "train_brca_cls_feat.json").read_text())["data"]
    val.write_text(json.dumps({"data": [*records, train[0]]}))
    _one_line_error(folder, "1 patient(s) in more than one split")
    val.write_text(json.dumps({"data": [records[0], dict(records[0], primary_class=1 - records[0]["primary_class"])]}))
    _one_line_error(folder, f"the slide records of {records[0]['case_submitter_id']} disagree")
    val.unlink()
    _one_line_error(folder, "expected one val_<site>_cls_feat.json, found none")
    val.write_text(original)
    assert len(splits_from_release(_cohort_of(folder), folder, [0]).table) == 749 + 113 + 188
