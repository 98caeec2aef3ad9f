"""No encoder gets random weights by accident (modaltune.weights): a real encoder without weights stops, and the
explicit ``random`` of the benchmarks is refused in a workflow run."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from modaltune import config
from modaltune.features import create_encoder
from modaltune.models import create_slide_encoder
from modaltune.weights import WeightsError, check_workflow

REPO = Path(__file__).resolve().parents[2]


def test_real_slide_encoder_without_weights_names_the_key_and_the_download():
    with pytest.raises(WeightsError) as error, torch.device("meta"):
        create_slide_encoder("gigapath_slide_enc12l768d", weights=None)
    message = str(error.value)
    assert "slide_encoder.weights" in message and "\n" not in message
    assert "slide_encoder.pth" in message and "prov-gigapath/prov-gigapath" in message


def test_random_weights_only_on_purpose_or_by_design():
    with torch.device("meta"):  # benchmarks time the full-size model without its 86 M weights
        assert create_slide_encoder("gigapath_slide_enc12l768d", weights="random").config.embed_dim == 768
    assert create_slide_encoder("tiny").config.name == "tiny"


def test_tile_encoder_without_weights_stops():
    with pytest.raises(WeightsError, match="features.weights is not set.*huggingface.co/prov-gigapath"):
        create_encoder("gigapath", weights=None, device="cpu")


def demo_config(**sections):
    """config/demo.yaml with some sections updated key by key, validated (defaults filled)."""
    return config.load([REPO / "config" / "demo.yaml"], overrides=sections)


def test_demo_config_passes_the_workflow_check():
    check_workflow(demo_config())


@pytest.mark.parametrize("section", ["features", "slide_encoder"])
def test_workflow_refuses_explicit_random_weights(section):
    with pytest.raises(WeightsError, match=f"'{section}.weights': 'random'.*benchmarks"):
        check_workflow(demo_config(**{section: {"weights": "random"}}))


def test_workflow_refuses_a_real_slide_encoder_whose_weights_key_is_omitted():
    """The demo's `weights: null` (also the schema default) must not reach the real encoder."""
    settings = demo_config(slide_encoder={"name": "gigapath_slide_enc12l768d"})
    assert settings["slide_encoder"]["weights"] is None
    with pytest.raises(WeightsError, match="slide encoder 'gigapath_slide_enc12l768d'.*slide_encoder.weights"):
        check_workflow(settings)


def test_workflow_refuses_a_real_tile_encoder_without_weights_unless_features_are_precomputed(tmp_path):
    with pytest.raises(WeightsError, match="tile encoder 'gigapath'.*features.weights"):
        check_workflow(demo_config(features={"encoder": "gigapath"}))
    check_workflow(demo_config(features={"encoder": "gigapath", "precomputed_dir": str(tmp_path)}))


def test_snakemake_stops_before_any_job_on_a_real_encoder_without_weights(tmp_path):
    user = tmp_path / "user.yaml"
    user.write_text("features:\n  encoder: tiny\nslide_encoder:\n  name: gigapath_slide_enc12l768d\n")
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(REPO / "workflow" / "Snakefile"), "--directory", str(tmp_path),
         "-n", "--configfile", str(user)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode != 0
    assert "slide_encoder.weights is not set" in result.stdout + result.stderr
