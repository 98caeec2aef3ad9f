"""Experiments that override the model (paper Table 8): config merge and checks, each switch changes exactly what it
says, the Single Modal run never reads the gene table, and the ablation table from probe files."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file
from test_training import TEXT_DIM, cohort, sections  # noqa: F401  (cohort is a fixture)

from modaltune.config import ConfigError, experiment_sections, load, validate
from modaltune.models import create_slide_encoder
from modaltune.models.modaltune import build_modaltune
from modaltune.report.tables import collect_probes, results_table, write_tables
from modaltune.text.projector import RandomProjector, TargetSpace
from modaltune.training.cli import site_files
from modaltune.training.data import BagOptions, ExperimentData
from modaltune.training.embed import embed_site
from modaltune.training.loop import train_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ---- config ------------------------------------------------------------------------------------------------------
def demo_with(**experiments):
    config = load(["config/demo.yaml"])
    config["experiments"].update(experiments)
    return config


def test_an_experiment_override_merges_into_a_copy_and_is_validated():
    config = demo_with(x={"pooled": False, "sites": "all", "model": {"omics": {"tokens": 3}, "projector": "trainable"},
                          "training": {"epochs": 2}})
    merged = experiment_sections(config, "x")
    assert merged["model"]["omics"]["tokens"] == 3 and merged["model"]["projector"] == "trainable"
    assert merged["model"]["omics"]["latent_dim"] == config["model"]["omics"]["latent_dim"]  # untouched keys kept
    assert merged["training"]["epochs"] == 2 and merged["training"]["lr"] == config["training"]["lr"]
    assert config["model"]["omics"]["tokens"] == 8 and config["model"]["projector"] == "fixed"  # top level unchanged
    assert experiment_sections(config, "modaltune")["model"] == config["model"]


@pytest.mark.parametrize(("override", "message"), [
    ({"model": {"omics": {"width": 3}}}, r"^config error: experiments\.x: unknown key 'model\.omics\.width'"),
    ({"training": {"epochs": 0}}, r"^config error: experiments\.x: key 'training\.epochs'"),
    ({"model": {"projector": "none"}}, r"^config error: experiments\.x: key 'text\.projector_dim'.*width 384"),
    ({"text": {"encoder": "conch"}}, r"^config error: experiments\.x\.text\.encoder cannot differ per experiment"),
    ({"training": {"threads": 4}}, r"^config error: experiments\.x\.training\.threads cannot differ"),
    ({"training": {"experiments_per_job": 2}}, r"^config error: experiments\.x\.training\.experiments_per_job "),
    ({"seeds": [7]}, r"^config error: experiments\.x\.seeds \[7\] must be among cohort\.seeds"),
])
def test_a_bad_override_stops_with_one_line_naming_experiment_and_key(override, message):
    with pytest.raises(ConfigError, match=message) as caught:
        load(["config/demo.yaml"], {"experiments": {"x": {"pooled": False, "sites": "all", **override}}})
    assert "\n" not in str(caught.value)


def test_no_projector_with_the_text_width_is_accepted():
    config = demo_with(x={"pooled": False, "sites": "all", "model": {"projector": "none"},
                          "text": {"projector_dim": 384}})
    assert experiment_sections(config, "x")["text"]["projector_dim"] == 384


# ---- model switches ----------------------------------------------------------------------------------------------
PATHWAYS = [[0, 1], [1, 2, 3], [4]]


def model_of(**model):
    section, encoder, _ = sections()
    torch.manual_seed(0)
    return build_modaltune(dict(section, output_dim=8, **model), encoder, PATHWAYS, 5)


def trainable_names(model):
    return {name: p.numel() for name, p in model.named_parameters() if p.requires_grad}


def test_single_modal_replaces_exactly_the_transcriptomics_encoder_by_tokens_of_the_same_shape():
    genes, learned = trainable_names(model_of()), trainable_names(model_of(transcriptomics="learned"))
    dim, tokens = model_of().encoder.config.embed_dim, sections()[0]["omics"]["tokens"]
    assert {n for n in genes if not n.startswith("omics_encoder.")} == {n for n in learned if n != "omics_encoder.tokens"}
    assert learned["omics_encoder.tokens"] == tokens * dim and len(learned) == len(genes) - sum(
        n.startswith("omics_encoder.") for n in genes) + 1
    model = model_of(transcriptomics="learned").eval()
    features, coords = torch.randn(6, create_slide_encoder("tiny").config.in_chans), torch.randint(0, 2000, (6, 2))
    assert model(features, coords, None).shape == (3, 8)
    assert model.omics_encoder(None).shape == (1, tokens, dim)


def test_single_task_prompt_has_one_prompt():
    one, three = model_of(tasks=["general"]), model_of()
    assert one.task_prompts.shape[0] == 1 and three.task_prompts.shape[0] == 3
    assert trainable_names(one).keys() == trainable_names(three).keys()


@pytest.mark.parametrize("kind", ["fixed", "trainable", "none", "model_side"])
def test_target_space_parameters_and_gradients(kind):
    text_dim, out = 6, 6 if kind == "none" else 4
    space = TargetSpace(kind, text_dim, out, seed=3)
    counts = {name: p.numel() for name, p in space.named_parameters()}
    expected = {
        "fixed": {},
        "trainable": {"text_projector.weight1": out * text_dim, "text_projector.bias1": out,
                      "text_projector.norm_weight": out, "text_projector.norm_bias": out,
                      "text_projector.weight2": out * out, "text_projector.bias2": out},
        "none": {},
        "model_side": {"output_projector.weight": text_dim * out, "output_projector.bias": text_dim},
    }[kind]
    assert counts == expected
    outputs = torch.randn(3, out, requires_grad=True)
    text = torch.nn.functional.normalize(torch.randn(3, text_dim), dim=-1)
    aligned, target = space(outputs, text)
    (aligned * target).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in space.parameters())
    if kind in ("fixed", "trainable"):  # the same random draw as the fixed projector of that seed
        torch.testing.assert_close(target.detach(), RandomProjector(text_dim, out, seed=3)(text))
        assert target.requires_grad == (kind == "trainable")
    else:
        torch.testing.assert_close(target, text)
    with pytest.raises(ValueError, match="text.projector_dim: 6"):
        TargetSpace("none", 6, 4)


# ---- training runs -----------------------------------------------------------------------------------------------
def train(results, out, **model):
    section, encoder, training = sections(epochs=2)
    section = dict(section, **model)
    files = site_files(results, "S1", 0, "tiny", "minilm")
    data = ExperimentData([files], 0, BagOptions(training["tile_cap"]),
                          with_genes=section["transcriptomics"] == "genes")
    dim = TEXT_DIM if section["projector"] == "none" else 16
    history = train_model(data, [files.text], results / "omics" / "pathways.parquet", model_section=section,
                          slide_encoder_section=encoder, training=training, projector_dim=dim, seed=0, out_dir=out)
    return history, load_file(str(out / "model.safetensors"))


def test_the_fixed_projector_is_saved_unchanged_and_the_trainable_one_is_trained(cohort, tmp_path):  # noqa: F811
    initial = RandomProjector(TEXT_DIM, 16, seed=0).to_dict()
    _, fixed = train(cohort, tmp_path / "fixed")
    _, trained = train(cohort, tmp_path / "trainable", projector="trainable")
    assert all(torch.equal(fixed[f"target_projector.{k}"], v) for k, v in initial.items())
    assert not torch.equal(trained["target_projector.weight1"], initial["weight1"])
    assert torch.equal(trained["target_projector.seed_tensor"], initial["seed_tensor"])


def test_no_projector_and_model_side_projector_runs(cohort, tmp_path):  # noqa: F811
    history, none = train(cohort, tmp_path / "none", projector="none")
    assert np.isfinite(history["train_loss"]).all()
    assert not any(k.startswith(("target_projector.", "output_projector.")) for k in none)
    assert none["final_project.weight"].shape[0] == TEXT_DIM
    history, side = train(cohort, tmp_path / "side", projector="model_side")
    assert side["output_projector.weight"].shape == (TEXT_DIM, 16) and "target_projector.weight1" not in side
    files = site_files(cohort, "S1", 0, "tiny", None)
    frame = embed_site(tmp_path / "side", files, 0, tmp_path / "e.parquet", device="cpu")
    assert {len(e) for e in frame["embedding"]} == {16}  # the model output, before the model-side layer


def test_single_modal_never_reads_the_gene_table(cohort, tmp_path):  # noqa: F811
    results = tmp_path / "results"
    shutil.copytree(cohort, results)
    (results / "omics" / "S1.parquet").unlink()  # no gene table and no pathway file at all
    (results / "omics" / "pathways.parquet").unlink()
    table = pd.read_parquet(results / "cohort" / "S1.parquet")
    table["has_rna"] = table["patient"] != "TCGA-AA-0001"  # the cohort table says who has RNA
    table.to_parquet(results / "cohort" / "S1.parquet")
    history, tensors = train(results, tmp_path / "model", transcriptomics="learned")
    assert np.isfinite(history["train_loss"]).all()
    assert not any(k.startswith("omics_encoder.") and k != "omics_encoder.tokens" for k in tensors)
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert config["gene_scaler"] is None and config["excluded_patients"]["no_rna"] == ["TCGA-AA-0001"]
    frame = embed_site(tmp_path / "model", site_files(results, "S1", 0, "tiny", None), 0, tmp_path / "e.parquet",
                       device="cpu")
    assert "TCGA-AA-0001" not in set(frame["patient"]) and frame["patient"].nunique() == 11


# ---- ablation table ----------------------------------------------------------------------------------------------
def test_ablation_table_rows_cells_and_order_from_probe_files(tmp_path):
    rng = np.random.default_rng(0)
    runs = {"single_modal": [0], "no_projector": [0, 1], "modaltune": [0, 1, 2]}
    values, paths = {}, []
    for experiment, seeds in runs.items():
        for site in ("NSCLC", "RCC"):
            for seed in seeds:
                acc, cindex = rng.uniform(0.5, 1, 2)
                values[experiment, site, seed] = (acc, cindex)
                path = tmp_path / experiment / site / f"seed{seed}.json"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps({"experiment": experiment, "site": site, "seed": seed,
                                            "subtype": {"balanced_accuracy": acc}, "survival": {"c_index": cindex}}))
                paths.append(path)
    labels = {"single_modal": "Single Modal", "no_projector": "No Projector", "modaltune": "ModalTune"}
    table = results_table(collect_probes(paths))
    write_tables(table, tmp_path / "ablations", labels)
    markdown = (tmp_path / "ablations.md").read_text()
    subtype = markdown.split("### Survival")[0]
    rows = [line.split("|")[1].strip() for line in subtype.splitlines() if line.startswith("| ") and "---" not in line]
    assert rows == ["Method", "Single Modal", "No Projector", "ModalTune"]  # ModalTune last, as the paper
    nsclc = [values["modaltune", "NSCLC", s][0] for s in range(3)]
    cell = f"{np.mean(nsclc):.3f} ± {np.std(nsclc, ddof=1):.3f}"
    assert cell in next(line for line in subtype.splitlines() if "| ModalTune " in line)
    single = values["single_modal", "RCC", 0][1]
    survival = markdown.split("### Survival")[1]
    single_row = next(line for line in survival.splitlines() if "Single Modal" in line)
    assert f"| {single:.3f} " in single_row  # one seed: the mean alone
    overall = np.mean([np.mean([values["no_projector", site, s][0] for s in (0, 1)]) for site in ("NSCLC", "RCC")])
    assert f"{overall:.3f}" in next(line for line in subtype.splitlines() if "No Projector" in line).split("|")[-2]
    csv = pd.read_csv(tmp_path / "ablations.csv")
    assert set(csv["experiment"]) == set(runs) and (csv.loc[csv["experiment"] == "modaltune", "seeds"] == 3).all()


# ---- ModalTune w/ LoRA ---------------------------------------------------------------------------------------------
def test_lora_trains_only_its_matrices_and_leaves_the_frozen_encoder_untouched():
    model = model_of(finetuning="lora")
    encoder = model.encoder
    dim, depth = encoder.config.embed_dim, encoder.config.depth
    rank = sections()[0]["lora"]["rank"]
    trained_in_encoder = {n: c for n, c in trainable_names(model).items() if n.startswith("encoder.")}
    assert set(trained_in_encoder) == {f"encoder.encoder.layers.{i}.self_attn.{proj}.lora_{ab}.default.weight"
                                       for i in range(depth) for proj in ("q_proj", "k_proj", "v_proj") for ab in "AB"}
    assert sum(trained_in_encoder.values()) == depth * 3 * 2 * rank * dim
    assert not hasattr(model, "adapter") and "omics_encoder.compress.weight" in trainable_names(model)
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    assert all(n.startswith("encoder.") and "lora_" not in n for n in frozen)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    features = torch.randn(12, encoder.config.in_chans)
    coords = torch.randint(0, 2000, (12, 2))
    before = model(features, coords, torch.randn(5)).detach()
    model.train()
    model(features, coords, torch.randn(5)).sum().backward()
    optimizer.step()
    assert all(torch.equal(p, frozen[n]) for n, p in model.named_parameters() if n in frozen)
    lora_b = dict(model.named_parameters())["encoder.encoder.layers.0.self_attn.q_proj.lora_B.default.weight"]
    assert lora_b.abs().sum() > 0  # B starts at zero (the encoder starts as pretrained) and has been trained
    assert before.shape == (3, 8)


def test_a_lora_rank_wider_than_the_encoder_stops_the_config_check():
    with pytest.raises(ConfigError, match=r"^config error: experiments\.x: key 'model\.lora\.rank': 65 exceeds"):
        load(["config/demo.yaml"], {"experiments": {"x": {"pooled": False, "sites": "all",
                                                          "model": {"finetuning": "lora", "lora": {"rank": 65}}}}})


def test_a_lora_run_saves_its_best_matrices_and_embeds_with_them(cohort, tmp_path):  # noqa: F811
    history, tensors = train(cohort, tmp_path / "lora", finetuning="lora")
    assert np.isfinite(history["train_loss"]).all()
    lora = [k for k in tensors if "lora_B" in k]
    assert lora and all(tensors[k].abs().sum() > 0 for k in lora)
    best = load_file(str(tmp_path / "lora" / "checkpoint" / "best.safetensors"))
    assert all(torch.equal(tensors[k], best[k]) for k in lora)  # the best epoch's, not the last one's
    frame = embed_site(tmp_path / "lora", site_files(cohort, "S1", 0, "tiny", None), 0, tmp_path / "e.parquet",
                       device="cpu")
    assert np.isfinite(np.stack(frame["embedding"])).all() and {len(e) for e in frame["embedding"]} == {16}


# ---- ModalTune w/ MedLlama: any local Hugging Face text model, mean pooling ---------------------------------------
@pytest.fixture(scope="module")
def tiny_hf_model(tmp_path_factory):
    """A tiny random BERT with a word-piece tokenizer, saved as save_pretrained writes a real model."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder = tmp_path_factory.mktemp("hf")
    words = "a breast lung kidney cancer tumour patient with stage survival months of the is".split()
    vocab = folder / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]) + "\n")
    BertTokenizerFast(vocab_file=str(vocab)).save_pretrained(folder)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=5 + len(words), hidden_size=24, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=64)
    BertModel(config).save_pretrained(folder)
    return folder


def test_a_local_hugging_face_text_model_embeds_by_masked_mean_pooling(tiny_hf_model):
    from transformers import AutoModel, AutoTokenizer

    from modaltune.text.encoders import create_text_encoder

    encoder = create_text_encoder("hf", path=str(tiny_hf_model), device="cpu")
    texts = ["a lung cancer", "the patient with a breast tumour of stage survival months"]
    vectors = encoder.encode(texts, batch_size=2)
    assert vectors.shape == (2, 24) and encoder.dim == 24
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    model, tokenizer = AutoModel.from_pretrained(tiny_hf_model).eval(), AutoTokenizer.from_pretrained(tiny_hf_model)
    with torch.no_grad():  # reference: the short text alone, no padding at all
        hidden = model(**tokenizer([texts[0]], return_tensors="pt")).last_hidden_state[0]
    expected = torch.nn.functional.normalize(hidden.mean(dim=0), dim=0).numpy()
    np.testing.assert_allclose(vectors[0], expected, atol=1e-5)  # padding in the batch is masked out


def test_no_projector_width_of_a_local_model_comes_from_its_config(tiny_hf_model):
    text = {"encoder": "hf", "hf": {"path": str(tiny_hf_model)}}
    with pytest.raises(ConfigError, match=r"^config error: key 'text\.projector_dim'.*width 24"):
        validate({"text": text, "model": {"projector": "none"}})
    assert validate({"text": dict(text, projector_dim=24), "model": {"projector": "none"}})
    with pytest.raises(FileNotFoundError, match="text.hf.path"):
        from modaltune.text.encoders import create_text_encoder

        create_text_encoder("hf", path=str(tiny_hf_model / "absent"))
