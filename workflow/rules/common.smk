# Shared by all rule files (config validation, the site/slide table, the target registry).
import json
import os
import shlex
import sys
from pathlib import Path

from snakemake.settings.types import DeploymentMethod

import modaltune.config
import modaltune.weights

try:
    modaltune.config.validate(config)
    modaltune.weights.check_workflow(config)  # no random encoder weights by accident
except (modaltune.config.ConfigError, modaltune.weights.WeightsError) as error:
    raise WorkflowError(str(error)) from None

# With --use-conda, envs/<env>.post-deploy.sh installs this checkout into each job environment; it finds
# the checkout through this variable, inherited by the env-creating subprocess (see README, "Running on SLURM").
os.environ.update(MODALTUNE_ROOT=str(Path(workflow.basedir).parent))

# Shell rules call `modaltune <command>`. This shell function runs it with the interpreter that runs the workflow, so
# an unactivated `.venv/bin/snakemake` works without `modaltune` on PATH. Under --use-conda each job runs in its own
# environment, whose `modaltune` (installed by envs/<env>.post-deploy.sh) is on the activated PATH.
if DeploymentMethod.CONDA not in workflow.deployment_settings.deployment_method:
    # shell.prefix formats its argument like a shell command: the function's braces are doubled.
    shell.prefix('set -euo pipefail; modaltune() {{ ' + shlex.quote(sys.executable) + ' -m modaltune "$@"; }}; ')


localrules:
    all,


DEMO_ROOT = modaltune.config.DEMO_ROOT
try:
    SITES = modaltune.config.site_inputs(config, DEMO_ROOT)  # {site: inputs + slide_ids, slide_files}
    PATHWAYS_FILE = modaltune.config.pathways_file(config, DEMO_ROOT)
except modaltune.config.ConfigError as error:
    raise WorkflowError(str(error)) from None
SEEDS = config["cohort"]["seeds"]  # model seeds: every model, text target and probe exists once per seed
SLIDE_FILE = {
    slide: path
    for inputs in SITES.values()
    for slide, path in zip(inputs["slide_ids"], inputs["slide_files"])
}
SLIDE_SITE = {slide: site for site, inputs in SITES.items() for slide in inputs["slide_ids"]}


wildcard_constraints:
    site="|".join(SITES) or "NO_SITE",
    slide=r"[^/]+",


def slide_batches(size):
    """All slides in batches of `size`, in a fixed order, for rules that amortise start-up over several slides.

    A batch never mixes sites, so a site's target (`results/sites/{site}.done`) runs no other site's jobs.
    """
    batches = []
    for site in SITES:
        slides = sorted(slides_of(site))
        batches += [slides[start : start + size] for start in range(0, len(slides), size)]
    return batches


def slides_of(site):
    return SITES[site]["slide_ids"]


def slide_file(wildcards):
    return SLIDE_FILE[wildcards.slide]


def site_input(key):
    """An input/params function returning `SITES[site][key]` (e.g. "clinical", "rna", "projects", "slide_ids")."""

    def of_site(wildcards):
        return SITES[wildcards.site].get(key, [])

    return of_site


ALL_RNA_FILES = [path for inputs in SITES.values() for path in inputs.get("rna", [])]


def section_json(name):
    """A config section as JSON, handed to the `modaltune` CLI with `{params.section:q}`."""
    return json.dumps(config[name], sort_keys=True)


def sections_json(names):
    """Several config sections as one JSON object {name: section}, for commands that read several."""
    return json.dumps({name: config[name] for name in names}, sort_keys=True)


# Each rule file appends a function returning its final outputs; `all` builds all of them.
TARGETS = []


def all_targets(wildcards):
    return [path for collect in TARGETS for path in collect()]


def site_targets(wildcards):
    """The outputs of `all` that belong to one site, for `rule site` (results/sites/{site}.done).

    A path belongs to a site when it names that site and no other: one of its folders is the site, or its file
    name starts with `<site>.` or `<site>_`, or its file stem is one of the site's slides. Shared outputs (the
    pathway table, the results tables) and cross-site ones (out-of-distribution runs, and everything of a pooled
    experiment, whose model is trained on every site) are left to `all`; a site's jobs still build shared files
    they need as inputs.
    """
    site, slides = wildcards.site, set(slides_of(wildcards.site))
    others = [other for other in SITES if other != site]
    pooled = {name for name, experiment in config.get("experiments", {}).items() if experiment.get("pooled")}
    return [
        path
        for path in all_targets(wildcards)
        if (_names_site(Path(path), site) or Path(path).name.rsplit(".", 1)[0] in slides)
        and not any(_names_site(Path(path), other) for other in others)
        and not pooled.intersection(Path(path).parts)
    ]


def _names_site(path, site):
    return site in path.parent.parts or path.name.startswith((f"{site}.", f"{site}_"))
