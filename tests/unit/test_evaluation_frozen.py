"""The Gigapath LP baseline (frozen slide encoder), out-of-distribution table rows and the joint t-SNE points."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from synthetic_site import write_site

from modaltune.config import validate
from modaltune.evaluation.frozen import embed_frozen, encoder_sha256, frozen_encoder
from modaltune.features import write_features
from modaltune.models.modaltune import build_modaltune
from modaltune.plots.tsne import joint_points
from modaltune.report import collect_probes, results_table, write_tables
from modaltune.text.projector import RandomProjector
from modaltune.training.data import SiteFiles
from modaltune.training.loop import encoder_fingerprint

TILE_DIM = 96  # the tiny slide encoder's input


@pytest.fixture(autouse=True)
def one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """8 patients with 1-2 slides; one without expression data, one whose only slide has no tile."""
    root = tmp_path_factory.mktemp("results")
    rng = np.random.default_rng(1)
    rows, omics = [], []
    for i in range(8):
        patient = f"TCGA-BB-{i:04d}"
        slides = [f"{patient}-01Z-00-DX{k + 1}" for k in range(1 + i % 2)]
        for slide in slides:
            n = 0 if i == 7 else int(rng.integers(6, 20))
            coords = np.stack([rng.permutation(30)[:n], rng.permutation(30)[:n]], axis=1) * 512
            write_features(root / "features" / "tiny" / f"{slide}.h5", rng.normal(size=(n, TILE_DIM)), coords,
                           {"encoder": "tiny", "mpp": 0.5, "tile_px_level0": 512})
        rows.append({"patient": patient, "subtype_class": i % 2, "slides": slides})
        if i != 6:
            omics.append({"patient": patient, "G0": float(rng.normal()), "G1": float(rng.normal())})
    splits = ["train", "train", "train", "val", "test", "test", "train", "test"]
    write_site(root, "S1", rows, splits, omics, seed=3)
    return root


def files(root):
    return SiteFiles("S1", root / "cohort" / "S1.parquet", root / "cohort" / "S1_splits.parquet",
                     root / "omics" / "S1.parquet", root / "features" / "tiny" / "S1.manifest.parquet")


def test_frozen_embedding_is_the_encoders_pooled_output_of_the_patient_bag(site, tmp_path):
    section = {"name": "tiny", "weights": None, "checkpointing": False}
    frame = embed_frozen(files(site), 3, tmp_path / "lp.parquet", slide_encoder=section,
                         pool="cls", tile_cap=None, gap_px=1500, device="cpu", precision="fp32")
    # ModalTune's patients: no expression row (patient 6) or no tile (patient 7) -> left out, as in training
    assert frame["patient"].tolist() == [f"TCGA-BB-{i:04d}" for i in range(6)]
    assert set(frame["task"]) == {"general"}
    assert frame["split"].tolist() == ["train", "train", "train", "val", "test", "test"]
    assert pd.read_parquet(tmp_path / "lp.parquet")["embedding"].map(len).eq(64).all()

    # A one-slide patient: its tiles in row-major order, straight through the seeded encoder.
    from modaltune.features import read_features

    features, coords, _ = read_features(site / "features" / "tiny" / "TCGA-BB-0000-01Z-00-DX1.h5")
    order = np.lexsort((coords[:, 0], coords[:, 1]))
    encoder = frozen_encoder(section, seed=3)
    with torch.no_grad():
        expected = encoder(torch.from_numpy(features[order])[None], torch.from_numpy(coords[order])[None])[0][0]
    np.testing.assert_allclose(frame["embedding"].iloc[0], expected.numpy(), rtol=1e-5, atol=1e-6)

    # The deterministic tile cap: the same embeddings twice, and a cap changes the capped patients only.
    capped = embed_frozen(files(site), 3, tmp_path / "capped.parquet",
                          slide_encoder=section, pool="cls", tile_cap=8, gap_px=1500, device="cpu", precision="fp32")
    again = embed_frozen(files(site), 3, tmp_path / "again.parquet",
                         slide_encoder=section, pool="cls", tile_cap=8, gap_px=1500, device="cpu", precision="fp32")
    assert all(np.array_equal(a, b) for a, b in zip(capped["embedding"], again["embedding"], strict=True))
    assert not np.allclose(capped["embedding"].iloc[0], frame["embedding"].iloc[0])


def test_frozen_encoder_is_the_one_modaltune_of_the_same_seed_starts_from():
    config = validate({"model": {"omics": {"latent_dim": 8, "depth": 1, "tokens": 4},
                                 "adapter": {"heads": 2}},
                       "slide_encoder": {"name": "tiny"}})
    torch.manual_seed(5)  # what the training run does before building its model
    model = build_modaltune(dict(config["model"], output_dim=16), config["slide_encoder"], [[0, 1], [1]], 2)
    assert encoder_sha256(frozen_encoder(config["slide_encoder"], seed=5)) == encoder_fingerprint(model)
    assert encoder_sha256(frozen_encoder(config["slide_encoder"], seed=6)) != encoder_fingerprint(model)


def test_ood_rows_are_labelled_by_training_site_and_keep_their_order(tmp_path):
    paths = []
    for experiment, source, site, seed, value in [
        ("gigapath_lp", None, "RCC", 0, 0.40), ("gigapath_lp", None, "RCC", 1, 0.50),
        ("modaltune", "NSCLC", "RCC", 0, 0.70), ("modaltune", "NSCLC", "RCC", 1, 0.80),
        ("modaltune", "RCC", "NSCLC", 0, 0.60), ("modaltune", "RCC", "NSCLC", 1, 0.62),
    ]:
        probe = {"experiment": experiment, "site": site, "seed": seed,
                 "subtype": {"balanced_accuracy": value}, "survival": {"c_index": value / 2}}
        if source:
            probe["source"] = source
        paths.append(tmp_path / f"{experiment}_{source}_{site}_{seed}.json")
        paths[-1].write_text(json.dumps(probe))
    table = results_table(collect_probes(paths))
    cell = table[(table.task == "subtype") & (table.source == "NSCLC")].iloc[0]
    assert (cell["site"], cell["mean"]) == ("RCC", pytest.approx(0.75))
    assert cell["std"] == pytest.approx(np.std([0.7, 0.8], ddof=1))
    written = write_tables(table, tmp_path / "ood", {"gigapath_lp": "Gigapath LP", "modaltune": "ModalTune"})
    markdown = written[1].read_text()
    lines = [line for line in markdown.splitlines() if line.startswith("| ") and "Method" not in line]
    assert [line.split("|")[1].strip() for line in lines[:3]] == [
        "Gigapath LP", "ModalTune (trained on NSCLC)", "ModalTune (trained on RCC)"]
    assert "0.750 ± 0.071" in markdown and "–" in markdown  # NSCLC-trained model has no NSCLC cell
    assert set(pd.read_csv(written[0])["source"].fillna("")) == {"", "NSCLC", "RCC"}


def test_joint_points_project_the_text_and_share_the_unit_sphere():
    rng = np.random.default_rng(0)
    patients = [f"TCGA-CC-{i:04d}" for i in range(5)]
    embeddings = pd.DataFrame({"patient": patients * 2, "task": ["general"] * 5 + ["survival"] * 5,
                               "embedding": list(rng.normal(size=(10, 16)))})
    text = pd.DataFrame({"patient": patients + ["TCGA-CC-9999"], "task": "general",
                         "embedding": list(rng.normal(size=(6, 12)).astype(np.float32))})
    cohort = pd.DataFrame({"patient": patients + ["TCGA-CC-9999"], "site": "S1", "subtype": ["a", "b"] * 3})
    points = joint_points([embeddings], cohort, [text], projector_dim=16, seed=2)
    assert points["source"].value_counts().to_dict() == {"patient": 5, "text": 5}  # only probed patients' text
    vectors = np.stack(points["embedding"])
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-6)
    projected = RandomProjector(12, 16, seed=2)(torch.tensor(np.stack(text["embedding"][:5]))).numpy()
    np.testing.assert_allclose(np.stack(points.loc[points.source == "text", "embedding"]), projected, atol=1e-6)
    with pytest.raises(ValueError, match="only models trained on the text"):
        joint_points([embeddings], cohort, [text], projector_dim=8, seed=2)
    alone = joint_points([embeddings], cohort)
    assert len(alone) == 5 and np.allclose(np.stack(alone["embedding"]), np.stack(embeddings["embedding"][:5]))
