"""The official ModalTune repository's released splits: ``json_splits/tcga_{site}/{split}_{site}_cls_feat.json``.

Each file is ``{"data": [...]}``, one record per diagnostic slide, so a patient with several slides has several
records; patients are identified by ``case_submitter_id`` (the 12-character barcode). The records also carry the
paper's subtype class (``primary_class``, -1 = rare set), its diagnosis and the TCGA project, which the cohort report
compares with the cohort's own subtype classes.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pandas as pd

SPLITS = ("train", "val", "test")
RELEASE_COLUMNS = ["patient", "split", "primary_class", "primary_diagnosis", "project"]
_BARCODE = re.compile(r"TCGA-[A-Z0-9]{2}-[A-Z0-9]{4}")
_REQUIRED = ("case_submitter_id", "primary_class", "primary_diagnosis", "project_id")


class ReleaseSplitError(ValueError):
    """A release split folder is missing, incomplete or malformed."""


def release_split_files(folder: str | os.PathLike) -> dict[str, Path]:
    """{split: file} of a release folder: exactly one ``{split}_*.json`` per split."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ReleaseSplitError(f"{folder}: release split folder not found (sites.<site>.splits)")
    files = {}
    for split in SPLITS:
        found = sorted(folder.glob(f"{split}_*.json"))
        if len(found) != 1:
            raise ReleaseSplitError(
                f"{folder}: expected one {split}_<site>_cls_feat.json, found "
                f"{[p.name for p in found] or 'none'} (layout of the official json_splits/tcga_<site>/)"
            )
        files[split] = found[0]
    return files


def read_release_splits(folder: str | os.PathLike) -> pd.DataFrame:
    """One row per patient: patient, split, primary_class, primary_diagnosis, project (without ``TCGA-``)."""
    frames = [_read_split_file(folder, split, path) for split, path in release_split_files(folder).items()]
    table = pd.concat(frames, ignore_index=True)
    twice = table.loc[table["patient"].duplicated(keep=False)].sort_values("patient")
    if len(twice):
        example = twice.iloc[0]["patient"]
        raise ReleaseSplitError(
            f"{folder}: {twice['patient'].nunique()} patient(s) in more than one split, e.g. {example} in "
            f"{sorted(twice.loc[twice['patient'] == example, 'split'])}"
        )
    return table.reset_index(drop=True)


def _read_split_file(folder, split: str, path: Path) -> pd.DataFrame:
    where = f"{folder}: {path.name}"
    try:
        records = json.loads(path.read_text())["data"]
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ReleaseSplitError(f"{where}: not valid JSON ({error})") from None
    except (KeyError, TypeError):
        raise ReleaseSplitError(f"{where}: expected an object with a 'data' list of slide records") from None
    if not isinstance(records, list) or not records:
        raise ReleaseSplitError(f"{where}: 'data' holds no slide record")
    rows = {}
    for index, record in enumerate(records):
        missing = [key for key in _REQUIRED if not isinstance(record, dict) or key not in record]
        if missing:
            raise ReleaseSplitError(f"{where}: record {index} lacks {missing}")
        patient = str(record["case_submitter_id"])
        if not _BARCODE.fullmatch(patient):
            raise ReleaseSplitError(
                f"{where}: record {index}: case_submitter_id {patient!r} is not a 12-character TCGA barcode"
            )
        row = (int(record["primary_class"]), str(record["primary_diagnosis"]),
               str(record["project_id"]).removeprefix("TCGA-"))
        if rows.setdefault(patient, row) != row:
            raise ReleaseSplitError(f"{where}: the slide records of {patient} disagree: {rows[patient]} vs {row}")
    return pd.DataFrame(
        [(patient, split, *row) for patient, row in rows.items()], columns=RELEASE_COLUMNS
    )
