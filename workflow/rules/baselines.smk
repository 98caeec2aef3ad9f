# Supervised baselines of Table 2: one model per (baseline, site, task, seed), trained on the site's split.
# Real cohorts: one rule per baseline (baseline_abmil, baseline_transmil, ...) and one resumable job per run, so
# `--forcerun baseline_abmil` retrains ABMIL alone and `snakemake results/baselines/abmil/RCC/...` one site.
# With `baselines.group_runs` (the demo, whose runs take seconds) one job per site, rule `baselines`, trains every
# baseline, task and seed, paying the Python start-up once; to rerun one baseline there, add a --configfile holding
# `baselines: {group_runs: false}` (the per-baseline rules) and --forcerun baseline_<model>.


include: "baselines_functions.smk"


for _rule, _models in BASELINE_JOBS:

    rule:
        name:
            _rule
        input:
            unpack(baseline_inputs(_models)),
        output:
            baseline_outputs(_models),
        wildcard_constraints:
            seed=r"\d+",
            task="|".join(BASELINE_TASKS),
        log:
            baseline_log(_rule),
        params:
            models=" ".join(_models),
            runs=baseline_runs,
            sections=baseline_params(_models),
            tile_encoder=config["features"]["encoder"],
            gap_px=config["training"]["slide_gap_px"],
            keep=kept_weights_option(_models),
        threads: baseline_resources(_models)["threads"]
        resources:
            mem_mb=baseline_resources(_models)["mem_mb"],
            runtime=baseline_resources(_models)["runtime"],
            gpu=baseline_resources(_models)["gpus"],
        conda:
            "../../envs/torch.yaml"
        shell:
            "modaltune baseline --models {params.models} --site {wildcards.site} {params.runs} "
            "--tile-encoder {params.tile_encoder} --gap-px {params.gap_px} --out results/baselines "
            "--params {params.sections:q} {params.keep} > {log:q} 2>&1"


TARGETS.append(baseline_targets)
