"""Supervised baselines: registry and schema, model shapes and gradients, the survival loss and bins, the
single-task runs (planted signal, skipped runs, outputs) and the baseline rows of the results table."""

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from synthetic_site import site_data, write_site

from modaltune.baselines import BASELINES, create_baseline
from modaltune.baselines.base import BaselineInputs, PatientInput
from modaltune.baselines.data import SkipRun
from modaltune.baselines.survival import assign_bins, nll_survival_loss, risk_from_logits, survival_bins
from modaltune.baselines.train import train_baseline
from modaltune.config import ConfigError, schema, validate
from modaltune.features import write_features
from modaltune.models.slide_encoder import SLIDE_ENCODERS
from modaltune.training.bags import build_bag

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TILE_DIM = SLIDE_ENCODERS["tiny"].in_chans
PATHWAYS = [[0, 1, 2], [2, 3, 4, 5], [6, 7, 8, 9, 10, 11]]
N_GENES = 12
INPUTS = BaselineInputs(feature_dim=TILE_DIM, n_genes=N_GENES, pathway_genes=PATHWAYS,
                        slide_encoder={"name": "tiny", "weights": None, "checkpointing": False, "depth": 2})
# Small widths so the tests run in seconds; the architecture is the configured one.
SMALL = {
    "abmil": {"hidden_dim": 16, "attention_dim": 8},
    "transmil": {"dim": 16, "heads": 2, "landmarks": 8},
    "gigapath_tuned": {},
    "mlp": {"hidden_dim": 16},
    "snn": {"hidden_dim": 16},
    "smlp": {"latent_dim": 8},
    "gene_mixer": {"output_dim": 16, "latent_dim": 8, "depth": 1, "tokens": 4, "dropout": 0.0},
}  # gene_mixer: at 8 latent channels its dropout drowns the planted signal in 6 epochs
UNIMODAL = [name for name, spec in BASELINES.items() if spec.modality != "multimodal"]  # multimodal: own test file
# Parameters whose gradient is zero by construction: a constant added to every attention score cancels in the softmax.
SHIFT_INVARIANT = {"abmil": {"pool.score.bias"}}


def test_registry_is_the_schema_list_in_table_order():
    listed = schema()["properties"]["baselines"]["properties"]["models"]["items"]["enum"]
    assert listed == list(BASELINES)
    assert UNIMODAL == ["abmil", "transmil", "gigapath_tuned", "mlp", "snn", "smlp", "gene_mixer"] == list(SMALL)
    with pytest.raises(ConfigError, match="not one of.*abmil.*gene_mixer"):
        validate({"baselines": {"models": ["abmil", "clam"]}})
    with pytest.raises(KeyError, match="registered: abmil, transmil"):
        create_baseline("clam", 2, INPUTS)


def patient_with_slides(n_slides, rng, genes=True):
    slides = [(f"s{k}", rng.normal(size=(n, TILE_DIM)), rng.integers(0, 30, (n, 2)) * 256)
              for k, n in zip(range(n_slides), (13, 7, 22), strict=False)]
    bag = build_bag("TCGA-AA-0001", slides)
    return PatientInput(torch.tensor(bag.features), torch.from_numpy(bag.coords),
                        torch.tensor(rng.normal(size=N_GENES), dtype=torch.float32) if genes else None)


@pytest.mark.parametrize("name", UNIMODAL)
@pytest.mark.parametrize("n_slides", [1, 3])
def test_shapes_and_gradient_reaches_every_trainable_parameter(name, n_slides):
    torch.manual_seed(0)
    model = create_baseline(name, 3, INPUTS, **SMALL[name]).eval()  # no dropout or drop-path: every path is live
    patient = patient_with_slides(n_slides, np.random.default_rng(n_slides))
    embedding = model.embed(patient)
    assert embedding.shape == (model.embed_dim,)
    logits = model(patient)
    assert logits.shape == (3,) and torch.isfinite(logits).all()
    logits.square().sum().backward()
    for parameter_name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        assert parameter.grad is not None, f"{name}: no gradient reaches {parameter_name}"
        if parameter_name not in SHIFT_INVARIANT.get(name, set()):
            assert parameter.grad.abs().sum() > 0, f"{name}: zero gradient on {parameter_name}"


def test_genomics_baselines_need_genes_and_wsi_baselines_need_tiles():
    bag_only = patient_with_slides(1, np.random.default_rng(0), genes=False)
    with pytest.raises(ValueError, match="gene vector"):
        create_baseline("mlp", 2, INPUTS, **SMALL["mlp"])(bag_only)
    with pytest.raises(ValueError, match="bag of tile features"):
        create_baseline("abmil", 2, INPUTS, **SMALL["abmil"])(PatientInput(genes=torch.zeros(N_GENES)))


@pytest.mark.parametrize("tiles", [1, 2, 5, 37])
def test_transmil_pads_a_non_square_bag_with_its_first_tiles(tiles, monkeypatch):
    torch.manual_seed(0)
    model = create_baseline("transmil", 2, INPUTS, **SMALL["transmil"]).eval()
    seen = {}
    for module, key in ((model.layer1, "tokens"), (model.ppeg, "side")):
        original = module.forward

        def spy(*args, _original=original, _key=key):
            seen[_key] = args[0].clone() if _key == "tokens" else args[1]
            return _original(*args)

        monkeypatch.setattr(module, "forward", spy)
    features = torch.randn(tiles, TILE_DIM)
    assert model(PatientInput(features=features)).shape == (2,)
    side = math.ceil(math.sqrt(tiles))
    assert seen["side"] == side and seen["tokens"].shape[1] == 1 + side * side
    patches = seen["tokens"][0, 1:]
    assert torch.equal(patches[:tiles], model.project(features))
    assert torch.equal(patches[tiles:], patches[torch.arange(side * side - tiles) % tiles])


def test_gigapath_tuned_updates_the_encoder_with_layer_wise_decay():
    torch.manual_seed(0)
    model = create_baseline("gigapath_tuned", 2, INPUTS, layer_decay=0.5)
    depth = model.encoder.config.depth
    groups = model.param_groups(weight_decay=0.05)
    scale_of = {id(p): (g["lr_scale"], g["weight_decay"]) for g in groups for p in g["params"]}
    named = dict(model.named_parameters())
    assert scale_of[id(named["encoder.encoder.layers.0.ffn.fc1.weight"])] == (0.5**depth, 0.05)
    assert scale_of[id(named[f"encoder.encoder.layers.{depth - 1}.ffn.fc1.weight"])] == (0.5, 0.05)
    assert scale_of[id(named["encoder.cls_token"])] == (0.5 ** (depth + 1), 0.0)
    assert scale_of[id(named["head.weight"])] == (1.0, 0.05)
    assert scale_of[id(named["encoder.patch_embed.proj.bias"])] == (1.0, 0.0)
    assert sum(len(g["params"]) for g in groups) == len(named)  # every parameter trains: nothing frozen

    before = {k: v.detach().clone() for k, v in model.encoder.state_dict().items()}
    optimizer = torch.optim.AdamW(groups, lr=1e-2)
    model(patient_with_slides(2, np.random.default_rng(0))).sum().backward()
    optimizer.step()
    after = model.encoder.state_dict()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert "patch_embed.proj.weight" in changed and "encoder.layers.0.ffn.fc1.weight" in changed


def test_gigapath_tuned_feature_layer_freezes_the_unused_blocks():
    model = create_baseline("gigapath_tuned", 2, INPUTS, feature_layer=1)
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    assert frozen and all(n.startswith(("encoder.encoder.layers.1.", "encoder.encoder.layer_norm.")) for n in frozen)
    assert model(patient_with_slides(1, np.random.default_rng(0))).shape == (2,)


# ---- survival --------------------------------------------------------------------------------------------------
def test_nll_loss_matches_a_hand_computation():
    logits = torch.tensor([[0.2, -1.0, 0.5, 1.5], [1.0, 0.0, -0.5, 2.0], [-0.3, 0.3, 0.1, 0.0]])
    bins = torch.tensor([2, 0, 3])
    censored = torch.tensor([0.0, 1.0, 1.0])
    h = [[1 / (1 + math.exp(-v)) for v in row] for row in logits.tolist()]

    def surv(row, k):  # S_k, with S_-1 = 1
        return math.prod(1 - h[row][j] for j in range(k + 1))

    expected = []
    for row, (y, c) in enumerate(zip(bins.tolist(), censored.tolist(), strict=True)):
        uncensored = -(1 - c) * (math.log(surv(row, y - 1)) + math.log(h[row][y]))
        censored_term = -c * math.log(surv(row, y))
        expected.append((uncensored, censored_term))
    for alpha in (0.0, 0.5):
        hand = np.mean([(1 - alpha) * (u + c) + alpha * u for u, c in expected])
        assert nll_survival_loss(logits, bins, censored, alpha).item() == pytest.approx(hand, rel=1e-6)
    risk = risk_from_logits(logits[0])
    assert risk.item() == pytest.approx(-sum(surv(0, k) for k in range(4)), rel=1e-6)


def test_bins_are_uncensored_quartiles_with_the_training_range_outside():
    times = np.array([1.0, 2, 3, 4, 5, 6, 7, 8, 50])
    events = np.array([1, 1, 0, 1, 1, 0, 1, 1, 0])
    edges = survival_bins(times, events, 4)
    uncensored = times[events == 1]
    assert edges[1:-1] == pytest.approx(np.quantile(uncensored, [0.25, 0.5, 0.75]))
    assert edges[0] == pytest.approx(1 - 1e-6) and edges[-1] == pytest.approx(50 + 1e-6)
    assert assign_bins(np.array([0.0, 1.0, edges[1], 49.0, 99.0]), edges).tolist() == [0, 0, 1, 3, 3]
    with pytest.raises(ValueError, match="1 event"):
        survival_bins(times, np.array([0, 0, 0, 1, 0, 0, 0, 0, 0]))


# ---- a small synthetic site with a planted signal ----------------------------------------------------------------
@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """56 patients in 2 classes with 1-2 slides; the class shifts the tiles and genes and shortens survival."""
    root = tmp_path_factory.mktemp("results")
    rng = np.random.default_rng(0)
    genes = [f"G{i}" for i in range(N_GENES)]
    split_of = ["train"] * 32 + ["val"] * 8 + ["test"] * 16
    rows, omics = [], []
    for i in range(len(split_of)):
        patient, label = f"TCGA-AA-{i:04d}", i % 2
        slides = [f"{patient}-01Z-00-DX{k + 1}" for k in range(1 + (i % 3 == 0))]
        for slide in slides:
            n = int(rng.integers(6, 16))
            features = rng.normal(size=(n, TILE_DIM)) + 0.7 * label
            coords = rng.integers(0, 20, (n, 2)) * 256
            write_features(root / "features" / "tiny" / f"{slide}.h5", features, coords,
                           {"encoder": "tiny", "mpp": 0.5, "tile_px_level0": 256})
        time = float(np.exp(rng.normal(3.5 - 1.5 * label, 0.3)))
        rows.append({"patient": patient, "subtype_class": label, "slides": slides, "time_months": time,
                     "event": int(rng.random() < 0.85)})
        omics.append({"patient": patient, **{g: float(rng.normal(5 + 1.5 * label * (k < 6)))
                                             for k, g in enumerate(genes)}})
    pathways = pd.DataFrame([(f"p{p}", genes[g]) for p, members in enumerate(PATHWAYS) for g in members],
                            columns=["pathway", "gene"])
    write_site(root, "S1", rows, split_of, omics, pathways=pathways)
    return root


def section(name, **training):
    shared = {"epochs": 6, "warmup_epochs": 0, "accumulate": 2, "tile_cap": 12, "eval_tile_cap": 100, "device": "cpu", "precision": "fp32", "threads": 1}
    lr = {"gigapath_tuned": 5e-4, "transmil": 2e-3}.get(name, 3e-3)
    return validate({"baselines": {"training": dict(shared, **training), name: dict(SMALL[name], lr=lr)}})[
        "baselines"]


@pytest.mark.parametrize("name", UNIMODAL)
def test_each_baseline_learns_the_planted_signal_above_chance(site, name, tmp_path):
    data = site_data(site)
    inputs = data.inputs(PATHWAYS, INPUTS.slide_encoder)
    # Perfect class separation gives a C-index of about 0.75 here (pairs within a class are a coin flip).
    for task, floor in (("subtype", 0.75), ("survival", 0.65)):
        record = train_baseline(name, data, task, section(name), inputs, device=torch.device("cpu"), seed=0,
                                out_stem=tmp_path / task)
        assert record["status"] == "ok"
        assert record["value"] >= floor, f"{name} {task}: test {record['metric']} {record['value']:.3f}"
        predictions = pd.read_parquet(tmp_path / f"{task}.parquet")
        assert sorted(predictions["patient"]) == sorted(data.experiment.split_patients("test"))
        assert not (tmp_path / f"{task}.checkpoint").exists()
    written = json.loads((tmp_path / "survival.json").read_text())
    assert written["metric"] == "c_index" and len(written["history"]) == 6 and written["modality"]


def test_the_command_trains_every_model_seed_and_task_it_is_given(site, tmp_path):
    from modaltune.cli import main

    models = ["abmil", "gene_mixer"]
    baselines = section("abmil", epochs=1) | {"gene_mixer": SMALL["gene_mixer"]}
    params = {"baselines": baselines, "slide_encoder": {"name": "tiny"}}
    assert main(["baseline", "--models", *models, "--site", "S1", "--seeds", "0", "--tasks", "subtype", "survival",
                 "--tile-encoder", "tiny", "--gap-px", "1500", "--results", str(site), "--out", str(tmp_path),
                 "--params", json.dumps(params)]) == 0
    for model in models:
        for task in ("subtype", "survival"):
            record = json.loads((tmp_path / model / "S1" / "seed0" / f"{task}.json").read_text())
            assert (record["model"], record["task"], record["status"]) == (model, task, "ok")
            assert len(pd.read_parquet(tmp_path / model / "S1" / "seed0" / f"{task}.parquet")) == 16


def test_a_survival_run_records_the_median_risk_of_its_training_patients(site, tmp_path, monkeypatch):
    """The KM figure's cut: the selected model's risk on the training split, as the probes record theirs."""
    from modaltune.baselines.train import Run

    predicted = {}
    original = Run.predict

    def recording_predict(self, split):
        predicted[split] = original(self, split)
        return predicted[split]

    monkeypatch.setattr(Run, "predict", recording_predict)
    data = site_data(site)
    record = train_baseline("mlp", data, "survival", section("mlp", epochs=2), data.inputs(PATHWAYS),
                            device=torch.device("cpu"), seed=0, out_stem=tmp_path / "survival")
    train_risk = risk_from_logits(torch.from_numpy(predicted["train"])).numpy()
    assert len(train_risk) == len(data.experiment.split_patients("train"))
    assert record["survival"]["train_median_risk"] == pytest.approx(float(np.median(train_risk)), rel=1e-12)
    assert json.loads((tmp_path / "survival.json").read_text())["survival"] == record["survival"]


def test_survival_bins_come_from_the_training_patients_only(site):
    data = site_data(site)
    edges = data.task("survival").details["bin_edges"]
    train = data.patients[data.patients["split"] == "train"]
    assert edges == pytest.approx(survival_bins(train["time_months"], train["event"]).tolist())
    data.patients.loc[data.patients["split"] != "train", "time_months"] = 1e6
    assert data.task("survival").details["bin_edges"] == edges


def test_a_training_split_without_a_class_or_events_is_skipped_with_the_reason(site, tmp_path):
    data = site_data(site)
    train = data.patients["split"] == "train"
    data.patients.loc[train & (data.patients["subtype_class"] == 1), "subtype_class"] = -1  # now rare set
    with pytest.raises(SkipRun, match=r"site S1, task subtype: the training split lacks class\(es\) \[1\]"):
        data.task("subtype")
    data.patients.loc[train, "event"] = 0
    record = train_baseline("mlp", data, "survival", section("mlp"), data.inputs(PATHWAYS),
                            device=torch.device("cpu"), seed=0, out_stem=tmp_path / "survival")
    assert record["status"] == "skipped" and "0 event(s) among 32 training patients" in record["reason"]
    assert json.loads((tmp_path / "survival.json").read_text())["value"] is None
    assert pd.read_parquet(tmp_path / "survival.parquet").empty


def test_an_interrupted_run_resumes_from_its_checkpoint(site, tmp_path, monkeypatch):
    data = site_data(site)
    inputs = data.inputs(PATHWAYS)
    whole = train_baseline("snn", data, "subtype", section("snn", epochs=4), inputs, device=torch.device("cpu"),
                           seed=0, out_stem=tmp_path / "whole")
    from modaltune.baselines import train as train_module

    calls = {"n": 0}
    original = train_module.Run.train_epoch

    def interrupted(self, epoch):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return original(self, epoch)

    monkeypatch.setattr(train_module.Run, "train_epoch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train_baseline("snn", data, "subtype", section("snn", epochs=4), inputs, device=torch.device("cpu"), seed=0,
                       out_stem=tmp_path / "resumed")
    resumed = train_baseline("snn", data, "subtype", section("snn", epochs=4), inputs, device=torch.device("cpu"),
                             seed=0, out_stem=tmp_path / "resumed")
    assert [row["train_loss"] for row in resumed["history"]] == pytest.approx(
        [row["train_loss"] for row in whole["history"]])
    assert resumed["value"] == whole["value"]


# ---- the results table -------------------------------------------------------------------------------------------
def test_table_groups_rows_by_modality_in_table_2_order_and_notes_skipped_runs(tmp_path):
    from modaltune.report import collect_baselines, collect_probes, results_table, write_tables

    probes, runs = [], []
    for experiment in ["gigapath_lp", "modaltune"]:
        for seed in range(2):
            probes.append(tmp_path / f"{experiment}_{seed}.json")
            probes[-1].write_text(json.dumps({"experiment": experiment, "site": "RCC", "seed": seed,
                                              "subtype": {"balanced_accuracy": 0.6}, "survival": {"c_index": 0.6}}))
    values = {("gene_mixer", 0): 0.8, ("gene_mixer", 1): 0.7, ("abmil", 0): 0.5, ("abmil", 1): None,
              ("transmil", 0): 0.6, ("mcat", 0): 0.9, ("mcat", 1): 0.8}  # files in any order: rows follow Table 2
    for (model, seed), value in values.items():
        spec = BASELINES[model]
        runs.append(tmp_path / f"{model}_{seed}.json")
        runs[-1].write_text(json.dumps({
            "model": model, "modality": spec.modality, "site": "RCC", "seed": seed, "task": "subtype",
            "metric": "balanced_accuracy", "value": value,
            "reason": None if value is not None else "site RCC, task subtype: the training split lacks class(es) [2]"}))
    long = pd.concat([collect_probes(probes, {"gigapath_lp": "wsi"}), collect_baselines(runs)], ignore_index=True)
    table = results_table(long)
    subtype = table[table.task == "subtype"]
    # the probed frozen encoder heads the WSI group; the probed ModalTune closes the multi-modal one, after MCAT
    assert subtype["experiment"].tolist() == ["gigapath_lp", "abmil", "transmil", "gene_mixer", "mcat", "modaltune"]
    abmil = subtype[subtype.experiment == "abmil"].iloc[0]
    assert (abmil["mean"], abmil["seeds"]) == (0.5, 1) and "seed 1: site RCC" in abmil["skipped"]
    mixer = subtype[subtype.experiment == "gene_mixer"].iloc[0]
    assert mixer["mean"] == pytest.approx(0.75) and mixer["std"] == pytest.approx(np.std([0.8, 0.7], ddof=1))
    labels = {name: spec.label for name, spec in BASELINES.items()} | {"gigapath_lp": "Gigapath LP",
                                                                        "modaltune": "ModalTune"}
    markdown = write_tables(table, tmp_path / "results", labels)[1].read_text()
    block = markdown.split("### Survival")[0]
    rows = [[cell.strip() for cell in line.split("|")[1:3]] for line in block.splitlines()
            if line.startswith("| ") and "Method" not in line]
    assert rows == [["WSI", "Gigapath LP"], ["", "ABMIL"], ["", "TransMIL"], ["Genomics", "Gene Mixer"],
                    ["Multi-modal", "MCAT"], ["", "ModalTune"]]
    assert "| 0.500* " in block and "| 0.500 ±" not in block  # one seed ran: its mean alone, marked
    assert "ABMIL, RCC: seed 1: site RCC, task subtype: the training split" in markdown
