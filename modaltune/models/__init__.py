"""Model families: slide encoders (LongNet), the omics encoder, the Modal Adapter and the ModalTune model family.

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


# The ModalTune model family, timm-style: name -> "module:builder", builder(model section with output_dim,
# modaltune.models.modaltune.ModelInputs) -> nn.Module, imported when used (LoRA needs peft, a baseline architecture
# the baselines package); modaltune.models.modaltune.build_modaltune builds a config's member.
FAMILY = {
    "modaltune": "modaltune.models.modaltune:build_adapter_model",
    "modaltune_lora": "modaltune.models.lora:build_lora_model",
    "abmil_cat": "modaltune.baselines.text_objective:build_text_objective_baseline",
}


def family_member(model) -> str:
    """The family name of a ``model`` config section: its architecture, or ModalTune with the adapter or with LoRA."""
    if model["architecture"] != "modaltune":
        return model["architecture"]
    return "modaltune_lora" if model["finetuning"] == "lora" else "modaltune"
