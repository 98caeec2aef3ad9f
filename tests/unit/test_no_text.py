"""No Text Embedding (paper Table 8): ModalTune with one task prompt and a task head, trained per task with
cross-entropy or the NLL survival loss and scored on its own predictions; the experiment's checks; the ablation table
with its rows in config order."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from synthetic_site import site_data
from test_baselines import PATHWAYS, site  # noqa: F401  (site is a fixture)

from modaltune.baselines.no_text import SupervisedModalTune, no_text_model
from modaltune.baselines.survival import nll_survival_loss
from modaltune.baselines.train import Run
from modaltune.cli import main
from modaltune.config import ConfigError, experiment_sections, load, validate
from modaltune.models.modaltune import build_modaltune
from modaltune.report.tables import in_row_order

pytestmark = pytest.mark.usefixtures("one_torch_thread")

PROJECTOR_DIM = 16


def sections(epochs=3, **training):
    """A merged experiment config at test widths: ModalTune's training differs from the baselines' protocol in every
    key the run takes from it, so the test sees which one it used."""
    return validate({
        "model": {"omics": {"latent_dim": 8, "depth": 1, "tokens": 4}, "adapter": {"heads": 2, "inner_ratio": 0.25},
                  "tasks": ["general", "subtype", "survival"]},
        "slide_encoder": {"name": "tiny"},
        "training": dict({"epochs": epochs, "lr": 3e-3, "warmup_epochs": 1, "warmup_factor": 10, "schedule": "code",
                          "eps": 1e-9, "weight_decay": 1e-3, "accumulate": 2, "tile_cap": 12, "device": "cpu",
                          "precision": "fp32", "threads": 1}, **training),
        "text": {"projector_dim": PROJECTOR_DIM},
        "features": {"encoder": "tiny"},
        "baselines": {"training": {"epochs": 50, "tile_cap": 5, "eval_tile_cap": 7, "accumulate": 32,
                                   "survival_bins": 3, "survival_alpha": 0.4, "bag_cache_mb": 100}},
    })


def trainable(module, prefix=""):
    return {prefix + name: tuple(p.shape) for name, p in module.named_parameters() if p.requires_grad}


# ---- the model -----------------------------------------------------------------------------------------------------
def test_the_model_is_modaltune_with_one_task_prompt_and_a_task_head_and_no_text_path(site):  # noqa: F811
    config = sections()
    inputs = site_data(site).inputs(PATHWAYS, config["slide_encoder"])
    spec = no_text_model("no_text", config, "subtype", inputs)
    torch.manual_seed(0)
    model = spec.build(3)
    assert isinstance(model, SupervisedModalTune) and model.modaltune.tasks == ("subtype",)
    torch.manual_seed(0)
    reference = build_modaltune(dict(config["model"], tasks=["subtype"], output_dim=PROJECTOR_DIM),
                                config["slide_encoder"], PATHWAYS, inputs.n_genes)
    names = trainable(model)
    # exactly ModalTune's trainable parameters (adapter, transcriptomics encoder, one task prompt, Eq. 4 output) and
    # the head on its output: no text projector, no other task prompt
    assert names == trainable(reference, "modaltune.") | {"head.weight": (3, PROJECTOR_DIM), "head.bias": (3,)}
    assert names["modaltune.task_prompts"] == (1, 1, 64)
    assert not [name for name in names if "projector" in name or "target_space" in name]
    full = build_modaltune(dict(config["model"], output_dim=PROJECTOR_DIM), config["slide_encoder"], PATHWAYS,
                           inputs.n_genes)
    assert trainable(full)["task_prompts"] == (3, 1, 64)  # the text-trained model it ablates has three
    assert not any(p.requires_grad for p in model.modaltune.encoder.parameters())  # the slide encoder stays frozen


def test_the_losses_are_cross_entropy_and_the_baselines_nll_and_reach_the_adapter_and_genes(site):  # noqa: F811
    config = sections()
    data = site_data(site)
    inputs = data.inputs(PATHWAYS, config["slide_encoder"])
    patient = data.experiment.split_patients("train")[0]
    for task, n_outputs in (("subtype", 2), ("survival", 3)):
        run = Run(no_text_model("no_text", config, task, inputs), data, data.task(task, 3), torch.device("cpu"), 0)
        logits = run.outputs(patient, np.random.default_rng(0))
        assert logits.shape == (n_outputs,)
        row = run.task.labels.loc[patient]
        if task == "subtype":
            expected = F.cross_entropy(logits.unsqueeze(0), torch.tensor([int(row["subtype_class"])]))
        else:
            expected = nll_survival_loss(logits.unsqueeze(0), torch.tensor([int(row["bin"])]),
                                         torch.tensor([1.0 - row["event"]]), alpha=0.4)
        loss = run.loss(patient, logits)
        assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
        loss.backward()
        model = run.model.modaltune
        for part in (model.task_prompts, model.omics_encoder, model.adapter, run.model.head):
            grads = [part.grad] if isinstance(part, torch.nn.Parameter) else [p.grad for p in part.parameters()]
            assert any(g is not None and g.abs().sum() > 0 for g in grads), (task, type(part).__name__)


# ---- a run, through the command ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def runs(site, tmp_path_factory):  # noqa: F811
    out = tmp_path_factory.mktemp("ablations")
    config = sections(epochs=4)
    params = {name: config[name] for name in ("model", "slide_encoder", "training", "text", "features", "baselines")}
    assert main(["train-supervised", "--experiment", "no_text", "--site", "S1", "--seeds", "0",
                 "--tasks", "subtype", "survival", "--results", str(site), "--out", str(out),
                 "--params", json.dumps(params)]) == 0
    return out / "no_text" / "S1" / "seed0", config


def test_each_task_learns_the_planted_signal_and_is_scored_on_its_own_test_predictions(site, runs):  # noqa: F811
    from lifelines.utils import concordance_index
    from sklearn.metrics import balanced_accuracy_score

    folder, _ = runs
    test = sorted(site_data(site).experiment.split_patients("test"))
    subtype = json.loads((folder / "subtype.json").read_text())
    predictions = pd.read_parquet(folder / "subtype.parquet")
    assert sorted(predictions["patient"]) == test
    assert subtype["value"] == pytest.approx(
        balanced_accuracy_score(predictions["subtype_class"], predictions["predicted_class"]))
    survival = json.loads((folder / "survival.json").read_text())
    predictions = pd.read_parquet(folder / "survival.parquet")
    assert survival["value"] == pytest.approx(
        concordance_index(predictions["time_months"], -predictions["risk"], predictions["event"]))
    for record in (subtype, survival):
        assert (record["model"], record["experiment"], record["status"], record["modality"]) == (
            "no_text", "no_text", "ok", "multimodal")
        assert len(record["history"]) == 4 and not (folder / f"{record['task']}.checkpoint").exists()
    # Perfect class separation gives a C-index of about 0.75 here (pairs within a class are a coin flip).
    assert subtype["value"] >= 0.75 and survival["value"] >= 0.65, (subtype["value"], survival["value"])


def test_a_run_takes_modaltunes_optimiser_and_protocol_and_the_baselines_survival_bins(runs):
    folder, config = runs
    settings = json.loads((folder / "survival.json").read_text())["settings"]
    training = config["training"]
    assert settings["optimiser"] == {key: training[key]
                                     for key in ("lr", "weight_decay", "eps", "warmup_factor", "schedule")}
    assert settings["training"] == {
        "epochs": 4, "warmup_epochs": 1, "accumulate": 2, "betas": training["betas"], "precision": "fp32",
        "tile_cap": 12, "eval_tile_cap": 12, "survival_bins": 3, "survival_alpha": 0.4}
    assert settings["architecture"]["model"]["tasks"] == ["survival"]
    assert len(json.loads((folder / "survival.json").read_text())["bin_edges"]) == 4  # 3 bins


# ---- the experiment -------------------------------------------------------------------------------------------------
NO_TEXT = {"pooled": False, "sites": "all", "ablation": True, "objective": "supervised"}


def test_the_demo_experiment_validates_and_merges_modaltunes_sections():
    config = load(["config/demo.yaml"])
    experiment = config["experiments"]["no_text_embedding"]
    assert experiment["objective"] == "supervised" and config["experiments"]["modaltune"]["objective"] == "text"
    merged = experiment_sections(config, "no_text_embedding")
    assert merged["training"]["epochs"] == 3 and merged["model"] == config["model"]


@pytest.mark.parametrize(("override", "message"), [
    ({"pooled": True, "sites": ["NSCLC", "RCC"]}, r"experiments\.x\.pooled: objective supervised trains one model per"),
    ({"ablation": False}, r"experiments\.x\.ablation: objective supervised is a row of the ablation table"),
    ({"text": {"projector_dim": 384}}, r"experiments\.x\.text: objective supervised reads no text"),
    ({"model": {"projector": "trainable"}}, r"experiments\.x\.model\.projector: objective supervised has no text"),
    ({"model": {"tasks": ["subtype"]}}, r"experiments\.x\.model\.tasks: objective supervised trains one model per task"),
    ({"model": {"transcriptomics": "learned"}}, r"experiments\.x\.model\.transcriptomics: objective supervised"),
    ({"model": {"clinical": {"enabled": True}}}, r"experiments\.x\.model\.clinical\.enabled: objective supervised"),
    ({"objective": "labels"}, r"key 'experiments\.x\.objective': 'labels' is not one of \['text', 'supervised'\]"),
])
def test_a_combination_that_cannot_work_stops_with_one_line_naming_experiment_and_key(override, message):
    with pytest.raises(ConfigError, match=message) as caught:
        load(["config/demo.yaml"], {"experiments": {"x": {**NO_TEXT, **override}}})
    assert "\n" not in str(caught.value)


# ---- the ablation table ---------------------------------------------------------------------------------------------
def test_the_ablation_table_places_the_single_task_rows_in_config_order(tmp_path):
    probes, runs = [], []
    for experiment, seeds in (("single_modal", [0]), ("single_task_prompt", [0]), ("modaltune", [0, 1])):
        for seed in seeds:
            probes.append(tmp_path / f"{experiment}_{seed}.json")
            probes[-1].write_text(json.dumps({"experiment": experiment, "site": "NSCLC", "seed": seed,
                                              "subtype": {"balanced_accuracy": 0.6 + seed / 10},
                                              "survival": {"c_index": 0.6}}))
    values = {"subtype": 0.8125, "survival": 0.5555}
    for task, value in values.items():
        runs.append(tmp_path / f"no_text_{task}.json")
        runs[-1].write_text(json.dumps({"model": "no_text_embedding", "site": "NSCLC", "seed": 0, "task": task,
                                        "metric": {"subtype": "balanced_accuracy", "survival": "c_index"}[task],
                                        "value": value, "modality": "multimodal", "reason": None}))
    order = ["single_modal", "no_text_embedding", "single_task_prompt", "modaltune"]
    labels = {"single_modal": "Single Modal", "no_text_embedding": "No Text Embedding",
              "single_task_prompt": "Single Task Prompt", "modaltune": "ModalTune"}
    not_run = {"ModalTune w/ MedLlama": "needs a local 8B text model"}
    assert main(["tables", *map(str, probes), "--baselines", *map(str, runs), "--order", *order,
                 "--out", str(tmp_path / "ablations.csv"), "--labels", json.dumps(labels),
                 "--not-run", json.dumps(not_run)]) == 0
    markdown = (tmp_path / "ablations.md").read_text()
    tables, notes = markdown.split("\n\nNot run:\n\n")
    for task, block in zip(values, tables.split("### Survival"), strict=True):
        rows = [line.split("|")[1].strip() for line in block.splitlines() if line.startswith("| ")][1:]
        # the row this run cannot fill comes before the reference (ModalTune last), "not run" in every column
        assert rows == [*(labels[name] for name in order[:-1]), "ModalTune w/ MedLlama", "ModalTune"], task
        row = next(line for line in block.splitlines() if "No Text Embedding" in line)
        assert row.split("|")[2].strip().strip("*") == f"{values[task]:.3f}"  # one seed: the record's value alone
        missing = next(line for line in block.splitlines() if "MedLlama" in line)
        assert [cell.strip() for cell in missing.split("|")[2:-1]] == ["not run", "not run"]  # NSCLC, Mean
    assert notes.strip() == "- ModalTune w/ MedLlama: needs a local 8B text model"
    assert "MedLlama" in (tmp_path / "ablations.html").read_text()
    assert "MedLlama" not in (tmp_path / "ablations.csv").read_text()  # the CSV holds measured cells only
    assert "Modality" not in markdown  # every row is multi-modal: no group column
    with pytest.raises(SystemExit, match="give probe files, --baselines run files, or both"):
        main(["tables", "--out", str(tmp_path / "empty.csv")])


def test_rows_of_the_given_order_come_first_and_the_others_keep_theirs():
    long = pd.DataFrame({"experiment": ["c", "a", "x", "b", "a", "y"], "value": range(6)})
    assert in_row_order(long, ["a", "b", "c"])["value"].tolist() == [1, 4, 3, 0, 2, 5]

