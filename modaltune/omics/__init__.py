"""Bulk transcriptomics: expression readers (Xena HiSeqV2, Toil-style), pathway compositions (SurvPath CSV,
list form, GMT), one tumour sample per patient, and the train-fitted :class:`GeneScaler`."""

from modaltune.omics.expression import read_expression, select_tumour_samples
from modaltune.omics.pathways import read_pathways, restrict_to_genes
from modaltune.omics.scaling import GeneScaler

__all__ = ["GeneScaler", "read_expression", "read_pathways", "restrict_to_genes", "select_tumour_samples"]
