"""The two omics outputs: the pathway membership used (all sites) and one patient x gene table per site."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import pandas as pd

from modaltune.omics.expression import expression_genes, read_expression, select_tumour_samples
from modaltune.omics.pathways import GeneMatch, pathway_genes, read_pathways, restrict_to_genes

log = logging.getLogger(__name__)


def build_pathways(pathway_file: str | os.PathLike, rna_files: Sequence[str | os.PathLike]) -> GeneMatch:
    """Membership restricted to the genes measured in *every* RNA file, so all sites share one gene set."""
    membership = read_pathways(pathway_file)
    if not rna_files:
        raise ValueError(
            "no RNA file in any site: the pathway genes cannot be matched (set `rna` for a site)"
        )
    measured: set[str] | None = None
    for path in rna_files:
        genes = {gene.upper() for gene in expression_genes(path)}
        measured = genes if measured is None else measured & genes
    return restrict_to_genes(membership, measured)


def build_site_genes(
    rna_files: Sequence[str | os.PathLike], membership: pd.DataFrame
) -> tuple[pd.DataFrame, dict]:
    """Column `patient`, then one float32 column per pathway gene (log expression as read, not scaled).

    Samples of all files are pooled before choosing one tumour sample per patient. Gene columns are named as in
    the pathway file and matched case-insensitively. Returns the table and a summary for the file's metadata.
    """
    genes = pathway_genes(membership)
    if not rna_files:
        empty = pd.DataFrame(
            {"patient": pd.Series(dtype=str), **{g: pd.Series(dtype="float32") for g in genes}}
        )
        return empty, {"rna_files": [], "patients": 0}
    parts = []
    for path in rna_files:
        table = read_expression(path)
        by_upper = {column.upper(): column for column in table.columns}
        absent = [g for g in genes if g.upper() not in by_upper]
        if absent:
            raise ValueError(
                f"{path}: {len(absent)} genes of results/omics/pathways.parquet are missing, e.g. {absent[:5]}; "
                "rebuild pathways.parquet from the same RNA files"
            )
        parts.append(table[[by_upper[g.upper()] for g in genes]].set_axis(genes, axis=1))
    samples = pd.concat(parts)
    duplicated = samples.index.duplicated()
    if duplicated.any():
        log.warning(
            "%d samples appear in several RNA files; the first file's values are kept", duplicated.sum()
        )
        samples = samples.loc[~duplicated]
    patients, normal_only = select_tumour_samples(samples)
    if normal_only:
        log.warning(
            "%d patients have only normal samples and are left out: %s", len(normal_only), normal_only
        )
    table = patients.reset_index()
    summary = {
        "rna_files": [str(p) for p in rna_files],
        "samples": len(samples),
        "patients": len(table),
        "normal_only_patients": normal_only,
        "missing_values": int(table[genes].isna().sum().sum()),
    }
    return table, summary
