"""`modaltune <command> ...`: argument parsing only; one sub-command per workflow rule.

Each library package that has commands keeps them in ``modaltune/<package>/cli.py`` with a
``register(subparsers)`` function. Those modules import nothing heavy at module level, so that
`modaltune tile` never pays for importing torch.
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()  # first thing: the process's wall time includes the imports below

import argparse  # noqa: E402
import importlib  # noqa: E402
import importlib.util  # noqa: E402
import logging  # noqa: E402
import pkgutil  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402

import modaltune  # noqa: E402

# The last line of every command's log; benchmarks/demo_profile.py sums these per rule.
USAGE_LINE = "modaltune %s: %.2f s wall, %.2f s CPU (user+sys, with child processes)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="modaltune", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"modaltune {modaltune.__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for package in sorted(m.name for m in pkgutil.iter_modules(modaltune.__path__) if m.ispkg):
        name = f"modaltune.{package}.cli"
        if importlib.util.find_spec(name) is not None:
            importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    status = args.func(args) or 0
    logging.getLogger("modaltune").info(USAGE_LINE, args.command, time.perf_counter() - STARTED, cpu_seconds())
    return status


def cpu_seconds() -> float:
    """User + system CPU time of this process and its finished children (DataLoader workers), from its start."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


if __name__ == "__main__":
    sys.exit(main())
