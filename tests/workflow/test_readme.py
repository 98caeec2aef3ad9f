"""The README's commands, and those in the headers of the config templates and the SLURM profile, run as written.

Every command of the README's bash code blocks, and every inline `snakemake ...` or `make ...`, runs in order in a
sandbox that looks like a checkout (the repository's workflow/ and config/ linked in) with placeholder (empty) files
at the paths config/tcga.yaml names: `snakemake` commands as dry runs, `make` with -n, `modaltune check` as it is
(itself a dry run), `cp` and `export` as written. A command the test cannot dry-run fails the test, so a new kind of
command in the README needs a rule here.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import yaml
from snakemake_cli import SLURM_ENV, placeholder_slide_names

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
HAS_CONDA = shutil.which("conda") is not None
# Without conda, Snakemake refuses even a dry run with --use-conda (see README, "Running on SLURM").
CONDA_FLAGS = {"--use-conda", "--conda-create-envs-only"}


def readme_commands(text: str) -> list[str]:
    """Shell commands of the bash code blocks (comments dropped, continuation lines joined), then the inline
    `snakemake ...` / `make ...` spans of the prose, in order of appearance."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words:
                commands.append(shlex.join(words))
    prose = re.sub(r"```.*?```", "", text, flags=re.S).replace("\n", " ")
    for span in re.findall(r"`([^`]+)`", prose):
        words = span.split()
        if words[0] in ("snakemake", "make") and len(words) > 1 and "<" not in span:
            commands.append(re.sub(r"\s+", " ", span))
    return commands


# Commands in the comment headers of the config templates and the SLURM profile ("#   snakemake ...", "# Run: ...");
# the profile's `export` lines hold placeholders, and the test sets those variables itself (SLURM_ENV).
HEADER_FILES = [REPO / "config" / "tcga.yaml", REPO / "config" / "dev.yaml", REPO / "workflow/profiles/slurm/config.yaml"]
_HEADER_COMMAND = re.compile(r"^#\s+(?:[A-Z][a-z]+:\s+)?((?:snakemake|modaltune) .*)$")


def header_commands(text: str) -> list[str]:
    commands = []
    for line in text.splitlines():
        if match := _HEADER_COMMAND.match(line):
            commands.append(shlex.join(shlex.split(match.group(1), comments=True)))
    return commands


def make_sandbox(root: Path) -> Path:
    """A checkout-like folder: workflow/, config/, Makefile and pyproject.toml linked, tcga.yaml's paths as empty files."""
    root.mkdir(parents=True)
    for name in ("workflow", "config", "Makefile", "pyproject.toml"):
        (root / name).symlink_to(REPO / name)
    template = yaml.safe_load((REPO / "config" / "tcga.yaml").read_text())
    for index, inputs in enumerate(template["sites"].values()):
        for path in [*inputs["clinical"], *inputs.get("rna", [])]:
            _touch(root / path)
        slides = root / inputs["slides"]
        slides.mkdir(parents=True, exist_ok=True)
        for name in placeholder_slide_names(index, 2):
            (slides / name).touch()
    for section, values in template.items():
        if section != "sites" and isinstance(values, dict):
            for path in _paths(values):
                _touch(root / path)
    return root


def _paths(values: dict):
    for value in values.values():
        if isinstance(value, dict):
            yield from _paths(value)
        elif isinstance(value, str) and "/" in value:
            yield value


def _touch(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()


def run_as_dry_run(command: str, sandbox: Path, env: dict[str, str]) -> str | None:
    """Run one README command in its dry-run form; None when it worked, else what went wrong."""
    words = shlex.split(command)
    program, args = words[0], words[1:]
    if program == "export":
        for assignment in args:
            name, _, value = assignment.partition("=")
            env[name] = value
        return None
    if program == "cp":
        shutil.copy(sandbox / args[0], sandbox / args[1])
        return None
    if program == "make":
        argv = ["make", "-n", *args]
    elif program == "snakemake":
        args = args if HAS_CONDA else [arg for arg in args if arg not in CONDA_FLAGS]
        argv = [sys.executable, "-m", "snakemake", "--dry-run", *args]
    elif program == "modaltune":
        argv = [sys.executable, "-m", "modaltune", *args]
    else:
        return f"no dry-run form for `{program}` (add one to tests/workflow/test_readme.py)"
    run = subprocess.run(argv, cwd=sandbox, env=env, capture_output=True, text=True, timeout=600)
    output = run.stdout + run.stderr
    if program == "modaltune" and args[:1] == ["check"]:
        # The placeholders are empty files, so the preflight finds problems (status 1); it must run and report.
        return None if run.returncode in (0, 1) and "\npreflight: " in output else output[-3000:]
    if "--report" in args and "marked for report but does not exist" in output:
        return None  # the config loaded and the DAG was built; a report needs a finished run
    return None if run.returncode == 0 else output[-3000:]


def test_readme_commands_are_found():
    commands = readme_commands(README.read_text())
    assert "make demo" in commands and "make test" in commands
    assert any(c.startswith("snakemake --profile workflow/profiles/slurm") for c in commands)
    assert any(c.startswith("modaltune check --configfile my_tcga.yaml") for c in commands)
    assert any("config/dev.yaml" in c for c in commands)


def test_every_readme_command_runs_as_written(tmp_path):
    sandbox = make_sandbox(tmp_path / "checkout")
    env = {**os.environ, **SLURM_ENV}
    failures = []
    for command in readme_commands(README.read_text()):
        problem = run_as_dry_run(command, sandbox, env)
        if problem is not None:
            failures.append(f"$ {command}\n{problem}")
    assert not failures, "\n\n".join(failures)


def test_every_command_in_the_config_and_profile_headers_runs_as_written(tmp_path):
    sandbox = make_sandbox(tmp_path / "checkout")
    shutil.copy(sandbox / "config" / "tcga.yaml", sandbox / "my_tcga.yaml")  # the headers' commands name the copy
    env = {**os.environ, **SLURM_ENV}
    failures = []
    for path in HEADER_FILES:
        commands = header_commands(path.read_text())
        assert commands, f"no command found in the header of {path}"
        for command in commands:
            if (problem := run_as_dry_run(command, sandbox, env)) is not None:
                failures.append(f"{path.name}: $ {command}\n{problem}")
    assert not failures, "\n\n".join(failures)


def test_a_target_after_configfile_is_caught(tmp_path):
    """The trap the README once documented: Snakemake reads `all` as a second config file."""
    sandbox = make_sandbox(tmp_path / "checkout")
    shutil.copy(sandbox / "config" / "tcga.yaml", sandbox / "my_tcga.yaml")
    problem = run_as_dry_run("snakemake --cores 8 --configfile my_tcga.yaml all", sandbox, dict(os.environ))
    assert problem is not None and "all" in problem
