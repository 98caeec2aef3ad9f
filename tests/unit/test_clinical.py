"""The clinical modality (paper Table 10): treatment and receptor fields read from the real clinical tables, the
clinical encoder fitted on training patients only, the model's clinical tokens, a training run and its embedding,
and the multimodal table from probe files."""

import csv
import gzip
import json
import logging
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from test_cohort import _cohort, _dotted_row, _write_tsv
from test_training import TEXT_DIM, cohort, sections  # noqa: F401  (cohort is a fixture)

from modaltune.cohort import read_clinical
from modaltune.cohort.clinical_encoding import ClinicalEncoder, stage_value, tnm_value
from modaltune.config import ConfigError, experiment_sections, load
from modaltune.models import create_slide_encoder
from modaltune.models.modaltune import build_modaltune
from modaltune.report.tables import collect_probes, results_table, write_tables
from modaltune.synth.cohort import plan_site
from modaltune.synth.tables import clinical_table
from modaltune.training.cli import site_files
from modaltune.training.data import BagOptions, ExperimentData
from modaltune.training.embed import embed_site
from modaltune.training.loop import train_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ---- readers on the real tables ------------------------------------------------------------------------------------
def _rows(path, opener=open, skip=0):
    with opener(path, "rt", newline="") as handle:
        lines = handle.readlines()[skip:]
    return list(csv.DictReader(lines, delimiter="\t"))


def test_gdc_classic_treatment_rows_fill_their_own_field_and_collapse_to_any_yes(real_data):
    path = real_data / "gdc_clinical_lusc" / "clinical.tsv"
    rows = _rows(path)
    records = read_clinical(path)
    for field, kind in (("radiation_therapy", "Radiation Therapy, NOS"),
                        ("pharmaceutical_therapy", "Pharmaceutical Therapy, NOS")):
        answers = [r["treatment_or_therapy"] for r in rows if r["treatment_type"] == kind]
        assert records[field].value_counts().to_dict() == {
            "no": answers.count("no"), "yes": answers.count("yes")}  # "not reported" is missing
        assert (records[field] == "yes").sum() == {"radiation_therapy": 71, "pharmaceutical_therapy": 147}[field]
    table, _ = _cohort([path], "NSCLC", ["LUAD", "LUSC"])
    by_case = {}
    for r in rows:  # reference collapse: yes if any row of the kind says yes, else no if any says no
        by_case.setdefault(r["case_submitter_id"], {}).setdefault(r["treatment_type"], set()).add(
            r["treatment_or_therapy"])
    for patient in table.index:
        said = by_case[patient]["Radiation Therapy, NOS"]
        expected = "yes" if "yes" in said else "no" if "no" in said else None
        assert table.loc[patient, "radiation_therapy"] == expected, patient
    assert table["er_status"].isna().all()  # GDC exports carry no receptor status


def test_xena_matrix_therapy_is_yes_if_any_of_its_columns_says_yes(real_data):
    path = real_data / "xena_luad_clinical" / "TCGA.LUAD.sampleMap" / "LUAD_clinicalMatrix.gz"
    rows = _rows(path, gzip.open)
    records = read_clinical(path)

    def reference(columns):
        out = []
        for r in rows:
            said = {r[c].lower() for c in columns}
            out.append("yes" if "yes" in said else "no" if "no" in said else None)
        return out

    assert records["radiation_therapy"].tolist() == reference(["radiation_therapy", "additional_radiation_therapy"])
    assert records["pharmaceutical_therapy"].tolist() == reference(
        ["targeted_molecular_therapy", "additional_pharmaceutical_therapy"])
    assert records["radiation_therapy"].value_counts().to_dict() == {"no": 430, "yes": 152}


def test_cbioportal_patient_table_therapy_columns(real_data):
    path = real_data / "cbioportal_paad" / "data_clinical_patient.txt"
    rows = _rows(path, skip=4)
    records = read_clinical(path).set_index("patient")
    for field, column in (("radiation_therapy", "RADIATION_TREATMENT_ADJUVANT"),
                          ("pharmaceutical_therapy", "TARGETED_MOLECULAR_THERAPY")):
        for r in rows:
            expected = {"YES": "yes", "NO": "no"}.get(r[column])  # [Not Available], [Discrepancy]: missing
            assert records.loc[r["PATIENT_ID"], field] == expected
    assert records["pharmaceutical_therapy"].value_counts().to_dict() == {"yes": 94, "no": 48}


def test_gdc_dotted_treatment_rows(tmp_path):
    rows = [dict(_dotted_row("TCGA-AA-0001", "true", "Adenocarcinoma, NOS", "Stage IB", kind),
                 **{"treatments.treatment_or_therapy": answer})
            for kind, answer in (("Radiation Therapy, NOS", "no"), ("Chemotherapy", "yes"),
                                 ("Pharmaceutical Therapy, NOS", "no"), ("Surgery, NOS", "yes"))]
    rows.append(dict(_dotted_row("TCGA-AA-0002", "true", "Adenocarcinoma, NOS", "Stage II", "Radiation Therapy, NOS"),
                     **{"treatments.treatment_or_therapy": "not reported"}))
    table, _ = _cohort([_write_tsv(tmp_path / "clinical.tsv", rows)], "NSCLC", ["LUAD", "LUSC"])
    assert table.loc["TCGA-AA-0001", ["radiation_therapy", "pharmaceutical_therapy"]].tolist() == ["no", "yes"]
    assert table.loc["TCGA-AA-0002", ["radiation_therapy", "pharmaceutical_therapy"]].isna().all()


def test_the_demo_clinical_table_carries_varied_treatment_rows(tmp_path):
    demo = load(["config/demo.yaml"])["demo"]
    path = tmp_path / "clinical.tsv"
    clinical_table(plan_site("NSCLC", demo)).to_csv(path, sep="\t", index=False)
    table, _ = _cohort([path], "NSCLC", ["LUAD", "LUSC"])
    for field in ("radiation_therapy", "pharmaceutical_therapy"):  # both answers and some missing, for the encoder
        assert set(table[field].dropna()) == {"yes", "no"} and table[field].isna().any(), field


XENA_BRCA = {
    "sampleID": "TCGA-A1-0001-01", "_PATIENT": "TCGA-A1-0001", "vital_status": "LIVING", "days_to_death": "",
    "days_to_last_followup": "500", "histological_type": "Infiltrating Ductal Carcinoma", "pathologic_stage": "Stage IIA",
    "age_at_initial_pathologic_diagnosis": "55", "gender": "FEMALE", "radiation_therapy": "NO",
    "breast_carcinoma_estrogen_receptor_status": "Positive", "breast_carcinoma_progesterone_receptor_status": "Negative",
    "lab_proc_her2_neu_immunohistochemistry_receptor_status": "Equivocal",
}  # fmt: skip


def test_brca_receptor_status_of_xena_and_cbioportal_tables(tmp_path):
    second = dict(XENA_BRCA, sampleID="TCGA-A1-0002-01", _PATIENT="TCGA-A1-0002", radiation_therapy="YES",
                  breast_carcinoma_estrogen_receptor_status="Negative",
                  breast_carcinoma_progesterone_receptor_status="Indeterminate",
                  lab_proc_her2_neu_immunohistochemistry_receptor_status="Positive")
    xena = read_clinical(_write_tsv(tmp_path / "BRCA_clinicalMatrix", [XENA_BRCA, second])).set_index("patient")
    assert xena[["er_status", "pr_status", "her2_status", "radiation_therapy"]].to_dict("index") == {
        "TCGA-A1-0001": {"er_status": "positive", "pr_status": "negative", "her2_status": None,
                         "radiation_therapy": "no"},
        "TCGA-A1-0002": {"er_status": "negative", "pr_status": None, "her2_status": "positive",
                         "radiation_therapy": "yes"},
    }
    header = ["#Patient Identifier\tOverall Survival Status\tOverall Survival (Months)\tER\tPR\tHER2"] * 4
    rows = [{"PATIENT_ID": "TCGA-A2-0001", "OS_STATUS": "0:LIVING", "OS_MONTHS": "12.5",
             "ER_STATUS_BY_IHC": "Positive", "PR_STATUS_BY_IHC": "[Not Available]", "IHC_HER2": "Negative"}]
    portal = read_clinical(_write_tsv(tmp_path / "data_clinical_patient.txt", rows, header)).iloc[0]
    assert (portal.er_status, portal.pr_status, portal.her2_status) == ("positive", None, "negative")
    assert portal.radiation_therapy is None  # the table has no therapy column


# ---- the encoder ---------------------------------------------------------------------------------------------------
def test_stage_and_tnm_codes():
    assert [stage_value(s) for s in ("Stage 0", "Stage IA", "Stage IIB", "Stage IIIC", "Stage IV")] == [0, 1, 2, 3, 4]
    assert np.isnan(stage_value("Stage X")) and np.isnan(stage_value(None))
    assert [tnm_value(v, "T") for v in ("T1a", "Tis", "pT3", "T4b")] == [1, 0, 3, 4]
    assert np.isnan(tnm_value("TX", "T")) and np.isnan(tnm_value("N1", "T"))
    assert [tnm_value(v, "N") for v in ("N0", "N2", "N3")] == [0, 2, 3]
    assert [tnm_value(v, "M") for v in ("M0", "M1b", "cM0 (i+)")] == [0, 1, 0] and np.isnan(tnm_value("MX", "M"))


def clinical_rows():
    return pd.DataFrame({
        "age": [50.0, 60.0, np.nan, 70.0, 30.0, 90.0],
        "stage": ["Stage IA", "Stage IIIB", "Stage IV", None, "Stage I", "Stage II"],
        "radiation_therapy": ["yes", None, "no", "no", "yes", None],
        "er_status": [None, None, None, None, "positive", "negative"],
    }, index=[f"TCGA-AA-{i:04d}" for i in range(6)])  # fmt: skip


def test_values_are_z_scored_with_training_statistics_and_missing_values_are_explicit(caplog):
    rows = clinical_rows()
    train = rows.iloc[:4]
    with caplog.at_level(logging.WARNING):
        encoder = ClinicalEncoder(["age", "stage", "radiation_therapy", "er_status"]).fit(train)
    assert encoder.kept == ["age", "stage", "radiation_therapy"] and encoder.left_out == ["er_status"]
    assert "er_status" in caplog.text  # no receptor status among the training patients: left out, logged
    assert encoder.feature_names == ["age", "age_missing", "stage", "stage_missing", "radiation_therapy",
                                     "radiation_therapy_missing"]
    out = encoder.transform(rows)
    ages = np.array([50.0, 60.0, 70.0])
    expected_age = (np.array([50, 60, np.nan, 70, 30, 90]) - ages.mean()) / ages.std()
    np.testing.assert_allclose(out["age"], np.nan_to_num(expected_age, nan=0.0), rtol=1e-6)
    stages = np.array([1.0, 3.0, 4.0])  # the training rows with a stage
    np.testing.assert_allclose(out["stage"], np.nan_to_num((np.array([1, 3, 4, np.nan, 1, 2]) - stages.mean())
                                                           / stages.std(), nan=0.0), rtol=1e-6)
    assert out["age_missing"].tolist() == [0, 0, 1, 0, 0, 0]
    assert out["stage_missing"].tolist() == [0, 0, 0, 1, 0, 0]
    assert out["radiation_therapy_missing"].tolist() == [0, 1, 0, 0, 0, 1]
    assert out.loc[out["radiation_therapy_missing"] == 1, "radiation_therapy"].eq(0).all()  # neutral: train mean
    again = ClinicalEncoder.from_state_dict(json.loads(json.dumps(encoder.state_dict()))).transform(rows)
    pd.testing.assert_frame_equal(again, out)


def test_the_encoder_is_unchanged_when_validation_and_test_values_change():
    rows = clinical_rows()
    train = ["TCGA-AA-0000", "TCGA-AA-0001", "TCGA-AA-0002", "TCGA-AA-0003"]
    fields = ["age", "stage", "radiation_therapy", "er_status"]
    before = ClinicalEncoder(fields).fit(rows.loc[train]).state_dict()
    changed = rows.copy()
    changed.loc[["TCGA-AA-0004", "TCGA-AA-0005"]] = [[99.0, "Stage IV", "no", "negative"]] * 2
    assert ClinicalEncoder(fields).fit(changed.loc[train]).state_dict() == before


def test_no_field_with_a_training_value_is_a_named_error():
    with pytest.raises(ValueError, match="model.clinical.fields"):
        ClinicalEncoder(["er_status"]).fit(clinical_rows().iloc[:4])


# ---- the model -----------------------------------------------------------------------------------------------------
PATHWAYS = [[0, 1], [1, 2, 3], [4]]


def model_of(clinical=None, features=6):
    section, encoder, _ = sections()
    if clinical is not None:
        section = dict(section, clinical=dict(section["clinical"], enabled=True, **clinical))
    torch.manual_seed(0)
    return build_modaltune(dict(section, output_dim=8), encoder, PATHWAYS, 5, clinical_features=features)


def test_clinical_tokens_extend_the_multimodal_sequence_and_nothing_else():
    plain, clinical = model_of(), model_of({"tokens": 2, "hidden": 16})
    names = dict(plain.named_parameters())
    with_clinical = dict(clinical.named_parameters())
    assert set(with_clinical) - set(names) == {"clinical_encoder.mlp.0.weight", "clinical_encoder.mlp.0.bias",
                                               "clinical_encoder.mlp.2.weight", "clinical_encoder.mlp.2.bias",
                                               "clinical_encoder.norm.weight", "clinical_encoder.norm.bias"}
    assert set(names) <= set(with_clinical) and not [n for n in plain.state_dict() if "clinical" in n]
    dim, tokens = plain.encoder.config.embed_dim, sections()[0]["omics"]["tokens"]
    assert names["modal_pos"].shape == (1 + tokens, dim)  # E_C without clinical: prompt + pathway tokens
    assert with_clinical["modal_pos"].shape == (1 + tokens + 2, dim)
    assert with_clinical["clinical_encoder.mlp.0.weight"].shape == (16, 6)
    assert with_clinical["clinical_encoder.mlp.2.weight"].shape == (2 * dim, 16)
    assert all(p.requires_grad for n, p in with_clinical.items() if n.startswith("clinical_encoder."))

    features, coords = torch.randn(7, create_slide_encoder("tiny").config.in_chans), torch.randint(0, 2000, (7, 2))
    genes, vector = torch.randn(5), torch.randn(6)
    seen = []  # the multimodal tokens entering the adapter
    original = clinical._passes
    clinical._passes = lambda tokens, modal: (seen.append(modal.shape), original(tokens, modal))[1]
    clinical.eval()
    out = clinical(features, coords, genes, clinical=vector)
    assert out.shape == (3, 8) and seen == [(3, 1 + tokens + 2, dim)]
    other = clinical(features, coords, genes, clinical=vector + 1)
    assert not torch.allclose(out, other)  # the clinical vector reaches the output
    with pytest.raises(ValueError, match="clinical vector"):
        clinical(features, coords, genes)
    with pytest.raises(ValueError, match="clinical vector"):
        plain(features, coords, genes, clinical=vector)


@pytest.mark.parametrize("model", [{"finetuning": "lora"}, {"architecture": "abmil_cat"}])
def test_clinical_tokens_without_the_modal_adapter_stop_the_config_check(model):
    config = load(["config/demo.yaml"])
    config["experiments"]["x"] = {"pooled": False, "sites": "all", "model": {**model, "clinical": {"enabled": True}}}
    with pytest.raises(ConfigError, match=r"^config error: experiments.x: key 'model.clinical.enabled'.*adapter"):
        experiment_sections(config, "x")


def test_an_experiment_in_both_the_ablation_and_the_multimodal_table_stops_the_config_check():
    config = load(["config/demo.yaml"])
    config["experiments"]["x"] = {"pooled": False, "sites": "all", "ablation": True, "multimodal": True}
    with pytest.raises(ConfigError, match=r"experiments.x: ablation and multimodal"):
        experiment_sections(config, "x")


# ---- a training run ------------------------------------------------------------------------------------------------
CLINICAL = {"age": [40.0, 80.0], "stage": ["Stage I", "Stage III"], "t_stage": ["T1", "T3"],
            "radiation_therapy": ["no", "yes"], "er_status": [None, None]}


def with_clinical(results, tmp_path, val_test=None):
    """A copy of the training cohort with clinical columns; ``val_test`` overrides the non-training patients'."""
    copy = tmp_path / "results"
    shutil.copytree(results, copy)
    table = pd.read_parquet(copy / "cohort" / "S1.parquet")
    splits = pd.read_parquet(copy / "cohort" / "S1_splits.parquet").set_index("patient")["split"]
    for field, values in CLINICAL.items():
        table[field] = [values[i % 2] if i % 5 else None for i in range(len(table))]  # some missing
        if val_test is not None:
            held_out = table["patient"].map(splits) != "train"
            table.loc[held_out, field] = val_test.get(field)
    table.to_parquet(copy / "cohort" / "S1.parquet")
    return copy


def train_clinical(results, out):
    section, encoder, training = sections(epochs=1)
    section = dict(section, clinical=dict(section["clinical"], enabled=True, fields=list(CLINICAL), hidden=8))
    files = site_files(results, "S1", 0, "tiny", "minilm")
    data = ExperimentData([files], 0, BagOptions(training["tile_cap"]), clinical_fields=list(CLINICAL))
    history = train_model(data, [files.text], results / "omics" / "pathways.parquet", model_section=section,
                          slide_encoder_section=encoder, training=training, projector_dim=16, seed=0, out_dir=out)
    return history, json.loads((out / "config.json").read_text())


def test_a_clinical_run_fits_on_training_patients_only_and_embeds_with_its_encoder(cohort, tmp_path):  # noqa: F811
    results = with_clinical(cohort, tmp_path / "a")
    history, config = train_clinical(results, tmp_path / "a" / "model")
    assert np.isfinite(history["train_loss"]).all()
    state = config["clinical_encoder"]
    assert state["kept"] == ["age", "stage", "t_stage", "radiation_therapy"] and state["left_out"] == ["er_status"]
    table = pd.read_parquet(results / "cohort" / "S1.parquet").set_index("patient")
    splits = pd.read_parquet(results / "cohort" / "S1_splits.parquet")
    train = table.loc[splits.loc[splits["split"] == "train", "patient"]]
    assert state["mean"]["age"] == pytest.approx(train["age"].astype(float).mean())
    assert state["std"]["age"] == pytest.approx(train["age"].astype(float).std(ddof=0))

    changed = with_clinical(cohort, tmp_path / "b", val_test={"age": 120.0, "stage": "Stage IV", "t_stage": "T4",
                                                               "radiation_therapy": "yes", "er_status": "positive"})
    _, other = train_clinical(changed, tmp_path / "b" / "model")
    assert other["clinical_encoder"] == state  # validation and test values never reach the statistics

    frame = embed_site(tmp_path / "a" / "model", site_files(results, "S1", 0, "tiny", None), 0,
                       tmp_path / "e.parquet", device="cpu")
    assert frame["patient"].nunique() == 12 and {len(e) for e in frame["embedding"]} == {16}
    shifted = embed_site(tmp_path / "a" / "model", site_files(changed, "S1", 0, "tiny", None), 0,
                         tmp_path / "f.parquet", device="cpu")
    split_of = splits.set_index("patient")["split"]
    for patient in frame["patient"].unique():
        before = np.stack(frame.loc[frame["patient"] == patient, "embedding"])
        after = np.stack(shifted.loc[shifted["patient"] == patient, "embedding"])
        # only the held-out patients' clinical values changed, and the model encodes them with its own statistics
        assert np.allclose(before, after) == (split_of[patient] == "train"), patient


def test_a_cohort_table_without_the_clinical_columns_is_a_named_error(cohort):  # noqa: F811
    files = site_files(cohort, "S1", 0, "tiny", "minilm")
    with pytest.raises(ValueError, match=r"S1.parquet: no clinical column\(s\) \['age'\].*rebuild the cohort"):
        ExperimentData([files], 0, BagOptions(24), clinical_fields=["age"])


# ---- the multimodal table ------------------------------------------------------------------------------------------
def test_multimodal_table_rows_and_cells_from_probe_files(tmp_path):
    rng = np.random.default_rng(0)
    runs = {"modaltune": {"NSCLC": [0, 1, 2], "RCC": [0, 1, 2]}, "clinical": {"NSCLC": [0, 1, 2], "RCC": [0, 1, 2]}}
    paths, values = [], {}
    for experiment, sites in runs.items():
        for site, seeds in sites.items():
            for seed in seeds:
                ba, ci = rng.uniform(0.5, 1, 2)
                values[(experiment, site, seed)] = (ba, ci)
                path = tmp_path / f"{experiment}_{site}_{seed}.json"
                path.write_text(json.dumps({"experiment": experiment, "site": site, "seed": seed,
                                            "subtype": {"balanced_accuracy": ba}, "survival": {"c_index": ci}}))
                paths.append(path)
    labels = {"modaltune": "ModalTune (WSI + RNA)", "clinical": "ModalTune w/ Clinical (WSI + RNA + clinical)"}
    write_tables(results_table(collect_probes(paths)), tmp_path / "multimodal", labels)
    table = pd.read_csv(tmp_path / "multimodal.csv")
    row = table[(table.experiment == "clinical") & (table.site == "RCC") & (table.task == "survival")].iloc[0]
    cis = [values[("clinical", "RCC", s)][1] for s in range(3)]
    assert row["mean"] == pytest.approx(np.mean(cis), abs=1e-6) and row["std"] == pytest.approx(np.std(cis, ddof=1), abs=1e-6)
    markdown = (tmp_path / "multimodal.md").read_text()
    rows = [line.split("|")[1].strip() for line in markdown.split("### Survival")[0].splitlines()
            if line.startswith("| ") and "Method" not in line]
    assert rows == list(labels.values())
    header = next(line for line in markdown.splitlines() if line.startswith("| Method"))
    assert [cell.strip() for cell in header.strip("|").split("|")] == ["Method", "NSCLC", "RCC", "Mean"]
