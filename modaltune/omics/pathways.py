"""Pathway compositions -> (pathway, gene) membership, in file order, and its restriction to measured genes.

Three layouts, detected from the file:

- GMT (``.gmt``): ``NAME<TAB>description<TAB>gene...`` per line; CRLF, a missing final newline and trailing
  tabs are tolerated;
- SurvPath binary matrix (``*_comps.csv``): genes in rows (first column, header ``gene`` or empty), pathways in
  columns, 0/1 values; a pathway's genes are its rows with 1, in row order;
- SurvPath list form (``*_signatures.csv``): one column per pathway holding its gene symbols, blank-padded.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from modaltune.omics.symbols import GeneKeys

log = logging.getLogger(__name__)

MEMBERSHIP_COLUMNS = ["pathway", "gene"]


def read_gmt(path: str | os.PathLike) -> pd.DataFrame:
    rows = []
    for line in Path(path).read_text().splitlines():
        fields = [f.strip() for f in line.split("\t")]
        if len(fields) < 3 or not fields[0]:
            continue
        rows += [(fields[0], gene) for gene in fields[2:] if gene]
    return _membership(rows)


def read_pathway_matrix(table: pd.DataFrame) -> pd.DataFrame:
    genes = table.iloc[:, 0].astype(str).str.strip().to_numpy()
    is_member = _binary_values(table) == 1
    rows = [
        (pathway, gene)
        for pathway, column in zip(table.columns[1:], is_member.T, strict=True)
        for gene in genes[column]
    ]
    return _membership(rows)


def read_pathway_lists(table: pd.DataFrame) -> pd.DataFrame:
    rows = [
        (pathway, gene.strip())
        for pathway in table.columns
        for gene in table[pathway].astype(str)
        if gene.strip()
    ]
    return _membership(rows)


def _membership(rows: list[tuple[str, str]]) -> pd.DataFrame:
    """Duplicates (a gene listed twice in one pathway) are dropped, keeping the first."""
    return pd.DataFrame(rows, columns=MEMBERSHIP_COLUMNS).drop_duplicates().reset_index(drop=True)


def _binary_values(table: pd.DataFrame) -> np.ndarray | None:
    """The 0/1 values right of the gene column, or None when the table is not a binary matrix (the list form)."""
    values = table.iloc[:, 1:]
    if values.empty or not all(pd.api.types.is_numeric_dtype(t) for t in values.dtypes):
        return None
    values = values.to_numpy(dtype=float)
    return values if np.isin(values, (0.0, 1.0)).all() else None


def read_pathways(path: str | os.PathLike) -> pd.DataFrame:
    """Membership (columns pathway, gene) of a GMT, SurvPath binary-matrix or SurvPath list-form file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pathway file not found: {path} (config omics.pathways)")
    if path.suffix.lower() == ".gmt":
        membership = read_gmt(path)
    else:
        table = pd.read_csv(path, keep_default_na=False)  # numbers parsed: the binary layout
        membership = (
            read_pathway_lists(table) if _binary_values(table) is None else read_pathway_matrix(table)
        )
    if membership.empty:
        raise ValueError(
            f"{path}: no pathway membership read (expected GMT, or a SurvPath *_comps.csv / *_signatures.csv)"
        )
    log.info("%s: %d pathways, %d genes", path, membership["pathway"].nunique(), membership["gene"].nunique())
    return membership


@dataclass
class GeneMatch:
    membership: pd.DataFrame  # (pathway, gene) kept, gene spelled as in the pathway file
    genes_found: int
    genes_missing: list[str]
    pathways_dropped: list[str]  # no gene measured

    def summary(self) -> dict:
        return {
            "pathways": int(self.membership["pathway"].nunique()),
            "genes_found": self.genes_found,
            "genes_missing": len(self.genes_missing),
            "missing_genes": self.genes_missing,
            "pathways_dropped": self.pathways_dropped,
        }


def restrict_to_genes(membership: pd.DataFrame, measured: set[str], keys: GeneKeys | None = None) -> GeneMatch:
    """Keep the pathway genes measured (matched through ``keys``: case-insensitively, and through an alias table
    when it has one); pathways left without genes are dropped."""
    keys = keys or GeneKeys()
    measured_keys = keys.of(measured)
    found = membership["gene"].map(keys).isin(measured_keys)
    genes = membership["gene"].drop_duplicates()
    missing = sorted(genes[~genes.map(keys).isin(measured_keys)])
    kept = membership.loc[found].reset_index(drop=True)
    dropped = [p for p in membership["pathway"].drop_duplicates() if p not in set(kept["pathway"])]
    match = GeneMatch(kept, int(kept["gene"].nunique()), missing, dropped)
    log.info(
        "pathway genes: %d found, %d missing; %d pathways kept, %d without any measured gene dropped",
        match.genes_found,
        len(missing),
        kept["pathway"].nunique(),
        len(dropped),
    )
    return match


def pathway_genes(membership: pd.DataFrame) -> list[str]:
    """Unique genes in order of first appearance: the column order of the per-site omics tables."""
    return list(dict.fromkeys(membership["gene"]))
