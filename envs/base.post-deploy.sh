#!/usr/bin/env bash
# Snakemake runs this inside the job environment right after creating it from the .yaml next to this file.
# It installs the modaltune checkout that holds the Snakefile (MODALTUNE_ROOT, set by workflow/rules/common.smk),
# editable, so jobs always run the checkout's current code; --no-deps because the env file already provides the
# dependencies and pyproject's full list would pull torch and snakemake into every env.
# Not a `pip:` entry in the env file: conda runs pip in the folder of the env file it is given, and Snakemake gives
# it a copy in the conda prefix (.snakemake/conda/<hash>.yaml), so a relative path such as `-e ../..` would point
# there, and a requirement line cannot carry --no-deps.
set -euo pipefail
: "${MODALTUNE_ROOT:?not set: create the environments through snakemake (--use-conda), which sets it}"
python -m pip install --no-deps --no-build-isolation --editable "$MODALTUNE_ROOT"
