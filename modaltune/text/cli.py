"""`modaltune prompts`, `modaltune embed-text`, `modaltune text-probe` (torch is imported inside the commands)."""

from __future__ import annotations

import argparse
import logging

from modaltune.config import section_from_json

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    prompts = subparsers.add_parser("prompts", help="clinical rows -> per-task text prompts of one split seed")
    prompts.add_argument("--site", required=True)
    prompts.add_argument("--seed", type=int, required=True, help="split seed whose training patients fit the duration bins")
    prompts.add_argument("--cohort", required=True, help="results/cohort/{site}.parquet")
    prompts.add_argument("--splits", required=True, help="results/cohort/{site}_splits.parquet")
    prompts.add_argument("--out", required=True, help="results/text/{site}_seed{seed}_prompts.parquet")
    prompts.add_argument("--params", default="{}", help="the config's `text` section as JSON")
    prompts.set_defaults(func=run_prompts)

    embed = subparsers.add_parser("embed-text", help="embed a prompts table with a text encoder (before the projector)")
    embed.add_argument("--prompts", required=True, help="results/text/{site}_seed{seed}_prompts.parquet")
    embed.add_argument("--encoder", required=True, help="text encoder name (minilm, conch)")
    embed.add_argument("--out", required=True, help="results/text/{site}_seed{seed}_{encoder}.parquet")
    embed.add_argument("--params", default="{}", help="the config's `text` section as JSON")
    embed.set_defaults(func=run_embed)

    probe = subparsers.add_parser("text-probe", help="linear probes on the prompts' text embeddings of every site "
                                  "(paper suppl. Table 7)")
    probe.add_argument("--site", nargs="+", action="append", required=True, metavar="SITE COHORT SPLITS EMBEDDINGS",
                       help="one site: its name, results/cohort/{site}.parquet, results/cohort/{site}_splits.parquet, "
                            "then results/text/{site}_seed{seed}_{encoder}.parquet for each seed; repeat per site")
    probe.add_argument("--csv", required=True, help="results/tables/text_probe.csv: per site, seed, prompt, projector")
    probe.add_argument("--markdown", required=True, help="results/tables/text_probe.md: mean ± std over seeds")
    probe.add_argument("--params", default="{}", help="the config's `text` section as JSON")
    probe.set_defaults(func=run_probe)


def run_prompts(args: argparse.Namespace) -> int:
    from modaltune.io import read_parquet, write_parquet
    from modaltune.text.prompts import prompts_for_seed

    params = section_from_json("text", args.params)
    cohort, _ = read_parquet(args.cohort)
    splits, _ = read_parquet(args.splits)
    result = prompts_for_seed(cohort, splits, args.site, args.seed, params["duration_bins"], params["site_words"])
    write_parquet(result.prompts, args.out, metadata=result.metadata(args.site, args.seed))
    log.info("%s seed %d: %d prompts for %d patients -> %s", args.site, args.seed, len(result.prompts), cohort["patient"].nunique(), args.out)
    return 0


def run_embed(args: argparse.Namespace) -> int:
    from modaltune.io import read_parquet, write_parquet
    from modaltune.text.encoders import create_text_encoder, embed_prompts

    params = section_from_json("text", args.params)
    prompts, meta = read_parquet(args.prompts)
    options = dict(params.get(args.encoder, {}), device=params["device"])
    encoder = create_text_encoder(args.encoder, **options)
    table = embed_prompts(prompts, encoder, batch_size=params["batch_size"])
    meta = {**meta, "text_encoder": args.encoder, "dim": encoder.dim, "normalized": True, "prompts": str(args.prompts)}
    write_parquet(table, args.out, metadata=meta)
    log.info("%d embeddings (%d-d, %s) -> %s", len(table), encoder.dim, args.encoder, args.out)
    return 0


def run_probe(args: argparse.Namespace) -> int:
    import pandas as pd

    from modaltune.io import atomic_path, read_parquet
    from modaltune.text.probe import summarise, text_probe

    params = section_from_json("text", args.params)
    per_site = []
    for values in args.site:
        if len(values) < 4:
            raise ValueError(f"--site {' '.join(values)}: expected SITE COHORT SPLITS and at least one embeddings file")
        site, cohort_path, splits_path, *embedding_paths = values
        cohort, _ = read_parquet(cohort_path)
        splits, _ = read_parquet(splits_path)
        by_seed = {}
        for path in embedding_paths:
            table, meta = read_parquet(path)
            if "seed" not in meta:
                raise ValueError(f"{path}: no seed in the file's metadata; is it written by `modaltune embed-text`?")
            by_seed[int(meta["seed"])] = table
        results = text_probe(cohort, splits, by_seed, params["projector_dim"], params["duration_bins"])
        per_site.append(results.assign(site=site))
        log.info("%s: text probes of %d seed(s)", site, len(by_seed))
    results = pd.concat(per_site, ignore_index=True)
    results = results[["site", *[c for c in results.columns if c != "site"]]]
    with atomic_path(args.csv) as tmp:
        results.to_csv(tmp, index=False)
    summary = summarise(results).to_markdown(index=False)
    with atomic_path(args.markdown) as tmp:
        tmp.write_text(summary + "\n")
    print(summary)
    return 0
