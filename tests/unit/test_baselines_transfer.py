"""A trained baseline as a feature extractor on another site (paper Table 3's `Gigapath Cls./Surv. (cat)` rows): the
kept weights, the embedding without the prediction layer, genes scaled on the target's training split, and the
`baseline-ood` command's embeddings and probes."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from synthetic_site import site_data, write_site

from modaltune.baselines.base import PatientInput
from modaltune.baselines.train import train_baseline
from modaltune.baselines.transfer import embed_patients, load_weights
from modaltune.config import validate
from modaltune.features import write_features
from modaltune.models.slide_encoder import SLIDE_ENCODERS
from modaltune.omics import GeneScaler
from modaltune.training.bags import cap_indices
from modaltune.training.checkpoint import save_tensors

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TILE_DIM = SLIDE_ENCODERS["tiny"].in_chans
GENES = [f"G{i}" for i in range(8)]
PATHWAYS = [[0, 1, 2], [3, 4, 5, 6, 7]]
SLIDE_ENCODER = {"name": "tiny", "weights": None, "checkpointing": False, "depth": 2}
MODEL = {"genes": {"output_dim": 8, "latent_dim": 8, "depth": 1, "tokens": 4, "dropout": 0.0}, "fusion_dim": 16,
         "lr": 1e-3}
TRAINING = {"epochs": 1, "warmup_epochs": 0, "accumulate": 2, "tile_cap": 12, "eval_tile_cap": 9, "device": "cpu",
            "precision": "fp32", "threads": 1}


@pytest.fixture(scope="module")
def sites(tmp_path_factory):
    """Source S1 and target S2, 40 patients each; S2's genes sit far from S1's, and its test patients' genes far
    from its training patients' (a scaler fitted on the wrong patients gives other embeddings)."""
    root = tmp_path_factory.mktemp("results")
    rng = np.random.default_rng(1)
    split_of = ["train"] * 28 + ["val"] * 4 + ["test"] * 8
    for site, offset in (("S1", 0.0), ("S2", 10.0)):
        rows, omics = [], []
        for i, split in enumerate(split_of):
            patient, label = f"TCGA-{site}-{i:04d}", i % 2
            slide = f"{patient}-01Z-00-DX1"
            n = int(rng.integers(6, 16))
            write_features(root / "features" / "tiny" / f"{slide}.h5", rng.normal(size=(n, TILE_DIM)) + label,
                           rng.integers(0, 20, (n, 2)) * 256, {"encoder": "tiny", "mpp": 0.5, "tile_px_level0": 256})
            rows.append({"patient": patient, "subtype": f"type{label}", "subtype_class": label, "slides": [slide],
                         "time_months": float(np.exp(rng.normal(3 - 0.3 * label, 0.6))), "event": int(i % 3 != 0)})
            shift = offset + 5.0 * (split == "test") * (site == "S2")
            omics.append({"patient": patient, **{g: float(rng.normal(shift + label)) for g in GENES}})
        write_site(root, site, rows, split_of, omics)
    pd.DataFrame([(f"p{p}", GENES[g]) for p, members in enumerate(PATHWAYS) for g in members],
                 columns=["pathway", "gene"]).to_parquet(root / "omics" / "pathways.parquet")
    return root


def section():
    return validate({"baselines": {"training": TRAINING, "gigapath_cat": MODEL}})["baselines"]


@pytest.fixture(scope="module")
def trained(sites, tmp_path_factory):
    """gigapath_cat trained on S1 for the subtype task, its selected weights kept."""
    stem = tmp_path_factory.mktemp("run") / "subtype"
    data = site_data(sites, "S1")
    record = train_baseline("gigapath_cat", data, "subtype", section(), data.inputs(PATHWAYS, SLIDE_ENCODER),
                            device=torch.device("cpu"), seed=0, out_stem=stem, keep_weights=True)
    assert record["status"] == "ok"
    return stem.with_suffix(".safetensors")


def test_kept_weights_rebuild_the_model_and_embed_the_target_without_its_head(sites, trained):
    target = site_data(sites, "S2")
    model, metadata = load_weights(trained, target.inputs(PATHWAYS, SLIDE_ENCODER), target.experiment.gene_names)
    assert (metadata["model"], metadata["site"], metadata["task"], metadata["n_outputs"]) == (
        "gigapath_cat", "S1", "subtype", "2")

    class NoHead(torch.nn.Module):
        def forward(self, x):
            raise AssertionError("the prediction layer was used")

    model.head = NoHead()
    frame = embed_patients(model, target, TRAINING["eval_tile_cap"], torch.device("cpu"))
    patients = target.experiment.patients
    assert frame["patient"].tolist() == patients["patient"].tolist() and set(frame["task"]) == {"general"}
    assert frame["split"].tolist() == patients["split"].tolist()
    vectors = np.stack(frame["embedding"])
    assert vectors.shape == (40, 16)  # the fused vector (fusion_dim), not the 2 logits

    # Reference: genes z-scored with statistics of S2's training patients only; evenly spaced tiles up to the cap.
    raw = pd.read_parquet(sites / "omics" / "S2.parquet").set_index("patient")
    scaled = GeneScaler().fit(raw.loc[target.experiment.split_patients("train")]).transform(raw)
    everyone = GeneScaler().fit(raw).transform(raw)
    for index in (0, 36):  # a training and a test patient
        patient = patients["patient"].iloc[index]
        bag = target.experiment.bag(patient)
        keep = cap_indices(len(bag), TRAINING["eval_tile_cap"], None)
        features, coords = torch.from_numpy(bag.features[keep]), torch.from_numpy(bag.coords[keep])
        with torch.no_grad():
            expected = model.embed(PatientInput(features, coords,
                                                torch.tensor(scaled.loc[patient].to_numpy(np.float32))))
            pooled = model.embed(PatientInput(features, coords,
                                              torch.tensor(everyone.loc[patient].to_numpy(np.float32))))
        np.testing.assert_allclose(vectors[index], expected.numpy(), rtol=1e-5, atol=1e-6)
        assert not np.allclose(vectors[index], pooled.numpy(), atol=1e-3)  # target-train only, not every patient


def test_a_skipped_source_run_or_other_genes_are_refused_with_the_file(sites, trained, tmp_path):
    target = site_data(sites, "S2")
    inputs = target.inputs(PATHWAYS, SLIDE_ENCODER)
    with pytest.raises(ValueError, match=r"subtype.safetensors: trained on 8 gene columns, the target site has 7"):
        load_weights(trained, inputs, GENES[:7])
    skipped = tmp_path / "survival.safetensors"
    save_tensors({}, skipped, metadata={"model": "gigapath_cat", "skipped": "site S1, task survival: 1 event(s)"})
    with pytest.raises(ValueError, match=r"survival.safetensors: the source run was skipped \(site S1"):
        load_weights(skipped, inputs, GENES)


def test_the_command_keeps_weights_then_embeds_and_probes_the_target(sites, tmp_path):
    from modaltune.cli import main

    params = json.dumps({"baselines": section(), "slide_encoder": {"name": "tiny"}})
    common = ["--seeds", "0", "--tasks", "subtype", "survival", "--tile-encoder", "tiny", "--gap-px", "1500",
              "--params", params]
    assert main(["baseline", "--models", "gigapath_cat", "--site", "S1", "--results", str(sites),
                 "--out", str(tmp_path / "baselines"), "--keep-weights", "gigapath_cat", *common]) == 0
    for task in ("subtype", "survival"):
        assert (tmp_path / "baselines" / "gigapath_cat" / "S1" / "seed0" / f"{task}.safetensors").exists()
    (tmp_path / "results").mkdir()
    for folder in ("cohort", "omics", "features"):
        (tmp_path / "results" / folder).symlink_to(sites / folder)
    (tmp_path / "results" / "baselines").symlink_to(tmp_path / "baselines")
    assert main(["baseline-ood", "--model", "gigapath_cat", "--runs", "S1:S2", "--results", str(tmp_path / "results"),
                 "--out", str(tmp_path / "ood"), *common]) == 0
    for task in ("subtype", "survival"):
        probe = json.loads((tmp_path / "ood" / "probes" / f"gigapath_cat_{task}" / "S1" / "S2" / "seed0.json")
                           .read_text())
        assert (probe["experiment"], probe["source"], probe["site"], probe["seed"]) == (
            f"gigapath_cat_{task}", "S1", "S2", 0)
        assert 0 <= probe["subtype"]["balanced_accuracy"] <= 1 and 0 <= probe["survival"]["c_index"] <= 1
        embeddings = pd.read_parquet(tmp_path / "ood" / "embeddings" / f"gigapath_cat_{task}" / "S1" / "S2" /
                                     "seed0.parquet")
        assert len(embeddings) == 40 and len(embeddings["embedding"].iloc[0]) == 16
