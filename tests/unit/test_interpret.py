"""Interpretability: recomputed attention equals the kernels, maps are distributions in tile order, IG completeness,
the Cox head equals lifelines, figures are real images, patient selection and skip reasons."""

import numpy as np
import pandas as pd
import pytest
import torch
from synthetic_site import write_site
from torch import nn

from modaltune.evaluation.probes import SurvivalProbe
from modaltune.interpret.attention import (
    MAPS,
    AttentionRecorder,
    dilated_cls_weights,
    multihead_output,
    multihead_weights,
)
from modaltune.interpret.attributions import pathway_attributions, planted_ranks
from modaltune.interpret.figure import draw_patient
from modaltune.interpret.heatmaps import bag_tiles, grid_view, paint, percentile_of
from modaltune.interpret.risk import CoxHead, PatientRisk
from modaltune.interpret.run import choose_patients, skip_reason
from modaltune.models import create_slide_encoder
from modaltune.models.longnet import dilated_attention
from modaltune.models.modaltune import ModalTune
from modaltune.models.omics_encoder import OmicsEncoder
from modaltune.models.slide_encoder import SLIDE_ENCODERS
from modaltune.training.bags import build_bag, cap_indices

PATHWAYS = [[0, 1, 2], [2, 3], [4], [1, 5, 6, 7, 8], [9, 0]]
NAMES = ["A", "B", "C", "D", "E"]
N_GENES = 10

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def model():
    """A tiny ModalTune with non-zero injector gains, so that every adapter path changes the output."""
    torch.manual_seed(0)
    encoder = create_slide_encoder("tiny")
    omics = OmicsEncoder(PATHWAYS, N_GENES, out_dim=encoder.config.embed_dim, latent_dim=16, depth=1, n_tokens=4)
    net = ModalTune(encoder, omics, n_blocks=3, heads=4, inner_ratio=0.25, output_dim=8)
    with torch.no_grad():
        for injector in net.adapter.injectors:
            injector.gamma.normal_(0, 0.5)
    return net.eval()


def patient(n=100, seed=1):
    generator = torch.Generator().manual_seed(seed)
    features = torch.randn(n, SLIDE_ENCODERS["tiny"].in_chans, generator=generator)
    coords = torch.randint(0, 4000, (n, 2), generator=generator)
    return features, coords, torch.randn(N_GENES, generator=generator)


@pytest.mark.parametrize("n", [5, 16, 100, 300])
def test_dilated_cls_weights_reproduce_the_kernel_output(n):
    torch.manual_seed(n)
    q, k, v = (torch.randn(2, n, 4, 8) for _ in range(3))
    segments, ratios = (16, 64, 256), (1, 2, 4)
    weights = dilated_cls_weights(q, k, segments, ratios)
    expected = dilated_attention(q, k, v, segments, ratios)[:, 0]  # (B, H, d)
    assert torch.allclose(torch.einsum("bhn,bnhd->bhd", weights, v), expected, atol=1e-5)
    assert (weights >= 0).all() and torch.allclose(weights.sum(-1), torch.ones(2, 4))


@pytest.mark.parametrize("kdim", [12, 24])  # separate and packed input projections
def test_multihead_weights_reproduce_the_module_output(kdim):
    torch.manual_seed(0)
    module = nn.MultiheadAttention(12, 3, batch_first=True, kdim=kdim, vdim=kdim).eval()
    query, memory = torch.randn(1, 5, 12), torch.randn(1, 7, kdim)
    weights = multihead_weights(module, query, memory)
    expected, reference = module(query, memory, memory, need_weights=True, average_attn_weights=False)
    assert torch.allclose(weights, reference, atol=1e-6)
    assert torch.allclose(multihead_output(module, weights, memory), expected, atol=1e-6)


def test_recorded_maps_are_distributions_over_tiles_and_leave_the_output_unchanged(model):
    features, coords, genes = patient()
    with torch.no_grad():
        plain = model(features, coords, genes, tasks=["general"])
        with AttentionRecorder(model) as recorder:  # every hooked call is checked against the module's output
            hooked = model(features, coords, genes, tasks=["general"])
    assert torch.equal(plain, hooked)
    maps = recorder.result.maps
    for name in MAPS:
        assert len(maps[name]) == 3 and all(m.shape == (100,) and (m >= 0).all() for m in maps[name])
    for name in ("image_image", "image_transcriptomics"):
        assert all(np.isclose(m.sum(), 1.0) for m in maps[name])
    assert all((m <= 1).all() and m.std() > 0 for m in maps["image_task"])
    assert all(0 < w < 1 for w in recorder.result.cls_self)
    # the hooks come off: a second forward records nothing
    model(features, coords, genes, tasks=["general"])
    assert len(maps["image_image"]) == 3


def test_maps_follow_the_tiles_when_the_bag_is_reordered(model):
    """Dilated attention is order-dependent, but the extractor's pathway attention is a softmax over tiles whose
    scores depend only on each tile's own token when no LongNet layer mixes them: with the encoder layers skipped,
    a permuted bag must give the permuted map (values stay with their tiles)."""
    features, coords, genes = patient(40)
    model.blocks = [(0, 0)] * 3  # no frozen layer runs: tokens are never mixed across tiles
    order = torch.randperm(40, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        with AttentionRecorder(model) as first:
            model(features, coords, genes, tasks=["general"])
    with torch.no_grad():
        with AttentionRecorder(model) as second:
            model(features[order], coords[order], genes, tasks=["general"])
    first_map = first.result.maps["image_transcriptomics"][0]
    second_map = second.result.maps["image_transcriptomics"][0]
    assert np.allclose(second_map, first_map[order.numpy()], atol=1e-6)


def test_forward_genes_equals_forward(model):
    features, coords, genes = patient(30)
    batch = torch.stack([genes, torch.zeros_like(genes), 2 * genes])
    tokens = model.encoder.embed(features[None], coords[None])
    with torch.no_grad():
        together = model.forward_genes(tokens, batch, "general")
        one_by_one = torch.cat([model(features, coords, g, tasks=["general"]) for g in batch])
    assert torch.allclose(together, one_by_one, atol=1e-5)


def test_cox_head_equals_lifelines_log_partial_hazard():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 5)) + 3.0
    time = rng.exponential(10 * np.exp(-x[:, 0] + 3), 60)
    probe = SurvivalProbe().fit(x, time, rng.random(60) < 0.7)
    head = CoxHead.from_probe(probe, x)  # raises when it disagrees
    new = rng.normal(size=(10, 5)) + 3.0
    with torch.no_grad():
        got = head(torch.as_tensor(new, dtype=torch.float32)).numpy()
    assert np.allclose(np.exp(got), probe.predict_risk(new), rtol=1e-4)


def test_integrated_gradients_are_complete(model):
    features, coords, genes = patient(50)
    torch.manual_seed(1)
    head = CoxHead(np.zeros(8), np.random.default_rng(1).normal(size=8))
    risk = PatientRisk(model, features, coords, head)
    result = pathway_attributions(risk, genes, NAMES, PATHWAYS, n_steps=64, batch_size=32)
    difference = result.log_risk - result.log_risk_baseline
    assert abs(difference) > 1e-3
    assert abs(result.gene_attributions.sum() - difference) <= abs(result.delta) + 1e-6
    assert abs(result.delta) < 0.01 * abs(difference)
    with torch.no_grad():
        assert np.isclose(result.log_risk, head(model(features, coords, genes, tasks=["general"])).item(), atol=1e-5)
    table = result.table
    assert list(table["rank"]) == [1, 2, 3, 4, 5]
    assert (table["attribution"].abs().diff().dropna() <= 0).all()
    by_name = table.set_index("pathway")["attribution"]
    assert np.isclose(by_name["B"], result.gene_attributions[[2, 3]].sum())
    assert planted_ranks(table, ["A", "Z"]) == {"A": table.set_index("pathway").at["A", "rank"] / 5}


class _Data:
    """The parts of ExperimentData that bag_tiles reads, over real feature files."""

    def __init__(self, paths, tile_cap):
        from modaltune.features import read_features

        self.paths = paths
        self.bag_options = type("Options", (), {"tile_cap": tile_cap})
        self._slides = [(name, *read_features(path)[:2]) for name, path in paths.items()]

    def feature_path(self, slide):
        return self.paths[slide]

    def bag(self, patient):
        full = build_bag(patient, self._slides, gap_px=1500, grid_px=256, grid_cells=1000)
        keep = cap_indices(len(full), self.bag_options.tile_cap)
        full.features, full.coords = full.features[keep], full.coords[keep]
        return full


def test_bag_tiles_maps_bag_positions_back_to_slide_coordinates(tmp_path):
    from modaltune.features.files import write_features

    rng = np.random.default_rng(0)
    paths = {}
    for name, n in (("s1", 12), ("s2", 7)):
        cells = rng.choice(100, size=n, replace=False)
        coords = np.stack([cells % 10, cells // 10], axis=1) * 512
        features = np.arange(n, dtype=np.float32)[:, None] + (100 if name == "s2" else 0) + np.zeros((n, 4))
        write_features(tmp_path / f"{name}.h5", features, coords, {"encoder": "x", "mpp": 0.5, "tile_px_level0": 512})
        paths[name] = tmp_path / f"{name}.h5"
    data = _Data(paths, tile_cap=15)
    tiles = bag_tiles(data, "P")
    bag = data.bag("P")
    assert len(tiles) == 15 and list(dict.fromkeys(tiles["slide"])) == ["s1", "s2"]
    from modaltune.features import read_features

    for slide, group in tiles.groupby("slide"):  # every tile's feature is the one stored at its coordinates
        stored_features, stored_coords, _ = read_features(paths[slide])
        lookup = {tuple(c): f[0] for c, f in zip(stored_coords.tolist(), stored_features, strict=True)}
        for i, x, y in zip(group.index, group["x"], group["y"], strict=True):
            assert lookup[(x, y)] == bag.features[i, 0]
    view = grid_view(tiles[tiles["slide"] == "s1"])
    first = tiles[tiles["slide"] == "s1"]
    image = paint(np.arange(len(first), dtype=float), first, view)
    x, y = first.iloc[3][["x", "y"]]
    assert image[int(y / view.downsample_y) + 1, int(x / view.downsample_x) + 1] == 3
    assert np.isnan(image).any()


def test_figure_is_a_non_empty_image(model, tmp_path):
    import cv2

    features, coords, genes = patient(24)
    tiles = pd.DataFrame({"slide": ["a"] * 16 + ["b"] * 8, "x": [(i % 4) * 512 for i in range(24)],
                          "y": [(i // 4) * 512 for i in range(24)], "tile_px_level0": 512})
    with torch.no_grad(), AttentionRecorder(model) as recorder:
        model(features, coords, genes, tasks=["general"])
    head = CoxHead(np.zeros(8), np.ones(8))
    result = pathway_attributions(PatientRisk(model, features, coords, head), genes, NAMES, PATHWAYS, n_steps=8)
    views = {slide: grid_view(group) for slide, group in tiles.groupby("slide")}
    draw_patient(tmp_path / "p.png", "TCGA-AA-0001", result, recorder.result, tiles, views, top=3)
    image = cv2.imread(str(tmp_path / "p.png"))
    assert image is not None and image.shape[0] > 500 and image.shape[1] > 500 and image.std() > 10


def test_patient_choice_and_skip_reasons():
    risks = pd.Series([1.0, 5.0, 0.2, 3.0], index=["p1", "p2", "p3", "p4"])
    assert choose_patients(risks, 1, []) == [("p2", "highest risk"), ("p3", "lowest risk")]
    assert choose_patients(risks, 2, []) == [("p2", "highest risk"), ("p4", "highest risk"),
                                             ("p3", "lowest risk"), ("p1", "lowest risk")]
    assert choose_patients(risks, 1, ["x", "x", "p1"]) == [("x", "listed"), ("p1", "listed")]
    data = type("Data", (), {"seed": 0, "sites": [], "excluded": {"no_rna": ["p5"], "no_tiles": []}})
    split = pd.DataFrame({"patient": ["p1", "p5"], "split": ["test", "test"]})
    assert skip_reason("p1", split, data) is None
    assert "not in the split of seed 0" in skip_reason("p9", split, data)
    assert "no RNA" in skip_reason("p5", split, data)


def test_percentile_of_selected_tiles():
    values = np.array([0.9, 0.1, 0.5, 0.3])
    assert percentile_of(values, np.array([True, False, False, False])) == 0.0
    assert percentile_of(values, np.array([False, True, False, False])) == 1.0
    assert np.isnan(percentile_of(values, np.ones(4, bool)))


# ---- one trained model, end to end ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def site_run(tmp_path_factory):
    """A 15-patient site (one test patient without RNA), a model trained for one epoch, its embeddings and probe file."""
    from modaltune.config import validate
    from modaltune.evaluation.probes import evaluate_embeddings, patient_table
    from modaltune.features import write_features
    from modaltune.training.cli import site_files
    from modaltune.training.data import BagOptions, ExperimentData
    from modaltune.training.embed import embed_site
    from modaltune.training.loop import train_model

    root = tmp_path_factory.mktemp("results")
    rng = np.random.default_rng(0)
    genes = [f"G{i}" for i in range(8)]
    splits = ["train"] * 9 + ["val"] * 2 + ["test"] * 4
    rows, omics, text = [], [], []
    for i, split in enumerate(splits):
        patient, label = f"TCGA-AA-{i:04d}", i % 2
        slides = [f"{patient}-01Z-00-DX{k + 1}" for k in range(1 + i % 2)]
        for slide in slides:
            n = int(rng.integers(5, 20))
            write_features(root / "features" / "tiny" / f"{slide}.h5", rng.normal(size=(n, SLIDE_ENCODERS["tiny"].in_chans)),
                           rng.choice(100, n, replace=False)[:, None] // [10, 1] % 10 * 256,
                           {"encoder": "tiny", "mpp": 0.5, "tile_px_level0": 256})
        rows.append({"patient": patient, "subtype": "x", "subtype_class": label, "slides": slides,
                     "time_months": float(rng.uniform(1, 60)), "event": int(split == "test" or rng.random() < 0.6)})
        if i != 12:  # a test patient without RNA
            omics.append({"patient": patient, **{g: float(rng.normal(5 + label)) for g in genes}})
        for task in ("general", "subtype", "survival"):
            text.append({"patient": patient, "task": task, "embedding": rng.normal(size=6).astype(np.float32).tolist()})
    write_site(root, "S1", rows, splits, omics, text=text,
               pathways=pd.DataFrame({"pathway": ["p0", "p0", "p1", "p1", "p2", "p2", "p3"],
                                      "gene": ["G0", "G1", "G2", "G0", "G4", "G5", "G7"]}))
    config = validate({"model": {"omics": {"latent_dim": 8, "depth": 1, "tokens": 4}, "adapter": {"heads": 2}},
                       "slide_encoder": {"name": "tiny"},
                       "training": {"epochs": 1, "warmup_epochs": 0, "device": "cpu", "threads": 1}})
    files = site_files(root, "S1", 0, "tiny", "minilm")
    data = ExperimentData([files], 0, BagOptions(config["training"]["tile_cap"]))
    model_dir = root / "model"
    train_model(data, [files.text], root / "omics" / "pathways.parquet", model_section=config["model"],
                slide_encoder_section=config["slide_encoder"], training=config["training"], projector_dim=8, seed=0,
                out_dir=model_dir)
    embed_site(model_dir, files, 0, root / "embeddings.parquet", device="cpu")
    probes = evaluate_embeddings(patient_table(root / "embeddings.parquet", files.cohort, files.splits, seed=0))
    return root, model_dir, files, probes


def interpret_settings(**overrides):
    from modaltune.config import validate

    return validate({"interpret": dict({"ig_steps": 16}, **overrides)})["interpret"]


def test_interpret_site_explains_the_risk_extremes_with_the_probe_s_risk(site_run, tmp_path):
    from modaltune.interpret.run import interpret_site

    root, model_dir, files, probes = site_run
    summary = interpret_site(model_dir, files, 0, root / "embeddings.parquet", probes, tmp_path, interpret_settings())
    risks = pd.DataFrame(probes["predictions"]).set_index("patient")["risk"].sort_values()
    assert list(summary["patient"]) == [risks.index[-1], risks.index[0]]
    assert np.allclose(summary["risk"], risks[summary["patient"]], rtol=1e-3)  # the table's risk, recomputed
    assert (summary["ig_delta_relative"] < 1e-2).all()
    attributions = pd.read_csv(tmp_path / "attributions.tsv", sep="\t")
    assert set(attributions["pathway"]) == {"p0", "p1", "p2", "p3"}
    for patient in summary["patient"]:
        assert (tmp_path / f"{patient}.png").stat().st_size > 10_000
        maps = pd.read_parquet(tmp_path / f"{patient}.attention.parquet")
        assert set(maps["map"]) == set(MAPS) and set(maps["block"]) == {1, 2, 3}


def test_a_patient_outside_the_split_or_without_rna_is_named_and_the_others_still_run(site_run, tmp_path, caplog):
    from modaltune.interpret.run import interpret_site

    root, model_dir, files, probes = site_run
    listed = ["TCGA-ZZ-9999", "TCGA-AA-0012", "TCGA-AA-0013"]
    summary = interpret_site(model_dir, files, 0, root / "embeddings.parquet", probes, tmp_path,
                             interpret_settings(patients=listed)).set_index("patient")
    assert list(summary["status"]) == ["skipped", "skipped", "ok"]
    assert "not in the split of seed 0" in summary.at["TCGA-ZZ-9999", "reason"]
    assert "no RNA" in summary.at["TCGA-AA-0012", "reason"]
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 2 and all("\n" not in e for e in errors) and "TCGA-ZZ-9999" in errors[0]
    assert (tmp_path / "TCGA-AA-0013.png").is_file() and not (tmp_path / "TCGA-AA-0012.png").exists()
