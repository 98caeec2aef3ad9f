"""Load and validate the workflow configuration.

The schema is one JSON-Schema file per top-level section in ``modaltune/schema/<section>.yaml``, so each
stage owns the keys it reads. :func:`validate` fills defaults in place and raises :class:`ConfigError`
with a single line that names the offending key.
"""

from __future__ import annotations

import copy
import functools
import os
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml


class ConfigError(ValueError):
    """A config value is missing, unknown or of the wrong type."""


def schema() -> dict[str, Any]:
    """The full config schema, assembled from the per-section files."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "additionalProperties": False,
        "properties": copy.deepcopy(_section_schemas()),
    }


@functools.cache
def _section_schemas() -> dict[str, Any]:
    """Read once per process: every experiment's overrides are validated against the same files."""
    sections = {}
    for entry in sorted(resources.files("modaltune.schema").iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".yaml"):
            sections[entry.name.removesuffix(".yaml")] = yaml.safe_load(entry.read_text())
    return sections


def _with_defaults(validator_class):
    """A validator that also fills ``default`` values, including those of defaulted sub-objects."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, subschema in properties.items():
                if "default" in subschema and name not in instance:
                    instance[name] = _copy(subschema["default"])
                elif subschema.get("type") == "object" and name not in instance and "properties" in subschema:
                    instance[name] = {}
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


def _copy(value):
    return yaml.safe_load(yaml.safe_dump(value))


_Validator = _with_defaults(jsonschema.Draft202012Validator)


def validate(config: dict[str, Any]) -> dict[str, Any]:
    """Validate ``config`` in place (filling defaults) and return it; every experiment's overrides are checked too."""
    error = jsonschema.exceptions.best_match(_Validator(schema()).iter_errors(config))
    if error is not None:
        raise ConfigError(_one_line(error))
    check_combinations(config)
    for name in config["experiments"]:
        experiment_sections(config, name)
    return config


# The sections an experiment may override, and keys of them it may not: job resources are declared by the rules
# from the top-level section, and the text embeddings (encoder, prompts) are computed once for every experiment.
EXPERIMENT_SECTIONS = ("model", "training", "text")
NOT_PER_EXPERIMENT = {
    "training": ("gpus", "threads", "mem_mb", "runtime", "seeds_per_job", "experiments_per_job"),
    "text": ("encoder", "batch_size", "device", "duration_bins", "site_words", "minilm", "conch", "hf"),
}
# Embedding width of each text encoder (modaltune.text.encoders; this module stays free of torch).
TEXT_WIDTHS = {"minilm": 384, "conch": 512}


def text_width(text: Mapping[str, Any]) -> int | None:
    """The configured text encoder's embedding width; a local Hugging Face model's from its config.json (None while
    the folder is absent: the text stage then stops on it)."""
    if text["encoder"] != "hf":
        return TEXT_WIDTHS[text["encoder"]]
    import json

    config_file = Path(resolve(text["hf"]["path"] or "")) / "config.json"
    return json.loads(config_file.read_text())["hidden_size"] if config_file.is_file() else None


def experiment_sections(config: Mapping[str, Any], name: str) -> dict[str, Any]:
    """The validated config with experiment ``name``'s model/training/text overrides merged over the top-level
    sections. A bad override stops with one line naming the experiment and the key."""
    experiment = config["experiments"][name]
    for section, forbidden in NOT_PER_EXPERIMENT.items():
        for key in forbidden:
            if key in experiment.get(section, {}):
                raise ConfigError(f"config error: experiments.{name}.{section}.{key} cannot differ per experiment; "
                                  f"set it in the top-level {section} section")
    if experiment.get("ablation", False) and experiment.get("multimodal", False):
        raise ConfigError(f"config error: experiments.{name}: ablation and multimodal name two different tables; "
                          "mark the experiment with one of them")
    seeds = experiment.get("seeds")
    if seeds is not None and set(seeds) - set(config["cohort"]["seeds"]):
        raise ConfigError(f"config error: experiments.{name}.seeds {seeds} must be among cohort.seeds "
                          f"{config['cohort']['seeds']}")
    merged = {key: copy.deepcopy(value) for key, value in config.items() if key != "experiments"}
    for section in EXPERIMENT_SECTIONS:
        merge(merged[section], experiment.get(section, {}))
    try:
        validate_sections(merged)
        check_combinations(merged)
    except ConfigError as error:
        raise ConfigError(f"config error: experiments.{name}: {str(error).removeprefix('config error: ')}") from None
    if experiment.get("objective", "text") == "supervised":
        check_supervised(name, experiment, merged["model"])
    return merged


def check_supervised(name: str, experiment: Mapping[str, Any], model: Mapping[str, Any]) -> None:
    """An experiment trained without text (objective supervised, the No Text Embedding row) and keys that cannot
    work with it."""
    overrides = experiment.get("model", {})
    problems = [
        (experiment["pooled"], "pooled", "trains one model per site and task: set pooled: false"),
        (not experiment.get("ablation", False), "ablation",
         "is a row of the ablation table (paper Table 8, No Text Embedding): set ablation: true"),
        ("text" in experiment, "text", "reads no text: remove the text overrides"),
        ("projector" in overrides, "model.projector", "has no text to project to: remove the key"),
        ("tasks" in overrides, "model.tasks",
         "trains one model per task of baselines.tasks, each with its own task prompt: remove the key"),
        (model["transcriptomics"] != "genes", "model.transcriptomics",
         "trains the transcriptomics encoder on the gene table; learned tokens are not supported with it"),
        (model["clinical"]["enabled"], "model.clinical.enabled",
         "trains on the slides and genes; clinical tokens are not supported with it"),
    ]
    for wrong, key, reason in problems:
        if wrong:
            raise ConfigError(f"config error: experiments.{name}.{key}: objective supervised {reason}")


def validate_sections(config: dict[str, Any]) -> dict[str, Any]:
    """Validate the sections present in ``config`` (filling defaults), without the cross-experiment checks."""
    sections = {name: part for name, part in schema()["properties"].items() if name in config}
    full = dict(schema(), properties=sections)
    error = jsonschema.exceptions.best_match(_Validator(full).iter_errors(config))
    if error is not None:
        raise ConfigError(_one_line(error))
    return config


def check_combinations(config: Mapping[str, Any]) -> None:
    """Settings that are valid one by one but cannot work together."""
    model, text = config["model"], config["text"]
    if config["training"]["experiments_per_job"] > 1 and config["training"]["seeds_per_job"] == 1:
        raise ConfigError("config error: key 'training.experiments_per_job': batching experiments needs the batch "
                          "jobs of training.seeds_per_job above 1; set experiments_per_job to 1")
    if model["architecture"] != "modaltune" and (model["transcriptomics"], model["finetuning"]) != ("genes", "adapter"):
        raise ConfigError(f"config error: key 'model.architecture': {model['architecture']} is a baseline with its own "
                          "gene branch and no slide encoder; it needs model.transcriptomics genes and model.finetuning "
                          "adapter")
    if model["finetuning"] == "lora":
        from modaltune.models.slide_encoder import SLIDE_ENCODERS  # imports torch: only for LoRA configs

        encoder = SLIDE_ENCODERS.get(config["slide_encoder"]["name"])
        if encoder is not None and model["lora"]["rank"] > encoder.embed_dim:
            raise ConfigError(f"config error: key 'model.lora.rank': {model['lora']['rank']} exceeds the width "
                              f"{encoder.embed_dim} of the attention projections of slide encoder '{encoder.name}'")
    if model["clinical"]["enabled"] and (model["architecture"], model["finetuning"]) != ("modaltune", "adapter"):
        raise ConfigError("config error: key 'model.clinical.enabled': clinical tokens need the Modal Adapter; "
                          "set model.architecture modaltune and model.finetuning adapter, or disable model.clinical")
    width = text_width(text)
    if model["projector"] == "none" and width is not None and text["projector_dim"] != width:
        raise ConfigError(f"config error: key 'text.projector_dim': model.projector none compares the model output "
                          f"with the {text['encoder']} embedding itself, so projector_dim must be its width {width} "
                          f"(got {text['projector_dim']})")


def section_from_json(name: str, raw: str) -> dict[str, Any]:
    """One config section handed to a `modaltune` command as JSON (`--params`), validated with defaults filled."""
    import json

    return validate({name: json.loads(raw)})[name]


def sections_from_json(raw: str, names: Iterable[str]) -> dict[str, Any]:
    """Several config sections handed to a command as one JSON object (`--params`), each one required, validated
    with defaults filled."""
    import json

    params = json.loads(raw)
    missing = [name for name in names if name not in params]
    if missing:
        raise ConfigError(f"--params lacks the config section(s) {missing}")
    return validate({name: params[name] for name in names})


def _one_line(error: jsonschema.ValidationError) -> str:
    where = ".".join(str(p) for p in error.absolute_path)
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        unexpected = sorted(set(error.instance) - set(allowed))
        key = ".".join(filter(None, [where, unexpected[0] if unexpected else "?"]))
        return f"config error: unknown key '{key}' (allowed here: {', '.join(allowed)})"
    if error.validator == "required":
        return f"config error: {where or 'top level'}: {error.message}"
    return f"config error: key '{where}': {error.message}"


def load(paths: Iterable[str | os.PathLike], overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Merge YAML files left to right (key by key, as Snakemake merges several ``--configfile``), apply overrides,
    validate (schema defaults fill what the files omit)."""
    merged: dict[str, Any] = {}
    for path in paths:
        with open(path) as handle:
            merge(merged, yaml.safe_load(handle) or {})
    merge(merged, dict(overrides or {}))
    return validate(merged)


def merge(base: dict[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """Recursive dict update, the rule Snakemake applies to several ``--configfile`` files, left to right."""
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            merge(base[key], value)
        else:
            base[key] = _copy(value) if isinstance(value, (dict, list)) else value
    return base


def run_config(configfiles: Sequence[str | os.PathLike], demo_config: str | os.PathLike) -> dict[str, Any]:
    """The config of a workflow run, as the Snakefile builds it: the given files merged left to right, or the demo
    config when none is given. A user's file is never merged over the demo, so what it omits gets the schema's
    defaults, not the demo's values."""
    return load(configfiles or [demo_config])


DEMO_ROOT = "results/demo"  # where the workflow writes the demo cohort, relative to its working directory


def site_inputs(config: Mapping[str, Any], demo_root: str = DEMO_ROOT) -> dict[str, dict[str, Any]]:
    """{site: inputs} of a run, inputs as in modaltune/schema/sites.yaml plus `slide_ids` and `slide_files`.

    The demo's sites when ``demo.enabled`` (files the workflow generates under ``demo_root``), else the configured
    ``sites`` with their slide folders globbed, relative paths against the current directory (the workflow's).
    """
    if config["demo"]["enabled"]:
        from modaltune.synth import demo_site_inputs

        return demo_site_inputs(config["demo"], root=demo_root)
    if not config["sites"]:
        raise ConfigError(
            "config error: no site configured: list your cohorts under `sites` (see config/tcga.yaml), or give no "
            "--configfile to run the demo"
        )
    table = {}
    for site, inputs in config["sites"].items():
        paths = sorted(Path(inputs["slides"]).glob(inputs["slide_glob"]))
        table[site] = dict(inputs, slide_ids=[p.stem for p in paths], slide_files=[str(p) for p in paths])
    return table


def pathways_file(config: Mapping[str, Any], demo_root: str = DEMO_ROOT) -> str:
    """The pathway composition file: the demo's own, else ``omics.pathways``."""
    if config["demo"]["enabled"]:
        from modaltune.synth import demo_pathways_file

        return str(demo_pathways_file(demo_root))
    if not config["omics"]["pathways"]:
        raise ConfigError("config error: set omics.pathways to a pathway file (e.g. SurvPath combine_comps.csv)")
    return config["omics"]["pathways"]


def experiment_sites(config: Mapping[str, Any], sites: Sequence[str]) -> tuple[dict[str, list[str]], list[str]]:
    """({experiment: its sites} of the experiments to run, notices about the ones skipped).

    ``sites`` are the configured site names. A pooled experiment over a single site would train that site's
    per-site model again under another name, so it is skipped with a notice. An unknown site is a ConfigError.
    """
    planned, notices = {}, []
    for name, experiment in config["experiments"].items():
        chosen = list(sites) if experiment["sites"] == "all" else list(experiment["sites"])
        if unknown := [site for site in chosen if site not in sites]:
            raise ConfigError(
                f"config error: experiments.{name}.sites: unknown site(s) {unknown} (configured: {list(sites)})"
            )
        if experiment["pooled"] and len(chosen) < 2:
            notices.append(
                f"experiments.{name} is pooled over one site ({', '.join(chosen) or 'none'}): skipped, it would "
                "only repeat the per-site model; list two or more sites to train a pan-cancer model"
            )
            continue
        planned[name] = chosen
    return planned, notices


def resolve(path: str | os.PathLike, root: str | os.PathLike = ".") -> Path:
    """A config path made absolute against the workflow's working directory; ``~`` and $VARS expand."""
    expanded = Path(os.path.expandvars(os.path.expanduser(str(path))))
    return expanded if expanded.is_absolute() else Path(root) / expanded
