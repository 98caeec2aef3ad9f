"""The baseline registry: name -> where its builder lives, what it reads, and its row in the results table.

Order is the paper's Table 2 order within each modality; the workflow and the report keep it. Importing this module
does not import torch (the Snakefile reads it at parse time).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

MODALITY_TITLES = {"wsi": "WSI", "genomics": "Genomics", "multimodal": "Multi-modal"}


@dataclass(frozen=True)
class BaselineSpec:
    name: str  # config and path name
    label: str  # row name in the results table
    modality: str  # key of MODALITY_TITLES
    module: str  # modaltune.baselines.<module>
    builder: str  # callable in that module: builder(n_outputs, inputs, **kwargs) -> Baseline
    tunes_slide_encoder: bool = False  # builds and trains the slide encoder: needs its weights and whole section


BASELINES: dict[str, BaselineSpec] = {
    spec.name: spec
    for spec in (
        BaselineSpec("abmil", "ABMIL", "wsi", "abmil", "ABMIL"),
        BaselineSpec("transmil", "TransMIL", "wsi", "transmil", "TransMIL"),
        BaselineSpec("gigapath_tuned", "Gigapath (Tuned)", "wsi", "gigapath_tuned", "build_gigapath_tuned", tunes_slide_encoder=True),
        BaselineSpec("mlp", "MLP", "genomics", "dense_omics", "MLP"),
        BaselineSpec("snn", "SNN", "genomics", "dense_omics", "SNN"),
        BaselineSpec("smlp", "S-MLP", "genomics", "pathway_omics", "SMLP"),
        BaselineSpec("gene_mixer", "Gene Mixer", "genomics", "pathway_omics", "GeneMixer"),
        BaselineSpec("mcat", "MCAT", "multimodal", "mcat", "MCAT"),
        BaselineSpec("survpath", "SurvPath", "multimodal", "survpath", "SurvPath"),
        BaselineSpec("abmil_cat", "ABMIL (cat)", "multimodal", "late_fusion", "build_abmil_cat"),
        BaselineSpec("abmil_kp", "ABMIL (KP)", "multimodal", "late_fusion", "build_abmil_kp"),
        BaselineSpec("transmil_cat", "TransMIL (cat)", "multimodal", "late_fusion", "build_transmil_cat"),
        BaselineSpec("transmil_kp", "TransMIL (KP)", "multimodal", "late_fusion", "build_transmil_kp"),
        BaselineSpec("gigapath_cat", "Gigapath (cat)", "multimodal", "late_fusion", "build_gigapath_cat", tunes_slide_encoder=True),
        BaselineSpec("gigapath_kp", "Gigapath (KP)", "multimodal", "late_fusion", "build_gigapath_kp", tunes_slide_encoder=True),
    )
}


def baseline_names() -> list[str]:
    return list(BASELINES)


def create_baseline(name: str, n_outputs: int, inputs, **kwargs):
    """Build baseline ``name`` with ``n_outputs`` logits for data shaped like ``inputs``
    (:class:`modaltune.baselines.base.BaselineInputs`); ``kwargs`` are its architecture settings (its config
    section under ``baselines``)."""
    if name not in BASELINES:
        raise KeyError(f"unknown baseline '{name}' (registered: {', '.join(BASELINES)})")
    spec = BASELINES[name]
    builder = getattr(importlib.import_module(f"modaltune.baselines.{spec.module}"), spec.builder)
    return builder(n_outputs, inputs, **kwargs)


# Paper Table 3's rows of a baseline on an unseen site: its single-task models used as feature extractors (by task),
# and the same baseline trained on the target site itself.
OOD_ROW_KINDS = {"subtype": "Cls.", "survival": "Surv.", "supervised": "Sup."}


def ood_row_label(name: str, kind: str) -> str:
    """The row label of baseline ``name`` in the out-of-distribution table, the kind before the fusion suffix as the
    paper writes it: "Gigapath (cat)" -> "Gigapath Surv. (cat)"."""
    head, paren, fusion = BASELINES[name].label.partition(" (")
    return f"{head} {OOD_ROW_KINDS[kind]}{paren}{fusion}"
