# Figures of the seed `evaluation.figure_seed` (default: the first seed): Kaplan-Meier curves of the test split
# per experiment and site (high/low risk cut at the training patients' median risk, log-rank p-value), and one t-SNE
# per experiment of all its sites' patient embeddings, with the projected text embeddings for trained models.


rule km:
    input:
        f"results/probes/{{experiment}}/{{site}}/seed{FIGURE_SEED}.json",
    output:
        report(
            "results/figures/km/{experiment}/{site}.png",
            caption="../report/km.rst",
            category="Kaplan-Meier",
            subcategory="{experiment}",
            labels={"experiment": "{experiment}", "site": "{site}"},
        ),
    wildcard_constraints:
        experiment="|".join(probed_sites()),
    log:
        "results/logs/km/{experiment}/{site}.log",
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    localrule: True
    conda:
        "../../envs/base.yaml"
    shell:
        "modaltune km --probes {input:q} --out {output:q} > {log} 2>&1"


rule km_baselines:
    # One job draws every survival baseline's figure: a figure takes milliseconds, a Python start-up seconds. A
    # folder, as a skipped run (too few events) has no figure; the report lists the files it holds.
    input:
        baseline_km_runs(),
    output:
        report(
            directory("results/figures/km/baselines"),
            patterns=["{model}/{site}.png"],
            caption="../report/km_baselines.rst",
            category="Kaplan-Meier",
            subcategory="baselines",
            labels={"model": "{model}", "site": "{site}"},
        ),
    log:
        "results/logs/km/baselines.log",
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    localrule: True
    conda:
        "../../envs/base.yaml"
    shell:
        "modaltune km --baseline-runs {input:q} --out-dir {output:q} > {log} 2>&1"


rule tsne:
    input:
        unpack(tsne_inputs),
    output:
        report(
            "results/figures/tsne/{experiment}.png",
            caption="../report/tsne.rst",
            category="t-SNE",
            labels={"experiment": "{experiment}"},
        ),
    wildcard_constraints:
        experiment="|".join(probed_sites()),
    log:
        "results/logs/tsne/{experiment}.log",
    params:
        title=tsne_title,
        projector_dim=config["text"]["projector_dim"],
        seed=FIGURE_SEED,
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    localrule: True
    conda:
        "../../envs/torch.yaml"
    shell:
        "modaltune tsne --embeddings {input.embeddings:q} --cohort {input.cohort:q} --text {input.text:q} "
        "--projector-dim {params.projector_dim} --seed {params.seed} --title {params.title:q} --out {output:q} "
        "> {log} 2>&1"


TARGETS.append(figure_targets)
TARGETS.append(baseline_km_targets)
