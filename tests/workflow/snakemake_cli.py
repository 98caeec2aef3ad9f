"""Run the workflow's Snakefile from tests and benchmarks: subprocess calls, dry-run parsing, placeholder inputs.

Every run uses `--workflow-profile none`, so a workflow/profiles/default never leaks into a test, and a working
directory under tmp, so nothing is written into the repository.
"""

from __future__ import annotations

import copy
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import yaml

REPO = Path(__file__).resolve().parents[2]
SNAKEFILE = REPO / "workflow" / "Snakefile"
SLURM_PROFILE = REPO / "workflow" / "profiles" / "slurm"
TCGA_CONFIG = REPO / "config" / "tcga.yaml"
# Values for the profile's placeholders (an empty account/partition lets SLURM choose; see the profile header).
SLURM_ENV = {
    "MODALTUNE_SLURM_ACCOUNT": "",
    "MODALTUNE_SLURM_PARTITION": "",
    "MODALTUNE_SLURM_GPU_PARTITION": "",
    "MODALTUNE_SLURM_GPU_MODEL": "",
}


def snakemake(workdir: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 900):
    """`python -m snakemake` on the workflow in `workdir`; fails with the log tail when Snakemake does."""
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(SNAKEFILE), "--directory", str(workdir)]
    command += ["--workflow-profile", "none", *map(str, args)]
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
    if result.returncode != 0:
        log = (result.stdout + result.stderr)[-6000:]
        raise AssertionError(f"snakemake {' '.join(map(str, args))} failed ({result.returncode}):\n{log}")
    return result


class PlannedJob(NamedTuple):
    rule: str
    outputs: tuple[str, ...]
    reason: str
    resources: dict[str, str]


_JOB = re.compile(r"^\s*(?:local)?rule (\S+):$")
_FIELD = re.compile(r"^\s+(output|reason|resources): (.*)$")


def planned_jobs(dry_run_output: str) -> list[PlannedJob]:
    """The jobs a `snakemake -n` run lists (group members included), with their outputs and reason."""
    jobs, rule, fields = [], None, {}
    for line in dry_run_output.splitlines() + ["rule end-of-output:"]:
        if start := _JOB.match(line):
            if rule is not None:
                outputs = tuple(p for p in fields.get("output", "").split(", ") if p)
                resources = dict(
                    item.split("=", 1) for item in fields.get("resources", "").split(", ") if item
                )
                jobs.append(PlannedJob(rule, outputs, fields.get("reason", ""), resources))
            rule, fields = start.group(1), {}
        elif rule is not None and (field := _FIELD.match(line)):
            fields[field.group(1)] = field.group(2)
    return jobs


def dry_run(workdir: Path, *args: str, env: dict[str, str] | None = None) -> list[PlannedJob]:
    return planned_jobs(snakemake(workdir, "--dry-run", *args, env=env).stdout)


# TCGA-like names: project code, tissue source site, diagnostic slide, then the GDC file UUID-like suffix.
def placeholder_slide_names(site_index: int, count: int) -> list[str]:
    return [
        f"TCGA-{site_index:02d}-{number:04X}-01Z-00-DX1.{site_index:08X}-0000-4000-8000-{number:012X}.svs"
        for number in range(count)
    ]


def placeholder_tcga_config(root: Path, slides_per_site: dict[str, int] | None = None) -> Path:
    """An override for config/tcga.yaml whose every input path is an empty placeholder file under `root`.

    Every site of the template is kept (Snakemake's merge cannot remove one), with `slides_per_site[site]`
    placeholder slides each, default 3; sites named in `slides_per_site` but not in the template copy the template's
    first site. Only paths change: passed after config/tcga.yaml, Snakemake merges it over the template, so every
    other setting is the template's own.
    """
    template = yaml.safe_load(TCGA_CONFIG.read_text())
    wanted = dict.fromkeys(template["sites"], 3) | dict(slides_per_site or {})
    first_site = next(iter(template["sites"].values()))
    sites = {}
    for index, (site, count) in enumerate(wanted.items()):
        inputs = copy.deepcopy(template["sites"].get(site, first_site))
        for key in ("clinical", "rna"):
            inputs[key] = [
                _placeholder_file(root / site / key / Path(path).name) for path in inputs.get(key, [])
            ]
        folder = root / site / "slides"
        folder.mkdir(parents=True, exist_ok=True)
        for name in placeholder_slide_names(index, count):
            (folder / name).touch()
        inputs["slides"] = str(folder)
        sites[site] = inputs
    override = {"sites": sites}
    for section, values in template.items():
        if section not in ("sites", "demo") and isinstance(values, dict):
            paths = _placeholder_paths(values, root / section)
            if paths:
                override[section] = paths
    config_file = root / "tcga_placeholders.yaml"
    config_file.write_text(yaml.safe_dump(override, sort_keys=False))
    return config_file


def _placeholder_paths(values: dict, folder: Path) -> dict:
    """The path-valued entries of a config section (strings with a '/'), pointed at empty files in `folder`."""
    paths = {}
    for key, value in values.items():
        if isinstance(value, dict):
            if nested := _placeholder_paths(value, folder / key):
                paths[key] = nested
        elif isinstance(value, str) and "/" in value:
            paths[key] = _placeholder_file(folder / Path(value).name)
    return paths


def _placeholder_file(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()
    return str(path)


def create_outputs(workdir: Path, paths) -> None:
    """Empty stand-ins for a workflow's outputs, to be stamped with `--touch`: a folder for a directory() output
    (the workflow names every file with a suffix, so a path without one is a folder), an empty file otherwise."""
    for path in map(Path, paths):
        target = workdir / path
        if path.suffix:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.touch()
        else:
            target.mkdir(parents=True, exist_ok=True)
