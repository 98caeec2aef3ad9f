# Helpers of rules/omics.smk: the optional gene alias table (config omics.gene_aliases, old -> new symbol).

GENE_ALIASES = [config["omics"]["gene_aliases"]] if config["omics"]["gene_aliases"] else []


def gene_alias_option(wildcards, input):
    """`--aliases <file>` when an alias table is configured (it is then also an input of the rule)."""
    return f"--aliases {shlex.quote(input.aliases[0])}" if input.aliases else ""
