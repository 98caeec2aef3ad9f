"""Expression tables -> one row per patient.

Two layouts are read, detected from where the TCGA barcodes are:

- Xena HiSeqV2-style: one gene per row, one sample per column (header ``sample<TAB><barcodes...>``), values
  log2(x+1); gene ids like ``SYMBOL|ENTREZ`` or ``?|ENTREZ`` keep the symbol (rows without one are dropped);
- Toil-style: one patient or sample per row (ids in the first column), one gene per column, e.g. SurvPath's
  ``rna_clean.csv`` (log2(TPM+0.001)).

Values are kept as read (no scaling here; :class:`modaltune.omics.scaling.GeneScaler` is fitted on the training
split later). Samples collapse to patients with :func:`select_tumour_samples`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pandas as pd

from modaltune.omics.tables import TableFormatError, is_tcga_id, patient_id, read_header, sample_type

log = logging.getLogger(__name__)

LAYOUTS = {
    "xena_genes_by_samples": "Xena HiSeqV2-style: genes in rows, TCGA sample barcodes as column names",
    "toil_samples_by_genes": "Toil-style: TCGA patient/sample ids in the first column, genes as column names",
}


class ExpressionFormatError(TableFormatError):
    """An expression table in neither recognised layout."""


def _mostly_tcga(ids) -> bool:
    ids = [str(i) for i in ids if str(i)]
    return bool(ids) and sum(map(is_tcga_id, ids)) >= 0.5 * len(ids)


def detect_layout(path: str | os.PathLike) -> str:
    header, delimiter, _ = read_header(path)
    if _mostly_tcga(header[1:]):
        return "xena_genes_by_samples"
    first_column = pd.read_csv(path, sep=delimiter, usecols=[0], dtype=str, keep_default_na=False).iloc[:, 0]
    if _mostly_tcga(first_column):
        return "toil_samples_by_genes"
    layouts = "\n".join(f"  - {name}: {text}" for name, text in LAYOUTS.items())
    raise ExpressionFormatError(
        f"{path}: TCGA barcodes found neither in the header nor in the first column. Recognised layouts:\n{layouts}"
    )


def gene_symbol(gene_id: str) -> str:
    """'TP53|7157' -> 'TP53'; '?|100130426' -> '' (no symbol)."""
    symbol = str(gene_id).split("|")[0].strip()
    return "" if symbol == "?" else symbol


def expression_genes(path: str | os.PathLike) -> list[str]:
    """Gene symbols of an expression table, read without its values."""
    layout = detect_layout(path)
    if layout == "toil_samples_by_genes":
        genes = read_header(path)[0][1:]
    else:
        _, delimiter, _ = read_header(path)
        genes = pd.read_csv(path, sep=delimiter, usecols=[0], dtype=str, keep_default_na=False).iloc[:, 0]
    return [s for s in map(gene_symbol, genes) if s]


def read_expression(path: str | os.PathLike) -> pd.DataFrame:
    """Samples x genes (float32, index = sample or patient id, columns = unique gene symbols, first kept)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"expression table not found: {path}")
    layout = detect_layout(path)
    _, delimiter, _ = read_header(path)
    table = pd.read_csv(path, sep=delimiter, index_col=0, na_values=["NA", ""], low_memory=False)
    if layout == "xena_genes_by_samples":
        table = table.T
    table.columns = [gene_symbol(c) for c in table.columns]
    table = table.loc[:, [bool(c) for c in table.columns]]
    duplicated = table.columns.duplicated()
    if duplicated.any():
        log.warning("%s: %d duplicated gene symbols, first occurrence kept", path, duplicated.sum())
        table = table.loc[:, ~duplicated]
    table.index = table.index.astype(str)
    log.info("%s (%s): %d samples x %d genes", path, layout, *table.shape)
    return table.astype("float32")


def select_tumour_samples(samples: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """One row per patient: its tumour sample with the lowest type code (01 primary first), first in file order
    on ties; a patient id without sample type counts as tumour. Patients with only normal/control samples are
    excluded (their expression is not the tumour's) and returned as the second value.
    """
    ids = pd.Series(samples.index, index=samples.index)
    types = ids.map(sample_type).astype(float)
    tumour = types.isna() | types.between(1, 9)
    patients = ids.map(patient_id)
    order = pd.DataFrame({"patient": patients, "type": types.fillna(1), "row": range(len(ids))})[
        tumour.values
    ]
    chosen = order.sort_values(["patient", "type", "row"]).drop_duplicates("patient")["row"]
    table = samples.iloc[chosen.sort_values().to_numpy()]
    table.index = patients.iloc[chosen.sort_values().to_numpy()].to_numpy()
    table.index.name = "patient"
    normal_only = sorted(set(patients) - set(table.index))
    return table, normal_only
