"""Gene symbols shared by a pathway file and RNA tables: case-insensitive matching, an optional alias table, and
the check that a pathway file speaks the RNA's symbols.

SurvPath's ``combine_comps.csv`` uses current HGNC symbols; the UCSC Xena TCGA HiSeqV2 matrices use older ones
(``IL8`` for ``CXCL8``, ``DARC`` for ``ACKR1``: about 70 of its 4,999 genes). The official ModalTune release ships
the same 331 pathways renamed to the Xena symbols (``dataset/gene_pathway_processed_v2.csv``); an alias table
(CSV with columns ``old,new``) bridges any other pair of spellings.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import pandas as pd

log = logging.getLogger(__name__)

MISSING_WARN_FRACTION = 0.01
SYMBOL_HINT = (
    "pathway files with current HGNC symbols (SurvPath's combine_comps.csv) miss the older symbols of the Xena "
    "HiSeqV2 matrices (IL8 for CXCL8, DARC for ACKR1): use the official ModalTune release's "
    "gene_pathway_processed_v2.csv (Xena symbols), or map old to new symbols with omics.gene_aliases "
    "(a CSV with columns old,new)"
)


class GeneKeys:
    """Matching key of a gene symbol: upper case, then an old symbol replaced by its new one (alias table)."""

    def __init__(self, aliases: Mapping[str, str] | None = None):
        self.aliases = {old.upper(): new.upper() for old, new in (aliases or {}).items()}

    def __call__(self, symbol: str) -> str:
        upper = symbol.upper()
        return self.aliases.get(upper, upper)

    def of(self, symbols: Iterable[str]) -> set[str]:
        return {self(symbol) for symbol in symbols}


def read_gene_aliases(path: str | os.PathLike | None) -> dict[str, str]:
    """Old -> new symbol from a CSV with columns ``old`` and ``new`` (None: no aliases)."""
    if path is None:
        return {}
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"gene alias table not found: {path} (config omics.gene_aliases)")
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    if not {"old", "new"} <= set(table.columns):
        raise ValueError(f"{path}: a gene alias table needs columns old,new (found {list(table.columns)})")
    table = table.assign(old=table["old"].str.strip(), new=table["new"].str.strip())
    table = table[(table["old"] != "") & (table["new"] != "")]
    conflicting = table.groupby(table["old"].str.upper())["new"].nunique()
    conflicting = sorted(conflicting[conflicting > 1].index)
    if conflicting:
        raise ValueError(f"{path}: old symbol(s) {conflicting[:5]} map to several new symbols; keep one row each")
    return dict(zip(table["old"], table["new"], strict=True))


def check_symbols(pathway_file: str | os.PathLike, pathway_genes: Iterable[str], rna_file: str | os.PathLike,
                  rna_genes: Iterable[str], keys: GeneKeys) -> list[str]:
    """The pathway genes missing from one RNA file; warns above 1 %, stops when none is there."""
    genes = list(dict.fromkeys(pathway_genes))
    measured = keys.of(rna_genes)
    missing = [gene for gene in genes if keys(gene) not in measured]
    if len(missing) == len(genes):
        raise ValueError(f"no gene of the pathway file {pathway_file} is in the RNA file {rna_file} "
                         f"(e.g. {missing[:5]}): {SYMBOL_HINT}")
    if len(missing) > MISSING_WARN_FRACTION * len(genes):
        log.warning("%s: %d of the %d genes of %s (%.1f %%) are missing, e.g. %s; %s", rna_file, len(missing),
                    len(genes), pathway_file, 100 * len(missing) / len(genes), missing[:5], SYMBOL_HINT)
    return missing
