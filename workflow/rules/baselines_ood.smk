# Paper Table 3's baseline rows (evaluation.ood_baseline, default gigapath_cat): for each out-of-distribution run
# whose source is a site, the baseline's single-task models trained there (weights kept by the baseline rules) embed
# the target's patients without their prediction layer, genes z-scored on the target's training split, and the
# ModalTune probes score them on the target's own split ("Cls." and "Surv."). The "Sup." row is the baseline's
# ordinary run on the target site (rules/baselines.smk); report.smk puts all three in results/tables/ood.*.


include: "baselines_ood_functions.smk"


if OOD_BASELINE_RUNS:

    rule:
        name:
            "ood_baselines" if OOD_BASELINE_GROUPED else "ood_baseline"
        input:
            unpack(ood_baseline_inputs),
        output:
            **ood_baseline_outputs(),
        wildcard_constraints:
            task="|".join(BASELINE_TASKS),
            source="|".join(SITES),
            seed=r"\d+",
        log:
            ood_baseline_log(),
        params:
            model=OOD_BASELINE,
            runs=ood_baseline_runs_option,
            sections=baseline_params([OOD_BASELINE]),
            tile_encoder=config["features"]["encoder"],
            gap_px=config["training"]["slide_gap_px"],
        threads: baseline_resources([OOD_BASELINE])["threads"]
        resources:
            mem_mb=baseline_resources([OOD_BASELINE])["mem_mb"],
            runtime=baseline_resources([OOD_BASELINE])["runtime"],
            gpu=baseline_resources([OOD_BASELINE])["gpus"],
        conda:
            "../../envs/torch.yaml"
        shell:
            "modaltune baseline-ood --model {params.model} {params.runs} --tile-encoder {params.tile_encoder} --gap-px {params.gap_px} --out results/ood "
            "--params {params.sections:q} > {log:q} 2>&1"

    TARGETS.append(ood_baseline_probe_files)
