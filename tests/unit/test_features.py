"""Tile encoders, extraction and feature files (modaltune.features)."""

from __future__ import annotations

import json
import logging

import h5py
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from torchvision import transforms

from modaltune.cli import main as cli_main
from modaltune.features import (
    FeatureFileError,
    TransformConfig,
    WeightsError,
    create_encoder,
    extract_slide,
    get_encoder_config,
    import_features,
    plan_reads,
    read_features,
    read_manifest,
    write_features,
    write_manifest,
)
from modaltune.features.transforms import TilePreprocess
from modaltune.io import write_parquet
from modaltune.synth import write_slide

# Gigapath's architecture and key names at test size (48 wide: its packed SwiGLU hidden is int(48 * 5.33334) = 256)
SMALL_GIGAPATH = dict(depth=2, embed_dim=48, num_heads=2)
TILE_META = dict(mpp=0.5, tile_px=256, tile_px_level0=512, level=0)


def test_gigapath_config_reproduces_the_released_architecture():
    """Full size, built on the meta device (no memory): the parameter count and shapes of reference A.1."""
    import timm

    config = get_encoder_config("gigapath")
    with torch.device("meta"):
        model = timm.create_model(config.arch, pretrained=False, **config.model_args)
    assert sum(p.numel() for p in model.parameters()) == 1_134_953_984
    state = model.state_dict()
    assert state["pos_embed"].shape == (1, 197, 1536)
    assert state["patch_embed.proj.weight"].shape == (1536, 3, 16, 16)
    assert state["blocks.0.mlp.fc1.weight"].shape == (
        8192,
        1536,
    )  # packed SwiGLU: SiLU(first half) * second half
    assert state["blocks.0.mlp.fc2.weight"].shape == (1536, 4096)
    assert "mask_token" not in state and model.num_features == config.embed_dim == 1536


@pytest.mark.parametrize("filename", ["pytorch_model.bin", "model.safetensors"])
def test_gigapath_format_checkpoint_loads_strictly_and_reproduces_its_model(tmp_path, filename):
    source = create_encoder("gigapath", weights="random", device="cpu", **SMALL_GIGAPATH)
    state = source.model.state_dict()
    path = tmp_path / filename
    if filename.endswith(".bin"):
        torch.save(state, path)  # how the hub file was saved: a plain state dict
    else:
        from safetensors.torch import save_file

        save_file(state, path)
    loaded = create_encoder("gigapath", weights=path, device="cpu", **SMALL_GIGAPATH)
    images = torch.randint(0, 256, (4, 3, 224, 224), dtype=torch.uint8)
    out = loaded.encode(images)
    assert out.shape == (4, 48)
    assert torch.equal(out, source.encode(images))
    assert out.std(dim=0).mean() > 0.05  # different tiles, different features: the comparison is not vacuous
    assert loaded.weights == str(path)


def test_wrong_architecture_checkpoint_lists_missing_unexpected_and_mismatched_keys(tmp_path):
    state = create_encoder("gigapath", weights="random", device="cpu", **SMALL_GIGAPATH).model.state_dict()
    del state["norm.weight"]
    state["mask_token"] = torch.zeros(1, 48)
    state["blocks.0.mlp.fc1.weight"] = torch.zeros(
        192, 48
    )  # a GELU MLP (ratio 4) instead of the packed SwiGLU
    path = tmp_path / "pytorch_model.bin"
    torch.save(state, path)
    with pytest.raises(WeightsError) as error:
        create_encoder("gigapath", weights=path, device="cpu", **SMALL_GIGAPATH)
    message = str(error.value)
    assert str(path) in message
    assert "missing keys (1): norm.weight" in message
    assert "unexpected keys (1): mask_token" in message
    assert "blocks.0.mlp.fc1.weight (192, 48) vs (256, 48)" in message


def test_missing_weights_never_fall_back_to_random(tmp_path):
    absent = tmp_path / "pytorch_model.bin"
    with pytest.raises(WeightsError, match="not found: .*pytorch_model.bin.*huggingface.co/prov-gigapath"):
        create_encoder("gigapath", weights=absent, device="cpu")
    with pytest.raises(WeightsError, match="needs pretrained weights"):
        create_encoder("dinov2_vits14", weights=None, device="cpu")


def test_unknown_encoder_names_the_choices():
    with pytest.raises(KeyError, match="available: .*gigapath.*tiny"):
        create_encoder("resnet50")


@pytest.mark.parametrize("size", [(256, 256), (300, 280), (128, 128)])
def test_tile_transform_matches_torchvision(size):
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    ours = TilePreprocess(TransformConfig())(image)
    reference = transforms.Compose(
        [
            transforms.Resize(256, interpolation=transforms.InterpolationMode.BICUBIC),
            transforms.CenterCrop(224),
        ]
    )(image)
    np.testing.assert_array_equal(ours, np.asarray(reference).transpose(2, 0, 1))
    if size == (256, 256):  # the resize is a no-op on pipeline tiles: the encoder sees the central 224 px
        np.testing.assert_array_equal(ours, np.asarray(image)[16:240, 16:240].transpose(2, 0, 1))


@pytest.mark.parametrize(
    ("downsamples", "tile_px_level0", "level", "read_px"),
    [
        (
            (1.0, 4.0, 16.0),
            512,
            0,
            512,
        ),  # 0.5 um/px from a 0.25 um/px slide without a 2x level: read 512, resize
        ((1.0, 2.0002, 8.0), 512, 1, 256),  # a 2x level within tolerance: read it directly
        ((1.0, 4.0, 16.0), 2048, 1, 512),  # the coarsest level not coarser than the target
        ((1.0, 4.0), 128, 0, 128),  # finer than level 0: read level 0 and upsample
    ],
)
def test_read_plan_uses_the_coarsest_level_not_coarser_than_the_target(
    downsamples, tile_px_level0, level, read_px
):
    plan = plan_reads(downsamples, 256, tile_px_level0)
    assert (plan.level, plan.read_px, plan.tile_px) == (level, read_px, 256)


@pytest.fixture(scope="module")
def slide(tmp_path_factory):
    """A 0.25 um/px Aperio-style slide (levels 1, 4, 16) and a table of 12 tiles of 256 px at 0.5 um/px."""
    folder = tmp_path_factory.mktemp("slide")
    path = folder / "TCGA-AA-0001-01Z-00-DX1.svs"
    write_slide(path, seed=3, width=2048, height=1536, mpp=0.25, tissue_fraction=0.8)
    xs, ys = np.meshgrid(np.arange(0, 2048, 512), np.arange(0, 1536, 512))
    tiles = pd.DataFrame({"x": xs.ravel(), "y": ys.ravel(), "tissue": 1.0})
    tiles_path = folder / "tiles.parquet"
    write_parquet(tiles, tiles_path, metadata=TILE_META)
    return path, tiles_path, tiles


@pytest.fixture(scope="module")
def tiny():
    return create_encoder("tiny", device="cpu")


@pytest.fixture(scope="module")
def extracted(slide, tiny, tmp_path_factory):
    path, tiles_path, _ = slide
    out = tmp_path_factory.mktemp("features") / "tiny" / f"{path.stem}.h5"
    result = extract_slide(path, tiles_path, out, tiny, batch_size=5, workers=1, progress=False)
    return out, result


def test_feature_file_reads_with_plain_h5py_and_coords_equal_the_tiles_table(slide, extracted):
    _, _, tiles = slide
    out, result = extracted
    assert result.tiles == 12 and (result.plan.level, result.plan.read_px) == (0, 512)
    with h5py.File(out, "r") as handle:
        assert handle["features"].dtype == np.float16 and handle["features"].shape == (12, 96)
        assert handle["coords"].dtype == np.int64
        np.testing.assert_array_equal(handle["coords"][()], tiles[["x", "y"]].to_numpy())
        assert handle.attrs["encoder"] == "tiny"
        assert handle.attrs["mpp"] == 0.5 and handle.attrs["tile_px_level0"] == 512
    assert not list(out.parent.glob(".*.tmp"))  # written atomically: no temporary left behind


def test_features_equal_a_reference_computation_with_openslide_and_torchvision(slide, tiny, extracted):
    import openslide

    path, _, tiles = slide
    features, coords, _ = read_features(extracted[0])
    reference = transforms.Compose(
        [
            transforms.Resize(256, interpolation=transforms.InterpolationMode.BICUBIC),
            transforms.CenterCrop(224),
            transforms.ToTensor(),
            transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
        ]
    )
    with openslide.OpenSlide(str(path)) as handle:
        images = [
            handle.read_region((int(x), int(y)), 0, (512, 512))
            .convert("RGB")
            .resize((256, 256), Image.BICUBIC)
            for x, y in coords[[0, 7]]
        ]
    with torch.inference_mode():
        expected = tiny.model(torch.stack([reference(image) for image in images])).numpy()
    np.testing.assert_allclose(features[[0, 7]], expected, rtol=2e-3, atol=2e-3)  # float16 storage


def test_a_tile_gets_the_same_features_alone_as_in_a_batch(slide, tiny, extracted, tmp_path):
    path, _, tiles = slide
    batched, _, _ = read_features(extracted[0])
    index = 6  # in the middle of the second batch of five
    single_path = tmp_path / "one.parquet"
    write_parquet(tiles.iloc[[index]], single_path, metadata=TILE_META)
    extract_slide(path, single_path, tmp_path / "one.h5", tiny, batch_size=1, workers=0, progress=False)
    alone, coords, _ = read_features(tmp_path / "one.h5")
    np.testing.assert_array_equal(coords[0], tiles[["x", "y"]].to_numpy()[index])
    np.testing.assert_array_equal(alone[0], batched[index])
    assert not np.array_equal(batched[index], batched[index - 1])


@pytest.mark.parametrize(
    "metadata",
    [
        dict(TILE_META, status="no_tissue"),
        # a slide the tiler could not read: geometry unknown
        dict(TILE_META, tile_px_level0=None, level=None, status="failed"),
    ],
)
def test_empty_tile_table_gives_an_empty_feature_file(slide, tmp_path, caplog, metadata):
    path, _, tiles = slide
    empty = tmp_path / "empty.parquet"
    write_parquet(tiles.iloc[:0], empty, metadata=metadata)
    out = tmp_path / "empty.h5"
    params = {"encoder": "tiny", "device": "cpu", "workers": 0}
    with caplog.at_level(logging.WARNING):
        cli_main(
            [
                "extract",
                "--slide",
                str(path),
                "--tiles",
                str(empty),
                "--out",
                str(out),
                "--params",
                json.dumps(params),
            ]
        )
    assert "no tiles" in caplog.text
    features, coords, attrs = read_features(out)
    assert features.shape == (0, 96) and coords.shape == (0, 2) and attrs["encoder"] == "tiny"


def _write_clam_style(path, features, coords, batch_dim=False):
    with h5py.File(path, "w") as handle:
        handle.create_dataset("features", data=features[None] if batch_dim else features)
        dataset = handle.create_dataset(
            "coords", data=(coords[None] if batch_dim else coords).astype(np.int32)
        )
        dataset.attrs.update({"patch_size": 256, "patch_level": 0, "downsample": np.array([2.0, 2.0])})


@pytest.mark.parametrize("batch_dim", [False, True])
def test_clam_style_file_reads_and_imports(tmp_path, batch_dim):
    rng = np.random.default_rng(1)
    features = rng.normal(size=(7, 1024)).astype(np.float32)
    coords = rng.integers(0, 50_000, size=(7, 2))
    source = tmp_path / "TCGA-AA-0001-01Z-00-DX1.h5"
    _write_clam_style(source, features, coords, batch_dim)
    read, read_coords, attrs = read_features(source)
    np.testing.assert_array_equal(read, features)
    np.testing.assert_array_equal(read_coords, coords)
    assert attrs["tile_px_level0"] == 512  # patch_size 256 at a level downsampled 2x
    out = tmp_path / "out.h5"
    assert import_features(source, out, encoder="uni") == 7
    imported, imported_coords, imported_attrs = read_features(out)
    np.testing.assert_allclose(imported, features, rtol=1e-3, atol=1e-3)
    np.testing.assert_array_equal(imported_coords, coords)
    assert imported_attrs["encoder"] == "uni" and imported_attrs["tile_px_level0"] == 512


def test_trident_style_tile_size_and_missing_tile_size_error(tmp_path):
    source = tmp_path / "trident.h5"
    with h5py.File(source, "w") as handle:
        handle.create_dataset("features", data=np.ones((3, 8), np.float32))
        handle.create_dataset("coords", data=np.zeros((3, 2), np.int64)).attrs["patch_size_level0"] = 1024
    assert read_features(source)[2]["tile_px_level0"] == 1024
    bare = tmp_path / "bare.h5"
    with h5py.File(bare, "w") as handle:
        handle.create_dataset("features", data=np.ones((3, 8), np.float32))
        handle.create_dataset("coords", data=np.zeros((3, 2), np.int64))
    with pytest.raises(FeatureFileError, match="bare.h5: cannot tell the tile size"):
        import_features(bare, tmp_path / "out.h5", encoder="uni")
    # CLAM's feature files carry no attributes: the config gives the tile size
    import_features(bare, tmp_path / "out.h5", encoder="uni", tile_px_level0=256)
    assert read_features(tmp_path / "out.h5")[2]["tile_px_level0"] == 256
    with h5py.File(tmp_path / "nocoords.h5", "w") as handle:
        handle.create_dataset("features", data=np.ones((3, 8), np.float32))
    with pytest.raises(FeatureFileError, match="no dataset coords"):
        read_features(tmp_path / "nocoords.h5")


def _feature_file(path, tiles, width):
    coords = np.arange(2 * tiles).reshape(tiles, 2) * 256
    write_features(path, np.ones((tiles, width)), coords, {"encoder": "tiny", "mpp": 0.5, "tile_px_level0": 256})
    return path


def test_manifest_lists_each_slides_file_tile_count_and_width(tmp_path):
    """Through the command the workflow runs; TCGA slide ids keep their dots (the stem drops only `.h5`)."""
    slides = {"TCGA-AA-0001-01Z-00-DX1.5C2F": 7, "TCGA-AA-0002-01Z-00-DX1.9E1A": 0, "TCGA-AA-0003-01Z-00-DX2": 3}
    paths = [_feature_file(tmp_path / f"{slide}.h5", tiles, 12) for slide, tiles in slides.items()]
    out = tmp_path / "S1.manifest.parquet"
    assert cli_main(["feature-manifest", "--features", *map(str, paths), "--encoder", "tiny", "--out", str(out)]) == 0

    manifest = read_manifest(out)
    assert manifest["n_tiles"].to_dict() == slides
    assert manifest.loc["TCGA-AA-0003-01Z-00-DX2", "path"] == paths[2]
    assert set(manifest["dim"]) == {12}
    assert pd.read_parquet(out).columns.tolist() == ["slide", "path", "n_tiles", "dim"]  # plain parquet for others


def test_manifest_refuses_files_of_two_encoders_and_names_them(tmp_path):
    first = _feature_file(tmp_path / "a.h5", 4, 12)
    odd = _feature_file(tmp_path / "b.h5", 4, 16)
    empty = _feature_file(tmp_path / "c.h5", 0, 99)  # a slide without tiles says nothing about the encoder
    write_manifest([first, empty], tmp_path / "ok.parquet", "tiny")
    with pytest.raises(FeatureFileError, match=r"b\.h5 has 16.*a\.h5 has 12"):
        write_manifest([first, empty, odd], tmp_path / "bad.parquet", "tiny")
    assert not (tmp_path / "bad.parquet").exists()


def test_manifest_names_an_unreadable_feature_file(tmp_path):
    broken = tmp_path / "broken.h5"
    broken.write_bytes(b"not hdf5")
    with pytest.raises(FeatureFileError, match=r"broken\.h5: not a readable HDF5 feature file"):
        write_manifest([_feature_file(tmp_path / "a.h5", 2, 12), broken], tmp_path / "m.parquet", "tiny")
