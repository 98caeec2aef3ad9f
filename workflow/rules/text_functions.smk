# Helpers of rules/text.smk: encoder input files, targets.


def text_encoder_files(wildcards):
    return encoder_files_of(wildcards.text_encoder)


def encoder_files_of(encoder):
    """CONCH's local files (a local Hugging Face model's config.json) as inputs, so a missing one stops the run before
    any job starts."""
    if encoder == "conch":
        conch = config["text"]["conch"]
        return [path for path in (conch["checkpoint"], conch["tokenizer"]) if path]
    if encoder == "hf" and config["text"]["hf"]["path"]:
        return [os.path.join(config["text"]["hf"]["path"], "config.json")]
    return []


def text_batches():
    """(site, seeds) of the demo's text-embedding jobs: `text.seeds_per_job` seeds of one site each."""
    size = config["text"]["seeds_per_job"]
    return [(site, SEEDS[start : start + size]) for site in SITES for start in range(0, len(SEEDS), size)]


def text_targets():
    return expand(
        "results/text/{site}_seed{seed}_{text_encoder}.parquet",
        site=list(SITES),
        seed=SEEDS,
        text_encoder=TEXT_ENCODER,
    )


TARGETS.append(text_targets)


def text_probe_site_files(site):
    """One site's cohort, splits and text embeddings of every seed, in the order `modaltune text-probe --site` reads."""
    return [f"results/cohort/{site}.parquet", f"results/cohort/{site}_splits.parquet"] + [
        f"results/text/{site}_seed{seed}_{TEXT_ENCODER}.parquet" for seed in SEEDS
    ]


def text_probe_sites_option():
    """`--site SITE COHORT SPLITS EMBEDDINGS...` for every site: one job probes them all (a process per site would
    cost more than its probes on the demo)."""
    return " ".join(
        "--site " + " ".join(shlex.quote(arg) for arg in [site, *text_probe_site_files(site)]) for site in SITES
    )


TEXT_PROBE_TABLES = ["results/tables/text_probe.csv", "results/tables/text_probe.md"]
TARGETS.append(lambda: TEXT_PROBE_TABLES)
