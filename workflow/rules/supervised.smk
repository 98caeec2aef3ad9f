# No Text Embedding (paper Table 8): experiments with `objective: supervised` train, per site, seed and task of
# baselines.tasks, ModalTune with that task's prompt alone and a task head (cross-entropy or the baselines' NLL
# survival loss), scored on its own test predictions: results/ablations/{experiment}/{site}/seed{seed}/{task}.json
# and .parquet, rows of the ablation table. No text, embeddings or probes. Real cohorts: one resumable job per run
# (`train_supervised`); the demo (`training.seeds_per_job` > 1) trains a site's seeds and tasks in one job.

include: "supervised_functions.smk"


if TRAINING["seeds_per_job"] == 1:

    rule train_supervised:
        input:
            unpack(supervised_site_inputs),
        output:
            record="results/ablations/{experiment}/{site}/seed{seed}/{task}.json",
            predictions="results/ablations/{experiment}/{site}/seed{seed}/{task}.parquet",
        wildcard_constraints:
            experiment="|".join(SUPERVISED) or "NO_EXPERIMENT",
            seed=r"\d+",
            task="|".join(SUPERVISED_TASKS),
        log:
            "results/logs/train_supervised/{experiment}/{site}/seed{seed}_{task}.log",
        params:
            sections=supervised_sections_json,
        threads: TRAINING["threads"]
        resources:
            mem_mb=TRAINING["mem_mb"],
            runtime=TRAINING["runtime"],
            gpu=TRAINING["gpus"],
        conda:
            "../../envs/torch.yaml"
        shell:
            "modaltune train-supervised --experiment {wildcards.experiment} --site {wildcards.site} "
            "--seeds {wildcards.seed} --tasks {wildcards.task} --out results/ablations "
            "--params {params.sections:q} > {log} 2>&1"


else:
    for batch, job in enumerate(supervised_batches()):

        rule:
            name:
                f"train_supervised_batch{batch}"
            input:
                **supervised_inputs(job.site),
            output:
                job.outputs,
            log:
                job.log,
            params:
                experiment=job.experiment,
                site=job.site,
                seeds=" ".join(map(str, job.seeds)),
                tasks=" ".join(SUPERVISED_TASKS),
                sections=supervised_sections(job.experiment),
            threads: TRAINING["threads"]
            resources:
                mem_mb=TRAINING["mem_mb"],
                runtime=TRAINING["runtime"] * len(job.seeds) * len(SUPERVISED_TASKS),
                gpu=TRAINING["gpus"],
            conda:
                "../../envs/torch.yaml"
            shell:
                "modaltune train-supervised --experiment {params.experiment} --site {params.site} "
                "--seeds {params.seeds} --tasks {params.tasks} --out results/ablations "
                "--params {params.sections:q} > {log:q} 2>&1"


TARGETS.append(supervised_targets)
