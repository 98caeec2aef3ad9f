"""Dilated attention against an explicit-mask reference, Gigapath checkpoint compatibility, order and padding effects."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from modaltune.config import load as load_config
from modaltune.config import schema
from modaltune.models import create_slide_encoder
from modaltune.models.longnet import attention_with_lse, dilated_attention, pair_count
from modaltune.models.slide_encoder import SLIDE_ENCODERS, sincos_position_embedding
from modaltune.weights import WeightsError

REPO = Path(__file__).resolve().parents[2]


def reference_dilated_attention(q, k, v, segment_lengths, dilated_ratios):
    """The algorithm of reference section C written densely: per branch one (L x L) score matrix with a mask.

    Every branch lays the sequence out as segments of s real-or-zero rows, each followed by its dilation pad rows;
    head h of group h // (H / r) sees the rows whose in-segment offset is congruent to its group. Returns the merged
    output and the number of unmasked (query, key) pairs, zero rows included.
    """
    batch, n, heads, dim = q.shape
    outs, lses, pairs = [], [], 0
    for segment_length, ratio in zip(segment_lengths, dilated_ratios, strict=True):
        s = min(segment_length, n)
        padded_segment = math.ceil(s / ratio) * ratio
        rows = torch.arange(math.ceil(n / s) * padded_segment)
        segment, offset = rows // padded_segment, rows % padded_segment
        source = segment * s + offset
        real = (offset < s) & (source < n)

        def lay_out(x, real=real, source=source, rows=rows):
            laid = x.new_zeros(batch, len(rows), heads, dim)
            laid[:, real] = x[:, source[real]]
            return laid

        ql, kl, vl = lay_out(q), lay_out(k), lay_out(v)
        out = q.new_zeros(batch, n, heads, dim)
        lse = q.new_full((batch, n, heads), -1e8)
        for head in range(heads):
            visible = offset % ratio == head // (heads // ratio)
            mask = (segment[:, None] == segment[None, :]) & visible[:, None] & visible[None, :]
            pairs += int(mask.sum())
            scores = ql[:, :, head] @ kl[:, :, head].transpose(1, 2) / math.sqrt(dim)
            scores = scores.masked_fill(~mask, float("-inf"))
            queries = visible & real
            lse[:, source[queries], head] = torch.logsumexp(scores[:, queries], dim=-1)
            out[:, source[queries], head] = torch.softmax(scores[:, queries], dim=-1) @ vl[:, :, head]
        outs.append(out)
        lses.append(lse)
    weights = torch.softmax(torch.stack(lses), dim=0).detach()  # upstream merges without gradient
    return sum(w[..., None] * o for w, o in zip(weights, outs, strict=True)), pairs


def random_qkv(n, heads, dim=8, batch=2, seed=0, requires_grad=False):
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, n, heads, dim, generator=generator, dtype=torch.float64, requires_grad=requires_grad)
            for _ in range(3)]


BRANCHES = [
    # (segment lengths, ratios, heads): powers of two like Gigapath's first branches, and odd lengths whose
    # segments need dilation padding when there are several of them
    ((4, 8, 16), (1, 2, 4), 8),
    ((5, 9), (1, 2), 4),
]
LENGTHS = [3, 4, 5, 7, 8, 9, 10, 15, 16, 17, 19, 33]


@pytest.mark.parametrize("segment_lengths,ratios,heads", BRANCHES)
@pytest.mark.parametrize("n", LENGTHS)
def test_dilated_attention_equals_masked_dense_reference(segment_lengths, ratios, heads, n):
    q, k, v = random_qkv(n, heads)
    expected, pairs = reference_dilated_attention(q, k, v, segment_lengths, ratios)
    actual = dilated_attention(q.float(), k.float(), v.float(), segment_lengths, ratios)
    torch.testing.assert_close(actual.double(), expected, atol=1e-5, rtol=1e-5)
    assert pair_count(n, heads, segment_lengths, ratios) == pairs


def test_dilated_attention_gradients_match_reference():
    segment_lengths, ratios = (4, 8), (1, 2)
    inputs = random_qkv(11, 4, requires_grad=True)
    reference_dilated_attention(*inputs, segment_lengths, ratios)[0].pow(2).sum().backward()
    expected = [x.grad.clone() for x in inputs]
    inputs32 = [x.detach().float().requires_grad_() for x in inputs]
    dilated_attention(*inputs32, segment_lengths, ratios).pow(2).sum().backward()
    for actual, wanted in zip(inputs32, expected, strict=True):
        torch.testing.assert_close(actual.grad.double(), wanted, atol=1e-4, rtol=1e-4)


def test_kernel_returns_sdpa_output_and_log_sum_exp():
    q, k, v = (x.float().transpose(1, 2) for x in random_qkv(37, 3))
    out, lse = attention_with_lse(q, k, v)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(lse, torch.logsumexp(q @ k.transpose(-1, -2) / math.sqrt(8), dim=-1))


def test_single_dense_branch_is_plain_attention_and_duplicates_are_not():
    q, k, v = (x.float() for x in random_qkv(12, 4))
    dense = F.scaled_dot_product_attention(*(x.transpose(1, 2) for x in (q, k, v))).transpose(1, 2)
    torch.testing.assert_close(dilated_attention(q, k, v, (16,), (1,)), dense, atol=1e-6, rtol=1e-5)
    # a second branch covering the same keys counts them twice in the merged softmax
    assert not torch.allclose(dilated_attention(q, k, v, (16, 16), (1, 2)), dense, atol=1e-3)


def test_zero_padding_rows_join_the_softmax_of_the_last_segment():
    """n = w + 1: the last token shares its segment with w - 1 zero rows (logit 0, value 0), unmasked."""
    q, k, v = (x.float() for x in random_qkv(5, 2, batch=1))
    out = dilated_attention(q, k, v, (4,), (1,))
    logit = (q[0, 4] * k[0, 4]).sum(-1) / math.sqrt(q.shape[-1])  # per head
    expected = v[0, 4] * (logit.exp() / (logit.exp() + 3))[:, None]
    torch.testing.assert_close(out[0, 4], expected, atol=1e-6, rtol=1e-5)


def test_head_count_must_split_into_ratio_groups():
    q, k, v = (x.float() for x in random_qkv(8, 6))
    with pytest.raises(ValueError, match="6 heads"):
        dilated_attention(q, k, v, (4, 8), (1, 4))


# ---- slide encoder -----------------------------------------------------------------------------------------------

def gigapath_keys(depth=12, dim=768, in_chans=1536, ffn=3072):
    """Reference B.5: the complete key set of slide_encoder.pth['model'] with shapes."""
    keys = {"cls_token": (1, 1, dim), "patch_embed.proj.weight": (dim, in_chans), "patch_embed.proj.bias": (dim,),
            "encoder.layer_norm.weight": (dim,), "encoder.layer_norm.bias": (dim,),
            "norm.weight": (dim,), "norm.bias": (dim,)}
    for layer in range(depth):
        prefix = f"encoder.layers.{layer}."
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            keys[f"{prefix}self_attn.{proj}.weight"] = (dim, dim)
            keys[f"{prefix}self_attn.{proj}.bias"] = (dim,)
        for norm, width in (("self_attn.inner_attn_ln", dim), ("self_attn_layer_norm", dim),
                            ("ffn.ffn_layernorm", ffn), ("final_layer_norm", dim)):
            keys[f"{prefix}{norm}.weight"] = (width,)
            keys[f"{prefix}{norm}.bias"] = (width,)
        keys[f"{prefix}ffn.fc1.weight"], keys[f"{prefix}ffn.fc1.bias"] = (ffn, dim), (ffn,)
        keys[f"{prefix}ffn.fc2.weight"], keys[f"{prefix}ffn.fc2.bias"] = (dim, ffn), (dim,)
    return keys


def test_gigapath_architecture_has_the_checkpoint_key_set_and_size():
    with torch.device("meta"):
        model = create_slide_encoder("gigapath_slide_enc12l768d", weights="random")
    state = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    assert state == gigapath_keys()
    assert sum(p.numel() for p in model.parameters()) == 86_330_880
    assert model.layer_blocks(3) == [(0, 4), (4, 8), (8, 12)]


def test_gigapath_segment_lengths_follow_the_upstream_formula():
    max_seq_len = (262144 // 256) ** 2
    upstream = np.power(2, np.linspace(np.log2(1024), int(np.log2(max_seq_len)), 5)).astype(int)
    assert SLIDE_ENCODERS["gigapath_slide_enc12l768d"].segment_lengths == tuple(int(w) for w in upstream)


def tiny_inputs(tiles=100, seed=0):
    generator = torch.Generator().manual_seed(seed)
    features = torch.randn(1, tiles, SLIDE_ENCODERS["tiny"].in_chans, generator=generator)
    cells = torch.randperm(40 * 40, generator=generator)[:tiles]
    coords = torch.stack([cells // 40, cells % 40], dim=-1)[None] * 512  # level-0 px, 2 grid cells per tile
    return features, coords


def test_random_checkpoint_with_gigapath_names_loads_strictly(tmp_path):
    torch.manual_seed(1)
    source = create_slide_encoder("tiny").eval()
    path = tmp_path / "slide_encoder.pth"
    torch.save({"model": source.state_dict()}, path)
    torch.manual_seed(2)
    loaded = create_slide_encoder("tiny", weights=path).eval()
    features, coords = tiny_inputs()
    with torch.no_grad():
        torch.testing.assert_close(loaded(features, coords)[0], source(features, coords)[0], atol=0, rtol=0)


def test_wrong_keys_and_shapes_are_listed(tmp_path):
    state = create_slide_encoder("tiny").state_dict()
    state["fc_norm.weight"] = state.pop("norm.weight")
    state["patch_embed.proj.bias"] = torch.zeros(3)
    path = tmp_path / "bad.pth"
    torch.save({"model": state}, path)
    with pytest.raises(ValueError) as error:
        create_slide_encoder("tiny", weights=path)
    message = str(error.value)
    assert str(path) in message
    assert "missing keys: norm.weight" in message
    assert "unexpected keys: fc_norm.weight" in message
    assert "patch_embed.proj.bias (3,) != (64,)" in message


def test_missing_weights_file_names_the_path_and_the_download(tmp_path):
    with pytest.raises(WeightsError, match=r"slide_encoder\.weights.*absent\.pth.*prov-gigapath/prov-gigapath"):
        create_slide_encoder("tiny", weights=tmp_path / "absent.pth")


def mae_sincos_table(dim, grid_size):
    """MAE / Gigapath get_2d_sincos_pos_embed(dim, grid_size, cls_token=True), written out with numpy."""
    grid = np.stack(np.meshgrid(np.arange(grid_size, dtype=np.float32), np.arange(grid_size, dtype=np.float32)))

    def one_d(half, positions):
        omega = 1.0 / 10000 ** (np.arange(half // 2, dtype=float) / (half / 2.0))
        angles = np.einsum("m,d->md", positions.reshape(-1), omega)
        return np.concatenate([np.sin(angles), np.cos(angles)], axis=1)

    table = np.concatenate([one_d(dim // 2, grid[0]), one_d(dim // 2, grid[1])], axis=1)
    return np.concatenate([np.zeros([1, dim]), table]).astype(np.float32)


def test_positions_are_the_rows_of_gigapath_table_for_present_tiles():
    grid_size, dim = 7, 16
    table = torch.from_numpy(mae_sincos_table(dim, grid_size))
    gx, gy = torch.meshgrid(torch.arange(grid_size), torch.arange(grid_size), indexing="ij")
    grid = torch.stack([gx.flatten(), gy.flatten()], dim=-1)
    rows = grid[:, 0] * grid_size + grid[:, 1] + 1  # Gigapath's pos index
    torch.testing.assert_close(sincos_position_embedding(grid, dim), table[rows], atol=1e-6, rtol=0)


def test_embed_adds_positions_and_prepends_cls():
    model = create_slide_encoder("tiny").eval()
    features, coords = tiny_inputs(tiles=10)
    with torch.no_grad():
        tokens = model.embed(features, coords)
        positions = tokens[:, 1:] - model.patch_embed(features)
    torch.testing.assert_close(positions, sincos_position_embedding(coords // 256, 64), atol=1e-5, rtol=0)
    torch.testing.assert_close(tokens[:, 0], model.cls_token[:, 0].detach())


@pytest.mark.parametrize("bad", [[256_000, 0], [0, 256_000], [-1, 0]])
def test_coordinates_outside_the_grid_are_refused(bad):
    model = create_slide_encoder("tiny")
    features, coords = tiny_inputs(tiles=3)
    coords[0, 1] = torch.tensor(bad)
    with pytest.raises(ValueError, match="outside the 1000x1000 position grid"):
        model.embed(features, coords)


def test_block_wise_forward_equals_forward_and_all_layer_outputs():
    model = create_slide_encoder("tiny").eval()
    features, coords = tiny_inputs()
    with torch.no_grad():
        tokens = model.embed(features, coords)
        blocks = model.layer_blocks(3)
        assert blocks == [(0, 2), (2, 4), (4, 6)]
        blockwise = tokens
        for start, stop in blocks:
            blockwise = model.run_layers(blockwise, start, stop)
        torch.testing.assert_close(blockwise, model.run_layers(tokens), atol=0, rtol=0)
        with pytest.raises(ValueError, match=r"layer range \[4, 8\) outside the 6 layers"):
            model.run_layers(tokens, 4, 8)
        for pool in ("cls", "mean"):
            (last,) = model(features, coords, pool=pool)
            torch.testing.assert_close(last, model.head(blockwise, pool=pool))
            every = model(features, coords, pool=pool, all_layers=True)
            assert len(every) == 7
            torch.testing.assert_close(every[-1], model.head(blockwise, pool=pool, encoder_norm=False))
            torch.testing.assert_close(every[0], model.head(tokens, pool=pool, encoder_norm=False))
        torch.testing.assert_close(model.head(blockwise, "mean", encoder_norm=False),
                                   model.norm(blockwise[:, 1:].mean(1)))


def test_tile_order_changes_the_output_only_through_segments_and_dilation():
    """Dilated attention is positional: the same tiles in another order give another slide embedding. With one
    dense branch (w >= n, ratio 1) the encoder is permutation-equivariant and the CLS output is unchanged."""
    features, coords = tiny_inputs()
    order = torch.randperm(features.shape[1], generator=torch.Generator().manual_seed(3))
    for overrides, order_matters in (({}, True), ({"segment_lengths": (4096,), "dilated_ratios": (1,)}, False)):
        torch.manual_seed(0)
        model = create_slide_encoder("tiny", **overrides).eval()
        with torch.no_grad():
            tokens = model.run_layers(model.embed(features, coords))
            shuffled = model.run_layers(model.embed(features[:, order], coords[:, order]))
        same_cls = torch.allclose(tokens[:, 0], shuffled[:, 0], atol=1e-5)
        same_tiles = torch.allclose(tokens[:, 1:][:, order], shuffled[:, 1:], atol=1e-5)
        assert same_cls is same_tiles is (not order_matters)


def test_checkpointing_gives_the_same_outputs_and_gradients_in_train_mode():
    features, coords = tiny_inputs()
    results = []
    for checkpointing in (False, True):
        torch.manual_seed(0)
        model = create_slide_encoder("tiny", checkpointing=checkpointing).train()  # dropout + drop path active
        torch.manual_seed(1)
        out = model(features, coords)[0]
        out.pow(2).sum().backward()
        results.append((out.detach(), {name: p.grad for name, p in model.named_parameters()}))
    (out_plain, grads_plain), (out_checkpointed, grads_checkpointed) = results
    torch.testing.assert_close(out_checkpointed, out_plain, atol=0, rtol=0)
    assert grads_plain.keys() == grads_checkpointed.keys()
    for name, grad in grads_plain.items():
        torch.testing.assert_close(grads_checkpointed[name], grad, atol=1e-6, rtol=1e-5, msg=name)


def test_config_sections_build_their_encoders():
    allowed = schema()["properties"]["slide_encoder"]["properties"]["name"]["enum"]
    assert set(allowed) == set(SLIDE_ENCODERS)
    demo = load_config([REPO / "config" / "demo.yaml"])["slide_encoder"]
    assert demo == {"name": "tiny", "weights": None, "checkpointing": False}
    assert create_slide_encoder(**demo).config.name == "tiny"
    real = load_config([REPO / "config" / "tcga.yaml"])["slide_encoder"]  # a config file stands alone
    assert real["name"] == "gigapath_slide_enc12l768d" and real["weights"]


def test_slide_encoders_take_the_features_of_their_tile_encoders():
    from modaltune.features.registry import get_encoder_config

    for slide_encoder, tile_encoder in (("gigapath_slide_enc12l768d", "gigapath"), ("tiny", "tiny")):
        assert SLIDE_ENCODERS[slide_encoder].in_chans == get_encoder_config(tile_encoder).embed_dim
