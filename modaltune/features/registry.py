"""Tile-encoder configurations, kept as plain data so the workflow can read them without importing torch.

Every encoder is a timm architecture plus the keyword arguments that reproduce its released weights, the input
transform it was trained with, and where its weights come from. :func:`modaltune.features.create_encoder` builds
the model from an entry of :data:`ENCODERS`; add an encoder with :func:`register_encoder`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class TransformConfig:
    """Tile -> network input: resize the shorter side to ``resize_px`` (bicubic), centre-crop ``crop_px``, normalise.

    For the 256-px tiles of the pipeline the resize is a no-op and the crop keeps the central 224x224; tiles of another
    size are first brought to 256 so the crop covers the same fraction of the tile as in training.
    """

    resize_px: int = 256
    crop_px: int = 224
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD


@dataclass(frozen=True)
class EncoderConfig:
    """One registered tile encoder.

    ``model_args`` are keyword arguments for ``timm.create_model(arch)``, merged over the architecture's own;
    ``embed_dim`` is the output dimension D (the CLS token after the final norm); ``hf_repo`` holds the released
    weights (``weights="hub"``) and ``weights_help`` tells a user how to obtain them; ``random_seed`` is set only
    for encoders that run with fixed random weights by design (demo, tests). ``gpu_recommended``: the workflow
    requests a GPU for the encoder unless ``features.device`` is ``cpu``; ``job_mem_mb``: host memory of one
    extraction job (weights are loaded on the host first).
    """

    name: str
    arch: str
    model_args: dict[str, Any]
    embed_dim: int
    transform: TransformConfig = field(default_factory=TransformConfig)
    hf_repo: str | None = None
    weights_help: str = ""
    random_seed: int | None = None
    gpu_recommended: bool = True
    job_mem_mb: int = 8000


# Gigapath's hub config.json: vit_giant_patch14_dinov2 at 224 px with 16-px patches (shared/reference A.1).
GIGAPATH_ARGS = dict(
    img_size=224,
    patch_size=16,
    embed_dim=1536,
    depth=40,
    num_heads=24,
    init_values=1e-5,
    mlp_ratio=5.33334,
    num_classes=0,
)

# timm's DINOv2 weights are stored at 518 px (37x37 positions); dynamic_img_size interpolates them for 224-px input.
DINOV2_ARGS = dict(num_classes=0, dynamic_img_size=True)

ENCODERS: dict[str, EncoderConfig] = {}


def register_encoder(config: EncoderConfig) -> EncoderConfig:
    if config.name in ENCODERS:
        raise ValueError(f"encoder '{config.name}' is already registered")
    ENCODERS[config.name] = config
    return config


def get_encoder_config(name: str) -> EncoderConfig:
    try:
        return ENCODERS[name]
    except KeyError:
        raise KeyError(f"unknown tile encoder '{name}'; available: {', '.join(sorted(ENCODERS))}") from None


def list_encoders() -> list[str]:
    return sorted(ENCODERS)


register_encoder(
    EncoderConfig(
        name="gigapath",
        arch="vit_giant_patch14_dinov2",
        model_args=GIGAPATH_ARGS,
        embed_dim=1536,
        hf_repo="prov-gigapath/prov-gigapath",
        job_mem_mb=16000,  # 4.5 GB of fp32 weights plus the DataLoader workers
        weights_help=(
            "Prov-GigaPath's tile encoder weights are gated: accept the terms at "
            "https://huggingface.co/prov-gigapath/prov-gigapath, then download pytorch_model.bin "
            "(`huggingface-cli download prov-gigapath/prov-gigapath pytorch_model.bin --local-dir <folder>` "
            "with HF_TOKEN set) and point features.weights at it, or set features.weights: hub to download it "
            "at run time"
        ),
    )
)

for _size, _dim, _mem_mb in (
    ("small", 384, 4000),
    ("base", 768, 4000),
    ("large", 1024, 8000),
    ("giant", 1536, 16000),
):
    _name = f"dinov2_vit{_size[0]}14"
    register_encoder(
        EncoderConfig(
            name=_name,
            arch=f"vit_{_size}_patch14_dinov2",
            model_args=DINOV2_ARGS,
            embed_dim=_dim,
            hf_repo=f"timm/vit_{_size}_patch14_dinov2.lvd142m",
            job_mem_mb=_mem_mb,
            weights_help=(
                f"download model.safetensors from https://huggingface.co/timm/vit_{_size}_patch14_dinov2.lvd142m "
                "and point features.weights at it, or set features.weights: hub to download it at run time"
            ),
        )
    )

# Gigapath's architecture (packed SwiGLU, LayerScale, 16-px patches at 224 px) at a size a CPU runs in
# milliseconds per batch: the demo and the tests exercise every code path of the real encoder.
register_encoder(
    EncoderConfig(
        name="tiny",
        arch="vit_giant_patch14_dinov2",
        model_args=dict(GIGAPATH_ARGS, embed_dim=96, depth=2, num_heads=3),
        embed_dim=96,
        random_seed=0,
        gpu_recommended=False,
        job_mem_mb=2000,
    )
)
