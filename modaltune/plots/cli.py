"""`modaltune km` and `modaltune tsne`: the paper's figures for one experiment and site."""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def register(subparsers) -> None:
    km = subparsers.add_parser("km", help="Kaplan-Meier curves of the test split from a probe file or baseline runs")
    source = km.add_mutually_exclusive_group(required=True)
    source.add_argument("--probes", help="results/probes/{experiment}/{site}/seed{seed}.json (with --out)")
    source.add_argument("--baseline-runs", nargs="+",
                        help="results/baselines/{model}/{site}/seed{seed}/survival.json, drawn to "
                             "OUT_DIR/{model}/{site}.png (with --out-dir); a skipped run gets no figure")
    km.add_argument("--out", help="figure of --probes")
    km.add_argument("--out-dir", help="folder of the --baseline-runs figures")
    km.set_defaults(func=run_km)

    tsne = subparsers.add_parser("tsne", help="t-SNE of patient embeddings with their text embeddings")
    tsne.add_argument("--embeddings", required=True, nargs="+",
                      help="results/embeddings/{experiment}/{site}/seed{seed}.parquet of every site shown")
    tsne.add_argument("--cohort", required=True, nargs="+", help="results/cohort/{site}.parquet of every site shown")
    tsne.add_argument("--text", nargs="*", default=[],
                      help="results/text/{site}_seed{seed}_{encoder}.parquet (projected here, general task)")
    tsne.add_argument("--projector-dim", type=int, default=None, help="text.projector_dim (needed with --text)")
    tsne.add_argument("--seed", type=int, default=0, help="split seed of the model (seeds its text projector)")
    tsne.add_argument("--title", required=True)
    tsne.add_argument("--out", required=True)
    tsne.set_defaults(func=run_tsne)


def run_km(args) -> int:
    import json
    import os
    from pathlib import Path

    import pandas as pd

    from modaltune.plots.km import baseline_km_input, plot_kaplan_meier

    if args.probes:
        if not args.out:
            raise SystemExit("modaltune km: --probes needs --out (the figure's path)")
        probe = json.loads(open(args.probes).read())
        title = f"{probe['experiment']} {probe['site']} seed {probe['seed']} (test split)"
        plot_kaplan_meier(pd.DataFrame(probe["predictions"]), probe["survival"]["train_median_risk"], args.out, title)
        return 0
    if not args.out_dir:
        raise SystemExit("modaltune km: --baseline-runs needs --out-dir (the figures' folder)")
    os.makedirs(args.out_dir, exist_ok=True)  # the folder exists even when every run was skipped
    for record_path in args.baseline_runs:
        source = baseline_km_input(record_path)
        record_dir = Path(record_path).parent  # {model}/{site}/seed{seed}
        model, site = record_dir.parent.parent.name, record_dir.parent.name
        if source is None:
            log.info("%s: run skipped, no Kaplan-Meier figure for %s %s", record_path, model, site)
            continue
        out = Path(args.out_dir) / model / f"{site}.png"
        p_value = plot_kaplan_meier(*source[:2], out, source[2])
        log.info("%s %s: %s (log-rank p = %.3g)", model, site, out, p_value)
    return 0


def run_tsne(args) -> int:
    import pandas as pd

    from modaltune.plots.tsne import joint_points, plot_tsne

    if args.text and args.projector_dim is None:
        raise SystemExit("--text needs --projector-dim (the config's text.projector_dim)")
    cohort = pd.concat([pd.read_parquet(p)[["patient", "site", "subtype"]] for p in args.cohort])
    points = joint_points([pd.read_parquet(p) for p in args.embeddings], cohort,
                          [pd.read_parquet(p) for p in args.text], args.projector_dim, args.seed)
    plot_tsne(points, args.out, args.title)
    return 0
