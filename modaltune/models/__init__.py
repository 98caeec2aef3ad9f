"""Model families: slide encoders (LongNet), the omics encoder, the Modal Adapter and the ModalTune model.

Importing this package does not import torch (``modaltune`` CLI modules load fast); the factories import lazily.
"""

from __future__ import annotations


def create_slide_encoder(name: str, weights=None, **overrides):
    """Slide encoder ``name`` from the registry ``modaltune.models.slide_encoder.SLIDE_ENCODERS``.

    ``weights``: path to a Gigapath-style checkpoint loaded strictly (a missing file raises); None only for
    ``tiny`` (random by design); ``"random"`` for random weights on purpose (benchmarks). ``overrides``: ``checkpointing=True`` and/or config fields such as
    ``dropout=0.0``. The config section ``slide_encoder`` has exactly these keys: ``create_slide_encoder(**section)``.
    """
    from modaltune.models.slide_encoder import build_slide_encoder

    return build_slide_encoder(name, weights, **overrides)
