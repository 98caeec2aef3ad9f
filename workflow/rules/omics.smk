# Transcriptomics: the pathway membership shared by all sites (genes measured in every RNA file), then one
# patient x gene table per site (log expression as read; scaling is fitted on each training split later).


include: "omics_functions.smk"


rule pathways:
    input:
        pathways=PATHWAYS_FILE,
        rna=ALL_RNA_FILES,
        aliases=GENE_ALIASES,
    output:
        "results/omics/pathways.parquet",
    params:
        aliases=gene_alias_option,
    log:
        "results/logs/pathways/pathways.log",
    threads: 1
    resources:
        mem_mb=4000,
        runtime=20,
    conda:
        "../../envs/base.yaml"
    shell:
        "modaltune pathways --pathways {input.pathways:q} --rna {input.rna:q} {params.aliases} --output {output:q} "
        "> {log} 2>&1"


rule omics:
    input:
        rna=site_input("rna"),
        membership="results/omics/pathways.parquet",
        aliases=GENE_ALIASES,
    output:
        "results/omics/{site}.parquet",
    params:
        aliases=gene_alias_option,
    log:
        "results/logs/omics/{site}.log",
    threads: 1
    resources:
        mem_mb=8000,
        runtime=30,
    conda:
        "../../envs/base.yaml"
    shell:
        "modaltune omics --site {wildcards.site} --rna {input.rna:q} --membership {input.membership:q} "
        "{params.aliases} --output {output:q} > {log} 2>&1"


OMICS_TARGETS = ["results/omics/pathways.parquet"] + [f"results/omics/{site}.parquet" for site in SITES]
TARGETS.append(lambda: OMICS_TARGETS)
