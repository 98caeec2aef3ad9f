"""`modaltune km` and `modaltune tsne`: the paper's figures for one experiment and site."""

from __future__ import annotations


def register(subparsers) -> None:
    km = subparsers.add_parser("km", help="Kaplan-Meier curves of the test split from a probe file")
    km.add_argument("--probes", required=True, help="results/probes/{experiment}/{site}/seed{seed}.json")
    km.add_argument("--out", required=True)
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

    import pandas as pd

    from modaltune.plots.km import plot_kaplan_meier

    probe = json.loads(open(args.probes).read())
    title = f"{probe['experiment']} {probe['site']} seed {probe['seed']} (test split)"
    plot_kaplan_meier(pd.DataFrame(probe["predictions"]), probe["survival"]["train_median_risk"], args.out, title)
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
