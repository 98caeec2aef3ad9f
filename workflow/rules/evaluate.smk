# Evaluation (reference modaltune-method.md sections 12-14): linear probes on the General-task patient embeddings,
# per experiment, site and seed (a pooled experiment is probed per site), the frozen-encoder baseline
# (`Gigapath LP`) embedded and probed like an experiment (once per site when its split is shared by every seed), and
# the out-of-distribution runs of `evaluation.ood`: a trained model embeds another site's patients, with genes
# z-scored on that site's training split, probed on that site's own train/test split.


include: "evaluate_functions.smk"


rule embed_frozen:
    input:
        unpack(frozen_inputs),
    output:
        f"results/embeddings/{FROZEN['name']}/{{site}}/seed{{seed}}.parquet",
    wildcard_constraints:
        seed=r"\d+",
    log:
        "results/logs/embed_frozen/{site}/seed{seed}.log",
    params:
        sections=sections_json(FROZEN_SECTIONS),
    threads: TRAINING["threads"]
    resources:
        mem_mb=TRAINING["mem_mb"],
        runtime=60,
        gpu=TRAINING["gpus"],
    conda:
        "../../envs/torch.yaml"
    shell:
        "modaltune embed-frozen --site {wildcards.site} --seed {wildcards.seed} --out {output:q} "
        "--params {params.sections:q} > {log} 2>&1"


if EVALUATION["probes_per_job"] == 1:  # else: the batch rules below

    rule evaluate:
        input:
            embeddings="results/embeddings/{experiment}/{site}/seed{seed}.parquet",
            cohort="results/cohort/{site}.parquet",
            splits="results/cohort/{site}_splits.parquet",
        output:
            "results/probes/{experiment}/{site}/seed{seed}.json",
        wildcard_constraints:
            experiment="|".join([*EXPERIMENTS, FROZEN["name"]]),
            seed=r"\d+",
        log:
            "results/logs/evaluate/{experiment}/{site}/seed{seed}.log",
        threads: 1
        resources:
            mem_mb=2000,
            runtime=15,
        conda:
            "../../envs/base.yaml"
        shell:
            "modaltune evaluate --embeddings {input.embeddings:q} --cohort {input.cohort:q} --splits {input.splits:q} "
            "--experiment {wildcards.experiment} --site {wildcards.site} --seed {wildcards.seed} --out {output:q} "
            "> {log} 2>&1"


# With `training.seeds_per_job` > 1 (the demo) the training jobs write these embeddings themselves.
if TRAINING["seeds_per_job"] == 1:

    rule embed_ood:
        input:
            unpack(ood_inputs),
        output:
            "results/ood/embeddings/{experiment}/{source}/{site}/seed{seed}.parquet",
        wildcard_constraints:
            experiment="|".join(EXPERIMENTS) or "NO_EXPERIMENT",
            source="|".join([*SITES, POOLED]),
            seed=r"\d+",
        log:
            "results/logs/embed_ood/{experiment}/{source}/{site}/seed{seed}.log",
        params:
            model=ood_model_folder,
            sections=experiment_sections_json,
        threads: TRAINING["threads"]
        resources:
            mem_mb=TRAINING["mem_mb"],
            runtime=60,
            gpu=TRAINING["gpus"],
        conda:
            "../../envs/torch.yaml"
        shell:
            "modaltune embed --model {params.model} --site {wildcards.site} --seed {wildcards.seed} --out {output:q} "
            "--gene-scaling target-train --params {params.sections:q} > {log} 2>&1"

else:
    # Several seeds per job (the demo): one rule per model group and target site, embedding with each seed's model.
    for batch, (experiment, source, target, seeds) in enumerate(ood_embed_batches()):

        rule:
            name:
                f"embed_ood_batch{batch}"
            input:
                **ood_batch_inputs(experiment, source, target, seeds),
            output:
                [f"results/ood/embeddings/{experiment}/{source}/{target}/seed{seed}.parquet" for seed in seeds],
            log:
                f"results/logs/embed_ood/{experiment}/{source}/{target}/seeds{'-'.join(map(str, seeds))}.log",
            params:
                models=" ".join(f"results/models/{experiment}/{source}/seed{seed}" for seed in seeds),
                site=target,
                seeds=" ".join(map(str, seeds)),
                sections=experiment_sections(experiment),
            threads: TRAINING["threads"]
            resources:
                mem_mb=TRAINING["mem_mb"],
                runtime=60,
                gpu=TRAINING["gpus"],
            conda:
                "../../envs/torch.yaml"
            shell:
                "modaltune embed --model {params.models} --site {params.site} --seed {params.seeds} "
                "--out {output:q} --gene-scaling target-train --params {params.sections:q} > {log:q} 2>&1"


if EVALUATION["probes_per_job"] == 1:

    rule evaluate_ood:
        input:
            embeddings="results/ood/embeddings/{experiment}/{source}/{site}/seed{seed}.parquet",
            cohort="results/cohort/{site}.parquet",
            splits="results/cohort/{site}_splits.parquet",
        output:
            "results/ood/probes/{experiment}/{source}/{site}/seed{seed}.json",
        wildcard_constraints:
            experiment="|".join(EXPERIMENTS) or "NO_EXPERIMENT",
            source="|".join([*SITES, POOLED]),
            seed=r"\d+",
        log:
            "results/logs/evaluate_ood/{experiment}/{source}/{site}/seed{seed}.log",
        threads: 1
        resources:
            mem_mb=2000,
            runtime=15,
        conda:
            "../../envs/base.yaml"
        shell:
            "modaltune evaluate --embeddings {input.embeddings:q} --cohort {input.cohort:q} --splits {input.splits:q} "
            "--experiment {wildcards.experiment} --source {wildcards.source} --site {wildcards.site} "
            "--seed {wildcards.seed} --out {output:q} > {log} 2>&1"

else:
    # Several probe files per job (the demo): one rule per batch of one site's probes, in-domain or
    # out-of-distribution, since outputs without a common wildcard cannot share a rule.
    for batch, job in enumerate(probe_batches()):

        rule:
            name:
                f"evaluate_batch{batch}"
            input:
                embeddings=job.embedding_files,
                cohort=f"results/cohort/{job.site}.parquet",
                splits=f"results/cohort/{job.site}_splits.parquet",
            output:
                job.probe_files,
            log:
                job.log,
            params:
                site=job.site,
                experiments=" ".join(job.experiments),
                seeds=" ".join(map(str, job.seeds)),
                sources=f"--source {' '.join(job.sources)}" if job.sources else "",
            threads: 1
            resources:
                mem_mb=2000,
                runtime=15,
            conda:
                "../../envs/base.yaml"
            shell:
                "modaltune evaluate --embeddings {input.embeddings:q} --cohort {input.cohort:q} "
                "--splits {input.splits:q} --experiment {params.experiments} --site {params.site} "
                "--seed {params.seeds} {params.sources} --out {output:q} > {log:q} 2>&1"


TARGETS.append(all_probe_files)
TARGETS.append(ood_probe_files)
