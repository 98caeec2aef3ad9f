"""Tile features: encoder registry (timm), input transforms, batched extraction, feature files and
per-site feature manifests.

Only the registry (plain data) is imported eagerly; everything else loads on first use, so that the Snakefile and
`modaltune <command>` start without h5py or torch.
"""

from importlib import import_module

from .registry import (
    ENCODERS,
    EncoderConfig,
    TransformConfig,
    get_encoder_config,
    list_encoders,
    register_encoder,
)

_LAZY = {
    "FeatureFileError": "files",
    "import_features": "files",
    "read_features": "files",
    "write_features": "files",
    "read_manifest": "manifest",
    "write_manifest": "manifest",
    "Encoder": "encoders",
    "WeightsError": "encoders",
    "check_weights": "encoders",
    "create_encoder": "encoders",
    "extract_slide": "extract",
    "plan_reads": "extract",
    "TileDataset": "extract",
}

__all__ = [
    "ENCODERS",
    "EncoderConfig",
    "TransformConfig",
    "get_encoder_config",
    "list_encoders",
    "register_encoder",
    *_LAZY,
]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
