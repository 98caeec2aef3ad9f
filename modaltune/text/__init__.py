"""Clinical text targets: prompt templates and phrase tables, text encoders, the fixed random projector.

Only the torch-free prompt code is imported here, so that `modaltune prompts` starts fast; the encoders live in
:mod:`modaltune.text.encoders`, the projector in :mod:`modaltune.text.projector`.
"""

from modaltune.text.prompts import (
    TASKS,
    DurationBins,
    PromptSet,
    UnknownStageError,
    build_prompts,
    prompts_for_seed,
    stage_phrase,
)

__all__ = [
    "TASKS",
    "DurationBins",
    "PromptSet",
    "UnknownStageError",
    "build_prompts",
    "prompts_for_seed",
    "stage_phrase",
]
