"""ABMIL (cat) w/ text emb. (paper Table 8): the registered ABMIL (cat) baseline with one Linear head per task, trained
by ModalTune's loop on the text objective and embedded from its config.json like ModalTune."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file
from test_training import TASKS, TILE_DIM, cohort, sections  # noqa: F401  (cohort is a fixture)

from modaltune.baselines.base import BaselineInputs, PatientInput
from modaltune.baselines.registry import create_baseline
from modaltune.cli import main
from modaltune.config import ConfigError, load, validate
from modaltune.models.modaltune import build_modaltune
from modaltune.models.omics_encoder import pathway_gene_indices
from modaltune.omics import GeneScaler
from modaltune.training.cli import baseline_settings, job_sections, site_files
from modaltune.training.data import BagOptions, ExperimentData
from modaltune.training.embed import load_trained
from modaltune.training.loop import train_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ABMIL_CAT = {"image": {"hidden_dim": 16, "attention_dim": 8, "dropout": 0.25},
             "genes": {"output_dim": 12, "latent_dim": 8, "depth": 1, "tokens": 4}, "fusion_dim": 16}
PATHWAYS = [[0, 1], [1, 2, 3], [4]]
OUTPUT_DIM = 16


def model_section():
    return dict(sections()[0], architecture="abmil_cat")


def settings():
    """The architecture keys of the validated baselines.abmil_cat section, as the train command reads them."""
    return baseline_settings(json.dumps({"baselines": {"abmil_cat": ABMIL_CAT}}), model_section())


def build(**slide_encoder):
    torch.manual_seed(0)
    return build_modaltune(dict(model_section(), output_dim=OUTPUT_DIM), dict(sections()[1], **slide_encoder),
                           PATHWAYS, 5, feature_dim=TILE_DIM, baseline=settings())


def patient(seed=1, n=20):
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(n, TILE_DIM, generator=generator), torch.randint(0, 2000, (n, 2), generator=generator),
            torch.randn(5, generator=generator))


# ---- the model ---------------------------------------------------------------------------------------------------
def test_the_model_is_the_registered_baseline_with_a_linear_head_per_task_and_no_slide_encoder():
    # A weights file that does not exist: building a slide encoder would stop on it.
    model = build(name="gigapath_slide_enc12l768d", weights="/absent/slide_encoder.pth")
    reference = create_baseline("abmil_cat", 1, BaselineInputs(TILE_DIM, 5, PATHWAYS), **settings())
    names = {n: p.numel() for n, p in model.named_parameters()}
    expected = {f"baseline.{n}": p.numel() for n, p in reference.named_parameters() if not n.startswith("head.")}
    expected.update({f"heads.{t}.{kind}": OUTPUT_DIM * (16 if kind == "weight" else 1)
                     for t in range(len(TASKS)) for kind in ("weight", "bias")})
    assert names == expected  # the baseline's own modules (its single-task head removed) and the task heads
    assert model.encoder is None and all(p.requires_grad for p in model.parameters())
    assert not [n for n in names if n.startswith(("encoder.", "adapter.")) or "lora_" in n]
    assert model.trainable_state_dict().keys() == model.state_dict().keys()


def test_per_task_outputs_are_the_task_heads_of_the_fused_embedding():
    model = build().eval()
    features, coords, genes = patient()
    with torch.no_grad():
        outputs = model(features, coords, genes)
        reordered = model(features, coords, genes, tasks=["survival", "general"])
        fused = model.baseline.embed(PatientInput(features, coords, genes))
    assert outputs.shape == (len(TASKS), OUTPUT_DIM)
    torch.testing.assert_close(reordered, outputs[[2, 0]])
    for t, head in enumerate(model.heads):
        torch.testing.assert_close(outputs[t], fused @ head.weight.T + head.bias)
    assert not torch.allclose(outputs[0], outputs[1])
    with pytest.raises(ValueError, match="unknown task"):
        model(features, coords, genes, tasks=["stage"])


def test_a_baseline_architecture_needs_genes_and_the_adapter_setting_and_its_settings_in_params():
    with pytest.raises(ConfigError, match=r"^config error: experiments\.x: key 'model\.architecture': abmil_cat"):
        load(["config/demo.yaml"], {"experiments": {"x": {"pooled": False, "sites": "all", "model": {
            "architecture": "abmil_cat", "transcriptomics": "learned"}}}})
    with pytest.raises(ConfigError, match="--params lacks baselines.abmil_cat"):
        baseline_settings(json.dumps({"baselines": {"abmil": {}}}), model_section())
    assert baseline_settings("{}", sections()[0]) is None  # ModalTune reads no baseline settings
    config = validate({"model": {"architecture": "abmil_cat"}, "baselines": {"abmil_cat": {"fusion_dim": 8}}})
    assert job_sections(config)["baselines"] == {"abmil_cat": config["baselines"]["abmil_cat"]}
    assert "baselines" not in job_sections(validate({}))  # a ModalTune job's params ignore every baseline


# ---- training and embedding --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained(cohort, tmp_path_factory):  # noqa: F811
    """`modaltune train` of the ABMIL text model with --embed-site, params as the workflow writes them."""
    out = tmp_path_factory.mktemp("abmil_text")
    model, encoder, training = sections(epochs=3)
    config = validate({"model": dict(model, architecture="abmil_cat"), "slide_encoder": encoder,
                       "training": training, "text": {"encoder": "minilm", "projector_dim": OUTPUT_DIM},
                       "features": {"encoder": "tiny"}, "baselines": {"abmil_cat": ABMIL_CAT}})
    params = json.dumps(job_sections(config))
    assert main(["train", "--experiment", "abmil_text", "--sites", "S1", "--seed", "0", "--results", str(cohort),
                 "--out", str(out / "model"), "--embed-site", "S1", "--embeddings", str(out / "train.parquet"),
                 "--params", params]) == 0
    return out, config


def test_it_trains_on_the_kl_text_objective_and_every_part_moves(trained, cohort):  # noqa: F811
    out, config = trained
    history = pd.read_csv(out / "model" / "history.csv")
    assert len(history) == 3 and np.isfinite(history["train_loss"]).all()  # validation/test text is NaN-poisoned
    assert history["train_loss"].iloc[-1] < history["train_loss"].iloc[0]
    assert history["val_balanced_accuracy"].between(0, 1).all()
    saved = load_file(str(out / "model" / "model.safetensors"))
    assert not [k for k in saved if k.startswith("encoder.")]  # no slide encoder saved
    # The loop seeds torch with the run's seed right before building the model: the same build is its start.
    files = site_files(cohort, "S1", 0, "tiny", None)
    data = ExperimentData([files], 0, BagOptions(config["training"]["tile_cap"]))
    memberships = pd.read_parquet(cohort / "omics" / "pathways.parquet")
    pairs = list(zip(memberships["pathway"], memberships["gene"], strict=True))
    _, pathway_genes = pathway_gene_indices(data.gene_names, pairs)
    torch.manual_seed(0)
    start = build_modaltune(dict(config["model"], output_dim=OUTPUT_DIM), config["slide_encoder"], pathway_genes,
                            len(data.gene_names), feature_dim=TILE_DIM, baseline=settings()).state_dict()
    assert set(start) == {k for k in saved if not k.startswith("target_projector.")}
    for group in ("baseline.image.", "baseline.genes.", "baseline.fusion.", "heads."):
        assert any(not torch.equal(saved[k], v) for k, v in start.items() if k.startswith(group)), group


def test_config_json_rebuilds_the_model_and_embed_reproduces_the_training_jobs_embeddings(trained, cohort, tmp_path):  # noqa: F811
    out, config = trained
    saved = json.loads((out / "model" / "config.json").read_text())
    assert saved["baseline"] == settings() and saved["feature_dim"] == TILE_DIM and saved["encoder_sha256"] is None
    params = json.dumps({name: config[name] for name in ("model", "slide_encoder", "training", "text", "features")})
    assert main(["embed", "--model", str(out / "model"), "--site", "S1", "--seed", "0", "--results", str(cohort),
                 "--out", str(tmp_path / "embed.parquet"), "--params", params]) == 0  # no baselines section needed
    embedded = pd.read_parquet(tmp_path / "embed.parquet")
    pd.testing.assert_frame_equal(embedded, pd.read_parquet(out / "train.parquet"))
    assert len(embedded) == 12 * len(TASKS) and {len(e) for e in embedded["embedding"]} == {OUTPUT_DIM}

    # Reference: the registered baseline itself with the saved weights, its embedding through the saved task heads.
    tensors = load_file(str(out / "model" / "model.safetensors"))
    reference = create_baseline("abmil_cat", 1, BaselineInputs(TILE_DIM, len(saved["gene_scaler"]["mean"]),
                                                               saved["pathway_genes"]), **saved["baseline"])
    missing, unexpected = reference.load_state_dict(
        {k.removeprefix("baseline."): v for k, v in tensors.items() if k.startswith("baseline.")}, strict=False)
    assert set(missing) == {"head.weight", "head.bias"} and not unexpected
    reference.eval()
    data = ExperimentData([site_files(cohort, "S1", 0, "tiny", None)], 0, BagOptions(saved["tile_cap"]))
    genes = GeneScaler.from_state_dict(saved["gene_scaler"]).transform(data.genes)
    for name in ("TCGA-AA-0000", "TCGA-AA-0011"):
        bag = data.bag(name)
        with torch.no_grad():
            fused = reference.embed(PatientInput(torch.from_numpy(bag.features), torch.from_numpy(bag.coords),
                                                 torch.tensor(genes.loc[name].to_numpy(np.float32))))
        for t, task in enumerate(TASKS):
            row = embedded[(embedded["patient"] == name) & (embedded["task"] == task)].iloc[0]
            expected = fused @ tensors[f"heads.{t}.weight"].T + tensors[f"heads.{t}.bias"]
            np.testing.assert_allclose(row["embedding"], expected.numpy(), rtol=1e-5, atol=1e-6)
    model, _, _ = load_trained(out / "model")
    assert model.encoder is None and type(model).__name__ == "TextObjectiveBaseline"


def test_an_interrupted_run_resumes_to_the_same_model_and_other_baseline_settings_start_afresh(cohort, tmp_path,  # noqa: F811
                                                                                               caplog):
    def run(out, stop=None, baseline=None):
        model, encoder, training = sections(epochs=3)
        files = site_files(cohort, "S1", 0, "tiny", "minilm")
        data = ExperimentData([files], 0, BagOptions(training["tile_cap"]))
        return train_model(data, [files.text], cohort / "omics" / "pathways.parquet",
                           model_section=dict(model, architecture="abmil_cat"), slide_encoder_section=encoder,
                           training=training, projector_dim=OUTPUT_DIM, seed=0, out_dir=out, stop_after_epochs=stop,
                           baseline=baseline or settings())

    whole = run(tmp_path / "whole")
    assert len(run(tmp_path / "resumed", stop=1)) == 1
    resumed = run(tmp_path / "resumed")
    pd.testing.assert_frame_equal(whole.drop(columns="seconds"), resumed.drop(columns="seconds"))
    a, b = (load_file(str(tmp_path / name / "model.safetensors")) for name in ("whole", "resumed"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    with caplog.at_level("WARNING"):
        run(tmp_path / "resumed", stop=1, baseline=dict(settings(), fusion_dim=8))
    assert "discarding it and starting afresh" in caplog.text
