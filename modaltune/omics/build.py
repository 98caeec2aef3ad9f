"""The two omics outputs: the pathway membership used (all sites) and one patient x gene table per site."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence

import pandas as pd

from modaltune.omics.expression import expression_genes, read_expression, select_tumour_samples
from modaltune.omics.pathways import GeneMatch, pathway_genes, read_pathways, restrict_to_genes
from modaltune.omics.symbols import GeneKeys, check_symbols

log = logging.getLogger(__name__)


def build_pathways(pathway_file: str | os.PathLike, rna_files: Sequence[str | os.PathLike],
                   aliases: Mapping[str, str] | None = None) -> GeneMatch:
    """Membership restricted to the genes measured in *every* RNA file, so all sites share one gene set.

    Each RNA file is checked against the pathway file: more than 1 % of its genes missing warns, none present stops.
    ``aliases`` (old -> new symbol) match a gene spelled differently in the two.
    """
    membership = read_pathways(pathway_file)
    if not rna_files:
        raise ValueError(
            "no RNA file in any site: the pathway genes cannot be matched (set `rna` for a site)"
        )
    keys = GeneKeys(aliases)
    measured: set[str] | None = None
    for path in rna_files:
        genes = expression_genes(path)
        check_symbols(pathway_file, membership["gene"], path, genes, keys)
        measured = keys.of(genes) if measured is None else measured & keys.of(genes)
    return restrict_to_genes(membership, measured, keys)


def build_site_genes(
    rna_files: Sequence[str | os.PathLike], membership: pd.DataFrame, aliases: Mapping[str, str] | None = None
) -> tuple[pd.DataFrame, dict]:
    """Column `patient`, then one float32 column per pathway gene (log expression as read, not scaled).

    Samples of all files are pooled before choosing one tumour sample per patient. Gene columns are named as in
    the pathway file and matched case-insensitively and through ``aliases`` (old -> new symbol), as
    :func:`build_pathways` matched them. Returns the table and a summary for the file's metadata.
    """
    keys = GeneKeys(aliases)
    genes = pathway_genes(membership)
    if not rna_files:
        empty = pd.DataFrame(
            {"patient": pd.Series(dtype=str), **{g: pd.Series(dtype="float32") for g in genes}}
        )
        return empty, {"rna_files": [], "patients": 0}
    parts = []
    for path in rna_files:
        table = read_expression(path)
        by_key: dict[str, str] = {}
        for column in table.columns:  # the first column of a key wins (a file holding both an old and a new symbol)
            by_key.setdefault(keys(column), column)
        absent = [g for g in genes if keys(g) not in by_key]
        if absent:
            raise ValueError(
                f"{path}: {len(absent)} genes of results/omics/pathways.parquet are missing, e.g. {absent[:5]}; "
                "rebuild pathways.parquet from the same RNA files and gene aliases"
            )
        parts.append(table[[by_key[keys(g)] for g in genes]].set_axis(genes, axis=1))
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
