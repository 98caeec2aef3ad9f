"""A SurvPath-style pathway composition: binary gene x pathway matrix, first column ``gene``.

Pathway names are real ones (the 50 MSigDB Hallmarks and ten Reactome/PID-style names with the ``/``, ``-`` and
parentheses that SurvPath's ``combine_comps.csv`` contains); gene symbols are synthetic (``SYN0001``...), so
nobody mistakes the demo's expression values for biology.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

HALLMARKS = [
    f"HALLMARK_{name}"
    for name in (
        "ADIPOGENESIS ALLOGRAFT_REJECTION ANDROGEN_RESPONSE ANGIOGENESIS APICAL_JUNCTION APICAL_SURFACE APOPTOSIS "
        "BILE_ACID_METABOLISM CHOLESTEROL_HOMEOSTASIS COAGULATION COMPLEMENT DNA_REPAIR E2F_TARGETS "
        "EPITHELIAL_MESENCHYMAL_TRANSITION ESTROGEN_RESPONSE_EARLY ESTROGEN_RESPONSE_LATE FATTY_ACID_METABOLISM "
        "G2M_CHECKPOINT GLYCOLYSIS HEDGEHOG_SIGNALING HEME_METABOLISM HYPOXIA IL2_STAT5_SIGNALING "
        "IL6_JAK_STAT3_SIGNALING INFLAMMATORY_RESPONSE INTERFERON_ALPHA_RESPONSE INTERFERON_GAMMA_RESPONSE "
        "KRAS_SIGNALING_DN KRAS_SIGNALING_UP MITOTIC_SPINDLE MTORC1_SIGNALING MYC_TARGETS_V1 MYC_TARGETS_V2 "
        "MYOGENESIS NOTCH_SIGNALING OXIDATIVE_PHOSPHORYLATION P53_PATHWAY PANCREAS_BETA_CELLS PEROXISOME "
        "PI3K_AKT_MTOR_SIGNALING PROTEIN_SECRETION REACTIVE_OXYGEN_SPECIES_PATHWAY SPERMATOGENESIS "
        "TGF_BETA_SIGNALING TNFA_SIGNALING_VIA_NFKB UNFOLDED_PROTEIN_RESPONSE UV_RESPONSE_DN UV_RESPONSE_UP "
        "WNT_BETA_CATENIN_SIGNALING XENOBIOTIC_METABOLISM"
    ).split()
]
OTHER_PATHWAYS = [
    "GABA_B_receptor_activation",
    "Toll_Like_Receptor_TLR6/TLR2_Cascade",
    "Signaling_by_ERBB2",
    "Cell_Cycle_Checkpoints",
    "Activation_of_BH3-only_proteins",
    "HIF-1-alpha_transcription_factor_network",
    "Mitochondrial_translation",
    "Interleukin-6_signaling",
    "Collagen_formation",
    "Regulation_of_TP53_Activity_(phosphorylation)",
]
PATHWAYS = OTHER_PATHWAYS + HALLMARKS  # SurvPath's combine_comps.csv also lists the Hallmarks last
MIN_PATHWAY_GENES = 4


def pathway_composition(seed: int, n_genes: int) -> pd.DataFrame:
    """Genes x pathways 0/1 frame (index ``gene``); every gene in 1-3 pathways, every pathway >= 4 genes."""
    if n_genes < MIN_PATHWAY_GENES * len(PATHWAYS) // 3:
        raise ValueError(f"demo.genes = {n_genes} is too few for {len(PATHWAYS)} pathways; use at least 100")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x9A7]))
    membership = np.zeros((n_genes, len(PATHWAYS)), np.int8)
    pathways_per_gene = rng.choice([1, 2, 3], size=n_genes, p=[0.7, 0.22, 0.08])
    for gene, count in enumerate(pathways_per_gene):
        membership[gene, rng.choice(len(PATHWAYS), size=count, replace=False)] = 1
    for pathway in range(len(PATHWAYS)):  # top up small pathways with genes that are in only one pathway
        missing = MIN_PATHWAY_GENES - membership[:, pathway].sum()
        if missing > 0:
            candidates = np.flatnonzero((membership.sum(axis=1) == 1) & (membership[:, pathway] == 0))
            membership[rng.choice(candidates, size=missing, replace=False), pathway] = 1
    genes = [f"SYN{i + 1:04d}" for i in range(n_genes)]
    return pd.DataFrame(membership, index=pd.Index(genes, name="gene"), columns=PATHWAYS)
