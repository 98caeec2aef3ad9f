"""Interpretability: recomputed attention equals the kernels, maps are distributions in tile order, IG completeness,
the Cox head equals lifelines, figures are real images, patient selection and skip reasons."""

import numpy as np
import pandas as pd
import pytest
import torch
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
