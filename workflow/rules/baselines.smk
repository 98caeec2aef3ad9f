# Supervised baselines of Table 2: one model per (baseline, site, task, seed), trained on the site's split.
# One rule per baseline (baseline_abmil, baseline_transmil, ...), so `--forcerun baseline_abmil` retrains ABMIL only
# and `snakemake results/baselines/abmil/RCC/...` one site. With `baselines.group_runs` (the demo) a job trains all
# tasks and seeds of one baseline and site, paying the Python start-up once; otherwise one resumable job per run.


include: "baselines_functions.smk"


for _baseline in BASELINE_MODELS:

    rule:
        name:
            f"baseline_{_baseline}"
        input:
            unpack(baseline_inputs(_baseline)),
        output:
            baseline_outputs(_baseline),
        wildcard_constraints:
            seed=r"\d+",
            task="|".join(BASELINE_TASKS),
        log:
            baseline_log(_baseline),
        params:
            model=_baseline,
            runs=baseline_runs,
            sections=baseline_params(_baseline),
            tile_encoder=config["features"]["encoder"],
            gap_px=config["training"]["slide_gap_px"],
        threads: baseline_training(_baseline)["threads"]
        resources:
            mem_mb=baseline_training(_baseline)["mem_mb"],
            runtime=baseline_training(_baseline)["runtime"],
            gpu=baseline_training(_baseline)["gpus"],
        conda:
            "../../envs/torch.yaml"
        shell:
            "{MODALTUNE} baseline --model {params.model} --site {wildcards.site} {params.runs} "
            "--tile-encoder {params.tile_encoder} --gap-px {params.gap_px} --out results/baselines "
            "--params {params.sections:q} > {log:q} 2>&1"


TARGETS.append(baseline_targets)
