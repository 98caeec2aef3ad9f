"""Helpers shared by the omics and cohort readers: TCGA identifiers and the header of a delimited text table."""

from __future__ import annotations

import gzip
import os
import re
from pathlib import Path

_TCGA_PATIENT = re.compile(r"^TCGA-[A-Z0-9]{2}-[A-Z0-9]{4}", re.IGNORECASE)


class TableFormatError(ValueError):
    """A table whose format is not recognised or whose content is unusable."""


def is_tcga_id(identifier: str) -> bool:
    return bool(_TCGA_PATIENT.match(identifier))


def patient_id(identifier: str) -> str:
    """The 12-character patient barcode of a TCGA case/sample/slide id; other ids are returned unchanged."""
    match = _TCGA_PATIENT.match(identifier)
    return match.group(0).upper() if match else identifier


def sample_type(sample_id: str) -> int | None:
    """TCGA sample-type code (characters 14-15: 01-09 tumour, 10-19 normal, 20-29 control); None for a patient id."""
    code = sample_id[13:15]
    return int(code) if len(sample_id) >= 15 and code.isdigit() else None


def open_text(path: str | os.PathLike):
    path = Path(path)
    return gzip.open(path, "rt", newline="") if path.suffix == ".gz" else open(path, newline="")


def read_header(path: str | os.PathLike) -> tuple[list[str], str, int]:
    """(column names, delimiter, number of leading '#' lines) of a delimited text table, plain or gzip."""
    comment_lines = 0
    with open_text(path) as handle:
        for line in handle:
            if line.startswith("#"):
                comment_lines += 1
                continue
            line = line.rstrip("\r\n")
            delimiter = "\t" if "\t" in line else ","
            return line.split(delimiter), delimiter, comment_lines
    raise TableFormatError(f"{path}: empty file (no header line)")
