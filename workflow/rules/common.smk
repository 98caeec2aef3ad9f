# Shared by every rule file: config validation, the site/slide table, target registry.
import json
import os
from pathlib import Path

import modaltune.config

try:
    modaltune.config.validate(config)
except modaltune.config.ConfigError as error:
    raise WorkflowError(str(error)) from None


localrules:
    all,


DEMO_ROOT = "results/demo"


def _site_table():
    """{site: inputs} where inputs follow modaltune/schema/sites.yaml plus `slide_ids`."""
    if config["demo"]["enabled"]:
        from modaltune.synth import demo_site_inputs

        return demo_site_inputs(config["demo"], root=DEMO_ROOT)
    table = {}
    for site, inputs in config["sites"].items():
        folder = Path(inputs["slides"])
        paths = sorted(folder.glob(inputs["slide_glob"]))
        table[site] = dict(inputs, slide_ids=[p.stem for p in paths], slide_files=[str(p) for p in paths])
    return table


SITES = _site_table()
SLIDE_FILE = {
    slide: path
    for inputs in SITES.values()
    for slide, path in zip(inputs["slide_ids"], inputs["slide_files"])
}
SLIDE_SITE = {slide: site for site, inputs in SITES.items() for slide in inputs["slide_ids"]}


wildcard_constraints:
    site="|".join(SITES) or "NO_SITE",
    slide=r"[^/]+",


def slides_of(site):
    return SITES[site]["slide_ids"]


def slide_file(wildcards):
    return SLIDE_FILE[wildcards.slide]


def section_json(name):
    """A config section as JSON, handed to the `modaltune` CLI with `{params.section:q}`."""
    return json.dumps(config[name], sort_keys=True)


# Each rule file appends a function returning its final outputs; `all` builds all of them.
TARGETS = []


def all_targets(wildcards):
    return [path for collect in TARGETS for path in collect()]
