"""Patient bags, loss, schedule, the training loop (loss falls, resume, text isolation) and patient embeddings."""

import dataclasses
import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file
from synthetic_site import write_site

from modaltune.config import validate
from modaltune.features import read_features, write_features
from modaltune.io import read_parquet
from modaltune.models.slide_encoder import SLIDE_ENCODERS
from modaltune.training.bags import build_bag, cap_indices, place_slides
from modaltune.training.cli import site_files
from modaltune.training.data import BagOptions, ExperimentData, TextTargets
from modaltune.training.embed import embed_site, target_train_scaler
from modaltune.training.loop import train_model
from modaltune.training.objective import kl_to_text, learning_rate

TASKS = ["general", "subtype", "survival"]
TEXT_DIM = 12
TILE_DIM = SLIDE_ENCODERS["tiny"].in_chans



pytestmark = pytest.mark.usefixtures("one_torch_thread")

# ---- bags --------------------------------------------------------------------------------------------------------
def cells(xy, grid_px=256):
    return {tuple(c) for c in (np.asarray(xy) // grid_px).tolist()}


def test_bag_offsets_never_overlap_for_three_or_more_slides():
    rng = np.random.default_rng(0)
    slides = [rng.integers(0, 20, (30, 2)) * 256 for _ in range(5)]  # all slides cover the same area
    placed = place_slides(slides, gap_px=1500)
    for i in range(len(placed)):
        assert cells(placed[i]) and len(cells(placed[i])) == len(cells(slides[i]))  # shapes kept
        for j in range(i + 1, len(placed)):
            assert not cells(placed[i]) & cells(placed[j]), (i, j)
    # Upstream's non-cumulative offset would put slide 3 where slide 2 is; here each starts below the last one.
    tops = [int(p[:, 1].min()) for p in placed]
    assert tops == sorted(tops) and len(set(tops)) == 5


def test_tall_bags_wrap_into_a_new_column_and_stay_on_the_grid():
    slide = np.array([[0, 0], [0, 99 * 256], [256, 50 * 256]])  # 100 cells tall
    placed = place_slides([slide] * 17, grid_px=256, grid_cells=1000)  # 17 x 100 cells > 1000: needs 2 columns
    every = np.concatenate(placed) // 256
    assert every.max() < 1000 and every.min() >= 0
    assert len({tuple(c) for c in every.tolist()}) == 17 * 3  # no shared cell
    assert len({int(p[:, 0].min()) for p in placed}) == 2
    with pytest.raises(ValueError, match="TCGA-AA-0001"):
        place_slides([np.array([[0, 0], [900 * 256, 999 * 256]])] * 3, patient="TCGA-AA-0001")


def test_build_bag_orders_tiles_row_major_per_slide():
    xy = np.array([[512, 256], [0, 256], [256, 0]])
    bag = build_bag("P", [("s1", np.arange(3.0)[:, None], xy), ("s2", np.arange(3.0, 5.0)[:, None], xy[:2])])
    assert bag.features[:, 0].tolist() == [2, 1, 0, 4, 3]
    assert bag.coords[:3].tolist() == [[256, 0], [0, 256], [512, 256]]
    assert bag.coords[3:, 1].min() > bag.coords[:3, 1].max()


def test_tile_cap_is_random_in_training_and_deterministic_at_evaluation():
    assert cap_indices(10, 20).tolist() == list(range(10))
    evaluation = cap_indices(100, 10)
    assert len(set(evaluation.tolist())) == 10 and evaluation.tolist() == cap_indices(100, 10).tolist()
    first = cap_indices(100, 10, np.random.default_rng(1))
    second = cap_indices(100, 10, np.random.default_rng(2))
    assert len(set(first.tolist())) == 10 and np.all(np.diff(first) > 0) and first.tolist() != second.tolist()


# ---- objective ---------------------------------------------------------------------------------------------------
def test_kl_loss_matches_the_formula_and_vanishes_at_the_target():
    outputs = torch.randn(3, 8)
    targets = torch.nn.functional.normalize(torch.randn(3, 8), dim=-1)
    p = torch.softmax(targets, -1)
    q = torch.softmax(torch.nn.functional.normalize(outputs, dim=-1), -1)
    expected = (p * (p.log() - q.log())).sum(-1).mean()
    torch.testing.assert_close(kl_to_text(outputs, targets), expected)
    torch.testing.assert_close(kl_to_text(outputs, targets, reduction="sum_x10"), 30 * expected)
    assert kl_to_text(5 * targets, targets).abs() < 1e-7


def test_learning_rate_schedules():
    # Upstream's numbers (reference section 11): 5e-6 -> 1e-4 over 10 epochs, peak held at 11, 2.4e-6 at 29.
    code = [learning_rate(e, 30, 1e-4, 10, 20, "code") for e in range(30)]
    assert code[0] == pytest.approx(5e-6) and code[10] == pytest.approx(1e-4) and code[11] == pytest.approx(1e-4)
    assert code[29] == pytest.approx(2.447e-6, rel=1e-3)
    paper = [learning_rate(e, 30, 1e-4, 10, 20, "paper") for e in range(30)]
    assert paper[10] == pytest.approx(1e-4) and paper[11] < 1e-4 and all(np.diff(paper[10:]) < 0)
    assert paper[5] == pytest.approx(5e-6 + (1e-4 - 5e-6) / 2)


# ---- a small synthetic cohort ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    """12 patients in 2 classes with 1-3 slides each; class shows in tiles, genes and text."""
    root = tmp_path_factory.mktemp("results")
    rng = np.random.default_rng(0)
    genes = [f"G{i}" for i in range(8)]
    pathways = pd.DataFrame({"pathway": ["p0", "p0", "p1", "p1", "p1", "p2", "p2"],
                             "gene": ["G0", "G1", "G2", "G3", "G0", "G4", "G5"]})
    split_of = ["train"] * 8 + ["val"] * 2 + ["test"] * 2
    class_directions = rng.normal(size=(2, 3, TEXT_DIM))
    rows, omics, text = [], [], []
    for i, split in enumerate(split_of):
        patient, label = f"TCGA-AA-{i:04d}", i % 2
        slides = [f"{patient}-01Z-00-DX{k + 1}" for k in range(1 + i % 3)]
        for slide in slides:
            n = int(rng.integers(5, 30))
            features = rng.normal(size=(n, TILE_DIM)) + label
            coords = rng.integers(0, 40, (n, 2)) * 256
            write_features(root / "features" / "tiny" / f"{slide}.h5", features, coords,
                           {"encoder": "tiny", "mpp": 0.5, "tile_px_level0": 256})
        rows.append({"patient": patient, "subtype_class": label, "slides": slides})
        omics.append({"patient": patient, **{g: float(rng.normal(5 + label)) for g in genes}})
        for t, task in enumerate(TASKS + ["stage"]):
            embedding = class_directions[label, t % 3] + 0.1 * rng.normal(size=TEXT_DIM)
            if split != "train":  # poisoned: any use of validation/test text would make the loss NaN
                embedding = np.full(TEXT_DIM, np.nan)
            text.append({"patient": patient, "task": task, "embedding": embedding.astype(np.float32).tolist()})
    write_site(root, "S1", rows, split_of, omics, pathways=pathways, text=text)
    return root


def sections(epochs=3, **training):
    config = validate({
        "model": {"omics": {"latent_dim": 8, "depth": 1, "tokens": 4},
                  "adapter": {"heads": 2, "inner_ratio": 0.25}},
        "slide_encoder": {"name": "tiny"},
        "training": dict({"epochs": epochs, "lr": 3e-3, "warmup_epochs": 0, "tile_cap": 24, "device": "cpu",
                          "threads": 1}, **training),
    })
    return config["model"], config["slide_encoder"], config["training"]


def run(cohort, out, epochs=3, stop_after_epochs=None, **training):
    model, encoder, training = sections(epochs, **training)
    files = site_files(cohort, "S1", 0, "tiny", "minilm")
    data = ExperimentData([files], 0, BagOptions(training["tile_cap"]))
    return train_model(data, [files.text], cohort / "omics" / "pathways.parquet", model_section=model,
                       slide_encoder_section=encoder, training=training, projector_dim=16, seed=0, out_dir=out,
                       stop_after_epochs=stop_after_epochs)


@pytest.fixture(scope="module")
def trained(cohort, tmp_path_factory):
    out = tmp_path_factory.mktemp("model")
    return out, run(cohort, out, epochs=4)


def test_loss_falls_and_the_run_writes_its_outputs(trained):
    out, history = trained
    assert list(history["epoch"]) == [0, 1, 2, 3]
    assert np.isfinite(history["train_loss"]).all()
    assert history["train_loss"].iloc[-1] < 0.8 * history["train_loss"].iloc[0]
    assert history["val_balanced_accuracy"].between(0, 1).all()
    assert (out / "history.csv").is_file()
    config = json.loads((out / "config.json").read_text())
    best = history["val_balanced_accuracy"]
    assert config["best_epoch"] == max(i for i in range(4) if best[i] == best.max())  # ties: later epoch
    tensors = load_file(str(out / "model.safetensors"))
    assert any(k.startswith("target_projector.") for k in tensors) and any(k.startswith("encoder.") for k in tensors)


def test_embeddings_cover_every_split_and_task_and_are_reproducible(trained, cohort, tmp_path):
    out, _ = trained
    files = site_files(cohort, "S1", 0, "tiny", None)
    frame = embed_site(out, files, 0, tmp_path / "e.parquet", device="cpu")
    again = pd.read_parquet(tmp_path / "e.parquet")
    assert list(again.columns) == ["patient", "split", "task", "embedding"]
    assert len(again) == 12 * 3 and set(again["split"]) == {"train", "val", "test"}
    assert set(again["task"]) == set(TASKS) and {len(e) for e in again["embedding"]} == {16}
    second = embed_site(out, files, 0, tmp_path / "f.parquet", device="cpu")
    assert np.array_equal(np.stack(frame["embedding"]), np.stack(second["embedding"]))


def test_out_of_distribution_genes_are_scaled_on_the_target_training_split(trained, cohort, tmp_path):
    """A target site whose genes are 2x + 3 of the source's: z-scores fitted on the target's training split undo the
    shift, so its embeddings equal the source's in-domain ones; the source's statistics would not. Validation and
    test genes never enter the statistics (poisoning them changes no training patient's embedding)."""
    out, _ = trained
    source = site_files(cohort, "S1", 0, "tiny", None)
    genes = pd.read_parquet(source.omics).set_index("patient")
    target = dataclasses.replace(source, site="S2", omics=tmp_path / "S2.parquet")
    (genes * 2 + 3).reset_index().to_parquet(target.omics)
    data = ExperimentData([target], 0, BagOptions(24))
    train = data.split_patients("train")
    scaler = target_train_scaler(data)
    shifted = genes.loc[train] * 2 + 3
    np.testing.assert_allclose(scaler.mean_.loc[genes.columns], shifted.mean())
    np.testing.assert_allclose(scaler.std_.loc[genes.columns], shifted.std(ddof=0))
    assert not np.allclose(scaler.mean_.loc[genes.columns], (genes * 2 + 3).mean())  # not all patients

    in_domain = embed_site(out, source, 0, tmp_path / "s1.parquet", device="cpu")
    ood = embed_site(out, target, 0, tmp_path / "s2.parquet", gene_scaling="target-train", device="cpu")
    stale = embed_site(out, target, 0, tmp_path / "s2_model.parquet", device="cpu")
    np.testing.assert_allclose(np.stack(ood["embedding"]), np.stack(in_domain["embedding"]), atol=1e-5)
    assert not np.allclose(np.stack(stale["embedding"]), np.stack(in_domain["embedding"]), atol=1e-3)

    poisoned = dataclasses.replace(target, omics=tmp_path / "S2_poisoned.parquet")
    held_out = ~genes.index.isin(train)
    (genes * 2 + 3).mask(np.repeat(held_out[:, None], genes.shape[1], axis=1), 1e4).reset_index().to_parquet(
        poisoned.omics)
    again = embed_site(out, poisoned, 0, tmp_path / "s2_poisoned.parquet", gene_scaling="target-train", device="cpu")
    rows = again["patient"].isin(train).to_numpy()
    assert np.array_equal(np.stack(again["embedding"])[rows], np.stack(ood["embedding"])[rows])
    assert read_parquet(tmp_path / "s2.parquet")[1]["gene_scaling"] == "target-train"


def test_resume_after_an_interruption_reproduces_the_uninterrupted_run(cohort, tmp_path):
    straight = run(cohort, tmp_path / "straight", epochs=3)
    interrupted = run(cohort, tmp_path / "resumed", epochs=3, stop_after_epochs=2)
    assert len(interrupted) == 2 and not (tmp_path / "resumed" / "model.safetensors").exists()
    resumed = run(cohort, tmp_path / "resumed", epochs=3)
    columns = ["epoch", "lr", "train_loss", "val_balanced_accuracy"]
    pd.testing.assert_frame_equal(straight[columns], resumed[columns])
    a = load_file(str(tmp_path / "straight" / "model.safetensors"))
    b = load_file(str(tmp_path / "resumed" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_checkpoint_of_other_settings_is_discarded_not_resumed(cohort, tmp_path, caplog):
    run(cohort, tmp_path / "run", epochs=2, stop_after_epochs=1, lr=3e-3)
    history = run(cohort, tmp_path / "run", epochs=2, stop_after_epochs=1, lr=2e-3)
    assert "starting afresh" in caplog.text
    assert history["lr"].tolist() == [2e-3]  # epoch 0 was trained again with the new settings


def test_gene_scaling_is_fitted_on_the_training_split_only(cohort, tmp_path):
    """Validation and test patients get extreme gene values: statistics fitted on every patient would move far
    from the training-only ones that the model must store (and apply to every split)."""
    extreme = shutil.copytree(cohort, tmp_path / "results")
    splits = pd.read_parquet(extreme / "cohort" / "S1_splits.parquet").set_index("patient")["split"]
    omics = pd.read_parquet(extreme / "omics" / "S1.parquet").set_index("patient")
    held_out = splits.index[splits != "train"]
    omics.loc[held_out] = 1e4 * (1 + np.arange(len(held_out)))[:, None]
    omics.reset_index().to_parquet(extreme / "omics" / "S1.parquet")
    run(extreme, tmp_path / "model", epochs=1)

    saved = json.loads((tmp_path / "model" / "config.json").read_text())["gene_scaler"]
    train = omics.loc[splits.index[splits == "train"], saved["genes"]].to_numpy(np.float64)
    np.testing.assert_allclose(saved["mean"], train.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(saved["std"], train.std(axis=0, ddof=0), rtol=1e-12)


def test_validation_and_test_text_is_never_read(cohort):
    files = site_files(cohort, "S1", 0, "tiny", "minilm")
    data = ExperimentData([files], 0, BagOptions(24))
    train = data.split_patients("train")
    targets = TextTargets([files.text], train, TASKS)
    assert targets.patients == set(train)
    assert all(torch.isfinite(targets[p]).all() for p in train)  # the NaN rows belong to val/test only
    with pytest.raises(KeyError):
        targets[data.split_patients("val")[0]]
    # And the poisoned val/test rows in the fixture never reach a loss: training losses stay finite (see above).


def test_tile_counts_come_from_the_manifest_and_an_unlisted_slide_is_named(cohort, tmp_path):
    files = site_files(cohort, "S1", 0, "tiny", "minilm")
    data = ExperimentData([files], 0, BagOptions(24))
    first = data.patients.iloc[0]
    expected = sum(len(read_features(data.feature_path(slide))[0]) for slide in first["slides"])
    assert first["n_tiles"] == expected

    manifest = pd.read_parquet(files.features)
    dropped = manifest["slide"].iloc[-1]
    partial = tmp_path / "S1.manifest.parquet"
    manifest.iloc[:-1].to_parquet(partial)
    with pytest.raises(ValueError, match=rf"no feature file listed for slide\(s\) \['{dropped}'\] of site S1"):
        ExperimentData([dataclasses.replace(files, features=partial)], 0)


def test_every_trainable_group_of_the_demo_model_moves(cohort, tmp_path):
    """The demo's model and training settings (config/demo.yaml, two epochs): the loss reaches every part, so each
    group's median weight moves by at least half a peak learning rate (Adam's undamped step is about lr)."""
    from pathlib import Path

    from modaltune.config import load as load_config
    from modaltune.models.modaltune import build_modaltune
    from modaltune.models.omics_encoder import pathway_gene_indices

    config = load_config([Path(__file__).resolve().parents[2] / "config" / "demo.yaml"])
    training = dict(config["training"], epochs=2)
    files = site_files(cohort, "S1", 0, "tiny", "minilm")
    data = ExperimentData([files], 0, BagOptions(training["tile_cap"]))
    memberships = pd.read_parquet(cohort / "omics" / "pathways.parquet")
    model_section = dict(config["model"], output_dim=16)
    train_model(data, [files.text], cohort / "omics" / "pathways.parquet", model_section=config["model"],
                slide_encoder_section=config["slide_encoder"], training=training, projector_dim=16, seed=0,
                out_dir=tmp_path)
    # train_model seeds torch with the run's seed right before building the model: the same call rebuilds its start.
    torch.manual_seed(0)
    pairs = list(zip(memberships["pathway"], memberships["gene"], strict=True))
    _, pathway_genes = pathway_gene_indices(data.gene_names, pairs)
    start = build_modaltune(model_section, config["slide_encoder"], pathway_genes, len(data.gene_names)).state_dict()
    trained = load_file(str(tmp_path / "model.safetensors"))
    for group in ("omics_encoder.", "adapter.", "task_prompts", "final_project."):
        moved = torch.cat([(trained[k] - start[k]).abs().flatten() for k in start
                           if k.startswith(group) and start[k].is_floating_point()])
        assert moved.median() >= 0.5 * training["lr"], group


def test_one_train_command_for_several_seeds_equals_one_command_per_seed(cohort, tmp_path):
    """The demo's batch job (all seeds, embeddings written by the training job) gives the same models and
    embeddings as one `train` per seed followed by `embed`."""
    import shutil

    from modaltune.cli import main

    root = tmp_path / "results"
    shutil.copytree(cohort, root)
    splits = pd.read_parquet(root / "cohort" / "S1_splits.parquet")
    pd.concat([splits, splits.assign(seed=1)]).to_parquet(root / "cohort" / "S1_splits.parquet")
    shutil.copy(root / "text" / "S1_seed0_minilm.parquet", root / "text" / "S1_seed1_minilm.parquet")
    model, encoder, training = sections(epochs=1)
    params = json.dumps({"model": model, "slide_encoder": encoder, "training": training,
                         "text": {"encoder": "minilm", "projector_dim": 16}, "features": {"encoder": "tiny"}})
    common = ["--experiment", "demo", "--sites", "S1", "--results", str(root), "--params", params]
    batch = [tmp_path / "batch" / f"seed{seed}" for seed in (0, 1)]
    embeddings = [tmp_path / "batch" / f"seed{seed}.parquet" for seed in (0, 1)]
    assert main(["train", *common, "--seed", "0", "1", "--out", *map(str, batch),
                 "--embed-site", "S1", "--embeddings", *map(str, embeddings)]) == 0
    single = tmp_path / "single" / "seed0"
    assert main(["train", *common, "--seed", "0", "--out", str(single)]) == 0
    assert main(["embed", "--model", str(single), "--site", "S1", "--seed", "0", "--results", str(root),
                 "--out", str(tmp_path / "single.parquet"), "--params", params]) == 0

    a, b = load_file(str(batch[0] / "model.safetensors")), load_file(str(single / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    pd.testing.assert_frame_equal(pd.read_parquet(embeddings[0]), pd.read_parquet(tmp_path / "single.parquet"))
    assert json.loads((batch[1] / "config.json").read_text())["seed"] == 1
    seed1 = load_file(str(batch[1] / "model.safetensors"))
    assert not all(torch.equal(a[k], seed1[k]) for k in a)  # a run per seed, not one run copied
    assert set(pd.read_parquet(embeddings[1])["patient"]) == set(splits["patient"])
    with pytest.raises(SystemExit, match="one per --embed-site"):
        main(["train", *common, "--seed", "0", "--out", str(single), "--embed-site", "S1"])


def test_one_train_command_for_several_experiments_equals_one_command_each(cohort, tmp_path):
    """The demo's ablation batch (experiments that train the same seed on the same site, each with its own
    sections) gives every experiment the model and embeddings of its own `train` command."""
    from modaltune.cli import main

    model, encoder, training = sections(epochs=1)
    shared = {"slide_encoder": encoder, "training": training, "text": {"encoder": "minilm", "projector_dim": 16},
              "features": {"encoder": "tiny"}}
    params = {"plain": json.dumps({"model": model, **shared}),
              "general": json.dumps({"model": dict(model, tasks=["general"]), **shared})}
    common = ["--sites", "S1", "--seed", "0", "--results", str(cohort), "--embed-site", "S1"]
    batch = {name: tmp_path / "batch" / name for name in params}
    assert main(["train", "--experiment", *params, *common, "--out", *map(str, batch.values()),
                 "--embeddings", *[str(folder / "S1.parquet") for folder in batch.values()],
                 "--params", *params.values()]) == 0
    for name, raw in params.items():
        alone = tmp_path / "alone" / name
        assert main(["train", "--experiment", name, *common, "--out", str(alone),
                     "--embeddings", str(alone / "S1.parquet"), "--params", raw]) == 0
        a, b = load_file(str(batch[name] / "model.safetensors")), load_file(str(alone / "model.safetensors"))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
        pd.testing.assert_frame_equal(pd.read_parquet(batch[name] / "S1.parquet"), pd.read_parquet(alone / "S1.parquet"))
        assert json.loads((batch[name] / "config.json").read_text())["experiment"] == name
    assert load_file(str(batch["general"] / "model.safetensors"))["task_prompts"].shape[0] == 1
    with pytest.raises(SystemExit, match="2 --experiment but 1 --params"):
        main(["train", "--experiment", *params, *common, "--out", "x", "y", "--params", params["plain"]])
