"""Every documented data rule, each with an input on which the rule changes the answer.

Rules from the README and the docstrings of modaltune.omics.expression (which sample of a patient), modaltune.cohort
.harmonise (how rows of a patient collapse, negative days), modaltune.slides.tissue (otsu and mean_ratio
thresholds), modaltune.devices (no GPU) and modaltune.training.data (a pooled two-site training set). The rules
already pinned elsewhere are named where they are tested.
"""

from __future__ import annotations

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from modaltune.cohort import harmonise, load_subtype_table
from modaltune.cohort.build import read_records
from modaltune.devices import resolve_device
from modaltune.features import write_features, write_manifest
from modaltune.omics import select_tumour_samples
from modaltune.slides.tissue import TissueDetector
from modaltune.training.cli import site_files
from modaltune.training.data import ExperimentData

DAYS_PER_MONTH = 30.44


# ---- RNA: which sample of a patient ------------------------------------------------------------------------------
def test_tumour_sample_with_the_lowest_type_code_then_the_first_in_file_order():
    """-06 (metastatic) listed before -01 (primary): the primary wins; two -01 vials: the first listed; a patient
    id without sample type counts as tumour; normal (-11) samples never stand in for a tumour."""
    samples = pd.DataFrame(
        {"TP53": [6.0, 1.0, 11.0, 2.0, 3.0, 7.0, 4.0]},
        index=["TCGA-AA-0001-06A", "TCGA-AA-0001-01A", "TCGA-AA-0001-11A",  # metastatic, primary, normal
               "TCGA-AA-0002-01A", "TCGA-AA-0002-01B",  # two primary vials
               "TCGA-AA-0003-11A",  # normal only
               "TCGA-AA-0004"],  # a patient id, no sample type
    )  # fmt: skip
    table, normal_only = select_tumour_samples(samples)
    assert table["TP53"].to_dict() == {"TCGA-AA-0001": 1.0, "TCGA-AA-0002": 2.0, "TCGA-AA-0004": 4.0}
    assert normal_only == ["TCGA-AA-0003"]


# ---- clinical tables: collapsing rows, survival labels -----------------------------------------------------------
# Also pinned in test_cohort.py::test_contradictory_rows_are_reported_and_resolved: dead if any row says dead, the
# earliest days to death, a dead patient without a death date gets the follow-up.
def _gdc_classic(path, rows):
    columns = ["case_id", "case_submitter_id", "project_id", "age_at_index", "age_at_diagnosis", "gender",
               "vital_status", "days_to_death", "days_to_last_follow_up", "primary_diagnosis",
               "ajcc_pathologic_stage", "ajcc_pathologic_t", "ajcc_pathologic_n", "ajcc_pathologic_m"]
    lines = ["\t".join(columns)]
    for case, vital, death, follow, stage in rows:
        values = [f"uuid-{case}", case, "TCGA-LUAD", "60", "'--", "male", vital, death, follow,
                  "Adenocarcinoma, NOS", stage, "T1", "N0", "M0"]
        lines.append("\t".join(values))
    path.write_text("\n".join(lines) + "\n")
    return path


def test_rows_of_a_patient_collapse_by_the_documented_rules(tmp_path):
    path = _gdc_classic(tmp_path / "clinical.tsv", [
        ("TCGA-AA-0001", "Alive", "'--", "300", "'--"),  # follow-up: the latest of 300, 900, 500
        ("TCGA-AA-0001", "Alive", "'--", "900", "Stage IIB"),  # stage: the first non-missing in file order
        ("TCGA-AA-0001", "Alive", "'--", "500", "Stage IIIA"),
        ("TCGA-AA-0002", "Dead", "-400", "20", "Stage I"),  # negative days: the absolute value
        ("TCGA-AA-0003", "Alive", "'--", "-61", "Stage I"),
    ])  # fmt: skip
    records, _ = read_records([path])
    slides = [f"TCGA-AA-000{i}-01Z-00-DX1" for i in (1, 2, 3)]
    table, _ = harmonise(records, "NSCLC", ["LUAD", "LUSC"], load_subtype_table()["NSCLC"], slides, [])
    table = table.set_index("patient")
    assert table.loc["TCGA-AA-0001", "time_months"] == pytest.approx(900 / DAYS_PER_MONTH)
    assert table.loc["TCGA-AA-0001", "event"] == 0
    assert table.loc["TCGA-AA-0001", "stage"] == "Stage IIB"
    assert table.loc["TCGA-AA-0002", "time_months"] == pytest.approx(400 / DAYS_PER_MONTH)
    assert table.loc["TCGA-AA-0002", "event"] == 1
    assert table.loc["TCGA-AA-0003", "time_months"] == pytest.approx(61 / DAYS_PER_MONTH)


# ---- tissue thresholds -------------------------------------------------------------------------------------------
def saturation_image(saturations: np.ndarray) -> np.ndarray:
    """An RGB image of pink-purple pixels (OpenCV hue 150, value 220) with the given HSV saturations."""
    hsv = np.stack([np.full_like(saturations, 150), saturations, np.full_like(saturations, 220)], axis=-1)
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)


def bare_threshold(method: str, **settings) -> TissueDetector:
    """Only the saturation threshold acts: no blur, artefact rules, glass colour, closing or size filters."""
    return TissueDetector(threshold=method, mthresh=1, close=0, min_value=0, grey_max_saturation=0,
                          glass_distance=0, pen_hues=[], artefact_margin_px=0, min_object_mm2=0.0,
                          min_hole_mm2=0.0, **settings)


def measured_saturation(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)[..., 1].astype(float)


def test_otsu_separates_two_saturation_populations_that_the_fixed_threshold_keeps_together():
    saturations = np.full((40, 40), 40)
    saturations[:, 28:] = 160  # 30 % strongly stained
    rgb = saturation_image(saturations)
    mask = bare_threshold("otsu", sthresh=15).mask_from_rgb(rgb, mask_mpp=4.0)
    np.testing.assert_array_equal(mask, saturations == 160)
    assert bare_threshold("fixed", sthresh=15).mask_from_rgb(rgb, mask_mpp=4.0).all()


def test_otsu_never_goes_below_sthresh_so_a_blank_slide_stays_blank():
    saturations = np.full((40, 40), 3)
    saturations[:, 20:] = 12  # glass with faint chroma noise: Otsu alone would split it
    mask = bare_threshold("otsu", sthresh=15).mask_from_rgb(saturation_image(saturations), mask_mpp=4.0)
    assert not mask.any()


def test_mean_ratio_keeps_pixels_above_the_ratio_times_the_mean_saturation():
    rng = np.random.default_rng(0)
    rgb = saturation_image(rng.integers(20, 200, (40, 40)))
    saturation = measured_saturation(rgb)
    mask = bare_threshold("mean_ratio", mean_ratio=1.3).mask_from_rgb(rgb, mask_mpp=4.0)
    np.testing.assert_array_equal(mask, saturation > 1.3 * saturation.mean())
    assert 0.1 < mask.mean() < 0.6  # neither the fixed threshold (everything) nor nothing


def test_thresholds_ignore_artefact_pixels():
    """A green pen stroke (saturation 255) must not pull the mean_ratio threshold up and hide the tissue."""
    saturations = np.full((40, 40), 30)
    saturations[:, 20:] = 90  # tissue: above 1.1 x the mean of the clean pixels (60)
    rgb = saturation_image(saturations)
    rgb[:8] = cv2.cvtColor(np.array([[[60, 255, 200]]], np.uint8), cv2.COLOR_HSV2RGB)  # pen ink, hue 60
    detector = TissueDetector(threshold="mean_ratio", mean_ratio=1.1, mthresh=1, close=0, min_value=0,
                              grey_max_saturation=0, glass_distance=0, artefact_margin_px=0, min_object_mm2=0.0,
                              min_hole_mm2=0.0)
    mask = detector.mask_from_rgb(rgb, mask_mpp=4.0)
    expected = saturations == 90
    expected[:8] = False
    np.testing.assert_array_equal(mask, expected)


# ---- devices -----------------------------------------------------------------------------------------------------
def test_resolve_device_without_a_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    for device in ("cuda", "cuda:1"):
        with pytest.raises(RuntimeError, match=f"device '{device}' requested but torch sees no CUDA GPU.*cpu or auto"):
            resolve_device(device)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")


# ---- a pooled two-site training set ------------------------------------------------------------------------------
def write_site(root, site, patients, splits, gene_offset):
    """One site's cohort, splits (seed 0), omics and one 3-tile feature file per patient."""
    for folder in ("cohort", "omics", "features/tiny"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    slides = [[f"{p}-01Z-00-DX1"] for p in patients]
    for (slide,) in slides:
        write_features(root / "features" / "tiny" / f"{slide}.h5", np.ones((3, 96)), np.zeros((3, 2)),
                       {"encoder": "tiny", "mpp": 0.5, "tile_px_level0": 256})
    classes = [i % 2 for i in range(len(patients))]
    pd.DataFrame({"patient": patients, "subtype_class": classes, "slides": slides}).to_parquet(
        root / "cohort" / f"{site}.parquet")
    pd.DataFrame({"patient": patients, "seed": 0, "split": splits}).to_parquet(root / "cohort" / f"{site}_splits.parquet")
    genes = gene_offset + np.arange(len(patients), dtype=float)
    pd.DataFrame({"patient": patients, "G0": genes, "G1": -genes}).to_parquet(root / "omics" / f"{site}.parquet")
    write_manifest([root / "features" / "tiny" / f"{s}.h5" for (s,) in slides],
                   root / "features" / "tiny" / f"{site}.manifest.parquet", "tiny")


def test_pooled_training_set_is_the_union_of_each_sites_own_splits(tmp_path):
    a = [f"TCGA-AA-{i:04d}" for i in range(5)]
    b = [f"TCGA-BB-{i:04d}" for i in range(5)]
    write_site(tmp_path, "S1", a, ["train", "train", "train", "val", "test"], gene_offset=0.0)
    write_site(tmp_path, "S2", b, ["test", "train", "val", "train", "train"], gene_offset=100.0)
    sites = [site_files(tmp_path, site, 0, "tiny", None) for site in ("S1", "S2")]
    data = ExperimentData(sites, 0)
    assert data.split_patients("train") == a[:3] + [b[1], b[3], b[4]]
    assert data.split_patients("val") == [a[3], b[2]] and data.split_patients("test") == [a[4], b[0]]
    assert data.patients.set_index("patient")["site"].to_dict() == {**dict.fromkeys(a, "S1"),
                                                                     **dict.fromkeys(b, "S2")}
    train_genes = data.genes.loc[data.split_patients("train"), "G0"].tolist()
    assert train_genes == [0.0, 1.0, 2.0, 101.0, 103.0, 104.0]  # each site's own expression rows
