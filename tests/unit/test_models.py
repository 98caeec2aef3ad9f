"""ModalTune model: shapes, gamma = 0 identity, frozen weights, batched == sequential task passes, grouped S-MLP."""

import pytest
import torch
from torch import nn

from modaltune.models import create_slide_encoder
from modaltune.models.adapter import Injector, ModalAdapter
from modaltune.models.modaltune import ModalTune
from modaltune.models.omics_encoder import OmicsEncoder, PathwayMLP, pathway_gene_indices
from modaltune.models.slide_encoder import SLIDE_ENCODERS

PATHWAYS = [[0, 1, 2], [2, 3], [4], [1, 5, 6, 7, 8], [9, 0]]  # gene 0, 1, 2 shared by two pathways
N_GENES = 10


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def tiny_encoder():
    torch.manual_seed(0)
    return create_slide_encoder("tiny")


def small_model(encoder, **kwargs):
    torch.manual_seed(0)
    omics = OmicsEncoder(PATHWAYS, N_GENES, out_dim=encoder.config.embed_dim, latent_dim=16, depth=2, n_tokens=4)
    options = dict(n_blocks=3, heads=2, inner_ratio=0.5, output_dim=8)
    options.update(kwargs)
    return ModalTune(encoder, omics, **options)


def bag(n=20, seed=1):
    dim = SLIDE_ENCODERS["tiny"].in_chans
    generator = torch.Generator().manual_seed(seed)
    features = torch.randn(n, dim, generator=generator)
    coords = torch.randint(0, 2000, (n, 2), generator=generator)
    genes = torch.randn(N_GENES, generator=generator)
    return features, coords, genes


def test_grouped_pathway_mlp_equals_a_loop_over_per_pathway_linears():
    torch.manual_seed(0)
    grouped = PathwayMLP(PATHWAYS, N_GENES, latent_dim=6, dropout=0.25).eval()
    with torch.no_grad():
        grouped.bias1.normal_()
        grouped.bias2.normal_()
    genes = torch.randn(3, N_GENES)
    rows = [0]
    for genes_of_pathway in PATHWAYS:
        rows.append(rows[-1] + len(genes_of_pathway))
    expected = []
    for p, genes_of_pathway in enumerate(PATHWAYS):
        first, second = nn.Linear(len(genes_of_pathway), 6), nn.Linear(6, 6)
        with torch.no_grad():
            first.weight.copy_(grouped.weight1[rows[p]:rows[p + 1]].T)
            first.bias.copy_(grouped.bias1[p])
            second.weight.copy_(grouped.weight2[p].T)
            second.bias.copy_(grouped.bias2[p])
        mlp = nn.Sequential(first, nn.ELU(), second, nn.ELU())
        expected.append(mlp(genes[:, genes_of_pathway]))
    torch.testing.assert_close(grouped(genes), torch.stack(expected, dim=1), rtol=1e-6, atol=1e-6)


def test_omics_encoder_shapes_and_gene_index_errors():
    encoder = OmicsEncoder(PATHWAYS, N_GENES, out_dim=12, latent_dim=16, depth=2, n_tokens=4)
    assert encoder(torch.randn(2, N_GENES)).shape == (2, 4, 12)
    names, indices = pathway_gene_indices(["a", "b", "c"], [("p", "a"), ("q", "c"), ("p", "b")])
    assert names == ["p", "q"] and indices == [[0, 1], [2]]
    with pytest.raises(ValueError, match="not omics columns"):
        pathway_gene_indices(["a"], [("p", "zz")])


def test_output_shape_and_task_order(tiny_encoder):
    model = small_model(tiny_encoder).eval()
    features, coords, genes = bag()
    with torch.no_grad():
        z = model(features, coords, genes)
        survival_first = model(features, coords, genes, tasks=["survival", "general"])
    assert z.shape == (3, 8)
    torch.testing.assert_close(survival_first, z[[2, 0]], rtol=1e-5, atol=1e-6)


def test_cat_aggregation_and_several_prompt_tokens(tiny_encoder):
    model = small_model(tiny_encoder, token_aggregation="cat", prompt_tokens=2).eval()
    with torch.no_grad():
        assert model(*bag()).shape == (3, 8)
    assert model.modal_pos.shape == (2 + 4, tiny_encoder.config.embed_dim)


@pytest.mark.parametrize("aggregation", ["sum", "cat"])
def test_output_is_eq4_of_the_cls_the_task_prompt_and_the_mean_pathway_token(tiny_encoder, aggregation):
    """z_t = Linear(LayerNorm(f_img (+ or concat) f_task (+ or concat) f_gene)) (paper Eq. 4), with f_img the CLS
    after the last encoder layer, f_task the mean of the task's prompt tokens and f_gene the mean pathway token,
    both from the multimodal tokens after the last extractor; captured with hooks, one task pass at a time."""
    prompt_tokens = 2
    model = small_model(tiny_encoder, token_aggregation=aggregation, prompt_tokens=prompt_tokens).eval()
    extractors = model.adapter.extra_extractors or model.adapter.extractors
    captured = {"cls": [], "modal": []}
    hooks = [
        tiny_encoder.encoder.layers[-1].register_forward_hook(lambda m, i, out: captured["cls"].append(out[:, 0])),
        extractors[-1].register_forward_hook(lambda m, i, out: captured["modal"].append(out)),
    ]
    features, coords, genes = bag()
    with torch.no_grad():
        z = model(features, coords, genes, batched=False)
    for hook in hooks:
        hook.remove()

    assert len(captured["cls"]) == len(captured["modal"]) == 3  # one pass per task
    cls = torch.cat(captured["cls"])
    modal = torch.cat(captured["modal"])
    terms = [cls, modal[:, :prompt_tokens].mean(dim=1), modal[:, prompt_tokens:].mean(dim=1)]

    def eq4(parts):
        pooled = sum(parts) if aggregation == "sum" else torch.cat(parts, dim=-1)
        with torch.no_grad():
            return model.final_project(model.final_norm(pooled))

    torch.testing.assert_close(z, eq4(terms), rtol=1e-5, atol=1e-6)
    # Each term moves the output, so a formula that dropped or replaced one would fail above.
    for dropped in range(3):
        partial = [torch.zeros_like(t) if i == dropped else t for i, t in enumerate(terms)]
        assert (eq4(partial) - z).abs().max() > 1e-3


def test_gamma_zero_leaves_the_frozen_encoder_features_unchanged(tiny_encoder):
    model = small_model(tiny_encoder).eval()
    features, coords, genes = bag()
    captured = []
    run_layers = tiny_encoder.run_layers
    depth = tiny_encoder.config.depth

    def run_and_capture_last_block(tokens, start, stop):
        tokens = run_layers(tokens, start, stop)
        if stop == depth:
            captured.append(tokens)
        return tokens

    tiny_encoder.run_layers = run_and_capture_last_block
    with torch.no_grad():
        plain = run_layers(tiny_encoder.embed(features[None], coords[None]), 0, depth)
        model(features, coords, genes, batched=False)
        last_layers_per_task = list(captured)
        model(features, coords, genes, batched=True)
    # Each task's tokens after the last block are the encoder's own output: bit-identical one task at a time,
    # equal up to float rounding of the batch-of-3 kernels in the batched pass.
    assert len(last_layers_per_task) == 3
    for tokens in last_layers_per_task:
        assert torch.equal(tokens, plain)
    torch.testing.assert_close(captured[-1], plain.expand(3, -1, -1), rtol=1e-5, atol=1e-5)


def test_injector_residual_options_are_identity_at_gamma_zero():
    image, modal, pos = torch.randn(1, 5, 8), torch.randn(1, 3, 8), torch.randn(3, 8)
    for residual in ("paper", "code"):
        injector = Injector(8, heads=2, inner_ratio=0.5, residual=residual)
        assert torch.equal(injector(image, modal, pos), image)
        with torch.no_grad():
            injector.gamma.fill_(0.5)
        assert not torch.equal(injector(image, modal, pos), image)


def test_batched_task_passes_equal_sequential_passes(tiny_encoder):
    model = small_model(tiny_encoder).eval()
    with torch.no_grad():
        for module in model.adapter.modules():  # move gamma off 0 so the injected features matter
            if isinstance(module, Injector):
                module.gamma.normal_()
        batched = model(*bag(), batched=True)
        sequential = model(*bag(), batched=False)
    torch.testing.assert_close(batched, sequential, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(batched[0], batched[1])  # the prompts make the tasks differ


def test_frozen_weights_bit_identical_after_an_optimisation_step(tiny_encoder):
    model = small_model(tiny_encoder).train()
    frozen = {k: v.clone() for k, v in model.encoder.state_dict().items()}
    trainable = {k: v.clone() for k, v in model.named_parameters() if v.requires_grad}
    assert not any(p.requires_grad for p in model.encoder.parameters())
    assert not model.encoder.training  # eval mode: no dropout inside the frozen encoder
    optimiser = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2, weight_decay=0.1)
    model(*bag()).square().sum().backward()
    optimiser.step()
    for key, value in model.encoder.state_dict().items():
        assert torch.equal(value, frozen[key]), key
    changed = [k for k, v in model.named_parameters() if v.requires_grad and not torch.equal(v, trainable[k])]
    assert any(k.startswith("adapter.") for k in changed) and any(k.startswith("omics_encoder.") for k in changed)


def test_adapter_blocks_split_the_layers_evenly():
    adapter = ModalAdapter(8, n_blocks=3, heads=2, inner_ratio=0.5)
    assert len(adapter.injectors) == 3 and len(adapter.extractors) == 3 and len(adapter.extra_extractors) == 2
    assert len(adapter.self_attentions) == 2
