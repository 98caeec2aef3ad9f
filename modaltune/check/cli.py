"""`modaltune check`: the preflight check of a run, before any job starts."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    check = subparsers.add_parser(
        "check",
        help="preflight: validate the config, find and count the inputs, check the weights, list the planned jobs",
        description="Checks what `snakemake --configfile FILE...` would run and prints the findings; exit status 1 "
        "when something would stop the run.",
    )
    check.add_argument("--configfile", nargs="+", default=[], metavar="FILE",
                       help="config file(s) as given to snakemake, merged left to right (none: the demo config)")
    check.add_argument("--directory", "-d", default=".", help="working directory of the run (snakemake's)")
    check.add_argument("--snakefile", default=None,
                       help="the workflow (default: workflow/Snakefile of the checkout holding modaltune)")
    check.add_argument("--no-jobs", action="store_true", help="skip the Snakemake dry run that counts the jobs")
    check.set_defaults(func=run_check)


def run_check(args: argparse.Namespace) -> int:
    from modaltune.check.preflight import default_snakefile, run_preflight

    report = run_preflight(args.configfile, args.snakefile or default_snakefile(), args.directory,
                           count_jobs=not args.no_jobs)
    print(report.render())
    return 0 if report.ok else 1
