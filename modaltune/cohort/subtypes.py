"""Subtype groups and the rare set per site, read from a YAML data file (``modaltune/data/subtypes.yaml``).

Users extend or override sites with their own YAML file of the same layout (config ``cohort.subtypes_file``);
its sites replace the shipped ones of the same name.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources

import yaml

RARE_SET_CLASS = -1


@dataclass(frozen=True)
class SubtypeGroup:
    name: str
    diagnoses: frozenset[str]
    projects: frozenset[str]  # empty: any project


def normalise_diagnosis(diagnosis: str) -> str:
    """Lower case, trailing ', NOS' removed: the form used in the cohort table, the prompts and the subtype file."""
    text = diagnosis.strip().lower()
    return text.removesuffix(", nos").strip()


def load_subtype_table(user_file: str | os.PathLike | None = None) -> dict[str, list[SubtypeGroup]]:
    """{site: groups in class order}: the shipped table, with the sites of ``user_file`` replacing or added."""
    raw = yaml.safe_load(resources.files("modaltune").joinpath("data", "subtypes.yaml").read_text())
    if user_file is not None:
        with open(user_file) as handle:
            raw.update(yaml.safe_load(handle) or {})
    return {site: [_group(site, entry, user_file) for entry in groups] for site, groups in raw.items()}


def _group(site: str, entry: dict, source) -> SubtypeGroup:
    if not isinstance(entry, dict) or "name" not in entry or not entry.get("diagnoses"):
        raise ValueError(
            f"subtype file {source or 'modaltune/data/subtypes.yaml'}: site {site}: every group needs `name` "
            f"and a non-empty `diagnoses` list, got {entry!r}"
        )
    unknown = set(entry) - {"name", "diagnoses", "projects"}
    if unknown:
        raise ValueError(
            f"subtype file {source}: site {site}, group {entry['name']}: unknown keys {sorted(unknown)}"
        )
    return SubtypeGroup(
        name=str(entry["name"]),
        diagnoses=frozenset(normalise_diagnosis(str(d)) for d in entry["diagnoses"]),
        projects=frozenset(str(p) for p in entry.get("projects", [])),
    )


def groups_of(site: str, table: dict[str, list[SubtypeGroup]]) -> list[SubtypeGroup]:
    if site not in table:
        raise KeyError(
            f"site {site} has no subtype groups; known sites: {', '.join(sorted(table))}. Add it to a YAML file "
            "laid out like modaltune/data/subtypes.yaml and set cohort.subtypes_file to that file"
        )
    return table[site]


def assign_subtype(diagnosis: str, project: str | None, groups: list[SubtypeGroup]) -> tuple[str, int]:
    """(group name, class index) of a normalised diagnosis, or ("", -1) for the rare set."""
    for index, group in enumerate(groups):
        if diagnosis in group.diagnoses and (not group.projects or project in group.projects):
            return group.name, index
    return "", RARE_SET_CLASS
