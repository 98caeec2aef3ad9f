# Reported tables (paper Tables 2 and 3): a block per task, a row per method, a column per site plus the mean,
# mean ± std over the seeds (a single run, the frozen baseline with a shared split, without std). `snakemake --report results/report.html` gathers them with the figures.


report: "../report/workflow.rst"


rule results_table:
    input:
        probes=probe_files(),
        baselines=baseline_result_files(),
    output:
        csv="results/tables/results.csv",
        markdown="results/tables/results.md",
        html=report("results/tables/results.html", caption="../report/results_table.rst", category="Tables"),
    log:
        "results/logs/results_table/results.log",
    params:
        labels=table_labels(),
        modalities=table_modalities(),
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    localrule: True
    conda:
        "../../envs/base.yaml"
    shell:
        "modaltune tables {input.probes:q} --baselines {input.baselines:q} --out {output.csv:q} "
        "--labels {params.labels:q} --modalities {params.modalities:q} > {log} 2>&1"


rule ood_table:
    input:
        probes=ood_table_probes() + ood_baseline_probe_files(),
        baselines=ood_supervised_records(),
    output:
        csv="results/tables/ood.csv",
        markdown="results/tables/ood.md",
        html=report("results/tables/ood.html", caption="../report/ood_table.rst", category="Tables"),
    log:
        "results/logs/ood_table/ood.log",
    params:
        labels=ood_table_labels(),
        unranked=ood_table_unranked(),
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    localrule: True
    conda:
        "../../envs/base.yaml"
    shell:
        "modaltune tables {input.probes:q} --baselines {input.baselines:q} --out {output.csv:q} "
        "--labels {params.labels:q} --unranked {params.unranked} > {log} 2>&1"


rule ablation_table:
    input:
        probes=probe_files(ablations=True),
        runs=supervised_records(),
    output:
        csv="results/tables/ablations.csv",
        markdown="results/tables/ablations.md",
        html=report("results/tables/ablations.html", caption="../report/ablation_table.rst", category="Tables"),
    log:
        "results/logs/ablation_table/ablations.log",
    params:
        labels=table_labels(),
        order=ablation_order(),
        not_run=ablation_not_run(),
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    localrule: True
    conda:
        "../../envs/base.yaml"
    shell:
        "modaltune tables {input.probes:q} --baselines {input.runs:q} --order {params.order} --out {output.csv:q} "
        "--labels {params.labels:q} --not-run {params.not_run:q} > {log} 2>&1"


# Paper Table 10: the reference experiment (ModalTune, WSI + RNA) and the experiments marked multimodal (ModalTune w/
# Clinical), per site plus the mean, mean ± std over seeds.
rule multimodal_table:
    input:
        probe_files(multimodal=True),
    output:
        csv="results/tables/multimodal.csv",
        markdown="results/tables/multimodal.md",
        html=report("results/tables/multimodal.html", caption="../report/multimodal_table.rst", category="Tables"),
    log:
        "results/logs/multimodal_table/multimodal.log",
    params:
        labels=multimodal_labels(),
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    localrule: True
    conda:
        "../../envs/base.yaml"
    shell:
        "modaltune tables {input:q} --out {output.csv:q} --labels {params.labels:q} > {log} 2>&1"


TARGETS.append(table_targets)


# Paper supplementary Table 7: per site, prompt and projector setting, linear probes on the text embeddings.
rule text_probe:
    input:
        [path for site in SITES for path in text_probe_site_files(site)],
    output:
        csv=TEXT_PROBE_TABLES[0],
        markdown=TEXT_PROBE_TABLES[1],
    log:
        "results/logs/text_probe/text_probe.log",
    params:
        sites=text_probe_sites_option(),
        section=section_json("text"),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    conda:
        "../../envs/torch.yaml"
    shell:
        "modaltune text-probe {params.sites} --csv {output.csv:q} --markdown {output.markdown:q} "
        "--params {params.section:q} > {log} 2>&1"
