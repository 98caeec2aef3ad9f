"""Multimodal baselines (issue 17): MCAT, SurvPath and the late-fusion (cat) / (KP) models. Shapes and gradients,
parameter counts against the reference, SurvPath's attention mask, the Kronecker product, reuse of the unimodal
encoders, the memory guard, and a synthetic XOR task that only a model reading both modalities can solve."""

import numpy as np
import pandas as pd
import pytest
import torch
from synthetic_site import site_data, write_site
from test_baselines import INPUTS, N_GENES, PATHWAYS, TILE_DIM

from modaltune.baselines import BASELINES, create_baseline
from modaltune.baselines.abmil import ABMIL
from modaltune.baselines.base import BaselineInputs, PatientInput
from modaltune.baselines.fusion import ConcatFusion, KroneckerFusion
from modaltune.baselines.gigapath_tuned import GigapathTuned
from modaltune.baselines.late_fusion import LateFusion
from modaltune.baselines.pathway_omics import GeneMixer
from modaltune.baselines.train import train_baseline
from modaltune.baselines.transmil import TransMIL
from modaltune.config import schema, validate
from modaltune.features import write_features

pytestmark = pytest.mark.usefixtures("one_torch_thread")

GENES = {"output_dim": 16, "latent_dim": 8, "depth": 1, "tokens": 4}
ABMIL_SMALL = {"hidden_dim": 16, "attention_dim": 8}
TRANSMIL_SMALL = {"dim": 16, "heads": 2, "landmarks": 8}
SMALL = {
    "mcat": {"dim": 16, "heads": 2, "ffn_dim": 32},
    "survpath": {"dim": 16, "head_dim": 8, "hidden_dim": 8},
    "abmil_cat": {"image": ABMIL_SMALL, "genes": GENES, "fusion_dim": 16},
    "abmil_kp": {"image": ABMIL_SMALL, "genes": GENES, "fusion_dim": 16, "kp_dim": 4},
    "transmil_cat": {"image": TRANSMIL_SMALL, "genes": GENES, "fusion_dim": 16},
    "transmil_kp": {"image": TRANSMIL_SMALL, "genes": GENES, "fusion_dim": 16, "kp_dim": 4},
    "gigapath_cat": {"genes": GENES, "fusion_dim": 16},
    "gigapath_kp": {"genes": GENES, "fusion_dim": 16, "kp_dim": 4},
}
MULTIMODAL = [name for name, spec in BASELINES.items() if spec.modality == "multimodal"]
# Parameters whose gradient is zero up to rounding: a constant added to every attention score cancels in the softmax,
# and Gene Mixer's compression bias adds one constant to every channel of the mean token, which its LayerNorm removes.
SHIFT_INVARIANT = ("pool.score.bias", "genes.encoder.compress.bias")
IMAGE_CLASS = {"abmil": ABMIL, "transmil": TransMIL, "gigapath": GigapathTuned}


def test_registered_in_table_2_order_with_config_sections():
    assert MULTIMODAL == ["mcat", "survpath", "abmil_cat", "abmil_kp", "transmil_cat", "transmil_kp",
                          "gigapath_cat", "gigapath_kp"]
    assert [BASELINES[n].label for n in MULTIMODAL] == ["MCAT", "SurvPath", "ABMIL (cat)", "ABMIL (KP)",
                                                        "TransMIL (cat)", "TransMIL (KP)", "Gigapath (cat)",
                                                        "Gigapath (KP)"]
    assert schema()["properties"]["baselines"]["properties"]["models"]["items"]["enum"] == list(BASELINES)
    defaults = validate({"baselines": {}})["baselines"]
    assert set(MULTIMODAL) <= set(defaults["models"])
    # A late-fusion section nests its branches' architectures, defaulted like the unimodal sections.
    assert defaults["abmil_kp"]["image"] == {k: defaults["abmil"][k] for k in ("hidden_dim", "attention_dim",
                                                                               "dropout")}
    assert defaults["abmil_kp"]["genes"] == {k: v for k, v in defaults["gene_mixer"].items()
                                             if k not in ("lr", "weight_decay")}


def patient(rng, tiles=23, genes=True):
    return PatientInput(torch.tensor(rng.normal(size=(tiles, TILE_DIM)), dtype=torch.float32),
                        torch.from_numpy(rng.integers(0, 30, (tiles, 2)) * 256),
                        torch.tensor(rng.normal(size=N_GENES), dtype=torch.float32) if genes else None)


@pytest.mark.parametrize("name", MULTIMODAL)
def test_shapes_and_gradient_reaches_every_trainable_parameter(name):
    torch.manual_seed(0)
    model = create_baseline(name, 3, INPUTS, **SMALL[name]).eval()  # no dropout: every path is live
    sample = patient(np.random.default_rng(0))
    assert model.embed(sample).shape == (model.embed_dim,)
    logits = model(sample)
    assert logits.shape == (3,) and torch.isfinite(logits).all()
    logits.square().sum().backward()
    for parameter_name, parameter in model.named_parameters():
        if parameter.requires_grad:
            assert parameter.grad is not None, f"{name}: no gradient reaches {parameter_name}"
            if not parameter_name.endswith(SHIFT_INVARIANT):
                assert parameter.grad.abs().sum() > 0, f"{name}: zero gradient on {parameter_name}"
    groups = model.param_groups(1e-5)
    assert sum(len(g["params"]) for g in groups) == sum(p.requires_grad for p in model.parameters())


@pytest.mark.parametrize("name", MULTIMODAL)
def test_multimodal_models_need_both_modalities(name):
    model = create_baseline(name, 2, INPUTS, **SMALL[name])
    assert model.reads == {"bag", "genes"}  # what SiteData.patient loads for it
    with pytest.raises(ValueError, match="gene vector"):
        model(patient(np.random.default_rng(0), genes=False))
    with pytest.raises(ValueError, match="bag of tile features"):
        model(PatientInput(genes=torch.zeros(N_GENES)))


def reference_pathways(n_pathways=331, memberships=9731):
    """A pathway table of ModalTune's size (reference baselines.md section 11), gene indices are irrelevant here."""
    sizes = np.full(n_pathways, memberships // n_pathways)
    sizes[: memberships - sizes.sum()] += 1
    return [list(range(size)) for size in sizes]


def test_parameter_counts_match_the_reference():
    """reference baselines.md section 11: SurvPath on ModalTune's table, MCAT without its genomic SNNs, the fusions."""
    count = lambda module, skip="": sum(p.numel() for n, p in module.named_parameters()  # noqa: E731
                                        if not (skip and n.startswith(skip)))
    pathways = reference_pathways()
    for dim, expected in ((1024, 24_764_484), (1536, 24_895_556)):
        assert count(create_baseline("survpath", 4, BaselineInputs(dim, 200, pathways))) == expected
    for dim, expected in ((1024, 3_227_398), (1536, 3_358_470)):
        assert count(create_baseline("mcat", 4, BaselineInputs(dim, 10, [[0]] * 6)), skip="pathways.") == expected
    assert count(ConcatFusion(256, 256, 256)) == 197_120
    assert count(KroneckerFusion(256, 256, 32, 256, 0.25)) == 396_224


def test_survpath_attention_mask_blocks_tile_to_tile_attention():
    torch.manual_seed(0)
    model = create_baseline("survpath", 2, INPUTS, **SMALL["survpath"]).eval()
    sample = patient(np.random.default_rng(1), tiles=9)
    pathways, tiles = model.tokens(sample)
    n_pathways = len(pathways)
    attention = model.attention
    _, _, pathway_weights, tile_weights = attention(pathways, tiles)
    # The whole (P + N) x (P + N) attention matrix a dense layer with SurvPath's mask would compute.
    q, k, _ = attention.qkv(attention.norm(torch.cat([pathways, tiles]))).chunk(3, dim=-1)
    scores = (q @ k.T) * attention.scale
    tile_to_tile = torch.zeros_like(scores, dtype=torch.bool)
    tile_to_tile[n_pathways:, n_pathways:] = True
    dense = torch.softmax(scores.masked_fill(tile_to_tile, float("-inf")), dim=1)
    assert torch.allclose(pathway_weights, dense[:n_pathways], atol=1e-6)
    assert torch.allclose(tile_weights, dense[n_pathways:, :n_pathways], atol=1e-6)
    assert torch.all(dense[n_pathways:, n_pathways:] == 0)
    assert torch.all(pathway_weights[:, n_pathways:] > 0)  # pathways do see the tiles
    # Behaviour: changing tile 0 changes the pathways' outputs but no other tile's output.
    changed = tiles.clone()
    changed[0] += 3 * torch.randn(tiles.shape[1])  # not a constant, which the LayerNorm would remove
    before_p, before_t, _, _ = attention(pathways, tiles)
    after_p, after_t, _, _ = attention(pathways, changed)
    assert torch.allclose(before_t[1:], after_t[1:]) and not torch.allclose(before_t[0], after_t[0])
    assert not torch.allclose(before_p, after_p)


@pytest.mark.parametrize("name", ["mcat", "survpath"])
def test_early_fusion_is_invariant_to_the_tile_order(name):
    torch.manual_seed(0)
    model = create_baseline(name, 2, INPUTS, **SMALL[name]).eval()
    sample = patient(np.random.default_rng(2), tiles=17)
    order = torch.randperm(17)
    shuffled = PatientInput(sample.features[order], sample.coords[order], sample.genes)
    assert torch.allclose(model(sample), model(shuffled), atol=1e-5)


def test_mcat_pathways_query_the_tiles():
    torch.manual_seed(0)
    model = create_baseline("mcat", 2, INPUTS, **SMALL["mcat"]).eval()
    sample = patient(np.random.default_rng(3), tiles=11)
    wsi, pathways, weights = model.coattend(sample)
    assert wsi.shape == pathways.shape == (len(PATHWAYS), 16) and weights.shape == (len(PATHWAYS), 11)
    assert torch.allclose(weights.sum(dim=1), torch.ones(len(PATHWAYS)))
    # each co-attended token is the attention-weighted mix of the projected tiles (then the output projection)
    tiles = model.tiles(sample.features)
    values = tiles @ model.coattention.in_proj_weight[32:].T + model.coattention.in_proj_bias[32:]
    assert torch.allclose(wsi, model.coattention.out_proj(weights @ values), atol=1e-5)


@pytest.mark.parametrize("name", [n for n in MULTIMODAL if n.endswith(("_cat", "_kp"))])
def test_late_fusion_reuses_the_registered_encoders(name):
    model = create_baseline(name, 2, INPUTS, **SMALL[name])
    assert isinstance(model, LateFusion) and model.reads == {"bag", "genes"}
    assert type(model.image) is IMAGE_CLASS[name.rsplit("_", 1)[0]] and type(model.genes) is GeneMixer
    assert isinstance(model.fusion, KroneckerFusion if name.endswith("_kp") else ConcatFusion)
    assert not hasattr(model.image, "head") and not hasattr(model.genes, "head")  # the fused model's head predicts
    sample = patient(np.random.default_rng(4))
    model.eval()
    assert torch.allclose(model.embed(sample), model.fusion(model.image.embed(sample), model.genes.embed(sample)))


def test_gigapath_late_fusion_keeps_the_layer_wise_decay():
    model = create_baseline("gigapath_cat", 2, INPUTS, image={"layer_decay": 0.5}, **SMALL["gigapath_cat"])
    scale_of = {id(p): g["lr_scale"] for g in model.param_groups(0.05) for p in g["params"]}
    named = dict(model.named_parameters())
    depth = model.image.encoder.config.depth
    assert scale_of[id(named["image.encoder.encoder.layers.0.ffn.fc1.weight"])] == 0.5**depth
    assert scale_of[id(named["genes.encoder.pathways.weight1"])] == 1.0 == scale_of[id(named["head.weight"])]


def test_kronecker_fusion_is_the_outer_product_of_the_gated_embeddings_with_ones():
    torch.manual_seed(0)
    fusion = KroneckerFusion(5, 7, 3, 8, dropout=0.0).eval()
    a, b = torch.randn(5), torch.randn(7)
    seen = {}
    fusion.encoder[1].register_forward_hook(lambda module, inputs, output: seen.update(flat=inputs[0]))
    fusion(a, b)
    o_a = np.append(fusion.gate_a(a, b).detach().numpy(), 1.0)
    o_b = np.append(fusion.gate_b(b, a).detach().numpy(), 1.0)
    assert seen["flat"].shape == (16,)
    np.testing.assert_allclose(seen["flat"].detach().numpy(), np.kron(o_a, o_b), rtol=1e-6)
    # the gate reads both modalities: o_a = ReLU(W_o (sigmoid(W_z [a; b]) * ReLU(W_h a)))
    gate = fusion.gate_a
    expected = torch.relu(gate.out[0](torch.sigmoid(gate.gate(torch.cat([a, b]))) * gate.hidden(a)))
    assert torch.allclose(fusion.gate_a(a, b), expected)


def test_an_oversized_kronecker_fusion_is_refused_with_the_dimensions_and_keys():
    with pytest.raises(ValueError, match=r"transmil_kp: .*\(2048 \+ 1\) x \(2048 \+ 1\) = 4198401 features into "
                                         r"256 units.*baselines\.transmil_kp\.kp_dim.*baselines\.transmil_kp\.fusion_dim"):
        create_baseline("transmil_kp", 2, INPUTS, **dict(SMALL["transmil_kp"], kp_dim=2048, fusion_dim=256))


# ---- a synthetic site whose label needs both modalities ----------------------------------------------------------
@pytest.fixture(scope="module")
def xor_site(tmp_path_factory):
    """Label = XOR(sign of the tiles' shift, sign of the genes' shift): each modality alone says nothing about it.
    One patient has no expression row and must be left out of every run."""
    root = tmp_path_factory.mktemp("results")
    rng = np.random.default_rng(0)
    genes = [f"G{i}" for i in range(N_GENES)]
    split_of = ["train"] * 64 + ["val"] * 16 + ["test"] * 24
    rows, omics = [], []
    for i in range(len(split_of)):
        patient_id, image_sign, gene_sign = f"TCGA-AA-{i:04d}", 2 * (i % 2) - 1, 2 * ((i // 2) % 2) - 1
        slide = f"{patient_id}-01Z-00-DX1"
        n = int(rng.integers(6, 12))
        write_features(root / "features" / "tiny" / f"{slide}.h5",
                       rng.normal(size=(n, TILE_DIM)) + 1.0 * image_sign, rng.integers(0, 20, (n, 2)) * 256,
                       {"encoder": "tiny", "mpp": 0.5, "tile_px_level0": 256})
        rows.append({"patient": patient_id, "subtype_class": int(image_sign != gene_sign), "slides": [slide],
                     "time_months": float(rng.uniform(5, 50)), "event": int(rng.random() < 0.8)})
        if i != 1:
            omics.append({"patient": patient_id, **{g: float(rng.normal(1.5 * gene_sign)) for g in genes}})
    write_site(root, "S1", rows, split_of, omics)
    return root


def xor_run(root, name, tmp_path):
    data = site_data(root)
    image, genes = dict(ABMIL_SMALL, dropout=0.0), dict(GENES, dropout=0.0)  # dropout only slows this small task
    small = {"abmil": image, "gene_mixer": genes, "abmil_cat": dict(SMALL["abmil_cat"], image=image, genes=genes)}
    section = validate({"baselines": {
        "training": {"epochs": 3, "warmup_epochs": 0, "accumulate": 2, "device": "cpu", "precision": "fp32",
                     "threads": 1, "tile_cap": 12, "eval_tile_cap": 100},
        name: dict(small[name], lr=5e-3)}})["baselines"]
    record = train_baseline(name, data, "subtype", section, data.inputs(PATHWAYS), device=torch.device("cpu"),
                            seed=0, out_stem=tmp_path / name / "subtype")
    assert record["status"] == "ok" and record["excluded_patients"]["no_rna"] == ["TCGA-AA-0001"]
    assert "TCGA-AA-0001" not in set(pd.read_parquet(tmp_path / name / "subtype.parquet")["patient"])
    return record["value"]


def test_a_multimodal_baseline_beats_both_unimodal_ones_when_the_label_needs_both(xor_site, tmp_path):
    accuracy = {name: xor_run(xor_site, name, tmp_path) for name in ("abmil", "gene_mixer", "abmil_cat")}
    assert accuracy["abmil_cat"] >= 0.9, accuracy
    assert max(accuracy["abmil"], accuracy["gene_mixer"]) <= 0.7, accuracy  # chance is 0.5
