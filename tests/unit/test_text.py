"""Prompts, text encoders, the random projector and the text probe (reference: modaltune-method.md section 9)."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
import torch

from modaltune.text.prompts import (
    TASKS,
    DurationBins,
    UnknownStageError,
    build_prompts,
    diagnosis_text,
    prompts_for_seed,
    stage_phrase,
)

REFERENCE_EXAMPLE = (
    "Cancer location: breast; Cancer diagnosis: infiltrating duct carcinoma; Overall stage: stage two; "
    "Tumor stage status: tumor stage two; Lymph node status: node stage one; Distant metastasis status: no "
    "metastasis detected; Survival status: The patient was censored before 15 months"
)


def cohort_row(patient: str, **fields) -> dict:
    """One row with exactly the cohort contract's columns."""
    row = dict(
        patient=patient, site="BRCA", project="BRCA", diagnosis="infiltrating duct carcinoma",
        subtype="invasive ductal carcinoma", subtype_class=0, time_months=14.2, event=0, stage="Stage IIB",
        t_stage="T2", n_stage="N1a", m_stage="M0", age=61.0, sex="female", slides=[f"{patient}-01Z-00-DX1"],
        has_rna=True,
    )
    row.update(fields)
    return row


def prompt_of(prompts: pd.DataFrame, patient: str, task: str) -> str:
    return prompts.loc[(prompts["patient"] == patient) & (prompts["task"] == task), "prompt"].item()


# --- upstream's stage cleaning (make_textemb_conch.py), the reference computation for real strings ---------------

_UPSTREAM_DELETIONS = {
    "stage": ["A", "B", "b", "C", "c", "D", "d", " (i+)", " (i-)", "m", "i"],
    "t_stage": ["A", "a", "B", "b", "C", "c", "D", "d", " (i+)", " (i-)", "m", ("is", "0"), "i"],
    "n_stage": ["A", "a", "B", "b", "C", "c", "D", "d", " (i+)", " (i-)", " (mol+)", "m", "i"],
    "m_stage": ["A", "a", "B", "b", "C", "c", "D", "d", " (i+)", " (i-)", "m", "i"],
}


def upstream_phrase(field: str, value: str) -> str:
    from modaltune.text.prompts import STAGE_PHRASES

    for deletion in _UPSTREAM_DELETIONS[field]:
        old, new = deletion if isinstance(deletion, tuple) else (deletion, "")
        value = value.replace(old, new)
    return STAGE_PHRASES[field][value]


# --- prompts -----------------------------------------------------------------------------------------------------


def test_templates_reproduce_the_reference_example_sentence():
    # The BRCA example of the reference: N1a, 14.2 months, alive; BRCA's bin edges 15/27/55/283 months.
    bins = DurationBins().fit([1.0, 15.0, 27.0, 55.0, 283.0])
    cohort = pd.DataFrame([cohort_row("TCGA-A1-0001")])
    prompts = build_prompts(cohort, "BRCA", bins).prompts
    assert prompt_of(prompts, "TCGA-A1-0001", "general") == REFERENCE_EXAMPLE
    # ";" separates fragments, so the subtype and stage prompts end like the general one: without it
    assert prompt_of(prompts, "TCGA-A1-0001", "subtype") == (
        "Cancer location: breast; Cancer diagnosis: infiltrating duct carcinoma"
    )
    assert prompt_of(prompts, "TCGA-A1-0001", "stage") == (
        "Cancer location: breast; Overall stage: stage two; Tumor stage status: tumor stage two; Lymph node "
        "status: node stage one; Distant metastasis status: no metastasis detected"
    )
    assert prompt_of(prompts, "TCGA-A1-0001", "survival") == REFERENCE_EXAMPLE.replace(
        " Cancer diagnosis: infiltrating duct carcinoma;", ""
    )
    assert list(prompts["task"]) == list(TASKS)


def test_real_gdc_stage_strings_map_like_upstream(real_data):
    from modaltune.cohort import read_clinical

    seen = 0
    for table in ("gdc_clinical_lusc/clinical.tsv", "gdc_clinical_kirc_2019/clinical.tsv"):
        records = read_clinical(real_data / table)
        for field in ("stage", "t_stage", "n_stage", "m_stage"):
            for value in records[field].dropna().unique():
                assert stage_phrase(field, value) == upstream_phrase(field, value), (table, field, value)
                seen += 1
    assert seen >= 25  # LUSC: 10 stages, 8 T, 5 N, 5 M; KIRC 2019: 4 stages
    # the raw 2019 spelling, which upstream's deletions would have mangled, maps like its normalised form
    raw = pd.read_csv(real_data / "gdc_clinical_kirc_2019/clinical.tsv", sep="\t", usecols=["tumor_stage"])
    for value in raw["tumor_stage"].unique():
        if value.startswith("stage"):
            assert stage_phrase("stage", value) == upstream_phrase("stage", "Stage " + value.split()[1].upper())


@pytest.mark.parametrize(
    "field, value, phrase",
    [
        ("stage", "Stage IIIC", "stage three"),
        ("stage", "Stage X", "stage cannot be determined"),
        ("t_stage", "Tis", "no tumor detected"),
        ("t_stage", "T1mi", "tumor stage one"),
        ("t_stage", "TX", "tumor stage cannot be assessed"),
        ("t_stage", "T2b", "tumor stage two"),
        ("n_stage", "N0 (i+)", "cancer has not spread to lymph nodes"),
        ("n_stage", "N0 (mol+)", "cancer has not spread to lymph nodes"),
        ("n_stage", "N1mi", "node stage one"),
        ("n_stage", "N3c", "node stage three"),
        ("m_stage", "cM0 (i+)", "no metastasis detected"),
        ("m_stage", "M1b", "cancer has spread to distant organs"),
    ],
)
def test_stage_variants_of_the_reference(field, value, phrase):
    assert stage_phrase(field, value) == phrase
    assert upstream_phrase(field, value) == phrase


def test_in_situ_breast_tumours_are_stage_zero():
    # GDC BRCA writes "Tis (DCIS)"; upstream's deletions turned it into "T0 (IS)" and raised KeyError
    assert stage_phrase("t_stage", "Tis (DCIS)") == stage_phrase("t_stage", "Tis (Paget's)") == "no tumor detected"


def test_unknown_stage_values_are_reported_and_left_out(caplog):
    with pytest.raises(UnknownStageError, match="Stage 0"):
        stage_phrase("stage", "Stage 0")
    bins = DurationBins().fit([1.0, 15.0, 27.0, 55.0, 283.0])
    cohort = pd.DataFrame([cohort_row("TCGA-A1-0001", stage="Stage 0", t_stage="Ta", n_stage="N1a", m_stage="M2")])
    with caplog.at_level(logging.WARNING, logger="modaltune.text.prompts"):
        result = build_prompts(cohort, "BRCA", bins)
    assert {(u.patient, u.field, u.value) for u in result.unknown} == {
        ("TCGA-A1-0001", "stage", "Stage 0"),
        ("TCGA-A1-0001", "t_stage", "Ta"),
        ("TCGA-A1-0001", "m_stage", "M2"),
    }
    assert "Stage 0" in caplog.text and "Ta" in caplog.text
    assert prompt_of(result.prompts, "TCGA-A1-0001", "stage") == (
        "Cancer location: breast; Lymph node status: node stage one"
    )
    assert result.metadata("BRCA", 0)["unknown_stage_values"][0] == {
        "patient": "TCGA-A1-0001", "field": "stage", "value": "Stage 0"
    }


def test_absent_fields_are_omitted_without_stray_spaces_or_separators():
    bins = DurationBins().fit([1.0, 15.0, 27.0, 55.0, 283.0])
    cohort = pd.DataFrame(
        [
            cohort_row("TCGA-A1-0002", stage=None, t_stage=None, n_stage=None, m_stage=None),  # GBMLGG-like
            cohort_row("TCGA-A1-0003", diagnosis=None, t_stage=np.nan, time_months=np.nan, event=1),
            cohort_row("TCGA-A1-0004", stage="", n_stage=None, time_months=300.0, event=1),
        ]
    )
    prompts = build_prompts(cohort, "BRCA", bins).prompts
    for text in prompts["prompt"]:
        assert "  " not in text and not text.startswith(" ") and not text.endswith(" ")
        assert ";;" not in text and "; ;" not in text and ": ;" not in text and "None" not in text and "nan" not in text
        assert not text.endswith(";")
    assert prompt_of(prompts, "TCGA-A1-0002", "stage") == "Cancer location: breast"
    assert prompt_of(prompts, "TCGA-A1-0002", "general") == (
        "Cancer location: breast; Cancer diagnosis: infiltrating duct carcinoma; Survival status: The patient was "
        "censored before 15 months"
    )
    assert prompt_of(prompts, "TCGA-A1-0003", "subtype") == "Cancer location: breast"
    assert "Survival status" not in prompt_of(prompts, "TCGA-A1-0003", "general")
    # a time beyond the training range falls into the last bin
    assert prompt_of(prompts, "TCGA-A1-0004", "survival").endswith("The patient died between 55 and 283 months")


def test_diagnosis_text_follows_upstream_renames_and_prefixes():
    assert diagnosis_text("NSCLC", "LUSC", "squamous cell carcinoma, keratinizing") == "lung squamous cell carcinoma"
    assert diagnosis_text("NSCLC", "LUAD", "Adenocarcinoma, NOS") == "lung adenocarcinoma"
    assert diagnosis_text("NSCLC", "LUSC", "basaloid squamous cell carcinoma") == "lung basaloid squamous cell carcinoma"
    assert diagnosis_text("NSCLC", "LUAD", "lung adenocarcinoma mixed subtype") == "lung adenocarcinoma mixed subtype"
    assert diagnosis_text("COADREAD", "READ", "adenocarcinoma with mixed subtypes") == "rectal adenocarcinoma"
    assert diagnosis_text("COADREAD", "TCGA-COAD", "mucinous adenocarcinoma") == "colon mucinous adenocarcinoma"
    assert diagnosis_text("RCC", "KIRC", "clear cell adenocarcinoma") == "renal clear cell carcinoma"
    assert diagnosis_text("BRCA", "BRCA", None) is None


def test_duration_bins_match_upstream_bucketize_and_come_from_training_patients_only():
    rng = np.random.default_rng(0)
    train_times = rng.gamma(2.0, 20.0, size=200)
    bins = DurationBins().fit(train_times)
    reference = pd.qcut(train_times, 4, retbins=True)[1]
    reference[0], reference[-1] = train_times.min() - 1e-6, train_times.max() + 1e-6
    np.testing.assert_allclose(bins.edges, reference)
    expected = torch.bucketize(torch.tensor(train_times), torch.tensor(reference[:-1]), right=True).numpy() - 1
    np.testing.assert_array_equal(bins.transform(train_times), expected)
    assert np.bincount(bins.transform(train_times)).tolist() == [50, 50, 50, 50]
    assert bins.transform([-5.0, 1e6, np.nan]).tolist() == [0, 3, -1]
    again = DurationBins.from_dict(bins.to_dict())
    assert again.phrases == bins.phrases and np.array_equal(again.edges, bins.edges)

    # per seed: bins come from that seed's training patients; a long-lived test patient does not move them
    cohort = pd.DataFrame([cohort_row(f"TCGA-A1-{i:04d}", time_months=float(t)) for i, t in enumerate([5, 10, 20, 40, 80, 900])])
    splits = pd.DataFrame({"patient": cohort["patient"], "seed": 0, "split": ["train"] * 5 + ["test"]})
    result = prompts_for_seed(cohort, splits, "BRCA", seed=0)
    assert result.bins.phrases == ["before 10 months", "between 10 and 20 months", "between 20 and 40 months", "between 40 and 80 months"]
    assert result.metadata("BRCA", 0)["duration_bins"]["edges"][-1] == pytest.approx(80.0)
    with pytest.raises(ValueError, match="seed 3"):
        prompts_for_seed(cohort, splits, "BRCA", seed=3)
    with pytest.raises(KeyError, match="text.site_words.XYZ"):
        prompts_for_seed(cohort, splits, "XYZ", seed=0)


def real_site_cohort(real_data, table: str, site: str, project: str, patients: int | None = None) -> pd.DataFrame:
    """A cohort table built by the cohort stage's own code from a real GDC clinical table."""
    from modaltune.cohort import harmonise, load_subtype_table, read_clinical
    from modaltune.cohort.subtypes import groups_of

    records = read_clinical(real_data / table)
    ids = sorted(records["patient"].unique())[:patients]
    records = records[records["patient"].isin(ids)]
    slides = [f"{p}-01Z-00-DX1" for p in ids]
    cohort, _ = harmonise(records, site, [project], groups_of(site, load_subtype_table()), slides, ids)
    return cohort


def test_prompts_command_on_a_real_clinical_table(real_data, tmp_path):
    from modaltune.cli import main
    from modaltune.io import read_parquet, write_parquet

    cohort = real_site_cohort(real_data, "gdc_clinical_lusc/clinical.tsv", "NSCLC", "LUSC")
    order = np.random.default_rng(0).permutation(len(cohort))
    split = np.where(order < 0.7 * len(cohort), "train", np.where(order < 0.8 * len(cohort), "val", "test"))
    splits = pd.DataFrame({"patient": cohort["patient"], "seed": 1, "split": split})
    write_parquet(cohort, tmp_path / "NSCLC.parquet")
    write_parquet(splits, tmp_path / "NSCLC_splits.parquet")
    out = tmp_path / "text" / "NSCLC_seed1_prompts.parquet"
    assert main(["prompts", "--site", "NSCLC", "--seed", "1", "--cohort", str(tmp_path / "NSCLC.parquet"),
                 "--splits", str(tmp_path / "NSCLC_splits.parquet"), "--out", str(out)]) == 0
    prompts, meta = read_parquet(out)
    assert list(prompts.columns) == ["patient", "task", "prompt"]
    assert len(prompts) == 4 * len(cohort) and set(prompts["task"]) == set(TASKS)
    train_times = cohort.loc[split == "train", "time_months"]
    assert meta["duration_bins"]["edges"][1] == pytest.approx(np.quantile(train_times, 0.25))
    assert meta["unknown_stage_values"] == []
    first = cohort.iloc[0]  # TCGA-18-3406: Stage IA, T1, N0, M0, dead at 12.2 months
    assert prompt_of(prompts, first["patient"], "general").startswith(
        "Cancer location: lung; Cancer diagnosis: lung squamous cell carcinoma; Overall stage: stage one; "
        "Tumor stage status: tumor stage one; Lymph node status: cancer has not spread to lymph nodes; "
        "Distant metastasis status: no metastasis detected; Survival status: The patient died "
    )
    assert all("  " not in text for text in prompts["prompt"])


# --- random projector --------------------------------------------------------------------------------------------


def test_projector_equals_upstream_conv_projector_and_round_trips_through_safetensors(tmp_path):
    from safetensors.torch import load_file, save_file

    from modaltune.text.projector import RandomProjector

    projector = RandomProjector(512, 256, seed=7)
    torch.manual_seed(7)  # upstream: set_seed(seed), then Projection_layer is the first random draw
    conv1, norm, conv2 = torch.nn.Conv2d(512, 256, 1), torch.nn.LayerNorm([256, 1, 1]), torch.nn.Conv2d(256, 256, 1)
    text = torch.randn(4, 512)
    upstream = conv2(torch.relu(norm(conv1(text[:, :, None, None]))))[:, :, 0, 0]
    torch.testing.assert_close(projector(text), torch.nn.functional.normalize(upstream, dim=-1))
    assert not any(True for _ in projector.parameters())  # frozen: nothing for an optimiser

    save_file(projector.to_dict(), tmp_path / "projector.safetensors")
    restored = RandomProjector.from_state_dict(load_file(tmp_path / "projector.safetensors"))
    assert (restored.in_dim, restored.out_dim, restored.seed) == (512, 256, 7)
    torch.testing.assert_close(restored(text), projector(text), rtol=0, atol=0)
    assert not torch.equal(RandomProjector(512, 256, seed=8).weight1, projector.weight1)


# --- MiniLM ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def minilm():
    """The bundled MiniLM, loaded with the hub switched off and every network connection refused."""
    import socket

    from modaltune.text.encoders import create_text_encoder

    def no_network(*args, **kwargs):
        raise OSError("network access attempted while loading the bundled MiniLM")

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        patch.setattr(socket.socket, "connect", no_network)
        patch.setattr(socket, "create_connection", no_network)
        encoder = create_text_encoder("minilm", device="cpu")
        yield encoder


def test_minilm_gives_deterministic_384d_unit_vectors_offline(minilm):
    from modaltune.text.encoders import embed_prompts

    texts = [REFERENCE_EXAMPLE, "Cancer location: lung; Cancer diagnosis: lung adenocarcinoma", REFERENCE_EXAMPLE]
    first = minilm.encode(texts, batch_size=2)
    second = minilm.encode(texts, batch_size=2)
    assert first.shape == (3, 384) and first.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(first, second)
    np.testing.assert_array_equal(first[0], first[2])
    assert float(first[0] @ first[1]) < 0.95  # different prompts, different vectors

    prompts = pd.DataFrame({"patient": ["a", "a", "b"], "task": ["general", "subtype", "general"], "prompt": texts})
    table = embed_prompts(prompts, minilm, batch_size=8)
    assert list(table.columns) == ["patient", "task", "embedding"]
    np.testing.assert_allclose(np.stack(table["embedding"]), first, atol=1e-5)


def test_embed_text_command_writes_the_cache_contract(tmp_path):
    from modaltune.cli import main
    from modaltune.io import read_parquet, write_parquet

    prompts = pd.DataFrame({"patient": ["TCGA-A1-0001"] * 4, "task": list(TASKS), "prompt": [REFERENCE_EXAMPLE] * 4})
    write_parquet(prompts, tmp_path / "BRCA_seed0_prompts.parquet", metadata={"site": "BRCA", "seed": 0})
    out = tmp_path / "BRCA_seed0_minilm.parquet"
    assert main(["embed-text", "--prompts", str(tmp_path / "BRCA_seed0_prompts.parquet"), "--encoder", "minilm",
                 "--out", str(out), "--params", '{"device": "cpu"}']) == 0
    table, meta = read_parquet(out)
    assert list(table.columns) == ["patient", "task", "embedding"]
    assert np.stack(table["embedding"]).shape == (4, 384) and table["embedding"].iloc[0].dtype == np.float32
    assert meta["text_encoder"] == "minilm" and meta["dim"] == 384 and meta["seed"] == 0


# --- CONCH text tower from a tiny checkpoint under CONCH's key names ---------------------------------------------


@pytest.fixture(scope="module")
def conch_files(tmp_path_factory):
    """A byte-level BPE tokenizer laid out like CONCH's and a tiny random CoCa checkpoint with CONCH's key names."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    from modaltune.text.conch import ConchTextTower

    folder = tmp_path_factory.mktemp("conch")
    tokenizer = Tokenizer(models.BPE())
    tokenizer.normalizer = normalizers.Sequence([normalizers.NFD(), normalizers.StripAccents(), normalizers.Lowercase()])
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=["<pad>", "<start_of_text>", "<end_of_text>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator([REFERENCE_EXAMPLE, "Cancer location: lung; Overall stage: stage three"], trainer)
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<start_of_text> $A <end_of_text>", special_tokens=[("<start_of_text>", 1), ("<end_of_text>", 2)]
    )
    tokenizer.save(str(folder / "tokenizer.json"))

    torch.manual_seed(0)
    tower = ConchTextTower(vocab_size=tokenizer.get_vocab_size(), width=32, layers=2, heads=4, output_dim=16)
    for parameter in tower.parameters():
        torch.nn.init.normal_(parameter, std=0.2)
    state = {f"text.{k}": v for k, v in tower.state_dict().items()}
    state.update({"visual.trunk.pos_embed": torch.zeros(1, 5, 8), "text_decoder.ln_final.weight": torch.ones(32),
                  "logit_scale": torch.tensor(2.0)})
    torch.save(state, folder / "pytorch_model.bin")
    return folder, tower, state


def test_conch_text_tower_loads_strictly_and_gives_unit_vectors(conch_files):
    from modaltune.text.conch import ConchTokenizer, load_conch_text_tower
    from modaltune.text.encoders import create_text_encoder

    folder, original, _ = conch_files
    tower = load_conch_text_tower(folder / "pytorch_model.bin", heads=4)
    for key, value in original.state_dict().items():
        assert torch.equal(tower.state_dict()[key], value), key

    tokenizer = ConchTokenizer(folder / "tokenizer.json")
    tokens = tokenizer([REFERENCE_EXAMPLE, "lung " * 300])
    assert tokens.shape == (2, 128) and tokens.dtype == torch.long
    assert tokens[0, 0] == 1 and 2 in tokens[0].tolist() and tokens[0, -1] == 0  # start, end, CLS slot = <pad>
    assert tokens[1, 126] == 2 and tokens[1, 127] == 0  # truncated to 127 incl. <end_of_text>, then the CLS slot
    # the same ids as CONCH's tokenize(): transformers' fast tokenizer, max_length 127, padded, one <pad> appended
    from transformers import PreTrainedTokenizerFast

    reference = PreTrainedTokenizerFast(tokenizer_file=str(folder / "tokenizer.json"), bos_token="<start_of_text>",
                                        eos_token="<end_of_text>", pad_token="<pad>")
    ids = reference([REFERENCE_EXAMPLE, "lung " * 300], max_length=127, truncation=True, padding="max_length",
                    return_tensors="pt")["input_ids"]
    assert torch.equal(tokens, torch.nn.functional.pad(ids, (0, 1), value=0))

    encoder = create_text_encoder("conch", checkpoint=str(folder / "pytorch_model.bin"),
                                  tokenizer=str(folder / "tokenizer.json"), heads=4, device="cpu")
    vectors = encoder.encode([REFERENCE_EXAMPLE, "Cancer location: lung"])
    assert vectors.shape == (2, 16) and encoder.dim == 16
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(vectors, encoder.encode([REFERENCE_EXAMPLE, "Cancer location: lung"]))

    # each prompt's padding mask is its own: a prompt's vector does not depend on the others in its batch
    with torch.no_grad():
        alone = tower(tokens[:1])
        torch.testing.assert_close(tower(tokens)[:1], alone)
        changed_text = tokens[:1].clone()
        changed_text[0, 3] = 7
        assert not torch.allclose(tower(changed_text), alone)


def test_conch_checkpoint_with_a_missing_or_extra_text_key_is_refused(conch_files, tmp_path):
    from modaltune.text.conch import load_conch_text_tower

    folder, _, state = conch_files
    missing = {k: v for k, v in state.items() if k != "text.ln_final.weight"}
    torch.save(missing, tmp_path / "missing.bin")
    with pytest.raises(KeyError, match=r"missing \['text.ln_final.weight'\]"):
        load_conch_text_tower(tmp_path / "missing.bin", heads=4)
    extra = dict(state, **{"text.transformer.resblocks.0.ls_1.gamma": torch.ones(32)})
    torch.save(extra, tmp_path / "extra.bin")
    with pytest.raises(KeyError, match="unexpected.*ls_1.gamma"):
        load_conch_text_tower(tmp_path / "extra.bin", heads=4)
    # DataParallel/Lightning wrappers are unwrapped as CONCH's loader does
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, tmp_path / "wrapped.bin")
    load_conch_text_tower(tmp_path / "wrapped.bin", heads=4)
    with pytest.raises(FileNotFoundError, match="text.conch.checkpoint"):
        load_conch_text_tower(tmp_path / "absent.bin")
    with pytest.raises(ValueError, match="text.conch.tokenizer"):
        from modaltune.text.encoders import create_text_encoder

        create_text_encoder("conch", checkpoint=str(folder / "pytorch_model.bin"), tokenizer=None)


# --- text probe on prompts from real clinical tables -------------------------------------------------------------


RELEASE_SPLITS = {"train": "train", "val": "val", "test": "test"}


def release_cohort(real_data, site: str, per_split: dict[str, int]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The official release's records of one site (json_splits/tcga_{site}) as a cohort table and its split (seed 0):
    one row per patient (its first slide's record), the first ``per_split[split]`` patients of each split file."""
    import json

    folder = real_data / "modaltune_release" / "json_splits" / f"tcga_{site.lower()}"
    rows, splits = [], []
    for split, count in per_split.items():
        records = json.loads((folder / f"{split}_{site.lower()}_cls_feat.json").read_text())["data"]
        first = list({r["case_submitter_id"]: r for r in reversed(records)}.values())[::-1][:count]
        for r in first:
            rows.append({
                "patient": r["case_submitter_id"], "site": site, "project": r["project_id"].removeprefix("TCGA-"),
                "diagnosis": r["primary_diagnosis"], "subtype_class": int(r["primary_class"]),
                "time_months": float(r["durations"]), "event": int(r["vital_status"]),
                "stage": r["ajcc_pathologic_stage"], "t_stage": r["ajcc_pathologic_t"],
                "n_stage": r["ajcc_pathologic_n"], "m_stage": r["ajcc_pathologic_m"],
                "age": float(r["age_at_index"]) if r["age_at_index"] not in (None, "", "'--") else np.nan,
                "has_rna": bool(r["gene_availability"]),
            })
            splits.append({"patient": r["case_submitter_id"], "seed": 0, "split": split})
    return pd.DataFrame(rows), pd.DataFrame(splits)


def test_text_probe_separates_subtypes_from_the_release_records(real_data, minilm, tmp_path):
    """Prompts from the official release's records (stages, TNM, survival months, vital status) of three sites; the
    subtype is near-perfectly separable from the subtype and general prompts (they name the diagnosis), and not from
    the survival prompt (location, stage and survival only): the control that the probe reads the prompt's content."""
    from modaltune.cli import main
    from modaltune.io import write_parquet
    from modaltune.text.encoders import embed_prompts

    prompts_used = ["general", "subtype", "survival"]
    site_args = []
    for site in ("BRCA", "NSCLC", "RCC"):
        cohort, splits = release_cohort(real_data, site, {"train": 60, "test": 40})
        prompts = prompts_for_seed(cohort, splits, site, seed=0)
        assert not prompts.unknown, prompts.unknown  # every release stage/TNM value is in the phrase tables
        general = prompt_of(prompts.prompts, cohort["patient"].iloc[0], "general")
        assert "Cancer diagnosis: " in general and "Overall stage: stage " in general and "months" in general
        chosen = prompts.prompts[prompts.prompts["task"].isin(prompts_used)]
        write_parquet(cohort, tmp_path / f"{site}.parquet")
        write_parquet(splits, tmp_path / f"{site}_splits.parquet")
        write_parquet(embed_prompts(chosen, minilm, batch_size=64), tmp_path / f"{site}_seed0.parquet",
                      metadata={"seed": 0})
        site_args += ["--site", site, *(str(tmp_path / name) for name in
                                        (f"{site}.parquet", f"{site}_splits.parquet", f"{site}_seed0.parquet"))]

    csv, markdown = tmp_path / "tables" / "text_probe.csv", tmp_path / "tables" / "text_probe.md"
    assert main(["text-probe", *site_args, "--csv", str(csv), "--markdown", str(markdown)]) == 0
    results = pd.read_csv(csv)
    assert len(results) == 3 * len(prompts_used) * 2 and (results["n_test"] == 40).all()
    assert set(zip(results["projector"], results["dim"], strict=True)) == {("none", 384), ("random", 256)}
    accuracy = results.set_index(["site", "prompt", "projector"])["subtype_balanced_accuracy"]
    for site in ("BRCA", "NSCLC", "RCC"):
        for projector in ("none", "random"):
            assert accuracy[(site, "subtype", projector)] >= 0.95, (site, projector)
            assert accuracy[(site, "general", projector)] >= 0.9, (site, projector)
            assert accuracy[(site, "survival", projector)] <= 0.8, (site, projector)
    table = markdown.read_text()
    assert "| BRCA   | subtype  | random" in table and " ± " in table


def conch_text_keys(vocab=32007, width=768, layers=12, output_dim=512, context_length=128):
    """Reference data-formats.md section 8: the `text.*` keys of CONCH's pytorch_model.bin with shapes (CoCa text
    tower, embed_cls True; open_clip's TextTransformer names), written out by hand."""
    keys = {"text.text_projection": (width, output_dim), "text.cls_emb": (width,),
            "text.token_embedding.weight": (vocab, width), "text.positional_embedding": (context_length, width),
            "text.ln_final.weight": (width,), "text.ln_final.bias": (width,)}
    for layer in range(layers):
        prefix = f"text.transformer.resblocks.{layer}."
        keys[f"{prefix}attn.in_proj_weight"], keys[f"{prefix}attn.in_proj_bias"] = (3 * width, width), (3 * width,)
        keys[f"{prefix}attn.out_proj.weight"], keys[f"{prefix}attn.out_proj.bias"] = (width, width), (width,)
        for norm in ("ln_1", "ln_2"):
            keys[f"{prefix}{norm}.weight"], keys[f"{prefix}{norm}.bias"] = (width,), (width,)
        keys[f"{prefix}mlp.c_fc.weight"], keys[f"{prefix}mlp.c_fc.bias"] = (4 * width, width), (4 * width,)
        keys[f"{prefix}mlp.c_proj.weight"], keys[f"{prefix}mlp.c_proj.bias"] = (width, 4 * width), (width,)
    return keys


def test_conch_text_tower_has_conchs_text_key_set():
    from modaltune.text.conch import ConchTextTower

    with torch.device("meta"):
        tower = ConchTextTower()
    assert {f"text.{k}": tuple(v.shape) for k, v in tower.state_dict().items()} == conch_text_keys()


def test_conch_text_tower_equals_open_clips_text_transformer(tmp_path):
    """An independent implementation: open_clip's TextTransformer (the code CONCH's CoCa forks) with a tiny CONCH-like
    config -- CLS embedding appended, causal mask, the CLS row masking padding, a text projection -- saved under
    CONCH's key names and loaded with our loader, gives the same vectors."""
    from open_clip.transformer import TextTransformer

    from modaltune.text.conch import load_conch_text_tower

    torch.manual_seed(0)
    slots = 16  # tokens per prompt incl. the CLS slot (CONCH: 128)
    reference = TextTransformer(context_length=slots - 1, vocab_size=50, width=32, heads=4, layers=2, output_dim=16,
                                embed_cls=True, pad_id=0).eval()
    with torch.no_grad():  # every weight non-trivial, biases and LayerNorms included
        for parameter in reference.parameters():
            parameter.add_(0.2 * torch.randn_like(parameter))
    torch.save({f"text.{k}": v for k, v in reference.state_dict().items()}, tmp_path / "pytorch_model.bin")
    tower = load_conch_text_tower(tmp_path / "pytorch_model.bin", heads=4)

    lengths = [slots - 1, 9, 4, 2]  # a full prompt and padded ones: the padding mask matters
    tokens = torch.zeros(len(lengths), slots, dtype=torch.long)  # <pad> = 0, the last slot the CLS placeholder
    for row, length in enumerate(lengths):
        tokens[row, :length] = torch.randint(3, 50, (length,))
    with torch.no_grad():
        expected = reference(tokens[:, :-1])
        torch.testing.assert_close(tower(tokens, normalize=False), expected, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(tower(tokens), torch.nn.functional.normalize(expected, dim=-1))
